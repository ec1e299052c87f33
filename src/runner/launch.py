"""Start the reaper, then become the payload. Everything about the payload's
process — its PID, signals, fds, environment — is decided here.

Why a double fork: a single fork would leave the reaper as the payload's
child after the exec (a stray child the payload never asked for, and a
``wait(-1)`` in the payload that reaps it or hangs). The middle process calls
setsid and forks the reaper, then exits; the runner reaps the middle process
before the exec, so the payload starts with no children.
"""

import os
import sys

from runner.errors import EXIT_ENV, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, RunxError


def start_reaper(job, *, needs_handshake: bool) -> None:
    from reaper import daemon   # small; imported before the fork, so once

    log_path = os.environ.get("RUNX_REAPER_LOG")
    r = w = None
    if needs_handshake:
        r, w = os.pipe()        # both close-on-exec (PEP 446)
        job.handshake_fd = w
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:                                   # middle process
        code = 1
        try:
            if r is not None:
                os.close(r)
            os.setsid()
            if os.fork() == 0:                     # the reaper
                daemon.main(job, log_path)         # never returns
            code = 0
        finally:
            os._exit(code)
    if w is not None:
        os.close(w)
        job.handshake_fd = None
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:   # SIGCHLD ignored by the caller: auto-reaped
            status = 0
            break
    if status != 0:
        raise RunxError("could not start the reaper", "check the process limit (ulimit -u)")
    if r is not None:
        with os.fdopen(r, "rb") as f:
            answer = f.readline().decode(errors="replace").strip()
        if answer != "ok":
            msg = answer[len("error: "):] if answer.startswith("error: ") else "the reaper died"
            raise RunxError(msg, None, EXIT_ENV)


def resolve(command: str, path_var: str) -> str:
    """Find COMMAND as execvp would, with the shell's exit codes."""
    if "/" in command:
        candidates = [command]
    else:
        candidates = [os.path.join(d or ".", command) for d in path_var.split(os.pathsep)]
    denied = None
    for c in candidates:
        if os.path.isfile(c):
            if os.access(c, os.X_OK):
                return c
            denied = denied or c
        elif "/" in command and os.path.isdir(c):
            denied = c
    if denied:
        raise RunxError(f"{command}: permission denied (not an executable file: {denied})",
                        "check the file's mode (chmod +x) or the command's name",
                        EXIT_NOT_EXECUTABLE)
    if "/" in command:
        raise RunxError(f"{command}: no such file", "check the path", EXIT_NOT_FOUND)
    raise RunxError(f"{command}: command not found in the environment or on PATH",
                    "install the package that provides it with --with PKG",
                    EXIT_NOT_FOUND)


def payload_env(tree_path: str, base: dict) -> dict:
    env = dict(base)
    env["VIRTUAL_ENV"] = tree_path
    env["PATH"] = os.path.join(tree_path, "bin") + os.pathsep + base.get("PATH", os.defpath)
    env["RUNX_ENV"] = tree_path
    env.pop("__PYVENV_LAUNCHER__", None)   # macOS framework builds: would point at runx's python
    return env


def exec_payload(path: str, argv: list, env: dict):
    """Become the payload. Same PID, same parent, same fds (fd 3+ from the
    caller stay open: socket activation); runner-made fds are close-on-exec."""
    # Python sets SIGPIPE and SIGXFSZ to SIG_IGN at start-up, and SIG_IGN
    # survives exec: `runx … | head` would then see EPIPE instead of dying
    # quietly. Restore them as subprocess's restore_signals=True does. Other
    # handlers Python installed (SIGINT) reset to SIG_DFL by exec itself; a
    # signal the caller had ignored (nohup's SIGHUP) stays ignored.
    try:
        import _signal as sigmod    # the C module behind `signal`, which imports enum
    except ImportError:  # pragma: no cover
        import signal as sigmod
    for name in ("SIGPIPE", "SIGXFSZ"):
        sig = getattr(sigmod, name, None)
        if sig is not None:
            sigmod.signal(sig, sigmod.SIG_DFL)
    # Python's buffers die with the exec.
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(path, argv, env)
    except OSError as e:
        code = EXIT_NOT_FOUND if e.errno == 2 and not os.path.exists(path) else EXIT_NOT_EXECUTABLE
        raise RunxError(f"cannot execute {path}: {e.strerror}",
                        "check the script's #! line and the file's mode", code)
