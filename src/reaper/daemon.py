"""The detached reaper process: from the fork to the tree's removal.

It runs in the grandchild of the runner's double fork (see runner.launch):
own session, cwd /, stdio on /dev/null, no inherited fd but its own, deaf to
terminal signals. Then: arm the watch, tell the runner it may exec, wait for
the payload's exit, wait for the remaining lease holders, remove the tree,
sweep what dead runs left, exit.
"""

import os
import time

from reaper import leases, watch
from reaper.removal import remove_tree

# The runner imports this module before the fork (warm path): nothing heavy
# at module level; the reaper imports what it needs after the fork.


class Job:
    """What the reaper is handed across the fork."""

    def __init__(self, tree_id, runtime, tree_path, tree_dev, tree_ino, lock_fd, token,
                 mode="dir", entries=(), cache=None, keep=False, finish_layer=None,
                 layer_fd=None):
        self.tree_id = tree_id
        self.runtime = runtime
        self.tree_path = tree_path
        self.tree_dev = tree_dev
        self.tree_ino = tree_ino
        self.lock_fd = lock_fd
        self.token = token                 # from watch.prepare_self(), made before the fork
        self.mode = mode                   # "dir" | "fuse"
        self.entries = list(entries)
        self.cache = cache
        self.keep = keep
        self.finish_layer = finish_layer   # a layer to byte-compile and freeze, or None
        self.handshake_fd = None           # write end: "ok\n" or "error: ...\n"
        # The layer's build dir, flock'ed shared by the run (layers.lookup):
        # held until the reaper exits, so `runx cache prune`/`clean` never
        # remove a layer while its tree (and the payload) may use it.
        self.layer_fd = layer_fd

    def fds(self) -> list:
        fds = [self.lock_fd]
        if self.layer_fd is not None:
            fds.append(self.layer_fd)
        if self.handshake_fd is not None:
            fds.append(self.handshake_fd)
        fileno = getattr(self.token, "fileno", None)
        if fileno and fileno() is not None:
            fds.append(fileno())
        return fds


def log_to(path: str | None):
    """RUNX_REAPER_LOG=FILE: a line per step, for debugging; silent otherwise."""
    if not path:
        return lambda msg: None

    def log(msg: str) -> None:
        try:
            with open(path, "a") as f:
                f.write(f"{time.time():.3f} reaper[{os.getpid()}] {msg}\n")
        except OSError:
            pass

    return log


# Signals. The reaper needs none: it learns of the payload's exit from a
# pidfd (or kqueue, or polling), never from a signal. So every catchable
# signal whose default action would kill or stop it is ignored: the terminal
# and session ones (it has no terminal anyway), SIGTERM (systemd's
# KillMode=control-group sends it to every process of the unit: the reaper
# keeps waiting and removes the tree as soon as the payload is gone), and
# the stray ones (ALRM, USR1/2, IO, PROF, VTALRM, PWR, XCPU, XFSZ, STKFLT,
# the real-time signals, and glibc's reserved 32 and 33). Left at their
# default on purpose:
# - SIGKILL, SIGSTOP: cannot be caught; SIGKILL is how to stop a reaper.
# - SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT: synchronous
#   faults (or abort()); ignoring one makes a fault loop forever.
# - SIGCHLD, SIGURG, SIGWINCH, SIGCONT: their default is harmless, and an
#   ignored SIGCHLD would make the kernel reap the finisher behind our back.
_KEEP_DEFAULT = ("SIGKILL", "SIGSTOP", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP",
                 "SIGSYS", "SIGABRT", "SIGIOT", "SIGCHLD", "SIGCLD", "SIGURG", "SIGWINCH",
                 "SIGCONT")


def _signal_module():
    try:
        import _signal as signal    # not `signal`: it imports enum, CPU the payload wants
    except ImportError:  # pragma: no cover
        import signal
    return signal


def ignored_signals() -> list:
    """The signal numbers detach() ignores."""
    signal = _signal_module()
    keep = {getattr(signal, n) for n in _KEEP_DEFAULT if hasattr(signal, n)}
    return sorted(s for s in signal.valid_signals() if s not in keep)


def _glibc_reserved() -> list:
    """32 and 33 are real-time signals glibc keeps for itself (thread
    cancellation, setxid): its sigaction refuses them, Python does not list
    them, yet their default action kills. Linux only."""
    signal = _signal_module()
    rtmin = getattr(signal, "SIGRTMIN", None)
    if os.uname().sysname != "Linux" or rtmin is None:
        return []
    return list(range(32, rtmin))


def _raw_sigaction(sigs: list, handler: int) -> None:
    """rt_sigaction(2) straight to the kernel, bypassing glibc's refusal.
    The kernel's struct starts with the handler on every architecture, and
    flags, restorer and mask are all zero here; only the syscall number
    differs."""
    nr = {"x86_64": 13, "aarch64": 134, "riscv64": 134, "ppc64le": 173,
          "s390x": 174}.get(os.uname().machine)
    if nr is None or not sigs:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        act = (ctypes.c_ulong * 8)(handler)
        for sig in sigs:
            libc.syscall(ctypes.c_long(nr), ctypes.c_long(sig), ctypes.byref(act),
                         None, ctypes.c_long(8))
    except (ImportError, OSError, AttributeError):
        pass


def detach() -> None:
    """Name, signals, cwd (the fds were released by the middle process)."""
    signal = _signal_module()
    for sig in ignored_signals():
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (OSError, ValueError):
            pass
    _raw_sigaction(_glibc_reserved(), 1)          # SIG_IGN
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    # Forked from the runner, the reaper would show in ps as a copy of the
    # runx command line; its name says what it is (Linux: comm). Named only
    # once deaf to stray signals: whoever finds it by name may signal it.
    try:
        with open("/proc/self/comm", "w") as f:
            f.write("runx-reaper")
    except OSError:
        pass
    os.chdir("/")


def restore_signals() -> None:
    """Undo detach()'s dispositions in a child of the reaper (the layer
    finisher): SIG_IGN survives fork and exec, and its compile subprocess
    must be killable like any program."""
    signal = _signal_module()
    for sig in ignored_signals():
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    _raw_sigaction(_glibc_reserved(), 0)          # SIG_DFL


def release_caller_fds(keep: list) -> None:
    """stdio onto /dev/null, every other fd closed but ``keep``. Run in the
    middle process of the double fork (see runner.launch), before the reaper
    is forked: holding a caller's pipe would keep `$(runx …)` waiting after
    the payload, holding NOTIFY_SOCKET would confuse systemd."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    lo = 3
    for fd in sorted(keep):
        if fd >= lo:
            os.closerange(lo, fd)
            lo = fd + 1
    os.closerange(lo, 1 << 20)


def main(job: Job, log_path: str | None) -> None:
    """Entry point in the forked grandchild. Never returns."""
    try:
        detach()
        run(job, log_to(log_path))
    finally:
        os._exit(0)


def reply(job: Job, message: str) -> None:
    if job.handshake_fd is not None:
        try:
            os.write(job.handshake_fd, message.encode() + b"\n")
        except OSError:
            pass
        os.close(job.handshake_fd)
        job.handshake_fd = None


def run(job: Job, log) -> None:
    log(f"watching pid {getattr(job.token, 'pid', job.token)} for {job.tree_path} via {watch.NAME}")
    try:
        w = watch.arm(job.token)
    except Exception as e:
        reply(job, f"error: cannot watch the runner ({e})")
        return
    if job.finish_layer:
        start_layer_finisher(job, log)
    if job.mode == "fuse":
        from reaper import fuse_tree

        fuse_tree.serve(job, w, log)
        return
    reply(job, "ok")
    watch.wait_all([w])
    log("payload exited")
    if job.keep:
        log("--keep: leaving the tree")
        return
    wait_for_leases(job.tree_path, log)
    if not remove_tree(job.runtime, job.tree_id, expect=(job.tree_dev, job.tree_ino)):
        # Renamed, swapped, or holding a mount: keep the lock file (the flock
        # goes with this process) so a later sweep still knows it is runx's.
        log(f"could not remove {job.tree_path}; left to the sweep")
        return
    if job.layer_fd is not None:          # the tree is gone: its layer may go too
        os.close(job.layer_fd)
        job.layer_fd = None
    finish(job, log)


def start_layer_finisher(job: Job, log) -> None:
    """Byte-compile and freeze a freshly built layer (runner.layers.finish)
    in a child of the reaper, niced, while the payload runs. It drops the
    tree's lock and watch first: it must never look like the tree's owner,
    and the reaper does not wait for it."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        log(f"layer finisher: pid {pid}")
        return
    try:
        restore_signals()
        for fd in job.fds():
            os.close(fd)
        try:
            with open("/proc/self/comm", "w") as f:
                f.write("runx-compile")
        except OSError:
            pass
        os.nice(19)
        from runner.layers import finish as finish_layer

        finish_layer(job.finish_layer, log)
    finally:
        os._exit(0)


def wait_for_leases(tree: str, log) -> None:
    """Wait until no live process uses ``tree``; after every round the scan
    runs again, since holders may have started others."""
    for watches in leases.rounds(tree, log):
        watch.wait_all(watches)


def finish(job: Job, log) -> None:
    """Tree gone: drop the lock (file first, then the flock), then sweep.
    Ownerless trees still in use are adopted: this reaper holds their locks,
    waits for their holders and removes them, so a tree whose reaper was
    killed goes as soon as its last user does."""
    release(job.runtime, job.tree_id, job.lock_fd)
    log(f"removed {job.tree_path}")
    from reaper.sweep import sweep

    adopted: list = []
    sweep(job.runtime, job.cache, adopt=adopted, log=log)
    if adopted:
        reap_adopted(job.runtime, adopted, log)


def reap_adopted(runtime: str, adopted: list, log) -> None:
    """Wait for the holders of every adopted tree at once (one long-lived
    holder must not hold the others hostage) and remove each tree as soon
    as nothing uses it."""
    from reaper.sweep import unmount_if_dead

    fds = {os.path.join(runtime, tid): (tid, fd) for tid, fd in adopted}
    for path in fds:
        log(f"adopted {path}")

    def free(path):
        tid, fd = fds[path]
        unmount_if_dead(path)             # a --tree fuse tree whose server died with its watcher
        if remove_tree(runtime, tid):
            release(runtime, tid, fd)
            log(f"removed adopted {path}")
        else:                             # keep the lock file: the next sweep retries
            os.close(fd)
            log(f"could not remove adopted {path}")

    leases.wait_free(list(fds), free, log)


def release(runtime: str, tree_id: str, lock_fd: int) -> None:
    try:
        os.unlink(os.path.join(runtime, tree_id + ".lock"))
    except OSError:
        pass
    os.close(lock_fd)
