"""Finishing a published layer: byte-compile it, then make it read-only.

Run by a reaper's child (``runx-compile``, niced, detached from the tree)
while the payload runs, so a cold run never waits for the compile (see
runx_env.reaper.store for why a layer is published uncompiled). The key's
lock makes one finisher at a time; if the finisher dies, the next run's
reaper tries again and completes a half-done freeze.
"""

import marshal
import os

from ..faults import fault_point
from . import watch
from .ownership import try_lock
from .store import BYTECODE, FAST_MANIFEST, MANIFEST, key_lock_path, write_manifests


# The compile, in the layer's own interpreter. It must die with runx-compile
# (watch.die_with_parent, its preexec_fn). It compiles
# serially: a pool's workers would each need the same death signal, and on
# the 2-core machine measured (docs/reliability.md) -j 0 saved little for a
# background job that runs at nice 19 anyway.
#
# Byte-code is shared across layers through <cache>/bytecode (store.BYTECODE):
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
import os, signal, sys
if os.environ.get("RUNX_FAULT_STOP") == "compile-child":
    os.kill(os.getpid(), signal.SIGSTOP)
import compileall, hashlib, importlib.util
site, store = sys.argv[1], sys.argv[2]
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


def compile_and_freeze(layer_path: str, log=lambda msg: None, *, wait: bool = False) -> bool:
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
    it: compileall skips up-to-date files, the chmods are idempotent.

    ``wait``: wait for the key's lock instead of leaving the layer to whoever
    holds it (``runx sync``, which must return with the layer finished)."""
    import subprocess

    kdir = os.path.dirname(layer_path)
    # Held, or no longer the key's lock (moved aside by `runx cache clean`):
    # a builder, maintenance or another finisher is at it.
    lock = try_lock(key_lock_path(kdir), wait=wait)
    if lock is None:
        return False
    try:
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
            shared = os.path.join(os.path.dirname(os.path.dirname(kdir)), BYTECODE)
            p = subprocess.Popen([python, "-I", "-c", _COMPILE, site, shared],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, preexec_fn=watch.die_with_parent())
            fault_point("compile")
            if p.wait() != 0:
                log(f"compile failed ({p.returncode}); a later run retries")
                return False
        freeze(layer_path, root_too=False)
        fault_point("freeze")
        if not manifest.get("compiled", True):
            manifest["compiled"] = True
            write_manifests(layer_path, manifest)      # renamed in: the root is still writable
        os.chmod(layer_path, 0o555)
        for name in (MANIFEST, FAST_MANIFEST):   # last: this says "done" to warm runs
            os.chmod(os.path.join(layer_path, name), 0o444)
        log(f"layer compiled and frozen: {layer_path}")
        return True
    finally:
        os.close(lock)


def freeze(root: str, *, root_too: bool = True) -> None:
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
