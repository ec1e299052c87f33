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


def mounts() -> list | None:
    """(mount point, file system type) of every mount this process sees, as
    bytes, from /proc/self/mountinfo (its one reader); None where there is
    no mountinfo (not Linux)."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            data = f.read()
    except OSError:
        return None
    out = []
    for line in data.splitlines():
        # ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ...
        left, _, right = line.partition(b" - ")
        fields = left.split(b" ", 5)
        if len(fields) < 5:
            continue
        out.append((unescape_mountinfo(fields[4]), right.split(b" ", 1)[0]))
    return out


def mounts_under(path: str) -> list | None:
    """Mount points at or below ``path`` (resolved); None where there is no
    mountinfo (not Linux)."""
    want = os.fsencode(os.path.realpath(path))
    prefix = want.rstrip(b"/") + b"/"
    found = mounts()
    if found is None:
        return None
    return [os.fsdecode(mp) for mp, _ in found if mp == want or mp.startswith(prefix)]


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


def remove_tree(parent: str, name: str, expect: tuple | None = None) -> bool:
    """Remove ``parent/name``. ``expect`` = (st_dev, st_ino) it must still have.
    Returns True when the tree is gone (or was already); False when it was
    left, in whole or in part (``why_kept`` says why)."""
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
            if not _clear(fd, st, mount_id(fd)):
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


def _clear(dfd: int, st: os.stat_result, mnt: int | None) -> bool:
    """Empty the directory ``dfd``; False if anything was left in it."""
    if st.st_mode & 0o300 != 0o300:
        os.chmod(dfd, stat.S_IMODE(st.st_mode) | 0o700)
    complete = True
    for entry in os.scandir(dfd):
        name = entry.name
        try:
            est = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(est.st_mode):
            if est.st_dev != st.st_dev:
                complete = False
                continue                      # a mount point: never cross it
            try:
                sub = os.open(name, _DIR, dir_fd=dfd)
            except OSError:
                complete = False
                continue
            try:
                sst = os.fstat(sub)
                if (sst.st_dev, sst.st_ino) != (est.st_dev, est.st_ino):
                    complete = False
                    continue                  # swapped between stat and open
                if mnt is not None and mount_id(sub) != mnt:
                    complete = False
                    continue                  # a bind mount (same st_dev): never enter
                if not _clear(sub, sst, mnt):
                    complete = False
                    continue
            finally:
                os.close(sub)
            try:
                os.rmdir(name, dir_fd=dfd)
            except FileNotFoundError:
                pass
            except OSError:      # a mount point we skipped, or refilled meanwhile
                complete = False
        else:
            try:
                os.unlink(name, dir_fd=dfd)
            except FileNotFoundError:
                pass
            except OSError:      # EBUSY: a file bind-mounted over this one
                complete = False
    return complete
