"""The layer key's inputs (runx_env.runner.identity): what makes two runs share a
layer and what keeps them apart. The end-to-end comparison with uv is in
test_differential.py; these pin the rules one by one, cheaply."""

import os

import pytest

from conftest import build_wheel
from localproj import make_project, set_version, set_where
from runx_env.runner import identity, paths
from runx_env.runner.requirements import Spec


@pytest.fixture(autouse=True)
def clean_uv_env(monkeypatch, tmp_path):
    """No UV_* of the caller's, and user/system config under tmp_path."""
    for var in list(os.environ):
        if var.startswith("UV_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-home"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-dirs"))


def key(cwd, *reqs, **kw) -> str:
    return Spec(list(reqs), cwd=str(cwd), **kw).digest()


@pytest.mark.fast
@pytest.mark.parametrize("req, expect", [
    ("./proj", ("{b}/proj", "{b}/proj")),
    ("../proj", ("/x/proj", "/x/proj")),
    ("proj/", ("{b}/proj", "{b}/proj")),
    ("./proj[dev,test]", ("{b}/proj", "{b}/proj[dev,test]")),
    ("./proj ; python_version > '3'", ("{b}/proj", "{b}/proj ; python_version > '3'")),
    ("/abs/p", ("/abs/p", "/abs/p")),
    ("~/p", ("{h}/p", "{h}/p")),
    ("dist/demo-1.0-py3-none-any.whl", ("{b}/dist/demo-1.0-py3-none-any.whl",) * 2),
    ("demo-1.0.tar.gz", ("{b}/demo-1.0.tar.gz",) * 2),
    ("file:///abs/my%20p", ("/abs/my p", "/abs/my p")),
    ("file://localhost/abs/p#egg=p", ("/abs/p", "/abs/p")),
    ("demo @ file:///abs/p", ("/abs/p", "demo @ file:///abs/p")),
    ("demo @ file:///abs/my%20p%23", ("/abs/my p#", "demo @ file:///abs/my%20p%23")),
    ("demo[x] @ ./p ; sys_platform == 'linux'",
     ("{b}/p", "demo[x] @ file://{b}/p ; sys_platform == 'linux'")),
    ("demo", None), ("demo>=1,<2", None), ("demo[x]==1.0 ; python_version > '3'", None),
    ("demo @ https://example.org/demo-1.0.tar.gz", None),
    ("git+https://github.com/a/b@v1", None), ("demo @ git+ssh://git@github.com/a/b", None),
])
def test_local_requirement_forms(req, expect):
    base = "/x/base"
    got = identity.local(req, base)
    if expect is None:
        assert got is None
    else:
        home = os.path.expanduser("~")
        assert got == tuple(e.format(b=base, h=home) for e in expect)


@pytest.mark.fast
def test_plain_requirements_share_across_directories(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert key(tmp_path / "a", "demo>=1") == key(tmp_path / "b", "Demo>=1")


@pytest.mark.fast
def test_local_paths_key_by_target_and_uv_gets_absolute_paths(tmp_path):
    a = make_project(tmp_path / "a" / "proj")
    make_project(tmp_path / "b" / "proj")
    assert key(tmp_path / "a", "./proj") != key(tmp_path / "b", "./proj")
    assert key(tmp_path / "a", "./proj") == key(tmp_path, "a/proj/")
    spec = Spec(["./proj[x]", "demo"], cwd=str(tmp_path / "a"), editables=[a])
    assert spec.uv_args() == ["-e", a, a + "[x]", "demo"]
    before = key(tmp_path / "a", "./proj")
    set_where(a, "sources are not watched")
    assert key(tmp_path / "a", "./proj") == before
    for name in ("pyproject.toml", "setup.py", "setup.cfg"):      # uv's cache-keys
        (tmp_path / "a" / "proj" / name).write_text("# changed\n")
        assert key(tmp_path / "a", "./proj") != before, name
        before = key(tmp_path / "a", "./proj")


@pytest.mark.fast
def test_file_fingerprint_sees_a_rebuild_in_place(tmp_path):
    wheel = build_wheel(str(tmp_path), "demo", "1.0")
    before = key(tmp_path, os.path.basename(wheel))
    with open(wheel, "r+b") as f:                # same inode, same size, new bytes
        data = f.read()
        f.seek(0)
        f.write(data)
    os.utime(wheel, ns=(os.stat(wheel).st_atime_ns, os.stat(wheel).st_mtime_ns + 1))
    assert key(tmp_path, os.path.basename(wheel)) != before


@pytest.mark.fast
def test_find_links_directory_listing(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    w = build_wheel(str(wheels), "demo", "1.0")
    before = key(tmp_path, "demo", find_links=[str(wheels)])
    os.unlink(w)
    build_wheel(str(wheels), "demo", "1.0", files={"demo/__init__.py": "X = 2\n"})
    assert key(tmp_path, "demo", find_links=[str(wheels)]) != before


@pytest.mark.fast
def test_requirements_files_recursive_with_a_cycle(tmp_path):
    (tmp_path / "d").mkdir()
    top = tmp_path / "top.txt"
    top.write_text("-r d/a.txt\n")
    (tmp_path / "d" / "a.txt").write_text("--requirement=b.txt\ndemo\n")
    (tmp_path / "d" / "b.txt").write_text("-ra.txt \\\n\n-c ../c.txt  # constraints\n")
    (tmp_path / "c.txt").write_text("demo==1.0\n")
    k = lambda: key(tmp_path, requirement_files=[str(top)])      # noqa: E731
    before = k()
    (tmp_path / "c.txt").write_text("demo==2.0\n")
    assert k() != before
    before = k()
    (tmp_path / "d" / "b.txt").write_text("-r a.txt\n")
    assert k() != before


@pytest.mark.fast
def test_paths_inside_requirements_files_resolve_like_uv(tmp_path, monkeypatch):
    """-e and package paths against the cwd (checked against uv 0.13.9),
    ${VAR} expanded: the same file from two directories is two keys."""
    req = tmp_path / "req.txt"
    req.write_text("-e proj\n${WHICH}/other\n")
    for d in ("a", "b"):
        make_project(tmp_path / d / "proj")
        make_project(tmp_path / d / "other")
    bare = tmp_path / "bare.txt"
    bare.write_text("-e proj\n")                  # a bare directory name is a path too
    assert (key(tmp_path / "a", requirement_files=[str(bare)])
            != key(tmp_path / "b", requirement_files=[str(bare)]))
    monkeypatch.setenv("WHICH", ".")
    ka = key(tmp_path / "a", requirement_files=[str(req)])
    assert ka != key(tmp_path / "b", requirement_files=[str(req)])
    set_version(tmp_path / "a" / "other", "9")
    assert key(tmp_path / "a", requirement_files=[str(req)]) != ka
    ka = key(tmp_path / "a", requirement_files=[str(req)])
    monkeypatch.setenv("WHICH", "./proj")
    assert key(tmp_path / "a", requirement_files=[str(req)]) != ka


@pytest.mark.fast
@pytest.mark.parametrize("text, has", [
    ("[tool.uv]\nx = 1\n", True), ("[project]\n[ tool . uv . pip ]\n", True),
    ('[[tool.uv.index]]\nurl = "u"\n', True), ('["tool"."uv"]\n', True),
    ("[tool.uvicorn]\nport = 1\n", False), ("[project]\nname = 'uv'\n", False),
    ("[tool]\nuv = {}\n", None), ("tool.uv.pip.x = 1\n", None), ("[tool.black]\n", False),
])
def test_tool_uv_detection(text, has):
    assert identity._has_tool_uv(text.encode()) is has


@pytest.mark.fast
def test_uv_configuration_in_the_key(tmp_path, monkeypatch):
    top = tmp_path / "p"
    sub = top / "x" / "y"
    sub.mkdir(parents=True)
    other = tmp_path / "q"
    other.mkdir()
    base = key(sub, "demo")
    assert base == key(other, "demo")
    (top / "uv.toml").write_text('index-url = "https://a.example"\n')
    with_uv_toml = key(sub, "demo")
    assert with_uv_toml != base and key(other, "demo") == base
    # a nearer pyproject.toml with [tool.uv] wins: uv stops there
    (top / "x" / "pyproject.toml").write_text('[tool.uv]\nindex-url = "https://b.example"\n')
    nearer = key(sub, "demo")
    (top / "uv.toml").write_text('index-url = "https://c.example"\n')
    assert key(sub, "demo") == nearer
    # without [tool.uv] it is skipped and the search goes on
    (top / "x" / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert key(sub, "demo") not in (nearer, with_uv_toml, base)
    # user and system configuration
    before = key(other, "demo")
    user = tmp_path / "xdg-home" / "uv"
    user.mkdir(parents=True)
    (user / "uv.toml").write_text("no-index = true\n")
    assert key(other, "demo") != before
    before = key(other, "demo")
    system = tmp_path / "xdg-dirs" / "uv"
    system.mkdir(parents=True)
    (system / "uv.toml").write_text("no-index = true\n")
    assert key(other, "demo") != before
    before = key(other, "demo")
    cfg = tmp_path / "explicit.toml"
    cfg.write_text("a = 1\n")
    monkeypatch.setenv("UV_CONFIG_FILE", str(cfg))
    with_file = key(other, "demo")
    assert with_file != before
    cfg.write_text("a = 2\n")
    assert key(other, "demo") != with_file


@pytest.mark.fast
def test_uv_variables(tmp_path, monkeypatch):
    base = key(tmp_path, "demo")
    for var in ("UV_CACHE_DIR", "UV_CONCURRENT_DOWNLOADS", "UV_NO_PROGRESS",
                "UV_INTERNAL__PARENT_INTERPRETER", "UV_RUN_RECURSION_DEPTH"):
        monkeypatch.setenv(var, "1")
        assert key(tmp_path, "demo") == base, var
    for var in ("UV_INDEX", "UV_EXCLUDE_NEWER", "UV_PRERELEASE", "UV_SOME_FUTURE_SETTING"):
        monkeypatch.setenv(var, "x")
        assert key(tmp_path, "demo") != base, var
        monkeypatch.delenv(var)


@pytest.mark.fast
def test_uv_variables_per_mode(tmp_path, monkeypatch):
    """A variable only uv pip reads is not applied and not keyed; one only uvx
    reads (UV_CONSTRAINT...) counts in tool mode only (issue 21.5); the env
    file variables are the payload's, never a rebuild."""
    (tmp_path / "c.txt").write_text("demo<2\n")
    run, tool = key(tmp_path, "demo"), key(tmp_path, "demo", tool=True)
    for var, value in (("UV_CONSTRAINT", "c.txt"), ("UV_OVERRIDE", "c.txt"),
                       ("UV_BUILD_CONSTRAINT", "c.txt"), ("UV_TORCH_BACKEND", "cpu")):
        monkeypatch.setenv(var, value)
        assert key(tmp_path, "demo") == run, var
        assert key(tmp_path, "demo", tool=True) != tool, var
        assert Spec(["demo"], cwd=str(tmp_path)).uv_env[var] is None, "unset for uv"
        assert var not in Spec(["demo"], cwd=str(tmp_path), tool=True).uv_env
        monkeypatch.delenv(var)
    for var in ("UV_EXCLUDE", "UV_SYSTEM_PYTHON", "UV_BREAK_SYSTEM_PACKAGES",
                "UV_REQUIRE_HASHES", "UV_ENV_FILE", "UV_NO_ENV_FILE"):
        monkeypatch.setenv(var, "c.txt")
        assert key(tmp_path, "demo") == run and key(tmp_path, "demo", tool=True) == tool, var
        monkeypatch.delenv(var)


# --- through the CLI: bad input, warm path ------------------------------------

def test_bad_inputs_are_one_line_errors(runx, tmp_path):
    r = runx.run("--with-editable", str(tmp_path / "nope"), "true")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("runx: error: --with-editable ") and "(" in r.stderr
    top = tmp_path / "top.txt"
    top.write_text("-r missing.txt\n")
    r = runx.run("--with-requirements", str(top), "true")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "missing.txt" in r.stderr and r.stderr.startswith("runx: error: ")
    top.write_text("# padding\n" * (paths.MAX_INPUT // 10 + 1))
    r = runx.run("--with-requirements", str(top), "true")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "larger than" in r.stderr
    assert not runx.trees()
    runx.wait_clean()


@pytest.mark.fast
def test_files_and_directories_named_by_uv_variables_and_config(tmp_path, monkeypatch):
    cons = tmp_path / "cons.txt"
    cons.write_text("demo==1.0\n")
    monkeypatch.setenv("UV_CONSTRAINT", "cons.txt")       # uvx's: tool mode
    before = key(tmp_path, "demo", tool=True)
    cons.write_text("demo==2.0\n")
    assert key(tmp_path, "demo", tool=True) != before
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("UV_FIND_LINKS", "./wheels")
    before = key(tmp_path, "demo")
    build_wheel(str(wheels), "demo", "1.0")
    assert key(tmp_path, "demo") != before
    monkeypatch.delenv("UV_FIND_LINKS")
    (tmp_path / "uv.toml").write_text("find-links = ['./wheels']\n")
    before = key(tmp_path, "demo")
    build_wheel(str(wheels), "demo", "2.0")
    assert key(tmp_path, "demo") != before


@pytest.mark.fast
def test_uv_working_dir_and_project_move_where_uv_looks(tmp_path, monkeypatch):
    for d in ("a", "b"):
        make_project(tmp_path / d / "proj", where=d)
    base = key(tmp_path / "a", "./proj")
    monkeypatch.setenv("UV_WORKING_DIR", str(tmp_path / "b"))
    spec = Spec(["./proj"], cwd=str(tmp_path / "a"))
    assert spec.uv_args() == [str(tmp_path / "b" / "proj")]
    monkeypatch.delenv("UV_WORKING_DIR")
    (tmp_path / "b" / "uv.toml").write_text("no-index = true\n")
    monkeypatch.setenv("UV_PROJECT", "../b")
    with_project = key(tmp_path / "a", "./proj")
    assert with_project != base
    (tmp_path / "b" / "uv.toml").write_text("no-index = false\n")
    assert key(tmp_path / "a", "./proj") != with_project
