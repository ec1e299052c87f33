"""What the runner hands the reaper across the fork, and the little the
fork itself needs: the Job (the tree, its watch token, what to do around
it), the Handshake, and the middle process's release of the caller's fds.

The runner imports this module and nothing else of the reaper but
``ownership`` and ``watch``: the reaper's own code (runx_env.reaper.daemon,
leases, sweep) is imported by the reaper after the fork, while the payload
starts, so a warm run never pays for it (docs/design.md, "Warm path").
"""

import os

from . import ownership, watch


class Handshake:
    """The reaper's one answer to the runner before the exec: "ok" (the
    payload is watched, a FUSE tree answers), or why the run cannot go on.
    A pipe: the reaper holds the write end, the runner reads; a reaper that
    dies unanswered reads as end of file."""

    def __init__(self):
        read_fd, write_fd = os.pipe()     # both close-on-exec (PEP 446)
        self.read_fd: int | None = read_fd
        self.write_fd: int | None = write_fd

    def reaper_side(self) -> None:
        """In the processes forked for the reaper: they only write."""
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None

    def runner_side(self) -> None:
        """In the runner once the reaper is forked: it only reads."""
        if self.write_fd is not None:
            os.close(self.write_fd)
            self.write_fd = None

    def close(self) -> None:
        self.reaper_side()
        self.runner_side()

    @property
    def answered(self) -> bool:
        return self.write_fd is None

    def reply(self, message: str) -> None:
        """(Reaper) "ok", or "error: WHAT (HINT)"; only the first reply counts."""
        if self.write_fd is None:
            return
        try:
            os.write(self.write_fd, message.encode() + b"\n")
        except OSError:
            pass
        self.runner_side()

    def wait(self) -> str | None:
        """(Runner) None once the reaper said "ok", else what went wrong."""
        assert self.read_fd is not None
        with os.fdopen(self.read_fd, "rb") as f:
            self.read_fd = None
            answer = f.readline().decode(errors="replace").strip()
        if answer == "ok":
            return None
        return answer[len("error: "):] if answer.startswith("error: ") else "the reaper died"


class Job:
    """What the reaper is handed across the fork: the tree (with its lock,
    which the reaper then owns) and what it must do around it."""

    def __init__(self, tree: ownership.Tree, token, *, cache: str | None = None,
                 keep: bool = False, compile_layer: str | None = None,
                 layer_fd: int | None = None):
        self.tree = tree
        self.token = token                 # from watch.prepare_self(), made before the fork
        self.cache = cache
        self.keep = keep
        self.compile_layer = compile_layer  # a layer to byte-compile and freeze, or None
        # The layer's build dir, flock'ed shared by the run (layers.lookup):
        # held until the tree is gone, so `runx cache prune`/`clean` never
        # remove a layer while its tree (and the payload) may use it.
        self.layer_fd = layer_fd
        self.handshake: Handshake | None = None    # see launch.start_reaper

    @property
    def needs_handshake(self) -> bool:
        """Whether the runner must wait for the reaper's answer before the
        exec: a kqueue watch can only be armed by the reaper itself (kqueue
        fds are not inherited), and a FUSE tree must answer before the
        payload looks into it. A pidfd watch on a dir tree needs none."""
        return watch.NEEDS_ARMING or self.tree.mode == "fuse"

    def fds(self) -> list:
        fds = [self.tree.lock_fd]
        if self.layer_fd is not None:
            fds.append(self.layer_fd)
        if self.handshake is not None and self.handshake.write_fd is not None:
            fds.append(self.handshake.write_fd)
        fileno = getattr(self.token, "fileno", None)
        if fileno and fileno() is not None:
            fds.append(fileno())
        return fds


def release_caller_fds(keep: list) -> None:
    """stdio onto /dev/null, every other fd closed but ``keep``. Run in the
    middle process of the double fork (see runx_env.runner.launch), before the reaper
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


def block_signals() -> None:
    """First thing in the reaper, right after its fork: every signal blocked
    until daemon.detach() has ignored the ones the reaper must survive (a
    unit's SIGTERM, a terminal's SIGHUP) and unblocks the rest. Loading the
    reaper's code takes a millisecond, and a signal sent to the process
    group or the cgroup meanwhile would otherwise kill it with its tree
    unremoved; pending signals that detach() ignores are dropped. (glibc's
    reserved 32 and 33 cannot be blocked from Python: nobody sends them to
    a group, and detach() names the reaper only once they are ignored.)"""
    sigmod = signal_module()
    sigmod.pthread_sigmask(sigmod.SIG_BLOCK, sigmod.valid_signals())


def signal_module():
    """``_signal``, the C module behind ``signal``, which imports enum: CPU
    the payload would wait for. For the runner before its exec and for the
    reaper alike."""
    try:
        import _signal
    except ImportError:  # pragma: no cover - another implementation
        import signal as _signal
    return _signal
