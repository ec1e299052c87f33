"""Start the reaper, then become the payload. Everything about the payload's
process — its PID, signals, fds, environment — is decided here.

Why a double fork: a single fork would leave the reaper as the payload's
child after the exec (a stray child the payload never asked for, and a
``wait(-1)`` in the payload that reaps it or hangs). The middle process calls
setsid and forks the reaper, then exits; the runner reaps the middle process
before the exec, so the payload starts with no children.
"""

import os
import sys

from ..faults import fault_point
from ..errors import EXIT_ENV, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, RunxError

TYPE_CHECKING = False     # not typing's: see tests/test_warm_path.py
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import NoReturn


def start_reaper(job, *, report_pid: bool = False):
    """Double fork the reaper. Returns once the middle process is forked:
    ``Started.wait()`` reaps it (and, when the reaper's side needs a
    handshake, handoff.Job.needs_handshake, waits for its "ok"), so the
    runner can prepare the exec while the middle forks the reaper and
    exits. With ``report_pid`` (runx -v only: the warm path makes no extra
    pipe) the middle process writes the reaper's pid on a pipe, and wait()
    returns it; otherwise None."""
    from ..reaper import handoff   # small: the reaper's own code loads after the fork

    log_path = os.environ.get("RUNX_REAPER_LOG")
    pr = pw = None
    hs = job.handshake = handoff.Handshake() if job.needs_handshake else None
    if report_pid:
        pr, pw = os.pipe()      # the middle writes the reaper's pid
    flush_stdio()
    try:
        pid = os.fork()
    except OSError as e:                           # EAGAIN: RLIMIT_NPROC reached
        for fd in (pr, pw):
            if fd is not None:
                os.close(fd)
        if hs is not None:
            hs.close()
        raise RunxError(f"cannot start the reaper: {e.strerror}",
                        "too many processes: check the process limit (ulimit -u)")
    if pid == 0:                                   # middle process
        code = 1
        try:
            if hs is not None:
                hs.reaper_side()
            os.setsid()
            # Let go of the caller's fds here, not in the reaper: the runner
            # waits for this process, so by the exec nothing of runx holds
            # the caller's pipes, sockets or NOTIFY_SOCKET, and the reaper
            # never had them.
            handoff.release_caller_fds(job.fds() + ([pw] if pw is not None else []))
            reaper = os.fork()
            if reaper == 0:                        # the reaper
                handoff.block_signals()            # deaf until daemon.detach()
                fault_point("reaper")
                if pw is not None:
                    os.close(pw)
                from ..reaper import daemon

                daemon.main(job, log_path)         # never returns
            if pw is not None:
                os.write(pw, b"%d\n" % reaper)
            code = 0
        finally:
            os._exit(code)
    if hs is not None:
        hs.runner_side()
    if pw is not None:
        os.close(pw)
    return Started(pid, pr, hs)


class Started:
    """The middle process of a reaper being started, until wait() reaps it."""

    def __init__(self, pid: int, pid_pipe, handshake):
        self.pid = pid
        self.pid_pipe = pid_pipe
        self.handshake = handshake
        self.done = False
        self.reaper_pid: int | None = None

    def wait(self):
        """Reap the middle process; the reaper's pid (``report_pid``) or
        None. Raises RunxError if the reaper could not start or said why
        the run cannot go on. Must be called before the exec."""
        if self.done:
            return self.reaper_pid
        self.done = True
        while True:
            try:
                _, status = os.waitpid(self.pid, 0)
                break
            except ChildProcessError:   # SIGCHLD ignored by the caller: auto-reaped
                status = 0
                break
        # The middle process's exit raised SIGCHLD; if the caller runs us with
        # SIGCHLD blocked it stays pending, and pending signals survive exec:
        # the payload would start with a SIGCHLD it never earned.
        from ..reaper.handoff import signal_module

        sigmod = signal_module()
        if sigmod.SIGCHLD in sigmod.sigpending():
            sigmod.sigtimedwait([sigmod.SIGCHLD], 0)
        if self.pid_pipe is not None:
            try:
                if status == 0:
                    self.reaper_pid = int(os.read(self.pid_pipe, 32) or 0) or None
            finally:
                os.close(self.pid_pipe)
        if status != 0:
            raise RunxError("could not start the reaper", "check the process limit (ulimit -u)")
        if self.handshake is not None:
            problem = self.handshake.wait()
            if problem:
                raise RunxError(problem, None, EXIT_ENV)
        return self.reaper_pid


# A signal before the exec (runx_env.runner.interrupt): asynchronous
# signals whose default action ends the process. Not PIPE and XFSZ (Python
# ignores them at start-up), not the synchronous faults.
TERMINATING = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM",
               "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGIO", "SIGPWR", "SIGSTKFLT")


def terminating(sigmod) -> list:
    return [getattr(sigmod, n) for n in TERMINATING if hasattr(sigmod, n)]


def hold_signals():
    """Block the terminating signals (from the tree's lock to the reaper's
    fork, where a death would leave a tree no reaper removes); the mask to
    give ``release_signals``. Two system calls: on the warm path too."""
    from ..reaper.handoff import signal_module

    sigmod = signal_module()
    return sigmod.pthread_sigmask(sigmod.SIG_BLOCK, terminating(sigmod))


def release_signals(old) -> None:
    """Restore the mask ``hold_signals`` returned. A terminating signal that
    came meanwhile, and that the caller neither blocked nor ignored, is
    raised as Interrupted instead (left blocked: cli.main re-raises it
    with its default action, after saying what it interrupted)."""
    from ..reaper.handoff import signal_module

    sigmod = signal_module()
    pending = sigmod.sigpending()
    if pending:
        for sig in terminating(sigmod):
            if sig in pending and sig not in old and sigmod.getsignal(sig) != sigmod.SIG_IGN:
                raise interrupted(sig)
    sigmod.pthread_sigmask(sigmod.SIG_SETMASK, old)


def interrupted(sig: int):
    """The Interrupted to raise for ``sig``: the first signal's, whatever came after."""
    from ..errors import Interrupted

    if Interrupted.caught is None:
        Interrupted.caught = sig
    return Interrupted(Interrupted.caught)


def hold_std_fds() -> None:
    """If the caller closed fd 0, 1 or 2, park /dev/null there (close-on-exec)
    until the exec. Otherwise the first fd runx opens — the tree's lock —
    would land on it, and whatever later treats 0-2 as stdio would clobber
    it. The payload still starts with the fd closed, as the caller meant."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)   # lowest free fd: this one


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:          # None when the caller closed the fd
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


def resolve(command: str, path_var: str) -> str:
    """Find COMMAND as execvp would, with the shell's exit codes."""
    if "/" in command:
        candidates = [command]
    else:
        candidates = [os.path.join(d or ".", command) for d in path_var.split(os.pathsep)]
    denied = None
    for c in candidates:
        if os.path.isfile(c):
            if os.access(c, os.X_OK):
                return c
            denied = denied or c
        elif "/" in command and os.path.isdir(c):
            denied = c
    if denied:
        raise RunxError(f"{command}: permission denied (not an executable file: {denied})",
                        "check the file's mode (chmod +x) or the command's name",
                        EXIT_NOT_EXECUTABLE)
    if "/" in command:
        raise RunxError(f"{command}: no such file", "check the path", EXIT_NOT_FOUND)
    raise RunxError(f"{command}: command not found in the environment or on PATH",
                    "install the package that provides it with --with PKG",
                    EXIT_NOT_FOUND)


def payload_env(tree_path: str, base: "Mapping[str, str]") -> dict:
    env = dict(base)
    env["VIRTUAL_ENV"] = tree_path
    env["PATH"] = os.path.join(tree_path, "bin") + os.pathsep + base.get("PATH", os.defpath)
    env["RUNX_ENV"] = tree_path
    env.pop("__PYVENV_LAUNCHER__", None)   # macOS framework builds: would point at runx's python
    return env


def exec_payload(path: str, argv: list, env: dict) -> "NoReturn":
    """Become the payload. Same PID, same parent, same fds (fd 3+ from the
    caller stay open: socket activation); runner-made fds are close-on-exec."""
    # Python sets SIGPIPE and SIGXFSZ to SIG_IGN at start-up, and SIG_IGN
    # survives exec: `runx … | head` would then see EPIPE instead of dying
    # quietly. Restore them as subprocess's restore_signals=True does. Other
    # handlers Python installed (SIGINT) reset to SIG_DFL by exec itself; a
    # signal the caller had ignored (nohup's SIGHUP) stays ignored.
    from ..reaper.handoff import signal_module

    sigmod = signal_module()
    for name in ("SIGPIPE", "SIGXFSZ"):
        sig = getattr(sigmod, name, None)
        if sig is not None:
            sigmod.signal(sig, sigmod.SIG_DFL)
    # Python's buffers die with the exec.
    flush_stdio()
    try:
        os.execve(path, argv, env)
    except OSError as e:
        code = EXIT_NOT_FOUND if e.errno == 2 and not os.path.exists(path) else EXIT_NOT_EXECUTABLE
        raise RunxError(f"cannot execute {path}: {e.strerror}",
                        "check the script's #! line and the file's mode", code)
