"""Bad input and a hostile environment (read-only cache, tiny limits, odd
files): each failure is exactly one 'runx: error: WHAT (HINT)' line, a
documented exit code (2 usage, 1 environment, 126, 127), no traceback, and
nothing left behind."""

import os
import re
import resource
import subprocess

import pytest

from conftest import RUNX, Runx, live_run, one_error_line, runtime_entries, wait_until
from runx_env.runner import cli

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
    runx.env["RUNX_RUNTIME_DIR"] = f"{f}/runx"
    for args in (["python", "-c", "pass"], ["gc"], ["ls"]):
        r = runx.run(*args, local=False)
        one_line(r, 1, f"cannot use {f}/runx: Not a directory")
    # XDG_RUNTIME_DIR is inherited, not chosen: a file there is passed over
    # for the cache's runs/ (tests/test_places.py), and -v says why.
    runx.env.pop("RUNX_RUNTIME_DIR")
    runx.env["XDG_RUNTIME_DIR"] = str(f)
    r = runx.run("-v", "python", "-c", "pass", local=False)
    assert r.returncode == 0 and f"XDG_RUNTIME_DIR {f} is not a directory" in r.stderr, r.stderr
    runx.runtime = os.path.join(runx.cache, "runs")
    runx.wait_clean()


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
        "removed 1 layer and the shared byte-code; "), 60, "clean to remove the layer")


def test_too_many_requirements_files_is_a_usage_error(runx, tmp_path):
    """The layer key reads every file reached through -r, up to 256: beyond,
    a usage error (it was a NameError, reported as an internal error)."""
    for i in range(300):
        (tmp_path / f"r{i}.txt").write_text(f"-r r{i + 1}.txt\n" if i < 299 else "")
    r = runx.run("--with-requirements", str(tmp_path / "r0.txt"), "python", "-c", "pass")
    one_line(r, 2, "more than 256 requirements files")


@pytest.mark.fast
def test_internal_error_is_one_line(monkeypatch, capsys):
    def boom(o):
        raise ValueError("unexpected thing")
    monkeypatch.setattr(cli, "run", boom)
    monkeypatch.delenv("RUNX_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        cli.main(["python"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("runx: error: internal error: ValueError")


# --- errors: one line, documented code, nothing made ------------------------

@pytest.mark.parametrize("case, code, words", [
    ("unknown option", 2, "unknown option --bogus"),
    ("flag with value", 2, "takes no value"),
    ("missing script", 2, "no such file"),
    ("bad toml", 2, "malformed"),
    ("two blocks", 2, "more than one"),
    ("unreadable requirements", 2, "requirements file"),
    ("unreadable script requirements", 2, "requirements file"),
    ("unreadable env file", 2, "env file"),
    ("malformed env file", 2, "line 1"),
    ("module without name", 2, "-m needs"),
    ("unknown python", 1, "--python"),
    ("unknown python version", 1, "--python 3.99"),
    ("unknown completion shell", 2, "unknown shell"),
    ("with an option", 2, "not a requirement"),
])
def test_user_errors(runx, tmp_path, case, code, words):
    bad = tmp_path / "bad.py"
    two = tmp_path / "two.py"
    bad.write_text('# /// script\n# dependencies = ["a",\n# ///\n')
    two.write_text("# /// script\n# dependencies = []\n# ///\nx = 1\n# /// script\n#\n# ///\n")
    envf = tmp_path / "bad.env"
    envf.write_text("what is this\n")
    args = {
        "unknown option": ["--bogus", "python"],
        "flag with value": ["--keep=yes", "python"],
        "missing script": [str(tmp_path / "nope.py")],
        "bad toml": [str(bad)],
        "two blocks": [str(two)],
        "unreadable requirements": ["--with-requirements", str(tmp_path), "python"],
        "unreadable script requirements": ["--with-requirements", str(tmp_path / "x.py"), "python"],
        "unreadable env file": ["--env-file", str(tmp_path / "none.env"), "python"],
        "malformed env file": ["--env-file", str(envf), "python"],
        "module without name": ["-m"],
        "unknown python": ["--python", "no-such-python-3.99", "python"],
        "unknown python version": ["--python", "3.99", "python"],
        "unknown completion shell": ["--completion", "tcsh"],
        "with an option": ["--with=--index-url=http://x", "python"],
    }[case]
    r = runx.run(*args)
    assert r.returncode == code, r.stderr
    line = one_error_line(r.stderr, alone=False)
    assert words in line, line
    assert re.fullmatch(r"runx: error: .+", line)
    assert r.stderr.count("\n") == 1, "one line, nothing else"
    assert r.stdout == ""
    assert runtime_entries(runx.runtime) == []
