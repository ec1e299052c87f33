"""The fault matrix: every way a user can kill or starve a run, and what must
hold afterwards — no leaked tree or partial environment, no early removal.

Used by tests/test_faults.py (each scenario once) and scripts/faults (each
scenario N times, as a table). A scenario raises Leak or EarlyRemoval for
the two promises, AssertionError for anything else.
"""

import os
import signal
import subprocess
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


def _stopped_at(run: Runx, point: str, code: str) -> subprocess.Popen:
    """``runx --with runxdemo python -c CODE`` with ``run``'s directories,
    stopped (SIGSTOP) at fault point ``point``."""
    stop = Runx(run.runtime, run.cache, run.wheelhouse)
    stop.env["RUNX_FAULT_STOP"] = point
    p = stop.popen("--with", "runxdemo", "python", "-c", code,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
code = ("import os, sys, time; time.sleep(float(sys.argv[1])); "
        "open(sys.argv[2], 'w').write('ok' if os.path.isdir('bin') else 'gone')")
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
        if open(out).read() != "ok":
            raise EarlyRemoval("tree removed while a process had its cwd in it")
        settled(linked)
    finally:
        os.unlink(link)


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
    runtime_full_while_writing_the_tree, leader_exited_dir, leader_exited_fuse, thread_cwd,
    fd_holder, bind_mount_elsewhere,
)}
