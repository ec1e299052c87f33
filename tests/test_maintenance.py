"""`runx cache prune`/`clean` never remove a layer a live run or a build uses.
The scenarios themselves live in fault_scenarios.py (scripts/faults runs
them too); here the racy one is repeated, and the lock protocol's corner
is checked directly."""

import fcntl
import glob
import os
import threading

import pytest

import fault_scenarios as fs


@pytest.mark.parametrize("round", range(4))
def test_maintenance_loop_vs_runs_repeated(runx, round):
    """4 × 50 runs against prune + clean --force in a loop: a 1 % failure
    rate would show (1 - 0.99**200 = 87 %)."""
    fs.maintenance_loop_vs_50_runs(runx)


def test_lookup_won_after_a_rename_is_a_miss(runx, tmp_path):
    """A run that gets its shared lock only after maintenance renamed the
    build aside must not use it (the path no longer names its fd)."""
    from runx_env.reaper import store

    cache = str(tmp_path / "c")
    c = fs.Runx(runx.runtime, cache, runx.wheelhouse)
    assert c.run("--with", "runxdemo", "true").returncode == 0
    c.wait_clean()
    (current,) = glob.glob(os.path.join(cache, "layers", "*", "current"))
    kdir = os.path.dirname(current)
    build = os.path.join(kdir, os.readlink(current))
    fd = os.open(build, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)               # maintenance holds it
    got = []
    t = threading.Thread(target=lambda: got.append(
        store.lookup(cache, os.path.basename(kdir), allow_stale=True)))
    t.start()
    t.join(0.2)
    assert t.is_alive(), "the lookup waits for maintenance's exclusive lock"
    os.rename(build, os.path.join(kdir, ".tmp-pruned-x"))
    os.close(fd)
    t.join(10)
    assert got == [None]
    held = store.lookup(cache, os.path.basename(kdir), allow_stale=True)
    assert held is None                          # `current` names nothing now
