"""Remove a tree without ever touching anything outside it.

Everything goes through directory fds opened with O_NOFOLLOW: a symlink in
the tree is unlinked, never followed; a tree whose path was swapped for a
symlink or another directory (checked by inode) is left alone; other
filesystems mounted inside are not entered; trees of other users are not
touched. Directories made read-only (cached layers, or a payload's own) are
made writable just before they are emptied.
"""

import os
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(parent: str, name: str, expect: tuple | None = None) -> bool:
    """Remove ``parent/name``. ``expect`` = (st_dev, st_ino) it must still have.
    Returns True when the tree is gone (or was already)."""
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
            _clear(fd, st)
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


def _clear(dfd: int, st: os.stat_result) -> None:
    if st.st_mode & 0o300 != 0o300:
        os.chmod(dfd, stat.S_IMODE(st.st_mode) | 0o700)
    for entry in os.scandir(dfd):
        name = entry.name
        try:
            est = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(est.st_mode):
            if est.st_dev != st.st_dev:
                continue                      # a mount point: never cross it
            try:
                sub = os.open(name, _DIR, dir_fd=dfd)
            except OSError:
                continue
            try:
                sst = os.fstat(sub)
                if (sst.st_dev, sst.st_ino) != (est.st_dev, est.st_ino):
                    continue                  # swapped between stat and open
                _clear(sub, sst)
            finally:
                os.close(sub)
            try:
                os.rmdir(name, dir_fd=dfd)
            except OSError:      # gone already, or holds a mount point we skipped
                pass
        else:
            try:
                os.unlink(name, dir_fd=dfd)
            except FileNotFoundError:
                pass
