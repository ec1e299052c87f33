"""Where runx keeps things when the environment was made for someone else
(issue 22.2, 20.8) or for a service (22.3): after su / sudo -E / cron,
XDG_RUNTIME_DIR names another user's directory or none; a system user's home
is /nonexistent; systemd hands the service its own directories. Each test
puts runx there for real: a second user made by the test (tests/users.py)."""

import os
import subprocess

from conftest import RUNX, one_error_line, runtime_entries, wait_until
from users import clean_env, launcher, run_as, second_user, shared_dir

TREE = ["python", "-c", "import os; print(os.environ['RUNX_ENV'])"]


def _dir(path: str, owner=None, mode: int = 0o700) -> str:
    os.mkdir(path)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


def _emptied(path: str, timeout: float = 30) -> None:
    wait_until(lambda: not runtime_entries(path), timeout,
               f"the trees under {path} to be removed")


# --- 22.2 + 20.8: XDG_RUNTIME_DIR that is not this user's -------------------------------

def test_root_with_another_users_xdg_runtime_dir_falls_back(tmp_path):
    """`su` from a user's shell keeps XDG_RUNTIME_DIR=/run/user/1000: root
    must not make runx/ in it (that user could swap it, issue 20.8); it
    uses a directory of its own and says why with -v, and only with -v."""
    with shared_dir() as d, second_user() as pw:
        xdg = _dir(os.path.join(d, "xdg"), pw)
        cache = str(tmp_path / "cache")
        env = clean_env(XDG_RUNTIME_DIR=xdg, RUNX_CACHE_DIR=cache)
        r = subprocess.run([RUNX, "-v", *TREE], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert os.listdir(xdg) == [], "root made a directory in another user's XDG_RUNTIME_DIR"
        runs = os.path.realpath(os.path.join(cache, "runs"))
        assert r.stdout.strip().startswith(runs + "/"), r.stdout
        line = [ln for ln in r.stderr.splitlines() if "XDG_RUNTIME_DIR" in ln]
        assert len(line) == 1 and "belongs to another user" in line[0] and runs in line[0], \
            r.stderr
        quiet = subprocess.run([RUNX, *TREE], env=env, capture_output=True, text=True,
                               timeout=120)
        assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
        _emptied(runs)


def test_root_passes_over_a_runtime_dir_others_can_write(tmp_path):
    """XDG_RUNTIME_DIR=/tmp-like (1777): anyone may plant runx/ there first."""
    d = _dir(str(tmp_path / "tmpish"), mode=0o1777)
    cache = str(tmp_path / "cache")
    r = subprocess.run([RUNX, "-v", *TREE], env=clean_env(XDG_RUNTIME_DIR=d,
                       RUNX_CACHE_DIR=cache), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert os.listdir(d) == [] and "writable by other users" in r.stderr, r.stderr
    _emptied(os.path.join(cache, "runs"))


def test_user_with_roots_or_a_missing_xdg_runtime_dir_falls_back():
    """`sudo -u USER -E` from root's shell (XDG_RUNTIME_DIR=/run/user/0),
    or cron's copied environment naming a directory that does not exist:
    was 'cannot use …/runx: Permission denied' / 'cannot create …'."""
    with shared_dir() as d, second_user() as pw:
        rootdir = _dir(os.path.join(d, "root-xdg"))            # root's, 0700
        home = _dir(os.path.join(d, "cache"), pw)
        runx = launcher(d)
        for xdg, why in ((rootdir, "belongs to another user"),
                         (os.path.join(d, "gone"), "does not exist")):
            r = run_as(pw, [runx, "-v", *TREE], clean_env(XDG_RUNTIME_DIR=xdg,
                                                           XDG_CACHE_HOME=home))
            assert r.returncode == 0, r.stderr
            runs = os.path.join(home, "runx", "runs")
            assert r.stdout.strip().startswith(runs + "/"), r.stdout
            assert why in r.stderr, r.stderr
            _emptied(runs)
        assert os.listdir(rootdir) == [] and not os.path.exists(os.path.join(d, "gone"))


def test_no_trustworthy_place_is_one_line_naming_the_variable():
    """Another user's XDG_RUNTIME_DIR and a home-less user: nowhere of its
    own is left. One line, naming RUNX_RUNTIME_DIR; nothing made."""
    with shared_dir() as d, second_user() as pw:
        rootdir = _dir(os.path.join(d, "root-xdg"))
        r = run_as(pw, [launcher(d), *TREE], clean_env(XDG_RUNTIME_DIR=rootdir,
                                                       HOME="/nonexistent"))
        assert r.returncode == 1, r.stderr
        one_error_line(r.stderr, "XDG_RUNTIME_DIR", "belongs to another user",
                       "set RUNX_RUNTIME_DIR", hint=True)
        assert os.listdir(rootdir) == [] and not os.path.exists("/nonexistent")


def test_root_refuses_to_create_runx_dirs_in_another_users_directory(tmp_path, wheelhouse):
    """RUNX_RUNTIME_DIR (or a cache) named inside a directory another user
    owns: refused, nothing made there (issue 20.8)."""
    with shared_dir() as d, second_user() as pw:
        theirs = _dir(os.path.join(d, "theirs"), pw, 0o755)
        for var in ("RUNX_RUNTIME_DIR", "RUNX_CACHE_DIR"):
            env = clean_env(**{"RUNX_RUNTIME_DIR": str(tmp_path / "run"),
                               "RUNX_CACHE_DIR": str(tmp_path / "cache"),
                               var: os.path.join(theirs, "runx")})
            r = subprocess.run([RUNX, "--with", "runxdemo", "--no-index", "--find-links",
                                wheelhouse, "python", "-c", "pass"], env=env,
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 1, r.stderr
            one_error_line(r.stderr, os.path.join(theirs, "runx"), "belongs to another user",
                           alone=False, hint=True)
            assert os.listdir(theirs) == [], var


# --- 22.3: systemd's directories, a home-less user, uv's cache ------------------------

def test_precedence_runx_then_systemd_then_xdg_then_home(tmp_path):
    """RUNX_* > systemd's (CacheDirectory=, else StateDirectory=;
    RuntimeDirectory=) > XDG > home, for the cache and the runtime
    directory; a systemd directory that is not this user's is passed over."""
    with second_user() as pw:
        d = {n: _dir(str(tmp_path / n)) for n in ("runx", "cachedir", "statedir", "xdg",
                                                   "home", "runxrun", "rundir", "xdgrun")}
        theirs = _dir(str(tmp_path / "theirs"), pw, 0o755)
        full = dict(RUNX_CACHE_DIR=d["runx"], CACHE_DIRECTORY=d["cachedir"],
                    STATE_DIRECTORY=d["statedir"], XDG_CACHE_HOME=d["xdg"], HOME=d["home"])
        steps = [("RUNX_CACHE_DIR", d["runx"]),
                 ("CACHE_DIRECTORY", os.path.join(d["cachedir"], "runx")),
                 ("STATE_DIRECTORY", os.path.join(d["statedir"], "runx")),
                 ("XDG_CACHE_HOME", os.path.join(d["xdg"], "runx")),
                 (None, os.path.join(d["home"], ".cache", "runx"))]
        env = dict(full)
        for var, expect in steps:
            r = subprocess.run([RUNX, "cache", "dir"], env=clean_env(**env), capture_output=True,
                               text=True, timeout=60)
            assert (r.returncode, r.stdout.strip()) == (0, expect), (var, r.stderr)
            if var:
                del env[var]
        r = subprocess.run([RUNX, "cache", "dir"], capture_output=True, text=True, timeout=60,
                           env=clean_env(CACHE_DIRECTORY=theirs, XDG_CACHE_HOME=d["xdg"]))
        assert r.stdout.strip() == os.path.join(d["xdg"], "runx"), "another user's CacheDirectory"
        cache = str(tmp_path / "c")
        for env, expect in (
                # Not the cache's d["runx"]: runx keeps its own byte-code in
                # a cache it found (boot.py), which is then not empty.
                (dict(RUNX_RUNTIME_DIR=d["runxrun"], RUNTIME_DIRECTORY=d["rundir"],
                      XDG_RUNTIME_DIR=d["xdgrun"]), d["runxrun"]),
                (dict(RUNTIME_DIRECTORY=d["rundir"] + ":/elsewhere", XDG_RUNTIME_DIR=d["xdgrun"]),
                 os.path.join(d["rundir"], "runx")),
                (dict(RUNTIME_DIRECTORY=theirs, XDG_RUNTIME_DIR=d["xdgrun"]),
                 os.path.join(d["xdgrun"], "runx"))):
            r = subprocess.run([RUNX, *TREE], env=clean_env(RUNX_CACHE_DIR=cache, **env),
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert os.path.dirname(r.stdout.strip()) == os.path.realpath(expect), env
            _emptied(expect)
        assert os.listdir(theirs) == []


def test_homeless_user_gets_uv_a_cache_under_runxs(wheelhouse):
    """A system user (home /nonexistent) with RUNX_CACHE_DIR set: uv could
    not create ~/.cache/uv, so runx gives it $RUNX_CACHE_DIR/uv; the user's
    own UV_CACHE_DIR still wins. Before: 'Failed to initialize cache at
    /nonexistent/.cache/uv'."""
    with shared_dir() as d, second_user() as pw:
        wheels = os.path.join(d, "wheels")
        os.mkdir(wheels, 0o755)
        for n in os.listdir(wheelhouse):
            with open(os.path.join(wheelhouse, n), "rb") as src, \
                    open(os.path.join(wheels, n), "wb") as dst:
                dst.write(src.read())
        mine = _dir(os.path.join(d, "mine"), pw)
        runx = launcher(d)
        argv = [runx, "--find-links", wheels, "--no-index", "--with", "runxdemo",
                "python", "-c", "import runxdemo"]
        cache = os.path.join(mine, "cache")
        r = run_as(pw, argv, clean_env(HOME="/nonexistent", RUNX_CACHE_DIR=cache,
                                       RUNX_RUNTIME_DIR=os.path.join(mine, "run")))
        assert r.returncode == 0, r.stderr
        assert os.listdir(os.path.join(cache, "uv")), "uv's cache under runx's"
        own = os.path.join(mine, "uvcache")
        r = run_as(pw, [runx, "--refresh", *argv[1:]], clean_env(
            HOME="/nonexistent", RUNX_CACHE_DIR=cache, UV_CACHE_DIR=own,
            RUNX_RUNTIME_DIR=os.path.join(mine, "run")))
        assert r.returncode == 0 and os.listdir(own), r.stderr
        _emptied(os.path.join(mine, "run"))
        assert not os.path.exists("/nonexistent")


def test_homeless_user_without_any_cache_is_told_what_to_set(wheelhouse):
    """No RUNX_CACHE_DIR, no systemd directory, home /nonexistent: one line
    naming RUNX_CACHE_DIR and CacheDirectory=, nothing made."""
    with shared_dir() as d, second_user() as pw:
        mine = _dir(os.path.join(d, "mine"), pw)
        r = run_as(pw, [launcher(d), "--with", "runxdemo", "python", "-c", "pass"],
                   clean_env(HOME="/nonexistent", RUNX_RUNTIME_DIR=os.path.join(mine, "run")))
        assert r.returncode == 1, r.stderr
        one_error_line(r.stderr, "/nonexistent", "home directory", "RUNX_CACHE_DIR",
                       "CacheDirectory=", hint=True)
