"""Issue 20.7: a clock set back, or a stamp from the future (a backup
restored from another machine): a timestamp in the future is treated as now
wherever runx compares ages (runx_env.reaper.store.age), and a stamp runx
owns is rewritten as now, so it ages from now. Before, an expiry stamp a
year ahead stopped expiry for a year."""

import marshal
import os
import sys
import time

from test_cache_expiry import age, builds, frozen

from runx_env.reaper import store

YEAR = 365 * 86400.0


def ahead(path: str, seconds: float = YEAR) -> None:
    t = time.time() + seconds
    os.utime(path, (t, t))


def test_age_treats_the_future_as_now():
    assert store.age(100.0, 160.0) == 60.0
    assert store.age(1e12, 160.0) == 0.0
    assert 0.0 <= store.age(time.time() + YEAR) < 1.0


def test_an_expiry_stamp_from_the_future_does_not_stop_expiry(cold):
    """The stamp a year ahead: the sweep takes it as an expiry that ran just
    now and rewrites it so; once it is older than the interval, layers
    unused for longer than RUNX_CACHE_MAX_AGE go. Before, expiry stopped
    until the clock caught up."""
    assert cold.run("--with", "runxdemo", "python", "-c", "pass").returncode == 0
    frozen(cold)
    cold.wait_clean()                        # its tree names the layer until it goes
    ((a,),) = builds(cold.cache).values()
    cold.env["RUNX_CACHE_MAX_AGE"] = "600"
    stamp = os.path.join(cold.cache, "expiry.stamp")
    open(stamp, "w").close()
    ahead(stamp)
    age(a, 31 * 86400)                       # unused for 31 days
    assert cold.run("gc", local=False).returncode == 0
    assert os.stat(stamp).st_mtime <= time.time(), "a stamp from the future is rewritten as now"
    assert os.path.isdir(a), "…and counts as an expiry that ran just now"
    t = time.time() - 601
    os.utime(stamp, (t, t))
    r = cold.run("gc", local=False)
    assert r.returncode == 0 and f"removed {a}" in r.stdout, r.stdout


def test_a_last_use_from_the_future_is_now_and_ages_from_now(cold):
    """A layer last used "a year from now": kept (it was used now, as far as
    anyone knows), its last use rewritten as now; `runx cache` says 0
    seconds, not a negative age."""
    assert cold.run("--with", "runxdemo", "python", "-c", "pass").returncode == 0
    frozen(cold)
    cold.wait_clean()                        # its tree names the layer until it goes
    ((a,),) = builds(cold.cache).values()
    manifest = os.path.join(a, "runx-layer.marshal")
    ahead(manifest)
    r = cold.run("cache", local=False)
    assert r.returncode == 0 and "oldest last use 0 seconds ago" in r.stdout, r.stdout
    cold.env["RUNX_CACHE_MAX_AGE"] = "600"
    r = cold.run("cache", "prune", local=False)
    assert r.returncode == 0 and a not in r.stdout, r.stdout
    assert os.path.isdir(a)
    assert os.stat(manifest).st_mtime <= time.time(), "the last use was not rewritten as now"
    age(a, 601)
    r = cold.run("cache", "prune", local=False)
    assert f"removed {a}" in r.stdout, r.stdout


def test_an_interpreter_answer_from_the_future_ages_from_now(cold):
    """An interpreter answer with atime and mtime a year ahead: relatime
    never moves such an atime, so the answer would never age: rewritten as
    now by the expiry, removed once unused for the max age."""
    exe = os.path.realpath(sys.executable)
    assert cold.run("-p", exe, "python", "-c", "pass", local=False).returncode == 0
    d = os.path.join(cold.cache, store.INTERPRETERS)
    (answer,) = [os.path.join(d, n) for n in os.listdir(d)]
    ahead(answer)
    cold.env["RUNX_CACHE_MAX_AGE"] = "600"
    assert cold.run("cache", "prune", local=False).returncode == 0
    st = os.stat(answer)
    assert max(st.st_atime, st.st_mtime) <= time.time(), "the answer's times were not healed"
    t = time.time() - 601
    os.utime(answer, (t, t))
    assert cold.run("cache", "prune", local=False).returncode == 0
    assert not os.path.exists(answer)


def test_a_layer_created_far_in_the_future_is_re_resolved(cold):
    """A layer whose frozen manifest says it was created a day from now
    could never age, so its unpinned requirements would never be
    re-resolved: it is rebuilt once. Within the slack (an NTP step) it is
    an ordinary hit."""
    assert cold.run("--with", "runxdemo", "python", "-c", "pass").returncode == 0
    frozen(cold)
    cold.wait_clean()                        # its tree names the layer until it goes
    ((a,),) = builds(cold.cache).values()
    fast = os.path.join(a, "runx-layer.marshal")

    def created(shift):
        with open(fast, "rb") as f:
            m = marshal.load(f)
        os.chmod(fast, 0o644)
        m["created"] = time.time() + shift
        with open(fast, "wb") as f:
            marshal.dump(m, f)
        os.chmod(fast, 0o444)

    created(60)
    r = cold.run("-v", "--with", "runxdemo", "python", "-c", "pass")
    assert r.returncode == 0 and "layer hit" in r.stderr, r.stderr
    created(86400)
    r = cold.run("-v", "--with", "runxdemo", "python", "-c", "pass")
    assert r.returncode == 0 and "layer miss" in r.stderr, r.stderr
    cold.wait_clean()
