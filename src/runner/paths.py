"""Where runx keeps things: the cache (layers, interpreter facts) and the
runtime directory (live trees and their locks). Both are per user, 0700."""

import os
from stat import S_ISDIR as stat_isdir, S_ISREG as stat_isreg

from .. import boot
from ..errors import RunxError
from ..reaper.ownership import check


def cache_dir() -> str:
    # Decided in boot.py, which the runx command loads before the runner
    # (to find runx's own byte-code in the cache) and so imports no runx module.
    return boot.cache_dir()


def runtime_dir() -> str:
    """Resolved (realpath): the kernel reports a holder's cwd, exe and maps
    resolved, so the tree path, RUNX_ENV and VIRTUAL_ENV must be spelt the
    same way, or a process working in a tree reached through a symlink
    (/home -> /var/home, a symlinked XDG_RUNTIME_DIR) would not count as
    using it. lstat per component: cheap enough for the warm path."""
    d = os.environ.get("RUNX_RUNTIME_DIR")
    if d:
        return os.path.realpath(d)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.realpath(os.path.join(xdg, "runx"))
    return os.path.realpath(os.path.join(cache_dir(), "runs"))


def private_dir(path: str) -> str:
    """Create ``path`` (mode 0700) if needed and check that it is ours and private.

    Trees and locks live here; a directory another user can write to would let
    them swap a tree for a symlink, so refuse it rather than work around it.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent != path and not os.path.exists(parent):
            # Missing parents too are made 0700 (makedirs would give them
            # the umask's mode: the cache, parent of runs/, would then be
            # refused as writable by others on the next run).
            private_dir(parent)
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            st = os.stat(path)
        except OSError as e:
            raise RunxError(f"cannot create {path}: {e.strerror}",
                            "set RUNX_RUNTIME_DIR / RUNX_CACHE_DIR to a writable directory")
    except OSError as e:       # ENOTDIR (a file on the way), EACCES, ELOOP
        raise RunxError(f"cannot use {path}: {e.strerror}",
                        "set RUNX_RUNTIME_DIR / RUNX_CACHE_DIR to a directory of your own")
    check(path, st)
    return path


def ancestors(path: str):
    """``path``, then each directory above it up to the root: where uv looks
    for its configuration and .python-version files."""
    while path:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


MAX_INPUT = 16 << 20     # env files, requirements files, scripts' metadata


def read_input(path: str, what: str, hint: str) -> bytes:
    """A file the user named (--env-file, --with-requirements, a script),
    read whole: a regular file of at most 16 MiB. /dev/zero would be read
    forever (gigabytes of memory) and a FIFO would hang on open or read:
    refuse both, with a usage error. The open does not block (O_NONBLOCK),
    so a FIFO with no writer is refused too instead of hanging."""
    from ..errors import UsageError

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror}", hint)
    st = os.fstat(fd)
    if not stat_isreg(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat_isdir(st.st_mode) else "a device, FIFO or socket"
        raise UsageError(f"cannot read {what} {path}: not a regular file ({kind})", hint)
    with open(fd, "rb") as f:
        try:
            data = f.read(MAX_INPUT + 1)
        except OSError as e:
            raise UsageError(f"cannot read {what} {path}: {e.strerror}", hint)
    if len(data) > MAX_INPUT:
        raise UsageError(f"cannot read {what} {path}: larger than 16 MiB", hint)
    return data
