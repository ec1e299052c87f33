"""The in-memory file system a ``--tree fuse`` reaper serves (pyfuse3).

Imported by runx_env.reaper.fuse_tree only, inside the reaper, once it has decided to
serve, after runx_env.reaper.fuse_loop.load() has imported pyfuse3 (without trio).

It starts as the thin venv described by ``runx_env.runner.venv.entries`` and is
writable enough for ``pip install`` / ``uv pip install`` into the running
environment: regular files, directories, symlinks, hard links, FIFOs and
sockets; rename with RENAME_NOREPLACE / RENAME_EXCHANGE; truncate, chmod,
chown, utimens; statfs. Every byte lives in the reaper's memory and dies
with it.

The only writer is the mount itself, so the kernel may cache everything for
long (entry, negative entry and attribute timeouts of ``TIMEOUT``): the
kernel's FUSE client invalidates what an operation through the mount
changes. Read-only opens keep the page cache (``keep_cache``); opens for
writing drop it, which costs nothing and keeps the rule simple.

Inode numbers are never reused. An inode is freed once it has no name, the
kernel has forgotten it (lookup count zero) and no handle is open.
"""

import errno
import functools
import os
import stat
import time
from typing import Any

import pyfuse3

TIMEOUT = 300.0          # seconds: entry, negative entry and attribute cache
_NAME_MAX = 255
_BLOCK = 4096


class Node:
    __slots__ = ("ino", "mode", "nlink", "uid", "gid", "data", "target", "children",
                 "serial", "parent", "atime", "mtime", "ctime", "lookups", "opens", "rdev")

    def __init__(self, ino: int, mode: int, uid: int, gid: int, now: int):
        self.ino = ino
        self.mode = mode
        self.nlink = 2 if stat.S_ISDIR(mode) else 1
        self.uid = uid
        self.gid = gid
        # data (files) and children (directories) are None for the other
        # kinds; handlers check the kind (or the kernel did) before use, so
        # they are typed Any rather than narrowed at every use on a hot path.
        self.data: Any = bytearray() if stat.S_ISREG(mode) else None
        self.target = b""
        # Directories: name -> (ino, serial). Insertion order is serial order
        # (a name is always deleted before it is added again), which gives
        # readdir offsets that survive concurrent changes.
        self.children: Any = {} if stat.S_ISDIR(mode) else None
        self.serial = 3                  # 1 and 2 are "." and ".."
        self.parent = ino
        self.atime = self.mtime = self.ctime = now
        self.lookups = 0
        self.opens = 0
        self.rdev = 0

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if stat.S_ISLNK(self.mode):
            return len(self.target)
        if self.children is not None:
            return _BLOCK
        return 0


def _err(code: int):
    return pyfuse3.FUSEError(code)


class MemFS(pyfuse3.Operations):
    """pyfuse3 operations over a dict of Nodes."""

    enable_writeback_cache = False     # writes reach us at once: keep_cache stays coherent

    def __init__(self, entries: list, root_mode: int = 0o700):
        super().__init__()
        self.uid = os.geteuid()
        self.gid = os.getegid()
        now = time.time_ns()
        root = Node(pyfuse3.ROOT_INODE, stat.S_IFDIR | root_mode, self.uid, self.gid, now)
        self.nodes = {root.ino: root}
        self.next_ino = root.ino + 1
        self.handles: dict = {}
        self.next_fh = 1
        for e in entries:
            self._add_entry(e, now)

    # --- building --------------------------------------------------------

    def _add_entry(self, e, now: int) -> None:
        parent = self.nodes[pyfuse3.ROOT_INODE]
        parts = [p for p in e.path.split("/") if p]
        for part in parts[:-1]:
            name = part.encode()
            if name in parent.children:
                parent = self.nodes[parent.children[name][0]]
            else:
                parent = self._new(parent, name, stat.S_IFDIR | 0o755, now)
        name = parts[-1].encode()
        if name in parent.children:
            if e.kind == "dir":
                return
            raise ValueError(f"duplicate tree entry {e.path}")
        if e.kind == "dir":
            self._new(parent, name, stat.S_IFDIR | (e.mode & 0o7777), now)
        elif e.kind == "symlink":
            n = self._new(parent, name, stat.S_IFLNK | 0o777, now)
            n.target = os.fsencode(e.data)
        else:
            n = self._new(parent, name, stat.S_IFREG | (e.mode & 0o7777), now)
            n.data[:] = e.data.encode() if isinstance(e.data, str) else e.data

    def _new(self, parent: Node, name: bytes, mode: int, now: int | None = None) -> Node:
        if len(name) > _NAME_MAX:
            raise _err(errno.ENAMETOOLONG)
        now = time.time_ns() if now is None else now
        gid = parent.gid if parent.mode & stat.S_ISGID else self.gid
        if parent.mode & stat.S_ISGID and stat.S_ISDIR(mode):
            mode |= stat.S_ISGID
        n = Node(self.next_ino, mode, self.uid, gid, now)
        self.next_ino += 1
        self.nodes[n.ino] = n
        self._link(parent, name, n, now)
        if n.children is not None:
            n.parent = parent.ino
            parent.nlink += 1
        return n

    # --- helpers -----------------------------------------------------------

    def _node(self, ino: int) -> Node:
        try:
            return self.nodes[ino]
        except KeyError:
            raise _err(errno.ENOENT) from None

    def _dir(self, ino: int) -> Node:
        n = self._node(ino)
        if n.children is None:
            raise _err(errno.ENOTDIR)
        return n

    def _child(self, parent: Node, name: bytes) -> Node | None:
        hit = parent.children.get(name)
        return self.nodes[hit[0]] if hit else None

    @staticmethod
    def _link(parent: Node, name: bytes, node: Node, now: int) -> None:
        parent.children.pop(name, None)
        parent.children[name] = (node.ino, parent.serial)
        parent.serial += 1
        parent.mtime = parent.ctime = now

    def _drop(self, node: Node) -> None:
        """Free ``node`` if nothing refers to it any more."""
        if (node.nlink <= 0 and node.lookups <= 0 and node.opens <= 0
                and node.ino != pyfuse3.ROOT_INODE):
            self.nodes.pop(node.ino, None)

    def _unname(self, parent: Node, name: bytes, node: Node, now: int) -> None:
        """Remove the entry ``name`` (which refers to ``node``) from ``parent``."""
        del parent.children[name]
        parent.mtime = parent.ctime = now
        if node.children is not None:
            node.nlink = 0
            parent.nlink -= 1
        else:
            node.nlink -= 1
        node.ctime = now
        self._drop(node)

    def attr(self, n: Node) -> "pyfuse3.EntryAttributes":
        a = pyfuse3.EntryAttributes()
        a.st_ino = n.ino
        a.generation = 0
        a.entry_timeout = TIMEOUT
        a.attr_timeout = TIMEOUT
        a.st_mode = n.mode
        a.st_nlink = n.nlink
        a.st_uid = n.uid
        a.st_gid = n.gid
        a.st_rdev = n.rdev
        size = n.size
        a.st_size = size
        a.st_blksize = _BLOCK
        a.st_blocks = (len(n.data) + 511) // 512 if n.data is not None else (
            _BLOCK // 512 if n.children is not None else 0)
        a.st_atime_ns = n.atime
        a.st_mtime_ns = n.mtime
        a.st_ctime_ns = n.ctime
        return a

    def _entry(self, n: Node) -> "pyfuse3.EntryAttributes":
        """Attributes for a reply that counts as a lookup."""
        n.lookups += 1
        return self.attr(n)

    @staticmethod
    def _kill_priv(n: Node) -> None:
        # FUSE_CAP_HANDLE_KILLPRIV (libfuse's default): the file system, not
        # the kernel, drops set-user-ID (and group-executable set-group-ID)
        # when a file is written or truncated.
        n.mode &= ~stat.S_ISUID
        if n.mode & stat.S_IXGRP:
            n.mode &= ~stat.S_ISGID

    @staticmethod
    def _resize(n: Node, size: int) -> None:
        if size < len(n.data):
            del n.data[size:]
        elif size > len(n.data):
            n.data.extend(bytes(size - len(n.data)))

    # --- lookups and attributes -------------------------------------------

    async def lookup(self, parent_inode, name, ctx):
        parent = self._dir(parent_inode)
        if name == b".":
            return self._entry(parent)
        if name == b"..":
            return self._entry(self.nodes.get(parent.parent, parent))
        n = self._child(parent, name)
        if n is None:
            # A negative entry, cached like a positive one: a name can only
            # appear through this mount, and the kernel drops the negative
            # dentry when it does.
            a = pyfuse3.EntryAttributes()
            a.st_ino = 0
            a.entry_timeout = TIMEOUT
            return a
        return self._entry(n)

    async def forget(self, inode_list):
        for ino, nlookup in inode_list:
            n = self.nodes.get(ino)
            if n is not None:
                n.lookups -= nlookup
                self._drop(n)

    async def getattr(self, inode, ctx):
        return self.attr(self._node(inode))

    async def setattr(self, inode, attr, fields, fh, ctx):
        n = self._node(inode)
        now = time.time_ns()
        if fields.update_size:
            if n.data is None:
                raise _err(errno.EISDIR if n.children is not None else errno.EINVAL)
            self._resize(n, attr.st_size)
            self._kill_priv(n)
            n.mtime = now
        if fields.update_mode:
            n.mode = stat.S_IFMT(n.mode) | stat.S_IMODE(attr.st_mode)
        if fields.update_uid:
            n.uid = attr.st_uid
        if fields.update_gid:
            n.gid = attr.st_gid
        if fields.update_atime:
            n.atime = attr.st_atime_ns
        if fields.update_mtime:
            n.mtime = attr.st_mtime_ns
        n.ctime = attr.st_ctime_ns if fields.update_ctime else now
        return self.attr(n)

    async def readlink(self, inode, ctx):
        n = self._node(inode)
        if not stat.S_ISLNK(n.mode):
            raise _err(errno.EINVAL)
        return n.target

    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        used = sum((n.size + _BLOCK - 1) // _BLOCK for n in self.nodes.values())
        try:    # the reaper's memory is the limit: report what is available
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // _BLOCK
        except (ValueError, OSError):
            free = 1 << 20
        s.f_bsize = s.f_frsize = _BLOCK
        s.f_blocks = used + free
        s.f_bfree = s.f_bavail = free
        s.f_files = len(self.nodes) + (1 << 20)
        s.f_ffree = s.f_favail = 1 << 20
        s.f_namemax = _NAME_MAX
        return s

    # --- creating and removing names ---------------------------------------

    def _check_new(self, parent: Node, name: bytes) -> None:
        if name in (b".", b"..") or name in parent.children:
            raise _err(errno.EEXIST)

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        parent = self._dir(parent_inode)
        self._check_new(parent, name)
        kind = stat.S_IFMT(mode)
        if kind not in (stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK):
            raise _err(errno.EPERM)          # no device nodes in a venv
        return self._entry(self._new(parent, name, kind | stat.S_IMODE(mode)))

    async def mkdir(self, parent_inode, name, mode, ctx):
        parent = self._dir(parent_inode)
        self._check_new(parent, name)
        return self._entry(self._new(parent, name, stat.S_IFDIR | stat.S_IMODE(mode)))

    async def symlink(self, parent_inode, name, target, ctx):
        parent = self._dir(parent_inode)
        self._check_new(parent, name)
        n = self._new(parent, name, stat.S_IFLNK | 0o777)
        n.target = bytes(target)
        return self._entry(n)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        n = self._node(inode)
        if n.children is not None:
            raise _err(errno.EPERM)
        parent = self._dir(new_parent_inode)
        self._check_new(parent, new_name)
        if len(new_name) > _NAME_MAX:
            raise _err(errno.ENAMETOOLONG)
        now = time.time_ns()
        self._link(parent, new_name, n, now)
        n.nlink += 1
        n.ctime = now
        return self._entry(n)

    async def unlink(self, parent_inode, name, ctx):
        parent = self._dir(parent_inode)
        n = self._child(parent, name)
        if n is None:
            raise _err(errno.ENOENT)
        if n.children is not None:
            raise _err(errno.EISDIR)
        self._unname(parent, name, n, time.time_ns())

    async def rmdir(self, parent_inode, name, ctx):
        parent = self._dir(parent_inode)
        n = self._child(parent, name)
        if n is None:
            raise _err(errno.ENOENT)
        if n.children is None:
            raise _err(errno.ENOTDIR)
        if n.children:
            raise _err(errno.ENOTEMPTY)
        self._unname(parent, name, n, time.time_ns())

    def _move_dir(self, n: Node, old: Node, new: Node) -> None:
        if n.children is not None and old is not new:
            old.nlink -= 1
            new.nlink += 1
            n.parent = new.ino

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        old = self._dir(parent_inode_old)
        new = self._dir(parent_inode_new)
        n = self._child(old, name_old)
        if n is None:
            raise _err(errno.ENOENT)
        if len(name_new) > _NAME_MAX:
            raise _err(errno.ENAMETOOLONG)
        target = self._child(new, name_new)
        now = time.time_ns()
        if flags & pyfuse3.RENAME_EXCHANGE:
            if target is None:
                raise _err(errno.ENOENT)
            old.children[name_old] = (target.ino, old.children[name_old][1])
            new.children[name_new] = (n.ino, new.children[name_new][1])
            self._move_dir(n, old, new)
            self._move_dir(target, new, old)
            for x in (old, new):
                x.mtime = x.ctime = now
            n.ctime = target.ctime = now
            return
        if target is not None:
            if flags & pyfuse3.RENAME_NOREPLACE:
                raise _err(errno.EEXIST)
            if target is n:
                return                       # two names of one file: POSIX says do nothing
            if n.children is not None and target.children is None:
                raise _err(errno.ENOTDIR)
            if n.children is None and target.children is not None:
                raise _err(errno.EISDIR)
            if target.children:
                raise _err(errno.ENOTEMPTY)
            self._unname(new, name_new, target, now)
        del old.children[name_old]
        old.mtime = old.ctime = now
        self._link(new, name_new, n, now)
        self._move_dir(n, old, new)
        n.ctime = now

    # --- files ---------------------------------------------------------------

    def _open(self, n: Node, flags: int) -> "pyfuse3.FileInfo":
        writing = flags & os.O_ACCMODE != os.O_RDONLY
        if writing and flags & os.O_TRUNC:
            # FUSE_CAP_ATOMIC_O_TRUNC (libfuse's default): O_TRUNC comes here,
            # not as a separate setattr.
            del n.data[:]
            self._kill_priv(n)
            n.mtime = n.ctime = time.time_ns()
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = n
        n.opens += 1
        # Read-only opens keep the page cache: every change comes through this
        # mount, so what the kernel cached is still right.
        return pyfuse3.FileInfo(fh=fh, keep_cache=not writing)

    async def open(self, inode, flags, ctx):
        n = self._node(inode)
        if n.data is None:
            raise _err(errno.EISDIR if n.children is not None else errno.EINVAL)
        return self._open(n, flags)

    async def create(self, parent_inode, name, mode, flags, ctx):
        parent = self._dir(parent_inode)
        self._check_new(parent, name)
        n = self._new(parent, name, stat.S_IFREG | stat.S_IMODE(mode))
        return self._open(n, flags), self._entry(n)

    async def read(self, fh, off, size):
        n = self.handles[fh]
        return bytes(n.data[off:off + size])

    async def write(self, fh, off, buf):
        n = self.handles[fh]
        end = off + len(buf)
        if off > len(n.data):
            self._resize(n, off)
        n.data[off:end] = buf
        self._kill_priv(n)
        n.mtime = n.ctime = time.time_ns()
        return len(buf)

    # flush, fsync and fsyncdir are left to pyfuse3's defaults, which answer
    # ENOSYS: the kernel then takes them as done and never sends them again,
    # so a close() no longer waits for a round trip to this process.

    async def release(self, fh):
        n = self.handles.pop(fh, None)
        if n is not None:
            n.opens -= 1
            self._drop(n)

    # --- directories ---------------------------------------------------------

    async def opendir(self, inode, ctx):
        self._dir(inode)
        return inode                          # stateless: offsets are serials

    async def readdir(self, fh, start_id, token):
        d = self.nodes.get(fh)
        if d is None or d.children is None:
            return
        if start_id < 1:
            if not pyfuse3.readdir_reply(token, b".", self.attr(d), 1):
                return
        if start_id < 2:
            up = self.nodes.get(d.parent, d)     # a removed directory's parent may be gone
            if not pyfuse3.readdir_reply(token, b"..", self.attr(up), 2):
                return
        for name, (ino, serial) in list(d.children.items()):
            if serial <= start_id:
                continue
            n = self.nodes[ino]
            if not pyfuse3.readdir_reply(token, name, self.attr(n), serial):
                return
            n.lookups += 1                    # readdirplus counts as a lookup

    async def releasedir(self, fh):
        pass


def _guard(fn):
    """A bug or a full memory in one request fails that request (EIO,
    ENOSPC), not the whole mount: pyfuse3 lets any exception other than
    FUSEError end its main loop."""
    @functools.wraps(fn)
    async def guarded(self, *args):
        try:
            return await fn(self, *args)
        except pyfuse3.FUSEError:
            raise
        except MemoryError:
            raise pyfuse3.FUSEError(errno.ENOSPC) from None
        except Exception:
            raise pyfuse3.FUSEError(errno.EIO) from None
    return guarded


for _name in ("lookup", "getattr", "setattr", "readlink", "statfs", "mknod", "mkdir",
              "symlink", "link", "unlink", "rmdir", "rename", "open", "create", "read",
              "write", "opendir", "readdir"):
    setattr(MemFS, _name, _guard(getattr(MemFS, _name)))
