"""The distribution: src/ is the package runx_env, built without links.

The wheel holds every module of src/ under runx_env/ and nothing else of
it; the sdist builds the same wheel; an editable install exposes runx_env
and only it (docs/design.md, "Packaging").
"""

import glob
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

from conftest import SRC

ROOT = os.path.dirname(SRC)


def _uv() -> str:
    import shutil

    found = shutil.which("uv")
    if found:
        return found
    from uv import find_uv_bin

    return find_uv_bin()


def build_dist(out, tree, *args) -> None:
    """Build (uv build ARGS) from a copy in ``tree`` of the checkout's
    tracked and new files into ``out``: the checkout itself is not written."""
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):
            continue                     # deleted in the working tree
        dest = os.path.join(tree, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(src, "rb") as f, open(dest, "wb") as g:
            g.write(f.read())
        os.chmod(dest, os.stat(src).st_mode & 0o777)
    subprocess.run([_uv(), "build", "-q", *args, "-o", str(out), str(tree)], check=True,
                   timeout=300)


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """(wheel, sdist) built from a copy of the checkout's tracked files."""
    out = tmp_path_factory.mktemp("dist")
    build_dist(out, tmp_path_factory.mktemp("tree"))
    (wheel,) = glob.glob(str(out / "*.whl"))
    (sdist,) = glob.glob(str(out / "*.tar.gz"))
    return wheel, sdist, out


def _modules_of_src() -> set:
    out = set()
    for d, dirs, files in os.walk(SRC):
        dirs[:] = [x for x in dirs if x not in ("__pycache__", "bin")]
        for f in files:
            if f.endswith(".py"):
                out.add("runx_env/" + os.path.relpath(os.path.join(d, f), SRC))
    return out


def test_the_wheel_holds_src_as_runx_env_and_nothing_else(dist):
    wheel, _, _ = dist
    names = set(zipfile.ZipFile(wheel).namelist())
    package = {n for n in names if not n.startswith(("runx_env-", "runx_env.data"))}
    assert package == _modules_of_src()
    assert any(n.endswith(".data/scripts/runx") for n in names), sorted(names)
    top = [n for n in names if n.endswith("top_level.txt")]
    assert zipfile.ZipFile(wheel).read(top[0]).decode().split() == ["runx_env"]


def test_the_sdist_builds_the_same_wheel(dist, tmp_path):
    wheel, sdist, _ = dist
    with tarfile.open(sdist) as t:
        t.extractall(tmp_path, filter="data")
    (unpacked,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert not [p for p in unpacked.rglob("*") if p.is_symlink()]
    out = tmp_path / "again"
    subprocess.run([_uv(), "build", "-q", "--wheel", "-o", str(out), str(unpacked)],
                   check=True, timeout=300)
    (again,) = glob.glob(str(out / "*.whl"))
    a, b = zipfile.ZipFile(wheel), zipfile.ZipFile(again)
    assert sorted(a.namelist()) == sorted(b.namelist())
    for n in a.namelist():
        if not n.endswith("RECORD"):
            assert a.read(n) == b.read(n), n


def test_an_editable_install_exposes_only_runx_env(tmp_path):
    """pip install -e (setuptools' finder): runx_env is this checkout's src/,
    and runner, reaper, bin are not importable as top-level names (two
    module objects for one file). scripts/test's strict mode is what the
    whole suite runs under (conftest.pytest_sessionstart checks it); it is
    not reinstalled here, since its tree of links under build/ is the one
    the live test venv imports from."""
    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    py = str(venv / "bin" / "python")
    args = [_uv(), "pip", "install", "-q", "--python", py, "--no-deps", "-e", ROOT]
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(args, check=True, timeout=300, env=env, cwd=tmp_path)
    probe = ("import importlib.util, os, runx_env.runner.cli as c, runx_env.reaper.store as s\n"
             "print(os.path.realpath(c.__file__)); print(os.path.realpath(s.__file__))\n"
             "print([n for n in ('runner', 'reaper', 'bin', 'src') "
             "if importlib.util.find_spec(n) is not None])\n")
    r = subprocess.run([py, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    cli, store, tops = r.stdout.splitlines()
    assert cli == os.path.join(SRC, "runner", "cli.py")
    assert store == os.path.join(SRC, "reaper", "store.py")
    assert tops == "[]", tops


# --- installing runx (issue 22.6) ----------------------------------------------------

def _system_python_managed() -> str | None:
    """/usr/bin/python3, if the distribution marks it EXTERNALLY-MANAGED (PEP 668)."""
    if not os.path.exists("/usr/bin/python3"):
        return None
    r = subprocess.run(["/usr/bin/python3", "-c",
                        "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                       capture_output=True, text=True)
    marker = os.path.join(r.stdout.strip(), "EXTERNALLY-MANAGED")
    return "/usr/bin/python3" if r.returncode == 0 and os.path.exists(marker) else None


def _fresh_env(home: str, **extra) -> dict:
    """A login's environment with a fresh HOME: PATH of the system only (no
    uv, no pyenv), and this machine's TLS and proxy settings kept."""
    env = {k: v for k, v in os.environ.items()
           if any(w in k.upper() for w in ("CERT", "SSL", "PROXY", "CA_BUNDLE"))
           or k.startswith("PIP_")}
    env.update(HOME=home, PATH="/usr/bin:/bin", LANG="C.UTF-8", **extra)
    return env


def _readme_first_command() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    block = text.split("## Set up", 1)[1].split("```\n", 2)[1]
    (line,) = [ln for ln in block.splitlines() if ln.strip()]
    return line


def test_the_readme_first_command_on_a_stock_system_python(dist, tmp_path):
    """The README's first command, run as a new user would on Debian/Ubuntu:
    their /usr/bin/python3 refuses pip install (PEP 668), HOME is fresh and
    uv is nowhere on PATH. runx goes into an environment of its own and runs
    cowsay (from PyPI). The wheel built from this checkout stands for it."""
    python = _system_python_managed()
    if python is None:
        pytest.skip("needs an EXTERNALLY-MANAGED /usr/bin/python3 (Debian 12, Ubuntu >= 23.04)")
    wheel = dist[0]
    home = str(tmp_path / "home")
    os.mkdir(home)
    env = _fresh_env(home)
    old = subprocess.run([python, "-m", "pip", "install", wheel], env=env, capture_output=True,
                         text=True, timeout=300)
    assert old.returncode != 0 and "externally-managed-environment" in old.stderr, old.stderr
    command = _readme_first_command()
    assert command.startswith("scripts/install && "), command
    r = subprocess.run(["bash", "-c", command.replace("scripts/install",
                                                      f"scripts/install {wheel}", 1)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| hi |" in r.stdout, r.stdout
    link = os.path.join(home, ".local", "bin", "runx")
    prefix = os.path.join(home, ".local", "share", "runx")
    assert os.path.realpath(link) == os.path.join(prefix, "bin", "runx")
    with open(os.path.join(prefix, "pyvenv.cfg")) as f:
        assert "home = /usr/bin" in f.read()


def test_install_from_inside_a_venv_and_again(dist, tmp_path):
    """PYTHON a venv's: runx gets an environment of its own beside it; a
    second install replaces the first; a prefix that is not runx's is
    refused, untouched."""
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs /usr/bin/python3")
    wheel = dist[0]
    home = str(tmp_path / "home")
    os.mkdir(home)
    venv = str(tmp_path / "venv")
    subprocess.run(["/usr/bin/python3", "-m", "venv", venv], check=True, timeout=120)
    env = _fresh_env(home, PYTHON=os.path.join(venv, "bin", "python"))
    install = [os.path.join(ROOT, "scripts", "install"), wheel]
    for _ in range(2):
        r = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
    v = subprocess.run([os.path.join(home, ".local", "bin", "runx"), "--version"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert v.returncode == 0 and v.stdout.startswith("runx "), v.stderr
    assert not os.path.exists(os.path.join(venv, "bin", "runx")), "the venv itself is untouched"
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep").write_text("x")
    r = subprocess.run(install, env=dict(env, RUNX_PREFIX=str(other)), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "is not a runx install" in r.stderr, r.stderr
    assert (other / "keep").read_text() == "x"


def test_scripts_test_never_installs_into_the_interpreter(tmp_path):
    """scripts/test in a fresh shell with no uv anywhere: uv goes into the
    test venv it makes, not into the interpreter (a stock /usr/bin/python3
    would refuse, a pyenv or Homebrew one be polluted). Its setup part, run
    alone (the rest installs the whole suite's dependencies)."""
    python = _system_python_managed() or ("/usr/bin/python3" if os.path.exists(
        "/usr/bin/python3") else None)
    if python is None:
        pytest.skip("needs /usr/bin/python3")
    with open(os.path.join(ROOT, "scripts", "test")) as f:
        text = f.read()
    part = text.split("# --- uv and the venv", 1)[1].split("\n", 1)[1]
    part = part.split("# --- end of uv and the venv", 1)[0]
    home, venv = str(tmp_path / "home"), str(tmp_path / "venv")
    os.mkdir(home)
    env = _fresh_env(home, PYTHON=python, RUNX_TEST_VENV=venv)
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", part], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert os.access(os.path.join(venv, "bin", "uv"), os.X_OK)
    assert subprocess.run([python, "-c", "import uv"], capture_output=True).returncode != 0, \
        "uv was installed into the interpreter itself"


# --- a distribution people can package (issue 22.7) ---------------------------------

def test_metadata_license_and_readme_links(dist):
    """twine check --strict on both; the wheel's metadata names the license
    file, authors, classifiers (the supported platforms among them); the
    README (the PyPI page) has no relative link, which PyPI would break."""
    import re

    wheel, sdist, _ = dist
    twine = os.path.join(os.path.dirname(sys.executable), "twine")
    r = subprocess.run([twine, "check", "--strict", wheel, sdist], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    z = zipfile.ZipFile(wheel)
    (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
    text = z.read(meta).decode()
    head = text.split("\n\n", 1)[0]
    assert "License-Expression: MIT" in head and "License-File: LICENSE" in head, head
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in z.namelist())
    assert "Author: the runx maintainers" in head or "Author-email" in head, head
    for c in ("Operating System :: POSIX :: Linux", "Operating System :: MacOS",
              "Programming Language :: Python :: 3.10"):
        assert f"Classifier: {c}" in head, c
    assert "Requires-Dist: trio" not in head, "trio is not runx's: only pyfuse3 needs it"
    links = re.findall(r"\]\(([^)]+)\)", text.split("\n\n", 1)[1])
    assert links and all(re.match(r"https?://", u) for u in links), links
    with open(os.path.join(ROOT, "LICENSE")) as f:
        assert f.read().startswith("MIT License")


def test_the_suite_runs_from_the_unpacked_sdist(dist, tmp_path):
    """A packager's build: unpack the sdist, install it (with the test
    extras) into a venv of its own, run the suite's in-process tier from the
    unpacked tree (conftest, helpers, docs/ and scripts/ are in it)."""
    _, sdist, _ = dist
    with tarfile.open(sdist) as t:
        t.extractall(tmp_path, filter="data")
        names = t.getnames()
    (unpacked,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for need in ("tests/conftest.py", "tests/users.py", "tests/local_index.py", "LICENSE",
                 "scripts/test", "scripts/install", "docs/design.md", ".ci/run"):
        assert any(n.endswith("/" + need) for n in names), need
    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True,
                   timeout=120)
    py = str(venv / "bin" / "python")
    subprocess.run([_uv(), "pip", "install", "-q", "--python", py, "-e", f"{unpacked}[test]",
                    "--config-settings", "editable_mode=strict"], check=True, timeout=600)
    r = subprocess.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "fast",
                        "--basetemp", str(tmp_path / "base")], cwd=str(unpacked),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout.splitlines()[-1], r.stdout[-500:]
