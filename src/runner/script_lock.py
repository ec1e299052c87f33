"""A script's lock, ``SCRIPT.lock`` (``uv lock --script SCRIPT`` writes it):
when it is there, ``uv run SCRIPT`` installs exactly what it pins, and so
does runx.

uv's reading (crates/uv/src/commands/project/run.rs): a lock is used when
``SCRIPT.lock`` is a file; by default uv checks it against the script's block
and, if it is out of date, re-resolves and rewrites it; ``--locked`` stops
instead (exit 1), ``--frozen`` installs it unchecked; an unparsable lock
stops uv (exit 2).

runx lets uv do all of that: on a cold run ``uv export --script`` (which
takes the same lock, with the same check, rewrite and flags) prints the
pins, hashes included, and ``uv pip install -r`` installs them into the
layer, with the block's index settings to fetch them from. The layer's
key holds the lock's bytes (Lock.identity), so a warm run reads one small
file more and runs no uv; a lock uv rewrote names another layer.
"""

import os

from ..errors import RunxError, UsageError, say

# The options of ``uv export`` among those runx passes to uv (runx's own
# spelling, as typed): the lock check and a re-lock see them as uv run
# would (tests/test_scripts.py checks each against ``uv export --help``).
EXPORT_TAKES = frozenset((
    "--index", "--default-index", "--index-strategy", "--keyring-provider", "--exclude-newer",
    "--exclude-newer-package", "--prerelease", "--prerelease-package", "--resolution",
    "--fork-strategy", "--no-sources", "--no-sources-package", "--link-mode",
    "--config-setting", "--config-settings-package", "--no-build-isolation",
    "--no-build-isolation-package", "--no-build", "--no-build-package", "--no-binary",
    "--no-binary-package", "--require-build-hashes", "--no-config", "--config-file",
    "--upgrade", "--upgrade-package", "--refresh-package", "--cache-dir",
    "--allow-insecure-host", "--system-certs",
))


class Lock:
    """SCRIPT.lock as a layer input: its bytes, and how it is to be used."""

    def __init__(self, script: str, path: str, content: bytes, *, frozen: bool, locked: bool):
        self.script = script
        self.path = path
        self.content = content
        self.frozen = frozen        # --frozen: installed as it is, unchecked
        self.locked = locked        # --locked: out of date is an error
        self.export: str | None = None   # the pins uv exported (a requirements file), once cold

    def identity(self) -> bytes:
        # --frozen may install a lock uv would have re-resolved: its layer is
        # not the checked one's. --locked installs the same as the default.
        return b"lock\0" + self.content + (b"\0frozen" if self.frozen else b"")


def find(script: str, *, frozen: bool = False, locked: bool = False):
    """The script's Lock, or None when ``SCRIPT.lock`` is no file (as uv: a
    directory of that name is no lock). --locked/--frozen without one: uv's
    error (exit 2)."""
    path = script + ".lock"
    if not os.path.isfile(path):
        if locked or frozen:
            flag = "--locked" if locked else "--frozen"
            raise UsageError(f"{script}: no lock file ({os.path.basename(path)}), but {flag} "
                             "was given", f"make one with: uv lock --script {script}")
        return None
    from .paths import read_input

    content = read_input(path, "script lock", f"check the file, or remake it with "
                         f"'uv lock --script {script}'")
    return Lock(script, path, content, frozen=frozen, locked=locked)


def check(lock: Lock) -> None:
    """A lock uv could not read is one clear error (exit 2, as uv), before
    uv is asked to export it. Cold path only (tomllib)."""
    try:
        import tomllib
    except ImportError:      # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    hint = f"remake it with 'uv lock --script {lock.script}'"
    try:
        table = tomllib.loads(lock.content.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UsageError(f"{lock.path}: not UTF-8 text (byte {e.start})", hint)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{lock.path}: not a valid lock file: {e}", hint)
    version = table.get("version")
    if version != 1:
        raise UsageError(f"{lock.path}: a lock of schema version {version!r}; the uv runx "
                         "runs reads version 1 only", hint)


def export(lock: Lock, o, spec, interp, cache: str, log) -> None:
    """Have uv check (or re-resolve and rewrite) the lock and export its pins
    into a requirements file; ``Lock.export`` names it and ``Lock.content`` is
    what the lock holds now. Says so when uv rewrote the lock."""
    from . import uv
    from .pep723 import _content_file

    check(lock)
    args = ["export", "--script", lock.script, "--format", "requirements-txt", "--no-header",
            "--python", interp.executable]
    args += ["--frozen"] if lock.frozen else ["--locked"] if lock.locked else []
    args += spec.index_args() + _export_options(o)
    log(f"script lock {lock.path}: uv {' '.join(args)}")
    out = uv.run(args, what=f"reading the script's lock {lock.path}", verbosity=o.verbosity,
                 env_extra=spec.uv_env)
    now = _read(lock.path)
    if now != lock.content:
        if o.verbosity >= 0:
            say(f"runx: {lock.path} was out of date with {lock.script}'s block: uv "
                "re-resolved it and rewrote the lock, as uv run does\n")
        lock.content = now
    base = os.path.dirname(os.path.abspath(lock.script))
    lock.export = _content_file(cache, "".join(_absolute(ln, base) + "\n"
                                               for ln in out.splitlines()))


def _export_options(o) -> list:
    """The user's options that uv export takes, in runx's (uv's) spelling."""
    args: list = []
    if o.offline:
        args.append("--offline")
    for opt, value in o.layer_args:
        if opt.name in EXPORT_TAKES:
            args += [opt.name] if value is None else [
                opt.name, os.path.abspath(value) if opt.kind == "file" else value]
    run_args = o.uv_run_args
    for i, a in enumerate(run_args):
        if a in EXPORT_TAKES:
            args.append(a)
            if i + 1 < len(run_args) and not run_args[i + 1].startswith("-"):
                args.append(run_args[i + 1])
    return args


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise RunxError(f"{path}: cannot read the lock uv wrote: {e.strerror}",
                        "check the script's directory")


def _absolute(line: str, base: str) -> str:
    """uv exports local paths relative to the script's directory; uv pip
    install would read them against the cwd."""
    prefix = ""
    body = line
    if body.startswith("-e "):
        prefix, body = "-e ", body[3:].lstrip()
    if body.startswith(("./", "../")) or body in (".", ".."):
        return prefix + os.path.normpath(os.path.join(base, body))
    return line
