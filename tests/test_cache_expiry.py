"""The cache bounds itself: a layer nobody used for RUNX_CACHE_MAX_AGE is
removed by the reapers' sweep (at most once per stamp interval) and by
`runx cache prune`; a layer in use or being built stays; nothing empty is
left behind."""

import fcntl
import os
import subprocess
import time

import pytest

from conftest import wait_until


@pytest.fixture
def cold(runx, tmp_path):
    runx.cache = str(tmp_path / "cache")
    runx.env["RUNX_CACHE_DIR"] = runx.cache
    return runx


def builds(cache: str) -> dict:
    """{key: [build, ...]} of the published builds."""
    from runx_env.reaper import store

    out: dict = {}
    for b in store.builds(cache):
        out.setdefault(b.key, []).append(b.path)
    return out


def frozen(cold):
    """Every build compiled and frozen: the finisher rewrites the manifest
    (its mtime, the last use) and holds the key's lock while at it."""
    import json

    for ps in builds(cold.cache).values():
        for p in ps:
            wait_until(lambda: json.load(open(os.path.join(p, "runx-layer.json")))["compiled"]
                       and not os.stat(os.path.join(p, "runx-layer.marshal")).st_mode & 0o222,
                       30, f"{p} to be compiled and frozen")


def age(build_path: str, seconds: float) -> None:
    """Make a build look last used ``seconds`` ago (its manifest is 0444
    once frozen: utime works for the owner all the same)."""
    t = time.time() - seconds
    os.utime(os.path.join(build_path, "runx-layer.marshal"), (t, t))


def empty_dirs(cache: str) -> list:
    """Empty directories in the cache, outside the builds themselves."""
    out = []
    for d, dirs, files in os.walk(cache):
        if not dirs and not files:
            out.append(d)
        # do not descend into builds: a wheel may ship an empty directory
        dirs[:] = [x for x in dirs if not (os.path.basename(d) and
                                           os.path.dirname(d) == os.path.join(cache, "layers"))]
    return out


def start_holder(cold, *spec):
    p = cold.popen(*spec, "runxdemo", "sleep", "60", stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().startswith("ready"), "the holder run did not start"
    return p


def test_unused_layer_expires_in_sweep_while_layer_in_use_survives(cold):
    assert cold.run("--with", "runxdemo", "runxdemo").returncode == 0          # A: unused
    frozen(cold)
    ((a,),) = builds(cold.cache).values()
    holder = start_holder(cold, "--with", "runxdemo==1.0")                     # B: in use
    try:
        (b,) = [p for ps in builds(cold.cache).values() for p in ps if p != a]
        frozen(cold)
        age(a, 3600)
        age(b, 3600)    # B is as old: only its run's hold keeps it
        # The first runs' reapers expired (nothing) and left the stamp: an
        # interval later, any reaper's sweep expires: this run's (layer C).
        stamp = os.path.join(cold.cache, "expiry.stamp")
        wait_until(lambda: os.path.exists(stamp), 30, "the first sweep's expiry stamp")
        t = time.time() - 601
        os.utime(stamp, (t, t))
        cold.env["RUNX_CACHE_MAX_AGE"] = "600"
        assert cold.run("--with", "runxdemo>=1", "runxdemo").returncode == 0
        # The build is renamed aside, removed, then its key's directory goes.
        wait_until(lambda: not os.path.exists(os.path.dirname(a)), 30,
                   "the sweep to expire the unused layer, its key's directory too")
        assert os.path.isdir(b), "a layer in use must survive its expiry"
        assert time.time() - os.stat(stamp).st_mtime < 600, "the expiry renews its stamp"
        wait_until(lambda: not empty_dirs(cold.cache), 30,
                   f"the sweep to leave no empty directory: {empty_dirs(cold.cache)}")
    finally:
        holder.kill()
        holder.wait()
    cold.wait_clean()


def test_expiry_runs_at_most_once_per_interval(cold):
    """Within the interval the stamp says "done": an old layer waits."""
    assert cold.run("--with", "runxdemo", "runxdemo").returncode == 0
    cold.wait_clean()
    frozen(cold)
    ((a,),) = builds(cold.cache).values()
    cold.env["RUNX_CACHE_MAX_AGE"] = "600"
    open(os.path.join(cold.cache, "expiry.stamp"), "w").close()    # expired just now
    age(a, 3600)
    assert cold.run("gc", local=False).returncode == 0
    assert os.path.isdir(a), "expiry ran again within its interval"
    t = time.time() - 601            # min(1 h, max age) ago: due
    os.utime(os.path.join(cold.cache, "expiry.stamp"), (t, t))
    r = cold.run("gc", local=False)
    assert r.returncode == 0 and f"removed {a}" in r.stdout, r.stdout
    assert not os.path.exists(os.path.join(cold.cache, "layers")), "nothing empty is left"


def test_layer_being_built_is_not_expired(cold):
    """The key's lock (a builder, a byte-compile) keeps the key whole."""
    assert cold.run("--with", "runxdemo", "runxdemo").returncode == 0
    cold.wait_clean()
    frozen(cold)
    ((a,),) = builds(cold.cache).values()
    age(a, 3600)
    fd = os.open(os.path.join(os.path.dirname(a), "lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        cold.env["RUNX_CACHE_MAX_AGE"] = "600"
        r = cold.run("cache", "prune", local=False)
        assert r.returncode == 0 and os.path.isdir(a), r.stdout
        assert "in progress" in r.stdout, r.stdout
    finally:
        os.close(fd)
    r = cold.run("cache", "prune", local=False)
    assert f"removed {a}" in r.stdout, r.stdout


def test_prune_without_arguments_expires_and_leaves_nothing_empty(cold, tmp_path):
    """`runx cache prune`: unused layers, superseded builds, interpreter
    answers and script settings nothing uses any more; no empty directory."""
    script = tmp_path / "s.py"
    script.write_text("# /// script\n# dependencies = ['runxdemo']\n"
                      "# [tool.uv]\n# exclude-newer = '2030-01-01T00:00:00Z'\n# ///\n"
                      "import runxdemo\n")
    assert cold.run(str(script)).returncode == 0, "a script with [tool.uv] settings"
    import sys
    assert cold.run("--python", sys.executable, "--with", "runxdemo", "true").returncode == 0
    cold.wait_clean()
    frozen(cold)
    files = [os.path.join(d, f) for sub in ("interpreters", "script-settings")
             for d, _, fs in os.walk(os.path.join(cold.cache, sub)) for f in fs]
    assert files, "the runs left an interpreter answer and a settings file"
    r = cold.run("cache", "prune", local=False)
    assert r.returncode == 0 and all(os.path.isdir(p) for ps in builds(cold.cache).values()
                                     for p in ps), "recently used layers stay"
    assert all(os.path.exists(f) for f in files), "recently used files stay"
    past = time.time() - 3600
    for ps in builds(cold.cache).values():
        for p in ps:
            age(p, 3600)
    for f in files:
        os.utime(f, (past, past))
    cold.env["RUNX_CACHE_MAX_AGE"] = "600"
    r = cold.run("cache", "prune", local=False)
    assert r.returncode == 0, r.stderr
    assert builds(cold.cache) == {}, r.stdout
    assert not any(os.path.exists(f) for f in files), r.stdout
    assert not empty_dirs(cold.cache), empty_dirs(cold.cache)
    # runx's own byte-code (src/boot.py) stays: the prune itself just used it.
    left = sorted(set(os.listdir(cold.cache)) - {"self-bytecode"})
    assert left in ([], ["expiry.stamp"]), os.listdir(cold.cache)


def test_runx_own_bytecode_not_read_for_max_age_is_removed(cold):
    """<cache>/self-bytecode (src/boot.py) holds runx's own modules' .pyc for
    installs without any: one not read for RUNX_CACHE_MAX_AGE goes."""
    assert cold.run("--with", "runxdemo", "true").returncode == 0
    cold.wait_clean()
    store = os.path.join(cold.cache, "self-bytecode")
    os.makedirs(store, mode=0o700, exist_ok=True)
    old, new = os.path.join(store, "0" * 32 + ".pyc"), os.path.join(store, "1" * 32 + ".pyc")
    for p in (old, new):
        open(p, "wb").close()
    past = time.time() - 3600
    os.utime(old, (past, past))
    cold.env["RUNX_CACHE_MAX_AGE"] = "600"
    r = cold.run("cache", "prune", local=False)
    assert r.returncode == 0 and f"removed {old}" in r.stdout, r.stdout
    assert not os.path.exists(old) and os.path.exists(new)


def test_last_use_is_recorded_on_a_frozen_layer(cold):
    """Warm runs record their use on the read-only manifest."""

    assert cold.run("--with", "runxdemo", "runxdemo").returncode == 0
    ((a,),) = builds(cold.cache).values()
    frozen(cold)
    cold.wait_clean()
    assert not os.stat(os.path.join(a, "runx-layer.marshal")).st_mode & 0o222
    age(a, 3600)
    assert cold.run("--with", "runxdemo", "runxdemo").returncode == 0
    assert time.time() - os.stat(os.path.join(a, "runx-layer.marshal")).st_mtime < 600
    cold.wait_clean()


def _bytes(text: str) -> float:
    n, unit = text.split()
    return float(n) * {"B": 1, "KiB": 1024, "MiB": 1 << 20, "GiB": 1 << 30}[unit]


def summary(cold) -> dict:
    import re

    r = cold.run("cache", local=False)
    assert r.returncode == 0 and not r.stderr, r.stderr
    out = r.stdout
    m = re.search(r"size:\s+(\S+ \S+) on disk .*?, of which (\S+ \S+) shared with uv's cache, "
                  r"(\S+ \S+) runx's own\nlayers: (\d+) builds? of (\d+) environments?"
                  r"(?:; oldest last use (.*) ago)?\nprune:\s+would free (\S+ \S+) ", out)
    assert m and out.startswith(f"cache:  {cold.cache}\n"), out
    return {"total": _bytes(m[1]), "shared": _bytes(m[2]), "own": _bytes(m[3]),
            "builds": int(m[4]), "keys": int(m[5]), "oldest": m[6], "free": _bytes(m[7])}


def test_cache_summary_is_honest_about_hardlinks(cold):
    """`runx cache`: where, how big (each file once; what is shared with
    uv's cache), how many layers, the oldest last use, what prune frees."""
    assert summary(cold)["builds"] == 0, "an empty (even missing) cache is summarized"
    assert not os.path.exists(cold.cache), "the summary creates nothing"
    assert cold.run("--with", "runxdemo", "true").returncode == 0
    cold.wait_clean()
    frozen(cold)
    ((a,),) = builds(cold.cache).values()
    (src,) = [os.path.join(d, "__init__.py") for d, _, _ in os.walk(a)
              if d.endswith("site-packages/runxdemo")]
    assert os.stat(src).st_nlink > 1, "precondition: uv hardlinked the layer from its cache"
    s = summary(cold)
    assert (s["builds"], s["keys"], s["free"]) == (1, 1, 0), s
    assert s["oldest"] in ("0 seconds", "1 seconds", "2 seconds"), s
    assert s["shared"] > 0 and abs(s["shared"] + s["own"] - s["total"]) < 2048, s
    # du counts each hardlinked file once too: the two must agree.
    du = int(subprocess.run(["du", "-sB1", cold.cache], capture_output=True, text=True,
                            check=True).stdout.split()[0])
    assert abs(du - s["total"]) <= max(8192, du * 0.06), (du, s)

    assert cold.run("--refresh", "--with", "runxdemo", "true").returncode == 0
    cold.wait_clean()
    frozen(cold)
    s2 = summary(cold)
    assert (s2["builds"], s2["keys"]) == (2, 1), s2
    assert s2["free"] > 0, "the superseded build is prune's"
    assert s2["free"] <= s2["own"], "files shared with uv's cache are not freed by prune"
    age(a, 86400 * 3)
    assert summary(cold)["oldest"] == "3 days"
    r = cold.run("cache", "prune", local=False)
    assert f"removed {a}" in r.stdout, r.stdout
    s3 = summary(cold)
    assert (s3["builds"], s3["free"]) == (1, 0), s3
    assert s3["total"] <= s2["total"] - s2["free"] + 8192, (s2, s3)


def test_expiry_in_every_sweep_never_breaks_a_run(cold):
    """RUNX_CACHE_MAX_AGE=0: every reaper's sweep expires every layer it can
    while other runs look layers up, build them and run on them. 60 runs, 10
    at a time, two specs: each one must run its payload from its layer."""
    cold.env["RUNX_CACHE_MAX_AGE"] = "0"
    specs = [("--with", "runxdemo"), ("--with", "runxdemo==1.0")]
    procs, failures = [], []
    for i in range(60):
        procs.append(cold.popen(*specs[i % 2], "runxdemo", stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True))
        if len(procs) >= 10:
            p = procs.pop(0)
            out, err = p.communicate(timeout=120)
            if p.returncode != 0 or not out.startswith("runxdemo 1.0 "):
                failures.append((p.returncode, out, err))
    for p in procs:
        out, err = p.communicate(timeout=120)
        if p.returncode != 0 or not out.startswith("runxdemo 1.0 "):
            failures.append((p.returncode, out, err))
    assert not failures, failures[:3]
    cold.wait_clean(60)
    # The last reapers expire what nobody holds any more: nothing half-built
    # or empty is left once they are done (a reaper that let its tree go is
    # no longer counted by wait_clean while it sweeps: wait for the result).
    from runx_env.reaper import store

    wait_until(lambda: not store.half_built(cold.cache) and not empty_dirs(cold.cache), 30,
               f"the sweeps to finish: {store.half_built(cold.cache)} "
               f"{empty_dirs(cold.cache)}")


def test_cache_clean_empties_the_cache_and_says_so(cold):
    """Issue 22.8: `runx cache clean` left bytecode/ behind, and `runx cache`
    then said "0 builds of 0 environments" at 6 MiB. Now the byte-code store
    goes too, clean says what it removed and what the cache holds, and the
    summary agrees; "1 second", not "1 seconds"."""
    from runx_env.runner.commands import _ago

    assert (_ago(1), _ago(0), _ago(61), _ago(3600)) == (
        "1 second", "0 seconds", "1 minute", "1 hour")
    assert cold.run("--with", "runxdemo", "true").returncode == 0
    cold.wait_clean()
    frozen(cold)
    assert os.listdir(os.path.join(cold.cache, "bytecode")), "precondition: shared byte-code"
    r = cold.run("cache", "clean", local=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("removed 1 layer and the shared byte-code; "), r.stdout
    assert not os.path.exists(os.path.join(cold.cache, "bytecode"))
    s = summary(cold)
    assert (s["builds"], s["keys"]) == (0, 0) and s["total"] < 64 * 1024, s
    r = cold.run("cache", "clean", local=False)
    assert r.stdout == "nothing to remove\n", r.stdout
