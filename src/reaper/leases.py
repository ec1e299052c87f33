"""Who still uses a tree: the lease holders.

A process holds a lease on a tree while it carries ``RUNX_ENV=<tree>`` in its
environment (the payload's descendants, daemonized ones included, however
they were reparented) or has its cwd, executable or a mapped file inside the
tree. Linux reads /proc directly (no psutil: the reaper stays small);
elsewhere psutil answers the same questions.

Zombies hold nothing: their environ, cwd and maps are gone.

A scan is a listdir of /proc followed by a check of each PID, so it is not
atomic: a holder can fork its successor and exit between the listdir and
its own check, and the scan then looks empty although the successor lives
on. ``Scan`` therefore says whether an empty answer is *certain* (see
docs/reliability.md, "Leases", for the argument): it remembers each
process's verdict under its identity (PID, start time) from one scan to the
next, and a scan is conclusive only if every PID of its listdir was checked
alive, or is gone with a remembered non-holder verdict, or was already a
zombie in the previous scan. Otherwise the caller scans again.
"""

import errno
import os
import stat
import sys
import time

from . import removal, watch

_PROC = watch.procfs()
# Where the scan reads processes from: a fake one in the fast tier's tests.
PROC = "/proc"

_ENV = b"RUNX_ENV="


def _inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree + "/")


class _Match:
    """Which of a set of trees an RUNX_ENV value or a path designates.

    The kernel reports cwd, exe and maps resolved: paths are compared with
    the tree's resolved spelling (its parent resolved, not the tree itself:
    a FUSE tree's mountpoint would ask its own server). RUNX_ENV is a
    string the runner wrote: both spellings match."""

    def __init__(self, trees):
        self.trees = list(trees)
        self.env = {}
        self.path = {}
        roots = set()
        resolved: dict = {}             # parent -> its realpath: trees share one
        for t in self.trees:
            tb = os.fsencode(t.rstrip("/") or "/")
            parent, name = os.path.split(tb)
            if parent not in resolved:
                resolved[parent] = os.path.realpath(parent)
            real = os.path.join(resolved[parent], name)
            for spelling in (tb, real):
                self.env[spelling] = t
                self.path[spelling] = t
                roots.add(os.path.dirname(spelling).rstrip(b"/") + b"/")
        self.roots = sorted(roots)
        self.tops: dict | None = None       # (st_dev, st_ino) of each tree, when first needed
        # Set when a path or RUNX_ENV lay in a runtime directory but named no
        # tree of this set (another run's tree): such a process is no holder
        # of ours, but not "holding nothing" for the shared verdicts either.
        self.stray = False
        self.binds: tuple | None = None     # see of_namespace
        self.namespaces: dict = {}          # mount namespace -> (trees bound there, stray)

    def of_namespace(self, base: bytes) -> set:
        """The trees bind-mounted elsewhere in ``base``'s mount namespace, if
        it is not ours: a container given the tree as a volume sees it under
        another path, which its processes' cwd, exe and maps then show. Such
        a namespace holds the tree (each of its processes, in turn). One read
        of mountinfo per distinct namespace and scan; the namespace link
        alone for every other process. A copy of a mount at the tree's own
        path (a namespace made while a --tree fuse tree was mounted) is not
        a use."""
        try:
            ns = os.readlink(base + b"ns/mnt")
        except OSError:
            return set()
        if self.binds is None:
            self.binds = _binds(self.trees)
        if ns == self.binds[0] or not self.binds[1]:
            return set()
        seen = self.namespaces.get(ns)
        if seen is None:
            held, stray = set(), False
            try:
                info = _read(base + b"mountinfo")
            except OSError:
                info = b""
            for point, root, mdev, _ in removal.parse_mountinfo(info):
                for dev, rel, tree, path in self.binds[1]:
                    top = rel.rstrip(b"/")
                    if mdev == dev and (root == rel or root.startswith(top + b"/")) \
                            and point != path + (b"" if root == rel else root[len(top):]):
                        if tree is None:        # inside a runtime directory: another tree?
                            stray = True
                        else:
                            held.add(tree)
            seen = self.namespaces[ns] = (held, stray)
        if seen[1]:
            self.stray = True
        return seen[0]

    def of_env(self, value: bytes):
        t = self.env.get(value)
        if t is None and not self.stray:
            self.stray = any(value.startswith(r) for r in self.roots)
        return t

    def of_inotify(self, fdinfo: bytes) -> set:
        """The trees whose top directory an inotify descriptor watches:
        its fdinfo names each watch's inode and device, not a path, so only
        a watch on the tree itself is recognised."""
        if self.tops is None:
            self.tops = {}
            for t in self.trees:
                try:
                    st = os.lstat(t)
                except OSError:
                    continue
                self.tops[(st.st_dev, st.st_ino)] = t
        held: set = set()
        try:
            info = _read(fdinfo)
        except OSError:
            return held
        for line in info.split(b"\n"):
            if line.startswith(b"inotify "):
                f = dict(kv.split(b":", 1) for kv in line.split()[1:] if b":" in kv)
                try:
                    dev = int(f[b"sdev"], 16)                  # the kernel's dev_t
                    key = (os.makedev(dev >> 20, dev & 0xfffff), int(f[b"ino"], 16))
                except (KeyError, ValueError):
                    continue
                if key in self.tops:
                    held.add(self.tops[key])
                else:
                    # Perhaps another tree's top (a tree this set does not
                    # know): never a verdict another scan may trust.
                    self.stray = True
        return held

    def of_path(self, p: bytes):
        for r in self.roots:
            if p.startswith(r):
                end = p.find(b"/", len(r))
                t = self.path.get(p if end < 0 else p[:end])
                if t is not None:
                    return t
                name = p[len(r):] if end < 0 else p[len(r):end]
                if not (name.startswith(b".") or name.endswith(b".lock")):
                    self.stray = True       # another tree; a lock file is in none
        return None


_RD = os.O_RDONLY | os.O_CLOEXEC


def _binds(trees) -> tuple:
    """(our mount namespace, [(device, the tree's path within its file
    system, tree, the tree's resolved path)]) from /proc/self/mountinfo; and
    the same for each tree's runtime directory, with tree None (anything
    bound from inside it may be another run's tree)."""
    try:
        ns = os.readlink(b"/proc/self/ns/mnt")
    except OSError:
        return None, []
    table = removal.mounts()
    if table is None:
        return None, []
    mounts = [(point, root, dev) for point, root, dev, _ in table]
    out = []
    places = []
    for t in trees:
        tb = os.fsencode(t.rstrip("/") or "/")
        parent, name = os.path.split(tb)
        places.append((t, os.path.join(os.path.realpath(parent), name)))
    for parent in {os.path.dirname(path) for _, path in places}:
        places.append((None, parent))
    for t, path in places:
        best = None
        for point, root, dev in mounts:     # the last mount at the longest prefix wins
            if path == point or path.startswith(point.rstrip(b"/") + b"/"):
                if best is None or len(point) >= len(best[0]):
                    best = (point, root, dev)
        if best is not None:
            point, root, dev = best
            rel = root.rstrip(b"/") + path[len(point.rstrip(b"/")):]
            out.append((dev, rel or b"/", t, path))
    return ns, out


def _read(path: bytes, whole: bool = True) -> bytes:
    """A /proc file's contents, with bare os calls: a scan reads three files
    per process, and Python's buffered file objects cost more than the
    reads themselves. seq_file files (maps) come a page or so per read;
    ``whole=False`` reads once (stat: one line, far below a page)."""
    fd = os.open(path, _RD)
    try:
        data = os.read(fd, 65536)
        if not whole or not data:
            return data
        chunks = [data]
        while data:
            data = os.read(fd, 65536)
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _stat_fields(path: bytes):
    """A stat file's fields after the command name (the state first), or
    None if it is gone."""
    try:
        data = _read(path, whole=False)
    except OSError:
        return None
    return data[data.rfind(b")") + 2:].split()


def _stat(path: bytes):
    """(start time, state, kernel thread, number of threads) from a stat file,
    or None if it is gone. The start time (clock ticks since boot) tells a
    reused PID from the process it names."""
    fields = _stat_fields(path)
    if fields is None:
        return None
    try:
        return (int(fields[19]), fields[0], bool(int(fields[6]) & 0x00200000),  # PF_KTHREAD
                int(fields[17]))
    except (IndexError, ValueError):
        return None


_DEAD = (b"Z", b"X", "zombie", "dead")


def _ident(pid: int):
    """(start time, state, kernel thread, threads, where to read it) of a PID,
    or None if it is gone.

    A process lives while any of its threads does. When the thread-group
    leader has exited on its own (``pthread_exit`` from main, ``SYS_exit``)
    it is a zombie whose environ, cwd, exe, maps and fds /proc no longer
    shows, while its other threads run on: then the state is a live
    thread's and the process is read through ``/proc/PID/task/TID/``. A
    zombie leader's stat counts the threads still attached (itself
    included: 1 for a plain zombie), so only then is ``task/`` listed."""
    if not _PROC:
        return _psutil_ident(pid)
    base = PROC.encode() + b"/%d/" % pid
    st = _stat(base + b"stat")
    if st is None:
        return None
    start, state, kthread, threads = st
    if state in _DEAD and threads > 1:
        try:
            tids = os.listdir(base + b"task")
        except OSError:
            tids = []
        for tid in tids:
            if tid == b"%d" % pid:
                continue
            task = base + b"task/" + tid + b"/"
            t = _stat(task + b"stat")
            if t is not None and t[1] not in _DEAD:
                return start, t[1], kthread, threads, task
    return start, state, kthread, threads, base


_PIDFS: bool | None = None


def _pidfs() -> bool:
    """Whether a pidfd's inode number names its process for the whole boot
    (pidfs, Linux 6.9+, 64-bit: never reused; util-linux's getino(1) and
    systemd's $MAINPIDFDID rest on it). Before pidfs every pidfd was the
    same anonymous inode: two processes' pidfds would then look alike."""
    global _PIDFS
    if _PIDFS is None:
        _PIDFS = False
        if _PROC and sys.maxsize > 2 ** 32 and hasattr(os, "pidfd_open"):
            a, b = _pidfd_ino(os.getpid()), _pidfd_ino(os.getppid())
            _PIDFS = a is not None and b is not None and a != b
    return _PIDFS


def _pidfd_ino(pid: int):
    """The inode number of a pidfd of ``pid`` (None if it is gone, or
    pidfds are not to be had)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        return os.fstat(fd).st_ino
    except OSError:
        return None
    finally:
        os.close(fd)


def _ino(pid: int, start: int, zombie: bool):
    """The pidfs inode of the process ``pid`` whose stat just showed
    ``start`` (and a zombie, if ``zombie``), or None: opened between that
    read and another that shows the same, so that it is this process's and
    not a successor's under a reused PID."""
    if not _pidfs():
        return None
    ino = _pidfd_ino(pid)
    after = _ident(pid)
    if after is None or after[0] != start or (after[1] in _DEAD) != zombie:
        return None
    return ino


def _proc_check(pid: int, m: _Match, ident):
    """(the trees ``pid`` holds, whether that answer can be trusted), read
    through ``ident``'s place (the leader, or a live thread if the leader
    has exited).

    Not trusted (False): an exiting process whose memory is already gone
    (empty environ and maps) but which is not a zombie yet; it may have
    forked a successor after the listdir. Not trusted either (None): one
    that gained a thread while its threads' cwds were read (see
    ``_thread_cwds``); it lives on. Unreadable (another user's process, not
    root): trusted as a non-holder, a documented limitation."""
    _, _, kthread, threads, base = ident
    held = set()
    midexec = False
    try:
        env = _read(base + b"environ")
    except OSError:
        env = b""
    else:
        if not env and not kthread:
            midexec = not _empty_environment(base)
    env = b"\0" + env
    i = env.find(b"\0" + _ENV)
    while i >= 0:
        start = i + 1 + len(_ENV)
        end = env.find(b"\0", start)
        t = m.of_env(env[start:] if end < 0 else env[start:end])
        if t is not None:
            held.add(t)
        i = env.find(b"\0" + _ENV, start)
    for link in (b"cwd", b"exe"):
        try:
            t = m.of_path(os.readlink(base + link))
        except OSError:
            continue
        if t is not None:
            held.add(t)
    try:
        maps = _read(base + b"maps")
        ok = bool(maps) or kthread
    except OSError:
        maps, ok = b"", True
    if any(r in maps for r in m.roots):           # most processes map nothing of ours
        for line in maps.split(b"\n"):
            j = line.find(b" /")
            if j >= 0:
                t = m.of_path(line[j + 1:])
                if t is not None:
                    held.add(t)
    _fds(base, m, held)
    held |= m.of_namespace(base)
    if threads > 1 and not _thread_cwds(pid, m, held):
        return frozenset(held), None
    if ok and midexec:
        return frozenset(held), None
    return frozenset(held), ok


def _env_span(base: bytes):
    """(env_start, env_end) of a process's memory, from its stat (0, 0
    without an mm; None where stat does not show them: Linux < 3.5)."""
    fields = _stat_fields(base + b"stat")
    if fields is None:
        return None
    try:
        return int(fields[47]), int(fields[48])   # fields 50 and 51 of proc(5)
    except (IndexError, ValueError):
        return None


def _empty_environment(base: bytes) -> bool:
    """Whether an environ that read empty is a process's real, empty
    environment (``env -i``), and not a process between the two halves of
    an exec: from the switch to its new memory until the kernel has written
    the new stack's strings, environ reads empty while maps already shows
    the new stack (a holder through RUNX_ENV alone would look like a
    non-holder that can be trusted). Real only if stat shows the same
    complete, empty span (start = end, not 0) before and after a second
    read that is empty too: a second exec between the two would need the
    new image's environment empty as well, holding nothing either."""
    first = _env_span(base)
    try:
        again = _read(base + b"environ")
    except OSError:
        return False
    second = _env_span(base)
    if first is None and second is None:
        return True                 # nothing to tell by: as before (old kernels)
    return (not again and first is not None and first == second and first[0] != 0
            and first[0] == first[1])


def _fds(base: bytes, m: _Match, held: set) -> None:
    """Add the trees ``base``'s open descriptors are in to ``held``: a file
    or directory opened in the tree (``O_PATH`` included, a dirfd used with
    ``openat``, one received over a unix socket: /proc shows each resolved,
    " (deleted)" appended to a removed file), and an inotify watch on the
    tree itself."""
    fdir = base + b"fd/"
    try:
        fds = os.listdir(fdir)
    except OSError:
        return
    for fd in fds:
        try:
            link = os.readlink(fdir + fd)
        except OSError:
            continue
        if link[:1] == b"/":
            t = m.of_path(link)
            if t is not None:
                held.add(t)
        elif link == b"anon_inode:inotify":
            held |= m.of_inotify(base + b"fdinfo/" + fd)


def _thread_cwds(pid: int, m: _Match, held: set) -> bool:
    """Add the trees the cwds of ``pid``'s threads are in to ``held`` (a
    thread that called ``unshare(CLONE_FS)`` has a cwd of its own; the
    others share the leader's). Read only for a process that has more than
    one thread (stat says how many, before the check; a single-threaded
    process whose thread count grew during the check is not trusted, see
    ``Scan.once``). False if a thread appeared while they were read: it may
    carry a cwd its creator has since left."""
    task = PROC.encode() + b"/%d/task/" % pid
    try:
        tids = os.listdir(task)
    except OSError:
        return True                     # gone: the caller's identity check sees it
    for tid in tids:
        try:
            t = m.of_path(os.readlink(task + tid + b"/cwd"))
        except OSError:
            continue
        if t is not None:
            held.add(t)
    try:
        return set(os.listdir(task)) <= set(tids)
    except OSError:
        return True


def _psutil_ident(pid: int):
    import psutil

    try:
        p = psutil.Process(pid)
        return p.create_time(), p.status(), False, 1, None
    except psutil.Error:
        return None


def _psutil_holds(pid: int, tree: str) -> bool:
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        try:
            if p.environ().get("RUNX_ENV") == tree:
                return True
        except (psutil.AccessDenied, psutil.ZombieProcess):
            pass
        for get in (p.cwd, p.exe):
            try:
                if _inside(get() or "", tree):
                    return True
            except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
                pass
        try:
            return any(_inside(m.path, tree) for m in p.memory_maps())
        except (psutil.AccessDenied, psutil.ZombieProcess, NotImplementedError, OSError):
            return False
    except psutil.NoSuchProcess:
        return False


def _check(pid: int, m: _Match, ident=None):
    if _PROC:
        if ident is None:
            ident = _ident(pid)
            if ident is None:
                return frozenset(), True
        return _proc_check(pid, m, ident)
    return frozenset(t for t in m.trees if _psutil_holds(pid, t.rstrip("/"))), True


def _pids() -> list:
    if _PROC:
        return [int(n) for n in os.listdir(PROC) if n.isdigit()]
    import psutil

    return psutil.pids()


# --- following the PID allocator ----------------------------------------------
#
# Linux gives PIDs cyclically: the next free one after the last given, up
# to pid_max, then from 300 again (idr_alloc_cyclic). So the processes
# forked after a moment have exactly the PIDs between the cursor then
# (/proc/sys/kernel/ns_last_pid) and the cursor now, as long as the
# allocator cannot have gone all the way round meanwhile. Going round means
# passing every PID but the first 300, each either given (a fork: /proc/stat
# counts them, every namespace's) or in use (at most three a task: its own,
# its group's, its session's; /proc/loadavg counts the tasks). A privileged
# restorer can choose a PID (clone3's set_tid, a write to ns_last_pid:
# CAP_CHECKPOINT_RESTORE, CRIU) and is not followed.

_PASSES = 8                 # passes after a listing before the scan gives up on them
_PASS_MAX = 4096            # PIDs in one pass, at most
_CURSOR: bool | None = None


def _cursor_usable() -> bool:
    """Whether the allocator's cursor can be read, and is the one of the
    PID namespace /proc shows."""
    global _CURSOR
    if PROC != "/proc" or not _PROC:
        return False
    if _CURSOR is None:
        # NSpid lists our PID in /proc's namespace down to our own: one
        # entry, ours, if they are the same (ns_last_pid is our own's).
        try:
            status = _read(b"/proc/self/status")
            at = status.index(b"\nNSpid:")
            nspid = status[at + 7:status.index(b"\n", at + 1)].split()
            _CURSOR = nspid == [b"%d" % os.getpid()] and _last_pid() > 0 and _forks() > 0
        except (OSError, ValueError):
            _CURSOR = False
    return _CURSOR


def _last_pid() -> int:
    return int(_read(b"/proc/sys/kernel/ns_last_pid", whole=False))


def _pid_max() -> int:
    return int(_read(b"/proc/sys/kernel/pid_max", whole=False))


def _forks() -> int:
    """Forks (threads too) since boot, every PID namespace's."""
    data = _read(b"/proc/stat")
    at = data.index(b"\nprocesses ") + 11
    return int(data[at:data.index(b"\n", at)])


def _tasks() -> int:
    """Tasks (threads, zombies) now, every namespace's: /proc/loadavg's
    fourth field, after the slash."""
    return int(_read(b"/proc/loadavg", whole=False).split()[3].split(b"/")[1])


class _Cursor:
    """The allocator followed from a first look (``start``) on: ``advance``
    gives the PIDs allocated since the last look, in order; ``followed``
    says whether no allocation since the first look can have been missed
    (the allocator cannot have gone round)."""

    def __init__(self, forks: int, tasks: int, pid_max: int, last: int):
        self.forks, self.tasks, self.pid_max, self.last = forks, tasks, pid_max, last

    @classmethod
    def start(cls) -> "_Cursor | None":
        if not _cursor_usable():
            return None
        try:
            # The counts before the cursor: forks after this look are
            # counted, never fewer.
            forks, tasks, pid_max = _forks(), _tasks(), _pid_max()
            return cls(forks, tasks, pid_max, _last_pid())
        except (OSError, ValueError):
            return None

    def advance(self) -> "list | None":
        try:
            last = _last_pid()
        except (OSError, ValueError):
            return None
        new: "range | list[int]"
        if last >= self.last:
            new = range(self.last + 1, last + 1)
        else:                           # round the top: from 1 (300 after boot)
            new = [*range(self.last + 1, self.pid_max), *range(1, last + 1)]
        if len(new) > _PASS_MAX:
            return None
        self.last = last
        return list(new)

    def followed(self) -> bool:
        """Going round takes pid_max - 300 PIDs, each given (at most the
        forks since the first look, d) or in use (at most 3 a task, and
        tasks grow only by forks: 3 (tasks + d)). Counted generously (5 d),
        a count below that is certain. pid_max changed meanwhile: not
        followed (the passes went round at the old one)."""
        try:
            d = _forks() - self.forks
            if _pid_max() != self.pid_max:
                return False
        except (OSError, ValueError):
            return False
        return 0 <= d and 5 * d + 3 * self.tasks < self.pid_max - 300


def _thread_of_another(pid: int) -> bool:
    """Whether ``pid`` is a thread of another process (/proc/PID answers
    for a thread's ID too, unlisted)."""
    try:
        data = _read(PROC.encode() + b"/%d/status" % pid)
    except OSError:
        return False
    at = data.find(b"\nTgid:")
    if at < 0:
        return False
    try:
        return int(data[at + 6:data.index(b"\n", at + 1)]) != pid
    except ValueError:
        return False


class Scan:
    """Repeated scans for the holders of a set of trees, with the memory
    that makes an empty answer trustworthy.

    ``once()`` returns ({tree: [pid, ...]} for trees with live holders,
    conclusive). When ``conclusive`` is True, a tree without holders in the
    answer has none (short of a process that starts using it afresh, with
    no holder among its ancestors). When False, trees without holders may
    still have some: scan again (``settle``). ``unsure`` then says which
    targets (None: all of them).

    ``targets``: the trees whose holders are sought (default: all of
    ``trees``); the others only name what a process holds, so that its
    verdict serves later scans for other targets (``Board``).

    Make a Scan only once its targets can gain no holder but by inheritance:
    after their payloads have exited (a runner becomes its tree's holder by
    its exec), or their locks were found free (the runner has exec'd or
    died). A process it found alive and holding none of the targets is not
    read again by later scans (see ``once``)."""

    def __init__(self, trees, exclude=frozenset(), targets=None):
        self.match = _Match(trees)
        self.exclude = frozenset(exclude) | {os.getpid()}
        # pid -> (start, trees held | None if unknown, zombie, pidfs inode | None)
        self.memo: dict = {}
        self.targets = frozenset(self.match.trees if targets is None else targets)
        # (pid, start) of processes not counted at all: the reapers a shared
        # scan serves (they wait for it, and hold nothing of their trees).
        self.skip: frozenset = frozenset()
        # A shared scan's verdicts outlive its set of trees: a process that
        # named a tree the set does not know (a newer one) is not remembered.
        self.complete = False
        self.unsure: set | None = set()

    def retarget(self, trees) -> None:
        """Watch a different set of trees; forget the verdicts (they were
        about the old set)."""
        self.match = _Match(trees)
        self.targets = frozenset(self.match.trees)
        self.memo = {}

    def exited(self, pids) -> None:
        """``pids`` have exited (their pidfds said so) before this call: a
        zombie of theirs found now died before any listing to come, so the
        first scan need not see it twice (a zombie first seen makes a scan
        inconclusive). Its start time identifies it: a zombie's PID is not
        reused before it is reaped (and any zombie seen before the listing
        forked nothing after it)."""
        for pid in pids:
            ident = _ident(pid) if pid is not None else None
            if ident is not None and ident[1] in _DEAD:
                self.memo[pid] = (ident[0], None, True, None)

    def check(self, pid: int) -> frozenset:
        return _check(pid, self.match)[0]

    def once(self):
        # Where the kernel's PID allocator stood before the listing (see
        # _Cursor): what a process that vanished or died before its read
        # may have forked after the listing has a PID allocated since, and
        # the passes after the listing's read those PIDs instead of
        # doubting every tree.
        cursor = _Cursor.start()
        pids = [p for p in _pids() if p not in self.exclude]
        prev = self.memo
        memo: dict = {}
        targets = self.targets
        self.match.namespaces = {}          # mounts change: read each namespace once a scan
        found: dict = {}
        unsure: set | None = set()
        deferred: list = []

        def doubt(trees) -> None:
            """The targets among ``trees`` (None: every target) may have a
            holder this scan did not see."""
            nonlocal unsure
            if unsure is not None:
                if trees is None:
                    unsure = None
                else:
                    unsure.update(trees & targets)

        def unseen_successors(trees) -> None:
            """A process this scan could not read whole died (or let go of
            ``trees``) after the listing, and may have forked a successor
            the listing does not show. Only that successor could hold: the
            passes read it, if the cursor can be followed; else doubt."""
            if cursor is None:
                doubt(trees)
            else:
                deferred.append(trees)

        def remembered(pid, start):
            old = prev.get(pid)
            return old if old is not None and old[0] == start else None

        def visit(pid) -> None:
            """Read ``pid`` into memo and found (and its doubt into unsure,
            or deferred to the passes)."""
            old = prev.get(pid)
            if (pidfs and old is not None and old[3] is not None
                    and (old[2] or old[1] is not None and not old[1] & targets)
                    and _pidfd_ino(pid) == old[3]):
                # Still the same process (its pidfd's inode is the one it had
                # when it was checked: pidfs numbers are never reused in a
                # boot), and known to hold none of the targets (see below),
                # or a zombie already (it forks nothing, holds nothing, and
                # never comes back). One pidfd_open instead of a read of its
                # stat: on a machine with many runs live, most of a scan.
                memo[pid] = old
                return
            ident = _ident(pid)
            if ident is None:
                # Gone before we learnt who it was: it holds nothing now,
                # whoever it was (a reused PID's process included), but it
                # may have forked after the listing.
                unseen_successors(None)
                return
            start, state = ident[0], ident[1]
            if (pid, start) in self.skip:
                return
            old = remembered(pid, start)
            if state in _DEAD:
                # A zombie forks nothing more; what it forked before it died
                # is in this listdir only if it died before the listdir,
                # which is certain only if it was a zombie in the last scan;
                # or it forked nothing that holds a target, if it was
                # checked alive holding none of them.
                memo[pid] = (start, old[1] if old else None, True, _ino(pid, start, True))
                if not (old and old[2]) and (old is None or old[1] is None
                                             or old[1] & targets):
                    unseen_successors(old[1] if old else None)
                return
            if old is not None and old[1] is not None and not old[1] & targets:
                # Checked alive and holding none of the targets by an earlier
                # scan, made after the targets' payloads had exited (or their
                # locks were found free): a process gains a lease only by
                # inheriting it at its fork, which a process that is already
                # alive cannot, or afresh (cd, exec, mmap, open into a tree;
                # "Leases"): it holds none still. Only holders and processes
                # not seen yet are read again.
                # Its pidfd's inode learnt now if not yet, so that later
                # scans take the pidfd path for it.
                memo[pid] = (start, old[1], False, old[3] if old[3] is not None
                             else _ino(pid, start, False))
                return
            self.match.stray = False
            held, ok = _check(pid, self.match, ident)
            stray = self.match.stray
            # Its pidfd's inode, between two reads of its stat that show the
            # same start time: the inode of this very process.
            ino = _pidfd_ino(pid) if pidfs else None
            after = _ident(pid)
            if (not ok or after is None or after[0] != start or after[1] in _DEAD
                    or after[4] != ident[4] or after[3] > 1 >= ident[3]):
                # It died during the check (or its leader did, or it gained
                # a thread whose cwd was not read): what we read may be
                # partial, and it may have forked a successor after the listdir.
                # Remembered as dead (it forks nothing more) only if it is a
                # zombie now, or a single thread whose memory is gone.
                zombie = after is not None and after[0] == start and (
                    after[1] in _DEAD or (ok is False and after[3] == 1 == ident[3]))
                memo[pid] = (start, old[1] if old else None, zombie, None)
                doubt(old[1] | held if old and old[1] is not None else None)
                return
            memo[pid] = (start, None if stray and self.complete else held, False, ino)
            for t in held:
                found.setdefault(t, []).append(pid)
            if old is not None and old[1] and old[1] - held:
                # A holder that let go of a target (chdir out, an exec that
                # cleared RUNX_ENV) may have forked, after the listing and
                # before it let go, a child that holds it still and that
                # this listing does not show.
                unseen_successors(old[1] - held)

        # The PIDs the last scan did not see first, newest (highest) first,
        # right after the listdir: a process that vanishes before its check
        # is read by a pass, or makes the scan inconclusive, and those are
        # the short-lived ones. Checked in time, they are learned (and their
        # vanishing is then harmless), so a busy machine converges.
        order = sorted((p for p in pids if p not in prev), reverse=True)
        order += [p for p in pids if p in prev]
        pidfs = _pidfs()
        for pid in order:
            visit(pid)
        if deferred and (cursor is None or not self._passes(cursor, visit, memo)):
            for trees in deferred:
                doubt(trees)
        self.memo = memo
        self.unsure = unsure
        return found, unsure == set()

    def _passes(self, cursor: "_Cursor", visit, memo: dict) -> bool:
        """Read every process whose PID was allocated since ``cursor``'s
        first look (the listing came after it), pass after pass over the
        PIDs allocated during the pass before, until one allocated none.
        Whether that was done and no allocation can have gone unseen
        (docs/reliability.md, "Following the PID allocator"): then every
        process alive now was read alive, or is the descendant of one read
        alive after its fork, and nothing that vanished or let go can have
        left a holder this scan did not read."""
        for _ in range(_PASSES):
            new = cursor.advance()
            if new is None:
                return False
            if not new:                 # nothing allocated during the last pass
                return cursor.followed()
            for pid in new:
                if pid in self.exclude:
                    continue
                if pid in memo:
                    # Listed and read already (allocated between the
                    # cursor's first look and the listing): unless it is
                    # gone and its PID given to another process since.
                    ident = _ident(pid)
                    if ident is None or ident[0] == memo[pid][0]:
                        continue
                if _thread_of_another(pid):
                    continue            # a thread: its process is read under its own PID
                visit(pid)
        return False
    def settle(self, timeout: float = 5.0, tries: int = 1):
        """Scan until the answer is conclusive or ``timeout`` passes and
        ``tries`` scans were made (then the answer is returned with
        conclusive False: treat every tree without holders as possibly
        held). Bounded back-off, never a busy loop; each scan learns the
        short-lived processes it saw alive, so a busy machine converges."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            found, sure = self.once()
            tries -= 1
            if sure or (tries <= 0 and time.monotonic() >= deadline):
                return found, sure
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


# --- one scan for every reaper waiting at once ---------------------------------
#
# Many runs at once used to cost a /proc scan per reaper, each reading every
# process, the other runs' included: N runs, N² reads. The reapers of one
# runtime directory share their scans instead, on a board, RUNTIME/.scan/:
#
#   want.NS.TOKEN   a reaper whose payload has exited asks for a scan of its
#                   tree (its name, its own pid and start time, the payload's
#                   pid), TOKEN fresh for each round; written as
#                   new-want.NS.TOKEN.PID and renamed, never seen half-written;
#   state.NS        what the scans know: each process's verdict (pid ->
#                   start time, the names of the trees it held or None if not
#                   known, zombie) and each tree's last answer (name -> the
#                   TOKEN it answered, holders, conclusive); written to a
#                   temporary file renamed over;
#   answers.NS      the answers alone, written after the state: what the
#                   waiting reapers read (small, whatever the number of
#                   processes);
#   wake.NS         one FIFO that every waiting reaper holds open for
#                   reading: a scanner opens it for writing (and closes it)
#                   once it has let go of the flock, which wakes them all
#                   (poll's POLLHUP, seen by each open file once);
#
# NS is the PID namespace (PIDs mean nothing in another). Whoever takes the
# board's flock (the directory's own) first scans for every want file there,
# with the verdicts of all earlier scans; the others wait, asleep on the
# FIFO, and find their answer under their TOKEN in the answers file. Why an answer given that
# way is as certain as the reaper's own scan: docs/reliability.md, "One scan
# for every waiting reaper". A reaper that gets no answer while no round
# ends for _WAIT seconds and the flock's holder does not run (a scanner
# stopped with SIGSTOP), or for _WAIT_MAX seconds in all, or cannot write
# its want (a full disk), scans alone, as before.

_BOARD = ".scan"
_STATE_MAX = 8 << 20
_VERSION = 2             # 2: verdicts carry the pidfs inode; the state names its boot
_WAIT = 5.0              # no round ended and the scanner is stopped: scan alone
_WAIT_MAX = 60.0         # ... or after this long in any case
# Above BATCH_FROM live runs the scanner waits BATCH_PER_RUN a live run, at most
# BATCH_MAX, before it reads the wants (see Board._lead).
BATCH_FROM, BATCH_PER_RUN, BATCH_MAX = 4, 0.002, 0.15
_WAKE = "wake"
_WANT_TMP = "new-want"
_WAKE_POLL = 0.25        # a waiter looks again after this long without a wake-up (a
_WAKE_POLL_MAX = 1.0     # scanner may have died), doubling up to this
_SETTLE = 0.025          # how long one turn of the board rescans while not conclusive,
_SETTLE_TRIES = 3        # and at least how many scans (on a loaded machine one scan
                         # takes longer than _SETTLE, and every waiter then asks again)


_BOOT: str | None = None


def _boot_id() -> str:
    """This boot's id. A runtime directory can outlive a reboot (the
    fallback under the cache is on disk): PIDs, start times, pidfs inodes and
    even the first PID namespace's id start over, so a state from another
    boot would name other processes."""
    global _BOOT
    if _BOOT is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _BOOT = f.read().strip()
        except OSError:
            _BOOT = ""
    return _BOOT


def _pid_namespace() -> str | None:
    try:
        link = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    tag = link[link.find("[") + 1:link.rfind("]")]
    return tag if tag.isdigit() else None


class Board:
    """The shared scans of one runtime directory (see above)."""

    def __init__(self, runtime: str, fd: int, ns: str):
        self.runtime = runtime
        self.fd = fd                    # the board directory: its flock elects the scanner
        self.ns = ns
        self.state = f"state.{ns}"
        self.answers_file = f"answers.{ns}"
        self.seen: tuple | None = None  # the state file last read (inode, mtime, size)
        self.answers: dict = {}

    @classmethod
    def open(cls, tree: str) -> "Board | None":
        """The board of ``tree``'s runtime directory, made if missing; None
        where /proc is not read or the board is not trustworthy (not a
        directory of ours that only we can enter)."""
        ns = _pid_namespace() if _PROC else None
        if ns is None:
            return None
        runtime = os.path.dirname(tree.rstrip("/"))
        path = os.path.join(runtime, _BOARD)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            os.close(fd)
            return None
        return cls(runtime, fd, ns)

    def close(self) -> None:
        os.close(self.fd)

    def ask(self, tree: str, payload: int | None = None):
        """(holders of ``tree``, conclusive) from a scan whose listing of
        /proc came after this call; None if no answer came in time, or the
        board cannot be used (then scan alone). Call it only once the tree
        can gain holders by inheritance alone (its payload has exited);
        ``payload``: the payload's PID, for its zombie (``Scan.exited``)."""
        name = os.path.basename(tree.rstrip("/"))
        token = os.urandom(6).hex()
        want = f"want.{self.ns}.{token}"
        me = _ident(os.getpid())
        if me is None:
            return None
        # The wake-up FIFO open first, so that whoever reads the want can wake us.
        wake = _Wake.make(self.fd, f"{_WAKE}.{self.ns}")
        try:
            # Written under another name and renamed: a scanner that read
            # a want between its creation and its write saw an empty file,
            # took it for garbage and removed it, and that reaper's round
            # was never served (on a loaded machine, often).
            if not self._write(want, (name, os.getpid(), me[0], payload or 0),
                               tmp=f"{_WANT_TMP}.{self.ns}.{token}.{os.getpid()}"):
                return None
            return self._await(name, token, wake)
        finally:
            try:
                os.unlink(want, dir_fd=self.fd)   # mostly gone already: the scanner's
            except OSError:
                pass
            if wake is not None:
                wake.close()

    def _await(self, name: str, token: str, wake: "_Wake | None"):
        """Our answer: from the answers file, or from a scan of our own
        under the board's flock. Between tries we sleep on the wake-up
        FIFO, which every scanner opens once it has let go of the flock
        (so one wake-up per scan, not a poll every few ms); without one,
        or if the scanner died before waking us, a bounded back-off."""
        import fcntl

        began = time.monotonic()
        deadline = began + _WAIT
        seen = self.seen
        delay = 0.0005
        poll = _WAKE_POLL
        woken = False
        while True:
            if woken and wake is not None:
                wake.rearm()                # before the look: a wake-up from now on counts
            got = self._answer(name, token)
            if got is not None:
                return got
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass                        # another reaper is scanning
            except OSError:
                return None                 # no flock here: scan alone
            else:
                try:
                    got = self._answer(name, token, again=True)
                    if got is None:
                        got = self._lead().get(name)
                        got = (list(got[1]), got[2]) if got and got[0] == token else None
                finally:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
                    self._wake_all()        # after the unlock: the unserved may lead next
                return got
            now = time.monotonic()
            if self.seen != seen:
                # A round ended meanwhile (not ours): the board is alive.
                seen, deadline = self.seen, now + _WAIT
            elif now >= deadline:
                if now - began >= _WAIT_MAX or not self._scanner_runs():
                    return None
                deadline = now + _WAIT
            if wake is not None:
                # Not woken, the FIFO stays armed: our open file has seen no
                # writer since it was opened, and any later one wakes it.
                woken = wake.wait(min(poll, max(0.0, deadline - now)))
                # The safety look is for a scanner killed before it woke
                # anyone: its back-off grows with every look, woken or not
                # (a wake-up says the board is alive; at 128 runs at once a
                # waiter is woken about once a second, and each look that
                # resets a 50 ms back-off costs more looks than wake-ups).
                poll = min(poll * 2, _WAKE_POLL_MAX)
            else:
                time.sleep(delay)
                delay = min(delay * 2, 0.01)

    def _scanner_runs(self) -> bool:
        """Whether the holder of the board's flock (/proc/locks names it) is
        a process that runs: not stopped (SIGSTOP, a debugger), not gone
        (True if the flock is free: the next look takes it). A
        machine so loaded that a round takes more than _WAIT seconds must
        not make every waiting reaper scan alone as well (each scan then
        reads every process: the load doubles, and rounds slow further)."""
        from .ownership import flock_holders

        try:
            st = os.fstat(self.fd)
        except OSError:
            return False
        pid = flock_holders().get((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
        if pid is None:
            return True                     # free now: the next look takes it
        ident = _ident(pid)
        return ident is not None and ident[1] not in _DEAD + (b"T", b"t")

    def _wake_all(self) -> None:
        """Wake every reaper waiting on this board: opening the FIFO for
        writing (and closing it) is the signal. No reader (ENXIO): nobody
        waits."""
        try:
            os.close(os.open(f"{_WAKE}.{self.ns}",
                             os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=self.fd))
        except OSError:
            pass

    def _answer(self, name: str, token: str, again: bool = False):
        """This round's answer for ``name``, if the answers file has it (read
        again only when it changed, or ``again``)."""
        try:
            st = os.stat(self.answers_file, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self.seen or again:
            self.seen = key
            data = self._load(self.answers_file)
            self.answers = data[2] if data else {}
        got = self.answers.get(name)
        try:
            if got is not None and got[0] == token:
                return [int(p) for p in got[1]], bool(got[2])
        except (TypeError, ValueError, IndexError):
            pass
        return None

    def _load(self, name: str | None = None):
        """(version, verdicts, answers) from the state file (or the answers
        file: no verdicts), or None if it is missing, not ours, or not what
        we write."""
        try:
            fd = os.open(name or self.state, _RD | os.O_NOFOLLOW, dir_fd=self.fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022
                    or st.st_size > _STATE_MAX):
                return None
            import marshal

            chunks = []
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                chunks.append(b)
            data = marshal.loads(b"".join(chunks))
        except (OSError, ValueError, EOFError, TypeError):
            return None
        finally:
            os.close(fd)
        if not (isinstance(data, tuple) and len(data) == 4 and data[0] == _VERSION
                and data[3] == _boot_id()
                and isinstance(data[1], dict) and isinstance(data[2], dict)):
            return None
        return data

    def _wants(self, trees: dict) -> list:
        """(file, tree name, token, reaper pid, its start, payload pid) of
        each want file of this namespace; those whose tree or reaper is gone
        are removed."""
        import marshal

        prefix = f"want.{self.ns}."
        out = []
        for f in os.listdir(self.fd):
            if not f.startswith(prefix):
                if not f.startswith(_WAKE):
                    self._stale_state(f)
                elif f.count(".") > 1:
                    self._stale_fifo(f)
                continue
            w = None
            try:
                fd = os.open(f, _RD | os.O_NOFOLLOW, dir_fd=self.fd)
                try:
                    if os.fstat(fd).st_uid == os.geteuid():
                        w = marshal.loads(os.read(fd, 4096))
                finally:
                    os.close(fd)
                if w is None:
                    raise ValueError("not ours")
                name, pid, start, payload = w
                reaper = _ident(pid)
                if name in trees and reaper is not None and reaper[0] == start \
                        and reaper[1] not in _DEAD:
                    out.append((f, name, f[len(prefix):], pid, start, payload))
                    continue
            except (OSError, ValueError, EOFError, TypeError):
                pass
            try:
                os.unlink(f, dir_fd=self.fd)
            except OSError:
                pass
        return out

    def _stale_fifo(self, f: str) -> None:
        """A FIFO of one waiting reaper (wake.NS.TOKEN: what reapers before
        the shared one waited on) that nobody reads and whose want is gone
        is left over: removed."""
        try:
            os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=self.fd))
        except OSError as e:
            if e.errno != errno.ENXIO:
                return
            try:
                os.stat("want." + f[len(_WAKE) + 1:], dir_fd=self.fd, follow_symlinks=False)
            except FileNotFoundError:
                try:
                    os.unlink(f, dir_fd=self.fd)
                except OSError:
                    pass
            except OSError:
                pass

    def _stale_state(self, f: str) -> None:
        """A scanner killed between writing its temporary state file and
        renaming it left that file (the state's name, a dot, its PID), a
        reaper killed between writing its want and renaming it, its
        temporary want: removed once that PID is gone."""
        head, _, pid = f.rpartition(".")
        if (head in (self.state, self.answers_file)
                or head.startswith(f"{_WANT_TMP}.{self.ns}.")) and pid.isdigit():
            ident = _ident(int(pid))
            if ident is None or ident[1] in _DEAD:
                try:
                    os.unlink(f, dir_fd=self.fd)
                except OSError:
                    pass

    def _lead(self) -> dict:
        """Under the board's flock: one scan for every reaper waiting, with
        every earlier scan's verdicts; the answers written to the state file
        (and returned: the scanner's own is good even if the write failed)."""
        try:
            names = os.listdir(self.runtime)
        except OSError:
            return {}
        live = len(names) // 2              # a tree and its lock
        if live > BATCH_FROM:
            # Many runs live: more payloads are about to end. Waiting a
            # little, the flock held, lets their reapers' wants join this
            # scan instead of each making its own.
            time.sleep(min(BATCH_PER_RUN * live, BATCH_MAX))
            try:
                names = os.listdir(self.runtime)
            except OSError:
                return {}
        data = self._load()
        verdicts, answers = (data[1], data[2]) if data else ({}, {})
        join = os.path.join
        trees = {n: join(self.runtime, n) for n in names
                 if not n.startswith(".") and not n.endswith(".lock")}
        wants = self._wants(trees)
        if not wants:
            return answers
        scan = Scan(sorted(trees.values()), targets=[trees[w[1]] for w in wants])
        scan.complete = True
        scan.skip = frozenset((w[3], w[4]) for w in wants)
        for pid, v in verdicts.items():
            try:
                start, held, zombie, ino = v
                scan.memo[int(pid)] = (int(start), None if held is None else
                                       frozenset(join(self.runtime, n) for n in held),
                                       bool(zombie), None if ino is None else int(ino))
            except (TypeError, ValueError):
                continue
        scan.exited([w[5] for w in wants if w[5]])
        # Scanned again at once while not conclusive, for a moment: on a
        # busy machine a scan is inconclusive for the short-lived processes
        # it caught dying, and one a millisecond later knows them as zombies
        # or as gone before its listing; a waiting reaper's own back-off
        # (up to 0.1 s) would meet new ones every time.
        found, _ = scan.settle(_SETTLE, _SETTLE_TRIES)
        unsure = scan.unsure
        for _, name, token, *_ in wants:
            t = trees[name]
            answers[name] = (token, tuple(found.get(t, ())), unsure is not None and t not in unsure)
        answers = {n: a for n, a in answers.items() if n in trees}
        base = os.path.basename
        verdicts = {pid: (start, None if held is None else tuple(base(t) for t in held), zombie,
                          ino)
                    for pid, (start, held, zombie, ino) in scan.memo.items()}
        self._store(verdicts, answers)
        for f, *_ in wants:
            try:
                os.unlink(f, dir_fd=self.fd)
            except OSError:
                pass
        return answers

    def _store(self, verdicts: dict, answers: dict) -> None:
        """The state (verdicts and answers: what the next scanner starts
        from), then the answers alone (what the waiting reapers read, each
        at every wake-up: small, whatever the number of processes)."""
        boot = _boot_id()
        if self._write(self.state, (_VERSION, verdicts, answers, boot)):
            self._write(self.answers_file, (_VERSION, {}, answers, boot))

    def _write(self, name: str, data, tmp: str | None = None) -> bool:
        """``data`` marshalled into ``name``, written under ``tmp`` (default:
        the name, a dot, our PID) and renamed: never seen half-written."""
        import marshal

        tmp = tmp or f"{name}.{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=self.fd)
            try:
                data = memoryview(marshal.dumps(data))
                while data:
                    data = data[os.write(fd, data):]
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            return True
        except OSError:
            try:
                os.unlink(tmp, dir_fd=self.fd)
            except OSError:
                pass
            return False


class _Wake:
    """The board's wake-up: one FIFO (0600, ours) that every waiting reaper
    holds open for reading without blocking. A scanner's open for writing
    (and close) makes poll() report POLLHUP on every open file that has
    not yet seen a writer (Linux: the pipe's writer count against the one
    the file was opened at); reopening forgets that, so each wake-up is
    seen once, and an open file not woken stays armed. Made on first use
    and never removed: no directory operation per wait."""

    def __init__(self, dir_fd: int, name: str, fd: int):
        self.dir_fd, self.name, self.fd = dir_fd, name, fd

    @classmethod
    def make(cls, dir_fd: int, name: str) -> "_Wake | None":
        fd = cls._open(dir_fd, name)
        return None if fd < 0 else cls(dir_fd, name, fd)

    @staticmethod
    def _open(dir_fd: int, name: str) -> int:
        """The FIFO open for reading, made if missing; -1 if it cannot be
        (no FIFOs on this file system: the waiters poll the answers)."""
        for _ in range(2):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=dir_fd)
            except FileNotFoundError:
                try:
                    os.mkfifo(name, 0o600, dir_fd=dir_fd)
                except FileExistsError:
                    pass
                except OSError:
                    return -1
                continue
            except OSError:
                return -1
            st = os.fstat(fd)
            if stat.S_ISFIFO(st.st_mode) and st.st_uid == os.geteuid():
                return fd
            os.close(fd)
            return -1
        return -1

    def rearm(self) -> None:
        """Forget the wake-up just seen. If the FIFO cannot be opened again
        (someone removed it and no new one can be made), the old open file
        would report POLLHUP for ever: then sleep instead."""
        fd = self._open(self.dir_fd, self.name)
        os.close(self.fd)
        self.fd = fd

    def wait(self, timeout: float) -> bool:
        """Sleep until woken or ``timeout``; whether woken."""
        if self.fd < 0:
            time.sleep(timeout)
            return False
        import select

        p = select.poll()
        p.register(self.fd, select.POLLIN)
        return bool(p.poll(max(0, int(timeout * 1000)) + 1))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def holds(pid: int, tree: str) -> bool:
    return bool(_check(pid, _Match([tree]))[0])


def holders(tree: str, exclude: frozenset = frozenset()) -> list:
    """PIDs of live processes that still use ``tree`` (scanned until the
    answer is conclusive, for a few seconds at most)."""
    found, _ = Scan([tree], exclude).settle()
    return found.get(tree, [])


def _watch(scan: Scan, tree: str, pids: list) -> list:
    """A Watch (see runx_env.reaper.watch) on each of ``pids``. Each is re-checked
    once its watch is open, so a PID reused between the scan and the watch
    is not mistaken for it."""
    from . import watch

    watches = []
    for pid in pids:
        try:
            w = watch.watch(pid)
        except (ProcessLookupError, PermissionError):
            continue
        if tree in scan.check(pid):
            watches.append(w)
        else:
            w.close()
    return watches


def watch_holders(tree: str) -> list:
    """Watches on every current lease holder of ``tree``."""
    scan = Scan([tree])
    found, _ = scan.settle()
    return _watch(scan, tree, found.get(tree, []))


def rounds(tree: str, log=lambda msg: None, exited=()):
    """The lease rounds, shared by the plain and the FUSE reaper, which only
    differ in how they wait (blocking poll, or trio): yields the watches of
    every current holder; once the caller has waited for all of them, scans
    again (holders may have started others), until a conclusive scan finds
    no holder. The watches of a round are closed when the next round is
    asked for. A scan that found holders which all vanished before they
    could be watched, or that is not conclusive, is not "no holder": scan
    again after a short back-off (their successors are in the next listdir).
    Each round's scan is the runtime directory's shared one (``Board``)
    when it answers in time, the reaper's own otherwise.
    ``exited``: the payload's PID (it has exited: see ``Scan.exited``)."""
    scan = Scan([tree])
    scan.exited(exited)
    board = Board.open(tree)
    payload = next((p for p in exited if p), None)
    delay = 0.001
    try:
        while True:
            got = board.ask(tree, payload) if board else None
            payload = None
            if got is None:
                if board:
                    log("no shared scan answered in time: scanning alone")
                    board.close()
                    board = None
                found, sure = scan.once()
                pids = found.get(tree, [])
            else:
                pids, sure = got
            if not pids and sure:
                return
            watches = _watch(scan, tree, pids)
            if not watches:
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            delay = 0.001
            log(f"waiting for {len(watches)} lease holder(s): {[w.pid for w in watches]}")
            try:
                yield watches
            finally:
                for w in watches:
                    w.close()
    finally:
        if board:
            board.close()


def wait_free(trees, on_free, log=lambda msg: None) -> None:
    """Wait for the holders of several trees at once (adoption): one scan
    covers them all; each tree is handed to ``on_free`` as soon as a
    conclusive scan finds it unused, whatever the other trees' holders do.
    Rounds are per tree: when every watched holder of some tree has exited,
    everything is scanned again."""
    from . import watch

    pending = list(trees)
    scan = Scan(pending)
    delay = 0.001
    while pending:
        found, sure = scan.once()
        if sure:
            free = [t for t in pending if t not in found]
            if free:
                for t in free:
                    on_free(t)
                pending = [t for t in pending if t in found]
                scan.retarget(pending)
                continue
        watched = [_watch(scan, t, found[t]) for t in pending if t in found]
        groups = [g for g in watched if g]
        # A tree whose holders all ended before their watch was open (a
        # payload exiting as the scan read it) has nobody to wait for: it
        # may be free already, as may the trees of a scan not conclusive.
        # Look again soon rather than after another tree's holder (which
        # can live for hours: the tree would wait as long).
        soon = not sure or len(groups) < len(watched)
        try:
            if not groups:
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            delay = 0.001
            log(f"waiting for {sum(map(len, groups))} lease holder(s) of {len(groups)} tree(s)")
            watch.wait_group(groups, 0.1 if soon else None)
        finally:
            for g in groups:
                for w in g:
                    w.close()
