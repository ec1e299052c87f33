"""What runx runs: a script (``*.py``, or a file whose ``#!`` line mentions
runx) as ``python SCRIPT ARG...`` with its PEP 723 dependencies, a shebang
script on its own, ``-m MODULE``; everything after the command is the
payload's, even what looks like a runx option."""

import json
import os
import subprocess

import pytest

from conftest import one_error_line, path_env, runtime_entries
from runx_env.runner import options
from runx_env.errors import UsageError


SCRIPT = """\
# /// script
# requires-python = ">=3.8"
# dependencies = [
#   "runxdemo",
# ]
# ///
import json, os, sys
import runxdemo
print(json.dumps({"argv": sys.argv, "pid": os.getpid(), "prefix": sys.prefix,
                  "demo": runxdemo.VERSION}))
"""



# --- what is a script (in process) -----------------------------------------

@pytest.mark.fast
def test_script_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.py").write_text("print()\n")
    (tmp_path / "tool").write_text("#!/usr/bin/env -S runx --with rich\nprint()\n")
    (tmp_path / "other").write_text("#!/bin/sh\necho\n")
    assert options.parse(["a.py", "x"]).command == ["python", "a.py", "x"]
    assert options.parse([str(tmp_path / "tool"), "-v"]).command == ["python", str(tmp_path / "tool"), "-v"]
    o = options.parse(["./other", "x"])
    assert o.command == ["./other", "x"] and o.script is None
    assert options.parse(["python", "a.py"]).script is None, "only the first positional"
    with pytest.raises(UsageError) as e:
        options.parse(["./missing.py"])
    assert e.value.code == 2 and "no such file" in e.value.message
    # A bare *.py name may be a console script of the environment (jp.py):
    # run() decides once the layer exists (tests/test_environment.py).
    o = options.parse(["missing.py", "x"])
    assert o.command == ["missing.py", "x"] and o.script is None and o.py_command == "missing.py"


@pytest.mark.fast
def test_module_option_ends_runx_options():
    o = options.parse(["--with", "x", "-m", "http.server", "--bind", "-v", "8000"])
    assert o.command == ["python", "-m", "http.server", "--bind", "-v", "8000"]
    assert o.verbosity == 0
    assert options.parse(["-mjson.tool"]).command == ["python", "-m", "json.tool"]
    with pytest.raises(UsageError):
        options.parse(["-m"])


# --- scripts, end to end ----------------------------------------------------

def test_script_runs_with_its_dependencies(runx, tmp_path):
    s = tmp_path / "hello.py"
    s.write_text(SCRIPT)
    r = runx.run(str(s), "a", "--with", "-v", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["argv"] == [str(s), "a", "--with", "-v"]
    assert out["demo"] == "1.0" and out["prefix"].startswith(runx.runtime + "/")
    # a relative path, as typed
    r = runx.run("hello.py", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["argv"] == ["hello.py"]
    runx.wait_clean()


def test_script_dependencies_combine_with_with(runx, tmp_path, extra):
    s = tmp_path / "both.py"
    s.write_text('# /// script\n# dependencies = ["runxdemo"]\n# ///\n'
                 "import runxdemo, runxextra\nprint(runxdemo.VERSION, runxextra.VALUE)\n")
    r = runx.run("--find-links", extra, "--with", "runxextra", str(s))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1.0", "42"]
    runx.wait_clean()


def test_script_without_metadata_gets_no_packages(runx, tmp_path):
    s = tmp_path / "bare.py"
    s.write_text("import sys, importlib.util\n"
                 "print(importlib.util.find_spec('runxdemo') is None, sys.prefix)\n")
    r = runx.run("-v", str(s))
    assert r.returncode == 0, r.stderr
    missing, prefix = r.stdout.split()
    assert missing == "True" and prefix.startswith(runx.runtime + "/")
    assert "no extra packages" in r.stderr and "layer" not in r.stderr
    runx.wait_clean()


@pytest.mark.parametrize("with_block", [True, False])
def test_shebang_script_without_py_suffix(runx, tmp_path, with_block):
    s = tmp_path / "tool"
    block = '# /// script\n# dependencies = ["runxdemo"]\n# ///\n' if with_block else ""
    check = "import runxdemo\n" if with_block else ""
    s.write_text(f"#!/usr/bin/env -S runx --find-links {runx.wheelhouse} --no-index\n"
                 f"{block}{check}import json, os, sys\n"
                 "print(json.dumps({'argv': sys.argv, 'pid': os.getpid(), 'ppid': os.getppid(),"
                 " 'env': os.environ.get('RUNX_ENV')}))\n")
    s.chmod(0o755)
    p = subprocess.Popen([str(s), "one", "--two"], env=path_env(runx), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    info = json.loads(out)
    assert info["argv"] == [str(s), "one", "--two"]
    assert info["pid"] == p.pid and info["ppid"] == os.getpid(), "env and runx both exec"
    assert info["env"].startswith(runx.runtime + "/")
    runx.wait_clean()


def test_shebang_script_with_py_suffix_via_path(runx, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    s = bindir / "greet.py"
    s.write_text(f"#!/usr/bin/env -S runx -f {runx.wheelhouse} --no-index\n{SCRIPT}")
    s.chmod(0o755)
    env = path_env(runx)
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    r = subprocess.run(["greet.py", "x"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["argv"] == [str(s), "x"]
    runx.wait_clean()


def test_requires_python_not_satisfied(runx, tmp_path):
    s = tmp_path / "future.py"
    s.write_text('# /// script\n# requires-python = ">=3.99"\n# ///\nprint("ran")\n')
    env = dict(runx.env, UV_PYTHON_DOWNLOADS="never")
    r = runx.run(str(s), env=env)
    assert r.returncode == 1
    line = one_error_line(r.stderr, alone=False)
    assert ">=3.99" in line and "future.py" in line and "--python" in line
    assert r.stdout == ""
    assert runtime_entries(runx.runtime) == [], "nothing may be made for a refused script"


def test_with_requirements_takes_a_script(runx, tmp_path, extra):
    s = tmp_path / "deps.py"
    s.write_text('# /// script\n# dependencies = ["runxextra"]\n# ///\n')
    req = tmp_path / "req.txt"
    req.write_text("runxdemo\n")
    r = runx.run("--find-links", extra, "--with-requirements", str(s),
                 "--with-requirements", str(req), "python", "-c",
                 "import runxdemo, runxextra; print(runxextra.VALUE)")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "42\n"
    runx.wait_clean()


def test_module_runs_like_python_m(runx, extra):
    r = runx.run("--find-links", extra, "--with", "runxextra", "-m", "runxextra", "a", "-v")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "runxextra main ['a', '-v']\n"
    r = runx.run("-m", "json.tool", input='{"a": [1]}')
    assert r.returncode == 0 and json.loads(r.stdout) == {"a": [1]}
    runx.wait_clean()
