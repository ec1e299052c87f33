"""What runx says, and where: uv's progress on a terminal and one summary
line elsewhere, nothing with -q or on a warm run; -v explains each step
(and only -v pays for learning the reaper's pid). Every message goes through
runx_env.errors.say, so a closed stderr (``2>&-``) never fails a run."""

import os
import pty
import re
import shutil
import subprocess

import pytest

from conftest import RUNX, Runx, comm, wait_until

# --- progress and verbosity --------------------------------------------------

def run_on_pty(argv, env, timeout=120) -> tuple:
    """Run with stdin/stdout/stderr on a new pty; (returncode, output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                         close_fds=True, start_new_session=True)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:       # EIO: the other side is closed
            break
        if not data:
            break
        out += data
    os.close(master)
    return p.wait(timeout=timeout), out.decode(errors="replace")


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def shown_lines(out: str) -> list:
    """What stays on the terminal: each line's last CR-separated frame,
    without colours, timings as N."""
    lines = []
    for line in out.split("\n"):
        frames = [f for f in (_ANSI.sub("", f).strip() for f in line.split("\r")) if f]
        if frames:
            lines.append(re.sub(r"in [0-9.]+m?s\b", "in N", frames[-1]))
    return lines


def test_first_build_on_a_terminal_shows_what_uv_run_shows(runx, tmp_path):
    """Issue 22.5: on a terminal a first build shows uv's progress and then
    the one line `uv run --with` leaves (`Installed 1 package in 4ms`), run
    side by side with uv on a pty each; never runx's internal .tmp- path or
    uv pip's per-package lines. A failure: uv's full explanation, then
    runx's line, still without the path."""
    code = "print('payload-ran')"
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "c1")
    rc, out = run_on_pty(runx.argv("--with", "runxdemo", "python", "-c", code), runx.env)
    assert rc == 0, out
    uv = os.path.join(os.path.dirname(RUNX), "uv")
    uv_env = dict(runx.env, UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    urc, uv_out = run_on_pty([uv, "run", "--no-project", "--find-links", runx.wheelhouse,
                              "--no-index", "--with", "runxdemo", "python", "-c", code], uv_env)
    assert urc == 0, uv_out
    assert shown_lines(out) == shown_lines(uv_out) == ["Installed 1 package in N",
                                                       "payload-ran"], (out, uv_out)
    assert "Resolving dependencies" in out or "Installing wheels" in out, "progress was drawn"
    assert ".tmp-" not in out and "environment at" not in out, out
    rc, out = run_on_pty(runx.argv("--with", "nosuchpkg", "python", "-c", code), runx.env)
    assert rc == 1, out
    lines = shown_lines(out)
    assert lines[0] == "error: No solution found when resolving dependencies", out
    assert lines[1].startswith("cause: Because nosuchpkg was not found"), out
    assert lines[-1].startswith("runx: error: installing the requirements failed"), out
    assert ".tmp-" not in out and "environment at" not in out, out
    # Off a terminal too, the explanation comes without the path.
    r = runx.run("--with", "nosuchpkg", "python", "-c", code)
    assert r.returncode == 1 and "No solution found" in r.stderr
    assert ".tmp-" not in r.stderr and "environment at" not in r.stderr, r.stderr
    runx.wait_clean()


def test_cold_build_progress_only_on_a_terminal(runx, tmp_path):
    code = "print('payload-ran')"
    # On a terminal: uv's progress.
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "c1")
    rc, out = run_on_pty(runx.argv("--with", "runxdemo", "python", "-c", code), runx.env)
    assert rc == 0, out
    assert shown_lines(out) == ["Installed 1 package in N", "payload-ran"], out
    # -q on a terminal: nothing but the payload.
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "c2")
    rc, out = run_on_pty(runx.argv("-q", "--with", "runxdemo", "python", "-c", code), runx.env)
    assert rc == 0
    assert out.strip() == "payload-ran"
    # stderr not a terminal: one summary line (tests/test_options.py checks it
    # in detail); with -q nothing; warm: nothing.
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "c3")
    r = runx.run("--with", "runxdemo", "python", "-c", code)
    assert r.returncode == 0 and r.stdout == "payload-ran\n"
    assert re.fullmatch(r"runx: installed 1 package in [0-9.]+s \(runxdemo==1.0\)\n", r.stderr)
    r = runx.run("--with", "runxdemo", "python", "-c", code)
    assert r.returncode == 0 and r.stderr == ""
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "c4")
    r = runx.run("-q", "--with", "runxdemo", "python", "-c", code)
    assert r.returncode == 0 and r.stderr == ""
    runx.wait_clean()


def test_verbose_explains_each_step(runx, tmp_path):
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "cache")
    code = "import os, sys; print(os.getpid(), flush=True); sys.stdin.readline()"
    p = runx.popen("-v", "--with", "runxdemo", "python", "-c", code, stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = int(p.stdout.readline())
    assert pid == p.pid
    lines = []
    while not lines or not lines[-1].startswith("runx: exec"):
        lines.append(p.stderr.readline())
        assert lines[-1], "".join(lines)
    text = "".join(lines)
    assert "runx: interpreter:" in text
    assert "layer miss" in text
    tree = re.search(r"runx: tree: (\S+) ", text).group(1)
    assert tree.startswith(runx.runtime + "/")
    m = re.search(r"runx: reaper: pid (\d+) .*waits for pid (\d+) .*via (\w+)", text)
    assert m, text
    reaper, watched = int(m.group(1)), int(m.group(2))
    assert watched == p.pid
    # It names itself once it has loaded its code and ignores stray signals.
    wait_until(lambda: comm(reaper) == "runx-reaper", 30, "the pid -v printed to be the reaper")
    p.communicate("\n", timeout=30)
    r = runx.run("-v", "--with", "runxdemo", "python", "-c", "pass")
    assert "layer hit" in r.stderr
    runx.wait_clean()


def test_reaper_pid_pipe_only_with_verbose(runx, tmp_path):
    """-v learns the reaper's pid over a pipe; a plain run makes no pipe at all
    (Linux pidfd: no handshake either)."""
    from runx_env.reaper import watch

    if not shutil.which("strace"):
        pytest.skip("strace not installed")
    if watch.NEEDS_ARMING:
        pytest.skip("this platform's watcher needs a handshake pipe anyway")

    def pipes(*args) -> int:
        log = tmp_path / "strace.log"
        r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=pipe,pipe2", "-o", str(log),
                            *runx.argv(*args, "--with", "runxdemo", "python", "-c", "pass")],
                           env=runx.env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0 and "ptrace" in r.stderr:
            pytest.skip(f"strace cannot trace here: {r.stderr.strip()}")
        assert r.returncode == 0, r.stderr
        return sum(1 for ln in log.read_text().splitlines() if re.search(r"\bpipe2?\(", ln))
    pipes()                                    # warm the layer
    assert pipes() == 0
    assert pipes("-v") == 1
    runx.wait_clean()


# --- a closed stderr -------------------------------------------------------
# Every runx message goes through runx_env.errors.say, which tolerates a caller
# that closed fd 2 (`runx ... 2>&-`, sys.stderr is None): a message must never
# be what makes a run fail.

def _closed_stderr(c: Runx, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", *c.argv(*args)],
                          env=c.env, capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.parametrize("verbosity", [[], ["-v"], ["--keep"]])
def test_cold_build_with_stderr_closed(cold, verbosity):
    """Cold build (the install summary), -v's log and --keep's path, all
    written to a closed stderr: the command still runs."""
    c = cold
    r = _closed_stderr(c, *verbosity, "--with", "runxdemo", "python", "-c",
                       "import runxdemo; print(runxdemo.VERSION)")
    assert (r.returncode, r.stdout) == (0, "1.0\n"), (r.returncode, r.stdout, r.stderr)
    if verbosity == ["--keep"]:
        assert subprocess.run([RUNX, "gc", "--kept"], env=c.env,
                              capture_output=True).returncode == 0
    c.wait_clean()


def test_error_with_stderr_closed_keeps_its_exit_code(runx):
    r = _closed_stderr(runx, "--no-project", "no-such-command-here")
    assert r.returncode == 127, (r.returncode, r.stdout, r.stderr)
    r = _closed_stderr(runx, "--no-such-option", "python")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
