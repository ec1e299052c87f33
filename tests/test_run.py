"""One run, end to end: the payload is the process the caller
started, the tree exists while it runs and goes after, errors leave nothing."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import RUNX, alive, one_error_line, reapers, wait_until

PY = "import json, os, sys; "


def children_of(pid: int) -> list:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def start_sleeper(runx, seconds=30, *extra):
    """A payload that reports its pid/ppid/tree then sleeps; returns (proc, info)."""
    code = (PY + "print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), "
            "'tree': os.environ['RUNX_ENV'], 'prefix': sys.prefix, "
            "'venv': os.environ['VIRTUAL_ENV'], 'path0': os.environ['PATH'].split(':')[0]}), "
            f"flush=True); import time; time.sleep({seconds})")
    p = runx.popen(*extra, "python", "-c", code, stdout=subprocess.PIPE, text=True)
    info = json.loads(p.stdout.readline())
    return p, info


def test_payload_is_the_process_the_caller_started(runx):
    p, info = start_sleeper(runx)
    try:
        assert info["pid"] == p.pid, "payload must keep the PID the caller got from fork"
        assert info["ppid"] == os.getpid(), "payload's parent must be the caller"
        assert children_of(os.getpid()) == [p.pid], "the caller must have exactly one child"
        assert children_of(p.pid) == [], "the payload must start with no children (double fork)"
        # Named once it has loaded its code and ignores stray signals.
        wait_until(lambda: reapers(runx.runtime), 10, "a reaper watching the run")
        for r in reapers(runx.runtime):
            with open(f"/proc/{r}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            assert ppid != p.pid and ppid != os.getpid(), "reaper must not be a child of payload or caller"
    finally:
        p.kill()
        p.wait()
    runx.wait_clean()


def test_environment_variables_and_prefix(runx):
    p, info = start_sleeper(runx, 0)
    p.wait()
    tree = info["tree"]
    assert os.path.isabs(tree) and tree.startswith(runx.runtime + "/")
    assert info["venv"] == tree
    assert info["prefix"] == tree, "python in the environment has the tree as sys.prefix"
    assert info["path0"] == os.path.join(tree, "bin")
    runx.wait_clean()


@pytest.mark.parametrize("how, expect", [
    ("exit0", 0), ("exit3", 3), ("sigterm", -signal.SIGTERM), ("sigkill", -signal.SIGKILL),
    ("raise", 1), ("segv", -signal.SIGSEGV),
])
def test_tree_lives_while_payload_runs_and_goes_after(runx, how, expect):
    args = {"exit0": ["exit", "0"], "exit3": ["exit", "3"], "raise": ["raise"],
            "sigterm": ["kill", "SIGTERM"], "segv": ["kill", "SIGSEGV"],
            "sigkill": ["sleep", "60"]}[how]
    code = (PY + "tree = os.environ['RUNX_ENV']; assert os.path.isdir(tree + '/bin'); "
            "print(tree, flush=True); import runxdemo; sys.argv = ['runxdemo'] + sys.argv[1:]; "
            "sys.exit(runxdemo.main())")
    p = runx.popen("--with", "runxdemo", "python", "-c", code, *args,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree = p.stdout.readline().strip()
    assert os.path.isdir(tree), "the tree must exist while the payload runs"
    if how == "sigkill":
        wait_until(lambda: "ready" in p.stdout.readline(), 10, "payload to be ready")
        os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == expect, p.stderr.read()
    wait_until(lambda: not os.path.exists(tree), 10, f"tree {tree} to be removed after {how}")
    runx.wait_clean()


def test_console_script_found_by_name(runx):
    r = runx.run("--with", "runxdemo", "runxdemo")
    assert r.returncode == 0, r.stderr
    name, version, prefix = r.stdout.split()
    assert (name, version) == ("runxdemo", "1.0")
    assert prefix.startswith(runx.runtime + "/"), "the script must run on the tree's interpreter"
    runx.wait_clean()


def test_self_signal_death_is_reported_as_signal(runx):
    for sig in (signal.SIGTERM, signal.SIGSEGV):
        r = runx.run("python", "-c", f"import os; os.kill(os.getpid(), {int(sig)})")
        assert r.returncode == -sig, f"expected death by {sig.name}, got {r.returncode}"
    runx.wait_clean()


def test_capture_output_returns_when_payload_exits(runx):
    """The reaper holds none of the caller's pipes: a payload that exits while
    the tree is still held by a lease holder must not keep the caller waiting."""
    code = ("import os, sys, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid(); os.closerange(0, 3)\n"
            "    time.sleep(3); os._exit(0)\n"
            "print('done')\n")
    t0 = time.monotonic()
    r = runx.run("python", "-c", code, timeout=60)
    elapsed = time.monotonic() - t0
    assert r.stdout == "done\n" and r.returncode == 0
    assert elapsed < 2.5, "capture_output waited for something other than the payload"
    runx.wait_clean()


def test_pipe_to_head_ends_promptly(runx):
    """SIGPIPE is back to SIG_DFL: `runx yes | head -1` ends with yes dying of
    SIGPIPE, quietly. (Had runx left Python's SIG_IGN in place, yes would see
    EPIPE and complain; a Python payload ignores SIGPIPE on its own, as it
    would if started directly.)"""
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {RUNX} --no-project yes | head -1"], env=runx.env,
                       capture_output=True, text=True, timeout=60)
    assert r.stdout == "y\n"
    assert r.returncode == 128 + signal.SIGPIPE, f"yes must die of SIGPIPE: {r.stderr}"
    assert r.stderr == ""
    runx.wait_clean()


def test_caller_fd3_reaches_payload_and_nothing_else_leaks(runx):
    rd, wr = os.pipe()
    st = os.fstat(wr)
    code = (PY + "st = os.fstat(3); print(json.dumps({'ino': st.st_ino, 'dev': st.st_dev, "
            "'fds': sorted(int(x) for x in os.listdir('/proc/self/fd'))}))")
    # The caller's fd 3 (as socket activation passes it): the shell moves our
    # pipe to 3 and execs runx, so runx starts with exactly 0, 1, 2 and 3.
    trampoline = f'exec 3>&{wr} {wr}>&-; exec "$0" "$@"'
    try:
        r = subprocess.run(["bash", "-c", trampoline, *runx.argv("python", "-c", code)],
                           pass_fds=(wr,), env=runx.env, capture_output=True, text=True,
                           timeout=60)
    finally:
        os.close(wr)
        os.close(rd)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["ino"], info["dev"]) == (st.st_ino, st.st_dev), "fd 3 must be the caller's object"
    # 0-3, plus the one fd listdir itself had open while listing.
    assert info["fds"][:4] == [0, 1, 2, 3]
    assert len(info["fds"]) == 5, f"unexpected fds in the payload: {info['fds']}"
    runx.wait_clean()


def test_reaper_is_detached_and_holds_nothing(runx):
    p, info = start_sleeper(runx)
    try:
        (r,) = wait_until(lambda: reapers(runx.runtime), 10, "the reaper")
        with open(f"/proc/{r}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        sid, tty = int(fields[3]), int(fields[4])
        assert sid != os.getsid(0) and sid != os.getsid(p.pid), "reaper must have its own session"
        assert tty == 0, "reaper must have no controlling terminal"
        assert os.readlink(f"/proc/{r}/cwd") == "/"
        targets = {int(fd): os.readlink(f"/proc/{r}/fd/{fd}") for fd in os.listdir(f"/proc/{r}/fd")}
        assert all(targets[fd] == "/dev/null" for fd in (0, 1, 2)), targets
        others = {fd: t for fd, t in targets.items() if fd > 2}
        kinds = sorted("lock" if t.endswith(".lock") else "pidfd" if "pidfd" in t else t
                       for t in others.values())
        assert kinds == ["lock", "pidfd"], f"reaper holds unexpected fds: {others}"
        with open(f"/proc/{r}/status") as f:
            status = dict(line.split(":", 1) for line in f)
        ignored = int(status["SigIgn"].strip(), 16)
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGTSTP):
            assert ignored & (1 << (sig - 1)), f"reaper must ignore {sig.name}"
        os.kill(r, signal.SIGHUP)
        os.kill(r, signal.SIGINT)
        assert alive(r), "terminal signals must not kill the reaper"
    finally:
        p.terminate()
        p.wait()
    runx.wait_clean()


def test_arguments_after_command_are_untouched(runx):
    r = runx.run("python", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))",
                 "--with", "x", "-v", "--", "--help")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["--with", "x", "-v", "--", "--help"]
    r = runx.run("--", "python", "-c", "print('dashdash')")
    assert r.stdout == "dashdash\n"
    runx.wait_clean()


def test_with_requirements_file(runx, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# a comment\nrunxdemo==1.0\n")
    r = runx.run("--with-requirements", str(req), "runxdemo")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("runxdemo 1.0")
    runx.wait_clean()


def test_python_option_takes_a_path(runx):
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    r = runx.run("--python", base, "python", "-c",
                 "import os, sys; print(os.path.realpath(sys.executable))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == base
    runx.wait_clean()


# --- errors: one line, a documented code, nothing left -----------------------

@pytest.mark.parametrize("args, code, words", [
    ([], 2, "no command"),
    (["--with"], 2, "needs a value"),
    (["--bogus", "python"], 2, "unknown option"),
    (["--tree", "nfs", "python"], 2, "--tree"),
    (["--no-project", "no-such-command-xyz"], 127, "not found"),
    (["./definitely/not/here"], 127, "no such file"),
    (["--python", "/nonexistent/python3", "python"], 1, "--python"),
    (["--python", "no-such-python-9", "python"], 1, "--python"),
    (["--with-requirements", "/nonexistent/req.txt", "python"], 2, "requirements file"),
])
def test_usage_errors(runx, args, code, words):
    r = runx.run(*args)
    assert r.returncode == code, r.stderr
    assert words in one_error_line(r.stderr, alone=False)
    assert r.stdout == ""
    runx.wait_clean()


def test_not_executable_is_126(runx, tmp_path):
    f = tmp_path / "script.sh"
    f.write_text("#!/bin/sh\necho hi\n")
    f.chmod(0o644)
    r = runx.run(str(f))
    assert r.returncode == 126
    assert "permission denied" in one_error_line(r.stderr, alone=False)
    r = runx.run(str(tmp_path))
    assert r.returncode == 126
    runx.wait_clean()


def test_unresolvable_requirement_explains_and_leaves_nothing(runx):
    r = runx.run("--with", "runxdemo==9.9", "python", "-c", "pass")
    assert r.returncode == 1
    assert "runxdemo" in r.stderr and "9.9" in r.stderr, "uv's explanation must be shown"
    one_error_line(r.stderr, alone=False)
    layers = os.path.join(runx.cache, "layers")
    leftovers = [n for k in os.listdir(layers) for n in os.listdir(os.path.join(layers, k))
                 if n.startswith(".tmp-")]
    assert leftovers == [], "a failed build must leave no partial layer"
    runx.wait_clean()


def test_malformed_requirement(runx):
    r = runx.run("--with", "not a valid requirement!!", "python", "-c", "pass")
    assert r.returncode == 1
    one_error_line(r.stderr, alone=False)
    runx.wait_clean()


def test_real_pypi_package(runx):
    """The README's main job, against the real index."""
    r = runx.run("--with", "cowsay==6.1", "cowsay", "-t", "hello", local=False)
    assert r.returncode == 0, r.stderr
    assert "hello" in r.stdout
    runx.wait_clean()
