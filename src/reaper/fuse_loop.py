"""The event loop a ``--tree fuse`` reaper serves its mount with, in place
of trio: one thread, poll(2), coroutines.

Why not trio: importing it is most of a ``--tree fuse`` start (about 75 ms
of the 115 ms that ``import pyfuse3, trio`` costs a fresh interpreter;
docs/fuse.md, "Performance"), and the reaper needs little of an event loop:
wait until an fd is readable (the /dev/fuse session, the payload's pidfd or
kqueue, a worker thread's pipe), sleep, run a blocking call in a thread.

pyfuse3 reaches trio only through its module attribute ``pyfuse3.trio``,
which is what pyfuse3's own asyncio support (``pyfuse3.asyncio.enable()``)
replaces; the surface it uses is the one that module implements, and this
one implements the same: ``trio.lowlevel.current_trio_token()``,
``open_nursery()`` and ``start_soon(fn, *args, name=)``, ``Lock()``,
``lowlevel.wait_readable(fd)``, ``lowlevel.notify_closing(fd)``,
``ClosedResourceError`` and ``lowlevel.current_task().name``. ``load()``
imports pyfuse3 with this module standing in for trio (pyfuse3 imports trio
at module level but uses it only when it serves) and points pyfuse3 at it.

Semantics kept from trio where pyfuse3 or the reaper rely on them: a task
that fails ends ``run`` with its exception (a nursery's error propagates);
``notify_closing`` wakes a task waiting on the fd with ClosedResourceError;
the lock hands itself to its waiters in order. Nothing is cancelled: the
reaper stops the mount's task with ``pyfuse3.terminate()``, as before.
"""

import collections
import heapq
import os
import select
import sys
import time

_POLL_IN = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL


class ClosedResourceError(Exception):
    """The fd a task waits on is being closed (trio's name: pyfuse3 catches it)."""


class _Trap:
    """What a task yields to the loop: park on ``fd`` (with a deadline), or
    sleep until a deadline, or just wait to be woken by someone else."""

    __slots__ = ("fd", "deadline")

    def __init__(self, fd=None, deadline=None):
        self.fd = fd
        self.deadline = deadline

    def __await__(self):
        return (yield self)


class Task:
    __slots__ = ("coro", "name", "wait", "done", "joiners")

    def __init__(self, coro, name):
        self.coro = coro
        self.name = name
        self.wait = 0          # the serial of what it waits for; 0 when not waiting
        self.done = False
        self.joiners: list = []    # tasks waiting for this one to finish


class Loop:
    def __init__(self):
        self.ready: collections.deque = collections.deque()   # (task, value, exc)
        self.readers: dict = {}      # fd -> (task, serial)
        self.timers: list = []       # heap of (deadline, serial, task)
        self.poller = select.poll()
        self.serial = 0
        self.current: Task | None = None
        self.failed: BaseException | None = None
        # Seconds to keep polling without sleeping after an fd woke the loop
        # (0: never). See fuse_tree.SPIN for why a FUSE server wants it.
        self.spin = 0.0
        self.busy = False            # the last poll found something

    def spawn(self, coro, name=None) -> Task:
        t = Task(coro, name or getattr(coro, "__qualname__", "task"))
        self.ready.append((t, None, None))
        return t

    def wake(self, task: Task, value=None, exc=None) -> None:
        """Resume ``task`` (waiting on anything) with ``value`` or ``exc``."""
        fd = self._forget(task)
        if fd is not None:
            self.poller.unregister(fd)
        task.wait = 0
        self.ready.append((task, value, exc))

    def _forget(self, task: Task):
        for fd, (t, _) in self.readers.items():
            if t is task:
                del self.readers[fd]
                return fd
        return None

    def _step(self, task: Task, value, exc) -> None:
        self.current = task
        try:
            trap = task.coro.throw(exc) if exc is not None else task.coro.send(value)
        except BaseException as e:     # noqa: BLE001 - a failure ends the loop: run() raises it
            task.done = True
            if not isinstance(e, StopIteration) and self.failed is None:
                self.failed = e
            for j in task.joiners:
                self.wake(j)
            return
        finally:
            self.current = None
        if not isinstance(trap, _Trap):
            self.failed = RuntimeError(f"{task.name} awaited {trap!r}, not this loop's")
            return
        self.serial += 1
        task.wait = self.serial
        if trap.fd is not None:
            if trap.fd in self.readers:
                self.failed = RuntimeError(f"two tasks wait on fd {trap.fd}")
                return
            self.readers[trap.fd] = (task, self.serial)
            self.poller.register(trap.fd, _POLL_IN)
        if trap.deadline is not None:
            heapq.heappush(self.timers, (trap.deadline, self.serial, task))

    def run(self, coro) -> None:
        """Run ``coro`` (and the tasks it starts) until it returns."""
        main = self.spawn(coro, "main")
        while not main.done:
            while self.ready and self.failed is None:
                self._step(*self.ready.popleft())
            if self.failed is not None:
                raise self.failed
            if main.done:
                break
            timeout = None
            if self.timers:
                timeout = max(0, int((self.timers[0][0] - time.monotonic()) * 1000) + 1)
            elif not self.readers:
                raise RuntimeError("every task waits for another: nothing can happen")
            events: list = []
            if self.busy and self.spin:
                end = time.monotonic() + self.spin
                while not events and time.monotonic() < end:
                    events = self.poller.poll(0)
            if not events:
                events = self.poller.poll(timeout)
            self.busy = bool(events)
            for fd, _ in events:
                task, _ = self.readers.pop(fd)
                self.poller.unregister(fd)
                task.wait = 0
                self.ready.append((task, True, None))
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, serial, task = heapq.heappop(self.timers)
                if task.wait == serial:          # still waiting for this: time is up
                    self.wake(task, False)


_loop: Loop | None = None


def run(fn, *args, spin: float = 0.0):
    """Run ``fn(*args)`` (a coroutine function) on a new loop; its result.
    ``spin``: see Loop.spin."""
    global _loop
    assert _loop is None, "one loop at a time"
    _loop = Loop()
    _loop.spin = spin
    out: list = []

    async def main():
        out.append(await fn(*args))

    try:
        _loop.run(main())
    finally:
        _loop = None
    return out[0]


# --- what pyfuse3 uses of trio ---------------------------------------------

lowlevel = sys.modules[__name__]      # trio.lowlevel.X and trio.from_thread.X: this module
from_thread = lowlevel


def current_trio_token():
    return _loop


def current_task() -> Task | None:
    return _loop.current if _loop is not None else None


async def wait_readable(fd) -> None:
    """Until ``fd`` is readable (or has an error or hang-up to report)."""
    fd = fd if isinstance(fd, int) else fd.fileno()
    await _Trap(fd)


def notify_closing(fd) -> None:
    """Wake the task waiting on ``fd`` with ClosedResourceError."""
    if _loop is None:
        return
    fd = fd if isinstance(fd, int) else fd.fileno()
    hit = _loop.readers.get(fd)
    if hit is not None:
        _loop.wake(hit[0], exc=ClosedResourceError(f"fd {fd} is being closed"))


class Lock:
    """An async lock; released, it passes straight to its first waiter."""

    def __init__(self):
        self.held = False
        self.waiters: collections.deque = collections.deque()

    async def __aenter__(self):
        if self.held:
            assert _loop is not None and _loop.current is not None
            self.waiters.append(_loop.current)
            await _Trap()                       # woken owning the lock
        else:
            self.held = True

    async def __aexit__(self, *exc):
        if self.waiters:
            assert _loop is not None
            _loop.wake(self.waiters.popleft())
        else:
            self.held = False


class _Nursery:
    """Starts tasks; leaving it waits until they are all done. A task that
    fails ends the whole loop (run raises), as a trio nursery propagates."""

    def __init__(self):
        self.tasks: list = []

    async def __aenter__(self):
        return self

    def start_soon(self, fn, *args, name=None) -> None:
        assert _loop is not None
        self.tasks.append(_loop.spawn(fn(*args), name))

    async def __aexit__(self, *exc):
        for t in self.tasks:
            await join(t)


def open_nursery() -> _Nursery:
    return _Nursery()


# --- what the reaper uses --------------------------------------------------

async def join(task: Task) -> None:
    """Until ``task`` is done."""
    if not task.done:
        assert _loop is not None and _loop.current is not None
        task.joiners.append(_loop.current)
        await _Trap()


async def sleep(seconds: float) -> None:
    await _Trap(deadline=time.monotonic() + max(0.0, seconds))


async def wait_fd(fd: int, timeout: float | None = None) -> bool:
    """Whether ``fd`` became readable before ``timeout`` seconds passed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    return bool(await _Trap(fd, deadline))


async def in_thread(fn, *args, timeout: float | None = None):
    """``fn(*args)`` in a new thread, without blocking the loop (the loop's
    thread serves the mount, which ``fn`` may need). Returns its result or
    raises its exception; TimeoutError after ``timeout`` seconds, leaving
    the thread to finish (or hang) on its own."""
    import threading

    r, w = os.pipe()
    box: list = []

    def work():
        try:
            box.append((fn(*args), None))
        except BaseException as e:      # noqa: BLE001 - handed to the loop's side
            box.append((None, e))
        try:
            os.write(w, b"x")
        except OSError:
            pass
        os.close(w)

    try:
        threading.Thread(target=work, name="runx-fuse-worker", daemon=True).start()
        if not await wait_fd(r, timeout):
            raise TimeoutError(f"{getattr(fn, '__name__', fn)} took over {timeout} s")
    finally:
        os.close(r)
    value, exc = box[0]
    if exc is not None:
        raise exc
    return value


def load():
    """``import pyfuse3`` as the reaper needs it, and point it at this loop;
    the module.

    pyfuse3 imports two modules it does not need here, and they are most of
    its import time: trio (at module level; it is used only when serving,
    through ``pyfuse3.trio``, which now names this module) and
    importlib.metadata (only to set ``pyfuse3.__version__``; it loads email,
    zipfile, pathlib, csv, tempfile...). Both are stood in for while pyfuse3
    imports, and only if nobody imported them before (a test's interpreter
    keeps its own); pyfuse3.__version__ is then "unknown" in the reaper."""
    me = sys.modules[__name__]
    stand_ins = {"trio": me, "importlib.metadata": _metadata_stand_in()}
    placed = [name for name in stand_ins if name not in sys.modules]
    for name in placed:
        sys.modules[name] = stand_ins[name]
    try:
        import pyfuse3
    finally:
        for name in placed:
            if sys.modules.get(name) is stand_ins[name]:
                del sys.modules[name]
    # As pyfuse3.asyncio.enable() does. (Not installed, as for scripts/test
    # --fast, pyfuse3 is Any to mypy and the ignore is unused.)
    pyfuse3.trio = me  # type: ignore[attr-defined, unused-ignore]
    return pyfuse3


def _metadata_stand_in():
    """What pyfuse3 takes from importlib.metadata: ``version`` and
    ``PackageNotFoundError`` (raised: the version is not looked up)."""
    import types

    m = types.ModuleType("importlib.metadata", "stand-in while pyfuse3 imports")

    class PackageNotFoundError(ModuleNotFoundError):
        pass

    def version(name):
        raise PackageNotFoundError(name)

    m.__dict__.update(PackageNotFoundError=PackageNotFoundError, version=version)
    return m
