"""Building a layer: the venv, uv's install, the manifest, publishing it
under the key's lock; then, in the reaper's background, byte-compiling and
freezing it (``compile_and_freeze``). What a layer is, its key and the
store's layout are runx_env.runner.layers'; this module is never imported by
a warm run.
"""

import marshal
import os
import stat
import time

from runx_env.runner import fault_point
from runx_env.runner.errors import RunxError
from runx_env.runner.layers import (BYTECODE, FAST_MANIFEST, FORMAT, MANIFEST, Layer, _key_lock,
                                    key, layers_dir, lookup)

MIN_NOFILE = 64


def build(spec, interp, cache, *, refresh, offline, verbosity, log, uv_run_args=()) -> Layer:
    """Build (or, with --refresh, rebuild) the layer for ``spec``; another
    run building the same key meanwhile is waited for, and its layer used."""
    k = key(spec, interp)
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
            _freeze(os.path.join(root, path))
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
