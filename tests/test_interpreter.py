"""A run gets the interpreter uv would choose: differential against uv.

Each case runs the same input through ``uv run`` and through runx and
compares the Python they ran on. The interpreters are pyenv's 3.10, 3.12 and
3.13 (installed on these machines, shims not active), put on PATH here;
runx itself runs on the test venv's Python (3.11). Nothing downloads a
Python: UV_PYTHON_DOWNLOADS=never everywhere.
"""

import os
import subprocess
import sys

import pytest

from conftest import RUNX
from runx_env.runner import interpreter

PYENV = "/root/.pyenv/versions"
PY = {v: next((os.path.join(PYENV, d, "bin") for d in sorted(os.listdir(PYENV))
               if d.startswith(v + ".")), None) if os.path.isdir(PYENV) else None
      for v in ("3.10", "3.12", "3.13")}
OWN = "%d.%d" % sys.version_info[:2]

pytestmark = pytest.mark.skipif(
    not all(PY.values()),
    reason="pyenv interpreters 3.10/3.12/3.13 missing (installed on these machines)")

SHOW = "import sys, platform; print(platform.python_version())"


def uv_bin() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def path_with(*versions) -> str:
    return os.pathsep.join([PY[v] for v in versions] + [os.environ["PATH"]])


@pytest.fixture
def env(runx, tmp_path):
    """runx's environment with the pyenv interpreters on PATH (3.12 first)."""
    e = dict(runx.env, PATH=path_with("3.12", "3.10", "3.13"), UV_PYTHON_DOWNLOADS="never")
    e.pop("UV_PYTHON", None)
    e.pop("PYENV_VERSION", None)
    # No user-level .python-version (uv python pin --global) may leak in.
    e["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return e


def both(runx, tmp_path, args, env, cwd, uv_args=()):
    """(uv's python version, runx's python version) for the same command."""
    uv_env = dict(env, UV_CACHE_DIR=str(tmp_path / "uvcache"))
    u = subprocess.run([uv_bin(), "run", "--quiet", *uv_args, *args], cwd=cwd, env=uv_env,
                       capture_output=True, text=True, timeout=120)
    assert u.returncode == 0, u.stderr
    r = subprocess.run([RUNX, *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return u.stdout.strip(), r.stdout.strip()


def script(path, requires=None):
    head = "# /// script\n" + (f'# requires-python = "{requires}"\n' if requires else "") \
        + "# dependencies = []\n# ///\n"
    path.write_text(head + SHOW + "\n")
    return path


@pytest.mark.parametrize("requires, first", [
    (">=3.12", "3.12"), (">=3.12", "3.13"), ("<3.11", "3.12"), (">=3.9", "3.13"),
    ("==3.13.*", "3.10"), ("~=3.10.0", "3.12"),
])
def test_requires_python_picks_the_interpreter_uv_picks(runx, tmp_path, env, requires, first):
    # Old code: an error unless runx's own 3.11 satisfied it, and 3.11 when it did.
    s = script(tmp_path / "s.py", requires)
    env["PATH"] = path_with(first, *[v for v in ("3.12", "3.10", "3.13") if v != first])
    u, r = both(runx, tmp_path, [str(s)], env, tmp_path)
    assert r == u
    runx.wait_clean()


def test_python_version_file_in_cwd_without_a_script(runx, tmp_path, env):
    # uv run --no-project python: the nearest .python-version up from the cwd.
    (tmp_path / ".python-version").write_text("3.13\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    u, r = both(runx, tmp_path, ["python", "-c", SHOW], env, sub, uv_args=["--no-project"])
    assert u.startswith("3.13") and r == u
    runx.wait_clean()


@pytest.mark.parametrize("content, requires", [
    ("3.13\n", ">=3.12"),            # the file wins over requires-python
    ("3.10\n", ">=3.12"),            # incompatible: requires-python decides
    ("3.10\n3.13\n", ">=3.12"),      # only the first line counts: ignored
    ("3.13\n3.12\n", ">=3.12"),      # only the first line counts: 3.13
    ("# pinned\n\n  3.13  \n", None),  # comments, blanks, spaces
    ("cpython@3.10\n", None),
])
def test_python_version_file_with_a_script(runx, tmp_path, env, content, requires):
    (tmp_path / ".python-version").write_text(content)
    s = script(tmp_path / "s.py", requires)
    u, r = both(runx, tmp_path, [str(s)], env, tmp_path)
    assert r == u
    runx.wait_clean()


def test_an_empty_python_version_file_leaves_it_to_requires_python(runx, tmp_path, env):
    # A deliberate deviation: uv 0.13.9 then runs the first Python on PATH even
    # when requires-python excludes it (3.12 for >=3.13 here); runx honours
    # requires-python, which is what the script's author asked for.
    (tmp_path / ".python-version").write_text("\n# nothing\n")
    s = script(tmp_path / "s.py", ">=3.13")
    r = subprocess.run([RUNX, str(s)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("3.13"), r.stderr
    runx.wait_clean()


def test_a_scripts_python_version_file_is_found_from_its_directory(runx, tmp_path, env):
    # uv looks next to the script, not in the cwd.
    d = tmp_path / "tool"
    d.mkdir()
    (d / ".python-version").write_text("3.13\n")
    s = script(d / "s.py")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    (cwd / ".python-version").write_text("3.10\n")
    u, r = both(runx, tmp_path, [str(s)], env, cwd)
    assert u.startswith("3.13") and r == u
    runx.wait_clean()


@pytest.mark.parametrize("request_", [
    ">=3.12", "cpython@3.13", "3.10", "python3.13", "cpython3.12", "3.12.1", "<3.11",
    ">=3.10,<3.13",
])
def test_python_request_forms_as_uv(runx, tmp_path, env, request_):
    # Old code: ranges and most forms were "not found on PATH".
    u, r = both(runx, tmp_path, ["--python", request_, "python", "-c", SHOW], env, tmp_path,
                uv_args=["--no-project"])
    assert r == u
    runx.wait_clean()


def test_uv_python_variable_is_the_python_option(runx, tmp_path, env):
    env["UV_PYTHON"] = "3.10"
    s = script(tmp_path / "s.py", ">=3.9")
    u, r = both(runx, tmp_path, [str(s)], env, tmp_path)
    assert u.startswith("3.10") and r == u
    runx.wait_clean()


def test_python_option_beats_the_version_file(runx, tmp_path, env):
    (tmp_path / ".python-version").write_text("3.13\n")
    s = script(tmp_path / "s.py")
    u, r = both(runx, tmp_path, [str(s)], env, tmp_path, uv_args=[])
    assert u.startswith("3.13") and r == u
    env["UV_PYTHON"] = "3.10"
    u, r = both(runx, tmp_path, [str(s)], env, tmp_path)
    assert u.startswith("3.10") and r == u
    runx.wait_clean()


def run_version(runx, args, env, cwd):
    r = subprocess.run([RUNX, *args, "python", "-c", SHOW], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_a_pyenv_shim_follows_pyenv_version(runx, tmp_path, env):
    # The old cache keyed a probe by the shim file: the first answer stuck.
    shims = os.path.join(os.path.dirname(PYENV), "shims")
    if not os.path.exists(os.path.join(shims, "python3")):
        pytest.skip("no pyenv shim for python3")
    env["PATH"] = shims + os.pathsep + env["PATH"]
    for version in ("3.10", "3.12", "3.10", "3.13"):
        full = os.path.basename(os.path.dirname(PY[version]))
        env["PYENV_VERSION"] = full
        assert run_version(runx, ["--python", "python3"], env, tmp_path) == full
        # and by the shim's path, which uv names as given
        assert run_version(runx, ["--python", os.path.join(shims, "python3")],
                           env, tmp_path) == full
    runx.wait_clean()


def test_the_cached_answer_follows_path_and_the_version_file(runx, tmp_path, env):
    (tmp_path / ".python-version").write_text(">=3.10\n")
    env["PATH"] = path_with("3.10", "3.12", "3.13")
    assert run_version(runx, [], env, tmp_path).startswith("3.10")
    env["PATH"] = path_with("3.13", "3.12", "3.10")
    assert run_version(runx, [], env, tmp_path).startswith("3.13")
    (tmp_path / ".python-version").write_text("3.12\n")
    assert run_version(runx, [], env, tmp_path).startswith("3.12")
    runx.wait_clean()


def test_a_retargeted_link_is_followed(runx, tmp_path, env):
    link = tmp_path / "mypython"
    link.symlink_to(os.path.join(PY["3.10"], "python3"))
    assert run_version(runx, ["--python", str(link)], env, tmp_path).startswith("3.10")
    link.unlink()
    link.symlink_to(os.path.join(PY["3.13"], "python3"))
    assert run_version(runx, ["--python", str(link)], env, tmp_path).startswith("3.13")
    runx.wait_clean()


def test_a_warm_run_does_not_ask_uv(runx, tmp_path, env):
    s = script(tmp_path / "s.py", ">=3.12")
    r = subprocess.run([RUNX, str(s)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("3.12"), r.stderr
    # The same inputs again, with no uv to ask: served from the cache.
    env["RUNX_UV"] = str(tmp_path / "no-such-uv")
    r = subprocess.run([RUNX, str(s)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("3.12"), r.stderr
    runx.wait_clean()


def test_default_is_runx_own_python_without_uv(runx, tmp_path, env):
    env["RUNX_UV"] = str(tmp_path / "no-such-uv")
    assert run_version(runx, [], env, tmp_path).startswith(OWN)
    s = script(tmp_path / "s.py")
    r = subprocess.run([RUNX, str(s)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith(OWN), r.stderr
    runx.wait_clean()


def test_an_explicit_python_that_misses_requires_python_warns_and_runs(runx, tmp_path, env):
    # uv run --python 3.10 s.py (requires >=3.12): a warning, then 3.10 runs.
    s = script(tmp_path / "s.py", ">=3.12")
    u, r = both(runx, tmp_path, ["--python", "3.10", str(s)], env, tmp_path)
    assert u.startswith("3.10") and r == u
    runx.wait_clean()


def test_nothing_found_is_one_error_line_and_no_download(runx, tmp_path, env):
    s = script(tmp_path / "s.py", ">=3.99")
    for args in (["--python", "3.99", "python"], [str(s)]):
        r = subprocess.run([RUNX, *args], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1 and r.stdout == ""
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("runx: error: ") and "3.99" in lines[0]
    assert runx.trees() == []


def test_downloads_follow_uv_settings(monkeypatch):
    from runx_env.runner import uv

    monkeypatch.delenv("UV_PYTHON_DOWNLOADS", raising=False)
    monkeypatch.delenv("UV_OFFLINE", raising=False)
    assert uv.downloads_allowed(())
    assert not uv.downloads_allowed(("--no-python-downloads",))
    assert not uv.downloads_allowed(("--offline",))
    for v in ("never", "manual"):
        monkeypatch.setenv("UV_PYTHON_DOWNLOADS", v)
        assert not uv.downloads_allowed(())
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "automatic")
    assert uv.downloads_allowed(())


def test_uv_python_args_reach_uv_python_find(tmp_path, monkeypatch):
    # --python-preference only-system (and the like, parsed by the CLI) must
    # change the answer's key and reach uv.
    monkeypatch.setenv("PATH", path_with("3.12"))
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    a = interpreter._answer_key("3.12", ())
    b = interpreter._answer_key("3.12", ("--python-preference", "only-system"))
    assert a != b
    got = interpreter.find("3.12", str(tmp_path),
                           uv_python_args=("--python-preference", "only-system"))
    assert got.version.startswith("3.12")


@pytest.mark.parametrize("line, spec, ok", [
    ("3.10", ">=3.12", False), ("3.12", ">=3.12", True), ("3.13", "<3.13", False),
    ("cpython@3.13", ">=3.12", True), ("3.12.1", ">3.12.1", False), ("3", ">=3.12", True),
    ("pypy@3.10", ">=3.11", False), ("/usr/bin/python3", ">=3.99", True),
    (">=3.11", "<3.10", True),   # ranges are left to uv
])
def test_version_file_line_compatibility(line, spec, ok):
    assert interpreter._compatible(line, spec) is ok


def test_a_missing_python_is_downloaded_when_uv_would(runx, tmp_path, env):
    # No real download: RUNX_UV is a wrapper that logs each call, answers
    # 'python install' itself (success, nothing installed) and hands the
    # rest to uv. runx must ask for the download exactly when uv run would.
    log = tmp_path / "uv.log"
    wrapper = tmp_path / "uv"
    wrapper.write_text(f"#!/bin/sh\necho \"$*\" >> {log}\n"
                       f"[ \"$1 $2\" = \"python install\" ] && exit 0\nexec {uv_bin()} \"$@\"\n")
    wrapper.chmod(0o755)
    env["RUNX_UV"] = str(wrapper)
    s = script(tmp_path / "s.py", ">=3.99")
    for downloads, asked in (("automatic", True), ("never", False), ("manual", False)):
        log.write_text("")
        env["UV_PYTHON_DOWNLOADS"] = downloads
        r = subprocess.run([RUNX, str(s)], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
        calls = log.read_text().splitlines()
        assert any(c.startswith("python find") for c in calls), calls
        assert any(c.startswith("python install") for c in calls) is asked, (downloads, calls)
        if asked:       # found nothing after the "download": both reasons shown
            assert "no download either" not in r.stderr and ">=3.99" in r.stderr
    assert runx.trees() == []


def test_another_directory_reuses_the_answer_unless_a_venv_is_there(runx, tmp_path, env):
    # The answer depends on the nearest .venv (uv considers it), not on the
    # cwd itself: a script run from a new directory does not ask uv again.
    s = script(tmp_path / "s.py", ">=3.12")
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    r = subprocess.run([RUNX, str(s)], cwd=a, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("3.12"), r.stderr
    no_uv = dict(env, RUNX_UV=str(tmp_path / "no-such-uv"))
    r = subprocess.run([RUNX, str(s)], cwd=b, env=no_uv, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("3.12"), r.stderr
    # A .venv on 3.13 in c: uv would take it; runx must ask again, and agree.
    subprocess.run([os.path.join(PY["3.13"], "python3"), "-m", "venv", "--without-pip",
                    str(c / ".venv")], check=True)
    r = subprocess.run([RUNX, str(s)], cwd=c, env=no_uv, capture_output=True, text=True)
    assert r.returncode == 1 and "no-such-uv" in r.stderr, r.stderr
    u, r = both(runx, tmp_path, [str(s)], env, c)
    assert r == u
    runx.wait_clean()
