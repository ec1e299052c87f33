"""Where runx keeps things: the cache (layers, interpreter facts) and the
runtime directory (live trees and their locks). Both are per user, 0700."""

import os
from stat import S_ISDIR as stat_isdir, S_ISREG as stat_isreg

from .. import boot
from ..errors import RunxError
from ..reaper.ownership import check


# Where each directory comes from, first found wins (README and
# docs/design.md, "Where things live"): runx's own variable;
# systemd's directory for the service (CacheDirectory=, StateDirectory=,
# RuntimeDirectory=: made for this user, removed or kept by the service
# manager); XDG; the home directory. A systemd or XDG directory that is not
# this user's own and private is passed over, never used: after su, sudo -E
# or in cron with a copied environment it names another user's directory (or
# none at all). runx's own variables are the user's explicit choice: used as
# given, and refused if untrustworthy.

_HINT = "set RUNX_RUNTIME_DIR / RUNX_CACHE_DIR to a directory of your own"


# The cache's rules live in boot.py, which the runx command loads before the
# runner (to find runx's own byte-code in the cache), so imports no runx module.
_unusable = boot.unusable
_systemd_dir = boot.systemd_dir
cache_source = boot.cache_source
cache_dir = boot.cache_dir


def _runtime() -> tuple:
    """(the runtime directory, why XDG_RUNTIME_DIR was passed over or "")."""
    d = os.environ.get("RUNX_RUNTIME_DIR")
    if d:
        return os.path.realpath(d), ""
    sd = _systemd_dir("RUNTIME_DIRECTORY")
    if sd:
        return os.path.realpath(os.path.join(sd, "runx")), ""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    why = _unusable(xdg) if xdg else ""
    if xdg and not why:
        return os.path.realpath(os.path.join(xdg, "runx")), ""
    return os.path.realpath(os.path.join(cache_dir(), "runs")), (
        f"XDG_RUNTIME_DIR {xdg} {why}" if why else "")


def runtime_dir(log=None) -> str:
    """Resolved (realpath): the kernel reports a holder's cwd, exe and maps
    resolved, so the tree path, RUNX_ENV and VIRTUAL_ENV must be spelt the
    same way, or a process working in a tree reached through a symlink
    (/home -> /var/home, a symlinked XDG_RUNTIME_DIR) would not count as
    using it. lstat per component: cheap enough for the warm path.
    ``log`` (-v) hears why XDG_RUNTIME_DIR was passed over."""
    path, why = _runtime()
    if why and log is not None:
        log(f"{why}: passed over, trees go to {path} instead")
    return path


def make_runtime_dir(log=None) -> str:
    """The runtime directory, made if needed and checked (private_dir). When
    XDG_RUNTIME_DIR was passed over and the fallback cannot be used either,
    no trustworthy place is left: one line that says both and names the
    variable to set."""
    path = runtime_dir(log)
    try:
        return private_dir(path)
    except RunxError as e:
        why = _runtime()[1]
        if why:
            e.message = f"{e.message}, and {why}"
            e.hint = "set RUNX_RUNTIME_DIR to a directory of your own"
        raise


def _parent_problem(parent: str) -> str:
    """Why runx must not create a directory in ``parent``: another user owns
    it, or may rename in it (writable by others without the sticky bit, as
    /tmp has), and could swap what runx makes there; "" if it is safe."""
    try:
        st = os.stat(parent)
    except OSError:
        return ""               # makedirs reports it
    if st.st_uid not in (os.geteuid(), 0):
        return f"{parent} belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022 and not st.st_mode & 0o1000:
        return f"{parent} is writable by other users (mode {st.st_mode & 0o777:o})"
    return ""


def private_dir(path: str) -> str:
    """Create ``path`` (mode 0700) if needed and check that it is ours and private.

    Trees and locks live here; a directory another user can write to would let
    them swap a tree for a symlink, so refuse it rather than work around it.
    Nor is it made in a directory another user controls (issue 20.8: root
    with another user's XDG_RUNTIME_DIR or HOME).
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
        problem = _parent_problem(parent)
        if problem:
            raise RunxError(f"cannot create {path}: {problem}", _HINT)
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            st = os.stat(path)
        except OSError as e:
            if path == os.path.expanduser("~"):      # a system user's /nonexistent
                raise RunxError(f"cannot create {path}: {e.strerror} (it is the home "
                                "directory of this user, which has none)",
                                "set RUNX_CACHE_DIR, or in a systemd unit CacheDirectory=")
            raise RunxError(f"cannot create {path}: {e.strerror}",
                            "set RUNX_RUNTIME_DIR / RUNX_CACHE_DIR to a writable directory")
    except OSError as e:       # ENOTDIR (a file on the way), EACCES, ELOOP
        raise RunxError(f"cannot use {path}: {e.strerror}", _HINT)
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


# The one limit on a file runx reads whole: env files, requirements and uv
# config files (identity), scripts' metadata.
MAX_INPUT = 16 << 20


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
        raise UsageError(f"cannot read {what} {path}: larger than {MAX_INPUT >> 20} MiB", hint)
    return data
