"""Find and remove what dead runs left: trees whose lock is free and that no
process uses, and half-built layers whose builder died; and, at most once an
hour, layers nobody used for RUNX_CACHE_MAX_AGE (runx_env.reaper.expiry).

Run by every reaper after it removed its own tree, and by ``runx gc``. A
tree's lock is held by its reaper for the tree's whole life, so taking it
proves there is no owner, whatever happened to the owner.
"""

import errno
import os

# Every reaper sweeps after its removal, while the next run may be starting
# on the same cores: json and subprocess are imported only when a stale
# tree or a dead mount is actually found.

from . import leases, ownership
from .removal import mounts, remove_tree


class TreeState:
    """A tree as ``runx ls`` shows it."""

    def __init__(self, id: str, path: str, meta: dict, state: str, holders: list):
        self.id = id
        self.path = path
        self.meta = meta
        self.state = state        # "running" | "waiting" | "stale" | "kept"
        self.holders = holders


def _read_meta(fd: int) -> dict:
    try:
        data = os.pread(fd, 1 << 16, 0)
        import json

        meta = json.loads(data or b"{}")
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _fuse_mountpoint(path: str) -> bool | None:
    """Whether a FUSE file system is mounted at ``path``, from
    /proc/self/mountinfo (None where there is none). Not from stat: a dead
    mount whose attributes the kernel still caches stats fine."""
    want = os.fsencode(path)
    found = mounts()
    if found is None:
        return None
    return any(mp == want and kind.startswith(b"fuse") for mp, _, _, kind in found)


def unmount_if_dead(path: str) -> None:
    """A FUSE tree whose server died without auto_unmount (its fusermount3
    watcher was killed with it) is still mounted and answers ENOTCONN:
    detach it so the empty mountpoint can go. Only called for a tree whose
    lock is free, whose server (its reaper) is therefore gone."""
    mounted = _fuse_mountpoint(path)
    if mounted is None:                      # no mountinfo: ask the mount itself
        try:
            os.listdir(path)
            mounted = False
        except OSError as e:
            mounted = e.errno == errno.ENOTCONN
    if mounted:
        from .fuse_tree import detach

        detach(path)


def survey(runtime: str) -> list:
    """Every tree runx made under ``runtime``, with its state (for ``runx ls``).
    One /proc scan for all the ownerless trees."""
    out, free = [], []
    for tid, lock_path in ownership.owned_locks(runtime):
        path = os.path.join(runtime, tid)
        fd = ownership.try_lock(lock_path)
        if fd is None:                     # owned: read its metadata without the lock
            try:
                rfd = os.open(lock_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue                   # removed meanwhile
            try:
                meta = _read_meta(rfd)
            finally:
                os.close(rfd)
            out.append(TreeState(tid, path, meta, "running", []))
            continue
        try:
            t = TreeState(tid, path, _read_meta(fd), "stale", [])
        finally:
            os.close(fd)
        out.append(t)
        free.append(t)
    if free:
        found, _ = leases.Scan([t.path for t in free]).settle()
        for t in free:
            t.holders = found.get(t.path, [])
            t.state = "kept" if t.meta.get("keep") else ("waiting" if t.holders else "stale")
    return out


# With many runs live, one sweep serves the reapers that end within
# SWEEP_EVERY seconds of its start: each used to list and lstat every other
# run's lock (and read /proc/locks), N runs, N² lstats. Below SWEEP_FROM
# live runs every reaper sweeps, as the last runs of a burst do: a tree
# left by a reaper killed meanwhile waits at most for the next reaper that
# ends SWEEP_EVERY later, or for the burst's end.
SWEEP_FROM, SWEEP_EVERY = 4, 0.5
_STAMP = os.path.join(".scan", "swept")


def sweep_due(runtime: str) -> bool:
    """Whether this reaper should sweep: always, unless more than SWEEP_FROM
    runs are live and a sweep began less than SWEEP_EVERY ago (by the
    stamp's mtime; one from the future, after a clock jump, does not
    count). A sweep that is due restamps first."""
    import time

    stamp = os.path.join(runtime, _STAMP)
    try:
        live = len(os.listdir(runtime)) // 2      # a tree and its lock
        if live > SWEEP_FROM:
            age = time.time() - os.stat(stamp, follow_symlinks=False).st_mtime
            if 0 <= age < SWEEP_EVERY:
                return False
    except OSError:
        pass
    try:
        fd = os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.utime(fd)
        finally:
            os.close(fd)
    except OSError:
        pass                                      # no board here: every reaper sweeps
    return True


def sweep(runtime: str, cache: str | None = None, *, dry_run: bool = False,
          include_kept: bool = False, adopt: list | None = None,
          log=lambda msg: None, failed: dict | None = None) -> list:
    """Remove stale trees (and half-built layers). Returns the paths removed
    (or that would be, with ``dry_run``).

    One tree or layer that cannot go never stops the others: what failed
    (an error, or content that cannot be removed) is logged and, when
    ``failed`` is a dict, recorded there as path -> why; the sweep goes on
    with the other trees, the half-built layers and expiry.

    An ownerless tree that is still in use (its reaper was killed, its
    payload runs on) is skipped — or, when ``adopt`` is a list, appended to
    it as (tree id, lock fd): the caller now owns the lock and must reap it.

    One /proc scan covers every candidate (2,000 stale trees used to cost
    2,000 scans). Candidates are found with their lock taken and released
    (thousands of held locks would exhaust the fd limit), then each lock is
    taken again to act: a lock that is free then still proves there is no
    owner, and no process starts using an ownerless tree by inheritance.
    """
    cands = []
    for tid, lock_path in ownership.owned_locks(runtime, skip_held=True):
        fd = ownership.try_lock(lock_path)
        if fd is None:
            continue                       # a live reaper or runner owns it
        try:
            if _read_meta(fd).get("keep") and not include_kept:
                continue
        finally:
            os.close(fd)
        cands.append((tid, lock_path, os.path.join(runtime, tid)))
    removed = []
    # A lock without its tree (a run that lost its new lock to this very
    # sweep, between its open and its flock, and took another id; a reaper
    # killed between the tree's removal and the lock's) needs no scan:
    # nothing can use a directory that is not there, and none will be made
    # while the lock is ours. Many runs at once make these by the dozen.
    found, sure = {}, True
    present = {path for _, _, path in cands if not _absent(path)}
    if present:
        found, sure = leases.Scan(sorted(present)).settle()
    if cands:
        for tid, lock_path, path in cands:
            try:
                removed += _sweep_one(runtime, tid, lock_path, path, found.get(path),
                                      sure or path not in present, dry_run, adopt, log, failed)
            except Exception as e:         # noqa: BLE001 - one tree never stops the sweep
                _failed(failed, log, path, e)
    if cache:
        try:
            removed += sweep_layers(cache, dry_run=dry_run, log=log, failed=failed)
        except Exception as e:             # noqa: BLE001 - expiry still runs
            _failed(failed, log, cache, e)
        if not dry_run:
            from .expiry import expire_if_due

            try:
                removed += expire_if_due(cache, lambda: layers_in_use(runtime), log)
            except Exception as e:         # noqa: BLE001
                _failed(failed, log, cache, e)
    return removed


def _absent(path: str) -> bool:
    """Certainly no directory entry at ``path`` (not: unreadable, or a dead
    FUSE mount point answering ENOTCONN)."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        pass
    return False


def failure(e: BaseException) -> str:
    """What a failed removal says, and what to do."""
    if isinstance(e, OSError):
        what = e.strerror or str(e)
        if e.filename:
            what = f"{e.filename}: {what}"
        return f"{what} (fix it, or remove it yourself; then runx gc)"
    return f"internal error: {type(e).__name__}: {e} (please report it)"


def _failed(failed: dict | None, log, path: str, e: BaseException) -> None:
    why = failure(e)
    log(f"sweep: could not remove {path}: {why}")
    if failed is not None:
        failed[path] = why


def _sweep_one(runtime, tid, lock_path, path, holders, sure, dry_run, adopt, log,
               failed) -> list:
    fd = ownership.try_lock(lock_path)
    if fd is None:
        return []                          # adopted or removed by another sweep meanwhile
    try:
        if holders or not sure:
            # In use, or not certainly unused (the scans never settled).
            log(f"sweep: {path} still used by {holders}" if holders
                else f"sweep: {path}: could not be sure it is unused")
            if adopt is not None and not dry_run:
                adopt.append((tid, fd))
                fd = None
            return []
        if dry_run:
            # A tree with a mount inside would be left whole (removal never
            # enters a mount): not a "would remove".
            from .removal import mounts_under

            return [] if mounts_under(path) else [path]
        unmount_if_dead(path)
        why: list = []
        if ownership.remove(runtime, tid, why=why):
            log(f"sweep: removed {path}")
            return [path]
        _left(failed, log, path, why)      # the lock file stays: the next sweep retries
        return []
    finally:
        if fd is not None:
            os.close(fd)


def sweep_layers(cache: str, *, dry_run: bool = False, log=lambda msg: None,
                 failed: dict | None = None) -> list:
    """Half-built layers (``.tmp-*``) whose builder is gone. One that cannot
    be removed is recorded in ``failed`` (path -> why) and the rest go on."""
    from . import store

    removed = []
    by_key: dict = {}
    for kdir, name in store.half_built(cache):
        if name.startswith(".trash-"):     # a key `runx cache clean` moved aside, then died
            path = os.path.join(kdir, name)
            if dry_run:
                removed.append(path)
                continue
            why: list = []
            try:
                if remove_tree(kdir, name, why=why):
                    removed.append(path)
                else:
                    _left(failed, log, path, why)
            except Exception as e:         # noqa: BLE001 - the others still go
                _failed(failed, log, path, e)
        else:
            by_key.setdefault(kdir, []).append(name)
    for kdir, junk in by_key.items():
        fd = ownership.try_lock(store.key_lock_path(kdir))
        if fd is None:
            continue                       # a builder is at work
        try:
            for n in junk:
                path = os.path.join(kdir, n)
                if dry_run:
                    removed.append(path)
                    continue
                try:
                    if store.remove_half_built(kdir, n):
                        removed.append(path)
                        log(f"sweep: removed half-built {path}")
                    else:
                        _left(failed, log, path)
                except Exception as e:     # noqa: BLE001
                    _failed(failed, log, path, e)
        finally:
            os.close(fd)
    return removed


def _left(failed: dict | None, log, path: str, why: list | None = None) -> None:
    from .removal import why_kept

    reason = why[0] if why else why_kept(os.path.dirname(path), os.path.basename(path))
    log(f"sweep: could not remove {path}: {reason}")
    if failed is not None:
        failed[path] = reason


def layers_in_use(runtime: str) -> set:
    """The layer builds that trees (running, waiting or kept) name."""
    return {t.meta["layer"] for t in survey(runtime) if t.meta.get("layer")}
