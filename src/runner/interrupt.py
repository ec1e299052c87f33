"""A signal to runx before the exec (issue 20.5): it leaves nothing behind,
says in one line what it interrupted, and runx dies of that signal.

Two pieces, both restoring exactly what the caller set before the exec
(invariant 3: the payload inherits the caller's dispositions and mask):

- ``launch.hold_signals``/``release_signals`` (every run, warm too: two ``sigprocmask`` calls and a
  ``sigpending``): the terminating signals are blocked from the tree's lock
  to the reaper's fork, the one stretch where a death would leave a tree
  with no reaper to remove it. A signal that came meanwhile is found
  pending and raised as Interrupted (the reaper, now the tree's owner,
  removes it once runx is gone).
- ``arm``/``disarm`` (a cold run only, from the layer miss to the exec):
  those signals, where the caller left them at their default, get a
  handler that raises Interrupted once: the half-built layer is removed by
  the build's own clean-up, uv is killed and waited for by subprocess, the
  key lock is released. A second signal during that clean-up is only
  recorded. ``disarm`` puts the defaults back with the signals blocked, and
  one that came meanwhile is raised as Interrupted too.

A signal whose handler runs inside a finaliser (``Popen.__del__`` when
the collector frees a finished uv, a weakref callback) raises there, and
Python drops the exception: ``boot.catch_dropped_signals``'s hook, the
runx command's first act, sends that signal again a millisecond later
(``boot.resend``) and marks it ``Interrupted.dropped``, so that the
handler raises once more, in ordinary code.

``runx_env.runner.cli.main`` prints ``runx: interrupted by SIG… while …``
and re-raises the signal with SIG_DFL, so the caller sees a death by that
signal. From ``release_signals``/``disarm`` to the exec itself (microseconds) a
signal kills runx by its default action, silently; the reaper removes the
tree.
"""

from .. import boot
from ..errors import Interrupted
from ..reaper.handoff import signal_module
from .launch import hold_signals, interrupted, release_signals, terminating

_armed: dict = {}          # signal -> the handler it had before arm()


def _handler(sig, frame) -> None:
    if Interrupted.caught is not None and not Interrupted.dropped:
        return                      # already on the way out: let the clean-up finish
    if frame is not None and frame.f_code is boot._unraisable.__code__:
        boot.resend(sig)            # inside the hook itself, which cannot raise either
        return
    Interrupted.dropped = False
    raise interrupted(sig)


def arm(doing: str) -> None:
    """Catch the terminating signals the caller left at their default (and
    SIGINT under Python's KeyboardInterrupt handler); ``doing`` is what a
    signal would interrupt, for the message."""
    sigmod = signal_module()
    Interrupted.doing = doing
    if _armed:
        return
    default_int = sigmod.default_int_handler
    for sig in terminating(sigmod):
        before = sigmod.getsignal(sig)
        if before == sigmod.SIG_DFL or before is default_int:
            sigmod.signal(sig, _handler)
            _armed[sig] = before


def doing(what: str) -> None:
    Interrupted.doing = what


def disarm() -> None:
    """Before the exec: the dispositions arm() changed back to SIG_DFL (what
    exec gives a caught signal anyway), with the signals blocked meanwhile."""
    if not _armed:
        return
    sigmod = signal_module()
    old = hold_signals()
    try:
        for sig in _armed:
            sigmod.signal(sig, sigmod.SIG_DFL)
        _armed.clear()
    finally:
        release_signals(old)
