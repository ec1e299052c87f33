"""The ephemeral tree: a thin venv (runx_env.runner.venv) over a cached layer, one per
run, at ``<runtime>/<id>/``. Who owns it, and in which order it is made and
removed, is runx_env.reaper.ownership's: the runner takes the lock, makes the
directory, and hands both to the reaper.
"""

import os
import time

from ..reaper.ownership import Tree, create as _lock_new, lock_path, remove
from .venv import write_entries


def create(runtime: str, *, mode: str, meta: dict) -> Tree:
    """Lock first, then the (empty) tree directory."""
    tid, fd = _lock_new(runtime)
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
        os.unlink(lock_path(runtime, tid))
        os.close(fd)
        raise
    return Tree(tid, runtime, path, fd, mode, st.st_dev, st.st_ino)


def populate(tree: Tree) -> None:
    """Write the thin venv into a ``--tree dir`` tree."""
    write_entries(tree.path, tree.entries)


def discard(tree: Tree) -> None:
    """Remove a tree the runner still owns (failure before the reaper exists,
    or a --tree fuse reaper that could not serve and may have removed it)."""
    remove(tree.runtime, tree.id, expect=tree.identity, lock_fd=tree.lock_fd)


# JSON's escapes for what it does not take literally in a string.
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in (*range(32), 127)} | {
    ord('"'): '\\"', ord("\\"): "\\\\", 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}


def _quote(s: str) -> str:
    """A JSON string, ASCII only (as json.dumps writes it): _json is a shared
    library to load on every warm run (docs/benchmarks.md), for a few short
    strings."""
    s = s.translate(_JSON_ESCAPES)
    if not s.isascii():
        s = "".join(c if c < "\x80" else _non_ascii(ord(c)) for c in s)
    return f'"{s}"'


def _non_ascii(n: int) -> str:
    if n < 0x10000:
        return f"\\u{n:04x}"
    n -= 0x10000
    return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"


def _to_json(value) -> str:
    """JSON for the lock's metadata without importing json (which imports re):
    the values are str, int, float, bool, None and lists of str."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_quote(k)}: {_to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_to_json(v) for v in value) + "]"
    if isinstance(value, str):
        return _quote(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)
