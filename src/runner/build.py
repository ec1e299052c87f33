"""Building a layer: the venv, uv's install, the manifest, publishing it
under the key's lock. The run's reaper then byte-compiles and freezes it in
the background (runx_env.reaper.finish). What a layer is and the store's
layout are runx_env.reaper.store's, its key runx_env.runner.identity's; this
module is never imported by a warm run.
"""

import os
import stat
import time

from ..faults import fault_point
from ..errors import RunxError
from ..reaper.finish import freeze
from ..reaper.store import FAST_MANIFEST, FORMAT, MANIFEST, Layer, key_lock, layers_dir, lookup, \
    write_manifests
from .requirements import layer_key

# A build's open-file floor (a run's is cli.RUN_MIN_NOFILE): uv, then its clean-up.
BUILD_MIN_NOFILE = 64


def build(spec, interp, cache, *, refresh, offline, verbosity, log, uv_run_args=()) -> Layer:
    """Build (or, with --refresh, rebuild) the layer for ``spec``; another
    run building the same key meanwhile is waited for, and its layer used.

    A layer of this key older than RUNX_FRESHNESS (unpinned requirements
    are re-resolved then) is kept to fall back on: when the re-resolution
    fails for a reason of the network or the index (uv.Unreachable, found
    out within uv.BOUNDS), the old layer runs, with one warning line (issue
    22.1). Not for --refresh (asked for) or --offline (never re-resolves);
    a change of the requirements is another key, and a set that can no
    longer be satisfied fails as before."""
    from . import uv

    k = layer_key(spec, interp)
    stale = None if refresh or offline else lookup(cache, k, allow_stale=True)
    if stale is None:
        log(f"layer miss: building {k}")
    else:
        log(f"layer miss: {stale.path} is older than RUNX_FRESHNESS: re-resolving, with it to "
            f"fall back on if the index cannot be reached ({uv.BOUNDS_TEXT})")
    try:
        layer = _build(spec, interp, cache, k, refresh=refresh, offline=offline,
                       verbosity=verbosity, log=log, uv_run_args=list(uv_run_args),
                       fallback=stale is not None)
    except uv.Unreachable as e:
        assert stale is not None
        if verbosity >= 0:
            from ..errors import say

            built = time.strftime("%Y-%m-%d %H:%M", time.localtime(stale.created))
            say(f"runx: warning: could not refresh the environment ({e.reason}): running the "
                f"one built {built}; the next run tries again (uv waited {uv.BOUNDS_TEXT})\n")
        return stale
    except BaseException:
        if stale is not None:
            stale.release()
        raise
    if stale is not None:
        stale.release()
    return layer


def _build(spec, interp, cache, k, *, refresh, offline, verbosity, log,
           uv_run_args=(), fallback=False) -> Layer:
    from . import uv
    from ..reaper.removal import remove_tree

    import resource

    # uv and the build's clean-up need file descriptors; under a tiny
    # RLIMIT_NOFILE the build would fail half-way and its clean-up with it,
    # leaving a half-built layer: refuse before anything is made.
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile != resource.RLIM_INFINITY and nofile < BUILD_MIN_NOFILE:
        raise RunxError(f"the open-file limit is {nofile}: too low to build an environment "
                        f"(at least {BUILD_MIN_NOFILE})", "raise it, e.g. ulimit -n 1024")
    kdir = os.path.join(layers_dir(cache), k)
    started = time.time()
    lock = key_lock(kdir)                      # concurrent runs of one spec wait here
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
            from . import venv

            os.mkdir(tmp, 0o700)
            venv.write_entries(tmp, venv.entries(tmp, interp, None, role="layer"))
            bindir = os.path.join(tmp, "bin")
            machinery = set(os.listdir(bindir))
            fault_point("install")
            # Into the venv as a --prefix of its base interpreter: the same
            # layout (uv's prefix scheme is the venv scheme under the prefix)
            # and the same packages seen as installed (only the prefix's), but
            # uv asks the base interpreter, whose facts are in uv's cache,
            # instead of querying this new venv's python by running it (uv
            # caches that by path, and every build's path is new): 35-40 ms
            # of every cold run (docs/benchmarks.md, "Cold"). Scripts get the
            # base's #! line, which _collect_scripts replaces per tree anyway.
            uv.pip_install(interp.executable, spec.uv_args() + list(uv_run_args),
                           offline=offline, refresh=refresh, compile_bytecode=False,
                           verbosity=verbosity, env_extra=spec.uv_env, fallback=fallback,
                           prefix=tmp)
            manifest = {
                "format": FORMAT, "key": k, "created": time.time(), "pinned": spec.pinned,
                "compiled": False,
                "python": interp.executable, "site_packages": interp.lib_dir,
                "requirements": spec.requirements,
                "scripts": _collect_scripts(bindir, machinery,
                                            (interp.executable, os.path.join(bindir, "python"))),
                "prefix": prefix_entries(tmp, interp.lib_dir),
                # Whether a tree must have the layer's .pth files run (venv.entries).
                "pth": any(n.endswith(".pth")
                           for n in os.listdir(os.path.join(tmp, interp.lib_dir))),
            }
            _freeze_data(tmp, manifest["prefix"])
            write_manifests(tmp, manifest)
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


def _collect_scripts(bindir: str, machinery: set, pythons: tuple) -> list:
    """Console scripts the install added. Python ones (their #! names one of
    ``pythons``) are stored without their shebang, to be re-headed with each
    tree's interpreter; anything else (a compiled binary such as ruff's) is
    linked from the tree."""
    out = []
    pys = [p.encode() for p in pythons]
    for name in sorted(os.listdir(bindir)):
        if name in machinery:
            continue
        path = os.path.join(bindir, name)
        body = None
        if not os.path.islink(path) and os.path.getsize(path) < 1 << 20:
            with open(path, "rb") as f:
                data = f.read()
            body = next((b for b in (_python_body(data, py) for py in pys) if b is not None),
                        None)
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
    packages waits for the compile, see runx_env.reaper.finish): a run's write through a link
    fails instead of landing in the shared layer."""
    for kind, path, _ in prefix:
        if kind == "link" and os.path.isdir(os.path.join(root, path)) \
                and not os.path.islink(os.path.join(root, path)):
            freeze(os.path.join(root, path))
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


