"""The one place runx calls uv: create a venv, install into it, find a Python.

Only the cold path imports this module (it imports subprocess). uv's own
explanation of a failure is what the user needs, so it is shown as is, then
one runx line that says what runx was doing.
"""

import os
import subprocess
import sys
import time

from ..errors import EXIT_ENV, RunxError, say


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


def _die_with_parent() -> None:
    """preexec for uv (Linux): SIGKILL it if runx dies, so a killed run never
    leaves uv writing into a directory the sweep is about to remove."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9)     # PR_SET_PDEATHSIG, SIGKILL
    except Exception:
        pass


def run(args: list[str], *, what: str, verbosity: int = 0, summary: bool = False,
        env_extra: dict | None = None) -> str:
    """Run ``uv ARGS``. Progress reaches a terminal; elsewhere uv's output is
    held back and shown only if it fails, when its explanation is printed
    before runx's line. With ``summary`` (an install, not on a terminal, not
    -q) one line says what was installed and how long it took."""
    show = verbosity >= 0 and sys.stderr is not None and sys.stderr.isatty()
    summary = summary and not show and verbosity >= 0
    cmd = [binary(), *args]
    if verbosity < 0 or (not show and verbosity == 0 and not summary):
        cmd.insert(2, "--quiet")
    if verbosity > 1:
        cmd.insert(2, "--verbose")
    env = dict(os.environ, UV_NO_WRAP="1", **(env_extra or {}))   # whole sentences, quoted
    for k in [k for k, v in env.items() if v is None]:    # None: unset for uv
        del env[k]
    env.pop("VIRTUAL_ENV", None)   # uv must act on the paths runx gives, nothing else
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=None if show else subprocess.PIPE, env=env, text=True,
            errors="replace",
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    except OSError as e:
        raise RunxError(f"cannot run uv ({cmd[0]}): {e.strerror}",
                        "reinstall runx, or set RUNX_UV to a uv binary")
    if proc.returncode != 0:
        if proc.stderr:
            say(proc.stderr if proc.stderr.endswith("\n") else proc.stderr + "\n")
        raise RunxError(f"{what} failed (uv exited with {proc.returncode})",
                        "see uv's explanation above", EXIT_ENV)
    if summary:
        say(_summary(proc.stderr or "", time.monotonic() - started))
    return proc.stdout


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
                prefix: str | None = None) -> None:
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
        env_extra=env_extra)


def _python_env() -> dict:
    env = dict(os.environ, UV_NO_WRAP="1")   # runx quotes uv's line: not cut at COLUMNS
    env.pop("VIRTUAL_ENV", None)    # runx's default ignores an active venv; so does a request
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
    return None, reason


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
                             preexec_fn=_die_with_parent if sys.platform.startswith("linux")
                             else None)
    except OSError as e:
        return f"cannot run uv ({uv}): {e.strerror}"
    if out.returncode == 0:
        return ""
    lines = [ln.strip() for ln in out.stderr.splitlines() if ln.strip()]
    reason = lines[0] if lines else f"uv exited with {out.returncode}"
    return reason[len("error: "):] if reason.startswith("error: ") else reason
