"""``--tree fuse``, the unlinked tree. The tree is a FUSE mount
served from the reaper's memory: present while the run lasts, gone after,
gone at once when the reaper is SIGKILLed (auto_unmount), and nothing of it
on disk but the empty mountpoint and the lock. Real FUSE, no skips.
"""

import contextlib
import os
import select
import signal
import subprocess
import time

import pytest

from conftest import alive, build_wheel, comm, runtime_entries, the_reaper, wait_until


@pytest.fixture(autouse=True)
def _reaper_log_and_no_debris(request, tmp_path):
    """Every FUSE test logs its reapers (shown when it fails) and, should it
    fail with a mount left behind, detaches it: a dead mount under tmp_path
    would break pytest's own clean-up for every later session. The fast
    tier's tests of the loop run no runx and mount nothing."""
    if request.node.get_closest_marker("fast"):
        yield
        return
    runx = request.getfixturevalue("runx")
    log = tmp_path / "reaper.log"
    runx.env.setdefault("RUNX_REAPER_LOG", str(log))
    yield
    left = mounts(str(tmp_path))
    if left or log.exists():
        # Captured: pytest shows it with a failure's report only.
        print(f"mounts left: {left}\nreaper log:\n{log.read_text() if log.exists() else ''}")
    for point, _, _ in reversed(left):
        subprocess.run(["fusermount3", "-u", "-z", point], capture_output=True)


def mounts(under: str) -> list:
    """(mountpoint, fstype, source) of every mount at or below ``under``."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = left.split()[4].encode().decode("unicode_escape")
            fstype, source = right.split()[:2]
            if point == under or point.startswith(under.rstrip("/") + "/"):
                out.append((point, fstype, source))
    return out


def uv_bin() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


class Lines:
    """Read a child's stdout line by line with a deadline (never hangs)."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.buf = b""

    def next(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no line within {timeout}s (got {self.buf!r})")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                data = os.read(self.fd, 65536)
                if not data:
                    pytest.fail(f"EOF before a line (got {self.buf!r})")
                self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


MOUNTINFO = "import sys; print(sys.prefix); print(open('/proc/self/mountinfo').read())"


def _fuse_lines(text: str, tree: str) -> list:
    return [l for l in text.splitlines() if f" {tree} " in l and " - fuse.runx runx " in l]


def test_mount_exists_during_the_run_and_is_gone_after(runx):
    r = runx.run("--tree", "fuse", "python", "-c", MOUNTINFO)
    assert r.returncode == 0, r.stderr
    tree = r.stdout.splitlines()[0]
    assert os.path.dirname(tree) == runx.runtime
    lines = _fuse_lines(r.stdout, tree)
    assert lines, f"no fuse.runx mount at {tree} in the payload's mountinfo:\n{r.stdout}"
    assert "default_permissions" in lines[0] and "nosuid" in lines[0]
    runx.wait_clean()
    assert mounts(runx.runtime) == []


def test_the_tree_is_a_working_venv(runx):
    code = ("import os, stat, sys; p = sys.prefix; st = os.stat(p);"
            "print(sys.prefix != sys.base_prefix, oct(stat.S_IMODE(st.st_mode)), st.st_uid == os.geteuid(),"
            " st.st_ino, os.environ['VIRTUAL_ENV'] == p == os.environ['RUNX_ENV'],"
            " os.readlink(p + '/bin/python') == os.path.realpath(sys._base_executable),"
            " sorted(os.listdir(p)))")
    r = runx.run("--tree", "fuse", "python", "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(" ", 5)[:5] == ["True", "0o700", "True", "1", "True"], r.stdout
    assert "True ['bin', 'lib', 'lib64', 'pyvenv.cfg']" in r.stdout
    runx.wait_clean()


def test_runx_tree_env_selects_fuse(runx):
    env = dict(runx.env, RUNX_TREE="fuse")
    r = runx.run("python", "-c", MOUNTINFO, env=env)
    assert r.returncode == 0, r.stderr
    assert _fuse_lines(r.stdout, r.stdout.splitlines()[0])
    runx.wait_clean()


def test_console_scripts_from_a_layer(runx):
    r = runx.run("--tree", "fuse", "--with", "runxdemo", "runxdemo")
    assert r.returncode == 0, r.stderr
    name, version, prefix = r.stdout.split()
    assert (name, version) == ("runxdemo", "1.0")
    assert os.path.dirname(prefix) == runx.runtime
    r = runx.run("--tree", "fuse", "--with", "runxdemo", "runxdemo", "exit", "7")
    assert r.returncode == 7
    r = runx.run("--tree", "fuse", "--with", "runxdemo", "python", "-c",
                 "import runxdemo, sys; print(runxdemo.__file__.startswith(sys.prefix))")
    assert r.stdout.strip() == "False", "the layer must be reached outside the mount"
    runx.wait_clean()


def test_no_cache_installs_into_the_mount(runx):
    r = runx.run("--tree", "fuse", "--no-cache", "--with", "runxdemo", "python", "-c",
                 "import runxdemo, sys; print(runxdemo.__file__.startswith(sys.prefix + '/'))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"
    runx.wait_clean()


def test_uv_pip_install_into_the_running_env(runx, wheelhouse):
    script = (
        'set -e\n'
        f'UV_LINK_MODE=copy "{uv_bin()}" pip install --quiet --python "$VIRTUAL_ENV/bin/python" '
        f'--find-links "{wheelhouse}" --no-index runxdemo\n'
        'runxdemo\n'
        'python -c "import runxdemo; print(runxdemo.__file__)"\n'
        'grep -c runx /proc/self/mountinfo >/dev/null\n')
    r = runx.run("--tree", "fuse", "--no-project", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    first, path = r.stdout.splitlines()[-2:]
    tree = first.split()[2]
    assert first == f"runxdemo 1.0 {tree}"
    assert path.startswith(tree + "/lib/") and path.endswith("/site-packages/runxdemo/__init__.py")
    runx.wait_clean()
    assert not os.path.exists(path)
    assert mounts(runx.runtime) == []


def test_pip_install_and_upgrade_with_a_second_wheel(runx, tmp_path):
    """Install, then replace (rename over files, remove the old version):
    what an upgrade does to the mount."""
    wh = str(tmp_path / "wh2")
    os.mkdir(wh)
    build_wheel(wh, "fusedemo", "1.0", files={"fusedemo/__init__.py": "V = 1\n"}, scripts={})
    build_wheel(wh, "fusedemo", "2.0", files={"fusedemo/__init__.py": "V = 2\n",
                                               "fusedemo/extra.py": "X = 1\n"}, scripts={})
    uv = uv_bin()
    script = (
        'set -e\n'
        f'export UV_LINK_MODE=copy\n'
        f'"{uv}" pip install --quiet --python "$VIRTUAL_ENV/bin/python" --find-links "{wh}" --no-index "fusedemo==1.0"\n'
        'python -c "import fusedemo; print(fusedemo.V)"\n'
        f'"{uv}" pip install --quiet --python "$VIRTUAL_ENV/bin/python" --find-links "{wh}" --no-index "fusedemo==2.0"\n'
        'python -c "import fusedemo.extra, fusedemo; print(fusedemo.V, fusedemo.extra.X)"\n'
        f'"{uv}" pip uninstall --quiet --python "$VIRTUAL_ENV/bin/python" fusedemo\n'
        'python -c "import importlib.util as u; print(u.find_spec(\'fusedemo\'))"\n')
    r = runx.run("--tree", "fuse", "--no-project", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1", "2 1", "None"]
    runx.wait_clean()


SEMANTICS = r"""
import ctypes, errno, mmap, os, shutil, stat, sys
os.chdir(sys.prefix)
os.umask(0o022)

def fails(code, fn, *a):
    try:
        fn(*a)
    except OSError as e:
        assert e.errno == code, (fn, a, errno.errorcode[e.errno])
    else:
        raise AssertionError(f"{fn.__name__}{a} did not fail")

root = os.stat(".")
assert root.st_uid == os.geteuid() and root.st_gid == os.getegid()
fd = os.open("f", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o666)
os.write(fd, b"hello world")
os.fsync(fd)
os.close(fd)
dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
os.fsync(dfd)
os.close(dfd)
st = os.stat("f")
assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_size == 11 and st.st_nlink == 1, st
fails(errno.EEXIST, os.open, "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
with open("f", "r+b") as f:
    f.seek(20)
    f.write(b"X")
assert open("f", "rb").read() == b"hello world" + bytes(9) + b"X"
os.truncate("f", 5)
assert open("f", "rb").read() == b"hello"
with open("f", "wb") as f:                       # O_TRUNC
    f.write(b"new")
with open("f", "ab") as f:                       # O_APPEND
    f.write(b"+app")
assert open("f", "rb").read() == b"new+app"

os.mkdir("d", 0o777)
assert stat.S_IMODE(os.stat("d").st_mode) == 0o755
n = os.stat(".").st_nlink
os.rename("f", "d/g")
assert os.listdir("d") == ["g"] and not os.path.exists("f")
open("h", "w").write("h")
os.replace("h", "d/g")
assert open("d/g").read() == "h"
os.link("d/g", "hl")
assert os.stat("hl").st_nlink == 2 and os.stat("hl").st_ino == os.stat("d/g").st_ino
os.unlink("hl")
assert os.stat("d/g").st_nlink == 1
os.symlink("d/g", "sl")
assert os.readlink("sl") == "d/g" and open("sl").read() == "h" and os.lstat("sl").st_size == 3
os.chmod("d/g", 0o600)
assert stat.S_IMODE(os.stat("d/g").st_mode) == 0o600
os.utime("d/g", ns=(1_000_000_000, 2_000_000_000))
st = os.stat("d/g")
assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000, 2_000_000_000)
fails(errno.ENOTEMPTY, os.rmdir, "d")
fails(errno.ENOTDIR, os.rmdir, "sl")
fails(errno.EISDIR, os.unlink, "d")
os.mkdir("e")
assert os.stat(".").st_nlink == n + 1
os.rename("e", "d/e")
assert os.stat(".").st_nlink == n and os.stat("d").st_nlink == 3
os.rename("d", "d2")
f = open("d2/g", "rb")
os.unlink("d2/g")
assert f.read() == b"h"                          # open after unlink
f.close()
os.rmdir("d2/e")
os.rmdir("d2")
os.unlink("sl")
os.mkfifo("fifo")
assert stat.S_ISFIFO(os.stat("fifo").st_mode)
os.unlink("fifo")
fails(errno.EPERM, os.mknod, "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
vfs = os.statvfs(".")
assert vfs.f_bsize == 4096 and vfs.f_bavail > 0 and vfs.f_namemax == 255
fails(errno.ENAMETOOLONG, open, "x" * 300, "w")

big = os.urandom(3_000_000)
open("big", "wb").write(big)
assert open("big", "rb").read() == big and os.stat("big").st_blocks * 512 >= len(big)
os.unlink("big")
with open("m", "w+b") as f:
    f.write(bytes(8192))
    f.flush()
    m = mmap.mmap(f.fileno(), 8192)
    m[0:5] = b"mmapx"
    m.flush()
    m.close()
assert open("m", "rb").read(5) == b"mmapx"
os.unlink("m")

libc = ctypes.CDLL(None, use_errno=True)
open("a", "w").write("A")
open("b", "w").write("B")
assert libc.renameat2(-100, b"a", -100, b"b", 2) == 0          # RENAME_EXCHANGE
assert (open("a").read(), open("b").read()) == ("B", "A")
assert libc.renameat2(-100, b"a", -100, b"b", 1) == -1          # RENAME_NOREPLACE
assert ctypes.get_errno() == errno.EEXIST
os.unlink("a")
os.unlink("b")

shutil.copytree("lib", "lib2", symlinks=True)
assert os.listdir("lib2") == os.listdir("lib")
shutil.rmtree("lib2")
many = [f"n{i:04d}" for i in range(600)]                      # readdir in several chunks
os.mkdir("many")
for x in many:
    open("many/" + x, "w").close()
assert sorted(os.listdir("many")) == many
shutil.rmtree("many")
assert sorted(os.listdir(".")) == ["bin", "lib", "lib64", "pyvenv.cfg"], os.listdir(".")
print("ok")
"""


def test_file_system_semantics(runx):
    r = runx.run("--tree", "fuse", "python", "-c", SEMANTICS)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n"
    runx.wait_clean()


PAUSED = ("import os, sys\n"
          "print(sys.prefix, flush=True)\n"
          "sys.stdin.readline()\n"
          "try:\n"
          "    print(open(sys.prefix + '/pyvenv.cfg').read().splitlines()[0], flush=True)\n"
          "except OSError as e:\n"
          "    print('gone', e.errno, flush=True)\n")


@pytest.mark.parametrize("cleanup", ["gc", "next run"])
def test_sigkilled_reaper_unmounts_and_leaves_no_bytes(runx, cleanup):
    p = runx.popen("--tree", "fuse", "python", "-c", PAUSED, stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    try:
        out = Lines(p.stdout)
        tree = out.next()
        assert mounts(tree)
        reaper = the_reaper(runx.runtime)
        # The watcher's socket sits below the /dev/fuse fd (see
        # fuse_tree._order_fds): at death the kernel then aborts the FUSE
        # connection before the watcher wakes, or it would not unmount.
        fds = {int(fd): os.readlink(f"/proc/{reaper}/fd/{fd}")
               for fd in os.listdir(f"/proc/{reaper}/fd")}
        fuse_fd = next(fd for fd, t in fds.items() if t == "/dev/fuse")
        watcher = next(c for c in _children(reaper) if comm(c) == "fusermount3")
        theirs = {os.readlink(f"/proc/{watcher}/fd/{fd}")
                  for fd in os.listdir(f"/proc/{watcher}/fd")}
        peers = {f"socket:[{unix_peer(int(t[8:-1]))}]" for t in theirs if t.startswith("socket:")}
        sock = next(fd for fd, t in fds.items() if t in peers)
        assert sock < fuse_fd, fds
        with open(f"/proc/{reaper}/fdinfo/{sock}") as f:
            flags = int(next(l for l in f if l.startswith("flags:")).split()[1], 8)
        assert flags & 0o2000000, "the watcher's socket must be close-on-exec"
        os.kill(reaper, signal.SIGKILL)
        # auto_unmount: fusermount3's watcher unmounts as the kernel closes
        # the reaper's /dev/fuse connection.
        wait_until(lambda: not mounts(runx.runtime), 1.0, "the mount to go after SIGKILL")
        tid = os.path.basename(tree)
        # Nothing ephemeral on disk: the empty mountpoint and the lock, no more.
        assert runtime_entries(runx.runtime) == sorted([tid, tid + ".lock"])
        assert os.listdir(tree) == []
        # The payload lost its environment: the documented trade-off.
        p.stdin.write(b"\n")
        p.stdin.flush()
        assert out.next().startswith("gone")
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if cleanup == "gc":
        r = runx.run("gc", local=False)
        assert r.returncode == 0, r.stderr
    else:
        r = runx.run("--tree", "fuse", "python", "-c", "pass")
        assert r.returncode == 0, r.stderr
    runx.wait_clean()


def unix_peer(inode: int) -> int:
    """The inode of the other end of a connected unix socket (ss, iproute2)."""
    out = subprocess.run(["ss", "-xaH"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[5] == str(inode):
            return int(f[7])
    pytest.fail(f"unix socket {inode} not found by ss")


def _children(pid: int) -> list:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def test_dead_mount_without_its_watcher_is_swept(runx):
    """SIGKILL the reaper *and* fusermount3's auto_unmount watcher (a cgroup
    kill does both): the mount stays, dead (ENOTCONN), its attributes
    possibly still cached. `runx gc` detaches it and removes the mountpoint."""
    p = runx.popen("--tree", "fuse", "python", "-c", PAUSED, stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    try:
        out = Lines(p.stdout)
        tree = out.next()
        reaper = the_reaper(runx.runtime)
        watchers = [c for c in _children(reaper) if comm(c) == "fusermount3"]
        assert len(watchers) == 1, "no auto_unmount watcher"
        os.kill(watchers[0], signal.SIGKILL)
        os.kill(reaper, signal.SIGKILL)
        wait_until(lambda: not alive(reaper) and not alive(watchers[0]), 10, "the kills")
        assert mounts(tree), "the mount went without its watcher?"
        p.stdin.write(b"\n")
        p.stdin.flush()
        out.next()                           # whatever it read (cached, or an error)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    r = runx.run("gc", local=False)
    assert r.returncode == 0, r.stderr
    assert f"removed {tree}" in r.stdout
    assert mounts(runx.runtime) == []
    runx.wait_clean()


def test_reaper_ignores_terminal_signals_while_serving(runx):
    p = runx.popen("--tree", "fuse", "python", "-c", PAUSED, stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    try:
        out = Lines(p.stdout)
        out.next()
        reaper = the_reaper(runx.runtime)
        with open(f"/proc/{reaper}/status") as f:
            ignored = int(next(l for l in f if l.startswith("SigIgn:")).split()[1], 16)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            assert ignored & (1 << (sig - 1)), f"reaper does not ignore {sig!r}"
            os.kill(reaper, sig)
        p.stdin.write(b"\n")
        p.stdin.flush()
        assert out.next().startswith("home = "), "the mount stopped answering"
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    runx.wait_clean()


HOLDER = r"""
import os, sys, time
flag, report = sys.argv[1], sys.argv[2]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.chdir("/")
        while not os.path.exists(flag):
            time.sleep(0.02)
        with open(report, "w") as f:
            f.write(open(sys.prefix + "/pyvenv.cfg").read())
        os._exit(0)
    os._exit(0)
os.wait()
print(sys.prefix, flush=True)
"""


def test_daemonized_lease_holder_keeps_the_mount(runx, tmp_path):
    flag, report = str(tmp_path / "flag"), str(tmp_path / "report")
    r = runx.run("--tree", "fuse", "python", "-c", HOLDER, flag, report, timeout=60)
    assert r.returncode == 0, r.stderr
    tree = r.stdout.strip()
    # The payload is gone; its daemonized grandchild (RUNX_ENV) holds the tree.
    reaper = the_reaper(runx.runtime)
    assert mounts(tree), "the mount went while a lease holder lives"
    assert alive(reaper)
    open(flag, "w").close()
    wait_until(lambda: os.path.exists(report) and os.path.getsize(report), 30,
               "the holder to read the tree")
    with open(report) as f:
        assert f"runx-tree = {tree}" in f.read()
    runx.wait_clean()
    assert mounts(runx.runtime) == []


@pytest.mark.parametrize("how", ["device", "fusermount3", "pyfuse3"])
def test_unavailable_fuse_is_a_clear_error(runx, tmp_path, how):
    env = dict(runx.env)
    if how == "device":
        env["RUNX_FUSE_DEVICE"] = str(tmp_path / "no-such-fuse")
        expect = "no-such-fuse does not exist"
    elif how == "fusermount3":
        bindir = tmp_path / "bin"
        bindir.mkdir()
        env["PATH"] = str(bindir)
        expect = "fusermount3 not found"
    else:
        # Found by the runner's check, unloadable in the reaper (as when
        # libfuse3.so is missing): the reaper's own failure path.
        fake = tmp_path / "fake" / "pyfuse3"
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text("raise ImportError('simulated: no libfuse3.so.3')\n")
        env["PYTHONPATH"] = str(fake.parent)
        expect = "cannot load pyfuse3 (simulated: no libfuse3.so.3)"
    r = runx.run("--tree", "fuse", "/bin/echo", "payload ran", env=env)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.startswith("runx: error: --tree fuse: "), r.stderr
    assert expect in r.stderr and "--tree dir" in r.stderr, r.stderr
    runx.wait_clean()
    assert mounts(runx.runtime) == []


def test_keep_is_refused(runx):
    r = runx.run("--tree", "fuse", "--keep", "--no-project", "true")
    assert r.returncode == 2
    assert "--keep needs --tree dir" in r.stderr
    assert runtime_entries(runx.runtime) == []


# --- the reaper's own event loop (runx_env.reaper.fuse_loop), in process ----


@pytest.mark.fast
def test_loop_waits_for_fds_threads_and_time():
    from runx_env.reaper import fuse_loop as loop

    r, w = os.pipe()
    try:
        async def main():
            assert not await loop.wait_fd(r, 0.01)          # nothing written: times out
            os.write(w, b"x")
            assert await loop.wait_fd(r, 5)
            assert await loop.in_thread(lambda a, b: a + b, 2, 3) == 5
            with pytest.raises(ZeroDivisionError):
                await loop.in_thread(lambda: 1 / 0)
            with pytest.raises(TimeoutError):
                await loop.in_thread(time.sleep, 1, timeout=0.01)
            t = time.monotonic()
            await loop.sleep(0.02)
            assert time.monotonic() - t >= 0.02
            return "done"

        assert loop.run(main) == "done"
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.fast
def test_loop_is_what_pyfuse3_needs_of_trio():
    """Lock hand-over in order, nursery join, notify_closing, a failing task
    ending the loop: the trio semantics pyfuse3's session loop relies on."""
    from runx_env.reaper import fuse_loop as loop

    order = []
    r, w = os.pipe()
    try:
        async def holder(lock, name):
            async with lock:
                order.append(name)
                await loop.sleep(0.001)

        async def reader():
            try:
                await loop.lowlevel.wait_readable(r)
            except loop.ClosedResourceError:
                order.append("closed")

        async def main():
            lock = loop.Lock()
            async with loop.open_nursery() as n:
                for name in "abc":
                    n.start_soon(holder, lock, name, name=name)
                n.start_soon(reader)
                deadline = time.monotonic() + 10   # the holders' turns, however loaded
                while len(order) < 3 and time.monotonic() < deadline:
                    await loop.sleep(0.001)
                assert loop.lowlevel.current_task().name == "main"
                loop.lowlevel.notify_closing(r)
            return order

        assert loop.run(main) == ["a", "b", "c", "closed"]

        async def fails():
            raise ValueError("boom")

        async def parent():
            async with loop.open_nursery() as n:
                n.start_soon(fails)
                await loop.sleep(5)

        t = time.monotonic()
        with pytest.raises(ValueError, match="boom"):
            loop.run(parent)
        assert time.monotonic() - t < 4, "a failed task must end the loop at once"
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.fast
def test_loop_load_stands_in_only_while_pyfuse3_imports(monkeypatch):
    """load() imports pyfuse3 with trio and importlib.metadata stood in for,
    and leaves sys.modules as it found it (a fake pyfuse3 records what it saw)."""
    import sys

    from runx_env.reaper import fuse_loop as loop

    seen = {}

    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name != "pyfuse3":
                return None
            import importlib.util

            class Loader:
                def create_module(self, spec):
                    return None

                def exec_module(self, module):
                    import trio
                    from importlib.metadata import PackageNotFoundError, version

                    seen["trio"] = trio
                    try:
                        version("pyfuse3")
                    except PackageNotFoundError:
                        seen["version"] = "unknown"

            return importlib.util.spec_from_loader(name, Loader())

    for name in ("pyfuse3", "trio", "importlib.metadata"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    mod = loop.load()
    assert seen == {"trio": loop, "version": "unknown"}
    assert mod.trio is loop
    assert "trio" not in sys.modules and "importlib.metadata" not in sys.modules


@contextlib.contextmanager
def _payload(runx, code: str):
    """A --tree fuse payload running ``code``, fed on stdin, read by line;
    killed if the test fails."""
    p = runx.popen("--tree", "fuse", "python", "-c", code, stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    try:
        yield p, Lines(p.stdout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _reaper_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CACHED = r"""
import os, sys, time
p = sys.prefix
print(p, flush=True)
sys.stdin.readline()                       # the test reads the reaper's CPU time here
before = (os.lstat(p + "/pyvenv.cfg"), sorted(os.listdir(p + "/bin")), open(p + "/pyvenv.cfg").read())
missing = p + "/later"
assert not os.path.exists(missing)          # a cached negative entry...
time.sleep(1.0)                             # idle: the reaper must not spin
print("idle", flush=True)
sys.stdin.readline()
assert (os.lstat(p + "/pyvenv.cfg"), sorted(os.listdir(p + "/bin")),
        open(p + "/pyvenv.cfg").read()) == before, "the tree changed by itself"
# ...and every cache the kernel keeps is updated by the operations that
# change the tree, all of which go through the mount: no invalidation needed.
with open(missing, "w") as f:
    f.write("one")
assert os.path.exists(missing) and open(missing).read() == "one"
st = os.lstat(missing)
with open(missing, "a") as f:
    f.write("+two")
assert os.lstat(missing).st_size == 7 and open(missing).read() == "one+two"
os.chmod(missing, 0o600)
assert os.lstat(missing).st_mode & 0o777 == 0o600
os.utime(missing, ns=(5, 6))
assert os.lstat(missing).st_mtime_ns == 6
assert "later" in os.listdir(p)
os.rename(missing, p + "/bin/later")
assert not os.path.exists(missing) and "later" in os.listdir(p + "/bin")
assert "later" not in os.listdir(p)
os.unlink(p + "/bin/later")
assert sorted(os.listdir(p + "/bin")) == before[1]
with open(p + "/pyvenv.cfg", "a") as f:
    f.write("x = 1\n")
assert open(p + "/pyvenv.cfg").read() == before[2] + "x = 1\n"
assert os.lstat(p + "/pyvenv.cfg").st_size == len(before[2]) + 6
print("ok", flush=True)
"""


def test_cached_metadata_stays_right_and_an_idle_reaper_sleeps(runx):
    """The kernel caches entries, negative entries, attributes and pages for
    300 s and the reaper polls /dev/fuse for a moment after each request
    (fuse_tree.SPIN): what the payload sees after it changed the tree is
    still right, nothing changes by itself, and an idle reaper uses no CPU."""
    with _payload(runx, CACHED) as (p, out):
        out.next()
        reaper = the_reaper(runx.runtime)
        cpu = _reaper_cpu(reaper)
        p.stdin.write(b"\n")
        p.stdin.flush()
        assert out.next() == "idle"
        # Over a second of idleness a spinning reaper would use a second.
        assert _reaper_cpu(reaper) - cpu < 0.3
        p.stdin.write(b"\n")
        p.stdin.flush()
        assert out.next() == "ok", p.stderr.read().decode()
        assert p.wait(timeout=30) == 0
    runx.wait_clean()


def test_the_reaper_serves_without_trio(runx, tmp_path):
    log = tmp_path / "reaper.log"
    r = runx.run("--tree", "fuse", "python", "-c", "import sys; print(sys.prefix)")
    assert r.returncode == 0, r.stderr
    runx.wait_clean()
    assert "fuse: pyfuse3 loaded (without trio)" in log.read_text()
