"""The warm path (a cached layer hit) imports only what it needs and spawns
nothing: the one guard of that rule (docs/design.md, "Warm path").

A probe runs runx's main in-process and, at the moment of the exec, lists
every module loaded since interpreter start-up and counts the processes
started. A module outside ALLOWED fails the test (add it there only if it is
small and needed: the payload pays for it on every run); the modules of
FORBIDDEN are named explicitly, so loosening the allowlist cannot let them
back in. Exactly one fork (the reaper's double fork: the runner forks once),
no other process: no uv, no subprocess.
"""

import ast
import subprocess
import sys

import pytest

from conftest import Runx
from localproj import make_project

# runx's own modules a warm run may load, and the standard library's.
ALLOWED = {
    "runx_env", "runx_env.boot", "runx_env.errors", "runx_env.faults",
    "runx_env.runner", "runx_env.runner.cli", "runx_env.runner.options",
    "runx_env.runner.requirements", "runx_env.runner.identity", "runx_env.runner.paths",
    "runx_env.runner.interpreter", "runx_env.runner.launch", "runx_env.runner.trees",
    "runx_env.runner.venv",
    "runx_env.reaper", "runx_env.reaper.watch", "runx_env.reaper.watch._pidfd",
    "runx_env.reaper.ownership", "runx_env.reaper.handoff", "runx_env.reaper.store",
    # built in, or a small shared library that has no stand-in (flock, the layer key's hash)
    "fcntl", "marshal", "time", "_signal", "_blake2", "_posixsubprocess",
    "_stat", "stat", "errno",
}
# Named by the rule itself: heavy (re, json, dataclasses, enum, inspect,
# typing...), or a process (subprocess, uv), or the reaper's own heavy deps.
FORBIDDEN = {
    "re", "json", "dataclasses", "subprocess", "hashlib", "tomllib", "tomli", "difflib",
    "trio", "psutil", "pyfuse3", "enum", "signal", "typing", "inspect", "urllib",
    "urllib.parse", "fnmatch", "ctypes", "shutil", "runx_env.runner.uv", "runx_env.runner.completion",
    "runx_env.runner.dotenv", "runx_env.runner.pep723", "runx_env.reaper.sweep", "runx_env.reaper.fuse_tree", "runx_env.reaper.memfs",
    # The reaper's own code loads in the reaper, after the fork (handoff.py);
    # shared libraries and modules a warm run no longer pays for.
    "runx_env.reaper.daemon", "runx_env.reaper.leases", "select", "_json", "__future__",
    "runx_env.runner.build", "runx_env.reaper.expiry", "runx_env.reaper.finish",
    "runx_env.version",
}

PROBE = r"""
import os, sys
before = set(sys.modules)
import _posixsubprocess
spawned = []
def no_spawn(*a, **k):
    spawned.append(a[0] if a else "?")
    raise OSError(1, "the warm path spawned a process")
_posixsubprocess.fork_exec = os.posix_spawn = os.posix_spawnp = os.system = no_spawn
forks = []
_fork = os.fork
def counting_fork():
    forks.append(1)
    return _fork()
os.fork = counting_fork
_exec = os.execve
def report(path, argv, env):
    mods = sorted(set(sys.modules) - before - {"_posixsubprocess"})
    sys.stderr.write("WARM %r %d %r\n" % (mods, len(forks), spawned))
    sys.stderr.flush()
    _exec(path, argv, env)
os.execve = report
sys.argv = ["runx"] + sys.argv[1:]
from runx_env.runner.cli import main
main()
"""


def loaded(r: Runx, *args, cwd=None) -> tuple:
    """(modules loaded, forks) by a run of runx ARGS, warmed first."""
    warm = r.run(*args, cwd=cwd)                 # builds the layer if need be
    assert warm.returncode == 0, warm.stderr
    argv = [sys.executable, "-c", PROBE, "--find-links", r.wheelhouse, "--no-index", *args]
    p = subprocess.run(argv, env=r.env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    (line,) = [ln for ln in p.stderr.splitlines() if ln.startswith("WARM ")]
    mods, forks, spawned = line[5:].rsplit(" ", 2)[0], *line[5:].rsplit(" ", 2)[1:]
    assert ast.literal_eval(spawned) == [], line
    return set(ast.literal_eval(mods)), int(forks)


CASES = {
    "with": ["--with", "runxdemo", "python", "-c", "pass"],
    "tool mode": ["runxdemo"],
    "layer option": ["--exclude-newer", "2099-01-01", "--with", "runxdemo", "python", "-c",
                     "pass"],
    "verbose": ["-v", "--with", "runxdemo", "python", "-c", "pass"],
    # A command given by path is read for a runx #! line, nothing more.
    "command by path": ["--with", "runxdemo", "/bin/true"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_warm_run_loads_only_allowed_modules(runx, case):
    mods, forks = loaded(runx, *CASES[case])
    assert not mods & FORBIDDEN, f"forbidden on the warm path: {sorted(mods & FORBIDDEN)}"
    assert mods <= ALLOWED, f"not in the warm path's allowlist: {sorted(mods - ALLOWED)}"
    assert forks == 1
    runx.wait_clean()


def test_warm_run_of_a_local_project_and_nested_requirements(runx, tmp_path):
    """``--with ./proj`` plus ``-r`` naming ``-e ./lib``, inside a project with
    [tool.uv]: the layer key reads those files with stats and small reads."""
    r = runx
    make_project(tmp_path / "proj")
    make_project(tmp_path / "lib", name="demo2")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "outer"\nversion = "0"\n\n[tool.uv]\n')
    (tmp_path / "req.txt").write_text("-r more.txt\n")
    (tmp_path / "more.txt").write_text("-e ./lib\n")
    mods, forks = loaded(r, "--with", "./proj", "--with-requirements", "req.txt",
                         "python", "-c", "import demo, demo2", cwd=tmp_path)
    assert not mods & FORBIDDEN, sorted(mods & FORBIDDEN)
    assert mods <= ALLOWED, sorted(mods - ALLOWED)
    r.wait_clean()


def test_a_script_loads_its_parsers_only_when_it_has_a_block(runx, tmp_path):
    """A script without a '# /// script' block reads no TOML. One with a
    block parses it once: warm, its checked content and its requires-python
    answer come from the cache (no tomllib, no re: about 10 ms, which made a
    warm `runx script.py` 1.7x slower than uv's); a new block is parsed."""
    bare = tmp_path / "bare.py"
    bare.write_text("pass\n")
    mods, _ = loaded(runx, str(bare))
    assert "runx_env.runner.pep723" in mods and not {"tomllib", "tomli", "re"} & mods, sorted(mods)
    block = tmp_path / "block.py"
    block.write_text('# /// script\n# requires-python = ">=3.8"\n'
                     '# dependencies = ["runxdemo"]\n# ///\nimport runxdemo\n')
    mods, _ = loaded(runx, str(block))
    assert not {"tomllib", "tomli", "re"} & mods, sorted(mods)
    block.write_text('# /// script\n# requires-python = ">=3.8"\n'
                     '# dependencies = [ "runxdemo" ]\n# ///\nimport runxdemo\n')
    argv = [sys.executable, "-c", PROBE, "--find-links", runx.wheelhouse, "--no-index",
            str(block)]
    p = subprocess.run(argv, env=runx.env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "'tomllib'" in p.stderr or "'tomli'" in p.stderr, p.stderr[-2000:]
    runx.wait_clean()


def test_the_probe_sees_a_forbidden_import(runx):
    """Control: the probe does report a module imported on the way (an env
    file loads runx_env.runner.dotenv, which the plain warm path never does)."""
    env = runx.wheelhouse + "/../probe.env"
    with open(env, "w") as f:
        f.write("A=1\n")
    mods, _ = loaded(runx, "--env-file", env, "--with", "runxdemo", "python", "-c", "pass")
    assert "runx_env.runner.dotenv" in mods
    runx.wait_clean()


@pytest.mark.fast
def test_lock_metadata_is_the_json_that_json_writes():
    """The tree's lock metadata is written without json or _json (a shared
    library to load): it must be byte for byte what json.dumps writes, for
    any string a path or a command can hold (controls, non-ASCII, astral
    characters, the lone surrogates of undecodable file names)."""
    import json
    import random

    from runx_env.runner.trees import _to_json

    rng = random.Random(7)
    ranges = [(0, 128), (128, 0xD800), (0xDC80, 0xDD00), (0xE000, 0x10000), (0x10000, 0x110000)]
    samples = ["", "plain", 'q"b\\s', "\x00\x1f\x7f\t\n\r\b\f", "é 中文 😀", "\udcff\udc80"]
    samples += ["".join(chr(rng.randrange(*rng.choice(ranges))) for _ in range(rng.randrange(30)))
                for _ in range(2000)]
    for s in samples:
        value = {"k" + s: [s, 1, 2.5, None, True, False], "n": None}
        assert _to_json(value) == json.dumps(value)
