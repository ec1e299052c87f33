"""``--tree fuse``: the tree is a FUSE mount served by the reaper from memory.

Nothing ephemeral touches the disk. The runner makes the empty tree
directory (0700) and its lock, as for ``--tree dir``, but writes nothing into
it; the reaper mounts its in-memory file system (runx_env.reaper.memfs) there, tells
the runner "ok" once the mount answers, and serves it until the payload and
every lease holder are gone. Then it unmounts, removes the empty mountpoint
and its lock, and sweeps.

If the reaper dies however it dies (SIGKILL, OOM), the kernel closes its
/dev/fuse connection; ``auto_unmount`` makes fusermount3's watcher unmount
the tree at that moment. What is left is an empty directory and a free lock,
which the next run's sweep or ``runx gc`` removes. The price: a payload still
running when its reaper is killed loses its environment (``--tree dir``
keeps it, and leaks it instead).

``missing()`` runs in the runner; pyfuse3 loads in the reaper only, in
``serve``, and is served by runx_env.reaper.fuse_loop rather than trio.

RUNX_FUSE_DEVICE (testing only) replaces /dev/fuse in ``missing()``'s
checks, to simulate a machine without FUSE.
"""

import os
import sys

from . import watch

DEVICE = "/dev/fuse"
DEVICE_ENV = "RUNX_FUSE_DEVICE"
FUSERMOUNT = "fusermount3"
MOUNT_OPTIONS = frozenset({
    "fsname=runx",          # the source column of /proc/self/mountinfo
    "subtype=runx",         # type fuse.runx
    "auto_unmount",         # fusermount3 unmounts when the reaper dies
    "default_permissions",  # the kernel checks modes; no access() round trips
    "nosuid", "nodev",
    "noatime",
})
CHECK_TIMEOUT = 20.0        # seconds for the mount to answer its first stat
# After answering a request, poll /dev/fuse this long before sleeping. A
# FUSE request is a round trip between two processes that are usually on
# two CPUs; the server's share of its latency is mostly the wake-up of a
# sleeping CPU (tens of microseconds in a VM), paid again for every request
# of a burst (a directory listing is three, an interpreter's start-up about
# twenty). Polling for a moment catches the next request of the burst
# awake; it costs the reaper at most this much CPU per burst, never while
# the tree is idle (docs/fuse.md, "Performance", has the figures).
SPIN = 0.0002


def detach(path: str) -> None:
    """Lazily unmount the FUSE mount at ``path``, whose server is gone
    (``fusermount3 -u -z``; fuse2's fusermount if only that is left)."""
    import subprocess

    for tool in (FUSERMOUNT, "fusermount"):
        try:
            subprocess.run([tool, "-u", "-z", path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return
        except OSError:
            continue


def _which(name: str) -> str | None:
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def missing() -> str | None:
    """What prevents a FUSE tree here, in a few words; None if nothing does."""
    if not watch.LINUX:
        return "FUSE trees are supported on Linux only"
    dev = os.environ.get(DEVICE_ENV) or DEVICE
    if not os.path.exists(dev):
        return f"{dev} does not exist (FUSE is not available on this machine or container)"
    if not os.access(dev, os.R_OK | os.W_OK):
        return f"no permission to open {dev}"
    tool = _which(FUSERMOUNT)
    if tool is None:
        return f"{FUSERMOUNT} not found on PATH (install the fuse3 package)"
    if os.geteuid() != 0:
        try:
            if not os.stat(tool).st_mode & 0o4000:
                return f"{tool} is not set-user-ID root: mounting is not permitted for this user"
        except OSError:
            return f"cannot inspect {tool}"
    import importlib.util

    # trio need not be there: runx_env.reaper.fuse_loop stands in for it.
    try:
        if importlib.util.find_spec("pyfuse3") is None:
            return "pyfuse3 is not installed (pip install 'runx-env[fuse]')"
    except (ImportError, ValueError):
        return "pyfuse3 is not installed (pip install 'runx-env[fuse]')"
    return None


# --- the reaper side -------------------------------------------------------


def _mount(pyfuse3, fs, path: str) -> str | None:
    """pyfuse3.init with libfuse's and fusermount3's complaints captured (the
    reaper's stderr is /dev/null) in a memfd: nothing on disk, and the
    fusermount3 watcher may keep it open without harm. Returns an error or None."""
    err = saved = None
    try:
        err = os.memfd_create("runx-fuse-err", os.MFD_CLOEXEC)
        saved = os.dup(2)
        os.dup2(err, 2, inheritable=True)
    except (AttributeError, OSError):
        pass
    low = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)   # see _order_fds
    before = _fds()
    try:
        pyfuse3.init(fs, path, set(MOUNT_OPTIONS))
    except Exception as e:
        os.close(low)
        text = ""
        if err is not None:
            try:
                text = os.pread(err, 4096, 0).decode(errors="replace").strip()
            except OSError:
                pass
        detail = "; ".join(l.strip() for l in text.splitlines() if l.strip()) or str(e)
        return f"cannot mount {path}: {detail}"
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
        if err is not None:
            os.close(err)
    _order_fds(low, before)
    return None


def _fds() -> set:
    """Open fds (without the one listdir itself used, closed on return)."""
    try:
        listed = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        return set()
    out = set()
    for fd in listed:
        try:
            os.fstat(fd)
            out.add(fd)
        except OSError:
            pass
    return out


def _order_fds(low: int, before: set) -> None:
    """Make the reaper's death unmount the tree every time, not nearly.

    fusermount3's auto_unmount watcher wakes when its socket to the reaper
    closes, then opens the mountpoint and unmounts only if that fails with
    ENOTCONN, i.e. if the kernel has already aborted the reaper's /dev/fuse
    connection. When a process dies, the kernel closes its fds in ascending
    order but runs the final releases last-closed-first; libfuse leaves the
    socket one number above the /dev/fuse fd, so the socket was released
    first, and a watcher scheduled in between saw its open() fail with
    ECONNABORTED instead, and left a dead mount (seen about once in 60 kills
    under load). Moving the socket below the /dev/fuse fd (to ``low``,
    reserved before the mount) releases /dev/fuse first. The socket's old
    number gets /dev/null, in case a libfuse ever closes it by number; the
    socket becomes close-on-exec (the reaper execs only fusermount3 -u, which
    must not keep the watcher waiting)."""
    import stat

    sock = fuse = None
    for fd in sorted(_fds() - before):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode) and os.get_inheritable(fd):
                sock = fd if sock is None else -1          # exactly one, or leave it
            elif os.readlink(f"/proc/self/fd/{fd}") == "/dev/fuse":
                fuse = fd
        except OSError:
            continue
    if sock is None or sock < 0 or fuse is None or not low < fuse < sock:
        os.close(low)
        return
    os.dup2(sock, low, inheritable=False)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    os.dup2(null, sock, inheritable=False)
    os.close(null)


def serve(job, w, log) -> str | None:
    """Mount, answer the runner "ok", serve until the tree is unused, unmount.
    ``w`` is the armed watch on the payload. Returns None once served and
    unmounted (the daemon removes the mountpoint and releases), or, if it
    never answered "ok", what went wrong (the daemon undoes the tree and
    tells the runner)."""
    tree = job.tree
    try:
        from . import fuse_loop

        pyfuse3 = fuse_loop.load()     # without trio: see runx_env.reaper.fuse_loop
        log(f"fuse: pyfuse3 loaded ({'with' if 'trio' in sys.modules else 'without'} trio)")
        from .memfs import MemFS
    except Exception as e:      # ImportError, or libfuse3.so missing (OSError)
        return f"cannot load pyfuse3 ({e})"
    try:
        fs = MemFS(tree.entries)
    except Exception as e:
        return f"bad tree description ({e})"
    problem = _mount(pyfuse3, fs, tree.path)
    if problem:
        return problem
    log(f"fuse: mounted {tree.path}")
    try:
        fuse_loop.run(_serve, pyfuse3, fuse_loop, job, w, log, spin=SPIN)
    except BaseException as e:         # noqa: BLE001 - the reaper must get to the cleanup
        log(f"fuse: main loop failed: {e!r}")
    finally:
        try:
            pyfuse3.close(unmount=True)
        except Exception as e:
            log(f"fuse: unmount: {e!r}")
    if not job.handshake.answered:     # never said "ok": the runner discards the tree
        return f"the mount at {tree.path} did not answer"
    return None


async def _serve(pyfuse3, loop, job, w, log) -> None:
    """Serve the mount, say "ok" once it answers, return once the tree's
    users are all gone (or at once if it never answered)."""
    async with loop.open_nursery() as nursery:
        # One worker task: no handler of MemFS ever waits, so more tasks only
        # cost their spawning (directory listings measured 2-3x slower with
        # pyfuse3's default of up to 99).
        nursery.start_soon(pyfuse3.main, 1, 1)
        try:
            if not await _answers(loop, job.tree):
                return
            job.handshake.reply("ok")
            await _exited(loop, w)
            log("payload exited")
            if job.keep:
                log("--keep has no meaning for a FUSE tree; removing it")
            await _leases(loop, job.tree.path, log, (getattr(w, "pid", None),))
        finally:
            pyfuse3.terminate()


async def _answers(loop, tree) -> bool:
    """Stat the mount from a worker thread: this thread serves the mount, a
    stat from here would wait for itself."""

    def check():
        root = os.stat(tree.path)
        os.stat(os.path.join(tree.path, "pyvenv.cfg"))
        return (root.st_dev, root.st_ino) != tree.identity

    try:
        return await loop.in_thread(check, timeout=CHECK_TIMEOUT)
    except (OSError, TimeoutError):
        return False


async def _exited(loop, w) -> None:
    """Wait for a watched process to exit without blocking the mount."""
    fd = w.fileno()
    delay = 0.01
    while not w.exited():
        if fd is not None:
            await loop.wait_readable(fd)              # pidfd, or a kqueue fd
        else:
            await loop.sleep(delay)                   # polling watches
            delay = min(delay * 2, 0.5)


async def _leases(loop, tree: str, log, exited=()) -> None:
    """The lease rounds of runx_env.reaper.leases.rounds. Each scan runs in a worker
    thread: reading a process's /proc entries can wait on its memory map
    lock, which a page fault on this very mount may hold."""
    from . import leases

    rounds = leases.rounds(tree, log, exited)
    try:
        while True:
            watches = await loop.in_thread(next, rounds, None)
            if watches is None:
                return
            for lw in watches:
                await _exited(loop, lw)
    finally:
        rounds.close()
