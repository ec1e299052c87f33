"""An untrusted cache is refused before anything in it is read (issue 10,
defect 5): another user must not be able to plant interpreter facts or a
layer and have this user's runx execute their program."""

import hashlib
import json
import os
import sys

import pytest

from conftest import runtime_entries

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown to another user)")

NOBODY = 65534


def plant(cache: str, tmp_path) -> tuple:
    """Interpreter facts for a harmless-looking --python that point at a
    program writing a marker. Returns (the --python path, the marker)."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\nexec {sys.executable} \"$@\"\n")
    evil.chmod(0o755)
    fake = tmp_path / "python3-fake"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    real = os.path.realpath(fake)
    st = os.stat(real)
    key = hashlib.sha256(f"{real}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:32]
    facts = os.path.join(cache, "interpreters")
    os.makedirs(facts, exist_ok=True)
    v = sys.version_info
    with open(os.path.join(facts, key + ".json"), "w") as f:
        json.dump({"executable": str(evil), "version": f"{v[0]}.{v[1]}.{v[2]}",
                   "implementation": sys.implementation.name,
                   "abiflags": getattr(sys, "abiflags", ""),
                   "platform": sys.platform + "-" + os.uname().machine}, f)
    return str(fake), marker


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
    fake, marker = plant(cache, tmp_path)
    facts = os.path.join(cache, "interpreters")
    entry = os.path.join(facts, os.listdir(facts)[0])
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
