"""The one place runx calls uv: create a venv, install into it, find a Python.

Only the cold path imports this module (it imports subprocess). uv's own
explanation of a failure is what the user needs, so it is shown as is, then
one runx line that says what runx was doing.
"""

import os
import re
import subprocess
import sys
import time

from ..errors import EXIT_ENV, RunxError, say
from ..reaper import watch


def binary() -> str:
    override = os.environ.get("RUNX_UV")
    if override:
        return override
    # The uv package's binary beside this interpreter: the first place its
    # find_uv_bin looks (the scripts directory, {prefix}/bin on POSIX),
    # without importing sysconfig, fnmatch and re for it (about 5 ms of
    # every cold run; issue 24.1).
    beside = os.path.join(sys.prefix, "bin", "uv")
    if os.path.isfile(beside):
        return beside
    try:
        from uv import find_uv_bin  # the PyPI package ships the binary

        return find_uv_bin()
    except Exception:
        pass
    import shutil       # imports fnmatch and re: only where the package's binary is not

    found = shutil.which("uv")
    if not found:
        raise RunxError("uv not found", "install it with 'pip install uv' (runx depends on it)")
    return found


def _uv_cache(env: dict) -> None:
    """Choose uv's cache when uv would have none of its own: runx's cache
    came from systemd (CacheDirectory=: the service's one place for caches),
    or uv's default (XDG_CACHE_HOME/uv, ~/.cache/uv) cannot be created, as
    for a system user whose home is /nonexistent. Then it is <runx cache>/uv
    (store.UV_CACHE), on the layers' file system (uv links from it). The
    user's UV_CACHE_DIR, UV_NO_CACHE or --cache-dir (which beats the
    variable) win."""
    if env.get("UV_CACHE_DIR") or env.get("UV_NO_CACHE"):
        return
    from . import paths
    from ..reaper.store import UV_CACHE

    if paths.cache_source() in ("CACHE_DIRECTORY", "STATE_DIRECTORY") or not _creatable(
            os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "uv")):
        env["UV_CACHE_DIR"] = os.path.join(paths.cache_dir(), UV_CACHE)


def _creatable(path: str) -> bool:
    """Whether ``path`` is a directory this user can write, or can be made
    (its nearest existing ancestor is writable)."""
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


# How long a re-resolution that has a layer to fall back on may take to find
# out that the network or the index is down (issue 22.1): uv's defaults are
# a 10 s connect timeout, 30 s per read and 3 retries (8 s against a refused
# port, 125 s against one that accepts and never answers, uv 0.13.9).
# Set for uv only when the user has not set them.
BOUNDS = (("UV_HTTP_CONNECT_TIMEOUT", "2"), ("UV_HTTP_TIMEOUT", "5"), ("UV_HTTP_RETRIES", "0"))
BOUNDS_TEXT = "at most 2 s to connect and 5 s for a reply, no retries"
# uv's words for a failure of the network or the index (its cause chain);
# a hash mismatch is not one, nor is "No solution found" (exit 1).
_NETWORK = ("Failed to fetch", "error sending request", "Request failed after",
            "tcp connect error", "operation timed out", "dns error", "Connection refused",
            "Network is unreachable", "HTTP status server error", "connection closed")


class Unreachable(RunxError):
    """uv failed for a reason of the network or the index: ``reason`` is
    the innermost cause uv gave, and where."""

    def __init__(self, reason: str):
        super().__init__(f"the index could not be reached: {reason}", None, EXIT_ENV)
        self.reason = reason


def network_reason(returncode: int, stderr: str) -> str:
    """uv's innermost cause ("Connection refused (os error 111)", "operation
    timed out", "HTTP status server error (503 …)") and the URL it fetched,
    if uv failed for a reason of the network or the index; else ""."""
    if returncode != 2 or "Hash mismatch" in stderr or not any(
            w in stderr for w in _NETWORK):
        return ""
    causes = [ln.strip()[len("cause:"):].strip() for ln in stderr.splitlines()
              if ln.strip().startswith("cause:")]
    url = ""
    for ln in stderr.splitlines():
        if "Failed to fetch: " in ln:
            url = ln.split("Failed to fetch: ", 1)[1].strip().strip("`")
            break
    reason = causes[-1] if causes else stderr.strip().splitlines()[-1].removeprefix("error: ")
    return reason + (f" ({url})" if url and url not in reason else "")


def run(args: list[str], *, what: str, verbosity: int = 0, summary: bool = False,
        env_extra: dict | None = None, fallback: bool = False) -> str:
    """Run ``uv ARGS``. Progress reaches a terminal; elsewhere uv's output is
    held back and shown only if it fails, when its explanation is printed
    before runx's line. With ``summary`` (an install, not on a terminal, not
    -q) one line says what was installed and how long it took. With
    ``fallback`` (the caller has an older layer to serve) uv's time to find
    out the network is down is bounded (BOUNDS), its output held back even
    on a terminal, and a failure of the network or the index raises
    Unreachable without showing uv's explanation."""
    show = verbosity >= 0 and sys.stderr is not None and sys.stderr.isatty() and not fallback
    summary = summary and not show and verbosity >= 0
    cmd = [binary(), *args]
    if verbosity < 0 or (not show and verbosity == 0 and not summary):
        cmd.insert(2, "--quiet")
    if verbosity > 1:
        cmd.insert(2, "--verbose")
    env = dict(os.environ, UV_NO_WRAP="1", **(env_extra or {}))   # whole sentences, quoted
    for k in [k for k, v in env.items() if v is None]:    # None: unset for uv
        del env[k]
    _uv_cache(env)
    if fallback:
        for var, value in BOUNDS:
            if not (env.get(var) or var == "UV_HTTP_TIMEOUT" and (
                    env.get("UV_REQUEST_TIMEOUT") or env.get("HTTP_TIMEOUT"))):
                env[var] = value
    env.pop("VIRTUAL_ENV", None)   # uv must act on the paths runx gives, nothing else
    started = time.monotonic()
    try:
        if show and verbosity == 0:
            proc = _on_terminal(cmd, env)
        else:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=None if show else subprocess.PIPE, env=env, text=True,
                errors="replace",
                preexec_fn=watch.die_with_parent())  # killed with runx: never writes on
    except OSError as e:
        raise RunxError(f"cannot run uv ({cmd[0]}): {e.strerror}",
                        "reinstall runx, or set RUNX_UV to a uv binary")
    if proc.returncode != 0:
        reason = network_reason(proc.returncode, proc.stderr or "") if fallback else ""
        if reason:
            raise Unreachable(reason)
        shown = "".join(ln for ln in (proc.stderr or "").splitlines(True)
                        if not _hidden(ln)) if verbosity <= 0 else proc.stderr
        if shown:
            say(shown if shown.endswith("\n") else shown + "\n")
        raise RunxError(f"{what} failed (uv exited with {proc.returncode})",
                        "see uv's explanation above", EXIT_ENV)
    if summary:
        say(_summary(proc.stderr or "", time.monotonic() - started))
    return proc.stdout


# What `uv pip install` says that `uv run --with` does not (uv's
# SummaryResolveLogger and SummaryInstallLogger, crates/uv/src/commands/pip/
# loggers.rs): the target environment (here an internal .tmp- path, or the
# base interpreter with --prefix), the Resolved/Prepared/Checked/Audited
# lines and the changelog (+ - ~ lines).
# Kept: the spinner and bars, "Installed N packages in X", warnings, errors.
_HIDDEN = re.compile(r"(Using \S+ \S+ (environment|interpreter) at: "
                     r"|(Resolved|Prepared|Checked|Audited)( \d+ packages?)? in | [+~-] \S)")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _hidden(text: str) -> bool:
    return bool(_HIDDEN.match(_ANSI.sub("", text).strip("\r\n")))


def _on_terminal(cmd: list, env: dict) -> subprocess.CompletedProcess:
    """uv with its stderr on a pty of its own, the terminal's size, so that
    it draws its progress as it does for ``uv run --with``; relayed to our
    terminal a segment at a time (a frame ends at CR, a line at LF), without
    the _HIDDEN ones. stdout is read too (``uv pip compile`` output)."""
    import fcntl
    import selectors
    import termios

    master, slave = os.openpty()
    try:
        size = fcntl.ioctl(2, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
    except OSError:
        pass
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR          # uv's LF stays LF: our terminal adds the CR
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    try:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=slave, env=env,
                             preexec_fn=watch.die_with_parent())
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    assert p.stdout is not None
    out, err, pending = [], [], b""
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    sel.register(p.stdout, selectors.EVENT_READ)
    try:
        while sel.get_map():
            for key, _ in sel.select():
                fd = key.fd
                try:
                    data = os.read(fd, 65536)
                except OSError:          # EIO: uv closed the pty
                    data = b""
                if not data:
                    sel.unregister(key.fileobj)
                elif fd == master:
                    err.append(data)
                    pending = _relay(pending + data)
                else:
                    out.append(data)
        _relay(pending, final=True)
    finally:
        sel.close()
        os.close(master)
        p.stdout.close()
    return subprocess.CompletedProcess(
        cmd, p.wait(), b"".join(out).decode(errors="replace"), "")


def _relay(buf: bytes, final: bool = False) -> bytes:
    """Write the complete segments of ``buf`` to stderr (a hidden one as a
    cleared line), return the incomplete rest."""
    start = 0
    while True:
        cr, lf = buf.find(b"\r", start), buf.find(b"\n", start)
        ends = [i for i in (cr, lf) if i >= 0]
        if not ends:
            break
        end = min(ends)
        if end == cr and cr + 1 < len(buf) and buf[cr + 1:cr + 2] == b"\n":
            end += 1                  # CRLF: one line end
        elif end == cr and cr + 1 == len(buf) and not final:
            break                     # a CR at the end: its LF may follow
        seg = buf[start:end + 1]
        _write(b"\r\x1b[2K" if _hidden(seg.decode(errors="replace")) else seg)
        start = end + 1
    rest = buf[start:]
    if final and rest:
        _write(rest)
        return b""
    return rest


def _write(data: bytes) -> None:
    try:
        sys.stderr.flush()
        while data:
            data = data[os.write(2, data):]
    except OSError:
        pass


def _summary(uv_stderr: str, seconds: float) -> str:
    """'runx: installed 3 packages in 1.2s (a==1, b==2, c==3)' from uv's own
    report (its ' + name==version' lines), for CI logs where a cold build
    would otherwise be an unexplained pause."""
    added = [ln[3:].strip() for ln in uv_stderr.splitlines() if ln.startswith(" + ")]
    if not added:
        return f"runx: nothing to install ({seconds:.1f}s)\n"
    shown = ", ".join(added[:5]) + (f", and {len(added) - 5} more" if len(added) > 5 else "")
    return (f"runx: installed {len(added)} package{'s' if len(added) != 1 else ''} "
            f"in {seconds:.1f}s ({shown})\n")


def pip_install(python: str, uv_args: list[str], *, offline: bool, refresh: bool,
                compile_bytecode: bool, verbosity: int, env_extra: dict | None = None,
                fallback: bool = False, prefix: str | None = None) -> None:
    """``uv pip install`` for ``python``: into its venv, or with ``prefix``
    into that directory as a venv of ``python`` would have it."""
    args = ["pip", "install", "--python", python]
    if prefix is not None:
        args += ["--prefix", prefix]
    if compile_bytecode:
        args.append("--compile-bytecode")
    if offline:
        args.append("--offline")
    if refresh:
        args.append("--refresh")
    run(args + uv_args, what="installing the requirements", verbosity=verbosity, summary=True,
        env_extra=env_extra, fallback=fallback)


def _python_env() -> dict:
    env = dict(os.environ, UV_NO_WRAP="1")   # runx quotes uv's line: not cut at COLUMNS
    env.pop("VIRTUAL_ENV", None)    # runx's default ignores an active venv; so does a request
    _uv_cache(env)
    return env


def python_find(request: str, extra_args=()) -> tuple[str | None, str]:
    """(path uv names for ``request``, uv's one-line reason when none)."""
    uv = binary()
    try:
        out = subprocess.run([uv, "python", "find", "--no-project", *extra_args, request],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             env=_python_env(), errors="replace")
    except OSError as e:
        return None, f"cannot run uv ({uv}): {e.strerror}"
    path = out.stdout.strip()
    if out.returncode == 0 and path:
        return path, ""
    lines = [ln.strip() for ln in out.stderr.splitlines() if ln.strip()]
    reason = lines[0] if lines else ""
    if reason.startswith("error: "):
        reason = reason[len("error: "):]
    return None, _pyenv_shim(lines) or reason


def _pyenv_shim(lines: list) -> str:
    """uv's "Failed to inspect Python interpreter" when what it ran was a
    pyenv shim that refused (the version that has the command is not the
    selected one): said as such, with the versions that have it; else ""."""
    said = [ln for ln in lines if ln.startswith("pyenv: ") and ln.endswith("command not found")]
    where = [ln.split("`")[1] for ln in lines[:1] if ln.count("`") >= 2]
    if not said or not where:
        return ""
    name = said[0][len("pyenv: "):].rsplit(":", 1)[0]
    versions, after = [], False
    for ln in lines:
        if after and ln[:1].isdigit() or after and ln.startswith(("pypy", "miniconda", "ana")):
            versions.append(ln)
        elif "exists in these Python versions" in ln:
            after = True
        elif after:
            break
    has = (f"; pyenv has {name} in {', '.join(versions)}, which is not selected here"
           if versions else "; no pyenv version has it")
    return f"{where[0]} is a pyenv shim, and the selected pyenv version has no {name}{has}"


def downloads_allowed(extra_args=()) -> bool:
    """Would ``uv run`` fetch a managed Python it does not find? uv's default
    ("automatic") yes; ``--no-python-downloads``, ``UV_PYTHON_DOWNLOADS=never``
    or ``manual``, and ``--offline`` say no."""
    if "--no-python-downloads" in extra_args or "--offline" in extra_args:
        return False
    if os.environ.get("UV_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    return os.environ.get("UV_PYTHON_DOWNLOADS", "automatic").lower() not in ("never", "manual")


def python_install(request: str, extra_args=()) -> str:
    """Download a managed Python for ``request``, as ``uv run`` would.
    Returns "" on success, else uv's one-line reason."""
    keep = [a for a in extra_args if a == "--offline"]   # the rest are find-only options
    uv = binary()
    try:
        out = subprocess.run([uv, "python", "install", "--quiet", *keep, request],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             env=_python_env(), errors="replace",
                             preexec_fn=watch.die_with_parent())
    except OSError as e:
        return f"cannot run uv ({uv}): {e.strerror}"
    if out.returncode == 0:
        return ""
    lines = [ln.strip() for ln in out.stderr.splitlines() if ln.strip()]
    reason = lines[0] if lines else f"uv exited with {out.returncode}"
    return reason[len("error: "):] if reason.startswith("error: ") else reason
