"""Nothing changed: a payload started by runx is indistinguishable from one started
directly, except for a short documented list.

The probe (tests/probe.py) reports every observable property of its process.
Each test launches it twice, the same way, from the same caller with the
same deliberately unusual state (an ignored SIGHUP, a blocked SIGUSR2, a
lowered RLIMIT_NOFILE, umask 027, extra fds, a cwd of its own): once as
``python probe.py`` and once as ``runx python probe.py``. Both find
``python`` on PATH; for the direct launch it is a link named ``python`` to
the base interpreter, the very file the runx tree's ``bin/python`` points
to, so ``comm``, ``argv`` and ``/proc/PID/exe`` are alike too.

The only differences allowed (docs/transparency.md says why): the
variables VIRTUAL_ENV, RUNX_ENV and PATH, and sys.prefix/sys.executable.
The process identity (pid, ppid, pgid, sid) differs between two launches
by nature: each is checked against the Popen PID and the caller instead.
Tests marked xfail(strict) are runx bugs found here (see the reasons).
"""

import json
import os
import pty
import resource
import signal
import socket
import subprocess
import sys

import pytest

from conftest import wait_until

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.py")
BASE_PYTHON = os.path.realpath(sys._base_executable)

# What runx is documented to change, as paths into the flattened report.
ALLOWED = {
    "env.VIRTUAL_ENV",      # the tree
    "env.RUNX_ENV",         # the tree (the lease that keeps it alive)
    "env.PATH",             # the tree's bin/ first, then the caller's PATH unchanged
    "python.prefix",        # the tree, since python runs from the tree's bin/
    "python.executable",    # the tree's bin/python
}
# Identity differs between two launches by nature; checked against the
# caller instead (see check_identity). Ancestors: the probe's parent chain.
IDENTITY = ("identity.pid", "identity.ppid", "identity.pgid", "identity.sid",
            "identity.children", "tty.tpgid", "tty.tcgetpgrp", "ancestors")

def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def differences(direct: dict, via: dict) -> dict:
    a, b = flatten(direct), flatten(via)
    out = {}
    for k in sorted(set(a) | set(b)):
        if k.startswith(IDENTITY):
            continue
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            out[k] = (a.get(k, "<absent>"), b.get(k, "<absent>"))
    return out


@pytest.fixture
def python_link(tmp_path):
    """A directory with ``python`` → the base interpreter, for PATH."""
    d = tmp_path / "bin"
    d.mkdir()
    os.symlink(BASE_PYTHON, d / "python")
    return str(d)


class Caller:
    """Launches commands with one fixed, unusual caller state."""

    def __init__(self, runx, tmp_path, python_link):
        self.runx = runx
        self.cwd = str(tmp_path / "cwd")
        os.mkdir(self.cwd)
        self.env = dict(runx.env, PATH=python_link + os.pathsep + runx.env["PATH"],
                        PROBE_MARKER="caller's own variable")
        self.out = str(tmp_path / "report.json")
        self.log = open(tmp_path / "stdio.log", "ab")          # O_APPEND, shared
        self.r, self.w = os.pipe()
        self.sock_a, self.sock_b = socket.socketpair()
        self.sock_a.setblocking(False)                         # O_NONBLOCK must survive
        self.extra = (self.r, self.w, self.sock_a.fileno())

    def close(self):
        for f in (self.log, self.sock_a, self.sock_b):
            f.close()
        for fd in (self.r, self.w):
            os.close(fd)

    @staticmethod
    def preexec():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)           # as under nohup
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 777), hard))
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))

    def popen(self, argv, also=None, **kw):
        """ALSO: a further change of the caller's state, made after preexec's
        (in the child, after the stdio redirections)."""
        def preexec():
            self.preexec()
            if also:
                also()
        kw.setdefault("restore_signals", True)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", self.log)
        kw.setdefault("stderr", self.log)
        return subprocess.Popen(argv, env=self.env, cwd=self.cwd, umask=0o027,
                                pass_fds=self.extra, preexec_fn=preexec, **kw)

    def probe(self, via_runx: bool, *args, runx_args=(), **kw):
        argv = ["python", PROBE, "--out", self.out, *args]
        if via_runx:
            argv = self.runx.argv(*runx_args, *argv)
        if os.path.exists(self.out):
            os.unlink(self.out)
        p = self.popen(argv, **kw)
        rc = p.wait(timeout=120)
        if not os.path.exists(self.out):
            self.log.flush()
            with open(self.log.name, errors="replace") as f:
                pytest.fail(f"{argv} exited {rc} without a report; output:\n{f.read()[-3000:]}")
        with open(self.out) as f:
            return p, rc, json.load(f)


@pytest.fixture
def caller(runx, tmp_path, python_link):
    c = Caller(runx, tmp_path, python_link)
    yield c
    c.close()


def check_identity(report: dict, pid: int, *, pgid: int, sid: int, ppid: int):
    ident = report["identity"]
    assert ident["pid"] == pid, "the probe must have the PID the caller got from fork"
    assert ident["ppid"] == ppid, "the probe's parent must be the caller"
    assert (ident["pgid"], ident["sid"]) == (pgid, sid), "process group and session must be the caller's"
    assert ident["children"] == [], "the probe must start with no children"
    assert ident["threads"] == 1
    assert ident["exe"] == BASE_PYTHON


@pytest.mark.parametrize("runx_args", [(), ("--with", "runxdemo"), ("--no-cache", "--with", "runxdemo"),
                                       ("--tree", "fuse", "--with", "runxdemo")],
                         ids=["bare", "layer", "no-cache", "fuse"])
def test_probe_sees_nothing_changed_but_the_documented_list(caller, runx, runx_args):
    p1, rc1, direct = caller.probe(False)
    p2, rc2, via = caller.probe(True, runx_args=runx_args)
    assert rc1 == rc2 == 0
    me = (os.getpgrp(), os.getsid(0), os.getpid())
    check_identity(direct, p1.pid, pgid=me[0], sid=me[1], ppid=me[2])
    check_identity(via, p2.pid, pgid=me[0], sid=me[1], ppid=me[2])

    diff = differences(direct, via)
    unexpected = {k: v for k, v in diff.items() if k not in ALLOWED}
    assert not unexpected, f"runx changed what it must not (direct, via runx): {unexpected}"

    # The caller's unusual state really was there (else the comparison proves little).
    assert "SIGHUP" in direct["signals"]["SigIgn"] and "SIGUSR2" in direct["signals"]["SigBlk"]
    assert direct["process"]["umask"] == "0o27" and direct["process"]["cwd"] == caller.cwd
    assert {str(fd) for fd in caller.extra} <= set(via["fds"])
    # And the documented differences are exactly what the docs say.
    tree = via["env"]["RUNX_ENV"]
    assert tree.startswith(runx.runtime + "/")
    assert via["env"]["VIRTUAL_ENV"] == tree == via["python"]["prefix"]
    assert via["env"]["PATH"] == os.path.join(tree, "bin") + os.pathsep + caller.env["PATH"]
    assert via["python"]["executable"] == os.path.join(tree, "bin", "python")
    assert "RUNX_ENV" not in direct["env"] and "VIRTUAL_ENV" not in direct["env"]
    assert via["python"]["base_prefix"] == direct["python"]["base_prefix"]


@pytest.mark.parametrize("how, expect", [
    (("--exit", "0"), 0), (("--exit", "3"), 3), (("--exit", "255"), 255),
    (("--signal", "SIGTERM"), -signal.SIGTERM), (("--signal", "SIGKILL"), -signal.SIGKILL),
    (("--signal", "SIGSEGV"), -signal.SIGSEGV), (("--signal", "SIGINT"), -signal.SIGINT),
    (("--signal", "SIGPIPE"), -signal.SIGPIPE),
])
def test_exit_status_is_the_payloads_own(caller, how, expect):
    _, rc_direct, _ = caller.probe(False, *how)
    _, rc_runx, _ = caller.probe(True, *how)
    assert rc_direct == expect
    assert rc_runx == rc_direct, f"exit status via runx {rc_runx}, directly {rc_direct}"


# /proc/self/status as exec'd, read by a program that changes nothing at
# start-up (Python ignores SIGPIPE/SIGXFSZ before any code of ours runs).
STATUS_LINES = ("Umask", "SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd", "CapInh", "CapPrm",
                "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Cpus_allowed_list",
                "Uid", "Gid", "Groups")


def native_status(caller, via_runx: bool, **kw) -> dict:
    """Selected /proc/self/status lines of `cat`, started directly or via runx."""
    out = caller.out + ".status"
    argv = ["cat", "/proc/self/status"]
    if via_runx:
        argv = caller.runx.argv("--no-project", *argv)     # cat names no package
    with open(out, "wb") as f:
        p = caller.popen(argv, stdout=f, **kw)
        assert p.wait(timeout=120) == 0
    with open(out) as f:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    assert int(fields["Pid"]) == p.pid and int(fields["PPid"]) == os.getpid()
    return {k: fields.get(k) for k in STATUS_LINES}


def test_exec_time_signal_state_seen_by_a_non_python_program(caller):
    direct = native_status(caller, False)
    via = native_status(caller, True)
    assert direct == via
    # SIGPIPE/SIGXFSZ: runx's own interpreter ignored them; the payload must not inherit that.
    assert int(via["SigIgn"], 16) == 1 << (signal.SIGHUP - 1)


@pytest.mark.xfail(strict=True, reason=(
    "runx resets SIGPIPE/SIGXFSZ to SIG_DFL unconditionally (src/runner/launch.py "
    "exec_payload): a caller that itself ignored SIGPIPE (subprocess with "
    "restore_signals=False, `trap '' PIPE`) sees its payload get SIG_DFL. Python overwrites the "
    "inherited disposition at start-up, so runx would have to learn it some other way"))
def test_caller_ignoring_sigpipe_is_kept(caller):
    # restore_signals=False: the child inherits this test process's SIG_IGN for SIGPIPE/SIGXFSZ.
    direct = native_status(caller, False, restore_signals=False)
    via = native_status(caller, True, restore_signals=False)
    assert int(direct["SigIgn"], 16) & (1 << (signal.SIGPIPE - 1))
    assert direct == via


@pytest.mark.parametrize("ignored", [
    ("SIGINT", "SIGQUIT"),      # `cmd &` in a non-interactive shell
    ("SIGHUP",),                # nohup
    ("SIGCHLD",),               # daemons that never wait; runx must still reap its own fork
    ("SIGTERM", "SIGUSR1", "SIGTTOU", "SIGTSTP"),
], ids=lambda names: "+".join(n[3:] for n in names))
def test_signals_the_caller_ignored_stay_ignored(caller, ignored):
    def ignore():
        for name in ignored:
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    direct = native_status(caller, False, also=ignore)
    via = native_status(caller, True, also=ignore)
    assert direct == via
    for name in ignored:
        assert int(via["SigIgn"], 16) & (1 << (getattr(signal, name) - 1)), f"{name} not ignored"


def test_signals_the_caller_blocked_stay_blocked(caller):
    blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGWINCH}
    also = lambda: signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    direct = native_status(caller, False, also=also)
    via = native_status(caller, True, also=also)
    assert direct == via
    assert all(int(via["SigBlk"], 16) & (1 << (s - 1)) for s in blocked)


def test_no_stray_sigchld_pending_when_the_caller_blocked_it(caller):
    also = lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    direct = native_status(caller, False, also=also)
    via = native_status(caller, True, also=also)
    assert int(direct["SigBlk"], 16) & (1 << (signal.SIGCHLD - 1))
    assert (via["SigPnd"], via["ShdPnd"]) == (direct["SigPnd"], direct["ShdPnd"]) == ("0" * 16,) * 2
    assert direct == via


def test_closed_stdin_stays_closed(caller):
    """`cmd <&-`: fd 0 is closed for the payload too, not one of runx's own fds."""
    also = lambda: os.close(0)
    _, rc1, direct = caller.probe(False, also=also, stdin=None)
    _, rc2, via = caller.probe(True, also=also, stdin=None)
    assert rc1 == rc2 == 0
    assert "0" not in direct["fds"]
    unexpected = {k: v for k, v in differences(direct, via).items() if k not in ALLOWED}
    assert not unexpected, f"with stdin closed runx changed (direct, via runx): {unexpected}"


def test_reaper_holds_the_tree_lock_when_stdin_is_closed(runx):
    p = runx.popen("python", "-c", "import time; print('up', flush=True); time.sleep(60)",
                   stdin=None, stdout=subprocess.PIPE, preexec_fn=lambda: os.close(0))
    try:
        assert p.stdout.readline() == b"up\n"
        [tree] = runx.trees()
        lock = os.path.join(runx.runtime, tree + ".lock")
        reaper = wait_until(lambda: reaper_of(p.pid), 10, "the reaper watching the payload")
        pipe = os.readlink(f"/proc/self/fd/{p.stdout.fileno()}")
        # Detached: the caller's stdout pipe is gone from the reaper (the
        # reaper runs on its own; it may get there after the payload started).
        wait_until(lambda: pipe not in fd_links(reaper), 10, "the reaper to let go of the caller's pipe")
        assert lock in fd_links(reaper), (
            f"the reaper does not hold {lock} (its fds: {fd_links(reaper)}): nothing keeps "
            "the tree's flock while the payload runs")
    finally:
        p.kill()
        p.wait()
        p.stdout.close()


def fd_links(pid: int) -> list:
    out = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
    except OSError:
        pass
    return out


def reaper_of(payload: int) -> int | None:
    """The runx-reaper whose pidfd refers to PAYLOAD (fdinfo's Pid line)."""
    for n in os.listdir("/proc"):
        if not n.isdigit():
            continue
        try:
            with open(f"/proc/{n}/comm") as f:
                if f.read().strip() != "runx-reaper":
                    continue
            for fd in os.listdir(f"/proc/{n}/fd"):
                if os.readlink(f"/proc/{n}/fd/{fd}") == "anon_inode:[pidfd]":
                    with open(f"/proc/{n}/fdinfo/{fd}") as f:
                        if f"Pid:\t{payload}\n" in f.read():
                            return int(n)
        except OSError:
            continue
    return None


@pytest.mark.parametrize("fd", [1, 2], ids=["stdout", "stderr"])
def test_closed_stdout_or_stderr_is_no_error(caller, fd):
    also = lambda: os.close(fd)
    kw = {"stdout": None} if fd == 1 else {"stderr": None}
    _, rc1, direct = caller.probe(False, also=also, **kw)
    _, rc2, via = caller.probe(True, also=also, **kw)
    assert rc1 == rc2 == 0
    assert str(fd) not in via["fds"]


def probe_under_pty(argv, env, cwd, out) -> tuple:
    """Run ARGV as the session leader of a new pty (as a terminal emulator or
    sshd does); return (pid, exit status, report)."""
    if os.path.exists(out):
        os.unlink(out)
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    try:
        while True:                         # drain, so the child never blocks on output
            try:
                if not os.read(master, 4096):
                    break
            except OSError:                 # EIO: the slave side is closed
                break
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    with open(out) as f:
        return pid, os.waitstatus_to_exitcode(status), json.load(f)


def test_probe_under_a_terminal(caller, runx):
    """Controlling tty, its foreground process group, session leadership."""
    pid1, rc1, direct = probe_under_pty(
        ["/bin/sh", "-c", 'exec python "$@"', "sh", PROBE, "--out", caller.out],
        caller.env, caller.cwd, caller.out)
    pid2, rc2, via = probe_under_pty(
        ["/bin/sh", "-c", 'exec "$@"', "sh", *runx.argv("python", PROBE, "--out", caller.out)],
        caller.env, caller.cwd, caller.out)
    assert rc1 == rc2 == 0
    for pid, rep in ((pid1, direct), (pid2, via)):
        check_identity(rep, pid, pgid=pid, sid=pid, ppid=os.getpid())
        assert rep["tty"]["tty_nr"] != 0, "the probe must have a controlling terminal"
        assert rep["tty"]["tpgid"] == rep["tty"]["tcgetpgrp"] == pid, \
            "the probe must be the terminal's foreground process group"
    diff = differences(direct, via)
    # Each pty.fork makes a new pty: its name and device number differ by nature.
    diff = {k: v for k, v in diff.items()
            if not k.startswith(("tty.tty_nr", "tty.ttyname", "fds.0.", "fds.1.", "fds.2."))}
    unexpected = {k: v for k, v in diff.items() if k not in ALLOWED}
    assert not unexpected, f"under a terminal runx changed (direct, via runx): {unexpected}"
    assert via["tty"]["ttyname"]["0"].startswith("/dev/pts/")
