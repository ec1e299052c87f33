"""The detached reaper process: from the fork to the tree's removal.

It runs in the grandchild of the runner's double fork (see runx_env.runner.launch):
own session, cwd /, stdio on /dev/null, no inherited fd but its own, deaf to
terminal signals. Then: arm the watch, tell the runner it may exec, wait for
the payload's exit, wait for the remaining lease holders, remove the tree,
sweep what dead runs left, exit.
"""

from __future__ import annotations

import os
import time

from . import leases, ownership, watch
from .handoff import Job, signal_module

TYPE_CHECKING = False     # not typing's: see tests/test_warm_path.py
if TYPE_CHECKING:
    from typing import NoReturn


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


def ignored_signals() -> list:
    """The signal numbers detach() ignores."""
    signal = signal_module()
    keep = {getattr(signal, n) for n in _KEEP_DEFAULT if hasattr(signal, n)}
    return sorted(s for s in signal.valid_signals() if s not in keep)


def _glibc_reserved() -> list:
    """32 and 33 are real-time signals glibc keeps for itself (thread
    cancellation, setxid): its sigaction refuses them, Python does not list
    them, yet their default action kills. Linux only."""
    signal = signal_module()
    rtmin = getattr(signal, "SIGRTMIN", None)
    if not watch.LINUX or rtmin is None:
        return []
    return list(range(32, rtmin))


def _raw_sigaction(sigs: list, handler: int) -> None:
    """rt_sigaction(2) straight to the kernel, bypassing glibc's refusal.
    The kernel's struct starts with the handler on every architecture, and
    flags, restorer and mask are all zero here; only the syscall number
    differs. Through ``_ctypes`` itself, not the ``ctypes`` package: its
    import (struct, types, the byte-order module) cost every reaper about
    3 ms more than the call."""
    nr = {"x86_64": 13, "aarch64": 134, "riscv64": 134, "ppc64le": 173,
          "s390x": 174}.get(watch.machine())
    if nr is None or not sigs:
        return
    try:
        import _ctypes

        class Long(_ctypes._SimpleCData):
            _type_ = "l"

        class Act(_ctypes.Array):
            _type_ = Long
            _length_ = 8

        class Fn(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL
            _restype_ = Long

        class Lib:
            _handle = _ctypes.dlopen(None, 0)  # type: ignore[arg-type]

        syscall = Fn(("syscall", Lib()))  # type: ignore[arg-type]
        act = Act(handler)
        for sig in sigs:
            syscall(Long(nr), Long(sig), _ctypes.byref(act), None, Long(8))
    except (ImportError, OSError, AttributeError, TypeError):
        pass


def detach() -> None:
    """Name, signals, cwd (the fds were released by the middle process;
    handoff.block_signals blocked every signal right after the fork)."""
    signal = signal_module()
    _dispose(signal, signal.SIG_IGN)
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
    signal = signal_module()
    _dispose(signal, signal.SIG_DFL)


def _dispose(signal, handler) -> None:
    """Set every signal detach() is deaf to to ``handler`` (SIG_IGN or
    SIG_DFL), the glibc-reserved ones through the raw syscall."""
    for sig in ignored_signals():
        try:
            signal.signal(sig, handler)
        except (OSError, ValueError):
            pass
    _raw_sigaction(_glibc_reserved(), int(handler))   # SIG_DFL 0, SIG_IGN 1


def main(job: Job, log_path: str | None) -> NoReturn:
    """Entry point in the forked grandchild."""
    try:
        detach()
        run(job, log_to(log_path))
    finally:
        os._exit(0)


def reply(job: Job, message: str) -> None:
    if job.handshake is not None:
        job.handshake.reply(message)


def run(job: Job, log) -> None:
    tree = job.tree
    log(f"watching pid {getattr(job.token, 'pid', job.token)} for {tree.path} via {watch.NAME}")
    try:
        w = watch.arm(job.token)
    except Exception as e:
        reply(job, f"error: cannot watch the runner ({e})")
        return
    if job.compile_layer:
        start_layer_compiler(job, job.compile_layer, log)
    if tree.mode == "fuse":
        from . import fuse_tree

        problem = fuse_tree.serve(job, w, log)
        if problem:
            # Never answered "ok": undo what the runner made, then say why.
            # The runner, which shares the lock, discards what is left.
            log(f"fuse: {problem}")
            try:
                ownership.remove(tree.runtime, tree.id, expect=tree.identity)
            except OSError:
                pass
            reply(job, f"error: --tree fuse: {problem} (use --tree dir)")
            return
    else:
        reply(job, "ok")
        watch.wait_all([w])
        log("payload exited")
        if job.keep:
            log("--keep: leaving the tree")
            return
        wait_for_leases(tree.path, log, (getattr(w, "pid", None),))
    # For a FUSE tree, after the unmount: the mountpoint has its own inode
    # again (still mounted, it has not, and stays).
    try:
        gone = ownership.remove(tree.runtime, tree.id, expect=tree.identity)
    except Exception as e:               # noqa: BLE001 - the sweep must still run
        log(f"removing {tree.path}: {type(e).__name__}: {e}")
        gone = False
    if not gone:
        # Its lock file stays, so the next sweep or `runx gc` retries (and
        # says why); this reaper still sweeps what other runs left.
        log(f"could not remove {tree.path}; left to the sweep")
    release_and_sweep(job, log, gone)


def start_layer_compiler(job: Job, layer: str, log) -> None:
    """Byte-compile and freeze a freshly built layer
    (runx_env.reaper.finish.compile_and_freeze) in a child of the reaper, niced,
    while the payload runs. It drops the tree's lock and watch first: it
    must never look like the tree's owner, and the reaper does not wait for it."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        log(f"layer compiler: pid {pid}")
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
        from .finish import compile_and_freeze

        compile_and_freeze(layer, log)
    finally:
        os._exit(0)


def wait_for_leases(tree: str, log, exited=()) -> None:
    """Wait until no live process uses ``tree``; after every round the scan
    runs again, since holders may have started others. ``exited``: the
    payload, gone already."""
    for watches in leases.rounds(tree, log, exited):
        watch.wait_all(watches)


def release_and_sweep(job: Job, log, gone: bool = True) -> None:
    """Tree and lock file gone (or, ``gone`` False, the tree could not be
    removed): let go of the layer and the flock, then sweep. Ownerless trees
    still in use are adopted: this reaper holds their locks, waits for their
    holders and removes them, so a tree whose reaper was killed goes as soon
    as its last user does. A tree left keeps its lock held through the
    sweep, which would only fail on it again."""
    if job.layer_fd is not None:          # the tree is gone or unused: its layer may go too
        os.close(job.layer_fd)
        job.layer_fd = None
    if gone:
        os.close(job.tree.lock_fd)
        log(f"removed {job.tree.path}")
    from .sweep import sweep, sweep_due

    adopted: list = []
    if sweep_due(job.tree.runtime):
        sweep(job.tree.runtime, job.cache, adopt=adopted, log=log)
    else:
        log("sweep: another reaper swept a moment ago (many runs live)")
    if not gone:
        os.close(job.tree.lock_fd)        # before waiting on adopted trees: sweeps may retry it
    if adopted:
        reap_adopted(job.tree.runtime, adopted, log)


def reap_adopted(runtime: str, adopted: list, log) -> None:
    """Wait for the holders of every adopted tree at once (one long-lived
    holder must not hold the others hostage) and remove each tree as soon
    as nothing uses it."""
    from .sweep import unmount_if_dead

    fds = {os.path.join(runtime, tid): (tid, fd) for tid, fd in adopted}
    for path in fds:
        log(f"adopted {path}")

    def free(path):
        tid, fd = fds[path]
        unmount_if_dead(path)             # a --tree fuse tree whose server died with its watcher
        if ownership.remove(runtime, tid, lock_fd=fd):
            log(f"removed adopted {path}")
        else:                             # the lock file stays: the next sweep retries
            log(f"could not remove adopted {path}")

    leases.wait_free(list(fds), free, log)
