"""Elsewhere: poll with psutil, identifying the process by its create time so
a reused PID is never mistaken for the one we watch. A zombie has exited."""

import os

NEEDS_ARMING = True


class Watch:
    def __init__(self, pid: int):
        import psutil

        self.pid = pid
        self._psutil = psutil
        try:
            self.proc = psutil.Process(pid)   # records create_time
        except psutil.NoSuchProcess:
            raise ProcessLookupError(pid)

    def fileno(self):
        return None

    def exited(self) -> bool:
        ps = self._psutil
        try:
            return (not self.proc.is_running()) or self.proc.status() == ps.STATUS_ZOMBIE
        except ps.NoSuchProcess:
            return True

    def close(self) -> None:
        pass


def prepare_self():
    return os.getpid()


def arm(token) -> Watch:
    return Watch(token)


def watch(pid: int) -> Watch:
    return Watch(pid)
