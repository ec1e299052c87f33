"""Linux: a pidfd becomes readable when the process exits (not when it execs).

For a process that is not our child the exit status is not available
(waitid gives ECHILD) and is not needed: only the fact of the exit is.
"""

import os

NEEDS_ARMING = False


class Watch:
    def __init__(self, pid: int, fd: int):
        self.pid = pid
        self.fd = fd

    def fileno(self):
        return self.fd

    def exited(self) -> bool:
        import select       # the reaper's, after the fork: not the runner's import

        p = select.poll()
        p.register(self.fd, select.POLLIN)
        return bool(p.poll(0))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def prepare_self():
    # Opened before the fork, inherited by the reaper: no PID race. pidfds
    # are close-on-exec, so the payload never sees it.
    pid = os.getpid()
    return Watch(pid, os.pidfd_open(pid))


def arm(token: Watch) -> Watch:
    return token


def watch(pid: int) -> Watch:
    return Watch(pid, os.pidfd_open(pid))     # ProcessLookupError if gone
