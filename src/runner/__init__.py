"""runx's runner: what to install, the cached layer, the ephemeral tree, the exec.

Everything here runs before the exec; what a warm start may import is
tests/test_warm_path.py's allowlist.
"""

__version__ = "0.1.0"


def fault_point(name: str) -> None:
    """Fault injection for the fault matrix (scripts/faults, tests): with
    RUNX_FAULT_STOP=NAME runx stops itself (SIGSTOP) at the fault point NAME, so a
    test can SIGKILL it at exactly that moment. Points: "install" (layer
    build started), "tree" (tree made, no reaper yet), "reaper" (in the
    reaper just forked, signals blocked, before it loads its code), "exec"
    (reaper running, just before the exec). One dict lookup when unset."""
    import os

    if os.environ.get("RUNX_FAULT_STOP") == name:
        import signal

        os.kill(os.getpid(), signal.SIGSTOP)
