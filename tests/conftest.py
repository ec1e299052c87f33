"""Shared fixtures: every test gets its own runtime directory, checked at the
end to hold no tree and no live reaper; layers are cached per session (the
``cold`` fixture gives a test a cache of its own).

Shared helpers: ``wait_until`` (polls with a deadline; nothing here sleeps a
fixed time), /proc state (``proc_state``, ``alive``), the reapers of a
runtime directory (``reapers``, ``the_reaper``), the layer store
(``layer_builds``), a payload kept running (``live_run``), and the one error
line runx prints (``one_error_line``).
"""

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest

RUNX = os.path.join(os.path.dirname(sys.executable), "runx")
SRC = os.path.normpath(os.path.join(os.path.dirname(__file__), os.pardir, "src"))


def pytest_sessionstart(session):
    """The suite tests the checkout: runx_env must be src/ (an editable
    install), holding every module src/ has. scripts/test installs it in
    setuptools' strict mode (no import hook), whose tree of links a new
    module is missing until the install runs again."""
    import importlib.util

    spec = importlib.util.find_spec("runx_env")
    where = os.path.dirname(os.path.realpath(spec.origin)) if spec and spec.origin else None
    if where != SRC:
        pytest.exit(f"runx_env is imported from {where}, not from this checkout's src/: "
                    "run scripts/test (it installs the checkout, editable)", 2)
    installed = os.path.dirname(spec.origin)
    missing = [os.path.relpath(os.path.join(d, f), SRC)
               for d, dirs, files in os.walk(SRC) for f in files if f.endswith(".py")
               if not os.path.exists(os.path.join(installed, os.path.relpath(d, SRC), f))
               and not os.path.relpath(d, SRC).startswith("bin")]
    if missing:
        pytest.exit(f"the editable install lacks {', '.join(missing)}: run scripts/test, or "
                    "uv pip install -e . --config-settings editable_mode=strict", 2)


# --- the fast tier (scripts/test --fast) ---------------------------------------

# Fixtures that run runx itself, or build what it runs: end to end by nature.
END_TO_END_FIXTURES = {"runx", "cold", "layer_cache", "wheelhouse", "extra"}
# Audit events of a process being started (fork, exec, spawn, subprocess).
SPAWN_EVENTS = {"os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn",
                "os.system", "subprocess.Popen", "pty.spawn"}
_fast_call = False


def _no_spawn_in_fast(event, args):
    if _fast_call and event in SPAWN_EVENTS:
        raise RuntimeError(f"a test marked fast started a process ({event} {args[:1]}): "
                           "the fast tier is in-process; unmark it or make it so")


def pytest_configure(config):
    sys.addaudithook(_no_spawn_in_fast)


def pytest_collection_modifyitems(config, items):
    """A test marked fast keeps to the tier's promise: it uses none of the
    fixtures that run runx (checked here) and starts no process (checked by
    the audit hook while it runs)."""
    for item in items:
        if item.get_closest_marker("fast"):
            used = END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ()))
            if used:
                raise pytest.UsageError(f"{item.nodeid} is marked fast but uses "
                                        f"{', '.join(sorted(used))} (end to end)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """While a fast test runs (its fixtures too), starting a process fails."""
    global _fast_call
    _fast_call = item.get_closest_marker("fast") is not None
    try:
        yield
    finally:
        _fast_call = False


def wait_until(predicate, timeout: float = 10.0, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail with ``what``."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def proc_state(pid: int) -> str | None:
    """'R', 'S', 'Z'… or None if the PID does not exist. A zombie is not alive."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z", "X")


def comm(pid: int) -> str:
    """The process's name (/proc/PID/comm), or "" if it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def reapers(runtime: str) -> list:
    """Live reaper processes that own a tree under ``runtime`` (by their lock fd)."""
    out = []
    for n in os.listdir("/proc"):
        if not n.isdigit():
            continue
        pid = int(n)
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "runx-reaper":
                    continue
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        if not alive(pid):
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(runtime + "/"):
                    out.append(pid)
                    break
            except OSError:
                pass
    return out


def owners_gone(runtime: str) -> bool:
    """No tree under ``runtime`` has an owner: every lock file can be taken.
    The robust sign that a reaper is done (it may not even have named itself
    runx-reaper yet right after its payload exits, so ``reapers()`` alone is
    not)."""
    import fcntl

    for name in runtime_entries(runtime):
        if not name.endswith(".lock"):
            continue
        try:
            fd = os.open(os.path.join(runtime, name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        finally:
            os.close(fd)
    return not reapers(runtime)
def the_reaper(runtime: str, timeout: float = 15.0) -> int:
    """The one live reaper of ``runtime`` (waits for it)."""
    found = wait_until(lambda: reapers(runtime), timeout, f"the reaper of {runtime}")
    assert len(found) == 1, found
    return found[0]


def layer_builds(cache: str) -> dict:
    """{layer key: [finished builds]} of a cache (no lock, no `current` link,
    no half-built `.tmp-*`)."""
    root = os.path.join(cache, "layers")
    out = {}
    for k in os.listdir(root) if os.path.isdir(root) else []:
        out[k] = sorted(n for n in os.listdir(os.path.join(root, k))
                        if n not in ("lock", "current") and not n.startswith("."))
    return out


def one_error_line(stderr: str, *words, alone: bool = True, hint: bool = False) -> str:
    """runx's one 'runx: error: WHAT (HINT)' line in ``stderr``, which holds
    no traceback and no internal error, and contains ``words``. ``alone``:
    nothing else on stderr (else uv's explanation may come first); ``hint``:
    the line ends with its (HINT)."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("runx: error: ")]
    assert len(lines) == 1, stderr
    assert not alone or stderr.splitlines() == lines, stderr
    line = lines[0]
    assert "Traceback" not in stderr and "internal error" not in line, stderr
    assert not hint or line.endswith(")"), line
    for w in words:
        assert w in line, (w, line)
    return line


def runtime_entries(runtime: str) -> list:
    """What runs left in the runtime dir: its trees and locks (not the
    reapers' shared scans, ``.scan``, and the older ``.leases``: see
    runx_env.reaper.leases)."""
    try:
        return sorted(n for n in os.listdir(runtime) if not n.startswith((".leases", ".scan")))
    except FileNotFoundError:
        return []


class Runx:
    """Runs runx with this test's directories."""

    def __init__(self, runtime: str, cache: str, wheelhouse: str):
        self.runtime = runtime
        self.cache = cache
        self.wheelhouse = wheelhouse
        self.env = dict(os.environ)
        for var in ("RUNX_ENV", "VIRTUAL_ENV", "RUNX_TREE", "RUNX_REAPER_LOG"):
            self.env.pop(var, None)
        # A test never downloads a Python: a request nothing local meets fails.
        self.env.update(RUNX_RUNTIME_DIR=runtime, RUNX_CACHE_DIR=cache,
                        UV_PYTHON_DOWNLOADS="never")
        if os.environ.get("RUNX_TEST_REAPER_LOG"):
            self.env["RUNX_REAPER_LOG"] = os.environ["RUNX_TEST_REAPER_LOG"]

    def argv(self, *args, local: bool = True) -> list:
        """``runx [--find-links wheelhouse --no-index] ARGS`` (hermetic by default)."""
        pre = ["--find-links", self.wheelhouse, "--no-index"] if local else []
        return [RUNX, *pre, *args]

    def run(self, *args, local: bool = True, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 120)
        kw.setdefault("env", self.env)
        return subprocess.run(self.argv(*args, local=local), **kw)

    def popen(self, *args, local: bool = True, **kw) -> subprocess.Popen:
        kw.setdefault("env", self.env)
        return subprocess.Popen(self.argv(*args, local=local), **kw)

    def trees(self) -> list:
        return [e for e in runtime_entries(self.runtime) if not e.endswith(".lock")]

    def wait_clean(self, timeout: float = 15.0):
        """Nothing left under the runtime directory and no reaper alive."""
        wait_until(lambda: not runtime_entries(self.runtime) and not reapers(self.runtime),
                   timeout, f"runtime dir {self.runtime} to be empty and reapers gone "
                   f"(left: {runtime_entries(self.runtime)}, reapers: {reapers(self.runtime)})")


@contextlib.contextmanager
def live_run(r: "Runx", *args, imports: str = "", seconds: float = 60, **kw):
    """``runx ARGS python -c ...``: a payload that prints 'up' and sleeps.
    Yields the Popen once it is up; killed and waited for on leaving."""
    code = f"import time{', ' + imports if imports else ''}; print('up', flush=True); " \
           f"time.sleep({seconds})"
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("text", True)
    p = r.popen(*args, "python", "-c", code, **kw)
    try:
        assert p.stdout.readline() in ("up\n", b"up\n")
        yield p
    finally:
        p.kill()
        p.wait()
        p.stdout.close()


# --- a tiny hermetic package -------------------------------------------------

DEMO_INIT = '''\
import os, sys
VERSION = "1.0"

def main():
    args = sys.argv[1:]
    if not args:
        print("runxdemo", VERSION, sys.prefix)
        return 0
    cmd = args[0]
    if cmd == "exit":
        return int(args[1])
    if cmd == "kill":
        import signal
        os.kill(os.getpid(), getattr(signal, args[1]))
        import time
        time.sleep(5)
        return 99
    if cmd == "raise":
        raise RuntimeError("boom from runxdemo")
    if cmd == "forever":
        while True:
            print("y" * 60, flush=True)
    if cmd == "sleep":
        print("ready", os.getpid(), flush=True)
        import time
        time.sleep(float(args[1]))
        return 0
    if cmd == "fds":
        print(" ".join(sorted(os.listdir("/proc/self/fd"), key=int)))
        return 0
    print("unknown", cmd, file=sys.stderr)
    return 2
'''


def build_wheel(directory: str, name: str = "runxdemo", version: str = "1.0",
                files: dict | None = None, scripts: dict | None = None,
                data: dict | None = None, requires=(), extras: dict | None = None) -> str:
    """Write a minimal pure-Python wheel (no build backend needed). ``data``
    maps paths relative to the install prefix (``share/x/y``, ``etc/z``) to
    contents: the wheel's ``.data/data/`` entries. ``requires``: its
    Requires-Dist; ``extras``: {extra: [requirement, ...]}."""
    files = dict(files or {f"{name}/__init__.py": DEMO_INIT})
    for path, content in (data or {}).items():
        files[f"{name}-{version}.data/data/{path}"] = content
    scripts = scripts if scripts is not None else {name: f"{name}:main"}
    dist = f"{name}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    for extra, reqs in (extras or {}).items():
        meta += f"Provides-Extra: {extra}\n"
        meta += "".join(f"Requires-Dist: {r}; extra == \"{extra}\"\n" for r in reqs)
    files[f"{dist}/METADATA"] = meta
    files[f"{dist}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: runx-tests\n"
                              "Root-Is-Purelib: true\nTag: py3-none-any\n")
    if scripts:
        files[f"{dist}/entry_points.txt"] = "[console_scripts]\n" + "".join(
            f"{k} = {v}\n" for k, v in scripts.items())
    record = []
    for path, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(content.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    path = os.path.join(directory, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        for p, content in files.items():
            z.writestr(p, content)
    return path


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> str:
    d = str(tmp_path_factory.mktemp("wheels"))
    build_wheel(d)
    return d


@pytest.fixture(scope="session")
def layer_cache(tmp_path_factory) -> str:
    """One cache for the whole session: layers are built once, like in real use."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def runx(tmp_path, layer_cache, wheelhouse):
    runtime = str(tmp_path / "run")
    r = Runx(runtime, layer_cache, wheelhouse)
    yield r
    # Leave the machine clean, and say so if the reaper did not.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (runtime_entries(runtime) or reapers(runtime)):
        time.sleep(0.05)
    leftovers, stray = runtime_entries(runtime), reapers(runtime)
    for pid in stray:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if os.path.isdir(runtime):
        subprocess.run(["chmod", "-R", "u+w", runtime], capture_output=True)
        shutil.rmtree(runtime, ignore_errors=True)
    assert not leftovers and not stray, (
        f"test left trees {leftovers} / reapers {stray} behind under {runtime}")


@pytest.fixture
def cold(runx, tmp_path):
    """runx with a cache of its own (so a first run builds), the same runtime."""
    r = Runx(runx.runtime, str(tmp_path / "cold-cache"), runx.wheelhouse)
    yield r
    r.wait_clean()


def path_env(runx) -> dict:
    """runx's environment with runx itself on PATH (for shebangs and shells)."""
    return dict(runx.env, PATH=os.path.dirname(RUNX) + os.pathsep + runx.env.get("PATH", ""))


@pytest.fixture(scope="session")
def extra(tmp_path_factory) -> str:
    """A second hermetic wheel, ``runxextra``, with a __main__ for -m."""
    d = str(tmp_path_factory.mktemp("extra-wheels"))
    build_wheel(d, "runxextra", "2.0", files={
        "runxextra/__init__.py": "VALUE = 42\n",
        "runxextra/__main__.py": "import sys\nprint('runxextra main', sys.argv[1:])\n",
    }, scripts={})
    return d
