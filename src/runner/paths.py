"""Where runx keeps things: the cache (layers, interpreter facts) and the
runtime directory (live trees and their locks). Both are per user, 0700."""

import os
import sys

from runner.errors import RunxError


def cache_dir() -> str:
    d = os.environ.get("RUNX_CACHE_DIR")
    if d:
        return os.path.abspath(d)
    if sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "runx")


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
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            st = os.stat(path)
        except OSError as e:
            raise RunxError(f"cannot create {path}: {e.strerror}",
                            "set RUNX_RUNTIME_DIR / RUNX_CACHE_DIR to a writable directory")
    if st.st_uid != os.geteuid():
        raise RunxError(f"{path} belongs to another user",
                        "set RUNX_RUNTIME_DIR / RUNX_CACHE_DIR to a directory of your own")
    if st.st_mode & 0o022:
        raise RunxError(f"{path} is writable by other users (mode {st.st_mode & 0o777:o})",
                        f"run 'chmod 700 {path}'")
    return path
