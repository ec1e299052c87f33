"""The installed `runx` command costs one interpreter start and runx's own
imports, whatever installed it: pip's entry-point launcher imports re (5-8
ms a run), so the command is shipped as a script of our own."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    from uv import find_uv_bin

    out = str(tmp_path_factory.mktemp("dist"))
    subprocess.run([find_uv_bin(), "build", "-q", "--wheel", "-o", out, REPO], check=True,
                   capture_output=True)
    (name,) = [n for n in os.listdir(out) if n.endswith(".whl")]
    return os.path.join(out, name)


def imports(runx: str, *args) -> list:
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    r = subprocess.run([runx, *args], capture_output=True, text=True, env=env, check=True)
    return [ln.rsplit("|", 1)[1].strip() for ln in r.stderr.splitlines()
            if ln.startswith("import time:") and "|" in ln][1:]


def test_pip_installed_command_does_not_import_re(wheel, tmp_path):
    venv = str(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--no-deps",
                    "--no-index", wheel], check=True, capture_output=True)
    runx = os.path.join(venv, "bin", "runx")
    assert os.access(runx, os.X_OK)
    with open(runx) as f:
        assert f.readline().startswith(f"#!{venv}/bin/python"), "pip re-heads the script"
    seen = imports(runx, "--version")
    assert "runx_env.runner.cli" in seen, seen
    assert "re" not in seen, "the command's launcher imports re"


def tool_install(wheel: str, env: dict) -> None:
    """``uv tool install`` of the wheel, from uv's cache when that holds runx's
    own dependencies (uv, psutil), else from the index: when pip installed
    the test venv's uv (scripts/test does, where uv was missing), uv's cache
    never saw the uv wheel, and --offline alone cannot resolve."""
    from uv import find_uv_bin

    cmd = [find_uv_bin(), "tool", "install", "-q", wheel]
    r = subprocess.run([*cmd, "--offline"], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        subprocess.run(cmd, check=True, capture_output=True, env=env)


def test_uv_tool_installed_command_does_not_import_re(wheel, tmp_path):

    env = dict(os.environ, UV_TOOL_DIR=str(tmp_path / "tools"),
               UV_TOOL_BIN_DIR=str(tmp_path / "bin"))
    tool_install(wheel, env)
    seen = imports(str(tmp_path / "bin" / "runx"), "--version")
    assert "runx_env.runner.cli" in seen and "re" not in seen, seen


def _loaded_from(stderr: str, module_file: str) -> str:
    """How PYTHONVERBOSE says ``module_file`` was loaded: "bytecode" (a .pyc
    matched it) or "source" (compiled from the .py in memory)."""
    if any(ln.startswith("# ") and ln.endswith(f" matches {module_file}")
           for ln in stderr.splitlines()):
        return "bytecode"
    if f"# code object from {module_file}\n" in stderr + "\n":
        return "source"
    return "not loaded"


@pytest.mark.parametrize("dont_write", [True, False])
def test_uncompiled_install_loads_runx_from_bytecode(wheel, wheelhouse, tmp_path, dont_write):
    """`uv tool install` without --compile-bytecode leaves runx's modules
    uncompiled; with PYTHONDONTWRITEBYTECODE=1 (or a read-only install)
    Python never writes their .pyc, so every run compiled them again (23 ms).
    Once the cache exists (the first run makes it), the next run writes the
    byte-code into it and every later one loads from there; the install is
    not written to and the payload still sees the variable."""

    env = dict(os.environ, UV_TOOL_DIR=str(tmp_path / "tools"),
               UV_TOOL_BIN_DIR=str(tmp_path / "bin"), RUNX_CACHE_DIR=str(tmp_path / "cache"),
               RUNX_RUNTIME_DIR=str(tmp_path / "run"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if dont_write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    tool_install(wheel, env)
    runx = [str(tmp_path / "bin" / "runx"), "--find-links", wheelhouse, "--no-index",
            "--with", "runxdemo"]
    show = ("import os, sys; print(os.environ.get('PYTHONDONTWRITEBYTECODE'), "
            "sys.dont_write_bytecode, sys.pycache_prefix)")
    first = subprocess.run([*runx, "python", "-c", show], capture_output=True, text=True,
                           env=env, check=True)
    assert first.stdout == ("1 True None\n" if dont_write else "None False None\n")
    subprocess.run([*runx, "true"], env=env, check=True)       # writes the byte-code
    package = [d for d, _, files in os.walk(tmp_path / "tools") if "boot.py" in files
               and d.endswith("runx_env")][0]
    for _ in range(2):
        r = subprocess.run([*runx, "python", "-c", show], capture_output=True, text=True,
                           env=dict(env, PYTHONVERBOSE="1"), check=True)
        assert r.stdout.splitlines()[-1] == first.stdout.strip(), "the payload sees it as given"
        for mod in ("runner/cli.py", "runner/options.py", "reaper/store.py"):
            assert _loaded_from(r.stderr, os.path.join(package, mod)) == "bytecode", mod
    store = tmp_path / "cache" / "self-bytecode"
    if dont_write:
        assert not [d for d, _, _ in os.walk(package) if d.endswith("__pycache__")], \
            "nothing written into the install"
        assert os.stat(store).st_mode & 0o777 == 0o700 and len(os.listdir(store)) >= 15
    else:       # Python wrote them beside the sources itself: runx leaves that alone
        assert not store.exists()
