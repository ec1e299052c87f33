"""Who owns a tree: its lock file, and the order of making and removing.

A tree is ``<runtime>/<id>/`` plus its lock ``<runtime>/<id>.lock``. The lock
is flocked before the tree exists and is held until the tree is gone: by the
runner while it prepares the run, then by the reaper (the open file
description is shared across fork, and the runner's copy closes at exec).
A tree whose lock can be taken therefore has no owner, however the owner
died; no PID file, nothing PID reuse can fool.

Three rules, kept here and nowhere else:

- lock before tree (``create``): a tree never exists without its lock;
- tree first, lock last (``remove``): a tree without a lock file was never
  made by runx; a tree that cannot go (a mount in it, swapped for another
  directory) keeps its lock file, so the next sweep still knows it is runx's;
- a lock is ours only if, once flocked, its name still points at the inode
  we hold (``same_file``): a sweep may unlink a free lock between
  someone's open and flock.
"""

import fcntl
import os
import stat

from ..errors import RunxError

LOCK_SUFFIX = ".lock"


class Tree:
    """One run's tree, as the runner made it and the reaper inherits it."""

    def __init__(self, id: str, runtime: str, path: str, lock_fd: int, mode: str,
                 dev: int = 0, ino: int = 0):
        self.id = id
        self.runtime = runtime
        self.path = path
        self.lock_fd = lock_fd
        self.mode = mode                # "dir" | "fuse"
        self.dev = dev                  # the directory's identity, checked before removal
        self.ino = ino
        self.entries: list = []         # runx_env.runner.venv.Entry: written (dir) or served (fuse)

    @property
    def lock_path(self) -> str:
        return lock_path(self.runtime, self.id)

    @property
    def identity(self) -> tuple:
        return (self.dev, self.ino)


def lock_path(runtime: str, tree_id: str) -> str:
    return os.path.join(runtime, tree_id + LOCK_SUFFIX)


def same_file(fd: int, path: str) -> bool:
    """Whether ``fd`` is still the file (or directory) named ``path``, not
    following a final symlink. After a flock, this is what makes the lock
    ours: whoever removes a lock file, a build or a key directory renames
    or unlinks it while holding its lock, so a lock won on a name that
    meanwhile names another inode guards nothing."""
    try:
        st, st2 = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (st2.st_dev, st2.st_ino)


def create(runtime: str) -> tuple:
    """A new tree id with its lock file made and flocked: (id, lock fd).
    The caller then makes the tree directory."""
    import errno

    for _ in range(8):
        tid = os.urandom(6).hex()
        path = lock_path(runtime, tid)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o600)
        try:
            # Never waits: only a sweep can hold a lock file just made (it
            # took it between our open and our flock, and unlinks it); a
            # stopped sweep must not hang the run. Another id instead.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if same_file(fd, path):
                return tid, fd
        except BlockingIOError:
            pass
        os.close(fd)
    # Eight sweeps racing one run.
    raise OSError(errno.EBUSY, "eight new tree locks in a row were taken by a sweep")


def try_lock(path: str, *, wait: bool = False) -> int | None:
    """Open and flock ``path`` without waiting (``wait``: waiting for whoever
    holds it): the fd if it was free (so no one owns what it guards), None if
    held or gone."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        if same_file(fd, path):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def owned_locks(runtime: str, skip_held: bool = False):
    """(tree id, lock path) of every tree lock under ``runtime`` that belongs
    to this user, sorted by id. ``skip_held``: leave out the locks that
    /proc/locks shows held (``held_flocks``) — a filter to spare the open
    and flock of each, never a proof: a lock it lets through is still
    taken with ``try_lock`` before anything is done to its tree."""
    try:
        names = os.listdir(runtime)
    except OSError:
        return
    uid = os.geteuid()
    held = held_flocks() if skip_held else None
    for name in sorted(names):
        if not name.endswith(LOCK_SUFFIX) or name.startswith("."):
            continue
        p = os.path.join(runtime, name)
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_uid == uid:
            if held and (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) in held:
                continue
            yield name[: -len(LOCK_SUFFIX)], p


LOCKS = "/proc/locks"


def held_flocks() -> set:
    """(major, minor, inode) of every file a flock is held on, as
    /proc/locks lists them (empty where it cannot be read). Waiters ("->"
    lines) hold nothing; locks of processes in another PID namespace are not
    listed (so not filtered out)."""
    return set(flock_holders())


def flock_holders() -> dict:
    """(major, minor, inode) -> the PID holding a flock on that file, from
    /proc/locks (see ``held_flocks``)."""
    try:
        with open(LOCKS, "rb") as f:
            data = f.read()
    except OSError:
        return {}
    out = {}
    for line in data.splitlines():
        parts = line.split()
        # b"1:", b"FLOCK", b"ADVISORY", b"WRITE", pid, b"MAJ:MIN:INO", start, end
        if len(parts) < 6 or parts[1] != b"FLOCK":
            continue
        dev = parts[5].split(b":")
        try:
            out[(int(dev[0], 16), int(dev[1], 16), int(dev[2]))] = int(parts[4])
        except (ValueError, IndexError):
            continue
    return out


def remove(runtime: str, tree_id: str, *, expect: tuple | None = None,
           lock_fd: int | None = None, why: list | None = None) -> bool:
    """Remove the tree, then its lock file; if the tree stays, the lock file
    stays. ``expect``: the directory's (dev, ino), left alone if it is not
    that one. ``lock_fd`` (if given) is closed either way, after. Returns
    whether the tree is gone (``why``: see removal.remove_tree)."""
    from .removal import remove_tree

    try:
        gone = remove_tree(runtime, tree_id, expect=expect, why=why)
        if gone:
            try:
                os.unlink(lock_path(runtime, tree_id))
            except FileNotFoundError:   # removed by a --tree fuse reaper that failed to mount
                pass
        return gone
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


# --- Trust: a directory runx reads from or writes into must be this user's
# own and private, or another user could plant a layer, an interpreter
# answer or a tree swapped for a symlink (tests/test_trust.py).

_HINT = "set RUNX_RUNTIME_DIR / RUNX_CACHE_DIR to a directory of your own"


def trusted(path: str) -> bool:
    """Refuse a cache (or a directory in it) that is not ours and private,
    before anything in it is read: with a directory another user can write
    to, they could plant interpreter facts or a layer and have this user
    run their program. Missing is fine (nothing to read; made 0700 later).
    One stat: it is on the warm path. Returns whether it exists."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise RunxError(f"cannot use {path}: {e.strerror}", _HINT)
    check(path, st)
    return True


def trusted_file(fd: int, path: str) -> os.stat_result:
    """The same for a cached file read through ``fd``; returns its fstat."""
    st = os.fstat(fd)
    check(path, st, directory=False)
    return st


def read_private(path: str):
    """(contents, fstat) of a cached file under a checked cache, believed
    only from a directory and a file that are ours and private (another
    user could plant one in a shared cache: a RunxError then); None if it
    is missing or cannot be read."""
    trusted(os.path.dirname(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with open(fd, "rb") as f:
        st = trusted_file(fd, path)
        try:
            return f.read(), st
        except OSError:
            return None


def write_private(path: str, data: bytes) -> None:
    """``data`` into a cached file of ours (0600, its directory 0700),
    written under a temporary name and renamed: never seen half-written.
    A cache that cannot be written costs the next run the work again,
    nothing more: errors are ignored."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o600), "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        pass


def check(path: str, st: os.stat_result, directory: bool = True) -> None:
    """``path`` (whose stat is ``st``) is of the right kind, ours, and not
    writable by others; else a RunxError that says which."""
    if not (stat.S_ISDIR if directory else stat.S_ISREG)(st.st_mode):
        raise RunxError(f"{path} is not a {'directory' if directory else 'regular file'}", _HINT)
    if st.st_uid != os.geteuid():
        raise RunxError(f"{path} belongs to another user", _HINT)
    if st.st_mode & 0o022:
        raise RunxError(f"{path} is writable by other users (mode {st.st_mode & 0o777:o})",
                        f"run 'chmod go-w {path}', after checking what is in it")
