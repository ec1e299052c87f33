"""A script with a lock (``SCRIPT.lock``, from ``uv lock --script``) runs what
the lock pins, as ``uv run SCRIPT`` does, in every state the lock can be in
(issue 21.1): current, out of date with the block (uv re-resolves and
rewrites it), with --locked, with --frozen, malformed, missing with
--locked. Each case runs uv and runx on the same script and lock.

Hermetic: wheels built here, found through the block's own
``find-links``/``no-index``; the lock is made by the uv runx runs with.
"""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import RUNX, build_wheel, layer_builds, one_error_line

UV = os.path.join(os.path.dirname(sys.executable), "uv")
SHOW = "import lockdemo; print(lockdemo.VERSION)\n"


def wheel(d, version):
    build_wheel(str(d), "lockdemo", version,
                files={"lockdemo/__init__.py": f'VERSION = "{version}"\n'}, scripts={})


def script(path, deps='["lockdemo"]', tool=""):
    path.write_text(f"# /// script\n# dependencies = {deps}\n# [tool.uv]\n"
                    f'# find-links = ["wh"]\n# no-index = true\n{tool}# ///\n' + SHOW)
    return path


@pytest.fixture
def locked(runx, tmp_path):
    """A script locked on lockdemo 1.0, and a wheelhouse that now has 2.0."""
    (tmp_path / "wh").mkdir()
    wheel(tmp_path / "wh", "1.0")
    s = script(tmp_path / "s.py")
    env = dict(runx.env, UV_CACHE_DIR=str(tmp_path / "uvcache"))
    r = subprocess.run([UV, "lock", "--quiet", "--script", str(s)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    wheel(tmp_path / "wh", "2.0")
    runx.uv_env = env
    yield s
    runx.wait_clean()


def uv_run(runx, s, *args, lock_from=None):
    """uv run on a copy of the script and its lock (uv may rewrite the lock)."""
    d = s.parent / "for-uv"
    d.mkdir(exist_ok=True)
    shutil.copy(s, d / s.name)
    if os.path.isfile(str(s) + ".lock"):
        shutil.copy(str(s) + ".lock", d / (s.name + ".lock"))
    if not (d / "wh").exists():
        (d / "wh").symlink_to(s.parent / "wh")
    r = subprocess.run([UV, "run", "--quiet", *args, str(d / s.name)], env=runx.uv_env,
                       capture_output=True, text=True, timeout=120)
    lock = d / (s.name + ".lock")
    return r, lock.read_bytes() if lock.is_file() else None


def rx(runx, *args):
    """runx ARGS..., the last being the script."""
    return subprocess.run([RUNX, *map(str, args)], env=runx.env, capture_output=True,
                          text=True, timeout=120)


def test_a_current_lock_is_installed_not_the_newest(runx, locked):
    # Old code: resolved afresh and ran 2.0.
    u, _ = uv_run(runx, locked)
    r = rx(runx, locked)
    assert u.returncode == r.returncode == 0, (u.stderr, r.stderr)
    assert u.stdout == r.stdout == "1.0\n"
    assert "out of date" not in r.stderr


def test_an_out_of_date_lock_is_re_resolved_and_rewritten_as_uv_does(runx, locked):
    script(locked, deps='["lockdemo>=2"]')
    before = open(str(locked) + ".lock", "rb").read()
    u, uv_lock = uv_run(runx, locked)
    r = rx(runx, locked)
    assert u.returncode == r.returncode == 0, (u.stderr, r.stderr)
    assert u.stdout == r.stdout == "2.0\n"
    after = open(str(locked) + ".lock", "rb").read()
    assert after != before and after == uv_lock, "the lock uv run would write"
    assert "was out of date" in r.stderr and "rewrote the lock" in r.stderr
    # The rewritten lock is current: the next run is warm and says nothing.
    r = rx(runx, "-v", locked)
    assert r.stdout == "2.0\n" and "layer hit" in r.stderr and "uv export" not in r.stderr


def test_locked_refuses_an_out_of_date_lock_and_frozen_installs_it(runx, locked):
    script(locked, deps='["lockdemo>=2"]')
    before = open(str(locked) + ".lock", "rb").read()
    u, uv_lock = uv_run(runx, locked, "--locked")
    r = rx(runx, "--locked", locked)
    assert u.returncode == r.returncode == 1, (u.stderr, r.stderr)
    assert open(str(locked) + ".lock", "rb").read() == before == uv_lock
    assert r.stderr.splitlines()[-1].startswith("runx: error: reading the script's lock")
    assert runx.trees() == []
    u, _ = uv_run(runx, locked, "--frozen")
    r = rx(runx, "--frozen", locked)
    assert u.returncode == r.returncode == 0, (u.stderr, r.stderr)
    assert u.stdout == r.stdout == "1.0\n"
    # A frozen layer is not the checked one: without --frozen, uv re-resolves.
    r = rx(runx, locked)
    assert r.stdout == "2.0\n", r.stderr


def test_a_current_lock_with_locked_runs(runx, locked):
    u, _ = uv_run(runx, locked, "--locked")
    r = rx(runx, "--locked", locked)
    assert u.returncode == r.returncode == 0 and u.stdout == r.stdout == "1.0\n"


@pytest.mark.parametrize("content", [b"garbage = [\n", b"version = 99\n", b"\xff\xfe"])
def test_a_malformed_lock_is_one_error(runx, locked, content):
    with open(str(locked) + ".lock", "wb") as f:
        f.write(content)
    u, _ = uv_run(runx, locked)
    r = rx(runx, locked)
    assert u.returncode == r.returncode == 2, (u.stderr, r.stderr)
    one_error_line(r.stderr, "s.py.lock", "uv lock --script", hint=True)
    assert r.stdout == "" and runx.trees() == []


def test_no_lock_with_locked_or_frozen_is_an_error_as_in_uv(runx, tmp_path):
    (tmp_path / "wh").mkdir()
    wheel(tmp_path / "wh", "1.0")
    s = script(tmp_path / "s.py")
    runx.uv_env = dict(runx.env, UV_CACHE_DIR=str(tmp_path / "uvcache"))
    for flag in ("--locked", "--frozen"):
        u, _ = uv_run(runx, s, flag)
        r = rx(runx, flag, s)
        assert u.returncode == r.returncode == 2, (u.stderr, r.stderr)
        one_error_line(r.stderr, "no lock file", flag, "uv lock --script")
    # A directory named s.py.lock is no lock, for uv either.
    (tmp_path / "s.py.lock").mkdir()
    u, _ = uv_run(runx, s)
    r = rx(runx, s)
    assert u.returncode == r.returncode == 0 and u.stdout == r.stdout == "1.0\n"
    runx.wait_clean()


def test_the_lock_is_part_of_the_layer_identity(runx, locked, tmp_path):
    """Another lock names another layer; the same lock the same one; a
    [tool.uv] key that changes nothing uv installs (link-mode) keeps it, one
    that does (exclude-newer) does not."""
    assert rx(runx, locked).stdout == "1.0\n"
    builds = layer_builds(runx.cache)
    assert rx(runx, locked).stdout == "1.0\n"
    assert layer_builds(runx.cache) == builds, "the same lock: the same layer"
    script(locked, tool='# link-mode = "copy"\n# concurrent-downloads = 3\n')
    r = rx(runx, "-v", locked)
    assert r.stdout == "1.0\n" and "layer hit" in r.stderr, r.stderr
    env = dict(runx.uv_env)
    subprocess.run([UV, "lock", "--quiet", "--upgrade", "--script", str(locked)], env=env,
                   check=True, timeout=60)
    assert rx(runx, locked).stdout == "2.0\n"
    assert len(layer_builds(runx.cache)) == len(builds) + 1, "another lock: another layer"
    script(locked, tool='# exclude-newer = "2999-01-01T00:00:00Z"\n')
    r = rx(runx, "-v", locked)
    assert r.stdout == "2.0\n" and "layer miss" in r.stderr, r.stderr


def test_with_joins_a_locked_script(runx, locked, tmp_path):
    build_wheel(str(tmp_path / "wh"), "otherdemo", "1.0",
                files={"otherdemo/__init__.py": ""}, scripts={})
    r = subprocess.run([RUNX, "--with", "otherdemo", "--find-links", str(tmp_path / "wh"),
                        str(locked)], env=runx.env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout == "1.0\n", r.stderr


def test_every_option_passed_to_uv_export_is_one_it_takes():
    from runx_env.runner import script_lock

    out = subprocess.run([UV, "export", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for name in script_lock.EXPORT_TAKES:
        assert f" {name}" in out, name
