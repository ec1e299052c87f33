"""Failures that used to be internal errors (issue 10, defect 9): each is
exactly one 'runx: error: WHAT (HINT)' line, a documented exit code, and
nothing left behind."""

import os
import resource
import subprocess

import pytest

from conftest import RUNX, Runx, live_run, one_error_line, runtime_entries, wait_until

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, other uids)")


def one_line(r, code: int, *words) -> str:
    """Exit ``code`` and exactly one 'runx: error: WHAT (HINT)' line."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return one_error_line(r.stderr, *words, hint=True)


@pytest.fixture
def ro_cache(runx, tmp_path):
    """A cache on a file system mounted read-only, with a built layer in it."""
    d = str(tmp_path / "ro-cache")
    os.mkdir(d)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", d], check=True)
    try:
        writer = Runx(runx.runtime, d, runx.wheelhouse)
        assert writer.run("--with", "runxdemo", "true").returncode == 0
        writer.wait_clean()
        # The layer's finisher (runx-compile) writes into it for a while yet:
        # the remount is refused (EBUSY) until it is done.
        wait_until(lambda: subprocess.run(["mount", "-o", "remount,ro", d],
                                          capture_output=True).returncode == 0,
                   60, "the cache to remount read-only")
        yield d
    finally:
        subprocess.run(["umount", "-l", d], check=True)


@root_only
@pytest.mark.parametrize("args, code, words", [
    (["python", "-c", "pass"], 1, ["cannot create", "runs", "Read-only file system"]),
    (["--with", "runxextra", "true"], 1, ["building the environment failed",
                                          "Read-only file system"]),
    (["cache", "prune", "--older-than", "0"], 1, ["cannot change the cache",
                                                  "Read-only file system"]),
    (["cache", "clean", "--force"], 1, ["cannot change the cache", "Read-only file system"]),
], ids=["run", "build", "prune", "clean"])
def test_read_only_cache(runx, ro_cache, wheelhouse, args, code, words):
    c = Runx(runx.runtime, ro_cache, wheelhouse)
    c.env.pop("RUNX_RUNTIME_DIR")           # the runtime dir inside the cache
    c.env.pop("XDG_RUNTIME_DIR", None)
    if args[0] == "--with":
        from conftest import build_wheel

        build_wheel(wheelhouse, "runxextra")
    r = c.run(*args, local=args[0] not in ("cache", "gc", "ls"))
    one_line(r, code, *words)


@root_only
def test_read_only_cache_still_serves_warm_runs_and_listing(runx, ro_cache, wheelhouse):
    c = Runx(runx.runtime, ro_cache, wheelhouse)      # runtime dir writable, elsewhere
    r = c.run("--with", "runxdemo", "python", "-c", "import runxdemo")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    c.wait_clean()
    for args in (["gc"], ["ls"]):
        r = c.run(*args, local=False)
        assert r.returncode == 0 and r.stderr == "", r.stderr


@root_only
def test_process_limit_at_the_first_fork(runx, tmp_path):
    """RLIMIT_NPROC of 1 for a user of its own (root is exempt from it), who
    keeps read access to runx's interpreter under /root through ambient
    DAC capabilities (they do not exempt it from RLIMIT_NPROC): runx itself
    starts, its first fork fails."""
    uid = 54321
    for d in ("run", "cache"):
        os.mkdir(tmp_path / d, 0o700)
        os.chown(tmp_path / d, uid, uid)
    env = dict(runx.env, RUNX_RUNTIME_DIR=str(tmp_path / "run"),
               RUNX_CACHE_DIR=str(tmp_path / "cache"))
    caps = "+dac_override,+dac_read_search"
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                        f"--inh-caps={caps}", f"--ambient-caps={caps}", "--",
                        "prlimit", "--nproc=1:1", "--", RUNX, "python", "-c", "pass"],
                       env=env, capture_output=True, text=True, timeout=60)
    one_line(r, 1, "cannot start the reaper", "ulimit -u")
    assert os.listdir(tmp_path / "run") == []


@pytest.mark.parametrize("n", [5, 6, 8, 16, 31, 32, 63, 64])
def test_tiny_open_file_limit(runx, tmp_path, n):
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))

    from fault_scenarios import partial_layers

    assert runx.run("--with", "runxdemo", "true").returncode == 0    # the warm layer
    runx.wait_clean()
    for cold in (True, False):      # a build, then a warm run
        c = Runx(runx.runtime, str(tmp_path / "cache") if cold else runx.cache,
                 runx.wheelhouse)
        r = c.run("--with", "runxdemo", "python", "-c", "pass", preexec_fn=limit)
        if n < 32 or (cold and n < 64):
            line = one_line(r, 1)
            assert "too many open files" in line.lower() or "open-file limit" in line, line
        else:
            # A cold build not on a terminal says what it installed, on one line.
            assert r.returncode == 0 and all(
                ln.startswith("runx: installed ") for ln in r.stderr.splitlines()), r.stderr
        runx.wait_clean()
        assert partial_layers(c.cache) == []


def test_runtime_dir_is_a_file(runx, tmp_path):
    f = tmp_path / "not-a-dir"
    f.write_text("")
    runx.env.pop("RUNX_RUNTIME_DIR")
    runx.env["XDG_RUNTIME_DIR"] = str(f)
    for args in (["python", "-c", "pass"], ["gc"], ["ls"]):
        r = runx.run(*args, local=False)
        one_line(r, 1, f"cannot use {f}/runx: Not a directory")


@pytest.fixture
def fifo(tmp_path):
    p = str(tmp_path / "fifo")
    os.mkfifo(p)
    return p


@pytest.mark.parametrize("option", ["--env-file", "--with-requirements"])
@pytest.mark.parametrize("source", ["/dev/zero", "fifo", "fifo.py", "dir"])
def test_inputs_that_are_not_regular_files(runx, tmp_path, option, source):
    if source == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    elif source == "fifo.py":
        path = str(tmp_path / "reqs.py")
        os.mkfifo(path)
    elif source == "dir":
        path = str(tmp_path)
    else:
        path = source
    r = runx.run(option, path, "python", "-c", "pass", timeout=30)
    one_line(r, 2, path, "not a regular file")
    assert runtime_entries(runx.runtime) == []


def test_inputs_larger_than_16_mib(runx, tmp_path):
    big = tmp_path / "big.env"
    with open(big, "wb") as f:
        f.truncate((16 << 20) + 1)
    r = runx.run("--env-file", str(big), "python", "-c", "pass")
    one_line(r, 2, "larger than 16 MiB")


@pytest.mark.parametrize("args, code", [
    (["--no-project", "no\nsuch"], 127),
    (["-p", "py\nthon", "python"], 1),
    (["--env-file", "x\ny.env", "python"], 2),
])
def test_newlines_stay_on_one_line(runx, args, code):
    r = runx.run(*args, local=False)
    line = one_line(r, code)
    assert "\\n" in line, line


def test_cache_clean_force_says_nothing_removed(runx, tmp_path):
    c = Runx(runx.runtime, str(tmp_path / "empty-cache"), runx.wheelhouse)
    r = c.run("cache", "clean", "--force", local=False)
    assert r.returncode == 0
    assert r.stdout == "nothing to remove\n", r.stdout


def test_cache_clean_counts_live_trees_not_layers(cold):
    c = cold
    with live_run(c, "--with", "runxdemo"), live_run(c, "--with", "runxdemo"):
        r = c.run("cache", "clean", local=False)
        one_line(r, 2, "2 live environments use the cache")
        r = c.run("cache", "clean", "--force", local=False)
        assert r.returncode == 0
        assert "nothing to remove" in r.stdout and "kept " in r.stdout, r.stdout
    c.wait_clean()
    # Once the layer's finisher (byte-compile) lets go of the key.
    wait_until(lambda: c.run("cache", "clean", local=False).stdout.startswith(
        "removed 1 layer from "), 60, "clean to remove the layer")


# --- a closed stderr -------------------------------------------------------
# Every runx message goes through runner.errors.say, which tolerates a caller
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


def test_too_many_requirements_files_is_a_usage_error(runx, tmp_path):
    """The layer key reads every file reached through -r, up to 256: beyond,
    a usage error (it was a NameError, reported as an internal error)."""
    for i in range(300):
        (tmp_path / f"r{i}.txt").write_text(f"-r r{i + 1}.txt\n" if i < 299 else "")
    r = runx.run("--with-requirements", str(tmp_path / "r0.txt"), "python", "-c", "pass")
    one_line(r, 2, "more than 256 requirements files")
