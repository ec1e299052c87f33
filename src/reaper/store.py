"""The layer store on disk: one immutable, byte-compiled venv per requirement set.

Both processes use it: the runner finds a layer (``find``, the warm path)
and builds one (runx_env.runner.build, under ``key_lock``); the reaper
finishes it (runx_env.reaper.finish), sweeps half-built ones and expires
unused ones (runx_env.reaper.expiry); ``runx cache`` lists and prunes. This
is the one module that knows the layout::

    <cache>/layers/<key>/lock           the key's flock (builders, finishers, maintenance)
    <cache>/layers/<key>/current        symlink: the build in use
    <cache>/layers/<key>/<build>/       a published build (a venv + its manifests)
    <cache>/layers/<key>/.tmp-*         a build in progress, or one pruned aside
    <cache>/layers/<key>/.link-*        a ``current`` about to be swapped in
    <cache>/layers/.trash-*             a key moved aside by ``runx cache clean``
    <cache>/bytecode/                   byte-code shared by layers (runx_env.reaper.finish)
    <cache>/interpreters/               cached interpreter answers (runx_env.runner.interpreter)
    <cache>/script-settings/            a script's [tool.uv] settings (runx_env.runner.pep723)
    <cache>/uv/                         uv's own cache, when runx chooses it (runx_env.runner.uv)
    <cache>/editors/<name>              an editor's interpreter: a symlink to a venv beside it
                                        over a key's `current` (runx_env.runner.editor)

Byte-compiling is deferred: uv installs without it (as `uv run` does), the
layer is published at once, and the run's reaper compiles it in the
background at low priority while the payload runs, then makes it read-only.
Until then the layer's directories stay writable, so the first runs write
the bytecode of what they import, exactly as in uv's own environments;
after it, no run compiles anything.

Warm runs only read ``current`` and the build's small manifest. Builds
happen aside (``.tmp-<id>``) under the key's flock and are renamed into
place, so a reader never sees half a layer and concurrent runs of one spec
wait for the one builder. Unpinned sets are rebuilt after RUNX_FRESHNESS
seconds (default one day); an old build stays on disk for the trees still
using it until ``runx cache prune``.
"""

import marshal
import os
import time

from ..errors import RunxError
from .ownership import same_file, trusted_file

# The manifest twice: JSON for people, marshal for the warm path (marshal is
# built in and already loaded; json would bring re with it).
MANIFEST = "runx-layer.json"
FAST_MANIFEST = "runx-layer.marshal"
# Part of the layer key (runner/requirements.py, layer_key): a layer of an
# older format is rebuilt, not misread. 3: the manifest records the
# prefix's entries (share/, etc/...).
FORMAT = "3"
KEY_LOCK = "lock"
CURRENT = "current"
DEFAULT_FRESHNESS = 24 * 3600
# Under the cache.
LAYERS = "layers"
BYTECODE = "bytecode"                 # byte-code shared by layers (finish.py)
INTERPRETERS = "interpreters"         # interpreter answers (runner/interpreter.py)
SCRIPT_SETTINGS = "script-settings"   # scripts' [tool.uv] settings (runner/pep723.py)
UV_CACHE = "uv"                       # uv's cache, when runx chooses it (runner/uv.py)
EDITORS = "editors"                   # editors' interpreters (runner/editor.py)


class Layer:
    __slots__ = ("key", "path", "site_packages", "scripts", "created", "pinned", "compiled",
                 "prefix", "fd", "pth")

    def __init__(self, key, path, site_packages, scripts, created, pinned, compiled=True,
                 prefix=(), fd=None, pth=True):
        self.key = key
        self.path = path                    # the build dir; never changes once in place
        self.site_packages = site_packages  # absolute
        self.scripts = scripts              # [{"name", "kind": "python"|"link", "body"?, "mode"}]
        self.created = created
        self.pinned = pinned
        self.compiled = compiled            # byte-compiled and frozen (see finish.py)
        self.prefix = prefix                # [(kind, relpath, data)]: see build.prefix_entries
        self.fd = fd                        # the build dir, flock'ed shared (see lookup)
        self.pth = pth                      # site-packages holds .pth files (see venv.entries)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def file_signature(path: str) -> tuple:
    """(path, size, mtime_ns): how a cached answer names a file it depends on
    (an interpreter's executable) and later checks it is unchanged."""
    st = os.stat(path)
    return (path, st.st_size, st.st_mtime_ns)


def write_manifests(build_dir: str, manifest: dict) -> None:
    """Both manifests of a build, each written aside and renamed in, 0644
    whatever the umask (lookup refuses one that others can write to)."""
    import json

    for name, data in ((FAST_MANIFEST, marshal.dumps(manifest)),
                       (MANIFEST, json.dumps(manifest, indent=1, default=_shown).encode())):
        tmp = os.path.join(build_dir, name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        with open(fd, "wb") as f:
            os.fchmod(fd, 0o644)
            f.write(data)
        os.replace(tmp, os.path.join(build_dir, name))


def _shown(value) -> str:
    """JSON manifest for people: a copied file's bytes show as their size."""
    return f"<{len(value)} bytes>"


def layers_dir(cache: str) -> str:
    return os.path.join(cache, LAYERS)


# --- Ages. A stamp from the future (a clock set back, a backup restored from
# another machine) is treated as now, wherever runx compares ages: the
# expiry stamp, a layer's last use and creation, interpreter answers, script
# settings, `runx cache`'s "oldest last use". Left as it is, such a stamp
# would stop expiry (or re-resolution) until the clock caught up: a stamp a
# year ahead kept layers unused for a year. Where runx owns the stamp and
# may write it, it is also rewritten as now (``heal``), so it ages from now.

# A layer's creation time is part of its frozen manifest and cannot be
# rewritten: one created more than this far in the future can never age, so
# it is re-resolved (rebuilt once, created now). Within it, clock steps
# (NTP) do not cost a rebuild.
FUTURE_SLACK = 3600.0


def age(stamp: float, now: float | None = None) -> float:
    """Seconds since ``stamp`` (a time.time() or an st_mtime); a stamp from
    the future is treated as now: 0."""
    if now is None:
        now = time.time()
    return now - stamp if stamp < now else 0.0


def heal(target, stamp: float, now: float) -> None:
    """If ``stamp`` (the mtime, or atime, of ``target``: a path, not followed,
    or an fd) lies in the future, set both times of ``target`` to ``now``."""
    if stamp <= now:
        return
    try:
        if isinstance(target, int):
            os.utime(target, (now, now))
        else:
            os.utime(target, (now, now), follow_symlinks=False)
    except OSError:
        pass


def freshness() -> float:
    try:
        return float(os.environ.get("RUNX_FRESHNESS", DEFAULT_FRESHNESS))
    except ValueError:
        return DEFAULT_FRESHNESS


def lookup(cache: str, k: str, *, allow_stale: bool = False) -> Layer | None:
    """The warm path: a readlink, the build dir opened and flock'ed shared,
    one small read.

    The shared flock is the run's claim on the build: ``runx cache
    prune``/``clean`` remove a build only under an exclusive flock taken
    without waiting, so a build some run holds is never removed. The fd is
    close-on-exec (the payload never sees it); the reaper inherits it and
    holds it until it exits (handoff.Job.layer_fd). Maintenance renames a build
    aside before removing it, so a lock won on a build already renamed
    shows as path and fd no longer matching: then it is a miss.
    """
    import fcntl

    kdir = os.path.join(layers_dir(cache), k)
    try:
        build = os.readlink(os.path.join(kdir, CURRENT))
        path = os.path.join(kdir, build)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        # Waits only while maintenance renames it aside (bounded all the same).
        wait_flock(fd, fcntl.LOCK_SH, path, "the cached environment")
        if not same_file(fd, path):
            raise FileNotFoundError(path)
        mfd = os.open(FAST_MANIFEST, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        with open(mfd, "rb") as f:
            # Ours and private before it is believed (tests/test_trust.py); its
            # mode also says whether the freeze completed (see finish.py).
            mst = trusted_file(mfd, os.path.join(path, FAST_MANIFEST))
            m = marshal.loads(f.read())
        layer = Layer(k, path, os.path.join(path, m["site_packages"]), m["scripts"],
                      m["created"], m["pinned"],
                      m.get("compiled", True) and not mst.st_mode & 0o222,
                      m.get("prefix", ()), fd, m.get("pth", True))
    except (OSError, ValueError, EOFError, TypeError, KeyError):
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    if not allow_stale and not layer.pinned and _stale(layer.created):
        layer.release()
        return None
    return layer


def _stale(created: float) -> bool:
    """Unpinned requirements are re-resolved after RUNX_FRESHNESS; a creation
    time beyond FUTURE_SLACK in the future could never age (see ``age``)."""
    now = time.time()
    return created > now + FUTURE_SLACK or age(created, now) > freshness()


def find(cache: str, k: str, *, offline: bool, log) -> Layer | None:
    """The warm path: the layer of key ``k`` (runx_env.runner.identity.layer_key)
    if one is built (its last use recorded), else None, and the caller
    builds it (runx_env.runner.build)."""
    layer = lookup(cache, k, allow_stale=offline)
    if layer:
        log(f"layer hit: {layer.path}")
        try:   # last use, for `runx cache prune --older-than`
            os.utime(os.path.join(layer.path, FAST_MANIFEST))
        except OSError:
            pass
    return layer


def key_lock_path(kdir: str) -> str:
    """The key's lock file: the one place its name is joined to a key."""
    return os.path.join(kdir, KEY_LOCK)


# A key directory that vanishes between its mkdir and the open of its lock
# was moved aside by a concurrent `runx cache clean`: start over, a few
# times. One that never appears (RUNX_CACHE_DIR=/proc, where mkdir says
# ENOENT) is not a race.
KEY_LOCK_TRIES = 16
DEFAULT_LOCK_TIMEOUT = 300.0        # uv's default UV_LOCK_TIMEOUT (5 minutes)


def lock_timeout() -> float:
    """How long a run waits for a lock another process holds: uv's
    UV_LOCK_TIMEOUT (seconds), 5 minutes by default, as uv waits for its own."""
    try:
        value = float(os.environ.get("UV_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT
    return value if value >= 0 else DEFAULT_LOCK_TIMEOUT


def wait_flock(fd: int, how: int, path: str, what: str) -> None:
    """flock ``fd`` (``how``: LOCK_EX or LOCK_SH), waiting at most
    ``lock_timeout()`` for whoever holds it, then one RunxError that says
    what to do. A free lock costs the one flock; a held one is polled
    (5 ms doubling to 100 ms: a wait is for a build or maintenance)."""
    import fcntl

    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    limit = lock_timeout()
    deadline = time.monotonic() + limit
    delay = 0.005
    while True:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise RunxError(f"timed out after {limit:g} s waiting for the lock of {what} "
                                f"({path}): another run or maintenance holds it, or is stuck",
                                "wait for it to end, or set UV_LOCK_TIMEOUT to wait longer")
        delay = min(delay * 2, 0.1)


def key_lock(kdir: str) -> int:
    """The key's lock, held exclusively: by builders, finishers and
    maintenance. ``runx cache clean`` may move a key's directory aside, lock
    file and all, while holding it; a builder that waited on that lock file
    finds the path no longer names it and starts over on a new one (at most
    KEY_LOCK_TRIES times; the wait for a holder, at most lock_timeout())."""
    import fcntl

    why = "it never stayed in place"
    for _ in range(KEY_LOCK_TRIES):
        try:
            # Both levels 0700 (makedirs gives intermediate ones the umask's mode).
            os.makedirs(os.path.dirname(kdir), mode=0o700, exist_ok=True)
            os.makedirs(kdir, mode=0o700, exist_ok=True)
            path = key_lock_path(kdir)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileNotFoundError as e:
            why = e.strerror or why
            continue                 # the key's directory was just moved aside by `clean`
        except OSError as e:
            raise RunxError(f"building the environment failed: {e.strerror or e}",
                            f"check free space and permissions under {kdir}")
        try:
            wait_flock(fd, fcntl.LOCK_EX, path, "the environment being built")
            if same_file(fd, path):
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise RunxError(f"building the environment failed: cannot make and lock {kdir}: "
                    f"{why} ({KEY_LOCK_TRIES} tries)",
                    "check that the cache is an ordinary directory you can write to "
                    "(RUNX_CACHE_DIR)")


# --- Listing, half-built builds, pruning (runx cache, the sweep, expiry) ---


class Build:
    """A build in the store, as listed (no lock taken)."""

    __slots__ = ("key", "name", "path", "current", "last_used")

    def __init__(self, key, name, path, current, last_used):
        self.key = key
        self.name = name
        self.path = path
        self.current = current          # the key's ``current`` names it
        self.last_used = last_used      # the fast manifest's mtime (see find)


def last_used(build_path: str, *, heal_future: bool = False) -> float:
    """When the build was last used (its fast manifest's mtime, see find);
    one from the future is now (``age``), and with ``heal_future`` is
    rewritten so (maintenance that may write)."""
    path = os.path.join(build_path, FAST_MANIFEST)
    try:
        t = os.stat(path).st_mtime
    except OSError:
        return 0.0
    now = time.time()
    if t > now:
        if heal_future:
            heal(path, t, now)
        return now
    return t


def builds(cache: str) -> list:
    """Every published build, oldest key first; half-built ones are not
    listed (see half_built)."""
    root = layers_dir(cache)
    out: list = []
    try:
        keys = sorted(os.listdir(root))
    except OSError:
        return out
    for k in keys:
        if k.startswith("."):
            continue
        kdir = os.path.join(root, k)
        try:
            names = sorted(os.listdir(kdir))
        except OSError:
            continue
        try:
            current = os.readlink(os.path.join(kdir, CURRENT))
        except OSError:
            current = None
        for name in names:
            if name in (KEY_LOCK, CURRENT) or name.startswith("."):
                continue
            path = os.path.join(kdir, name)
            out.append(Build(k, name, path, name == current, last_used(path)))
    return out


def half_built(cache: str) -> list:
    """(key dir, name) of what dead builders and maintenance left: ``.tmp-*``
    builds, ``.link-*`` symlinks; and ("<cache>/layers", ".trash-*") keys."""
    root = layers_dir(cache)
    out: list = []
    try:
        keys = os.listdir(root)
    except OSError:
        return out
    for k in keys:
        if k.startswith(".trash-"):
            out.append((root, k))
            continue
        try:
            out += [(os.path.join(root, k), n) for n in os.listdir(os.path.join(root, k))
                    if n.startswith((".tmp-", ".link-"))]
        except OSError:
            continue
    return out


def remove_half_built(kdir: str, name: str) -> bool:
    """Whether it is gone (see removal.remove_tree)."""
    from ..reaper.removal import remove_tree

    if name.startswith(".link-"):
        try:
            os.unlink(os.path.join(kdir, name))
        except FileNotFoundError:
            pass
        return True
    return remove_tree(kdir, name)


def prune(root: str, select, *, dry: bool, in_use=frozenset()) -> tuple:
    """Remove the layer builds ``select(build, is_current, last_used)`` picks,
    unless in use. Returns (builds removed, [(build, why kept)]). ``in_use``:
    build paths that trees name in their metadata (the caller surveys them).

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
    lock file's metadata names their layer (``in_use``), and that layer
    stays too.
    """
    import fcntl

    from .removal import remove_tree

    layers = layers_dir(root)
    kept_by_trees = {os.path.realpath(p) for p in in_use}
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
        lock_path = key_lock_path(kdir)
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
            if not same_file(lock, lock_path):
                continue                 # moved aside meanwhile by a concurrent `clean`
            try:
                current = os.readlink(os.path.join(kdir, CURRENT))
            except OSError:
                current = None
            left = 0
            for build in sorted(os.listdir(kdir)):
                if build in (KEY_LOCK, CURRENT):
                    continue
                if build.startswith("."):       # a dead builder's, or a pruned build's
                    if not dry:
                        if build.startswith(".link-"):
                            os.unlink(os.path.join(kdir, build))
                        else:
                            remove_tree(kdir, build)
                    continue
                bpath = os.path.join(kdir, build)
                if not select(build, build == current, last_used(bpath, heal_future=not dry)):
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
                        os.unlink(os.path.join(kdir, CURRENT))
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
                # another file and starts over (key_lock), and none
                # can create anything in a directory being emptied.
                aside = f".trash-{k}-{os.urandom(4).hex()}"
                os.rename(kdir, os.path.join(layers, aside))
                remove_tree(layers, aside)
        finally:
            os.close(lock)
    return removed, kept
