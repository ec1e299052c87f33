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


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """(wheel, sdist) built from a copy of the checkout's tracked files."""
    out = tmp_path_factory.mktemp("dist")
    tree = tmp_path_factory.mktemp("tree")
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
    subprocess.run([_uv(), "build", "-q", "-o", str(out), str(tree)], check=True, timeout=300)
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
