"""The cache bounds itself: what nobody used for RUNX_CACHE_MAX_AGE goes.

Run by the reapers' sweep (``expire_if_due``: at most once an hour, or
once per max age if that is shorter) and by ``runx cache prune``. Every
removal of a build goes through runx_env.reaper.store.prune's lock order,
so a build a run holds, a key being built or compiled, or a layer a kept
tree names is never touched.
"""

import os
import time

from .. import boot
from ..errors import RunxError
from . import store

DEFAULT_MAX_AGE = 30 * 24 * 3600
EXPIRY_STAMP = "expiry.stamp"       # under the cache: when the sweep last expired
EXPIRY_EVERY = 3600                 # the sweep expires at most this often (or max age)


def max_age() -> float:
    """RUNX_CACHE_MAX_AGE: seconds a layer may go unused before it expires."""
    try:
        value = float(os.environ.get("RUNX_CACHE_MAX_AGE", DEFAULT_MAX_AGE))
    except ValueError:
        return DEFAULT_MAX_AGE
    return value if value >= 0 else DEFAULT_MAX_AGE


def expire(cache: str, in_use=frozenset(), *, dry: bool = False, now: float | None = None,
           age: float | None = None) -> tuple:
    """Remove every build not used for ``age`` seconds (RUNX_CACHE_MAX_AGE by
    default) and what no layer needs any more: interpreter answers not read
    for as long (or naming an executable that changed), script settings not
    used for as long, byte-code no layer links. Builds in use or being
    built stay (see prune). Returns (removed, [(path, why kept)])."""
    now = time.time() if now is None else now
    age = max_age() if age is None else age
    removed, kept = store.prune(cache, lambda _build, _current, used: store.age(used, now) > age,
                          dry=dry, in_use=in_use)
    removed += expire_files(cache, now - age, dry=dry)
    return removed, kept


def expire_files(cache: str, before: float, *, dry: bool) -> list:
    """The cache's small files that outlived their use, then its directories
    left empty."""
    import marshal

    removed = []
    # Interpreter answers are read, never rewritten, by the runs that use
    # them: their access time says when (relatime updates it at least
    # daily). On a noatime mount an answer is asked again after max age:
    # one `uv python find`.
    d = os.path.join(cache, store.INTERPRETERS)
    for name in _names(d):
        path = os.path.join(d, name)
        try:
            st = os.lstat(path)
            used = max(st.st_atime, st.st_mtime)
            stale = used < before
            if not dry:
                # From the future: now (and relatime would never move an
                # atime that is ahead of the clock).
                store.heal(path, used, time.time())
            if not stale:
                with open(path, "rb") as f:
                    info = marshal.loads(f.read())
                stale = any(store.file_signature(sig[0]) != tuple(sig) for sig in info["stats"])
        except (OSError, ValueError, EOFError, TypeError, KeyError):
            stale = True
        if stale:
            removed.append(path)
            if not dry:
                _unlink(path)
    # A script's [tool.uv] settings file: its mtime is its last use
    # (runner/pep723.py's _content_file touches it); rewritten by the next run needing it.
    d = os.path.join(cache, store.SCRIPT_SETTINGS)
    for name in _names(d):
        path = os.path.join(d, name)
        try:
            used = os.lstat(path).st_mtime
        except OSError:
            continue
        stale = used < before
        if not dry:
            store.heal(path, used, time.time())
        if stale:
            removed.append(path)
            if not dry:
                _unlink(path)
    # runx's own modules' byte-code (boot.py): read by every run of an
    # install that has none, so its access time says when it was last used;
    # written again by the next run that needs it.
    d = os.path.join(cache, boot.SELF_BYTECODE)
    for name in _names(d):
        path = os.path.join(d, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if max(st.st_atime, st.st_mtime) < before:
            removed.append(path)
            if not dry:
                _unlink(path)
    # Shared byte-code (store.BYTECODE) that no layer links any more.
    d = os.path.join(cache, store.BYTECODE)
    for sub in _names(d):
        for name in _names(os.path.join(d, sub)):
            path = os.path.join(d, sub, name)
            try:
                orphan = os.lstat(path).st_nlink == 1
            except OSError:
                continue
            if orphan:
                removed.append(path)
                if not dry:
                    _unlink(path)
        if not dry:
            try:
                os.rmdir(os.path.join(d, sub))
            except OSError:
                pass        # not empty, or a finisher is linking into it (it retries)
    removed += _expire_editors(cache, before, dry=dry)
    # Nothing empty left behind: every writer makes its directory again
    # (and retries if it loses a race with this rmdir).
    for sub in (store.BYTECODE, store.INTERPRETERS, store.SCRIPT_SETTINGS, store.LAYERS,
                store.EDITORS, boot.SELF_BYTECODE):
        if not dry:
            try:
                os.rmdir(os.path.join(cache, sub))
            except OSError:
                pass        # not empty, or not there
    return removed


def _expire_editors(cache: str, before: float, *, dry: bool) -> list:
    """Editors' interpreters (runner/editor.py) whose layer is gone: each
    lives as long as its key has a current build. Also what a killed
    rewrite left: a venv or link beside them that no editor names, older
    than ``before``."""
    import json

    from .removal import remove_tree

    d = os.path.join(cache, store.EDITORS)
    removed = []
    names = _names(d)
    named = set()
    for n in names:
        link = os.path.join(d, n)
        if n.startswith(".") or not os.path.islink(link):
            continue
        target = os.readlink(link)
        try:
            with open(os.path.join(link, "runx-editor.json")) as f:
                key = json.load(f).get("key")
            gone = key is not None and not os.path.exists(
                os.path.join(store.layers_dir(cache), key, store.CURRENT))
        except (OSError, ValueError, AttributeError):
            gone = True
        if not gone:
            named.add(target)
            continue
        removed.append(link)
        if not dry:
            _unlink(link)
            if target.startswith(".") and "/" not in target:
                remove_tree(d, target)
    for n in names:
        path = os.path.join(d, n)
        if not n.startswith(".") or n in named:
            continue
        try:
            if os.lstat(path).st_mtime >= before:
                continue
        except OSError:
            continue
        removed.append(path)
        if not dry:
            if os.path.islink(path):
                _unlink(path)
            else:
                remove_tree(d, n)
    return removed


def _names(d: str) -> list:
    try:
        return sorted(os.listdir(d))
    except OSError:
        return []


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def expire_if_due(cache: str, in_use_fn, log=lambda msg: None) -> list:
    """The reapers' expiry: at most once per EXPIRY_EVERY seconds (or per
    max age, if shorter), whoever gets the stamp's lock first. The stamp's
    mtime is when the last expiry started; ``in_use_fn()`` gives the builds
    trees name (called only when due)."""
    import fcntl

    age = max_age()
    stamp = os.path.join(cache, EXPIRY_STAMP)
    now = time.time()
    try:
        # A stamp from the future is an expiry that ran just now; it is
        # rewritten so below, under the lock, and then ages from now.
        stamped = os.stat(stamp).st_mtime
        if stamped <= now and store.age(stamped, now) < min(EXPIRY_EVERY, age):
            return []
    except FileNotFoundError:
        if not os.path.isdir(store.layers_dir(cache)):
            return []               # nothing cached: nothing to expire, no stamp to leave
    except OSError:
        return []
    try:
        fd = os.open(stamp, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return []               # another reaper is expiring
        stamped = os.fstat(fd).st_mtime
        if store.age(stamped, now) < min(EXPIRY_EVERY, age):
            store.heal(fd, stamped, now)
            return []               # one just finished (or a stamp from the future: now)
        os.utime(fd)
        removed, _kept = expire(cache, in_use_fn(), now=now, age=age)
    except (RunxError, OSError) as e:    # a read-only cache, a permission: the reaper goes on
        log(f"expiry: {e}")
        return []
    finally:
        os.close(fd)
    for p in removed:
        log(f"expiry: removed {p}")
    return removed
