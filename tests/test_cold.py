"""The cold run (issue 24.1): a first run of a new set pays only for what
``uv run --with`` pays. What it must not do, each a process the cold path
used to spawn that uv run does not: uv querying the layer's freshly written
interpreter (uv caches interpreter facts by path, and every build's path is
new). scripts/bench measures the time; these tests pin the causes."""

import os
import re
import shutil
import subprocess

import pytest


def _strace(c, tmp_path, *args) -> list:
    """``runx ARGS`` under ``strace -f``: ([(pid, execve line)], {pid: parent})
    for every execve, parents (threads' too) from the fork/clone lines."""
    if not shutil.which("strace"):
        pytest.skip("strace not installed")
    log = tmp_path / "strace.log"
    r = subprocess.run(["strace", "-f", "-qq", "-s", "300", "-e",
                        "trace=execve,fork,vfork,clone,clone3", "-o", str(log), *c.argv(*args)],
                       env=c.env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0 and "ptrace" in r.stderr:
        pytest.skip(f"strace cannot trace here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    parent, execs = {}, []
    for line in log.read_text().splitlines():
        pid, _, rest = line.partition(" ")
        rest = rest.lstrip()        # strace pads the pid column: "5535  execve(...)"
        m = re.match(r"(?:<\.\.\. )?(?:clone3?|v?fork)\b.*= (\d+)$", rest)
        if m:
            parent[int(m.group(1))] = int(pid)
        elif rest.startswith("execve(") and " = -1 " not in rest:     # done or unfinished
            execs.append((int(pid), rest))
    assert execs, f"no execve in strace's log: {log.read_text()[:3000]!r}"
    return execs, parent


def _below(pid: int, root: int, parent: dict) -> bool:
    while pid != root and pid in parent:
        pid = parent[pid]
    return pid == root


def test_cold_build_runs_nothing_from_the_new_layer(cold, tmp_path):
    """uv installs into the new layer without running its interpreter: the
    layer is filled as a --prefix of the base interpreter, whose facts uv
    has cached. Before, `uv pip install --python LAYER/bin/python` ran that
    python to learn what it already knew (35-40 ms of every cold run)."""
    execs, parent = _strace(cold, tmp_path, "--with", "runxdemo", "runxdemo")
    installs = [pid for pid, call in execs if '"pip", "install"' in call]
    assert len(installs) == 1, execs
    layers = os.path.join(cold.cache, "layers")
    ran = [call for pid, call in execs
           if pid != installs[0] and _below(pid, installs[0], parent)
           and layers in call.split(",")[0]]
    assert not ran, f"uv ran the layer's interpreter while installing: {ran}"
    # The layer still works as a venv: its console script runs, from the tree.
    r = cold.run("--with", "runxdemo", "runxdemo")
    assert r.returncode == 0 and r.stdout.startswith("runxdemo 1.0 "), r.stderr
    cold.wait_clean()


def test_cold_run_finds_uv_without_importing_its_finder(cold, tmp_path):
    """uv's binary beside runx's interpreter is found with one stat: the uv
    package's find_uv_bin imports sysconfig, and building its list of
    places imports fnmatch (and re): about 5 ms of every cold run."""
    env = dict(cold.env, PYTHONPROFILEIMPORTTIME="1")
    env.pop("RUNX_UV", None)
    r = subprocess.run(cold.argv("--with", "runxdemo", "true"), env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "installed 1 package" in r.stderr, "a cold run"
    mods = {ln.rsplit("|", 1)[1].strip() for ln in r.stderr.splitlines()
            if ln.startswith("import time:") and "|" in ln}
    assert "runx_env.runner.uv" in mods
    assert not mods & {"sysconfig", "fnmatch", "uv._find_uv", "shutil"}, \
        sorted(mods & {"sysconfig", "fnmatch", "uv._find_uv", "shutil"})
    cold.wait_clean()
