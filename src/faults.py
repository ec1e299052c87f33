"""Fault points: where the fault matrix (scripts/faults, tests) stops runx to
kill it at exactly that moment.

With RUNX_FAULT_STOP=NAME, runx stops itself (SIGSTOP) at the point NAME:
"install" (layer build started), "tree" (tree made, no reaper yet),
"reaper" (in the reaper just forked, signals blocked, before it loads its
code), "exec" (reaper running, just before the exec), "compile" and
"freeze" (the layer's finisher), "compile-child" (its compile process).
One dict lookup when unset.
"""


def fault_point(name: str) -> None:
    import os

    if os.environ.get("RUNX_FAULT_STOP") == name:
        import signal

        os.kill(os.getpid(), signal.SIGSTOP)
