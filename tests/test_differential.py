"""runx against `uv run --no-project` on the inputs where a layer keyed by
the requirement text would run the wrong code: the same input gives the
same installed version and the same code, before and after the input changes.

Hermetic: local projects carry their own build backend (tests/localproj.py),
wheels are built by conftest.build_wheel, and both tools run with
``--no-index`` and a private uv cache.
"""

import os
import subprocess
import sys

import pytest

from conftest import build_wheel
from localproj import SHOW, make_project, set_version, set_where

UV = os.path.join(os.path.dirname(sys.executable), "uv")


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("uvcache"))


class Both:
    def __init__(self, runx, uv_cache):
        self.runx = runx
        runx.env["UV_CACHE_DIR"] = uv_cache
        self.env = dict(runx.env)

    def uv(self, cwd, *args) -> str:
        r = subprocess.run([UV, "run", "--no-project", "--python", sys.executable, "--no-index",
                            *args, "python", "-c", SHOW], cwd=cwd, env=self.env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def rx(self, cwd, *args, verbose=False) -> str:
        r = self.runx.run(*(("-v",) if verbose else ()), "--no-index", *args,
                          "python", "-c", SHOW, local=False, cwd=cwd)
        assert r.returncode == 0, r.stderr
        self.stderr = r.stderr
        return r.stdout.strip()

    def same(self, cwd, *args, expect: str) -> None:
        """uv says EXPECT for these arguments in CWD, and so does runx."""
        assert self.uv(cwd, *args) == expect
        assert self.rx(cwd, *args) == expect


@pytest.fixture
def both(runx, uv_cache):
    yield Both(runx, uv_cache)
    runx.wait_clean()


def test_same_relative_path_in_two_directories(both, tmp_path):
    for d in ("a", "b"):
        make_project(tmp_path / d / "proj", where=d)
    both.same(tmp_path / "a", "--with", "./proj", expect="1.0 a")
    both.same(tmp_path / "b", "--with", "./proj", expect="1.0 b")
    # and the same project named differently shares its layer
    key_a = both.rx(tmp_path / "a", "--with", "./proj", verbose=True)
    assert "layer hit" in both.stderr
    assert both.rx(tmp_path, "--with", "a/proj", verbose=True) == key_a


def test_project_whose_pyproject_changed(both, tmp_path):
    proj = make_project(tmp_path / "proj", version="1.0", where="one")
    both.same(tmp_path, "--with", "./proj", expect="1.0 one")
    set_version(proj, "2.0")
    set_where(proj, "two")
    both.same(tmp_path, "--with", "./proj", expect="2.0 two")


def test_wheel_rebuilt_under_the_same_name(both, tmp_path):
    dist = tmp_path / "dist"
    dist.mkdir()
    for where in ("first", "second build"):
        wheel = build_wheel(str(dist), "demo", "1.0", files={"demo/__init__.py":
                                                            f"WHERE = {where!r}\n"}, scripts={})
        rel = os.path.relpath(wheel, tmp_path)
        both.same(tmp_path, "--with", rel, expect=f"1.0 {where}")
        both.same(tmp_path, "--with", f"demo @ file://{wheel}", expect=f"1.0 {where}")


def test_files_reached_through_r_and_c(both, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for v in ("1.0", "2.0"):
        build_wheel(str(wheels), "demo", v, files={"demo/__init__.py": f"WHERE = 'v{v}'\n"},
                    scripts={})
    sub = tmp_path / "reqs"
    sub.mkdir()
    (sub / "top.txt").write_text("-r more/inner.txt\n")
    (sub / "more").mkdir()
    (sub / "more" / "inner.txt").write_text("-c ../cons.txt\ndemo\n")   # relative to inner.txt
    args = ("--find-links", str(wheels), "--with-requirements", str(sub / "top.txt"))
    for v in ("1.0", "2.0", "1.0"):
        (sub / "cons.txt").write_text(f"demo=={v}\n")
        both.same(tmp_path, *args, expect=f"{v} v{v}")
    (sub / "more" / "inner.txt").write_text("-c ../cons.txt\ndemo==2.0 ; python_version >= '3'\n")
    (sub / "cons.txt").write_text("demo>=1\n")
    both.same(tmp_path, *args, expect="2.0 v2.0")


@pytest.mark.parametrize("config", ["uv.toml", "pyproject.toml"])
def test_uv_configuration_of_the_directory(both, tmp_path, config):
    for v in ("1.0", "2.0"):
        w = tmp_path / f"wheels{v}"
        w.mkdir()
        build_wheel(str(w), "demo", v, files={"demo/__init__.py": f"WHERE = 'v{v}'\n"},
                    scripts={})
        d = tmp_path / f"dir{v}" / "sub"          # the config is found in an ancestor
        d.mkdir(parents=True)
        body = f'find-links = ["{w}"]\n'
        if config == "pyproject.toml":
            body = f'[project]\nname = "x"\nversion = "0"\n\n[tool.uv]\n{body}'
        (d.parent / config).write_text(body)
        both.same(d, "--with", "demo", expect=f"{v} v{v}")
    # a pyproject.toml without [tool.uv] in between does not hide the config
    (tmp_path / "dir1.0" / "sub" / "pyproject.toml").write_text(
        '[project]\nname = "y"\nversion = "0"\n\n[tool.black]\nline-length = 99\n')
    both.same(tmp_path / "dir1.0" / "sub", "--with", "demo", expect="1.0 v1.0")
    # an edit to the config is seen
    (tmp_path / "dir2.0" / config).write_text(
        (tmp_path / "dir2.0" / config).read_text().replace("wheels2.0", "wheels1.0"))
    both.same(tmp_path / "dir2.0" / "sub", "--with", "demo", expect="1.0 v1.0")


def test_editable_in_a_requirements_file_from_two_directories(both, tmp_path):
    for d in ("a", "b"):
        make_project(tmp_path / d / "proj", where=d)
        (tmp_path / d / "requirements.txt").write_text("-e ./proj\n")
    both.same(tmp_path / "a", "--with-requirements", "requirements.txt", expect="1.0 a")
    both.same(tmp_path / "b", "--with-requirements", "requirements.txt", expect="1.0 b")
    # editable: a source edit shows at once, with no rebuild
    set_where(tmp_path / "b" / "proj", "b, edited")
    both.same(tmp_path / "b", "--with-requirements", "requirements.txt", expect="1.0 b, edited")
    both.rx(tmp_path / "b", "--with-requirements", "requirements.txt", verbose=True)
    assert "layer hit" in both.stderr


def test_with_editable(both, tmp_path):
    proj = make_project(tmp_path / "proj", where="one")
    both.same(tmp_path, "--with-editable", "./proj", expect="1.0 one")
    set_where(proj, "two")
    both.same(tmp_path, "--with-editable", "./proj", expect="1.0 two")
    both.rx(tmp_path, "--with-editable", "./proj", verbose=True)
    assert "layer hit" in both.stderr                  # sources are not in the key
    set_version(proj, "1.1")
    both.same(tmp_path, "--with-editable", "./proj", expect="1.1 two")
    other = make_project(tmp_path / "elsewhere" / "proj", where="elsewhere")
    both.same(os.path.dirname(other), "--with-editable", "proj", expect="1.0 elsewhere")


def test_project_with_its_own_cache_keys(both, tmp_path):
    """A project that tells uv to watch its sources (``cache-keys``) is rebuilt
    on a source edit by uv; runx must not serve the old build."""
    proj = make_project(tmp_path / "proj", where="one")
    with open(os.path.join(proj, "pyproject.toml"), "a") as f:
        f.write('\n[tool.uv]\ncache-keys = [{ file = "pyproject.toml" }, '
                '{ file = "demo/**/*.py" }]\n')
    both.same(tmp_path, "--with", "./proj", expect="1.0 one")
    set_where(proj, "two")
    both.same(tmp_path, "--with", "./proj", expect="1.0 two")
    both.rx(tmp_path, "--with", "./proj", verbose=True)
    assert "layer hit" in both.stderr


def test_new_wheel_in_a_configured_find_links(both, tmp_path):
    """uv.toml names ./wheels; a newer wheel lands in it. (A wheel rebuilt
    under the same name there is served from uv's cache by uv itself.)"""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (tmp_path / "uv.toml").write_text('find-links = ["./wheels"]\n')
    for v in ("1.0", "1.1"):
        build_wheel(str(wheels), "demo", v, files={"demo/__init__.py": f"WHERE = 'v{v}'\n"},
                    scripts={})
        both.same(tmp_path, "--with", "demo", expect=f"{v} v{v}")


def test_new_wheel_in_a_find_links_directory(both, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for v in ("1.0", "1.1"):
        build_wheel(str(wheels), "demo", v, files={"demo/__init__.py": f"WHERE = 'v{v}'\n"},
                    scripts={})
        both.same(tmp_path, "--find-links", "./wheels", "--with", "demo", expect=f"{v} v{v}")
