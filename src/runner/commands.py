"""The housekeeping commands: ``runx gc``, ``runx ls`` (live trees, and the
editors' interpreters of runner/editor.py), ``runx cache``."""

import os
import shutil
import time

from . import paths
from ..errors import UsageError
from ..reaper import ownership

GC_HELP = "usage: runx gc [--dry-run] [--kept]"
LS_HELP = "usage: runx ls"
CACHE_HELP = ("usage: runx cache [dir | prune [--older-than DAYS] [--dry-run] | clean [--force]]")


def main(argv: list) -> int:
    cmd, args = argv[0], argv[1:]
    if not (cmd == "cache" and args and args[0] in ("dir", "-h", "--help")) \
            and not any(a in ("-h", "--help") for a in args):
        # Before anything in the cache is read or removed (tests/test_trust.py).
        ownership.trusted(paths.cache_dir())
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
    from ..reaper.sweep import sweep

    flags = _flags(args, {"--dry-run", "--kept"}, GC_HELP)
    runtime, cache_dir = paths.runtime_dir(), paths.cache_dir()
    ownership.trusted(runtime)
    dry = "--dry-run" in flags
    failed: dict = {}
    removed = sweep(runtime, cache_dir, dry_run=dry, include_kept="--kept" in flags,
                    failed=failed)
    for p in removed:
        print(f"{'would remove' if dry else 'removed'} {p}")
    kept = _left_behind(runtime, "--kept" in flags, only_mounts=dry, failed=failed)
    for p, why in kept:
        print(f"{'would keep' if dry else 'kept'} {p}: {why}")
    if not removed and not kept:
        print("nothing to remove")
    # One line per tree or layer left, and exit 1, so that a cron job or a
    # script sees that something needs a person; a dry run only reports.
    return 1 if kept and not dry else 0


def _left_behind(runtime: str, include_kept: bool, only_mounts: bool = False,
                 failed: dict | None = None) -> list:
    """Ownerless, unused trees the sweep could not remove, and why: a tree
    with a mount inside is left whole, and saying "nothing to remove" about
    it would hide it. With ``only_mounts`` (a dry run, where nothing was
    removed), only the trees a real gc would leave: those with a mount.
    ``failed``: what the sweep itself recorded (path -> why), half-built
    layers included; its reason wins over a guess."""
    from ..reaper.removal import mounts_under, why_kept
    from ..reaper.sweep import survey

    failed = dict(failed or {})
    out = []
    for t in survey(runtime):
        if t.state == "stale" or (include_kept and t.state == "kept" and not t.holders):
            if only_mounts and not mounts_under(t.path):
                continue
            why = failed.pop(t.path, None) or why_kept(runtime, t.id)
            out.append((t.path, why))
    out += sorted(failed.items())
    return out


def _walk(root: str, mark=lambda path, up: up):
    """(path, lstat, its mark) of everything under ``root``, not following
    links; what vanishes or cannot be read meanwhile is skipped. An entry's
    mark is ``mark(path, its directory's mark)`` (None at the top)."""
    stack = [(root, None)]
    while stack:
        d, up = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    m = mark(e.path, up)
                    if e.is_dir(follow_symlinks=False):
                        stack.append((e.path, m))
                    yield e.path, st, m
        except OSError:
            pass


def _size(path: str) -> int:
    return sum(st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
               for _, st, _ in _walk(path))


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
    from ..reaper import leases
    from ..reaper.sweep import survey

    _flags(args, set(), LS_HELP)
    rows = []
    runtime = paths.runtime_dir()
    ownership.trusted(runtime)
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
    from . import editor

    editors = editor.listing(paths.cache_dir())
    if not rows and not editors:
        print("no live environments")
        return 0
    if rows:
        _table([("TREE", "PID", "STATE", "SIZE")] + rows)
    if editors:
        if rows:
            print()
        _table([("EDITOR INTERPRETER", "FOR", "STATE")] + editors)
    return 0


def _table(rows: list) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _live_trees(runtime: str) -> list:
    """Trees under ``runtime`` that run on a layer (running, waiting or kept)."""
    from ..reaper.sweep import survey

    return [t for t in survey(runtime) if t.meta.get("layer")]


def _prune(root: str, select, *, dry: bool) -> tuple:
    from ..reaper import store
    from ..reaper.sweep import layers_in_use

    return store.prune(root, select, dry=dry, in_use=layers_in_use(paths.runtime_dir()))


def _summary(root: str) -> int:
    """``runx cache``: where, how big, how many layers, the oldest last use,
    what ``prune`` would free. Each file's blocks count once, however many
    links it has; a file with links outside the cache (layers hardlink uv's
    cache) is shown as shared with it: removing the layer would not free it."""
    from ..reaper import expiry, store

    now = time.time()
    age = expiry.max_age()
    builds = store.builds(root)
    prunable = {b.path for b in builds if not b.current or store.age(b.last_used, now) > age}
    seen: dict = {}    # (dev, ino) -> [blocks, nlink, links in cache, in prunable, in store]
    shared_pyc = os.path.join(root, store.BYTECODE)

    def mark(path, up):      # a prunable build and what is in it; what is in the store
        return up or ("prunable" if path in prunable else "store" if path == shared_pyc else None)

    for path, st, m in _walk(root, mark):
        ident = (st.st_dev, st.st_ino)
        rec = seen.get(ident)
        if rec is None:
            rec = seen[ident] = [st.st_blocks * 512, st.st_nlink, 0, 0, 0]
        rec[2] += 1
        rec[3] += m == "prunable"
        rec[4] += m == "store" and path != shared_pyc
    total = sum(r[0] for r in seen.values())
    shared = sum(r[0] for r in seen.values() if r[1] > r[2])
    # Freed: every link is in a prunable build, or the rest is the byte-code
    # store's, which prune drops once no layer links it.
    free = sum(r[0] for r in seen.values() if r[3] and r[1] - r[3] - r[4] <= 0)
    keys = len({b.key for b in builds})
    print(f"cache:  {root}")
    print(f"size:   {_human(total)} on disk (each file counted once), of which "
          f"{_human(shared)} shared with uv's cache, {_human(total - shared)} runx's own")
    print(f"layers: {len(builds)} build{'s' if len(builds) != 1 else ''} of {keys} "
          f"environment{'s' if keys != 1 else ''}" + (
              f"; oldest last use {_ago(store.age(min(b.last_used for b in builds), now))} ago"
              if builds else ""))
    n = len(prunable)
    print(f"prune:  would free {_human(free)} ({n} build{'s' if n != 1 else ''} superseded or "
          f"unused for {_ago(age)}; a build in use is kept)")
    return 0


def _disk_usage(root: str) -> int:
    """Bytes on disk under ``root``, each file once (hardlinks)."""
    seen: dict = {}
    for _, st, _ in _walk(root):
        seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(seen.values())


def _ago(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n = int(seconds)
    return f"{n} second{'s' if n != 1 else ''}"


def cache(args: list) -> int:
    if not args:
        return _summary(paths.cache_dir())
    if args[0] in ("-h", "--help"):
        print(CACHE_HELP)
        return 0
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
        from ..reaper import expiry, store

        # Superseded builds go whatever their age (new runs never pick them;
        # one a run still holds is kept); a current one once unused for
        # --older-than, or by default RUNX_CACHE_MAX_AGE, as the sweep does.
        now = time.time()
        age = expiry.max_age() if older is None else older

        def select(build, is_current, used):
            return not is_current or store.age(used, now) > age

        removed, kept = _prune(root, select, dry=dry)
        removed += expiry.expire_files(root, now - age, dry=dry)
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
        from ..reaper import store

        had_pyc = os.path.isdir(os.path.join(root, store.BYTECODE))
        removed, kept = _prune(root, lambda *_: True, dry=False)
        shutil.rmtree(os.path.join(root, store.INTERPRETERS), ignore_errors=True)
        # Settings files of script blocks' [tool.uv] (see pep723.tool_uv):
        # rewritten on the next run that needs one.
        shutil.rmtree(os.path.join(root, store.SCRIPT_SETTINGS), ignore_errors=True)
        # The shared byte-code, once no layer is left (one kept may be
        # compiling into it right now); the next compile writes it anew.
        if not kept:
            shutil.rmtree(os.path.join(root, store.BYTECODE), ignore_errors=True)
        had_pyc = had_pyc and not kept
        for p, why in kept:
            print(f"kept {p}: {why}")
        n = len(removed)
        print(f"removed {n} layer{'s' if n != 1 else ''}"
              + (" and the shared byte-code" if had_pyc else "")
              + f"; {root} now holds {_human(_disk_usage(root))}"
              if n or had_pyc else "nothing to remove")
        if os.path.isdir(os.path.join(root, store.UV_CACHE)):
            print(f"left uv's cache in {os.path.join(root, store.UV_CACHE)} "
                  "(uv cache clean empties it)")
        return 0
    raise UsageError(f"unknown cache command {cmd}", CACHE_HELP)
