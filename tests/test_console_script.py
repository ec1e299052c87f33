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


def test_uv_tool_installed_command_does_not_import_re(wheel, tmp_path):
    from uv import find_uv_bin

    env = dict(os.environ, UV_TOOL_DIR=str(tmp_path / "tools"),
               UV_TOOL_BIN_DIR=str(tmp_path / "bin"))
    subprocess.run([find_uv_bin(), "tool", "install", "-q", "--offline", wheel], check=True, capture_output=True, env=env)
    seen = imports(str(tmp_path / "bin" / "runx"), "--version")
    assert "runx_env.runner.cli" in seen and "re" not in seen, seen
