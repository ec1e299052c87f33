"""An untrusted cache is refused before anything in it is read: another
user must not be able to plant interpreter facts or a layer and have this
user's runx execute their program."""

import marshal
import os
import subprocess
import sys

import pytest

from conftest import RUNX, runtime_entries

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown to another user)")

NOBODY = 65534


def plant(cache: str, tmp_path, runx) -> tuple:
    """A cached interpreter answer for a harmless --python whose facts were
    rewritten to name a program that writes a marker (what another user
    could plant in a cache they can write to). Returns (the --python path,
    the marker)."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\nexec {sys.executable} \"$@\"\n")
    evil.chmod(0o755)
    python = os.path.realpath(sys.executable)
    env = dict(runx.env, RUNX_CACHE_DIR=cache)
    r = subprocess.run([RUNX, "-p", python, "python", "-c", "pass"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    runx.wait_clean()
    facts = os.path.join(cache, "interpreters")
    (entry,) = [os.path.join(facts, n) for n in os.listdir(facts) if n.startswith("find-")]
    with open(entry, "rb") as f:
        info = marshal.load(f)
    info["facts"]["executable"] = str(evil)
    with open(entry, "wb") as f:
        marshal.dump(info, f)
    # Planted, but in a private cache: believed (the attack is real).
    return python, marker


def refused(r, runx, marker, what: str):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("runx: error: "), r.stderr
    assert what in lines[0], lines[0]
    assert not marker.exists(), "the planted program ran"
    assert not [e for e in runtime_entries(runx.runtime)], runtime_entries(runx.runtime)


@pytest.mark.parametrize("how", ["world-writable", "other-owner", "facts-dir", "facts-file"])
@pytest.mark.parametrize("reqs", [[], ["--with", "runxdemo"]], ids=["bare", "with"])
def test_planted_interpreter_facts_never_run(runx, tmp_path, how, reqs):
    cache = str(tmp_path / "evil-cache")
    os.makedirs(cache, mode=0o700)
    fake, marker = plant(cache, tmp_path, runx)
    facts = os.path.join(cache, "interpreters")
    (entry,) = [os.path.join(facts, n) for n in os.listdir(facts) if n.startswith("find-")]
    os.chmod(facts, 0o700)
    os.chmod(entry, 0o600)
    target = {"world-writable": cache, "other-owner": cache,
              "facts-dir": facts, "facts-file": entry}[how]
    if how == "other-owner":
        os.chown(target, NOBODY, NOBODY)
    elif how == "facts-file":
        os.chown(target, NOBODY, NOBODY)
    else:
        os.chmod(target, 0o777)
    runx.env["RUNX_CACHE_DIR"] = cache
    r = runx.run("-p", fake, *reqs, "python", "-c", "pass")
    refused(r, runx, marker, target)


@pytest.mark.parametrize("command", [["gc"], ["ls"], ["cache", "prune"], ["cache", "clean"],
                                     ["--with", "runxdemo", "python", "-c", "pass"],
                                     ["python", "-c", "pass"]])
def test_world_writable_cache_refused_by_every_command(runx, tmp_path, command):
    cache = str(tmp_path / "open-cache")
    os.makedirs(os.path.join(cache, "layers"))
    os.chmod(cache, 0o777)
    runx.env["RUNX_CACHE_DIR"] = cache
    r = runx.run(*command, local=command[0] not in ("gc", "ls", "cache"))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.splitlines() == [
        f"runx: error: {cache} is writable by other users (mode 777) "
        f"(run 'chmod go-w {cache}', after checking what is in it)"], r.stderr
    assert r.stdout == ""


def test_a_planted_answer_in_a_private_cache_is_believed(runx, tmp_path):
    """The control for the refusals above: the planted answer is what a run
    would exec, so only the ownership and mode checks stand in the way."""
    cache = str(tmp_path / "own-cache")
    os.makedirs(cache, mode=0o700)
    python, marker = plant(cache, tmp_path, runx)
    runx.env["RUNX_CACHE_DIR"] = cache
    r = runx.run("-p", python, "python", "-c", "pass")
    assert r.returncode == 0, r.stderr
    assert marker.exists(), "the planted facts were not used: the refusal tests prove nothing"
