"""The housekeeping commands: ``runx gc``, ``runx ls``, ``runx cache``."""

import os
import shutil
import time

from runx_env.runner import paths
from runx_env.runner.errors import RunxError, UsageError

GC_HELP = "usage: runx gc [--dry-run] [--kept]"
LS_HELP = "usage: runx ls"
CACHE_HELP = ("usage: runx cache dir | prune [--older-than DAYS] [--dry-run] | clean [--force]")


def main(argv: list) -> int:
    cmd, args = argv[0], argv[1:]
    if not (cmd == "cache" and (not args or args[0] in ("dir", "-h", "--help"))) \
            and not any(a in ("-h", "--help") for a in args):
        # Before anything in the cache is read or removed (tests/test_trust.py).
        paths.trusted(paths.cache_dir())
    if cmd == "gc":
        return gc(args)
    if cmd == "ls":
        return ls(args)
    return cache(args)


def _flags(args: list, allowed: set, usage: str) -> set:
    for a in args:
        if a in ("-h", "--help"):
            print(usage)
            raise SystemExit(0)
        if a not in allowed:
            raise UsageError(f"unknown argument {a}", usage)
    return set(args)


def gc(args: list) -> int:
    from runx_env.reaper.sweep import sweep

    flags = _flags(args, {"--dry-run", "--kept"}, GC_HELP)
    runtime, cache_dir = paths.runtime_dir(), paths.cache_dir()
    paths.trusted(runtime)
    dry = "--dry-run" in flags
    removed = sweep(runtime, cache_dir, dry_run=dry, include_kept="--kept" in flags)
    for p in removed:
        print(f"{'would remove' if dry else 'removed'} {p}")
    kept = [] if dry else _left_behind(runtime, "--kept" in flags)
    for p, why in kept:
        print(f"kept {p}: {why}")
    if not removed and not kept:
        print("nothing to remove")
    return 0


def _left_behind(runtime: str, include_kept: bool) -> list:
    """Ownerless, unused trees the sweep could not remove, and why: a tree
    with a mount inside is left whole, and saying "nothing to remove" about
    it would hide it."""
    from runx_env.reaper.removal import why_kept
    from runx_env.reaper.sweep import survey

    out = []
    for t in survey(runtime):
        if t.state == "stale" or (include_kept and t.state == "kept" and not t.holders):
            out.append((t.path, why_kept(runtime, t.id)))
    return out


def _size(path: str) -> int:
    total = 0
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
        except OSError:
            pass
    return total


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return True      # no /proc: kill(0) said it exists


def ls(args: list) -> int:
    from runx_env.reaper import leases
    from runx_env.reaper.sweep import survey

    _flags(args, set(), LS_HELP)
    rows = []
    runtime = paths.runtime_dir()
    paths.trusted(runtime)
    for t in survey(runtime):
        pid = t.meta.get("pid", "?")
        if t.state == "running":
            if _pid_alive(pid):
                state = "running"
            else:
                n = len(leases.holders(t.path))
                state = f"waiting for {n} process{'es' if n != 1 else ''}"
        elif t.state == "waiting":
            state = f"stale, used by {len(t.holders)} process{'es' if len(t.holders) != 1 else ''}"
        else:
            state = t.state
        rows.append((t.path, str(pid), state, _human(_size(t.path))))
    if not rows:
        print("no live environments")
        return 0
    widths = [max(len(r[i]) for r in rows + [("TREE", "PID", "STATE", "SIZE")]) for i in range(4)]
    for r in [("TREE", "PID", "STATE", "SIZE")] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _live_trees(runtime: str) -> list:
    """Trees under ``runtime`` that run on a layer (running, waiting or kept)."""
    from runx_env.reaper.sweep import survey

    return [t for t in survey(runtime) if t.meta.get("layer")]


def _maintain(root: str, select, *, dry: bool) -> tuple:
    """Remove the layer builds ``select(build, is_current, last_used)`` picks,
    unless in use. Returns (builds removed, [(build, why kept)]).

    Lock order, so that no interleaving breaks a run or a build:
      1. the key's ``lock``, exclusively, without waiting: builders and the
         finisher (byte-compile) hold it (busy: the key is skipped and
         reported; a build in progress, its ``.tmp-*`` and ``current`` are
         never touched under a builder, and maintenance never hangs on one);
      2. each build dir, exclusively, without waiting: every run holds it
         shared from its lookup until its reaper exits (busy: in use, skip);
      3. holding both, unlink ``current`` if it names the build, rename the
         build aside (``.tmp-pruned-*``: a run that wins the shared lock
         afterwards sees the rename and treats it as a miss), let the
         build's lock go, then remove it.
    A builder never waits on readers: it only takes the key's lock, which
    maintenance holds for a key's renames, never while a run is waiting.
    Kept trees (--keep) hold no lock once their reaper is gone: their
    lock file's metadata names their layer, and that layer stays too.
    """
    import fcntl

    from runx_env.reaper.removal import remove_tree

    layers = os.path.join(root, "layers")
    kept_by_trees = {os.path.realpath(t.meta["layer"]) for t in _live_trees(paths.runtime_dir())}
    removed: list = []
    kept: list = []
    try:
        keys = sorted(os.listdir(layers))
    except FileNotFoundError:
        return removed, kept
    except OSError as e:
        raise RunxError(f"cannot read {layers}: {e.strerror}", "check its permissions")
    for k in keys:
        kdir = os.path.join(layers, k)
        if k.startswith("."):            # a key moved aside by a `clean` that died
            if k.startswith(".trash-") and not dry:
                remove_tree(layers, k)
            continue
        lock_path = os.path.join(kdir, "lock")
        try:
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                           0o600)
        except FileNotFoundError:        # moved aside by a concurrent `clean`
            continue
        except OSError as e:             # a read-only or unwritable cache: nothing can go
            raise RunxError(f"cannot change the cache: {kdir}: {e.strerror}",
                            "check that it is writable (mount options, permissions)")
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                kept.append((kdir, "a build or a byte-compile is in progress"))
                continue
            try:
                st, now = os.fstat(lock), os.stat(lock_path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):
                continue                 # moved aside meanwhile by a concurrent `clean`
            try:
                current = os.readlink(os.path.join(kdir, "current"))
            except OSError:
                current = None
            left = 0
            for build in sorted(os.listdir(kdir)):
                if build in ("lock", "current"):
                    continue
                if build.startswith("."):       # a dead builder's, or a pruned build's
                    if not dry:
                        if build.startswith(".link-"):
                            os.unlink(os.path.join(kdir, build))
                        else:
                            remove_tree(kdir, build)
                    continue
                bpath = os.path.join(kdir, build)
                try:
                    used = os.stat(os.path.join(bpath, "runx-layer.marshal")).st_mtime
                except OSError:
                    used = 0
                if not select(build, build == current, used):
                    left += 1
                    continue
                if os.path.realpath(bpath) in kept_by_trees:
                    kept.append((bpath, "a live or kept environment uses it"))
                    left += 1
                    continue
                try:
                    bfd = os.open(bpath, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                  | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    try:
                        fcntl.flock(bfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        kept.append((bpath, "a running environment uses it"))
                        left += 1
                        continue
                    removed.append(bpath)
                    if dry:
                        continue
                    if build == current:
                        os.unlink(os.path.join(kdir, "current"))
                        current = None
                    aside = ".tmp-pruned-" + build
                    os.rename(bpath, os.path.join(kdir, aside))
                finally:
                    os.close(bfd)
                remove_tree(kdir, aside)
            if not left and not dry and current is None:
                # Nothing left in the key: the directory goes too, lock file
                # and all. Moved aside first, while this holds its lock: a
                # builder waiting on that lock file then sees the path name
                # another file and starts over (layers._key_lock), and none
                # can create anything in a directory being emptied.
                aside = f".trash-{k}-{os.urandom(4).hex()}"
                os.rename(kdir, os.path.join(layers, aside))
                remove_tree(layers, aside)
        finally:
            os.close(lock)
    return removed, kept


def cache(args: list) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(CACHE_HELP)
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    root = paths.cache_dir()
    if cmd == "dir":
        _flags(rest, set(), CACHE_HELP)
        print(root)
        return 0
    if cmd == "prune":
        older = None
        dry = False
        i = 0
        while i < len(rest):
            if rest[i] == "--older-than" and i + 1 < len(rest):
                try:
                    older = float(rest[i + 1]) * 86400
                except ValueError:
                    raise UsageError(f"--older-than {rest[i + 1]}: expected a number of days",
                                     CACHE_HELP)
                i += 2
            elif rest[i] == "--dry-run":
                dry = True
                i += 1
            else:
                raise UsageError(f"unknown argument {rest[i]}", CACHE_HELP)
        now = time.time()

        def select(build, is_current, used):
            return not is_current or (older is not None and now - used > older)

        removed, kept = _maintain(root, select, dry=dry)
        for p in removed:
            print(f"{'would remove' if dry else 'removed'} {p}")
        for p, why in kept:
            print(f"kept {p}: {why}")
        if not removed:
            print("nothing to prune")
        return 0
    if cmd == "clean":
        flags = _flags(rest, {"--force"}, CACHE_HELP)
        live = _live_trees(paths.runtime_dir())
        if live and "--force" not in flags:
            n = len(live)
            raise UsageError(f"{n} live environment{'s' if n != 1 else ''} use the cache",
                             "wait for them, or use 'runx cache clean --force'")
        removed, kept = _maintain(root, lambda *_: True, dry=False)
        shutil.rmtree(os.path.join(root, "interpreters"), ignore_errors=True)
        # Settings files of script blocks' [tool.uv] (see pep723.tool_uv):
        # rewritten on the next run that needs one.
        shutil.rmtree(os.path.join(root, "script-settings"), ignore_errors=True)
        for p, why in kept:
            print(f"kept {p}: {why}")
        n = len(removed)
        print(f"removed {n} layer{'s' if n != 1 else ''} from {os.path.join(root, 'layers')}"
              if n else "nothing to remove")
        return 0
    raise UsageError(f"unknown cache command {cmd}", CACHE_HELP)
