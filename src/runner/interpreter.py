"""The base interpreter a run's environment is built on.

Default: the interpreter runx itself runs on, known without spawning
anything. ``--python`` takes a path, a command on PATH, or a version request
that uv resolves (``3.12``). Facts about a foreign interpreter are learned
once by running it and cached by (path, size, mtime), so warm runs never
spawn it.

The environment always links to the *real* base interpreter (the end of the
symlink chain, below any venv): a run started inside another venv or another
runx tree gets an environment independent of it.
"""

import os
import sys

from runner.errors import RunxError

# Warm path: the default interpreter's facts come from this process; the
# imports a foreign interpreter needs (subprocess, json, re) are made there.

_PROBE = (
    "import json, os, sys;"
    "b = os.path.realpath(getattr(sys, '_base_executable', None) or sys.executable);"
    "print(json.dumps({'executable': b, 'version': '%d.%d.%d' % sys.version_info[:3],"
    " 'implementation': sys.implementation.name, 'abiflags': getattr(sys, 'abiflags', ''),"
    " 'platform': sys.platform + '-' + os.uname().machine}))"
)

_FIELDS = ("executable", "version", "implementation", "abiflags", "platform")


class Interpreter:
    """The base interpreter: realpath of its binary, "3.11.7", "cpython",
    ABI flags, and "linux-x86_64"-style platform."""

    __slots__ = _FIELDS

    def __init__(self, executable, version, implementation, abiflags, platform):
        self.executable = executable
        self.version = version
        self.implementation = implementation
        self.abiflags = abiflags
        self.platform = platform

    def as_dict(self) -> dict:
        return {f: getattr(self, f) for f in _FIELDS}

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def lib_dir(self) -> str:
        """site-packages of a venv on this interpreter, relative to the venv."""
        if self.implementation == "pypy":
            return "site-packages"
        return f"lib/python{self.minor}{'t' if 't' in self.abiflags else ''}/site-packages"

    def identity(self) -> str:
        return "\0".join(getattr(self, f) for f in _FIELDS)


def _base_of_current() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def current() -> Interpreter:
    return Interpreter(
        executable=_base_of_current(),
        version="%d.%d.%d" % sys.version_info[:3],
        implementation=sys.implementation.name,
        abiflags=getattr(sys, "abiflags", ""),
        platform=sys.platform + "-" + os.uname().machine,
    )


def find(request: str | None, cache: str) -> Interpreter:
    if not request:
        return current()
    import re
    import shutil

    if os.sep in request or os.path.exists(request):
        path = os.path.abspath(request)
        if not os.path.isfile(path):
            raise RunxError(f"--python {request}: no such interpreter",
                            "give a path to a python executable, a command on PATH or a version like 3.11")
    elif re.fullmatch(r"(?:(?:cpython|python|pypy|cp)-?)?\d+(?:\.\d+){0,2}[t]?", request):
        exe = shutil.which(f"python{request}") if re.fullmatch(r"\d+\.\d+", request) else None
        path = exe or _uv_find(request)
    else:
        path = shutil.which(request)
        if path is None:
            raise RunxError(f"--python {request}: not found on PATH",
                            "give a path to a python executable, a command on PATH or a version like 3.11")
    real = os.path.realpath(path)
    if real == _base_of_current():
        return current()
    return _probe_cached(real, cache)


def _uv_find(request: str) -> str:
    from runner import uv

    path = uv.python_find(request)
    if not path:
        raise RunxError(f"--python {request}: no such Python found",
                        f"install it (e.g. 'uv python install {request}') or give a path")
    return path


def _probe_cached(path: str, cache: str) -> Interpreter:
    import hashlib
    import json

    try:
        st = os.stat(path)
    except OSError as e:
        raise RunxError(f"--python {path}: {e.strerror}")
    key = hashlib.sha256(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:32]
    from runner import paths

    # Facts name the program every run will exec as python: believed only
    # from a directory chain and a file that are ours and private (issue 10,
    # defect 5). The cache root was checked by the caller.
    facts_dir = os.path.join(cache, "interpreters")
    paths.trusted(facts_dir)
    entry = os.path.join(facts_dir, key + ".json")
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        fd = None
    if fd is not None:
        with open(fd) as f:
            paths.trusted_file(fd, entry)
            try:
                return Interpreter(**json.load(f))
            except (OSError, ValueError, TypeError):
                pass
    import subprocess

    try:
        out = subprocess.run([path, "-I", "-S", "-c", _PROBE], capture_output=True,
                             stdin=subprocess.DEVNULL, timeout=30, check=True).stdout
        info = Interpreter(**json.loads(out))
    except (OSError, subprocess.SubprocessError, ValueError, TypeError):
        raise RunxError(f"--python {path}: not a working Python interpreter",
                        "give a path to a python executable, a command on PATH or a version like 3.11")
    try:
        paths.private_dir(cache)
        paths.private_dir(facts_dir)
        tmp = f"{entry}.{os.getpid()}"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600),
                  "w") as f:
            json.dump(info.as_dict(), f)
        os.replace(tmp, entry)
    except (OSError, RunxError):
        pass      # a read-only cache: the facts are learned again next time
    return info
