"""Same process: the programs that talk to a process by its PID, its fds or its
terminal work with a payload started by runx exactly as with one started
directly. Each peer is real (systemd's notify protocol and socket
activation done as systemd does them, jupyter_client with a real ipykernel,
bash job control on a pty, py-spy); none is skipped.
"""

import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import RUNX, alive, proc_state, reapers, wait_until
from test_transparency import reaper_of

BASE_PYTHON = os.path.realpath(sys._base_executable)


class Reader:
    """Read a pipe or pty master with deadlines; keeps everything it saw."""

    def __init__(self, fd: int):
        self.fd = fd
        self.seen = b""
        self.pos = 0          # where the next expect() starts looking
        self.eof = False

    def _fill(self, timeout: float) -> None:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if r:
            try:
                data = os.read(self.fd, 65536)
            except OSError:               # EIO: pty slave closed
                data = b""
            if data:
                self.seen += data
            else:
                self.eof = True

    def expect(self, pattern: str, timeout: float = 15.0) -> re.Match:
        rx = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.seen, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                pytest.fail(f"expected {pattern!r} within {timeout}s; got so far:\n"
                            f"{self.seen[self.pos:].decode(errors='replace')}")
            self._fill(min(left, 0.5))

    def read_to_eof(self, timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no EOF within {timeout}s: something still holds the pipe")
            self._fill(min(left, 0.5))
        return self.seen[self.pos:]


def socket_inodes(pid: int) -> set:
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def stat_of(pid: int) -> dict:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return {"state": rest[0], "ppid": int(rest[1]), "pgrp": int(rest[2]),
            "session": int(rest[3]), "tpgid": int(rest[5])}


# --- systemd: Type=notify, NotifyAccess=main ----------------------------------

NOTIFY_PAYLOAD = """
import os, socket, sys
addr = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\\nSTATUS=serving", addr)
print("sent", os.getpid(), flush=True)
sys.stdin.read()          # run until the test closes our stdin
"""


def test_systemd_notify_comes_from_the_main_pid(runx):
    """systemd accepts READY=1 under NotifyAccess=main only if the sender's
    kernel-supplied credentials carry the PID it forked (MAINPID)."""
    d = tempfile.mkdtemp(prefix="runx-notify-")      # short path: sun_path is 108 bytes
    path = os.path.join(d, "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        server.bind(path)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        env = dict(runx.env, NOTIFY_SOCKET=path)
        # A careless supervisor leaks its notify socket to the service: the
        # payload may keep it, the reaper must not.
        p = runx.popen("python", "-c", NOTIFY_PAYLOAD, env=env, stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, pass_fds=(server.fileno(),))
        try:
            r, _, _ = select.select([server], [], [], 60)
            assert r, "no notification arrived"
            msg, anc, _, _ = server.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
            assert msg.startswith(b"READY=1")
            creds = [struct.unpack("3i", data[:12]) for level, kind, data in anc
                     if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
            assert creds, "no SCM_CREDENTIALS: SO_PASSCRED not honoured"
            sender_pid, uid, gid = creds[0]
            assert sender_pid == p.pid, (
                f"READY=1 came from PID {sender_pid}, systemd's MAINPID is {p.pid}: "
                "NotifyAccess=main would drop it")
            assert (uid, gid) == (os.getuid(), os.getgid())

            assert Reader(p.stdout.fileno()).expect(r"sent (\d+)").group(1) == str(p.pid).encode()
            assert inode(server) in socket_inodes(p.pid), "the payload lost the fd it was given"
            reaper = wait_until(lambda: reaper_of(p.pid), 10, "the reaper watching the payload")
            # The reaper starts as a copy of runx, fds and all, and lets go of
            # the caller's fds as it detaches, possibly after the exec.
            wait_until(lambda: inode(server) not in socket_inodes(reaper), 10,
                       f"reaper {reaper} to let go of the caller's notify socket")
        finally:
            p.stdin.close()
            assert p.wait(timeout=30) == 0
            p.stdout.close()
    finally:
        server.close()
        os.unlink(path)
        os.rmdir(d)


# --- systemd: socket activation ------------------------------------------------

ACTIVATION_PAYLOAD = """
import os, socket
assert os.environ["LISTEN_PID"] == str(os.getpid()), (os.environ["LISTEN_PID"], os.getpid())
n = int(os.environ["LISTEN_FDS"])
assert n == 1
s = socket.socket(fileno=3)          # SD_LISTEN_FDS_START
assert s.type == socket.SOCK_STREAM
conn, _ = s.accept()
conn.sendall(f"hello from {os.getpid()}\\n".encode())
conn.close()
"""


def test_socket_activation_reaches_the_payload(runx):
    """systemd passes listening sockets from fd 3 with LISTEN_FDS, and
    LISTEN_PID set to the PID it forked: the payload must be that PID and
    have fd 3."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    env = dict(runx.env, LISTEN_FDS="1")

    def set_listen_pid():
        # After fork, before exec: the only moment the PID is known, as in systemd.
        os.environ.clear()
        os.environ.update(env, LISTEN_PID=str(os.getpid()))

    saved = None
    try:
        try:
            saved = os.dup(3)                # fd 3 may be pytest's; put it back after
        except OSError:
            pass
        os.dup2(listener.fileno(), 3)
        p = subprocess.Popen(runx.argv("python", "-c", ACTIVATION_PAYLOAD), env=None,
                             preexec_fn=set_listen_pid, pass_fds=(3,),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        if saved is not None:
            os.dup2(saved, 3, inheritable=False)
            os.close(saved)
        else:
            os.close(3)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            c.settimeout(60)
            answer = c.makefile("rb").readline()
        assert answer == f"hello from {p.pid}\n".encode()
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err.decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        listener.close()


# --- signals sent to the PID the caller knows -----------------------------------

SIGNALS_PAYLOAD = """
import os, signal, sys
def got(n, frame):
    print("GOT", signal.Signals(n).name, flush=True)
    if n == signal.SIGTERM:
        sys.exit(0)
for name in ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGWINCH", "SIGINT"):
    signal.signal(getattr(signal, name), got)
print("READY", os.getpid(), flush=True)
while True:
    signal.pause()
"""


def test_signals_to_the_callers_pid_reach_the_payload(runx):
    p = runx.popen("python", "-c", SIGNALS_PAYLOAD, stdout=subprocess.PIPE)
    out = Reader(p.stdout.fileno())
    try:
        assert out.expect(r"READY (\d+)", 60).group(1) == str(p.pid).encode()
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGWINCH, signal.SIGINT, signal.SIGTERM):
            os.kill(p.pid, sig)
            out.expect(rf"GOT {sig.name}\n")
        rest = out.read_to_eof()          # EOF: nobody else (no reaper) holds stdout
        assert p.wait(timeout=15) == 0
        assert b"GOT" not in rest, f"a signal arrived twice: {rest!r}"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGSEGV, signal.SIGABRT])
def test_payload_killing_itself_dies_of_that_signal(runx, sig):
    code = f"import os, signal; signal.signal({int(sig)}, signal.SIG_DFL); os.kill(os.getpid(), {int(sig)})"
    direct = subprocess.run([BASE_PYTHON, "-c", code], preexec_fn=no_core)
    via = runx.run("python", "-c", code, preexec_fn=no_core)
    assert direct.returncode == -sig
    assert via.returncode == -sig, f"died of {sig.name} but the caller saw {via.returncode}: {via.stderr}"


def no_core():
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# --- profilers and debuggers by PID ---------------------------------------------

SLEEPER = "import time\ndef wait_here():\n    time.sleep(60)\nprint('up', flush=True)\nwait_here()\n"


def test_profilers_see_the_payload_at_the_callers_pid(runx):
    p = runx.popen("python", "-c", SLEEPER, stdout=subprocess.PIPE)
    try:
        Reader(p.stdout.fileno()).expect("up", 60)
        assert os.readlink(f"/proc/{p.pid}/exe") == BASE_PYTHON
        with open(f"/proc/{p.pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[:-1] == [b"python", b"-c", SLEEPER.encode()]
        with open(f"/proc/{p.pid}/comm") as f:
            assert f.read().strip() == "python"
        # A real profiler attached by PID: py-spy reads the interpreter's stack.
        pyspy = os.path.join(os.path.dirname(sys.executable), "py-spy")
        dump = subprocess.run([pyspy, "dump", "--pid", str(p.pid)], capture_output=True,
                              text=True, timeout=60)
        assert dump.returncode == 0, dump.stderr
        assert "wait_here" in dump.stdout, dump.stdout
    finally:
        p.kill()
        p.wait()
        p.stdout.close()


# --- Jupyter: signal-mode kernel interrupts ---------------------------------------

def test_jupyter_interrupt_reaches_a_kernel_started_by_runx(runx, tmp_path):
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = tmp_path / "kernels" / "runx-python"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": runx.argv("--with", "ipykernel", "python", "-m", "ipykernel_launcher",
                          "-f", "{connection_file}", local=False),
        "display_name": "Python (runx)", "language": "python",
        "interrupt_mode": "signal",
        "env": {"RUNX_RUNTIME_DIR": runx.runtime, "RUNX_CACHE_DIR": runx.cache},
    }))
    km = KernelManager(kernel_name="runx-python",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels.parent)]))
    km.start_kernel(env=runx.env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=300)          # first run installs ipykernel from PyPI
        pid = km.provisioner.process.pid
        assert os.readlink(f"/proc/{pid}/exe") == BASE_PYTHON, "the kernel is not at runx's PID"

        # stop_on_error=False: an interrupted cell otherwise makes ipykernel
        # abort requests that arrive just after it, and the next cell would
        # now and then get an 'aborted' reply (seen 2-4 in 40 under load).
        msg_id = kc.execute("print('sleeping', flush=True); import time; time.sleep(60)",
                            stop_on_error=False)
        wait_for_output(kc, msg_id, "sleeping")
        km.interrupt_kernel()                   # SIGINT to the PID jupyter_client started
        reply = shell_reply(kc, msg_id, timeout=10)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"

        # The kernel survived the interrupt and still works, at the same PID.
        msg_id = kc.execute("import os; print(os.getpid(), flush=True)")
        wait_for_output(kc, msg_id, str(pid))
        assert shell_reply(kc, msg_id, timeout=30)["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    assert not km.is_alive()


def shell_reply(kc, msg_id: str, timeout: float) -> dict:
    """The reply to MSG_ID (earlier replies, e.g. to kernel_info, are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no reply to {msg_id} within {timeout}s")
        try:
            msg = kc.get_shell_msg(timeout=left)
        except Exception:
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def wait_for_output(kc, msg_id: str, text: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            break
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            seen.append(msg["content"]["text"])
            if text in "".join(seen):
                return
        if msg["msg_type"] == "error":
            pytest.fail(f"cell failed: {msg['content']}")
    pytest.fail(f"no output {text!r} within {timeout}s (saw {seen})")


# --- a terminal: bash job control on a pty ------------------------------------------

JOB_PAYLOAD = """
import os, signal, sys
interrupts = 0
def on_int(n, frame):          # counts every SIGINT; installed before READY, so none is missed
    global interrupts
    interrupts += 1
    print("INT", interrupts, flush=True)
signal.signal(signal.SIGINT, on_int)
print("READY", os.getpid(), flush=True)
for line in sys.stdin:         # the read resumes after the handler (PEP 475)
    if line.strip() == "quit":
        break
print("BYE", interrupts, flush=True)
"""


def test_terminal_job_control(runx, tmp_path):
    """Ctrl-C interrupts once, Ctrl-Z stops, fg resumes, the terminal stays sane."""
    payload = tmp_path / "payload.py"
    payload.write_text(JOB_PAYLOAD)
    env = dict(runx.env, RUNX=RUNX, PS1="shell$ ", TERM="dumb", HISTFILE="/dev/null",
               INPUTRC="/dev/null")
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-i"], env)
        finally:
            os._exit(127)
    tty = Reader(master)
    try:
        tty.expect(r"shell\$ ")
        os.write(master, f'"$RUNX" python {payload}\n'.encode())
        job = int(tty.expect(r"READY (\d+)", 120).group(1))
        st = stat_of(job)
        assert st["ppid"] == pid, "the payload must be the shell's child"
        assert st["pgrp"] == job and st["tpgid"] == job, \
            "the payload must lead the foreground job's process group"
        for r in reapers(runx.runtime):
            assert stat_of(r)["session"] != st["session"], "the reaper must be in a session of its own"

        os.write(master, b"\x03")                          # Ctrl-C
        tty.expect(r"INT 1\r?\n")

        os.write(master, b"\x1a")                          # Ctrl-Z
        tty.expect(r"Stopped")
        wait_until(lambda: proc_state(job) == "T", 10, "the payload to be stopped")
        for r in reapers(runx.runtime):
            assert proc_state(r) != "T", "Ctrl-Z must not stop the reaper"
        tty.expect(r"shell\$ ")

        os.write(master, b"fg\n")
        wait_until(lambda: proc_state(job) in ("S", "R"), 10, "the payload to resume")
        os.write(master, b"quit\n")
        assert tty.expect(r"BYE (\d+)").group(1) == b"1", "Ctrl-C must interrupt exactly once"
        tty.expect(r"shell\$ ")
        wait_until(lambda: not alive(job), 10, "the payload to exit")

        os.write(master, b"stty -a; echo END-$((6*7))\n")
        settings = tty.expect(r"(?s)(.*)END-42").group(1).decode(errors="replace")
        words = settings.replace(";", " ").split()
        for flag in ("icanon", "echo", "isig", "icrnl", "opost"):
            assert flag in words and f"-{flag}" not in words, f"terminal left with -{flag}: {settings}"
        os.write(master, b"exit\n")
        tty.read_to_eof()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        if proc_state(pid) is not None:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(master)
