"""What the ``runx`` command does before importing the runner: find the
cache, and load runx's own modules from byte-code kept there when the
installer left none.

``uv tool install`` does not byte-compile (unless given
``--compile-bytecode``), and where ``PYTHONDONTWRITEBYTECODE`` is set (many
containers and CI images) or site-packages is read-only, Python never writes
the ``.pyc`` files either: every run would compile runx's modules again
(about 23 ms, more than runx's whole warm overhead). So when runx's own
``__pycache__`` holds nothing (one stat), ``install`` puts a path hook in
front for runx's package directory only, whose loader reads and writes the
byte-code as ``<cache>/self-bytecode/<hash of the .pyc path>`` (private,
0700, checked like the rest of the cache), whatever
``PYTHONDONTWRITEBYTECODE`` says. The variable, ``sys.dont_write_bytecode``
and ``sys.pycache_prefix`` are left as they were for everything else: the
payload is exec'd and sees the environment as given; the standard library
and other code are not affected.

It also keeps a signal from being lost in a finaliser (``catch_dropped_signals``).

Loaded by ``src/bin/runx`` before anything else of runx, so it imports
nothing but built-ins and what the interpreter has already loaded (the
frozen import machinery).
"""

import os
import sys

SELF_BYTECODE = "self-bytecode"     # under the cache: runx's own modules' byte-code
# Which OS, for the cache's place only: boot runs before any runx module is
# loaded, so it cannot ask reaper/watch (the facade everything else asks).
_DARWIN = sys.platform == "darwin"


# Where the cache is (README "Where runx keeps things", docs/design.md
# "Where things live"): runx's own variable; systemd's directory for the
# service (CacheDirectory=, StateDirectory=: made for this user, removed or
# kept by the service manager); XDG; the home directory. A systemd or XDG
# directory that is not this user's own and private is passed over, never
# used: after su, sudo -E or in cron with a copied environment it names
# another user's directory (or none at all). runx's own variables are the
# user's explicit choice: used as given, and refused if untrustworthy.
# runner/paths.py holds the runtime directory's rules, which use these.


# --- a signal's exception raised in a finaliser --------------------------------
#
# Python drops an exception raised inside a finaliser (a ``__del__``, a
# weakref callback such as importlib's module-lock ``cb``, run at whatever
# instruction a collection or a last reference happens) and prints
# "Exception ignored in ...". A signal's handler runs at whatever
# instruction comes next: SIGINT's KeyboardInterrupt, or runx's Interrupted
# (runner/interrupt.py), raised there was lost, and the run went on as if
# never signalled. The hook sends that signal again, a millisecond later,
# until its exception is raised in ordinary code.

def _unraisable(u) -> None:
    e = u.exc_value
    errors = sys.modules.get("runx_env.errors")    # loaded if an Interrupted exists
    if isinstance(e, KeyboardInterrupt):
        resend(2)                       # SIGINT, to Python's default handler again
    elif errors is not None and isinstance(e, errors.Interrupted):
        errors.Interrupted.dropped = True           # its handler raises once more
        resend(e.signum)
    else:
        sys.__unraisablehook__(u)


def resend(sig: int) -> None:
    """``sig`` to this process once more, from a thread a millisecond from
    now: not at once (raise_signal, interrupt_main and os.kill all run the
    handler right after they return, still inside the finaliser, where it
    would recurse). A signal blocked meanwhile (runner/launch.py's
    ``hold_signals``) stays pending for ``release_signals``."""
    import _thread
    import time

    def later() -> None:
        time.sleep(0.001)
        os.kill(os.getpid(), sig)

    _thread.start_new_thread(later, ())


def catch_dropped_signals() -> None:
    sys.unraisablehook = _unraisable


def unusable(path: str) -> str:
    """Why the directory ``path`` (a systemd or XDG variable's) is not this
    user's own and private, or "" if it is. One stat (the warm path)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "does not exist"
    except OSError as e:
        return f"cannot be used ({e.strerror})"
    if st.st_mode & 0o170000 != 0o040000:
        return "is not a directory"
    if st.st_uid != os.geteuid():
        return f"belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"is writable by other users (mode {st.st_mode & 0o777:o})"
    return ""


def systemd_dir(var: str) -> str | None:
    """The first directory of systemd's ``var`` (a colon-separated list),
    if it is set, absolute, and this user's own and private."""
    value = os.environ.get(var)
    if not value:
        return None
    first = value.split(":", 1)[0]
    if not os.path.isabs(first) or unusable(first):
        return None
    return first


def cache_source() -> str:
    """Which rule chose the cache: RUNX_CACHE_DIR, CACHE_DIRECTORY or
    STATE_DIRECTORY (systemd's), XDG_CACHE_HOME, or home."""
    if os.environ.get("RUNX_CACHE_DIR"):
        return "RUNX_CACHE_DIR"
    for var in ("CACHE_DIRECTORY", "STATE_DIRECTORY"):
        if systemd_dir(var):
            return var
    if not _DARWIN and os.environ.get("XDG_CACHE_HOME"):
        return "XDG_CACHE_HOME"
    return "home"


def cache_dir() -> str:
    """The cache: RUNX_CACHE_DIR, systemd's CacheDirectory=/StateDirectory=
    (``runx`` under it), else the platform's per-user cache."""
    d = os.environ.get("RUNX_CACHE_DIR")
    if d:
        return os.path.abspath(d)
    sd = systemd_dir("CACHE_DIRECTORY") or systemd_dir("STATE_DIRECTORY")
    if sd:
        return os.path.join(os.path.abspath(sd), "runx")
    if _DARWIN:
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "runx")


def _private(path: str) -> bool:
    """``path`` is a directory of ours that nobody else can write to (the
    cache's trust rule, reaper/ownership.py's ``check``)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_mode & 0o170000 == 0o040000 and st.st_uid == os.geteuid()
            and not st.st_mode & 0o022)


def install() -> bool:
    """Load runx's modules from the cache's byte-code store if the install
    has none of its own. Returns whether the hook is in place. Never fails:
    without a usable store, Python compiles in memory as before."""
    import _frozen_importlib_external as ext     # loaded at start-up: no cost

    tag = sys.implementation.cache_tag
    package = sys.modules[__package__ or "runx_env"].__path__[0]
    if tag is None or os.path.exists(os.path.join(package, "runner", "__pycache__",
                                                  f"cli.{tag}.pyc")):
        return False
    cache = cache_dir()
    store = os.path.join(cache, SELF_BYTECODE)
    if not _private(cache):
        return False            # missing (made by the run itself) or not trusted
    if not _private(store):
        try:
            os.mkdir(store, 0o700)
        except OSError:
            return False
        if not _private(store):
            return False
    from _blake2 import blake2b

    def stored(pyc: str) -> str:
        return os.path.join(store, blake2b(pyc.encode(), digest_size=16).hexdigest() + ".pyc")

    class Loader(ext.SourceFileLoader):
        """A source loader whose .pyc lives in the store, written whatever
        sys.dont_write_bytecode says (and only for runx's modules)."""

        def get_code(self, fullname):
            saved = sys.dont_write_bytecode
            sys.dont_write_bytecode = False
            try:
                return super().get_code(fullname)
            finally:
                sys.dont_write_bytecode = saved

        def get_data(self, path):
            return super().get_data(path if path == self.path else stored(path))

        def set_data(self, path, data, *, _mode=0o600):
            try:
                ext._write_atomic(stored(path), data, 0o600)  # type: ignore[attr-defined]
            except OSError:
                pass            # a full disk costs a compile, nothing more

    def hook(path: str):
        if path != package and not path.startswith(package + os.sep):
            raise ImportError("not runx's")
        return ext.FileFinder(path, (Loader, ext.SOURCE_SUFFIXES))

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.pop(package, None)      # the finder that found this module
    return True
