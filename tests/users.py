"""A real second user for a test (useradd; removed after), a place it can
reach (/tmp, not pytest's 0700 base directory), and a ``runx`` it can run
(the test venv's Python lives under /root, 0700: a launcher on the system
Python that imports this checkout's runx_env instead)."""

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import runx_env

SYSTEM_PYTHON = "/usr/bin/python3"


def uid_processes(uid: int) -> list:
    out = []
    for n in os.listdir("/proc"):
        if n.isdigit():
            try:
                if os.stat(f"/proc/{n}").st_uid == uid:
                    with open(f"/proc/{n}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                            out.append(int(n))
            except OSError:
                pass
    return out


@contextlib.contextmanager
def second_user():
    """A system user whose home is /nonexistent (as systemd's User= and the
    distributions' daemons have): its pwd entry. Removed after the test,
    once none of its processes (reapers) is left."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs root, useradd and /usr/bin/python3 to make a second user")
    name = f"runx{os.getpid() % 100000}{os.urandom(2).hex()}"
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        uid = pwd.getpwnam(name).pw_uid
        deadline = time.monotonic() + 30
        while uid_processes(uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = uid_processes(uid)
        subprocess.run(["userdel", name], capture_output=True)
        assert not left, f"processes of {name} left behind: {left}"


@contextlib.contextmanager
def shared_dir():
    """A directory in /tmp every user can enter (0755), removed after. Open
    it before ``second_user`` (``with shared_dir() as d, second_user() as
    pw``), so that it is removed after that user's last process (a reaper
    still sweeping, a layer compiler) has ended: one removed before wrote
    its cache's stamp and byte-code directory into it again."""
    d = tempfile.mkdtemp(prefix="runx-user-")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        subprocess.run(["chmod", "-R", "u+w", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def launcher(directory: str) -> str:
    """A ``runx`` any user can run: the system Python importing this
    checkout's runx_env (its strict editable tree of links)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(runx_env.__file__)))
    uv = os.path.join(os.path.dirname(sys.executable), "uv")
    path = os.path.join(directory, "runx")
    with open(path, "w") as f:
        f.write(f"#!{SYSTEM_PYTHON} -I\nimport os, sys\nsys.path.insert(0, {root!r})\n"
                f"os.environ.setdefault('RUNX_UV', {uv!r})\n"
                "from runx_env.runner.cli import main\nsys.exit(main())\n")
    os.chmod(path, 0o755)
    return path


def clean_env(**extra) -> dict:
    """The test's environment without runx's and the XDG/systemd places."""
    drop = ("RUNX_ENV", "VIRTUAL_ENV", "RUNX_TREE", "RUNX_CACHE_DIR", "RUNX_RUNTIME_DIR",
            "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "UV_CACHE_DIR", "RUNTIME_DIRECTORY",
            "CACHE_DIRECTORY", "STATE_DIRECTORY", "NOTIFY_SOCKET", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(UV_PYTHON_DOWNLOADS="never", **extra)
    return env


def run_as(pw, argv: list, env: dict, **kw) -> subprocess.CompletedProcess:
    """``argv`` as the user ``pw`` (setuid in the child), in /."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(argv, env=env, user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                          cwd="/", **kw)
