"""Who still uses a tree: the lease holders.

A process holds a lease on a tree while it carries ``RUNX_ENV=<tree>`` in its
environment (the payload's descendants, daemonized ones included, however
they were reparented) or has its cwd, executable or a mapped file inside the
tree. Linux reads /proc directly (no psutil: the reaper stays small);
elsewhere psutil answers the same questions.

Zombies hold nothing: their environ, cwd and maps are gone.
"""

import os

_PROC = os.path.isdir("/proc/self/fd") and os.path.exists("/proc/self/environ")


def _inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree + "/")


def _proc_holds(pid: int, tree: str, marker: bytes, tree_b: bytes) -> bool:
    base = f"/proc/{pid}/"
    try:
        with open(base + "environ", "rb") as f:
            if marker in b"\0" + f.read():
                return True
    except OSError:
        pass
    for link in ("cwd", "exe"):
        try:
            if _inside(os.readlink(base + link), tree):
                return True
        except OSError:
            pass
    try:
        with open(base + "maps", "rb") as f:
            for line in f:
                i = line.find(b" /")
                if i >= 0:
                    p = line[i + 1:].rstrip(b"\n")
                    if p == tree_b or p.startswith(tree_b + b"/"):
                        return True
    except OSError:
        pass
    return False


def _psutil_holds(pid: int, tree: str) -> bool:
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        try:
            if p.environ().get("RUNX_ENV") == tree:
                return True
        except (psutil.AccessDenied, psutil.ZombieProcess):
            pass
        for get in (p.cwd, p.exe):
            try:
                if _inside(get() or "", tree):
                    return True
            except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
                pass
        try:
            return any(_inside(m.path, tree) for m in p.memory_maps())
        except (psutil.AccessDenied, psutil.ZombieProcess, NotImplementedError, OSError):
            return False
    except psutil.NoSuchProcess:
        return False


def holds(pid: int, tree: str) -> bool:
    if _PROC:
        return _proc_holds(pid, tree, b"\0RUNX_ENV=" + tree.encode() + b"\0",
                           tree.encode())
    return _psutil_holds(pid, tree)


def holders(tree: str, exclude: frozenset = frozenset()) -> list:
    """PIDs of live processes that still use ``tree``."""
    tree = tree.rstrip("/")
    exclude = exclude | {os.getpid()}
    if _PROC:
        marker = b"\0RUNX_ENV=" + tree.encode() + b"\0"
        tree_b = tree.encode()
        pids = (int(n) for n in os.listdir("/proc") if n.isdigit())
        return [p for p in pids if p not in exclude and _proc_holds(p, tree, marker, tree_b)]
    import psutil

    return [p for p in psutil.pids() if p not in exclude and _psutil_holds(p, tree)]


def watch_holders(tree: str) -> list:
    """A Watch (see reaper.watch) on every current lease holder. Each holder is
    re-checked once its watch is open, so a PID reused between the scan and
    the watch is not mistaken for it."""
    from reaper import watch

    watches = []
    for pid in holders(tree):
        try:
            w = watch.watch(pid)
        except (ProcessLookupError, PermissionError):
            continue
        if holds(pid, tree):
            watches.append(w)
        else:
            w.close()
    return watches


def rounds(tree: str, log=lambda msg: None):
    """The lease rounds, shared by the plain and the FUSE reaper, which only
    differ in how they wait (blocking poll, or trio): yields the watches of
    every current holder; once the caller has waited for all of them, scans
    again (holders may have started others), until no holder is left. The
    watches of a round are closed when the next round is asked for."""
    while True:
        watches = watch_holders(tree)
        if not watches:
            return
        log(f"waiting for {len(watches)} lease holder(s): {[w.pid for w in watches]}")
        try:
            yield watches
        finally:
            for w in watches:
                w.close()
