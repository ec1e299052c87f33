"""macOS/BSD: kqueue EVFILT_PROC/NOTE_EXIT.

Untested here (this project's CI is Linux); the logic follows trio's
``_subprocess_platform/kqueue.py``. A kqueue is not inherited by a forked
child, so the reaper registers the runner's PID itself and tells the runner
it is armed before the exec. ESRCH on registration means the process is
already exiting or gone (trio relies on the same reading).
"""

import os
import select

NEEDS_ARMING = True


class Watch:
    def __init__(self, pid: int):
        self.pid = pid
        self.kq = select.kqueue()
        self.gone = False
        ev = select.kevent(pid, filter=select.KQ_FILTER_PROC,
                           flags=select.KQ_EV_ADD | select.KQ_EV_ONESHOT,
                           fflags=select.KQ_NOTE_EXIT)
        try:
            self.kq.control([ev], 0, 0)
        except ProcessLookupError:
            self.gone = True

    def fileno(self):
        return self.kq.fileno()

    def exited(self) -> bool:
        if not self.gone:
            self.gone = bool(self.kq.control(None, 1, 0))
        return self.gone

    def close(self) -> None:
        self.kq.close()


def prepare_self():
    return os.getpid()


def arm(token) -> Watch:
    return Watch(token)


def watch(pid: int) -> Watch:
    w = Watch(pid)
    if w.gone:
        w.close()
        raise ProcessLookupError(pid)
    return w
