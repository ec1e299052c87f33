"""Issue 20.5: a signal to runx before the exec leaves nothing behind, says
in one line what it interrupted, and runx dies of that signal; what the
payload inherits stays the caller's (runner/interrupt.py). The random
moments are the fault scenario signal_at_random_moments_of_a_cold_run."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import Runx
from fault_scenarios import _interrupted_cleanly, _stopped_at, fresh, settled


def _sig_lines(status: bytes) -> dict:
    # Not SigQ: the queued signals of the whole user, which other processes change.
    return {k: v for k, v in (ln.split(":\t", 1) for ln in status.decode().splitlines()
                              if ln.startswith(("Sig", "ShdPnd")) and not ln.startswith("SigQ"))}


def test_a_cold_run_leaves_the_payload_the_callers_signal_state(runx, tmp_path):
    """A cold run catches the terminating signals while it builds; the
    payload still starts with the caller's dispositions, mask and nothing
    pending (as a direct start)."""
    def caller():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)                 # nohup
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGTERM})

    def status(argv):
        return _sig_lines(subprocess.run(argv, preexec_fn=caller, capture_output=True,
                                         env=runx.env, check=True, timeout=120).stdout)

    cold = Runx(runx.runtime, str(tmp_path / "cold-cache"), runx.wheelhouse)
    via = status(cold.argv("--with", "runxdemo", "cat", "/proc/self/status"))
    direct = status(["cat", "/proc/self/status"])
    assert via == direct
    assert int(via["SigBlk"], 16) & (1 << (signal.SIGTERM - 1))
    assert int(via["SigCgt"], 16) == 0, "no handler of runx's may survive the exec"
    settled(cold)


def test_a_signal_between_the_tree_and_the_reaper(runx):
    """The tree exists, its reaper not yet (fault point "tree"): a SIGTERM
    there used to kill runx with the tree left for a later gc. Now it waits
    for the reaper's fork, then runx says so and dies of it, and the reaper
    removes the tree: no gc needed."""
    p = _stopped_at(runx, "tree", "pass")
    os.kill(p.pid, signal.SIGTERM)
    os.kill(p.pid, signal.SIGCONT)
    assert _interrupted_cleanly(runx, p, signal.SIGTERM, must=True)


def test_a_second_signal_during_the_clean_up_changes_nothing(runx):
    """SIGTERM and SIGHUP both pending while the layer is built (Linux
    delivers the lower number first): the first one handled is the one
    reported and died of, and the other does not cut the clean-up short."""
    cold = fresh(runx)
    p = _stopped_at(cold, "install", "pass")
    os.kill(p.pid, signal.SIGTERM)
    os.kill(p.pid, signal.SIGHUP)
    os.kill(p.pid, signal.SIGCONT)
    assert _interrupted_cleanly(cold, p, signal.SIGHUP, must=True)


def test_a_signal_the_caller_ignores_still_does_nothing(runx):
    """A cold run under nohup: its SIGHUP stays ignored, the build goes on."""
    cold = fresh(runx)
    stop = Runx(cold.runtime, cold.cache, cold.wheelhouse)
    stop.env["RUNX_FAULT_STOP"] = "install"
    p = stop.popen("--with", "runxdemo", "python", "-c", "pass", stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGHUP,
                                                                            signal.SIG_IGN))
    from fault_scenarios import poll, stopped

    assert poll(lambda: stopped(p.pid), 60)
    os.kill(p.pid, signal.SIGHUP)
    os.kill(p.pid, signal.SIGCONT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert b"interrupted" not in err
    settled(cold)



@pytest.mark.fast
def test_a_signal_inside_a_finaliser_is_not_lost(monkeypatch):
    """CI's random-moment fault: SIGUSR1 came while the collector ran a
    finished uv's Popen.__del__; the handler's Interrupted was dropped there
    ("Exception ignored in") and the cold run went on as if never
    signalled. It is raised again outside the finaliser."""
    from runx_env import boot
    from runx_env.errors import Interrupted
    from runx_env.runner import interrupt

    monkeypatch.setattr(sys, "unraisablehook", boot._unraisable)   # as src/bin/runx sets it

    class Finished:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(100):        # the handler runs here, inside the finaliser
                pass

    before = signal.getsignal(signal.SIGUSR1)
    interrupt.arm("while building the environment")
    try:
        with pytest.raises(Interrupted) as e:
            Finished()
            _wait_for_it()
        assert e.value.signum == signal.SIGUSR1
    finally:
        interrupt.disarm()
        Interrupted.caught = None
        Interrupted.dropped = False
    assert signal.getsignal(signal.SIGUSR1) == before


def _wait_for_it():
    deadline = time.monotonic() + 10          # the run goes on: uv, the tree...
    while time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.fast
@pytest.mark.parametrize("raised", ["Interrupted", "KeyboardInterrupt"])
def test_a_signal_dropped_by_a_weakref_callback_is_sent_again(monkeypatch, raised):
    """CI again: SIGINT's KeyboardInterrupt came inside importlib's module-lock
    weakref callback, which dropped it; no frame says "finaliser" there.
    The hook the runx command sets first (boot.catch_dropped_signals) sends
    the signal again, and it is raised outside."""
    import weakref

    from runx_env import boot
    from runx_env.errors import Interrupted
    from runx_env.runner import interrupt

    sig = signal.SIGUSR1 if raised == "Interrupted" else signal.SIGINT
    monkeypatch.setattr(sys, "unraisablehook", boot._unraisable)

    class Obj:
        pass

    def cb(_):
        os.kill(os.getpid(), sig)
        for _ in range(100):            # the handler runs here, inside the callback
            pass

    before = signal.getsignal(sig)
    if raised == "Interrupted":
        interrupt.arm("while building the environment")
    else:
        signal.signal(sig, signal.default_int_handler)
    try:
        with pytest.raises(Interrupted if raised == "Interrupted" else KeyboardInterrupt):
            o = Obj()
            ref = weakref.ref(o, cb)
            del o
            _wait_for_it()
        assert ref() is None
    finally:
        interrupt.disarm()
        signal.signal(sig, before)
        Interrupted.caught = None
        Interrupted.dropped = False
