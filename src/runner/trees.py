"""The ephemeral tree: a thin venv over a cached layer, one per run.

A tree is ``<runtime>/<id>/`` plus its lock ``<runtime>/<id>.lock``. The lock
is flocked before the tree exists and is held until the tree is gone: by the
runner while it prepares the run, then by the reaper (the open file
description is shared across fork, and the runner's copy closes at exec).
A tree whose lock can be taken therefore has no owner, however the owner
died; no PID file, nothing PID reuse can fool. Removal goes tree first, lock
last, so a tree without a lock file was never made by runx.

The thin venv is a handful of entries (pyvenv.cfg, interpreter links, a
.pth that adds the layer, re-headed console scripts, activate scripts, and
the layer's other prefix entries as recorded in its manifest: share/, etc/,
include/...): made in time that does not depend on the layer's size. ``entries()`` describes them once for both
``--tree dir`` (written here) and ``--tree fuse`` (served by the reaper).
"""

import fcntl
import os
import sys
import time

from runner.interpreter import Interpreter
from runner.layers import Layer

LOCK_SUFFIX = ".lock"


class Entry:
    """One entry of the thin venv: path relative to the tree, kind "dir" |
    "file" | "symlink", file content or link target, mode."""

    __slots__ = ("path", "kind", "data", "mode")

    def __init__(self, path: str, kind: str, data: str = "", mode: int = 0o755):
        self.path = path
        self.kind = kind
        self.data = data
        self.mode = mode

    def __repr__(self):
        return f"Entry({self.path!r}, {self.kind!r})"


class Tree:
    def __init__(self, id, runtime, path, lock_fd, mode, dev=0, ino=0):
        self.id = id
        self.runtime = runtime
        self.path = path
        self.lock_fd = lock_fd
        self.mode = mode                # "dir" | "fuse"
        self.dev = dev
        self.ino = ino
        self.entries: list = []

    @property
    def lock_path(self) -> str:
        return os.path.join(self.runtime, self.id + LOCK_SUFFIX)

    @property
    def bin(self) -> str:
        return os.path.join(self.path, "bin")


def _shebang(python: str) -> str:
    # The kernel reads at most 127 bytes of a shebang line (BINPRM_BUF_SIZE);
    # longer interpreter paths go through /bin/sh, as uv and pip do.
    if len(python) + 2 <= 127 and " " not in python:
        return f"#!{python}\n"
    return f"#!/bin/sh\n'''exec' '{python}' \"$0\" \"$@\"\n' '''\n"


def entries(path: str, interp: Interpreter, layer: Layer | None, *, role: str = "tree") -> list:
    """The venv at ``path`` on ``interp``: a run's thin tree over ``layer``,
    or (``role="layer"``, no layer) the empty venv a layer is installed into."""
    home = os.path.dirname(interp.executable)
    cfg = (f"home = {home}\ninclude-system-site-packages = false\n"
           f"version = {interp.version}\nimplementation = {interp.implementation}\n")
    if role == "tree":
        cfg += f"runx-tree = {path}\n"
    if layer:
        cfg += f"runx-layer = {layer.path}\n"
    site = interp.lib_dir
    out = [Entry("pyvenv.cfg", "file", cfg, 0o644), Entry("bin", "dir"),
           Entry("bin/python", "symlink", interp.executable),
           Entry("bin/python3", "symlink", "python"),
           Entry(f"bin/python{interp.minor}", "symlink", "python")]
    parts = site.split("/")
    for i in range(1, len(parts) + 1):
        out.append(Entry("/".join(parts[:i]), "dir"))
    if sys.platform.startswith("linux") and site.startswith("lib/"):
        out.append(Entry("lib64", "symlink", "lib"))
    if role == "tree":
        from runner.activate import scripts

        for name, text in scripts(path):
            out.append(Entry(f"bin/{name}", "file", text, 0o644))
    if layer:
        # addsitedir (not a bare path line) so the layer's own .pth files run too.
        out.append(Entry(f"{site}/_runx_layer.pth", "file",
                         f"import site; site.addsitedir({layer.site_packages!r})\n", 0o644))
        head = _shebang(os.path.join(path, "bin", "python"))
        for s in layer.scripts:
            target = f"bin/{s['name']}"
            if s["kind"] == "python":
                out.append(Entry(target, "file", head + s["body"], s["mode"] | 0o200))
            else:
                out.append(Entry(target, "symlink",
                                 os.path.join(layer.path, "bin", s["name"])))
        # Everything else the layer's prefix holds (share/, etc/, include/...),
        # as recorded at build time: see layers.prefix_entries.
        for kind, rel, data in layer.prefix:
            if kind == "dir":
                out.append(Entry(rel, "dir"))
            elif kind == "copy":
                out.append(Entry(rel, "file", data[0], data[1] | 0o200))
            else:
                out.append(Entry(rel, "symlink", os.path.join(layer.path, rel)))
    return out


def create(runtime: str, *, mode: str, meta: dict) -> Tree:
    """Lock first, then the (empty) tree directory."""
    for _ in range(8):
        tid = os.urandom(6).hex()
        lock_path = os.path.join(runtime, tid + LOCK_SUFFIX)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A sweep that took the lock between our open and our flock has
        # unlinked it: ours only if the name still points at our inode.
        st = os.fstat(fd)
        try:
            st2 = os.stat(lock_path, follow_symlinks=False)
        except FileNotFoundError:
            st2 = None
        if st2 is None or (st.st_dev, st.st_ino) != (st2.st_dev, st2.st_ino):
            os.close(fd)
            continue
        break
    else:  # pragma: no cover - eight sweeps racing one run
        raise OSError("could not lock a new tree")
    path = os.path.join(runtime, tid)
    try:
        info = dict(meta, pid=os.getpid(), tree=path, mode=mode, created=time.time())
        os.write(fd, _to_json(info).encode())
        os.mkdir(path, 0o700)
        st = os.stat(path)
    except OSError:
        try:
            os.rmdir(path)
        except OSError:
            pass
        os.unlink(lock_path)
        os.close(fd)
        raise
    return Tree(tid, runtime, path, fd, mode, st.st_dev, st.st_ino)


def populate(tree: Tree) -> None:
    """Write the thin venv into a ``--tree dir`` tree."""
    write_entries(tree.path, tree.entries)


def write_entries(root: str, entries: list) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for e in entries:
        p = os.path.join(root, e.path)
        if e.kind == "dir":
            os.mkdir(p, 0o755)
        elif e.kind == "symlink":
            os.symlink(e.data, p)
        else:
            fd = os.open(p, flags, e.mode)
            try:
                os.write(fd, e.data.encode() if isinstance(e.data, str) else e.data)
            finally:
                os.close(fd)


def discard(tree: Tree) -> None:
    """Remove a tree the runner still owns (failure before the reaper exists)."""
    from reaper.removal import remove_tree

    # Tree first, lock last; a tree that cannot go yet (a --tree fuse mount
    # whose reaper died before its auto-unmount) keeps its lock file, so the
    # next sweep still knows it is runx's and retries.
    if remove_tree(tree.runtime, tree.id, expect=(tree.dev, tree.ino)):
        try:
            os.unlink(tree.lock_path)
        except FileNotFoundError:   # a --tree fuse reaper that failed to mount removed it first
            pass
    os.close(tree.lock_fd)


def _to_json(value) -> str:
    """JSON for the lock's metadata without importing json (which imports re):
    the values are str, int, float, bool, None and lists of str."""
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:  # pragma: no cover
        from json import dumps as quote
    if isinstance(value, dict):
        return "{" + ", ".join(f"{quote(k)}: {_to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_to_json(v) for v in value) + "]"
    if isinstance(value, str):
        return quote(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)
