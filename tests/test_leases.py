"""Nothing removed early: the lease scan cannot be fooled by a fork+exit
race, a runtime dir behind a symlink, stray signals to the reaper, or many
(or oddly named) stale trees."""

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

import fault_scenarios
from conftest import Runx, alive, proc_state, reapers, runtime_entries, wait_until
from runx_env.reaper import daemon, leases
from runx_env.reaper.sweep import sweep


def start_relay(tmp_path, tree: str, pause: float = 0.0005):
    """A relay chain: a process carrying RUNX_ENV=tree forks its successor
    and exits, over and over, until ``stop`` exists; then the last one
    writes ``done``. Its top is a subreaper (without RUNX_ENV) that reaps
    the relays, so no zombies pile up whatever PID 1 does."""
    stop, done = str(tmp_path / "stop"), str(tmp_path / "done")
    chain = ("import os, sys, time\n"
             "stop, done, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])\n"
             "while not os.path.exists(stop):\n"
             "    if os.fork():\n"
             "        os._exit(0)\n"
             "    time.sleep(pause)\n"
             "open(done, 'w').close()\n")
    top = ("import ctypes, os, subprocess, sys\n"
           "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER\n"
           "env = dict(os.environ, RUNX_ENV=sys.argv[1])\n"
           "subprocess.Popen([sys.executable, '-c', sys.argv[2], *sys.argv[3:]], env=env, cwd='/')\n"
           "print('up', flush=True)\n"
           "while True:\n"
           "    try:\n"
           "        os.wait()\n"
           "    except ChildProcessError:\n"
           "        break\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}
    p = subprocess.Popen([sys.executable, "-c", top, tree, chain, stop, done, str(pause)],
                         env=env, cwd="/", stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "up\n"
    return p, stop, done


def stop_relay(p, stop, done):
    open(stop, "w").close()
    p.wait(timeout=30)
    assert os.path.exists(done)


# --- a scan must never say "nobody" while a relay chain lives -------------

def test_relay_chain_is_never_missed(tmp_path):
    """600 scans against a holder that keeps forking its successor and
    exiting: each either finds a holder or knows it cannot be sure (the old
    single snapshot said "nobody" in most of them)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    p, stop, done = start_relay(tmp_path, str(tree))
    try:
        scan = leases.Scan([str(tree)])
        verdicts = []
        for i in range(600):
            found, sure = scan.once()
            assert not os.path.exists(done)
            assert found or not sure, f"scan {i}: nobody holds the tree, says the scan"
            verdicts.append(bool(found))
        assert any(verdicts), "the relay was never seen at all"
    finally:
        stop_relay(p, stop, done)
    assert leases.Scan([str(tree)]).settle() == ({}, True), "the chain is over"


def test_lease_rounds_outlast_a_relay_chain(tmp_path):
    """The reaper's decision (leases.rounds runs out = remove the tree) is not
    taken while a relay chain holds the tree, and is taken once it ends."""
    import threading

    tree = tmp_path / "tree"
    tree.mkdir()
    for _ in range(5):
        for f in ("stop", "done"):
            if (tmp_path / f).exists():
                (tmp_path / f).unlink()
        p, stop, done = start_relay(tmp_path, str(tree))
        ended = threading.Event()

        def reaper(ended=ended):
            from runx_env.reaper import watch

            for watches in leases.rounds(str(tree)):
                watch.wait_all(watches)
            ended.set()

        t = threading.Thread(target=reaper, daemon=True)
        t.start()
        try:
            assert not ended.wait(1.0), "the lease rounds ended while the relay chain runs"
        finally:
            stop_relay(p, stop, done)
        assert ended.wait(10), "the lease rounds never ended after the chain did"
        t.join()


def test_busy_machine_still_converges(tmp_path):
    """Many short-lived processes that hold nothing: a scan of an unused tree
    must still conclude, and soon (they are learned, or outlived)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}
    churn = [subprocess.Popen(["sh", "-c", "while :; do /bin/true; done"], env=env)
             for _ in range(2)]
    try:
        for _ in range(20):
            t0 = time.monotonic()
            assert next(leases.rounds(str(tree)), None) is None
            # A guard against a livelock, not a speed claim (the figures are
            # in docs/reliability.md): CI's loaded machine once took 9.7 s.
            assert time.monotonic() - t0 < 60, "the scan did not settle on a busy machine"
    finally:
        for c in churn:
            c.kill()
            c.wait()


@pytest.mark.parametrize("cursor", [True, False], ids=["allocator-followed", "no-cursor"])
def test_zombie_holder_does_not_spin(tmp_path, monkeypatch, cursor):
    """A holder that died and stays a zombie (its parent never reaps it) is
    no holder: the rounds conclude, after at most one extra scan (none when
    the PID allocator is followed: what it forked after the listing would
    have a PID given since, and the pass after the listing reads those).
    Read once, it is then known by its pidfd's inode (a busy make -j or a
    slow harness leaves hundreds): later scans do not read its stat again."""
    assert leases._pidfs(), "this kernel has no pidfs (Linux 6.9+): the fast path is off"
    assert leases._cursor_usable(), "ns_last_pid cannot be read here"
    if not cursor:
        monkeypatch.setattr(leases, "_CURSOR", False)
    tree = tmp_path / "tree"
    tree.mkdir()
    p = subprocess.Popen(["true"], env=dict(os.environ, RUNX_ENV=str(tree)))
    try:
        wait_until(lambda: proc_state(p.pid) == "Z", 10, "the child to become a zombie")
        scan = leases.Scan([str(tree)])
        found, sure = scan.once()
        if cursor:
            # Conclusive at once, unless something forked during the scan
            # and went on forking for all of its passes.
            assert not found
            if not sure:
                assert scan.settle() == ({}, True)
        else:
            assert not found and not sure, "a zombie first seen may have forked: not conclusive"
        assert scan.settle() == ({}, True)
        assert scan.memo[p.pid][2] is True and scan.memo[p.pid][3] == leases._pidfd_ino(p.pid)
        stats = []
        real_ident = leases._ident
        monkeypatch.setattr(leases, "_ident", lambda pid: (stats.append(pid), real_ident(pid))[1])
        assert scan.once() == ({}, True)
        assert p.pid not in stats, "a known zombie's stat was read again"
        assert next(leases.rounds(str(tree)), None) is None
    finally:
        p.wait()



RELAY = r"""
import os, sys, time
sys.stdin.read(1)                       # the listing was taken
if os.fork() == 0:
    os.write(1, b"%d\n" % os.getpid())
    time.sleep(60)
os._exit(0)
"""


@pytest.mark.parametrize("cursor", [True, False], ids=["allocator-followed", "no-cursor"])
def test_a_successor_forked_after_the_listing_is_read_by_the_pass(tmp_path, monkeypatch, cursor):
    """Real processes: a holder forks its successor right after the scan's
    listdir and is gone (reaped) before its read. Following the PID
    allocator, the same scan reads the successor; without it, the scan is
    not conclusive (and the next one sees it)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    if not cursor:
        monkeypatch.setattr(leases, "_CURSOR", False)
    env = dict(os.environ, RUNX_ENV=str(tree))
    p = subprocess.Popen([sys.executable, "-c", RELAY], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, cwd=tree, env=env)
    child = []
    try:
        wait_until(lambda: os.readlink(f"/proc/{p.pid}/cwd") == str(tree), 10, "the holder")
        real = leases._pids

        def listed():
            pids = real()
            p.stdin.write(b"x")
            p.stdin.flush()
            child.append(int(p.stdout.readline()))
            p.wait()
            return pids
        monkeypatch.setattr(leases, "_pids", listed)
        scan = leases.Scan([str(tree)])
        found, sure = scan.once()
        monkeypatch.setattr(leases, "_pids", real)
        if cursor:
            assert found == {str(tree): [child[0]]}, found
        else:
            assert found == {} and not sure
            assert scan.once()[0] == {str(tree): [child[0]]}
    finally:
        for c in child:
            os.kill(c, signal.SIGKILL)
        p.kill()
        p.wait()


THREADED = r"""
import ctypes, os, sys, threading
mode, tree = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
go = threading.Event()


def worker():
    if mode == "thread_cwd":
        assert libc.unshare(0x200) == 0          # CLONE_FS
        os.chdir(tree)
        go.set()
    print("up", flush=True)
    sys.stdin.read()                             # until the test closes our stdin
    os._exit(0)


threading.Thread(target=worker).start()
if mode == "thread_cwd":
    go.wait()
    threading.Event().wait()
elif mode == "pthread_exit":
    libc.pthread_exit(None)
else:
    libc.syscall({"x86_64": 60, "aarch64": 93}[os.uname().machine], 0)
"""


@pytest.mark.parametrize("mode", ["pthread_exit", "sys_exit", "thread_cwd"])
def test_a_live_thread_holds(tmp_path, mode):
    """A process holds while any of its threads lives and uses the tree: its
    leader exited (a zombie, environ/cwd/maps unreadable through
    /proc/PID) and a worker runs on with RUNX_ENV and its cwd in the tree;
    or a thread unshared its cwd into the tree, the main thread elsewhere
    and no RUNX_ENV. Once the last thread exits the zombie holds nothing."""
    tree = tmp_path / "tree"
    tree.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}
    if mode != "thread_cwd":
        env["RUNX_ENV"] = str(tree)
    p = subprocess.Popen([sys.executable, "-c", THREADED, mode, str(tree)], env=env,
                         cwd=str(tree) if mode != "thread_cwd" else "/",
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "up\n"
        if mode != "thread_cwd":
            wait_until(lambda: proc_state(p.pid) == "Z", 10, "the leader to exit")
        for _ in range(20):
            assert leases.holders(str(tree)) == [p.pid]
        p.stdin.close()
        wait_until(lambda: len(os.listdir(f"/proc/{p.pid}/task")) <= 1, 10, "the worker to exit")
        wait_until(lambda: proc_state(p.pid) == "Z", 10, "the process to be a zombie")
        assert leases.Scan([str(tree)]).settle() == ({}, True), "a zombie holds nothing"
    finally:
        p.kill()
        p.wait()


def test_later_scans_read_only_holders_and_newcomers(tmp_path, monkeypatch):
    """A Scan made after its trees' payloads exited reads a process found
    alive and holding nothing once: it can gain a lease only afresh. Holders
    are read every time (they may have left), and newcomers the first time."""
    tree = tmp_path / "tree"
    tree.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}
    p = subprocess.Popen(["sleep", "60"], cwd=str(tree), env=env)
    try:
        scan = leases.Scan([str(tree)])
        wait_until(lambda: scan.once()[0] == {str(tree): [p.pid]}, 10, "the holder to be seen")
        quiet = {pid for pid, v in scan.memo.items() if v[1] == frozenset()}
        assert len(quiet) > 5
        read = []
        real = leases._proc_check
        monkeypatch.setattr(leases, "_proc_check",
                            lambda pid, m, ident: (read.append(pid), real(pid, m, ident))[1])
        found, _ = scan.once()
        assert found == {str(tree): [p.pid]}
        assert p.pid in read
        assert not quiet & set(read), "known non-holders were read again"
    finally:
        p.kill()
        p.wait()


def test_a_known_process_is_named_by_its_pidfd(tmp_path, monkeypatch):
    """A process found holding nothing is known again by its pidfd's inode
    (pidfs: never reused in a boot), not by reading its stat: one pidfd_open
    instead of a stat read for most of a busy machine's processes. A PID
    whose pidfd inode is not the remembered one is read again in full: a
    new process under a reused PID is never taken for the one it
    replaced."""
    assert leases._pidfs(), "this kernel has no pidfs (Linux 6.9+): the fast path is off"
    tree = tmp_path / "tree"
    tree.mkdir()
    p = subprocess.Popen(["sleep", "60"], cwd="/")
    try:
        scan = leases.Scan([str(tree)])
        wait_until(lambda: scan.once()[1] and p.pid in scan.memo, 10, "a conclusive scan")
        start, held, _, ino = scan.memo[p.pid]
        assert held == frozenset() and ino == leases._pidfd_ino(p.pid)
        stats, checks = [], []
        real_ident, real_check = leases._ident, leases._proc_check
        monkeypatch.setattr(leases, "_ident", lambda pid: (stats.append(pid), real_ident(pid))[1])
        monkeypatch.setattr(leases, "_proc_check",
                            lambda pid, m, ident: (checks.append(pid), real_check(pid, m, ident))[1])
        assert scan.once() == ({}, True)
        assert p.pid not in stats and p.pid not in checks
        # As if p had exited and its PID gone to a new process: another
        # inode (and start time) under the same PID.
        scan.memo[p.pid] = (start + 1, frozenset(), False, ino + 1)
        assert scan.once() == ({}, True)
        assert p.pid in stats and p.pid in checks, "a reused PID was not read again"
        assert scan.memo[p.pid] == (start, frozenset(), False, ino)
    finally:
        p.kill()
        p.wait()


FD_KINDS = r"""
import ctypes, os, socket, sys
kind, tree = sys.argv[1], sys.argv[2]
if kind == "o_path":
    fd = os.open(tree, os.O_PATH)
elif kind == "dirfd":
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    os.stat("bin", dir_fd=fd)
elif kind == "inotify":
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0)
    assert libc.inotify_add_watch(fd, tree.encode(), 0x100) >= 0      # IN_CREATE
else:
    s = socket.socket(fileno=int(sys.argv[3]))
    _, (fd,), _, _ = socket.recv_fds(s, 1, 1)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("kind", ["o_path", "dirfd", "inotify", "socket"])
def test_a_descriptor_holds(tmp_path, kind):
    """A process whose only tie to the tree is a descriptor (no RUNX_ENV, cwd
    /): an O_PATH fd, a directory fd used with *at calls, an inotify watch on
    the tree, a descriptor received over a unix socket."""
    import socket

    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}
    a, b = socket.socketpair()
    p = subprocess.Popen([sys.executable, "-c", FD_KINDS, kind, str(tree), str(b.fileno())],
                         env=env, cwd="/", pass_fds=[b.fileno()], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        if kind == "socket":
            fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
            socket.send_fds(a, [b"x"], [fd])
            os.close(fd)
        assert p.stdout.readline() == "held\n"
        assert leases.holders(str(tree)) == [p.pid]
        p.stdin.close()
        p.wait(timeout=10)
        assert leases.holders(str(tree)) == []
    finally:
        a.close()
        b.close()
        p.kill()
        p.wait()


def _board_state(runtime):
    """(verdicts, answers) of RUNTIME/.scan/state.NS, as the board reads it."""
    board = leases.Board.open(str(runtime / "any"))
    try:
        data = board._load()
    finally:
        board.close()
    assert data is not None and data[0] == leases._VERSION
    return data[1], data[2]


def test_reapers_share_one_scan_and_its_verdicts(tmp_path, monkeypatch):
    """A reaper's rounds go through RUNTIME/.scan: the scan names what every
    process holds in the runtime directory (a holder of another tree
    included: it is that tree's), and the next reaper's scan reads again only
    the processes no earlier scan knew."""
    runtime = tmp_path / "run"
    ours, other = runtime / "aaaa", runtime / "bbbb"
    ours.mkdir(parents=True)
    other.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}
    p = subprocess.Popen(["sleep", "60"], cwd=str(other), env=env)
    try:
        wait_until(lambda: os.readlink(f"/proc/{p.pid}/cwd") == str(other), 10, "the holder")
        assert next(leases.rounds(str(ours)), None) is None
        verdicts, answers = _board_state(runtime)
        assert answers["aaaa"][1:] == ((), True)
        assert verdicts[p.pid][1] == ("bbbb",), "the holder of the other tree is named"
        quiet = {pid for pid, v in verdicts.items() if v[1] == ()}
        assert len(quiet) > 5
        board_dir = runtime / ".scan"
        assert board_dir.stat().st_mode & 0o777 == 0o700
        assert [n for n in os.listdir(board_dir) if n.startswith("want.")] == [], \
            "a served want is removed"
        read = []
        real = leases._proc_check
        monkeypatch.setattr(leases, "_proc_check",
                            lambda pid, m, ident: (read.append(pid), real(pid, m, ident))[1])
        board = leases.Board.open(str(other))
        try:
            assert board.ask(str(other)) == ([p.pid], True)
        finally:
            board.close()
        assert not quiet & set(read), "shared verdicts were not used"
        assert sorted(runtime_entries(str(runtime))) == ["aaaa", "bbbb"]
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("bad", ["writable", "version", "garbage", "symlink", "open-board",
                                 "another-boot", None])
def test_untrusted_shared_verdicts_are_ignored(tmp_path, bad):
    """The board's state is believed only if it is a regular file of ours, not
    writable by others, what we write, and of this boot; the board only if
    it is a directory of ours that only we can enter. A lie (the holder holds
    nothing) is then never an answer. (None: the same lie in a state of
    ours is believed, as verdicts are: what the other cases refuse.)"""
    import marshal

    runtime = tmp_path / "run"
    tree = runtime / "aaaa"
    tree.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}
    p = subprocess.Popen(["sleep", "60"], cwd=str(tree), env=env)
    try:
        wait_until(lambda: os.readlink(f"/proc/{p.pid}/cwd") == str(tree), 10, "the holder")
        start = int(open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[19])
        lie = marshal.dumps((leases._VERSION if bad != "version" else 99,
                             {p.pid: (start, (), False, leases._pidfd_ino(p.pid))}, {},
                             leases._boot_id() if bad != "another-boot" else "another"))
        board_dir = runtime / ".scan"
        board_dir.mkdir(mode=0o755 if bad == "open-board" else 0o700)
        if bad == "open-board":
            board_dir.chmod(0o755)
        state = board_dir / f"state.{leases._pid_namespace()}"
        if bad == "symlink":
            (tmp_path / "elsewhere").write_bytes(lie)
            state.symlink_to(tmp_path / "elsewhere")
        else:
            state.write_bytes(lie if bad != "garbage" else b"\xff" + lie)
            state.chmod(0o622 if bad == "writable" else 0o600)
        if bad == "open-board":
            assert leases.Board.open(str(tree)) is None
        else:
            board = leases.Board.open(str(tree))
            try:
                assert board.ask(str(tree)) == ([p.pid] if bad else [], True)
            finally:
                board.close()
        if bad is None:
            return
        rounds = leases.rounds(str(tree))
        watches = next(rounds)
        assert [w.pid for w in watches] == [p.pid]
        rounds.close()
    finally:
        p.kill()
        p.wait()


def test_the_exited_payload_costs_no_second_scan(tmp_path, monkeypatch):
    """The reaper knows its payload exited before the rounds began: its zombie
    (reaped late by the caller) does not make the first scan inconclusive.
    Any other zombie first seen still does, where the PID allocator cannot
    be followed (see test_zombie_holder_does_not_spin for where it can)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    monkeypatch.setattr(leases, "_CURSOR", False)
    p = subprocess.Popen(["true"], env=dict(os.environ, RUNX_ENV=str(tree)))
    try:
        wait_until(lambda: proc_state(p.pid) == "Z", 10, "the child to become a zombie")
        monkeypatch.setattr(leases, "_pids", lambda: [p.pid])
        assert leases.Scan([str(tree)]).once() == ({}, False)
        scan = leases.Scan([str(tree)])
        scan.exited([p.pid, None])
        assert scan.once() == ({}, True)
    finally:
        p.wait()


def test_a_namespace_made_during_a_fuse_run_does_not_hold_it(runx):
    """A mount namespace made while a --tree fuse tree is mounted has a copy
    of that mount at the same path: that is no use of the tree (else any
    container started meanwhile would keep it). Only a bind mount elsewhere
    holds (fault scenario bind_mount_elsewhere)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (a mount namespace)")
    code = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(['unshare', '-m', '--propagation', 'private', 'sleep', '60'],\n"
            "                     env={'PATH': '/usr/bin:/bin'}, cwd='/', start_new_session=True,\n"
            "                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,\n"
            "                     stderr=subprocess.DEVNULL)\n"
            "import time\n"
            "while os.readlink(f'/proc/{p.pid}/ns/mnt') == os.readlink('/proc/self/ns/mnt'):\n"
            "    time.sleep(0.005)\n"
            "print(p.pid)\n")
    r = runx.run("--tree", "fuse", "python", "-c", code)
    assert r.returncode == 0, r.stderr
    sleeper = int(r.stdout)
    try:
        runx.wait_clean(15)
        assert alive(sleeper)
    finally:
        os.kill(sleeper, signal.SIGKILL)


def test_a_namespace_binding_another_tree_is_not_shared(tmp_path):
    """A process in a mount namespace where another tree of the runtime
    directory is bind-mounted elsewhere holds nothing of ours, but it must
    not be shared as holding nothing: that tree's reaper must find it."""
    if os.geteuid() != 0:
        pytest.skip("needs root (a mount namespace)")
    runtime = tmp_path / "run"
    ours, other, mnt = runtime / "aaaa", runtime / "bbbb", tmp_path / "mnt"
    for d in (ours, other, mnt):
        d.mkdir(parents=True)
    p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                          'mount --bind "$1" "$2" && echo up && exec sleep 60', "sh",
                          str(other), str(mnt)], env={"PATH": "/usr/bin:/bin"}, cwd="/",
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "up\n"
        wait_until(lambda: os.readlink(f"/proc/{p.pid}/exe").endswith("sleep"), 10, "exec")
        assert next(leases.rounds(str(ours)), None) is None
        verdicts, _ = _board_state(runtime)
        # Named as bbbb's, or not known (the runtime directory's own bind
        # entry matches too): either way read again, never "holds nothing".
        assert verdicts[p.pid][1] in (("bbbb",), None)
        board = leases.Board.open(str(other))
        try:
            assert board.ask(str(other)) == ([p.pid], True)
        finally:
            board.close()
    finally:
        p.kill()
        p.wait()


def test_daemonize_at_exit_keeps_the_tree(runx):
    """The fault matrix's daemonize_at_exit, repeated: its hops land in the
    reaper's scan at random moments."""
    for _ in range(30):
        fault_scenarios.daemonize_at_exit(runx)


# --- runtime dir behind a symlink ----------------------------------------

HOLDER = r"""
import mmap, os, sys
kind, path = sys.argv[1], sys.argv[2]
if kind == "cwd":
    os.chdir(path)
else:
    f = open(path, "rb")
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    f.close()
print("held", flush=True)
import signal
while True:
    signal.pause()
"""


@pytest.mark.parametrize("via", ["RUNX_RUNTIME_DIR", "XDG_RUNTIME_DIR"])
@pytest.mark.parametrize("kind", ["cwd", "map"])
def test_runtime_dir_behind_a_symlink(tmp_path, layer_cache, wheelhouse, via, kind):
    """A process whose only tie to the tree is its cwd, or one mapped file, keeps
    it, though the runtime dir was named through a symlink."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    runtime = str(real) if via == "RUNX_RUNTIME_DIR" else str(real / "runx")
    r = Runx(runtime, layer_cache, wheelhouse)
    if via == "RUNX_RUNTIME_DIR":
        r.env["RUNX_RUNTIME_DIR"] = str(link)
    else:
        del r.env["RUNX_RUNTIME_DIR"]
        r.env["XDG_RUNTIME_DIR"] = str(link)
    # The payload starts the holder with no RUNX_ENV/VIRTUAL_ENV, outside the
    # tree but for its cwd or one mapped file, and the base interpreter.
    payload = ("import os, subprocess, sys\n"
               "tree = os.environ['RUNX_ENV']\n"
               "data = os.path.join(tree, 'data.bin')\n"
               "open(data, 'wb').write(b'x' * 4096)\n"
               "env = {k: v for k, v in os.environ.items() if k not in ('RUNX_ENV', 'VIRTUAL_ENV')}\n"
               "env['PATH'] = '/usr/bin:/bin'\n"
               f"target = tree if {kind!r} == 'cwd' else data\n"
               "p = subprocess.Popen([sys.argv[1], '-c', sys.argv[2], sys.argv[3], target],\n"
               "                     env=env, cwd='/', stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,\n"
               "                     text=True, start_new_session=True)\n"
               "assert p.stdout.readline() == 'held\\n'\n"
               "print(p.pid, flush=True)\n")
    base = os.path.realpath(sys.executable)
    runner = subprocess.Popen(r.argv("python", "-c", payload, base, HOLDER, kind),
                              env=r.env, stdout=subprocess.PIPE, text=True, cwd="/")
    holder = int(runner.stdout.readline())
    runner.wait(timeout=30)
    try:
        assert runner.returncode == 0
        (reaper,) = wait_until(lambda: reapers(runtime), 10, "the reaper")
        # The payload is gone; the holder's only lease is its cwd or map.
        trees = [e for e in runtime_entries(runtime) if not e.endswith(".lock")]
        assert len(trees) == 1
        tree = os.path.join(runtime, trees[0])
        deadline = time.monotonic() + 1.0     # a wrong reaper removes it within ms
        while time.monotonic() < deadline:
            assert os.path.isdir(tree), "early removal: the tree went while a process used it"
            time.sleep(0.02)
        assert alive(reaper)
    finally:
        os.kill(holder, signal.SIGKILL)
    r.wait_clean()


# --- stray signals do not kill the reaper -------------------------------

FAULTS = {signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE,
          signal.SIGILL, signal.SIGTRAP, signal.SIGSYS, signal.SIGABRT}


def test_reaper_survives_every_catchable_signal(runx, tmp_path):
    go = tmp_path / "go"
    p = runx.popen("python", "-c", "import os, sys, time\n"
                   "print('up', flush=True)\n"
                   "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"
                   "sys.exit(0 if os.path.isdir(os.environ['RUNX_ENV'] + '/bin') else 42)",
                   str(go), stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "up\n"
    (reaper,) = wait_until(lambda: reapers(runx.runtime), 10, "the reaper")
    sent = []
    for sig in range(1, signal.SIGRTMAX + 1):
        if sig in FAULTS:
            continue
        os.kill(reaper, sig)
        sent.append(sig)
        assert proc_state(reaper) not in (None, "Z", "X"), f"signal {sig} killed the reaper"
    assert 32 in sent and signal.SIGRTMAX in sent and signal.SIGALRM in sent
    state = proc_state(reaper)
    assert state not in (None, "Z", "X", "T"), f"the reaper is {state} after {len(sent)} signals"
    go.touch()
    assert p.wait(timeout=30) == 0, "the tree vanished while the payload ran"
    runx.wait_clean()      # and the reaper still removed the tree


def _sigign() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("SigIgn:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigIgn")


def test_finisher_does_not_inherit_ignored_signals(tmp_path):
    """detach() ignores every stray signal; restore_signals() (run by the layer
    finisher right after its fork) gives its children the defaults back."""
    out = tmp_path / "out"
    pid = os.fork()
    if pid == 0:
        try:
            daemon.detach()
            detached = _sigign()
            daemon.restore_signals()
            with open(out, "w") as f:
                f.write(f"{detached} ")
                f.flush()
                os.dup2(f.fileno(), 1)
                os.execv("/bin/sh", ["sh", "-c", "grep SigIgn: /proc/self/status"])
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    detached, _, child = out.read_text().split()
    detached, child = int(detached), int(child, 16)
    bit = lambda s: 1 << (s - 1)
    for sig in (signal.SIGALRM, signal.SIGPROF, signal.SIGIO, signal.SIGPWR, signal.SIGVTALRM,
                signal.SIGTERM, 32, 33, signal.SIGRTMIN, signal.SIGRTMAX):
        assert detached & bit(sig), f"detach() left signal {sig} at its default"
    for sig in FAULTS | {signal.SIGCHLD, signal.SIGCONT}:
        assert not detached & bit(sig), f"detach() ignored signal {sig}"
    assert child == 0, f"a child of the finisher inherits ignored signals: {child:#x}"


# --- sweeps and adoption --------------------------------------------------

def stale_tree(runtime: str, name) -> str:
    """A lock nobody holds, its tree, no user: what a SIGKILLed run leaves."""
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    join = os.path.join
    tree = join(os.fsencode(runtime), name) if isinstance(name, bytes) else join(runtime, name)
    os.makedirs(join(tree, b"bin" if isinstance(name, bytes) else "bin"))
    with open(tree + (b".lock" if isinstance(name, bytes) else ".lock"), "w") as f:
        json.dump({"pid": 0}, f)
    return tree


def test_sweep_scans_proc_once(runx, monkeypatch):
    trees = [stale_tree(runx.runtime, f"{i:012x}") for i in range(50)]
    calls = []
    real = os.listdir

    def listdir(path="."):
        if path == "/proc":
            calls.append(path)
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    removed = sweep(runx.runtime)
    monkeypatch.undo()
    assert sorted(removed) == trees
    # One pass, plus a few if short-lived processes elsewhere made a scan
    # inconclusive (it learns them); the old code made one per tree.
    assert len(calls) <= 10, f"{len(calls)} scans of /proc for one sweep of 50 trees"


def test_a_lock_without_its_tree_goes_without_a_scan(runx, monkeypatch):
    """What a run leaves when a sweep took its new lock between its open and
    its flock (it takes another id), or a reaper killed between removing the
    tree and the lock: the sweep removes the lock and scans nothing (at 128
    runs at once such locks made a third of the sweeps scan /proc). A
    present tree beside it is still scanned for, and kept while it is used."""
    os.makedirs(runx.runtime, mode=0o700, exist_ok=True)
    lonely = os.path.join(runx.runtime, "0123456789ab.lock")
    with open(lonely, "w") as f:
        json.dump({"pid": 0}, f)
    scanned = []
    real = leases.Scan

    def scan(trees, *a, **kw):
        scanned.append(list(trees))
        return real(trees, *a, **kw)

    monkeypatch.setattr(leases, "Scan", scan)
    assert sweep(runx.runtime) == [os.path.join(runx.runtime, "0123456789ab")]
    assert not os.path.exists(lonely) and scanned == []
    held = stale_tree(runx.runtime, "ba9876543210")
    user = subprocess.Popen(["sleep", "60"], cwd=held)
    try:
        wait_until(lambda: os.readlink(f"/proc/{user.pid}/cwd") == held, 10, "the user's cwd")
        assert sweep(runx.runtime) == [] and scanned == [[held]]
        assert os.path.isdir(held)
    finally:
        user.kill()
        user.wait()
    assert sweep(runx.runtime) == [held]


def test_non_utf8_names_do_not_break_sweeps(runx):
    odd = stale_tree(runx.runtime, b"\xff")
    foreign = os.path.join(os.fsencode(runx.runtime), b"\xfe-foreign")   # no lock: not ours
    os.mkdir(foreign)
    try:
        ls = runx.run("ls", local=False, errors="surrogateescape")
        assert ls.returncode == 0 and not ls.stderr, ls.stderr
        assert "stale" in ls.stdout
        gc = runx.run("gc", local=False, errors="surrogateescape")
        assert gc.returncode == 0 and not gc.stderr, gc.stderr
        assert gc.stdout == f"removed {os.fsdecode(odd)}\n"
        assert not os.path.exists(odd) and not os.path.exists(odd + b".lock")
        # a run's own sweep meets the foreign odd name too, and carries on
        assert runx.run("python", "-c", "pass").returncode == 0
        wait_until(lambda: runtime_entries(runx.runtime) == ["\udcfe-foreign"] and
                   not reapers(runx.runtime), 15, "the run's tree to go")
    finally:
        os.rmdir(foreign)


def test_adopted_trees_are_waited_for_at_once(runx, tmp_path):
    """Two orphans (reapers SIGKILLed): the one whose user exits first goes
    first, though the other one's user lives on."""
    wait_script = ("import os, sys, time\n"
                   "print(os.environ['RUNX_ENV'], flush=True)\n"
                   "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n")
    payloads = []
    for i in range(2):
        stop = str(tmp_path / f"stop{i}")
        p = runx.popen("python", "-c", wait_script, stop, stdout=subprocess.PIPE, text=True)
        payloads.append((p.stdout.readline().strip(), stop, p))
    for pid in wait_until(lambda: len(reapers(runx.runtime)) == 2 and reapers(runx.runtime),
                          10, "two reapers"):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not reapers(runx.runtime), 10, "the reapers to die")
    # The old code waited in name order: make the first one the long-lived one.
    (first, first_stop, first_p), (second, second_stop, second_p) = sorted(payloads)
    assert runx.run("python", "-c", "pass").returncode == 0   # its reaper adopts both

    def adopted():
        for pid in reapers(runx.runtime):
            held = set()
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
                except OSError:
                    pass
            if {first + ".lock", second + ".lock"} <= held:
                return True
        return False

    wait_until(adopted, 10, "a reaper to adopt both orphans")
    open(second_stop, "w").close()
    second_p.wait(timeout=30)
    try:
        wait_until(lambda: not os.path.exists(second), 10,
                   "the adopted tree whose user exited to go, while the other's user lives")
        assert os.path.isdir(first) and alive(first_p.pid)
    finally:
        open(first_stop, "w").close()
        first_p.wait(timeout=30)
    runx.wait_clean()


def test_an_adopted_tree_whose_holder_ended_before_its_watch_goes(tmp_path, monkeypatch):
    """Adoption waits for the holders of several trees at once. A tree whose
    holders all ended between the scan that found them and their watch (a
    payload exiting as it was read) has nobody to wait for: it is looked at
    again at once, not after another tree's holder, which may live for
    hours (a conclusive scan used to wait on that one alone; seen as a 15 %
    failure of test_adopted_trees_are_waited_for_at_once)."""
    import threading

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RUNX_ENV", "VIRTUAL_ENV")}
    long_lived = subprocess.Popen(["sleep", "60"], cwd=a, env=env)
    ending = subprocess.Popen(["sleep", "60"], cwd=b, env=env)
    real_watch = leases._watch

    def racing_watch(scan, tree, pids):
        if tree == str(b) and ending.poll() is None:
            ending.kill()                   # ends after the scan found it
            ending.wait()
        return real_watch(scan, tree, pids)
    monkeypatch.setattr(leases, "_watch", racing_watch)
    freed = []
    t = threading.Thread(target=leases.wait_free, args=([str(a), str(b)], freed.append),
                         daemon=True)
    try:
        wait_until(lambda: os.readlink(f"/proc/{long_lived.pid}/cwd") == str(a), 10, "a holder")
        wait_until(lambda: os.readlink(f"/proc/{ending.pid}/cwd") == str(b), 10, "b holder")
        t.start()
        wait_until(lambda: freed == [str(b)], 10, "b to be freed while a's holder lives")
        assert t.is_alive()
    finally:
        long_lived.kill()
        long_lived.wait()
        ending.kill()
        ending.wait()
    t.join(30)
    assert not t.is_alive() and freed == [str(b), str(a)]


DAEMON_AT_EXIT = r"""
cd "$RUNX_ENV"
setsid sh -c 'sleep 1; if [ -d "$RUNX_ENV/bin" ]; then echo kept; else echo gone; fi > "$1"' \
    sh "$1" </dev/null >/dev/null 2>&1 &
"""


@pytest.mark.parametrize("repeat", range(3))
def test_runs_at_once_share_scans_and_keep_their_daemons_trees(runx, tmp_path, repeat):
    """Sixteen runs at once, half leaving a daemon in their tree: the reapers
    whose payloads exit together are served by one board scan, and no
    scan's answer for one tree may forget another tree's holder (each
    daemon finds its tree whole a second later); then every tree goes."""
    assert runx.run("--with", "runxdemo", "true").returncode == 0      # warm
    runx.wait_clean(15)
    out = tmp_path / "out"
    out.mkdir()
    procs = []
    for i in range(16):
        if i % 2:
            procs.append(runx.popen("--with", "runxdemo", "sh", "-c", DAEMON_AT_EXIT, "sh",
                                    str(out / str(i))))
        else:
            procs.append(runx.popen("--with", "runxdemo", "true"))
    assert [p.wait(timeout=60) for p in procs] == [0] * 16
    wait_until(lambda: len(os.listdir(out)) == 8, 30, "every daemon's word")
    words = {n: (out / n).read_text() for n in os.listdir(out)}
    assert set(words.values()) == {"kept\n"}, words
    board = os.path.join(runx.runtime, ".scan")
    assert any(n.startswith("state.") for n in os.listdir(board)), "no shared scan was made"
    runx.wait_clean(30)
    assert [n for n in os.listdir(board) if n.startswith("want.")] == []


def test_a_killed_scanners_temporary_state_is_removed(tmp_path):
    """A scanner SIGKILLed between writing state.NS.PID and renaming it over
    the state leaves that file (a reaper killed while writing its want, its
    new-want.NS.TOKEN.PID): the next scanner removes it once the PID is
    gone (a live one's is left alone)."""
    runtime = tmp_path / "run"
    tree = runtime / "aaaa"
    tree.mkdir(parents=True)
    p = subprocess.Popen(["true"])
    p.wait()                                   # a PID that is gone
    board_dir = runtime / ".scan"
    board_dir.mkdir(mode=0o700)
    state = f"state.{leases._pid_namespace()}"
    dead, live = board_dir / f"{state}.{p.pid}", board_dir / f"{state}.{os.getppid()}"
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    ns = leases._pid_namespace()
    dead_want = board_dir / f"{leases._WANT_TMP}.{ns}.0123456789ab.{p.pid}"
    live_want = board_dir / f"{leases._WANT_TMP}.{ns}.0123456789ac.{os.getppid()}"
    dead_want.write_bytes(b"")
    live_want.write_bytes(b"")
    assert next(leases.rounds(str(tree)), None) is None
    assert not dead.exists() and live.exists()
    assert not dead_want.exists() and live_want.exists()


def _board_dir_names(runtime, prefix):
    return sorted(n for n in os.listdir(runtime / ".scan") if n.startswith(prefix))


@pytest.mark.parametrize("repeat", range(20))
def test_a_waiting_reaper_is_woken_by_the_scan(tmp_path, monkeypatch, repeat):
    """A reaper that finds the board taken sleeps on its FIFO and wakes when
    the scanner lets go (its timeouts here are longer than the test's
    deadline, so only the wake-up can end the wait): then it leads a scan
    of its own, its want having come after the other's listing."""
    import fcntl
    import threading

    monkeypatch.setattr(leases, "_WAKE_POLL", 60.0)
    monkeypatch.setattr(leases, "_WAIT", 120.0)
    runtime = tmp_path / "run"
    tree = runtime / "aaaa"
    tree.mkdir(parents=True)
    scanner = leases.Board.open(str(tree))
    waiter = leases.Board.open(str(tree))
    got = []
    try:
        fcntl.flock(scanner.fd, fcntl.LOCK_EX)
        t = threading.Thread(target=lambda: got.append(waiter.ask(str(tree))), daemon=True)
        t.start()
        wait_until(lambda: _board_dir_names(runtime, "wake.") and
                   _board_dir_names(runtime, "want."), 10, "the waiter's want and FIFO")
        fcntl.flock(scanner.fd, fcntl.LOCK_UN)
        scanner._wake_all()
        t.join(30)
        assert not t.is_alive(), "the waiter was not woken"
        assert got == [([], True)]
        # The FIFO is the board's, shared and kept; the want is gone.
        assert _board_dir_names(runtime, "wake.") == [f"wake.{waiter.ns}"]
        assert _board_dir_names(runtime, "want.") == []
        assert leases.Board.open(str(tree))._load("answers." + waiter.ns)[2]["aaaa"][1:] == \
            ((), True)
    finally:
        scanner.close()
        waiter.close()


def test_a_killed_waiters_fifo_is_removed(tmp_path):
    """Reapers before the board's shared FIFO each waited on a FIFO of their
    own (wake.NS.TOKEN); one SIGKILLed while it waited left it (and its want,
    which the next scanner drops as its reaper is gone): a scanner finds
    nobody reading it and no want, and removes it; the FIFO of a live
    waiter stays, and so does the shared one."""
    runtime = tmp_path / "run"
    tree = runtime / "aaaa"
    tree.mkdir(parents=True)
    board_dir = runtime / ".scan"
    board_dir.mkdir(mode=0o700)
    ns = leases._pid_namespace()
    os.mkfifo(board_dir / f"wake.{ns}.dead0token")
    os.mkfifo(board_dir / f"wake.{ns}.live0token")
    live = os.open(board_dir / f"wake.{ns}.live0token", os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert next(leases.rounds(str(tree)), None) is None
        assert _board_dir_names(runtime, "wake.") == [f"wake.{ns}", f"wake.{ns}.live0token"]
    finally:
        os.close(live)


def test_one_open_of_the_fifo_wakes_every_waiter_once(tmp_path):
    """The shared FIFO: a scanner's one open for writing wakes every waiter
    that had it open for reading; a waiter that timed out without a
    wake-up is still armed (no reopen needed), and one that reopened after
    its wake-up is not woken again by the same open."""
    board = tmp_path / "board"
    board.mkdir(mode=0o700)
    dfd = os.open(board, os.O_RDONLY | os.O_DIRECTORY)
    waiters = [leases._Wake.make(dfd, "wake.x") for _ in range(5)]
    try:
        assert all(w is not None for w in waiters)
        assert [w.wait(0.01) for w in waiters] == [False] * 5        # armed, not woken
        os.close(os.open("wake.x", os.O_WRONLY | os.O_NONBLOCK, dir_fd=dfd))
        assert [w.wait(5) for w in waiters] == [True] * 5
        for w in waiters[:3]:
            w.rearm()
        assert [w.wait(0.01) for w in waiters] == [False] * 3 + [True] * 2
        os.close(os.open("wake.x", os.O_WRONLY | os.O_NONBLOCK, dir_fd=dfd))
        assert [w.wait(5) for w in waiters] == [True] * 5
        # Nobody reading: the scanner's open fails and wakes nobody.
        for w in waiters:
            w.close()
        with pytest.raises(OSError) as e:
            os.open("wake.x", os.O_WRONLY | os.O_NONBLOCK, dir_fd=dfd)
        assert e.value.errno == errno.ENXIO
    finally:
        for w in waiters:
            if w is not None:
                w.close()
        os.close(dfd)


def test_a_removed_fifo_is_made_again_and_never_spins(tmp_path):
    """The FIFO removed under a waiter (by hand, `runx gc`): the wake-up it
    saw is forgotten on a FIFO made again, and a FIFO that cannot be made
    (a file in its place) makes the waiter sleep, not poll a POLLHUP for
    ever."""
    board = tmp_path / "board"
    board.mkdir(mode=0o700)
    dfd = os.open(board, os.O_RDONLY | os.O_DIRECTORY)
    w = leases._Wake.make(dfd, "wake.x")
    try:
        os.close(os.open("wake.x", os.O_WRONLY | os.O_NONBLOCK, dir_fd=dfd))
        os.unlink("wake.x", dir_fd=dfd)
        assert w.wait(5)
        w.rearm()
        assert stat.S_ISFIFO(os.stat("wake.x", dir_fd=dfd).st_mode)
        assert not w.wait(0.01)
        os.close(os.open("wake.x", os.O_WRONLY | os.O_NONBLOCK, dir_fd=dfd))
        assert w.wait(5)
        os.unlink("wake.x", dir_fd=dfd)
        os.mkdir("wake.x", dir_fd=dfd)               # not a FIFO: cannot be used
        w.rearm()
        assert w.fd < 0                              # it sleeps: the old POLLHUP is gone
        assert not w.wait(0.01)
    finally:
        w.close()
        os.close(dfd)


HOLD_BOARD = ("import fcntl, os, sys, time\n"
              "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
              "fcntl.flock(fd, fcntl.LOCK_EX)\n"
              "print('held', flush=True)\n"
              "time.sleep(float(sys.argv[2]))\n")


@pytest.mark.parametrize("stopped", [False, True])
def test_a_slow_scanner_is_waited_for_and_a_stopped_one_is_not(tmp_path, monkeypatch, stopped):
    """A round that takes longer than _WAIT (a machine loaded far past its
    cores) is waited for while its scanner runs: scanning alone then would
    only add load. A scanner stopped (SIGSTOP) is not waited for: the reaper
    scans alone after _WAIT."""
    monkeypatch.setattr(leases, "_WAIT", 0.2)
    monkeypatch.setattr(leases, "_WAKE_POLL", 0.05)
    runtime = tmp_path / "run"
    tree = runtime / "aaaa"
    tree.mkdir(parents=True)
    board = leases.Board.open(str(tree))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_BOARD, str(runtime / ".scan"),
                               "60" if stopped else "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        if stopped:
            os.kill(holder.pid, signal.SIGSTOP)
            wait_until(lambda: proc_state(holder.pid) == "T", 10, "the scanner to stop")
            assert board.ask(str(tree)) is None, "a stopped scanner was waited for"
        else:
            assert board.ask(str(tree)) == ([], True), "the reaper gave up on a running scanner"
            assert holder.poll() is not None, "answered before the scanner let go"
    finally:
        board.close()
        holder.kill()
        if stopped:
            os.kill(holder.pid, signal.SIGCONT)
        holder.wait()


def test_a_want_being_written_is_never_taken_for_garbage(tmp_path, monkeypatch):
    """A scanner that lists the board while a reaper is writing its want must
    neither drop it nor read it half-written (a want once read empty was
    removed, and that reaper's round never answered: it scanned alone after
    a wait). The want is written under a temporary name and renamed; the
    temporary file of a live reaper survives any scanner's pass."""
    import fcntl

    runtime = tmp_path / "run"
    tree = runtime / "aaaa"
    tree.mkdir(parents=True)
    waiter = leases.Board.open(str(tree))
    scanner = leases.Board.open(str(tree))
    real_rename = os.rename
    seen = []

    def rename(src, dst, *a, **kw):
        if str(src).startswith(leases._WANT_TMP):
            fcntl.flock(scanner.fd, fcntl.LOCK_EX)
            try:
                scanner._lead()                   # a scanner's pass, the want not yet in place
            finally:
                fcntl.flock(scanner.fd, fcntl.LOCK_UN)
            seen.append(sorted(n for n in os.listdir(runtime / ".scan")
                               if n.startswith(leases._WANT_TMP)))
        return real_rename(src, dst, *a, **kw)

    monkeypatch.setattr(os, "rename", rename)
    try:
        assert waiter.ask(str(tree)) == ([], True)
    finally:
        waiter.close()
        scanner.close()
    assert len(seen) == 1 and len(seen[0]) == 1, "the want being written was removed"
    assert [n for n in os.listdir(runtime / ".scan")
            if n.startswith(("want.", leases._WANT_TMP))] == []


def test_an_empty_environment_is_trusted(tmp_path):
    """A process started with `env -i` reads an empty environ, as one between
    the halves of an exec does: its stat's environment span (complete,
    empty) tells the two apart, so it never keeps a scan from being
    conclusive (fault scenario bind_mount_elsewhere runs its holder so), and
    one that holds the tree by its cwd is found."""
    tree = tmp_path / "tree"
    tree.mkdir()
    quiet = subprocess.Popen(["env", "-i", "/bin/sleep", "60"], cwd="/")
    holder = subprocess.Popen(["env", "-i", "/bin/sleep", "60"], cwd=str(tree))
    try:
        for p in (quiet, holder):
            wait_until(lambda: os.readlink(f"/proc/{p.pid}/exe") == "/usr/bin/sleep"
                       or os.readlink(f"/proc/{p.pid}/exe").endswith("/sleep"), 10, "the exec")
        assert open(f"/proc/{quiet.pid}/environ", "rb").read() == b""
        found, sure = leases.Scan([str(tree)]).settle(2.0)
        assert (found, sure) == ({str(tree): [holder.pid]}, True)
    finally:
        for p in (quiet, holder):
            p.kill()
            p.wait()
