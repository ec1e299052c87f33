"""Nothing writes into a shared layer once its finisher is gone: the layer
finisher (runx-compile) killed at the worst moments takes its compile with it, and "compiled" is believed only once
the layer is fully frozen, so the next run's finisher completes the job."""

import glob
import os
import signal
import stat

import pytest

from conftest import Runx, proc_state, wait_until


CACHE = None     # this test's cache: finishers of other runs on the machine are not ours


@pytest.fixture
def cold(cold):
    global CACHE
    CACHE = cold.cache
    yield cold
    cold.wait_clean()
    for pid in finishers() + users_of(cold.cache):   # never leave a stopped process behind
        os.kill(pid, signal.SIGKILL)


def finishers() -> list:
    """Live runx-compile processes holding a file of this test's cache (the key's lock)."""
    out = []
    for n in os.listdir("/proc"):
        try:
            with open(f"/proc/{n}/comm") as f:
                if f.read().strip() != "runx-compile" or proc_state(int(n)) in ("Z", None):
                    continue
            fds = os.listdir(f"/proc/{n}/fd")
        except (OSError, ValueError):
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{n}/fd/{fd}").startswith(CACHE + "/"):
                    out.append(int(n))
                    break
            except OSError:
                pass
    return out


def users_of(path: str) -> list:
    """Live processes whose cmdline or cwd mention ``path``."""
    out = []
    for n in os.listdir("/proc"):
        if not n.isdigit() or int(n) == os.getpid():
            continue
        try:
            with open(f"/proc/{n}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{n}/cwd")
        except OSError:
            continue
        if proc_state(int(n)) in ("Z", None):
            continue
        if path in cmd or cwd.startswith(path):
            out.append(int(n))
    return out


def the_layer(cache: str) -> str:
    (current,) = glob.glob(os.path.join(cache, "layers", "*", "current"))
    return os.path.join(os.path.dirname(current), os.readlink(current))


def manifest(layer: str) -> dict:
    import json

    with open(os.path.join(layer, "runx-layer.json")) as f:
        return json.load(f)


def fully_finished(layer: str) -> bool:
    if not manifest(layer).get("compiled"):
        return False
    for name in ("runx-layer.json", "runx-layer.marshal"):
        if os.stat(os.path.join(layer, name)).st_mode & 0o222:
            return False
    for dirpath, _dirnames, _ in os.walk(layer):
        if stat.S_IMODE(os.lstat(dirpath).st_mode) != 0o555:
            return False
    return True


def stopped_finisher(cold: Runx, point: str) -> int:
    cold.env["RUNX_FAULT_STOP"] = point
    r = cold.run("--with", "runxdemo", "python", "-c", "import runxdemo")
    assert r.returncode == 0, r.stderr
    del cold.env["RUNX_FAULT_STOP"]
    return r


def run_again_and_finish(cold: Runx, layer: str) -> None:
    r = cold.run("--with", "runxdemo", "python", "-c", "import runxdemo")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: fully_finished(layer) and not finishers(), 60,
               "the next run's finisher to compile and freeze the layer")
    pycs = glob.glob(os.path.join(layer, "**", "runxdemo", "__pycache__", "*.pyc"),
                     recursive=True)
    assert pycs, "byte-compiled"


def test_compile_dies_with_a_killed_finisher(cold):
    for _ in range(3):
        stopped_finisher(cold, "compile-child")
        layer = the_layer(cold.cache)
        # The compile child stopped itself at its start: it is a writer that
        # would survive its parent without PR_SET_PDEATHSIG.
        child = wait_until(lambda: [p for p in users_of(layer) if proc_state(p) == "T"], 30,
                           "the compile child to start")
        (fin,) = finishers()
        os.kill(fin, signal.SIGKILL)
        wait_until(lambda: not users_of(layer), 10,
                   f"no process writing into the layer after runx-compile died (left: {child})")
        assert not manifest(layer)["compiled"]
        run_again_and_finish(cold, layer)
        cold.wait_clean()
        cold.run("cache", "clean", "--force", local=False)


def test_finisher_killed_mid_freeze_leaves_layer_not_compiled(cold):
    for _ in range(3):
        stopped_finisher(cold, "freeze")
        layer = the_layer(cold.cache)
        wait_until(lambda: any(proc_state(p) == "T" for p in finishers()), 30,
                   "the finisher to stop inside the freeze")
        (fin,) = finishers()
        os.kill(fin, signal.SIGKILL)
        wait_until(lambda: not finishers() and not users_of(layer), 10, "the finisher gone")
        assert not manifest(layer)["compiled"], "a kill inside the freeze is not 'compiled'"
        assert os.stat(layer).st_mode & 0o200, "the root is frozen last"
        run_again_and_finish(cold, layer)
        cold.wait_clean()
        cold.run("cache", "clean", "--force", local=False)


def test_half_frozen_layer_is_detected_by_the_next_run(cold):
    """Killed between the root's freeze and the manifests' (the last step):
    the manifest says compiled but is still writable."""
    r = cold.run("--with", "runxdemo", "python", "-c", "import runxdemo")
    assert r.returncode == 0, r.stderr
    layer = the_layer(cold.cache)
    wait_until(lambda: fully_finished(layer) and not finishers(), 60, "the first finish")
    for name in ("runx-layer.json", "runx-layer.marshal"):
        os.chmod(os.path.join(layer, name), 0o644)
    os.chmod(os.path.join(layer, "bin"), 0o755)    # and a directory the freeze missed
    run_again_and_finish(cold, layer)
