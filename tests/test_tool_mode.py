"""Tool mode, as uvx: with no requirement named, the command names
its package (NAME, NAME[extra], NAME@VERSION, NAME==VERSION, NAME@latest);
--from SPEC names the package of another command; --with joins it.

Hermetic: wheels built here (``tooly`` 1.0 and 2.0 whose ``tooly`` console
script prints its version), found with --find-links/--no-index.
"""

import os
import subprocess
import sys

import pytest

from conftest import build_wheel, one_error_line
from runx_env.runner import options
from runx_env.errors import UsageError

TOOLY = '''\
import sys
VERSION = "{version}"
def main():
    try:
        import fancydep
        extra = " fancy"
    except ImportError:
        extra = ""
    print(f"{{sys.argv[0].rsplit('/', 1)[-1]}} {{VERSION}}{{extra}}", *sys.argv[1:])
'''


def wheel(directory, name, version, *, scripts=None, requires=(), extras=None, body=None):
    """A pure-Python wheel whose module is TOOLY (or ``body``), with only the
    console scripts named."""
    return build_wheel(directory, name, version,
                       files={f"{name}/__init__.py": body if body is not None
                              else TOOLY.format(version=version)},
                       scripts=scripts or {}, requires=requires, extras=extras)


def tooly(directory, version):
    return wheel(directory, "tooly", version, extras={"fancy": ["fancydep"]},
                 scripts={"tooly": "tooly:main", "tooly-other": "tooly:main"})


@pytest.fixture
def tools(runx, tmp_path):
    """runx with its own cache and a wheelhouse of tooly 1.0, 2.0 and fancydep."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tooly(str(wheels), "1.0")
    tooly(str(wheels), "2.0")
    wheel(str(wheels), "fancydep", "1.0", body="")
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "cache")
    runx.tool_wheels = str(wheels)

    def run(*args, **kw):
        r = runx.run("--find-links", str(wheels), "--no-index", *args, local=False, **kw)
        return r
    runx.tool = run
    yield runx
    runx.wait_clean()


@pytest.mark.parametrize("command, out", [
    (["tooly", "a", "b"], "tooly 2.0 a b"),              # the highest version
    (["tooly@1.0", "--version"], "tooly 1.0 --version"),   # NAME@VERSION is NAME==VERSION
    (["tooly==1.0"], "tooly 1.0"),                      # uvx takes a specifier too
    (["tooly>=1,<2"], "tooly 1.0"),
    (["tooly[fancy]"], "tooly 2.0 fancy"),              # extras, the command is tooly
    (["tooly[fancy]@1.0"], "tooly 1.0 fancy"),
    (["Tooly"], None),                                 # as uvx: the name as typed is the command
])
def test_the_command_names_its_package(tools, command, out):
    r = tools.tool(*command)
    if out is None:
        assert r.returncode == 1                      # uvx's status (issue 21.8)
        assert r.stderr.splitlines()[-1] == (
            "runx: error: Tooly: the package tooly provides no command of that name; its "
            "commands: tooly, tooly-other (runx --from Tooly COMMAND)")
    else:
        assert r.returncode == 0, r.stderr
        assert r.stdout == out + "\n"


UVX = os.path.join(os.path.dirname(sys.executable), "uvx")


@pytest.mark.parametrize("command", [
    ["tooly", "a", "b"], ["tooly@1.0", "--version"], ["tooly==1.0"], ["tooly>=1,<2"],
    ["tooly[fancy]"], ["tooly[fancy]@1.0"], ["--from", "tooly@1.0", "tooly-other", "x"],
    ["--from", "tooly==1.0", "--with", "fancydep", "tooly"], ["Tooly"],
])
def test_same_as_uvx(tools, tmp_path, command):
    """The same command line through uvx and runx: same output, and both
    fail where uvx fails (a name that is no command of the package)."""
    env = dict(tools.env, UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    uvx = subprocess.run([UVX, "--find-links", tools.tool_wheels, "--no-index", *command],
                         env=env, capture_output=True, text=True, timeout=120)
    r = tools.tool(*command)
    assert r.returncode == uvx.returncode, (uvx.stderr, r.stderr)   # 1 for Tooly, as uvx
    assert r.stdout == uvx.stdout, (uvx.stderr, r.stderr)


def test_installs_even_when_the_command_is_on_path(tools, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tooly").write_text("#!/bin/sh\necho from-path\n")
    (bindir / "tooly").chmod(0o755)
    tools.env["PATH"] = f"{bindir}:{tools.env['PATH']}"
    r = tools.tool("tooly")
    assert r.returncode == 0 and r.stdout == "tooly 2.0\n", r.stderr
    # With --with the command is looked up as uv run --with does: environment
    # first (tooly is not in it), then PATH; --no-project: PATH only.
    r = tools.tool("--with", "fancydep", "tooly")
    assert r.stdout == "from-path\n", r.stderr
    r = tools.tool("--no-project", "tooly")
    assert r.stdout == "from-path\n", r.stderr


def test_latest_re_resolves_now(tools, tmp_path):
    os.unlink(os.path.join(tools.tool_wheels, "tooly-2.0-py3-none-any.whl"))
    assert tools.tool("tooly").stdout == "tooly 1.0\n"
    r = tools.tool("tooly")
    assert r.stdout == "tooly 1.0\n" and r.stderr == "", "warm: the cached layer, silently"
    # @latest rebuilds the tool's own layer now, even when nothing changed.
    r = tools.tool("tooly@latest")
    assert r.returncode == 0 and r.stdout == "tooly 1.0\n", r.stderr
    assert "installed 1 package" in r.stderr
    r = tools.tool("tooly")
    assert r.stdout == "tooly 1.0\n" and r.stderr == "", "the rebuilt layer is the tool's layer"
    # A new wheel in a --find-links directory changes the layer's inputs
    # (its listing is part of the key): the next run resolves again.
    tooly(tools.tool_wheels, "3.0")
    r = tools.tool("tooly")
    assert r.returncode == 0 and r.stdout == "tooly 3.0\n", r.stderr


def test_from_names_the_package_of_another_command(tools, tmp_path):
    r = tools.tool("--from", "tooly", "tooly-other", "x")
    assert r.returncode == 0 and r.stdout == "tooly-other 2.0 x\n", r.stderr
    r = tools.tool("--from", "tooly@1.0", "tooly-other")
    assert r.stdout == "tooly-other 1.0\n", r.stderr
    r = tools.tool("--from", "tooly==1.0", "python", "-c",
                   "import tooly; print(tooly.VERSION)")
    assert r.returncode == 0 and r.stdout == "1.0\n", r.stderr
    # --with joins the tool's environment.
    r = tools.tool("--from", "tooly==1.0", "--with", "fancydep", "tooly")
    assert r.stdout == "tooly 1.0 fancy\n", r.stderr
    # A path (relative to the cwd) and a file URL.
    whl = os.path.join(tools.tool_wheels, "tooly-1.0-py3-none-any.whl")
    r = tools.tool("--from", os.path.relpath(whl, str(tmp_path)), "tooly", cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout == "tooly 1.0\n", r.stderr
    r = tools.tool("--from", f"tooly @ file://{whl}", "tooly")
    assert r.returncode == 0 and r.stdout == "tooly 1.0\n", r.stderr


def test_python_and_paths_name_no_package(tools, tmp_path):
    r = tools.tool("python", "-c", "import sys; print(sys.prefix == sys.base_prefix)")
    assert r.returncode == 0 and r.stdout == "False\n" and r.stderr == "", r.stderr
    prog = tmp_path / "prog"
    prog.write_text("#!/bin/sh\necho prog ran\n")
    prog.chmod(0o755)
    r = tools.tool(str(prog))
    assert r.returncode == 0 and r.stdout == "prog ran\n", r.stderr


@pytest.mark.parametrize("argv, message", [
    (["tooly@"], "command tooly@: no version after '@'"),
    (["--from", "tooly@", "tooly"], "--from tooly@: no version after '@'"),
])
def test_bad_tool_spec_is_one_line(tools, argv, message):
    r = tools.tool(*argv)
    assert r.returncode == 2 and message in one_error_line(r.stderr)
    assert r.stdout == ""


@pytest.mark.fast
def test_parse_rules():
    """What parse makes of each form, without running anything."""
    def tool(*argv):
        o = options.parse(list(argv))
        return o.tool, o.command, o.refresh
    assert tool("ruff", "check", ".") == (["ruff"], ["ruff", "check", "."], False)
    assert tool("black[jupyter]", ".") == (["black[jupyter]"], ["black", "."], False)
    assert tool("ruff@0.6.0", "--version") == (["ruff==0.6.0"], ["ruff", "--version"], False)
    assert tool("ruff@latest") == (["ruff"], ["ruff"], True)
    assert tool("ruff>=0.6") == (["ruff>=0.6"], ["ruff"], False)
    assert tool("--from", "httpie", "http") == (["httpie"], ["http"], False)
    assert tool("--from", "cowsay==6.0", "python") == (["cowsay==6.0"], ["python"], False)
    assert tool("--from", "ruff@latest", "ruff") == (["ruff"], ["ruff"], True)
    assert tool("--from", "x @ https://e.org/x.whl", "x")[0] == ["x @ https://e.org/x.whl"]
    assert tool("--from", "https://e.org/x-1.0-py3-none-any.whl", "x")[0] == [
        "https://e.org/x-1.0-py3-none-any.whl"]
    assert tool("python") == ([], ["python"], False)
    for py, request in (("python3", "3"), ("python3.12", "3.12"), ("python@3.12", "3.12"),
                        ("pypy@3.10", "pypy@3.10"), ("cpython", "cpython"),
                        ("python>3.11,<3.13", ">3.11,<3.13"), ("Python3.13t", "3.13t")):
        o = options.parse([py, "-V"])
        assert (o.tool, o.command, o.python) == ([], ["python", "-V"], request), py
    o = options.parse(["--from", "python@3.11", "bash", "-c", "x"])
    assert (o.tool, o.command, o.python) == ([], ["bash", "-c", "x"], "3.11")
    assert tool("cowsay @ https://e.org/cowsay-6.0-py3-none-any.whl", "-t", "x") == (
        ["cowsay @ https://e.org/cowsay-6.0-py3-none-any.whl"], ["cowsay", "-t", "x"], False)
    for bad in (["python@latest"], ["--python", "3.11", "python@3.12"], ["--locked", "ruff"]):
        with pytest.raises(UsageError):
            options.parse(bad)
    assert tool("pythonista")[0] == ["pythonista"]
    assert tool("--with", "rich", "ruff") == ([], ["ruff"], False)
    assert tool("--with-requirements", "r.txt", "ruff") == ([], ["ruff"], False)
    assert tool("--no-project", "ruff") == ([], ["ruff"], False)
    assert tool("-m", "http.server") == ([], ["python", "-m", "http.server"], False)
    assert tool("./bin/ruff") == ([], ["./bin/ruff"], False)
    assert tool("-")[0] == []                         # a script on stdin, not a package
    with pytest.raises(UsageError):
        options.parse(["ruff@"])


def test_a_command_no_package_provides_fails_at_install(tools):
    r = tools.tool("no-such-tool-xyz")
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines()[-1].startswith("runx: error: installing the requirements failed")
    assert "no-such-tool-xyz" in r.stderr          # uv's explanation names it
