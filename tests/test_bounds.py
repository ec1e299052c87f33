"""Issue 20.6: every retry loop and lock wait of runx has a bound and ends
in one clear line. RUNX_CACHE_DIR=/proc (as root) passed the trust check,
then the key lock's mkdir kept failing and runx spun at 100 % CPU for ever;
a lock held by a stuck process (a stopped build or prune) hung every run of
that environment; a config file that never ends was read for ever."""

import fcntl
import os
import subprocess
import time

import pytest

from conftest import Runx

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="/proc passes the trust check as root only")


def one_error_line(r: subprocess.CompletedProcess, code: int, starts: str) -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()[-1:]
    assert line.startswith("runx: error: " + starts), r.stderr
    return line


@ROOT
def test_cache_dir_proc_fails_in_one_line(runx):
    proc = Runx(runx.runtime, "/proc", runx.wheelhouse)
    t0 = time.monotonic()
    r = proc.run("--with", "runxdemo", "python", "-c", "pass", timeout=60)
    line = one_error_line(r, 1, "building the environment failed: cannot make and lock /proc/")
    assert "RUNX_CACHE_DIR" in line
    assert time.monotonic() - t0 < 30
    for args in (["gc"], ["ls"], ["cache", "prune"], ["cache"]):
        r = proc.run(*args, local=False, timeout=60)
        assert r.returncode in (0, 1) and "Traceback" not in r.stderr, (args, r.stderr)


def _built(runx, tmp_path) -> tuple:
    """A cache of its own with runxdemo's layer built: (runx, key dir, build dir)."""
    cold = Runx(runx.runtime, str(tmp_path / "cache"), runx.wheelhouse)
    assert cold.run("--with", "runxdemo", "python", "-c", "pass").returncode == 0
    layers = os.path.join(cold.cache, "layers")
    (key,) = [k for k in os.listdir(layers) if not k.startswith(".")]
    kdir = os.path.join(layers, key)
    return cold, kdir, os.path.join(kdir, os.readlink(os.path.join(kdir, "current")))


def _held(path: str, how: int) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    fcntl.flock(fd, how)
    return fd


def test_a_stuck_builder_times_out_as_uv_does(runx, tmp_path):
    """The key's lock held by a builder that never ends (stopped, say):
    a rebuild waits UV_LOCK_TIMEOUT (uv's variable and default, 5 min),
    then one line, exit 1, nothing left behind."""
    cold, kdir, _ = _built(runx, tmp_path)
    cold.env["UV_LOCK_TIMEOUT"] = "1"
    fd = _held(os.path.join(kdir, "lock"), fcntl.LOCK_EX)
    try:
        r = cold.run("--refresh", "--with", "runxdemo", "python", "-c", "pass", timeout=60)
    finally:
        os.close(fd)
    line = one_error_line(r, 1, "timed out after 1 s waiting for the lock of the environment "
                                "being built")
    assert "UV_LOCK_TIMEOUT" in line
    assert not [n for n in os.listdir(kdir) if n.startswith(".tmp-")]
    cold.wait_clean()


def test_a_stuck_maintenance_lock_times_out_on_the_warm_path(runx, tmp_path):
    """A build directory locked exclusively (a prune stopped half-way): a
    warm run waits for it at most UV_LOCK_TIMEOUT, then says so."""
    cold, _, build = _built(runx, tmp_path)
    cold.env["UV_LOCK_TIMEOUT"] = "1"
    fd = _held(build, fcntl.LOCK_EX)
    try:
        r = cold.run("--with", "runxdemo", "python", "-c", "pass", timeout=60)
    finally:
        os.close(fd)
    one_error_line(r, 1, "timed out after 1 s waiting for the lock of the cached environment")
    assert cold.run("--with", "runxdemo", "python", "-c", "pass").returncode == 0
    cold.wait_clean()


def test_a_config_file_that_never_ends(runx, tmp_path):
    """uv.toml -> /dev/zero: refused once past 16 MiB, not read for ever."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "uv.toml").symlink_to("/dev/zero")
    r = runx.run("--with", "runxdemo", "python", "-c", "pass", cwd=str(proj), timeout=60)
    one_error_line(r, 2, f"{proj}/uv.toml is larger than 16 MiB")
