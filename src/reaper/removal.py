"""Remove a tree without ever touching anything outside it.

Everything goes through directory fds opened with O_NOFOLLOW: a symlink in
the tree is unlinked, never followed; a tree whose path was swapped for a
symlink or another directory (checked by inode) is left alone; trees of
other users are not touched. Directories made read-only (cached layers, or
a payload's own) are made writable just before they are emptied.

Mounts: no mount inside a tree is ever entered. st_dev alone cannot see a
bind mount of a directory of the same file system (same st_dev), which
would have the removal empty the bind's source outside the tree. So a tree
with any mount point at or under it (from /proc/self/mountinfo, read once)
is not touched at all and is reported (``mounts_under``); and while
clearing, every directory opened must carry the tree's own mount id
(/proc/self/fdinfo), which also catches a mount made after that read.
"""

import errno
import os
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def unescape_mountinfo(field: bytes) -> bytes:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if b"\\" not in field:
        return field
    out, i = bytearray(), 0
    while i < len(field):
        if field[i] == 0x5C and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(int(field[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return bytes(out)


def parse_mountinfo(data: bytes) -> list:
    """(mount point, root, major:minor, file system type) of each mount in a
    mountinfo file's bytes, unescaped: the one parser (removal, the sweep,
    the lease scan's other mount namespaces)."""
    out = []
    for line in data.splitlines():
        # ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ...
        left, _, right = line.partition(b" - ")
        fields = left.split(b" ", 5)
        if len(fields) < 5:
            continue
        out.append((unescape_mountinfo(fields[4]), unescape_mountinfo(fields[3]), fields[2],
                    right.split(b" ", 1)[0]))
    return out


def mounts() -> list | None:
    """``parse_mountinfo`` of every mount this process sees, from
    /proc/self/mountinfo (its one reader); None where there is no mountinfo
    (not Linux)."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return parse_mountinfo(data)


def mounts_under(path: str) -> list | None:
    """Mount points at or below ``path`` (resolved); None where there is no
    mountinfo (not Linux)."""
    want = os.fsencode(os.path.realpath(path))
    prefix = want.rstrip(b"/") + b"/"
    found = mounts()
    if found is None:
        return None
    return [os.fsdecode(mp) for mp, *_ in found if mp == want or mp.startswith(prefix)]


def mount_id(fd: int) -> int | None:
    """The mount id of an open fd (Linux: /proc/self/fdinfo), None if unknown."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def why_kept(parent: str, name: str) -> str:
    """Why ``remove_tree`` left ``parent/name``: for ``runx gc``'s message."""
    path = os.path.join(parent, name)
    mounts = mounts_under(path)
    if mounts:
        return f"{mounts[0]} is a mount point (umount it, then runx gc)"
    try:
        st = os.lstat(path)
    except OSError as e:
        return e.strerror or str(e)
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory any more (replaced by something else; remove it yourself)"
    if st.st_uid != os.geteuid():
        return "belongs to another user"
    return "some of its content could not be removed (check its permissions)"


def remove_tree(parent: str, name: str, expect: tuple | None = None,
                why: list | None = None) -> bool:
    """Remove ``parent/name``. ``expect`` = (st_dev, st_ino) it must still have.
    Returns True when the tree is gone (or was already); False when it was
    left, in whole or in part (``why_kept`` says why; when the walk itself
    stopped on an entry, that reason is appended to ``why``)."""
    pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(name, _DIR, dir_fd=pfd)
        except FileNotFoundError:
            return True
        except OSError:          # ELOOP/ENOTDIR: swapped for a symlink or a file
            return False
        try:
            st = os.fstat(fd)
            if expect and (st.st_dev, st.st_ino) != tuple(expect):
                return False
            if st.st_uid != os.geteuid():
                return False
            # The tree itself, or anything in it, is a mount point: leave it
            # whole (kept, with its lock file) rather than guess which
            # content is the tree's own. The path is the fd's own, resolved.
            try:
                real = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                real = os.path.join(parent, name)
            if mounts_under(real):
                return False
            if not _clear(fd, st, mount_id(fd), why):
                return False
        finally:
            os.close(fd)
        try:
            os.rmdir(name, dir_fd=pfd)
        except FileNotFoundError:
            pass
        except OSError:          # something was left (a mount point inside): say so
            return False
        return True
    finally:
        os.close(pfd)


class _Left(Exception):
    """Something in the tree cannot go (a mount point, a swapped entry, an
    error): the removal stops there and the tree is left, with its lock."""

    def __init__(self, name: str, e: OSError | None = None, what: str = ""):
        super().__init__(name)
        self.name = name
        self.what = what or (e.strerror if e is not None and e.strerror else "cannot remove it")

    def reason(self) -> str:
        return (f"cannot remove {self.name!r} in it: {self.what} "
                "(check its permissions and attributes, lsattr; then runx gc)")


# Open directories at most, whatever the depth: each holds its fd and its
# listing's (os.scandir dups the fd).
_WINDOW = 16


_ID = 16


def _dir_id(st: os.stat_result) -> bytes:
    """A directory's (st_dev, st_ino) in 16 bytes: a level of the walk's
    path (a bytearray of them, not array("Q"): importing array pulls in
    collections, 2.6 ms of every reaper's start)."""
    return st.st_dev.to_bytes(8, "little") + st.st_ino.to_bytes(8, "little")


def _clear(top: int, st: os.stat_result, mnt: int | None, why: list | None = None) -> bool:
    """Empty the directory ``top`` (an fd, left open); False if anything
    was left in it.

    Iterative, so neither depth nor width bounds it (a payload may leave a
    100,000-deep directory: one recursion per level died at Python's
    recursion limit, two fds per level at the fd limit). The walk goes down
    into the first subdirectory that is not empty and back up through
    ``..`` once it is; it keeps:

    - at most ``_WINDOW`` directories open (the deepest ones), each with
      its listing and the name of the subdirectory it entered, so a wide
      directory is listed once, not once per child;
    - the identity (st_dev, st_ino) of every directory from the top to
      where it is, 16 bytes a level: going up past the window, ``..`` must
      be that directory, or the walk stops (a directory moved out of the
      tree meanwhile: never climb out of the tree);
    - nothing else: a directory reopened through ``..`` is listed afresh,
      and every subdirectory is first rmdir'ed (the one just emptied goes;
      a non-empty one answers ENOTEMPTY and is entered).

    The first thing that cannot be removed stops the walk: the tree stays
    whole from there on (its lock file too) and the next sweep retries; a
    walk that went on past it would come back to it forever.
    """
    dev = st.st_dev
    ids = bytearray(_dir_id(st))
    _writable(top, st)
    levels: list = [[top, os.scandir(top), None, False]]   # fd, listing, entered, owned
    try:
        while True:
            lv = levels[-1]
            sub = _step(lv[0], lv[1], dev, mnt)
            if sub is not None:
                name, fd, sst = sub
                lv[2] = name
                ids += _dir_id(sst)
                try:
                    _writable(fd, sst)
                    levels.append([fd, os.scandir(fd), None, True])
                except OSError:
                    os.close(fd)
                    return False
                if len(levels) > _WINDOW:
                    _close(levels.pop(0))
                continue
            # lv's directory is empty now.
            if len(ids) == _ID:
                return True
            del ids[-_ID:]
            cur = levels.pop()
            cur[1].close()
            if levels:                      # the parent is open: resume its listing
                _close(cur)
                parent = levels[-1]
                try:
                    os.rmdir(parent[2], dir_fd=parent[0])
                except FileNotFoundError:
                    pass
                except OSError:             # refilled, or a mount point meanwhile
                    return False
                parent[2] = None
                continue
            try:                            # above the window: climb through '..'
                pfd = os.open("..", _DIR, dir_fd=cur[0])
            except OSError:
                _close(cur)
                return False
            _close(cur)
            pst = os.fstat(pfd)
            if _dir_id(pst) != ids[-_ID:]:
                os.close(pfd)
                return False                # moved: this is not the directory we came from
            try:
                levels.append([pfd, os.scandir(pfd), None, True])
            except OSError:
                os.close(pfd)
                return False
    except _Left as e:
        if why is not None:
            why.append(e.reason())
        return False
    finally:
        for lv in levels:
            _close(lv)


def _close(level: list) -> None:
    level[1].close()
    if level[3]:
        os.close(level[0])
        level[3] = False


def _writable(fd: int, st: os.stat_result) -> None:
    if st.st_mode & 0o300 != 0o300:
        os.chmod(fd, stat.S_IMODE(st.st_mode) | 0o700)


def _step(dfd: int, listing, dev: int, mnt: int | None):
    """Go on with ``listing`` of the directory ``dfd``: unlink what is not a
    directory, rmdir the empty subdirectories; return (name, fd, fstat) of
    the first one that is not empty, opened, to go down into; None once the
    listing is done. Raises _Left for anything that cannot go."""
    for entry in listing:
        name = entry.name
        try:
            est = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise _Left(name, e)
        if not stat.S_ISDIR(est.st_mode):
            try:
                os.unlink(name, dir_fd=dfd)
            except FileNotFoundError:
                pass
            except OSError as e:            # EBUSY: a file bind-mounted over this one
                raise _Left(name, e)
            continue
        if est.st_dev != dev:
            raise _Left(name, what="a mount point")   # never cross it
        try:
            os.rmdir(name, dir_fd=dfd)      # never enters anything; EBUSY on a mount point
            continue
        except FileNotFoundError:
            continue
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise _Left(name, e)
        try:
            sub = os.open(name, _DIR, dir_fd=dfd)
        except OSError as e:
            raise _Left(name, e)
        sst = os.fstat(sub)
        if (sst.st_dev, sst.st_ino) != (est.st_dev, est.st_ino) \
                or (mnt is not None and mount_id(sub) != mnt):
            # Swapped between stat and open, or a bind mount (same st_dev):
            # never enter.
            os.close(sub)
            raise _Left(name, what="a mount point, or replaced while being removed")
        return name, sub, sst
    return None
