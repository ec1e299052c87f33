"""The fault matrix: every way a user can kill or starve a run, and what must
hold afterwards — no leaked tree or partial environment, no early removal.

Used by tests/test_faults.py (each scenario once) and scripts/faults (each
scenario N times, as a table). A scenario raises Leak or EarlyRemoval for
the two promises, AssertionError for anything else.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from conftest import (Runx, alive, build_wheel, owners_gone, proc_state, reapers,
                      runtime_entries, the_reaper)


class Leak(AssertionError):
    pass


class EarlyRemoval(AssertionError):
    pass


def poll(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)
    return True


def partial_layers(cache: str) -> list:
    root = os.path.join(cache, "layers")
    out = []
    for k in os.listdir(root) if os.path.isdir(root) else []:
        out += [f"{k}/{n}" for n in os.listdir(os.path.join(root, k)) if n.startswith(".tmp-")]
    return out


def settled(runx: Runx, timeout: float = 15.0) -> None:
    """Nothing left: no tree, no lock, no live reaper, no half-built layer."""
    ok = poll(lambda: not runtime_entries(runx.runtime) and not reapers(runx.runtime), timeout)
    left = runtime_entries(runx.runtime) + partial_layers(runx.cache)
    if not ok or left:
        raise Leak(f"left behind: {left}, reapers {reapers(runx.runtime)}")


def scratch(runx: Runx, prefix: str) -> str:
    """A directory beside the run's runtime dir: cleaned with it, never in /tmp."""
    parent = os.path.dirname(runx.runtime)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=parent)


def fresh(runx: Runx) -> Runx:
    """The same runtime, a cold cache of its own (forces a layer build)."""
    return Runx(runx.runtime, scratch(runx, "cold-cache-"), runx.wheelhouse)


def stopped(pid: int) -> bool:
    return proc_state(pid) == "T"


def gc(runx: Runx) -> None:
    r = runx.run("gc", local=False)
    assert r.returncode == 0, r.stderr


# A payload that proves its tree still exists when it ends (else exit 42).
CHECK_TREE = ("import os, sys, time; time.sleep(float(sys.argv[1])); "
              "sys.exit(0 if os.path.isdir(os.environ['RUNX_ENV'] + '/bin') else 42)")


def start_payload(runx: Runx, seconds: float, *extra) -> subprocess.Popen:
    return runx.popen(*extra, "python", "-c", CHECK_TREE, str(seconds),
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_payload(p: subprocess.Popen, expect: int = 0) -> None:
    p.wait(timeout=60)
    if p.returncode == 42:
        raise EarlyRemoval("the payload's tree vanished while it ran")
    assert p.returncode == expect, (p.returncode, p.stderr.read() if p.stderr else "")


# --- scenarios -----------------------------------------------------------------

def payload_exits_0(runx):
    finish_payload(start_payload(runx, 0, "--with", "runxdemo"))
    settled(runx)


def payload_exits_3(runx):
    r = runx.run("--with", "runxdemo", "runxdemo", "exit", "3")
    assert r.returncode == 3
    settled(runx)


def payload_sigkilled(runx):
    p = start_payload(runx, 30)
    the_reaper(runx.runtime)
    p.kill()
    p.wait()
    settled(runx)


def default_signals() -> None:
    """preexec: the signals the scenarios send at their default, whatever
    the caller of the suite ignores (`nohup`, `cmd &` ignore HUP, INT, QUIT)."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1,
                signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)


def _stopped_at(run: Runx, point: str, code: str) -> subprocess.Popen:
    """``runx --with runxdemo python -c CODE`` with ``run``'s directories,
    stopped (SIGSTOP) at fault point ``point``."""
    stop = Runx(run.runtime, run.cache, run.wheelhouse)
    stop.env["RUNX_FAULT_STOP"] = point
    p = stop.popen("--with", "runxdemo", "python", "-c", code,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=default_signals)
    assert poll(lambda: stopped(p.pid), 60), f"runx never reached fault point {point}"
    return p


def _killed_at(runx, point: str, *, needs_gc: bool):
    cold = fresh(runx)
    p = _stopped_at(cold, point, "pass")
    p.kill()
    p.wait()
    if needs_gc:
        gc(cold)
    settled(cold)


def runx_killed_during_install(runx):
    _killed_at(runx, "install", needs_gc=True)


def runx_killed_after_tree(runx):
    _killed_at(runx, "tree", needs_gc=True)


def runx_killed_before_exec(runx):
    # The reaper already runs: it sees the runner die and removes the tree.
    _killed_at(runx, "exec", needs_gc=False)


def uv_dies_with_runx(runx):
    """A runx killed mid-install takes its uv with it (no orphan writing on)."""
    cold = fresh(runx)
    pidfile = os.path.join(cold.cache, "uv.pid")
    fake = os.path.join(cold.cache, "slow-uv")
    with open(fake, "w") as f:
        f.write(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n")
    os.chmod(fake, 0o755)
    cold.env["RUNX_UV"] = fake
    p = cold.popen("--with", "runxdemo", "python", "-c", "pass",
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert poll(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 30)
    uv_pid = int(open(pidfile).read())
    p.kill()
    p.wait()
    assert poll(lambda: not alive(uv_pid), 10), "uv outlived the runx that started it"
    gc(cold)
    settled(cold)


def reaper_killed_mid_run(runx):
    p = start_payload(runx, 1.0, "--with", "runxdemo")
    os.kill(the_reaper(runx.runtime), signal.SIGKILL)
    finish_payload(p)                      # the payload is unaffected
    assert poll(lambda: not reapers(runx.runtime), 10)
    assert runx.trees(), "without its reaper the tree stays until a sweep"
    gc(runx)
    settled(runx)


def reaper_killed_then_adopted(runx):
    """The next run's reaper adopts the orphan and removes it once its payload ends."""
    p = start_payload(runx, 2.0, "--with", "runxdemo")
    os.kill(the_reaper(runx.runtime), signal.SIGKILL)
    assert poll(lambda: not reapers(runx.runtime), 10)
    r = runx.run("python", "-c", "pass")      # its reaper sweeps, finds the orphan in use
    assert r.returncode == 0
    finish_payload(p)
    settled(runx)


def reaper_sigterm_mid_run(runx):
    """systemd's KillMode=control-group: SIGTERM must not lose the cleanup."""
    p = start_payload(runx, 1.0)
    reaper = the_reaper(runx.runtime)
    os.kill(reaper, signal.SIGTERM)
    os.kill(reaper, signal.SIGHUP)
    os.kill(reaper, signal.SIGINT)
    finish_payload(p)
    settled(runx)


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read()
    except OSError:
        return b""


def reaper_signalled_while_loading(runx):
    """The reaper loads its own code after the fork (handoff.py): a SIGTERM,
    SIGHUP or SIGINT sent in that millisecond, before it ignores them, must
    not kill it (they are blocked until then), or the tree would stay."""
    run = Runx(runx.runtime, runx.cache, runx.wheelhouse)
    run.env["RUNX_FAULT_STOP"] = "reaper"
    p = run.popen("--with", "runxdemo", "python", "-c", "import time; time.sleep(0.3)",
                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    mark = b"RUNX_FAULT_STOP=reaper\0"

    def stopped_reaper():
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != p.pid and stopped(int(name)) \
                    and mark in _environ(int(name)):
                return int(name)
        return None

    assert poll(lambda: stopped_reaper() is not None, 60), "the reaper never stopped"
    reaper = stopped_reaper()
    assert reaper is not None
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR1):
        os.kill(reaper, sig)
    os.kill(reaper, signal.SIGCONT)
    finish_payload(p)
    settled(runx)


DAEMON = r"""
import os, sys, time, subprocess
out, trigger = sys.argv[1], sys.argv[2]
if os.fork() == 0:
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if os.fork() == 0:
        while not os.path.exists(trigger):
            time.sleep(0.02)
        # re-execute the environment's interpreter and import a requested package
        r = subprocess.run([sys.executable, "-c", "import runxdemo; print(runxdemo.VERSION)"],
                           capture_output=True, text=True)
        with open(out + ".tmp", "w") as f:
            f.write(r.stdout.strip() or r.stderr)
        os.rename(out + ".tmp", out)
        os._exit(0)
    os._exit(0)
os.wait()
"""


def daemonized_grandchild(runx):
    tmp = scratch(runx, "daemon-")
    out, trigger = os.path.join(tmp, "out"), os.path.join(tmp, "go")
    try:
        r = runx.run("--with", "runxdemo", "python", "-c", DAEMON, out, trigger)
        assert r.returncode == 0, r.stderr
        (tree,) = runx.trees()
        time.sleep(0.2)   # give a wrong reaper time to remove it: it must not
        if not runx.trees():
            raise EarlyRemoval("tree removed while a daemonized grandchild still used it")
    finally:
        open(trigger, "w").close()     # never leave the grandchild waiting
    assert poll(lambda: os.path.exists(out), 30), "the grandchild never reported"
    result = open(out).read()
    if result != "1.0":
        raise EarlyRemoval(f"grandchild could not use the environment: {result}")
    settled(runx)


def disk_full(runx):
    """A 3 MiB tmpfs as cache and runtime: a 6 MiB wheel cannot fit."""
    if os.geteuid() != 0:
        raise AssertionError("disk_full needs root (to mount a tmpfs)")
    mnt = scratch(runx, "full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", mnt], check=True)
    try:
        wheels = scratch(runx, "big-wheels-")
        build_wheel(wheels, "runxbig", "1.0",
                    files={"runxbig/__init__.py": "",
                           "runxbig/blob.py": "B = %r\n" % os.urandom(3 << 20).hex()},
                    scripts={})
        full = Runx(os.path.join(mnt, "run"), os.path.join(mnt, "cache"), wheels)
        full.env["UV_CACHE_DIR"] = os.path.join(mnt, "uv")   # uv's copy must not fit either
        r = full.run("--with", "runxbig", "python", "-c", "import runxbig")
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert r.stderr.strip().splitlines()[-1].startswith("runx: error:"), r.stderr
        assert "Traceback" not in r.stderr
        settled(full)
    finally:
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)


def runtime_full_while_writing_the_tree(runx):
    """A runtime dir with inodes for the lock and the tree's directory but
    not for its entries: a --tree dir tree is written after the reaper is
    forked, so the runner fails with one line and the reaper removes the
    half-written tree; with --keep it is written before (and discarded by
    the runner): nothing is kept half-written."""
    if os.geteuid() != 0:
        raise AssertionError("this scenario needs root (to mount a tmpfs)")
    runx.run("--with", "runxdemo", "python", "-c", "pass")      # a warm layer
    mnt = scratch(runx, "inodes-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "nr_inodes=8,mode=0700", "tmpfs", mnt],
                   check=True)
    try:
        full = Runx(os.path.join(mnt, "run"), runx.cache, runx.wheelhouse)
        for extra in ([], ["--keep"]):
            r = full.run(*extra, "--with", "runxdemo", "python", "-c", "print('ran')")
            assert r.returncode == 1 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
            assert r.stderr.startswith("runx: error: cannot create the environment in ")
            assert "No space left on device" in r.stderr and r.stderr.count("\n") == 1
            settled(full)
    finally:
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)


def unresolvable(runx):
    r = runx.run("--with", "runxdemo==404", "python", "-c", "pass")
    assert r.returncode == 1 and "runx: error:" in r.stderr
    settled(runx)


def concurrent_32(runx):
    cold = fresh(runx)
    procs = [cold.popen("--with", "runxdemo", "runxdemo", "exit", "0",
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(32)]
    for p in procs:
        p.wait(timeout=180)
        assert p.returncode == 0, p.stderr.read()
    builds = [n for k in os.listdir(os.path.join(cold.cache, "layers"))
              for n in os.listdir(os.path.join(cold.cache, "layers", k))
              if n not in ("lock", "current")]
    assert len(builds) == 1, f"one spec must be built once, got {builds}"
    settled(cold, 60)


def sequential_200(runx):
    for _ in range(200):
        r = runx.run("--with", "runxdemo", "runxdemo", "exit", "0")
        assert r.returncode == 0, r.stderr
    settled(runx, 60)


# --- maintenance against runs and builds --------------------------------------

IMPORTS = "import runxdemo, sys; sys.exit(0 if runxdemo.VERSION else 1)"


def maintain(runx: Runx, *, force_clean: bool = True) -> None:
    """Everything maintenance can do, each must leave live runs and builds alone."""
    for args in (("cache", "prune", "--older-than", "0"), ("cache", "prune"),
                 ("cache", "clean", "--force") if force_clean else ("cache", "clean")):
        r = runx.run(*args, local=False)
        assert r.returncode in (0, 2), (args, r.returncode, r.stderr)
        assert not r.stderr or r.stderr.startswith("runx: error: "), r.stderr


def _maintenance_at(runx, point: str, cold_cache: bool):
    run = fresh(runx)
    if not cold_cache:
        r = run.run("--with", "runxdemo", "python", "-c", IMPORTS)
        assert r.returncode == 0, r.stderr
    p = _stopped_at(run, point, IMPORTS)
    maintain(run)
    os.kill(p.pid, signal.SIGCONT)
    finish_payload(p)
    settled(run)


def maintenance_before_exec(runx):
    """prune/clean between the layer's lookup and the exec (a warm run)."""
    _maintenance_at(runx, "tree", cold_cache=False)


def maintenance_during_build(runx):
    """prune/clean while a cold build holds the key's lock and its .tmp-*."""
    _maintenance_at(runx, "install", cold_cache=True)


def maintenance_spares_kept_tree(runx):
    run = fresh(runx)
    r = run.run("--keep", "--with", "runxdemo", "sh", "-c", 'echo "$RUNX_ENV"')
    assert r.returncode == 0, r.stderr
    tree = r.stdout.strip()
    assert poll(lambda: owners_gone(run.runtime), 15)
    maintain(run)
    r = subprocess.run([os.path.join(tree, "bin", "python"), "-c", IMPORTS],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise EarlyRemoval(f"a kept tree lost its layer: {r.stderr.strip()[-200:]}")
    assert run.run("gc", "--kept", local=False).returncode == 0
    settled(run)


def maintenance_loop_vs_50_runs(runx):
    """prune + clean in a tight loop while 50 runs (10 at a time) start, build,
    import from their layer and exit: no payload may fail."""
    import threading

    run = fresh(runx)
    stop = threading.Event()
    errors: list = []

    def loop():
        while not stop.is_set():
            try:
                maintain(run)
            except AssertionError as e:
                errors.append(e)

    t = threading.Thread(target=loop)
    t.start()
    try:
        for _ in range(5):
            procs = [run.popen("--with", "runxdemo", "python", "-c", IMPORTS,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                     for _ in range(10)]
            for p in procs:
                p.wait(timeout=180)
                err = p.stderr.read().decode(errors="replace")
                if p.returncode != 0:
                    raise EarlyRemoval(f"a run failed under maintenance ({p.returncode}): "
                                       f"{err.strip()[-300:]}")
    finally:
        stop.set()
        t.join()
    assert not errors, errors[0]
    settled(run, 60)
# --- holders that relay, daemonize at exit, or hide behind a symlink -----------

DAEMONIZE_AT_EXIT = r"""
import os, random, sys, time
ready, trigger, out = sys.argv[1], sys.argv[2], sys.argv[3]
if os.fork():
    os._exit(0)                       # the payload exits at once...
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
for _ in range(4):                    # ...while the daemon hops (fork, exit) into the scan
    time.sleep(random.random() * 0.004)
    if os.fork():
        os._exit(0)
open(ready, "w").close()
while not os.path.exists(trigger):
    time.sleep(0.01)
import subprocess
try:
    r = subprocess.run([os.environ["RUNX_ENV"] + "/bin/python", "-c",
                        "import runxdemo; print(runxdemo.VERSION)"], capture_output=True, text=True)
    said = r.stdout.strip() or r.stderr
except OSError as e:                  # the tree's interpreter is gone
    said = str(e)
with open(out + ".tmp", "w") as f:
    f.write(said)
os.rename(out + ".tmp", out)
"""


def daemonize_at_exit(runx):
    """``runx --with X sh -c 'python daemon.py'``: the daemon double-forks and
    setsids as the payload exits, then keeps using the environment."""
    tmp = scratch(runx, "daemon-")
    ready, trigger, out = (os.path.join(tmp, n) for n in ("ready", "go", "out"))
    script = os.path.join(tmp, "daemon.py")
    with open(script, "w") as f:
        f.write(DAEMONIZE_AT_EXIT)
    try:
        r = runx.run("--with", "runxdemo", "sh", "-c", f"python {script} {ready} {trigger} {out}")
        assert r.returncode == 0, r.stderr
        assert poll(lambda: os.path.exists(ready), 10), "the daemon never settled"
        if not runx.trees():
            raise EarlyRemoval("tree removed while the daemon still used it")
    finally:
        open(trigger, "w").close()
    assert poll(lambda: os.path.exists(out), 30), "the daemon never reported"
    if open(out).read() != "1.0":
        raise EarlyRemoval(f"the daemon could not use its environment: {open(out).read()}")
    settled(runx)


RELAY = r"""
import os, sys, time
out, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds
if os.fork():
    os._exit(0)                       # the payload exits; the relay goes on
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
while time.monotonic() < end:         # fork the successor, exit, again and again
    if os.fork():
        os._exit(0)
    time.sleep(0.002)
import subprocess
try:
    r = subprocess.run([os.environ["RUNX_ENV"] + "/bin/python", "-c",
                        "import runxdemo; print(runxdemo.VERSION)"], capture_output=True, text=True)
    said = r.stdout.strip() or r.stderr
except OSError as e:                  # the tree's interpreter is gone
    said = str(e)
with open(out + ".tmp", "w") as f:
    f.write(said)
os.rename(out + ".tmp", out)
"""


def relay_chain(runx):
    """A holder that relays through fork+exit chains for 0.5 s after the
    payload exits, then uses the environment."""
    tmp = scratch(runx, "relay-")
    out = os.path.join(tmp, "out")
    r = runx.run("--with", "runxdemo", "python", "-c", RELAY, out, "0.5")
    assert r.returncode == 0, r.stderr
    assert poll(lambda: os.path.exists(out), 30), "the relay never reported"
    if open(out).read() != "1.0":
        raise EarlyRemoval(f"the relay's environment went under it: {open(out).read()}")
    settled(runx)


CWD_HOLDER = r"""
import os, subprocess, sys
# A user of the tree by its cwd only: no RUNX_ENV, no VIRTUAL_ENV, the
# base interpreter; it checks, after a while, that its cwd still exists.
env = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}
env["PATH"] = "/usr/bin:/bin"
# The report is written aside and renamed into place: the test polls for
# the file and reads it at once, and a file created empty and filled a
# moment later read as an early removal (issue 20.3: 1 run in 400 under
# load, when the holder was preempted between its open and its write).
code = ("import os, sys, time; time.sleep(float(sys.argv[1])); "
        "f = open(sys.argv[2] + '.tmp', 'w'); f.write('ok' if os.path.isdir('bin') else 'gone'); "
        "f.close(); os.rename(sys.argv[2] + '.tmp', sys.argv[2])")
subprocess.Popen([sys.argv[1], "-c", code, sys.argv[3], sys.argv[2]], env=env,
                 cwd=os.environ["RUNX_ENV"], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""


def symlinked_runtime_dir(runx):
    """RUNX_RUNTIME_DIR named through a symlink: a process whose only tie to
    the tree is its cwd (reported resolved by the kernel) keeps it."""
    os.makedirs(runx.runtime, mode=0o700, exist_ok=True)
    link = runx.runtime + "-link"
    os.symlink(runx.runtime, link)
    try:
        linked = Runx(runx.runtime, runx.cache, runx.wheelhouse)
        linked.env["RUNX_RUNTIME_DIR"] = link
        out = os.path.join(scratch(runx, "cwd-"), "out")
        base = os.path.realpath(__import__("sys").executable)
        r = linked.run("python", "-c", CWD_HOLDER, base, out, "0.5")
        assert r.returncode == 0, r.stderr
        assert poll(lambda: os.path.exists(out), 30), "the cwd holder never reported"
        said = open(out).read()
        if said != "ok":
            raise EarlyRemoval(f"tree removed while a process had its cwd in it: {said!r}")
        settled(linked)
    finally:
        os.unlink(link)


def stale_tree(runtime: str, tid: str) -> str:
    """A tree a dead run left: its lock file (free) and a small tree."""
    import json

    os.makedirs(runtime, mode=0o700, exist_ok=True)
    tree = os.path.join(runtime, tid)
    os.makedirs(os.path.join(tree, "bin"))
    open(os.path.join(tree, "bin", "python"), "w").close()
    with open(tree + ".lock", "w") as f:
        json.dump({"tree": tree, "pid": 0}, f)
    return tree


def make_deep(top: str, depth: int, name: str = "d") -> None:
    """``top/d/d/.../d`` ``depth`` levels deep, a file every 500 levels
    (through fds: the path would outgrow PATH_MAX)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(depth):
            os.mkdir(name, dir_fd=fd)
            if i % 500 == 0:
                os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd))
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
    finally:
        os.close(fd)


DEEP = r"""
import os, sys
fd = os.open(os.environ["RUNX_ENV"], os.O_RDONLY | os.O_DIRECTORY)
for i in range(int(sys.argv[1])):
    os.mkdir("d", dir_fd=fd)
    sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = sub
"""


def deep_tree_among_stale_ones(runx):
    """Issue 20.4: a payload leaves a 2,000-deep directory in its tree, and ten
    stale trees wait beside it. Its reaper used to die at the recursion limit
    (the tree stayed, the ten too), and `runx gc` printed `internal error:
    RecursionError` and removed 0 of 11, half-built layers and expiry
    stopped with it. Now the reaper removes its tree and sweeps the ten; and
    a gc over eleven such trees (one deep) and a half-built layer removes
    all of them and runs the expiry."""
    for i in range(10):
        stale_tree(runx.runtime, f"{i:012x}")
    r = runx.run("--with", "runxdemo", "python", "-c", DEEP, "2000")
    assert r.returncode == 0, r.stderr
    settled(runx)
    # The same through `runx gc`: ten stale trees, one deep, a half-built layer.
    cache = scratch(runx, "gc-cache-")
    os.chmod(cache, 0o700)
    kdir = os.path.join(cache, "layers", "k" * 16)
    os.makedirs(os.path.join(kdir, ".tmp-dead"))
    open(os.path.join(kdir, "lock"), "w").close()
    make_deep(os.path.join(kdir, ".tmp-dead"), 2000)
    trees = [stale_tree(runx.runtime, f"{i:012x}") for i in range(10)]
    trees.append(stale_tree(runx.runtime, "d" * 12))
    make_deep(trees[-1], 2000)
    in_gc = Runx(runx.runtime, cache, runx.wheelhouse)
    r = in_gc.run("gc", local=False)
    assert r.returncode == 0 and not r.stderr, (r.returncode, r.stderr)
    assert sorted(r.stdout.splitlines()) == sorted(
        [f"removed {t}" for t in trees] + [f"removed {kdir}/.tmp-dead"]), r.stdout
    assert os.path.exists(os.path.join(cache, "expiry.stamp")), "the sweep stopped before expiry"
    settled(in_gc)


# Issue 20.5: the signals a user, a supervisor or a timer sends, and what
# each must leave: nothing, one line, and a death by that very signal.
COLD_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGALRM, signal.SIGINT)


def users_of(path: str) -> list:
    """Live processes whose command line names ``path`` (a uv installing there)."""
    out = []
    needle = os.fsencode(path)
    for n in os.listdir("/proc"):
        if not n.isdigit() or int(n) == os.getpid():
            continue
        try:
            with open(f"/proc/{n}/cmdline", "rb") as f:
                if needle in f.read() and alive(int(n)):
                    out.append(int(n))
        except OSError:
            continue
    return out


def _interrupted_cleanly(cold: Runx, p: subprocess.Popen, sig: int, *, must: bool) -> bool:
    """runx was sent ``sig`` during its cold run: it died of it, having said
    in one line what it interrupted (``must``: it had to be before the exec),
    and left nothing: no tree, no half-built layer, no uv. Whether the
    signal came before the exec."""
    _, raw = p.communicate(timeout=60)
    err = raw.decode(errors="replace")
    lines = [ln for ln in err.splitlines() if ln.startswith("runx:")]
    said = [ln for ln in lines if ln.startswith("runx: interrupted by ")]
    # A SIGINT while the interpreter itself starts (any stage of its
    # initialisation: init_sys_streams, init_import_site..., or the script's
    # very first instruction, before any of runx's code can catch it) is
    # CPython's own fatal error or traceback: nothing was made.
    tb = err.strip().splitlines()
    python_start = not must and (
        re.match(r"Fatal Python error: init_\w+: ", err) is not None
        or (len(tb) == 3 and tb[1].endswith("runx\", line 0, in <module>")
            and tb[2] == "KeyboardInterrupt"))
    assert python_start or "Traceback" not in err, err
    if must or said:
        assert p.returncode == -sig, (p.returncode, err)
        assert len(said) == 1, err
        name = signal.Signals(sig).name
        assert said[0].startswith(f"runx: interrupted by {name} "), said
        assert lines[-1] == said[0], lines
    if not poll(lambda: not users_of(cold.cache), 15):
        raise Leak(f"uv outlived the interrupted runx: {users_of(cold.cache)}")
    settled(cold)
    return bool(said)


def signal_at_install_point(runx):
    """SIGTERM, SIGHUP, SIGUSR1, SIGALRM, SIGINT while the layer is being
    built (runx stopped at the install fault point, signalled, continued):
    each used to leave a half-built layer (SIGINT: said nothing)."""
    for sig in COLD_SIGNALS:
        cold = fresh(runx)
        p = _stopped_at(cold, "install", "pass")
        os.kill(p.pid, sig)
        os.kill(p.pid, signal.SIGCONT)
        _interrupted_cleanly(cold, p, sig, must=True)


def signal_at_random_moments_of_a_cold_run(runx):
    """The same signals at random moments of a cold run (uv installing, the
    tree being made, the reaper being forked, the exec): before the exec,
    one line and nothing left; after, the payload's own death. Nothing is
    ever left. Five moments per signal, spread over a cold run's length
    (measured first)."""
    import random

    cold = fresh(runx)
    t0 = time.monotonic()
    r = cold.run("--with", "runxdemo", "python", "-c", "pass")
    assert r.returncode == 0, r.stderr
    span = time.monotonic() - t0
    settled(cold)
    rng = random.Random()
    for sig in COLD_SIGNALS:
        for _ in range(5):
            cold = fresh(runx)
            p = cold.popen("--with", "runxdemo", "sleep", "0.3", stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, preexec_fn=default_signals)
            time.sleep(rng.uniform(0, span))
            if p.poll() is None:
                os.kill(p.pid, sig)
            _interrupted_cleanly(cold, p, sig, must=False)


# --- PID reuse, ptrace, SIGSTOP (issue 20, "widen the promise") -------------

# PID 1 of a fresh PID namespace (unshare --pid --fork --mount-proc): runs
# runx there, then hands the PID of the process that just exited (the
# payload, or the payload's daemon) to a new process at once, through
# ns_last_pid. It reaps what is reparented to it, as an init must, and
# exits only once no reaper is left (its exit would SIGKILL the namespace).
PIDNS_DRIVER = r"""
import json, os, subprocess, sys, time
runx, runtime, report, mode = sys.argv[1:5]
clean = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}

def reap():
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return

def trees():
    try:
        return [n for n in os.listdir(runtime)
                if not n.endswith(".lock") and not n.startswith((".leases", ".scan"))]
    except FileNotFoundError:
        return []

def reapers():
    out = []
    for n in os.listdir("/proc"):
        try:
            if n.isdigit() and open(f"/proc/{n}/comm").read().strip() == "runx-reaper":
                out.append(int(n))
        except OSError:
            pass
    return out

def until(pred, timeout):
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        reap()
        time.sleep(0.005)
    return pred()

def take_pid(pid):
    # The next fork gets ``pid``: the sleeper uses nothing of the tree.
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))
    return subprocess.Popen(["sleep", "6"], cwd="/", env=clean)

res = {}
if mode == "payload":
    p = subprocess.Popen([runx, "python", "-c", "import os; print(os.getpid(), flush=True)"],
                         stdout=subprocess.PIPE, env=os.environ)
    pid = int(p.stdout.read())
    p.wait()
    sleeper = take_pid(pid)
else:                          # the payload's daemon holds the tree, exits, its PID is reused
    p = subprocess.Popen([runx, "python", "-c", sys.argv[5], sys.argv[6]], env=os.environ)
    p.wait()
    until(lambda: os.path.exists(sys.argv[6] + ".said"), 10)
    pid = int(open(sys.argv[6]).read())
    until(lambda: not os.path.exists(f"/proc/{pid}"), 10)     # exited, reaped by us
    sleeper = take_pid(pid)
res["reused"] = sleeper.pid == pid
t0 = time.monotonic()
res["removed"] = until(lambda: not trees(), 4.5)
res["seconds"] = time.monotonic() - t0
res["sleeper_alive"] = sleeper.poll() is None
sleeper.kill()
until(lambda: not reapers(), 15)
reap()
with open(report + ".tmp", "w") as f:
    json.dump(res, f)
os.rename(report + ".tmp", report)
"""

# The payload's daemon: setsid, keeps RUNX_ENV, writes its PID, uses the
# tree for 0.3 s, reports whether it was still there, exits.
SHORT_DAEMON = r"""
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
pidfile = sys.argv[1]
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pidfile + ".tmp", pidfile)
time.sleep(0.3)
ok = os.path.isdir(os.environ["RUNX_ENV"] + "/bin")
with open(pidfile + ".said.tmp", "w") as f:
    f.write("ok" if ok else "gone")
os.rename(pidfile + ".said.tmp", pidfile + ".said")
"""


def _in_pid_namespace(runx, mode: str, *extra) -> dict:
    if os.geteuid() != 0:
        raise AssertionError("the PID namespace scenarios need root (unshare --pid)")
    tmp = scratch(runx, "pidns-")
    driver, report = os.path.join(tmp, "driver.py"), os.path.join(tmp, "report")
    with open(driver, "w") as f:
        f.write(PIDNS_DRIVER)
    from conftest import RUNX

    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, driver,
                        RUNX, runx.runtime, report, mode, *extra],
                       env=runx.env, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0 and os.path.exists(report), (r.returncode, r.stderr)
    with open(report) as f:
        res = json.load(f)
    assert res["reused"], f"the PID was not handed over: {res}"
    return res


def payload_pid_reused_at_once(runx):
    """The payload exits and a long-lived process that uses nothing of the
    tree gets its PID at once (ns_last_pid in a PID namespace): the reaper
    watches a pidfd, not a PID, so the tree goes while the new process
    lives on."""
    res = _in_pid_namespace(runx, "payload")
    if not res["removed"]:
        raise Leak(f"the tree waited for the process that got the payload's PID: {res}")
    assert res["sleeper_alive"], res
    settled(runx)


def holder_pid_reused_at_once(runx):
    """The payload's daemon holds the tree, exits after 0.3 s, and its PID
    goes at once to a process that uses nothing of the tree: the tree stays
    while the daemon runs (it checks), and goes while the new process lives
    on (the lease re-check is by identity, not by PID)."""
    tmp = scratch(runx, "holder-")
    pidfile = os.path.join(tmp, "pid")
    res = _in_pid_namespace(runx, "holder", SHORT_DAEMON, pidfile)
    if open(pidfile + ".said").read() != "ok":
        raise EarlyRemoval("the tree went under the daemon")
    if not res["removed"]:
        raise Leak(f"the tree waited for the process that got the daemon's PID: {res}")
    settled(runx)


def _strace(pid: int) -> subprocess.Popen:
    """strace attached to ``pid`` (and what it forks), once it is attached."""
    s = subprocess.Popen(["strace", "-f", "-qq", "-o", "/dev/null", "-p", str(pid)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)

    def traced():
        try:
            with open(f"/proc/{pid}/status") as f:
                return any(ln.startswith("TracerPid:") and ln.split()[1] != "0" for ln in f)
        except OSError:
            return False

    assert poll(traced, 15), "strace never attached"
    return s


def _holder(runx, seconds: float):
    """A payload whose daemon uses the tree for ``seconds`` (the daemon of
    DAEMON_FOR, reporting through ``out``): (its pid, out)."""
    tmp = scratch(runx, "traced-")
    out, pidfile = os.path.join(tmp, "out"), os.path.join(tmp, "pid")
    r = runx.run("--with", "runxdemo", "python", "-c", DAEMON_FOR, out, pidfile, str(seconds))
    assert r.returncode == 0, r.stderr
    assert poll(lambda: os.path.exists(pidfile), 10)
    return int(open(pidfile).read()), out


DAEMON_FOR = r"""
import os, subprocess, sys, time
out, pidfile, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
if os.fork():
    os._exit(0)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pidfile + ".tmp", pidfile)
end = time.monotonic() + seconds
while time.monotonic() < end:          # CPU and sleeps, so a tracer has syscalls to stop on
    time.sleep(0.01)
r = subprocess.run([sys.executable, "-c", "import runxdemo; print(runxdemo.VERSION)"],
                   capture_output=True, text=True)
with open(out + ".tmp", "w") as f:
    f.write(r.stdout.strip() or r.stderr)
os.rename(out + ".tmp", out)
"""


# --- holders whose main thread exited, or with a thread's own cwd (issue 20) ---

THREADS = r"""
import ctypes, os, sys, threading, time
mode, ready, trigger, out = sys.argv[1:5]
tree = os.environ.get("RUNX_ENV") or os.getcwd()     # the holder starts in the tree
libc = ctypes.CDLL(None, use_errno=True)
SYS_exit = {"x86_64": 60, "aarch64": 93}[os.uname().machine]
if mode == "thread_cwd":
    # A process tied to the tree by one thread's own cwd only: no RUNX_ENV,
    # the base interpreter, its main thread elsewhere.
    import subprocess
    env = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}
    subprocess.Popen([sys.argv[5], __file__, "thread_cwd_holder", ready, trigger, out], env=env,
                     cwd=tree, start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(ready):  # exit once the main thread has left the tree
        time.sleep(0.005)
    sys.exit(0)
"""


THREADS_MAIN = r"""
if mode != "thread_cwd_holder":
    if os.fork():
        os._exit(0)                   # the payload exits at once
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.chdir(tree)                    # held by RUNX_ENV and cwd, both shared with the worker
moved = threading.Event()


def worker():
    if mode == "thread_cwd_holder":
        if libc.unshare(0x200) != 0:  # CLONE_FS: a cwd of its own (the tree, inherited)
            os._exit(3)
        moved.wait()
    else:
        while open("/proc/self/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.005)         # until the leader is a zombie
    open(ready, "w").close()
    while not os.path.exists(trigger):
        time.sleep(0.01)
    ok = os.path.isdir("bin") and os.path.isfile(os.path.join(tree, "pyvenv.cfg"))
    with open(out + ".tmp", "w") as f:
        f.write("ok" if ok else "gone")
    os.rename(out + ".tmp", out)
    os._exit(0)


threading.Thread(target=worker).start()
if mode == "thread_cwd_holder":
    time.sleep(0.05)                  # the worker has unshared its cwd
    os.chdir("/")
    moved.set()
    threading.Event().wait()
elif mode == "pthread_exit":
    libc.pthread_exit(None)
else:
    libc.syscall(SYS_exit, 0)         # the leader alone exits
"""


def _thread_holder(runx, mode: str, *tree):
    """The payload leaves a process behind whose only ties to the tree go
    through a thread other than its leader: the leader exited (a zombie
    whose environ, cwd and maps /proc no longer shows) while a worker thread
    runs on in the tree, or one thread unshared its cwd and stays in the
    tree while the main thread left. The reaper must wait for it."""
    _held_by(runx, THREADS + THREADS_MAIN, mode, *tree)


def _held_by(runx, code: str, mode: str, *tree):
    """Run ``code`` as the payload (``python SCRIPT MODE READY TRIGGER OUT
    BASE_PYTHON``); it leaves a holder behind that writes READY, waits for
    TRIGGER, then writes "ok" to OUT if the tree is still there. The tree
    must outlive the reaper's decision and the holder."""
    tmp = scratch(runx, "held-")
    ready, trigger, out, log = (os.path.join(tmp, n) for n in ("ready", "go", "out", "log"))
    script = os.path.join(tmp, "holder.py")
    with open(script, "w") as f:
        f.write(code)
    run = Runx(runx.runtime, runx.cache, runx.wheelhouse)
    run.env["RUNX_REAPER_LOG"] = log
    base = os.path.realpath(__import__("sys").executable)

    def decided():                      # the reaper waits for a holder, or removed the tree
        text = open(log).read() if os.path.exists(log) else ""
        return "lease holder" in text or "removed" in text or not run.trees()

    try:
        r = run.run(*tree, "--with", "runxdemo", "python", script, mode, ready, trigger, out, base)
        assert r.returncode == 0, r.stderr
        assert poll(lambda: os.path.exists(ready), 10), "the holder never settled"
        assert poll(decided, 15), "the reaper never decided"
        if not run.trees():
            raise EarlyRemoval(f"tree removed while still in use ({mode})")
    finally:
        open(trigger, "w").close()
    assert poll(lambda: os.path.exists(out), 30), "the holder never reported"
    if open(out).read() != "ok":
        raise EarlyRemoval(f"the tree went while still in use ({mode})")
    settled(run)


def leader_exited_dir(runx):
    """A daemon whose main thread called pthread_exit; a worker thread lives on."""
    _thread_holder(runx, "pthread_exit")


def leader_exited_fuse(runx):
    """The same with --tree fuse, the leader gone by SYS_exit."""
    _thread_holder(runx, "sys_exit", "--tree", "fuse")


def thread_cwd(runx):
    """A thread that unshared its cwd (CLONE_FS) and stays in the tree."""
    _thread_holder(runx, "thread_cwd")



FD_HOLDER = r"""
import os, socket, subprocess, sys, time
mode, ready, trigger, out = sys.argv[1:5]
if mode == "fd_socket":
    # The payload opens its tree O_PATH, hands the descriptor over a unix
    # socket to a process with no other tie (no RUNX_ENV, cwd /, the base
    # interpreter), closes its own copy and exits.
    a, b = socket.socketpair()
    env = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}
    subprocess.Popen([sys.argv[5], __file__, "fd_socket_holder", ready, trigger, out,
                      str(b.fileno())], env=env, cwd="/", pass_fds=[b.fileno()],
                     start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fd = os.open(os.environ["RUNX_ENV"], os.O_PATH | os.O_DIRECTORY)
    socket.send_fds(a, [b"x"], [fd])
    os.close(fd)
    a.recv(1)                         # the holder has it
    sys.exit(0)
s = socket.socket(fileno=int(sys.argv[5]))
_, fds, _, _ = socket.recv_fds(s, 1, 1)
(fd,) = fds
s.send(b"k")
s.close()
open(ready, "w").close()
while not os.path.exists(trigger):
    time.sleep(0.01)
try:
    os.stat("pyvenv.cfg", dir_fd=fd)
    said = "ok"
except OSError:
    said = "gone"
with open(out + ".tmp", "w") as f:
    f.write(said)
os.rename(out + ".tmp", out)
"""


def _report(out: str) -> None:
    assert poll(lambda: os.path.exists(out), 30), "the holder never reported"
    said = open(out).read()
    if said != "1.0":
        raise EarlyRemoval(f"the holder's environment went under it: {said!r}")


def traced_payload(runx):
    """strace -f -p on the running payload: it finishes with its tree, and
    the tree goes after it, tracer or not."""
    p = start_payload(runx, 3.0, "--with", "runxdemo")
    the_reaper(runx.runtime)
    s = _strace(p.pid)
    try:
        finish_payload(p)
        settled(runx)
    finally:
        s.kill()
        s.wait()


def traced_holder(runx):
    """A daemon that holds the tree, traced by strace -f -p (ptrace-stopped
    at every system call): the reaper reads its environ all the same; the
    tree stays while it runs, goes after it."""
    pid, out = _holder(runx, 3.0)
    s = _strace(pid)
    try:
        _report(out)
        settled(runx)
    finally:
        s.kill()
        s.wait()


def stopped_holder(runx):
    """A daemon that holds the tree, stopped (SIGSTOP) for a second: a
    stopped process is alive; the tree waits for it."""
    pid, out = _holder(runx, 2.0)
    os.kill(pid, signal.SIGSTOP)
    assert poll(lambda: stopped(pid), 10)
    time.sleep(1.0)              # a wrong reaper would remove the tree meanwhile
    if not runx.trees():
        raise EarlyRemoval("tree removed while its holder was stopped")
    os.kill(pid, signal.SIGCONT)
    _report(out)
    settled(runx)


def stopped_payload(runx):
    """The payload itself stopped for a second, then continued: its tree is
    there when it ends, and goes after it."""
    p = start_payload(runx, 2.0, "--with", "runxdemo")
    the_reaper(runx.runtime)
    os.kill(p.pid, signal.SIGSTOP)
    assert poll(lambda: stopped(p.pid), 10)
    time.sleep(1.0)
    if not runx.trees():
        raise EarlyRemoval("tree removed while the payload was stopped")
    os.kill(p.pid, signal.SIGCONT)
    finish_payload(p)
    settled(runx)


def fd_holder(runx):
    """A process whose only tie to the tree is a descriptor it received over
    a unix socket (an O_PATH dirfd it later uses with *at calls)."""
    _held_by(runx, FD_HOLDER, "fd_socket")


BIND_HOLDER = r"""
import os, subprocess, sys, time
mode, ready, trigger, out = sys.argv[1:5]
if mode == "bind_ns":
    # A process in a mount namespace of its own that sees the tree only
    # through a bind mount elsewhere (a container given it as a volume): no
    # RUNX_ENV, cwd /, the base interpreter; its ties are all in that namespace.
    mnt = os.path.join(os.path.dirname(ready), "mnt")
    os.mkdir(mnt)
    subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                      'mount --bind "$1" "$2" && cd / && '
                      'exec env -i "$3" "$4" bind_ns_holder "$5" "$6" "$7" "$2"',
                      "sh", os.environ["RUNX_ENV"], mnt, sys.argv[5], __file__, ready, trigger,
                      out], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(ready):
        time.sleep(0.005)
    sys.exit(0)
mnt = sys.argv[5]
open(ready, "w").close()
while not os.path.exists(trigger):
    time.sleep(0.01)
said = "ok" if os.path.isfile(os.path.join(mnt, "pyvenv.cfg")) else "gone"
with open(out + ".tmp", "w") as f:
    f.write(said)
os.rename(out + ".tmp", out)
"""


def bind_mount_elsewhere(runx):
    """The tree bind-mounted elsewhere in another mount namespace, used
    there only (needs root: unshare -m, mount --bind)."""
    if os.geteuid() != 0:
        raise AssertionError("bind_mount_elsewhere needs root (a mount namespace)")
    _held_by(runx, BIND_HOLDER, "bind_ns")

SCENARIOS = {f.__name__: f for f in (
    payload_exits_0, payload_exits_3, payload_sigkilled,
    runx_killed_during_install, runx_killed_after_tree, runx_killed_before_exec,
    uv_dies_with_runx, reaper_killed_mid_run, reaper_killed_then_adopted,
    reaper_sigterm_mid_run, daemonized_grandchild, disk_full, unresolvable,
    concurrent_32, sequential_200, daemonize_at_exit, relay_chain, symlinked_runtime_dir,
    maintenance_before_exec, maintenance_during_build, maintenance_spares_kept_tree,
    maintenance_loop_vs_50_runs, reaper_signalled_while_loading,
    runtime_full_while_writing_the_tree, deep_tree_among_stale_ones,
    signal_at_install_point, signal_at_random_moments_of_a_cold_run,
    payload_pid_reused_at_once, holder_pid_reused_at_once, traced_payload, traced_holder,
    stopped_holder, stopped_payload,
    leader_exited_dir, leader_exited_fuse, thread_cwd,
    fd_holder, bind_mount_elsewhere,
)}
