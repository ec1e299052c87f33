"""The cached layer: one immutable, byte-compiled venv per requirement set.

Byte-compiling is deferred: uv installs without it (as `uv run` does), the
layer is published at once, and the run's reaper compiles it in the
background at low priority while the payload runs, then makes it read-only
(``finish``). Until then the layer's directories stay writable, so the first
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

from runner import checkpoint
from runner.errors import RunxError
from runner.interpreter import Interpreter
from runner.requirements import Spec, _hash

# The manifest twice: JSON for people, marshal for the warm path (marshal is
# built in and already loaded; json would bring re with it).
MANIFEST = "runx-layer.json"
FAST_MANIFEST = "runx-layer.marshal"
# Part of the key: a layer of an older format is rebuilt, not misread.
# 3: the manifest records the prefix's entries (share/, etc/...).
FORMAT = "3"
DEFAULT_FRESHNESS = 24 * 3600


class Layer:
    __slots__ = ("key", "path", "site_packages", "scripts", "created", "pinned", "compiled",
                 "prefix")

    def __init__(self, key, path, site_packages, scripts, created, pinned, compiled=True,
                 prefix=()):
        self.key = key
        self.path = path                    # the build dir; never changes once in place
        self.site_packages = site_packages  # absolute
        self.scripts = scripts              # [{"name", "kind": "python"|"link", "body"?, "mode"}]
        self.created = created
        self.pinned = pinned
        self.compiled = compiled            # byte-compiled and frozen (see finish)
        self.prefix = prefix                # [(kind, relpath, data)]: see prefix_entries


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
    """The warm path: one readlink and one small read."""
    kdir = os.path.join(layers_dir(cache), k)
    try:
        build = os.readlink(os.path.join(kdir, "current"))
        path = os.path.join(kdir, build)
        with open(os.path.join(path, FAST_MANIFEST), "rb") as f:
            m = marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    layer = Layer(k, path, os.path.join(path, m["site_packages"]), m["scripts"],
                  m["created"], m["pinned"], m.get("compiled", True), m.get("prefix", ()))
    if not allow_stale and not layer.pinned and time.time() - layer.created > freshness():
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
    import fcntl
    import json

    from runner import uv
    from reaper.removal import remove_tree

    kdir = os.path.join(layers_dir(cache), k)
    os.makedirs(kdir, mode=0o700, exist_ok=True)
    lock = os.open(os.path.join(kdir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        started = time.time()
        fcntl.flock(lock, fcntl.LOCK_EX)        # concurrent runs of one spec wait here
        layer = lookup(cache, k, allow_stale=offline)
        if layer and (not refresh or layer.created >= started):
            log(f"layer built meanwhile by another run: {layer.path}")
            return layer
        # Holding the lock, any .tmp-* here belongs to a builder that died.
        for name in os.listdir(kdir):
            if name.startswith(".tmp-"):
                remove_tree(kdir, name)
        build = f"{int(time.time())}-{os.urandom(4).hex()}"
        tmp = os.path.join(kdir, ".tmp-" + build)
        try:
            # The venv itself is the same handful of entries as a thin tree:
            # written here, it saves a whole `uv venv` process per build.
            from runner import trees

            os.mkdir(tmp, 0o700)
            trees.write_entries(tmp, trees.entries(tmp, interp, None, role="layer"))
            bindir = os.path.join(tmp, "bin")
            machinery = set(os.listdir(bindir))
            checkpoint("install")
            uv.pip_install(os.path.join(bindir, "python"), spec.uv_args() + list(uv_run_args),
                           offline=offline, refresh=refresh, compile_bytecode=False,
                           verbosity=verbosity)
            manifest = {
                "format": FORMAT, "key": k, "created": time.time(), "pinned": spec.pinned,
                "compiled": False,
                "python": interp.executable, "site_packages": interp.lib_dir,
                "requirements": spec.requirements,
                "scripts": _collect_scripts(bindir, machinery, os.path.join(bindir, "python")),
                "prefix": prefix_entries(tmp, interp.lib_dir),
            }
            _freeze_data(tmp, manifest["prefix"])
            with open(os.path.join(tmp, MANIFEST), "w") as f:
                json.dump(manifest, f, indent=1, default=_shown)
            with open(os.path.join(tmp, FAST_MANIFEST), "wb") as f:
                f.write(marshal.dumps(manifest))
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
    packages waits for the compile, see finish): a run's write through a link
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


def finish(layer_path: str, log=lambda msg: None) -> bool:
    """Byte-compile a published layer and make it read-only; run by a reaper
    (detached, niced) while its payload runs. The key's lock makes one
    finisher at a time; a layer found compiled is left alone. If the
    finisher dies, the next run's reaper tries again. Returns True if done."""
    import fcntl
    import json
    import subprocess

    kdir = os.path.dirname(layer_path)
    try:
        lock = os.open(os.path.join(kdir, "lock"), os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False                 # a builder or another finisher is at it
        fast = os.path.join(layer_path, FAST_MANIFEST)
        try:
            with open(fast, "rb") as f:
                manifest = marshal.loads(f.read())
        except (OSError, ValueError, EOFError):
            return False
        if manifest.get("compiled", True):
            return True
        site = os.path.join(layer_path, manifest["site_packages"])
        python = os.path.join(layer_path, "bin", "python")
        log(f"compiling layer {layer_path}")
        # -j 0: all cores; the caller (the reaper's runx-compile child) is
        # niced, and compileall inherits it: the payload comes first.
        r = subprocess.run([python, "-I", "-m", "compileall", "-q", "-j", "0", site],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            log(f"compileall failed ({r.returncode}); a later run retries")
            return False
        manifest["compiled"] = True
        for name, data in ((FAST_MANIFEST, marshal.dumps(manifest)),
                           (MANIFEST, json.dumps(manifest, indent=1, default=_shown).encode())):
            tmp = os.path.join(layer_path, name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(layer_path, name))
        _freeze(layer_path)
        log(f"layer compiled and frozen: {layer_path}")
        return True
    finally:
        os.close(lock)


def _shown(value) -> str:
    """JSON manifest for people: a copied file's bytes show as their size."""
    return f"<{len(value)} bytes>"


def _freeze(root: str) -> None:
    """Make every directory read-only: nothing can add to or remove from a
    shared layer (a payload's ``pip install`` lands in its own tree).
    Files keep their modes: with uv's default hardlink mode they are uv's
    cache entries too, and their mode is uv's business."""
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o555)
    os.chmod(root, 0o555)
