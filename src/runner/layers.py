"""The cached layer: one immutable, byte-compiled venv per requirement set.

Byte-compiling is deferred: uv installs without it (as `uv run` does), the
layer is published at once, and the run's reaper compiles it in the
background at low priority while the payload runs, then makes it read-only
(``compile_and_freeze``). Until then the layer's directories stay writable, so the first
runs write the bytecode of what they import, exactly as in uv's own
environments; after it, no run compiles anything.

A layer is named by a key (requirements + interpreter identity + index
options) and lives at ``<cache>/layers/<key>/<build-id>/``; the symlink
``<key>/current`` names the build in use. Warm runs only read that link and
the build's small manifest. Builds happen aside (``.tmp-<id>``) under the
key's flock and are renamed into place, so a reader never sees half a layer
and concurrent runs of one spec wait for the one builder. Unpinned sets are
rebuilt after RUNX_FRESHNESS seconds (default one day); an old build stays
on disk for the trees still using it until ``runx cache prune``.
"""

import marshal
import os
import stat
import time

from runx_env.runner import fault_point
from runx_env.runner.errors import RunxError
from runx_env.runner.interpreter import Interpreter
from runx_env.runner.requirements import Spec, _hash

# The manifest twice: JSON for people, marshal for the warm path (marshal is
# built in and already loaded; json would bring re with it).
MANIFEST = "runx-layer.json"
FAST_MANIFEST = "runx-layer.marshal"
# Part of the key: a layer of an older format is rebuilt, not misread.
# 3: the manifest records the prefix's entries (share/, etc/...).
FORMAT = "3"
DEFAULT_FRESHNESS = 24 * 3600
# Under the cache: byte-code shared by layers (see share_bytecode).
BYTECODE = "bytecode"
MIN_NOFILE = 64


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
        self.compiled = compiled            # byte-compiled and frozen (see compile_and_freeze)
        self.prefix = prefix                # [(kind, relpath, data)]: see prefix_entries
        self.fd = fd                        # the build dir, flock'ed shared (see lookup)
        self.pth = pth                      # site-packages holds .pth files (see venv.entries)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def key(spec: Spec, interp: Interpreter) -> str:
    h = _hash(digest_size=16)
    h.update(FORMAT.encode() + b"\0" + spec.digest().encode() + b"\0"
             + interp.identity().encode())
    return h.hexdigest()


def layers_dir(cache: str) -> str:
    return os.path.join(cache, "layers")


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
    holds it until it exits (daemon.Job.fds). Maintenance renames a build
    aside before removing it, so a lock won on a build already renamed
    shows as path and fd no longer matching: then it is a miss.
    """
    import fcntl

    from runx_env.runner.paths import trusted_file

    kdir = os.path.join(layers_dir(cache), k)
    try:
        build = os.readlink(os.path.join(kdir, "current"))
        path = os.path.join(kdir, build)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)    # waits only while maintenance renames it aside
        st, now = os.fstat(fd), os.stat(path, follow_symlinks=False)
        if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):
            raise FileNotFoundError(path)
        mfd = os.open(FAST_MANIFEST, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        with open(mfd, "rb") as f:
            # Ours and private before it is believed (tests/test_trust.py); its
            # mode also says whether the freeze completed (see compile_and_freeze).
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
    if not allow_stale and not layer.pinned and time.time() - layer.created > freshness():
        layer.release()
        return None
    return layer


def ensure(spec: Spec, interp: Interpreter, cache: str, *, refresh: bool, offline: bool,
           verbosity: int, log, uv_run_args=()) -> Layer:
    k = key(spec, interp)
    if not refresh:
        layer = lookup(cache, k, allow_stale=offline)
        if layer:
            log(f"layer hit: {layer.path}")
            try:   # last use, for `runx cache prune --older-than`
                os.utime(os.path.join(layer.path, FAST_MANIFEST))
            except OSError:
                pass
            return layer
    log(f"layer miss: building {k}")
    return _build(spec, interp, cache, k, refresh=refresh, offline=offline,
                  verbosity=verbosity, log=log, uv_run_args=list(uv_run_args))


def _build(spec, interp, cache, k, *, refresh, offline, verbosity, log,
           uv_run_args=()) -> Layer:
    import json

    from runx_env.runner import uv
    from runx_env.reaper.removal import remove_tree

    import resource

    # uv and the build's clean-up need file descriptors; under a tiny
    # RLIMIT_NOFILE the build would fail half-way and its clean-up with it,
    # leaving a half-built layer: refuse before anything is made.
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile != resource.RLIM_INFINITY and nofile < MIN_NOFILE:
        raise RunxError(f"the open-file limit is {nofile}: too low to build an environment "
                        f"(at least {MIN_NOFILE})", "raise it, e.g. ulimit -n 1024")
    kdir = os.path.join(layers_dir(cache), k)
    started = time.time()
    lock = _key_lock(kdir)                      # concurrent runs of one spec wait here
    try:
        layer = lookup(cache, k, allow_stale=offline)
        if layer and (not refresh or layer.created >= started):
            log(f"layer built meanwhile by another run: {layer.path}")
            return layer
        if layer:
            layer.release()
        # Holding the lock, any .tmp-* here belongs to a builder that died.
        for name in os.listdir(kdir):
            if name.startswith(".tmp-"):
                remove_tree(kdir, name)
        build = f"{int(time.time())}-{os.urandom(4).hex()}"
        tmp = os.path.join(kdir, ".tmp-" + build)
        try:
            # The venv itself is the same handful of entries as a thin tree:
            # written here, it saves a whole `uv venv` process per build.
            from runx_env.runner import venv

            os.mkdir(tmp, 0o700)
            venv.write_entries(tmp, venv.entries(tmp, interp, None, role="layer"))
            bindir = os.path.join(tmp, "bin")
            machinery = set(os.listdir(bindir))
            fault_point("install")
            uv.pip_install(os.path.join(bindir, "python"), spec.uv_args() + list(uv_run_args),
                           offline=offline, refresh=refresh, compile_bytecode=False,
                           verbosity=verbosity, env_extra=spec.uv_env)
            manifest = {
                "format": FORMAT, "key": k, "created": time.time(), "pinned": spec.pinned,
                "compiled": False,
                "python": interp.executable, "site_packages": interp.lib_dir,
                "requirements": spec.requirements,
                "scripts": _collect_scripts(bindir, machinery, os.path.join(bindir, "python")),
                "prefix": prefix_entries(tmp, interp.lib_dir),
                # Whether a tree must have the layer's .pth files run (venv.entries).
                "pth": any(n.endswith(".pth")
                           for n in os.listdir(os.path.join(tmp, interp.lib_dir))),
            }
            _freeze_data(tmp, manifest["prefix"])
            _write(os.path.join(tmp, MANIFEST),
                   json.dumps(manifest, indent=1, default=_shown).encode())
            _write(os.path.join(tmp, FAST_MANIFEST), marshal.dumps(manifest))
            final = os.path.join(kdir, build)
            os.rename(tmp, final)
            link_tmp = os.path.join(kdir, ".link-" + build)
            os.symlink(build, link_tmp)
            os.replace(link_tmp, os.path.join(kdir, "current"))
        except BaseException:
            remove_tree(kdir, ".tmp-" + build)
            raise
        layer = lookup(cache, k, allow_stale=True)
        assert layer is not None
        return layer
    except OSError as e:
        raise RunxError(f"building the environment failed: {e.strerror or e}",
                        f"check free space and permissions under {cache}")
    finally:
        os.close(lock)


def _write(path: str, data: bytes) -> None:
    """A manifest, 0644 whatever the umask: lookup refuses one that others
    can write to."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    with open(fd, "wb") as f:
        os.fchmod(fd, 0o644)
        f.write(data)


def _key_lock(kdir: str) -> int:
    """The key's lock, held exclusively: by builders, finishers and
    maintenance. ``runx cache clean`` may move a key's directory aside, lock
    file and all, while holding it; a builder that waited on that lock file
    finds the path no longer names it and starts over on a new one."""
    import fcntl

    while True:
        try:
            # Both levels 0700 (makedirs gives intermediate ones the umask's mode).
            os.makedirs(os.path.dirname(kdir), mode=0o700, exist_ok=True)
            os.makedirs(kdir, mode=0o700, exist_ok=True)
            path = os.path.join(kdir, "lock")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            continue                 # the key's directory was just moved aside by `clean`
        except OSError as e:
            raise RunxError(f"building the environment failed: {e.strerror or e}",
                            f"check free space and permissions under {kdir}")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            now = os.stat(path, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _collect_scripts(bindir: str, machinery: set, python: str) -> list:
    """Console scripts the install added. Python ones are stored without their
    shebang, to be re-headed with each tree's interpreter; anything else
    (a compiled binary such as ruff's) is linked from the tree."""
    out = []
    py = python.encode()
    for name in sorted(os.listdir(bindir)):
        if name in machinery:
            continue
        path = os.path.join(bindir, name)
        body = None
        if not os.path.islink(path) and os.path.getsize(path) < 1 << 20:
            with open(path, "rb") as f:
                data = f.read()
            body = _python_body(data, py)
        mode = os.stat(path).st_mode & 0o777
        if body is not None:
            out.append({"name": name, "kind": "python", "body": body, "mode": mode})
        else:
            out.append({"name": name, "kind": "link", "mode": mode})
    return out


# What the layer's prefix holds besides the venv's own machinery (pyvenv.cfg,
# bin/ — its scripts are re-headed per tree —, the site-packages path, lib64
# and the manifests): share/, etc/, include/, and whatever a wheel's
# .data/data put there. A tree shows all of it under its own prefix; see
# docs/design.md, "The tree's layout", for why directories are mirrored down
# to MIRROR_DEPTH, small files copied and the rest linked.
MIRROR_DEPTH = 3          # prefix/share/jupyter/kernels: real directories down to here
COPY_MAX = 4096           # bytes: smaller regular files are copied into the tree
PREFIX_BUDGET = 256       # entries per tree at most; beyond it, mirror less deep


def prefix_entries(root: str, lib_dir: str) -> list:
    """[(kind, relpath, data)] for everything under the layer's prefix outside
    the venv machinery: kind "dir" (made in the tree), "copy" (data is the
    content and mode), "link" (to the layer's entry). Computed once, at
    build time, so a run makes them without looking at the layer."""
    skip = {"bin", "lib64", "pyvenv.cfg", MANIFEST, FAST_MANIFEST, lib_dir}
    parts = lib_dir.split("/")
    through = {"/".join(parts[:i]) for i in range(1, len(parts))}   # lib, lib/python3.X
    for depth in range(MIRROR_DEPTH, -1, -1):
        out: list = []
        _mirror(root, "", depth, skip, through, out)
        if len(out) <= PREFIX_BUDGET or depth == 0:
            return out
    return []  # pragma: no cover


def _mirror(root, rel, depth, skip, through, out) -> None:
    for name in sorted(os.listdir(os.path.join(root, rel) if rel else root)):
        path = f"{rel}/{name}" if rel else name
        if path in skip or (not rel and name.startswith(".")):    # uv's .lock
            continue
        full = os.path.join(root, path)
        st = os.lstat(full)
        if path in through:       # already a directory of every tree
            _mirror(root, path, depth, skip, through, out)
        elif stat.S_ISDIR(st.st_mode) and path.count("/") < depth:
            out.append(("dir", path, None))
            _mirror(root, path, depth, skip, through, out)
        elif stat.S_ISREG(st.st_mode) and st.st_size <= COPY_MAX and path.count("/") <= depth:
            with open(full, "rb") as f:
                out.append(("copy", path, (f.read(), st.st_mode & 0o777)))
        else:
            out.append(("link", path, None))


def _freeze_data(root: str, prefix: list) -> None:
    """The directories a tree links into are read-only from the start (site-
    packages waits for the compile, see compile_and_freeze): a run's write through a link
    fails instead of landing in the shared layer."""
    for kind, path, _ in prefix:
        if kind == "link" and os.path.isdir(os.path.join(root, path)) \
                and not os.path.islink(os.path.join(root, path)):
            for dirpath, dirnames, _files in os.walk(os.path.join(root, path)):
                for d in dirnames:
                    p = os.path.join(dirpath, d)
                    if not os.path.islink(p):
                        os.chmod(p, 0o555)
                os.chmod(dirpath, 0o555)
        elif kind == "dir":
            os.chmod(os.path.join(root, path), 0o555)


def _python_body(data: bytes, python: bytes) -> str | None:
    """The script after its shebang, if the shebang runs ``python``."""
    if data.startswith(b"#!" + python + b"\n"):
        rest = data[len(python) + 3:]
    elif data.startswith(b"#!/bin/sh\n'''exec' ") and python in data.split(b"\n", 3)[1]:
        rest = data.split(b"\n", 3)[3] if data.count(b"\n") >= 3 else b""
    else:
        return None
    try:
        return rest.decode("utf-8")
    except UnicodeDecodeError:
        return None


# The compile, in the layer's own interpreter. It must die with runx-compile
# (PR_SET_PDEATHSIG; and if runx-compile died before the prctl took effect,
# the parent is already not the one it was started by: exit). It compiles
# serially: a pool's workers would each need the same death signal, and on
# the 2-core machine measured (docs/reliability.md) -j 0 saved little for a
# background job that runs at nice 19 anyway.
#
# Byte-code is shared across layers through <cache>/bytecode (BYTECODE):
# layers hardlink uv's cache, so the same source file is in many of them.
# A .pyc is stored once under its source's content hash, the source's mtime
# and size (the fields a timestamp .pyc's header checks: an entry is valid
# for every source with that name, by construction) and the cache tag;
# before compiling, each source gets the stored .pyc hardlinked in (so
# compileall finds it up to date and skips it), and after, each .pyc the
# store lacks is linked into it. The code object's co_filename names the
# layer that compiled it: the import system rewrites it to the importing
# source's path on load (_imp._fix_co_filename), so tracebacks are right.
# Entries are 0444: a write through one layer would change them all.
_COMPILE = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(3)
if os.environ.get("RUNX_FAULT_STOP") == "compile-child":
    os.kill(os.getpid(), signal.SIGSTOP)
import compileall, hashlib, importlib.util
site, store = sys.argv[2], sys.argv[3]
try:
    os.mkdir(store, 0o700)
except OSError:
    pass
tag = sys.implementation.cache_tag
shared = {}
for d, dirs, files in os.walk(site):
    dirs[:] = [x for x in dirs if x != "__pycache__"]
    for name in files:
        if not name.endswith(".py"):
            continue
        src = os.path.join(d, name)
        try:
            st = os.stat(src)
            with open(src, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            continue
        entry = os.path.join(store, h[:2], "%s-%x-%x.%s.pyc" % (
            h[2:40], int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF, tag))
        pyc = importlib.util.cache_from_source(src)
        shared[pyc] = entry
        if not os.path.exists(pyc):
            try:
                os.makedirs(os.path.dirname(pyc), exist_ok=True)
                os.link(entry, pyc)
            except OSError:
                pass        # not stored yet (or too many links): compiled below
ok = compileall.compile_dir(site, quiet=1, workers=1)
for pyc, entry in shared.items():
    try:
        mine, theirs = os.stat(pyc), os.stat(entry)
    except FileNotFoundError:
        try:        # first of its kind: this layer's .pyc becomes the entry
            os.makedirs(os.path.dirname(entry), mode=0o700, exist_ok=True)
            os.chmod(pyc, 0o444)
            os.link(pyc, entry)
        except OSError:
            pass        # another finisher stored it meanwhile, or no .pyc: next time
        continue
    except OSError:
        continue
    if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
        try:
            if os.path.lexists(pyc + ".shared"):    # a killed finisher's
                os.unlink(pyc + ".shared")
            os.link(entry, pyc + ".shared")
            os.replace(pyc + ".shared", pyc)
        except OSError:
            pass
sys.exit(0 if ok else 1)
"""


def compile_and_freeze(layer_path: str, log=lambda msg: None) -> bool:
    """Byte-compile a published layer and make it read-only; run by a reaper
    (detached, niced) while its payload runs. The key's lock makes one
    finisher at a time; a layer found compiled is left alone. If the
    finisher dies, the next run's reaper tries again. Returns True if done.

    Order, so that a kill anywhere leaves a layer the next finisher redoes:
    compile; freeze every directory but the root; record "compiled" in the
    manifests (renamed in: the root is still writable); freeze the root;
    last, make the manifests read-only. A warm run believes "compiled" only
    when the manifest it read is read-only (its fstat is free: lookup
    checks the file's owner with it anyway), so a kill anywhere in the
    freeze leaves the layer not compiled and the next run's finisher redoes
    it: compileall skips up-to-date files, the chmods are idempotent."""
    import fcntl
    import json
    import subprocess

    from runx_env.runner import fault_point

    kdir = os.path.dirname(layer_path)
    try:
        lock = os.open(os.path.join(kdir, "lock"), os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False                 # a builder, maintenance or another finisher is at it
        fast = os.path.join(layer_path, FAST_MANIFEST)
        try:
            with open(fast, "rb") as f:
                manifest = marshal.loads(f.read())
                frozen = not os.fstat(f.fileno()).st_mode & 0o222
        except (OSError, ValueError, EOFError):
            return False
        if manifest.get("compiled", True) and frozen:
            return True
        if not manifest.get("compiled", True):
            site = os.path.join(layer_path, manifest["site_packages"])
            _thaw(layer_path, site)      # a freeze killed half-way: compileall must write
            python = os.path.join(layer_path, "bin", "python")
            log(f"compiling layer {layer_path}")
            store = os.path.join(os.path.dirname(os.path.dirname(kdir)), BYTECODE)
            p = subprocess.Popen([python, "-I", "-c", _COMPILE, str(os.getpid()), site, store],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            fault_point("compile")
            if p.wait() != 0:
                log(f"compile failed ({p.returncode}); a later run retries")
                return False
        _freeze(layer_path, root_too=False)
        fault_point("freeze")
        if not manifest.get("compiled", True):
            manifest["compiled"] = True
            for name, data in ((FAST_MANIFEST, marshal.dumps(manifest)),
                               (MANIFEST, json.dumps(manifest, indent=1, default=_shown).encode())):
                tmp = os.path.join(layer_path, name + ".tmp")
                _write(tmp, data)
                os.replace(tmp, os.path.join(layer_path, name))
        os.chmod(layer_path, 0o555)
        for name in (MANIFEST, FAST_MANIFEST):   # last: this says "done" to warm runs
            os.chmod(os.path.join(layer_path, name), 0o444)
        log(f"layer compiled and frozen: {layer_path}")
        return True
    finally:
        os.close(lock)


def _shown(value) -> str:
    """JSON manifest for people: a copied file's bytes show as their size."""
    return f"<{len(value)} bytes>"


def _freeze(root: str, *, root_too: bool = True) -> None:
    """Make every directory read-only: nothing can add to or remove from a
    shared layer (a payload's ``pip install`` lands in its own tree).
    Files keep their modes: with uv's default hardlink mode they are uv's
    cache entries too, and their mode is uv's business."""
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o555)
    if root_too:
        os.chmod(root, 0o555)


def _thaw(root: str, site: str) -> None:
    """Undo a partial freeze where the compile writes: the layer's root (its
    manifests) and site-packages. Never the data directories (share/, etc/):
    they were frozen before the layer was published, and runs link into
    them while this compile runs."""
    os.chmod(root, 0o755)
    for dirpath, dirnames, _ in os.walk(site):
        if dirpath == site:
            st = os.lstat(site)
            if not st.st_mode & 0o200:
                os.chmod(site, (st.st_mode & 0o7777) | 0o200)
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                st = os.lstat(p)
                if not st.st_mode & 0o200:
                    os.chmod(p, (st.st_mode & 0o7777) | 0o200)


# --- The layer store: listing, pruning, expiry ---------------------------
#
# The one place that knows the store's layout besides the build above:
# ``<cache>/layers/<key>/{lock, current, <build>/, .tmp-*, .link-*}`` and
# ``<cache>/layers/.trash-*`` (a key moved aside by ``runx cache clean``).
# ``runx cache``, the reapers' sweep and the tests go through it.

DEFAULT_MAX_AGE = 30 * 24 * 3600
EXPIRY_STAMP = "expiry.stamp"       # under the cache: when the sweep last expired
EXPIRY_EVERY = 3600                 # the sweep expires at most this often (or max age)


class Build:
    """A build in the store, as listed (no lock taken)."""

    __slots__ = ("key", "name", "path", "current", "last_used")

    def __init__(self, key, name, path, current, last_used):
        self.key = key
        self.name = name
        self.path = path
        self.current = current          # the key's ``current`` names it
        self.last_used = last_used      # the fast manifest's mtime (see ensure)


def max_age() -> float:
    """RUNX_CACHE_MAX_AGE: seconds a layer may go unused before it expires."""
    try:
        value = float(os.environ.get("RUNX_CACHE_MAX_AGE", DEFAULT_MAX_AGE))
    except ValueError:
        return DEFAULT_MAX_AGE
    return value if value >= 0 else DEFAULT_MAX_AGE


def last_used(build_path: str) -> float:
    try:
        return os.stat(os.path.join(build_path, FAST_MANIFEST)).st_mtime
    except OSError:
        return 0.0


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
            current = os.readlink(os.path.join(kdir, "current"))
        except OSError:
            current = None
        for name in names:
            if name in ("lock", "current") or name.startswith("."):
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


def remove_half_built(kdir: str, name: str) -> None:
    from runx_env.reaper.removal import remove_tree

    if name.startswith(".link-"):
        try:
            os.unlink(os.path.join(kdir, name))
        except FileNotFoundError:
            pass
    else:
        remove_tree(kdir, name)


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

    from runx_env.reaper.removal import remove_tree

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
                if not select(build, build == current, last_used(bpath)):
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




def expire(cache: str, in_use=frozenset(), *, dry: bool = False, now: float | None = None,
           age: float | None = None) -> tuple:
    """Remove every build not used for ``age`` seconds (RUNX_CACHE_MAX_AGE by
    default) and what no layer needs any more: interpreter answers not read
    for as long (or naming an executable that changed), script settings not
    used for as long, byte-code no layer links. Builds in use or being
    built stay (see prune). Returns (removed, [(path, why kept)])."""
    now = time.time() if now is None else now
    age = max_age() if age is None else age
    removed, kept = prune(cache, lambda _build, _current, used: now - used > age,
                          dry=dry, in_use=in_use)
    removed += expire_files(cache, now - age, dry=dry)
    return removed, kept


def expire_files(cache: str, before: float, *, dry: bool) -> list:
    """The cache's small files that outlived their use, then its directories
    left empty."""
    import marshal

    from runx_env.runner.interpreter import _stat_sig

    removed = []
    # Interpreter answers are read, never rewritten, by the runs that use
    # them: their access time says when (relatime updates it at least
    # daily). On a noatime mount an answer is asked again after max age:
    # one `uv python find`.
    d = os.path.join(cache, "interpreters")
    for name in _names(d):
        path = os.path.join(d, name)
        try:
            st = os.lstat(path)
            stale = max(st.st_atime, st.st_mtime) < before
            if not stale:
                with open(path, "rb") as f:
                    info = marshal.loads(f.read())
                stale = any(_stat_sig(sig[0]) != tuple(sig) for sig in info["stats"])
        except (OSError, ValueError, EOFError, TypeError, KeyError):
            stale = True
        if stale:
            removed.append(path)
            if not dry:
                _unlink(path)
    # A script's [tool.uv] settings file: its mtime is its last use
    # (pep723._content_file touches it); rewritten by the next run needing it.
    d = os.path.join(cache, "script-settings")
    for name in _names(d):
        path = os.path.join(d, name)
        try:
            stale = os.lstat(path).st_mtime < before
        except OSError:
            continue
        if stale:
            removed.append(path)
            if not dry:
                _unlink(path)
    # Shared byte-code (see BYTECODE) that no layer links any more.
    d = os.path.join(cache, BYTECODE)
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
    # Nothing empty left behind: every writer makes its directory again
    # (and retries if it loses a race with this rmdir).
    for sub in (BYTECODE, "interpreters", "script-settings", "layers"):
        if not dry:
            try:
                os.rmdir(os.path.join(cache, sub))
            except OSError:
                pass        # not empty, or not there
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
        if now - os.stat(stamp).st_mtime < min(EXPIRY_EVERY, age):
            return []
    except FileNotFoundError:
        if not os.path.isdir(layers_dir(cache)):
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
        if now - os.fstat(fd).st_mtime < min(EXPIRY_EVERY, age):
            return []               # one just finished
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
