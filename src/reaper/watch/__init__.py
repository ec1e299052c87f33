"""Wait for a process to exit: one interface, one implementation per platform,
chosen once here. Nothing above this module asks which OS it runs on.

- Linux: pidfd (``_pidfd``). The runner opens a pidfd for its own PID before
  forking; the reaper inherits it, so there is no window in which the PID
  could be reused.
- macOS/BSD: kqueue ``EVFILT_PROC``/``NOTE_EXIT`` (``_kqueue``). kqueues are
  not inherited across fork, so the reaper registers itself and the runner
  waits for its "ok" on the handshake pipe before exec (NEEDS_ARMING,
  handoff.Handshake).
- Elsewhere: psutil polling with create-time identity (``_poll``); also
  armed by the reaper, since the runner must not import psutil.

Each module offers: ``NEEDS_ARMING``; ``prepare_self()`` (runner side, cheap,
before fork); ``arm(token)`` (reaper side) → Watch; ``watch(pid)`` → Watch or
ProcessLookupError. A Watch has ``pid``, ``fileno()`` (a pollable fd, or None)
``exited()`` and ``close()``.

What else differs per OS is asked here too, once, and nowhere else
(tests/test_structure.py): ``LINUX``, ``DARWIN``, ``machine()``, ``procfs()``
(the lease scan reads /proc) and ``die_with_parent()``. This module is on
the warm path anyway, so the facade costs no import.
"""

import os
import sys
import time

LINUX = sys.platform.startswith("linux")
DARWIN = sys.platform == "darwin"


def machine() -> str:
    """x86_64, aarch64, arm64... (a function: a syscall the warm path does
    not need)."""
    return os.uname().machine


def procfs() -> bool:
    """Whether /proc is Linux's, with what the lease scan reads per process;
    elsewhere (or with no /proc mounted) the scan asks psutil. A function:
    two stats the warm path does not need (the reaper asks, in leases)."""
    return os.path.isdir("/proc/self/fd") and os.path.exists("/proc/self/environ")


def die_with_parent():
    """A ``preexec_fn`` for a helper that must not outlive the process
    starting it (uv, the layer's compile): on Linux, PR_SET_PDEATHSIG with
    SIGKILL, and an exit if that process already died before the prctl took
    effect. None elsewhere: the helper then runs to its end. ctypes loads in
    the child, off the parent's clock."""
    if not LINUX:
        return None
    parent = os.getpid()

    def preexec() -> None:
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, 9)     # PR_SET_PDEATHSIG, SIGKILL
        except Exception:
            return
        if os.getppid() != parent:
            os._exit(3)

    return preexec


def _pidfd_works() -> bool:
    if not (LINUX and hasattr(os, "pidfd_open")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
        return True
    except OSError:          # ENOSYS before Linux 5.3, or blocked by seccomp
        return False


def _choose():
    if _pidfd_works():
        from . import _pidfd
        return _pidfd
    import select      # not on Linux's warm path: select is a shared library to load
    if hasattr(select, "kqueue"):
        from . import _kqueue
        return _kqueue
    from . import _poll
    return _poll


_impl = _choose()

NAME = _impl.__name__.rsplit("._", 1)[-1]
NEEDS_ARMING = _impl.NEEDS_ARMING
prepare_self = _impl.prepare_self
arm = _impl.arm
watch = _impl.watch


def wait_all(watches: list, timeout: float | None = None) -> list:
    """Block until every watched process has exited or ``timeout`` passes.
    Returns the watches still alive (empty when all are gone)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    alive = [w for w in watches if not w.exited()]
    delay = 0.01
    while alive:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            break
        delay = _block(alive, remaining, delay)
        alive = [w for w in alive if not w.exited()]
    return alive


def _block(ws: list, remaining: float | None, delay: float) -> float:
    """Wait until one of ``ws`` may have exited (an fd turns readable) or
    ``remaining`` seconds pass; watches without an fd (polling platforms)
    get a bounded back-off instead. Returns the next back-off delay."""
    if all(w.fileno() is not None for w in ws):
        import select       # the reaper's: the runner only prepares the watch

        p = select.poll()
        for w in ws:
            p.register(w.fileno(), select.POLLIN)
        p.poll(None if remaining is None else max(0, int(remaining * 1000)) + 1)
        return delay
    time.sleep(delay if remaining is None else min(delay, remaining))
    return min(delay * 2, 0.5)


def wait_group(groups: list, timeout: float | None = None) -> None:
    """Block until every watch of at least one of ``groups`` (lists of
    watches) has exited, or ``timeout`` passes: adoption waits for several
    trees at once and handles each as soon as its holders are gone."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    while True:
        alive = [[w for w in g if not w.exited()] for g in groups]
        if any(not g for g in alive):
            return
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        delay = _block([w for g in alive for w in g], remaining, delay)
