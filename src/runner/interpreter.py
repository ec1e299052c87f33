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

from ..errors import EXIT_ENV, RunxError
from ..reaper import ownership, store
from .paths import ancestors

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


class Choice:
    """Which interpreter a run asks for, and why (for -v and error messages)."""

    __slots__ = ("request", "source")

    def __init__(self, request, source):
        self.request = request      # a uv request string, or None: runx's own Python
        self.source = source        # "--python", "UV_PYTHON", a .python-version path, ...


def choose(python: str | None, *, script: str | None = None,
           requires_python: str | None = None) -> Choice:
    """What to ask uv for, in uv's order for ``uv run [--with X] [script.py]``:

    1. ``--python`` (or ``UV_PYTHON``, which uv treats as the same option);
    2. the nearest ``.python-version`` (from the script's directory for a
       script, as uv does, else from the cwd), then the user-level one: its
       first line, unless the script's ``requires-python`` excludes it;
    3. the script's ``requires-python``;
    4. nothing: the Python runx runs on (no subprocess: the fast default).
    """
    if python:
        return Choice(python, "--python")
    env = os.environ.get("UV_PYTHON")
    if env:
        return Choice(env, "UV_PYTHON")
    found = version_file(os.path.dirname(os.path.abspath(script)) if script else os.getcwd())
    if found is not None:
        # uv takes the file's first request; a script whose requires-python
        # it cannot meet ignores the file (measured with uv 0.13.9: "3.10\n3.13"
        # and >=3.12 runs what >=3.12 finds, not 3.13).
        path, requests = found
        if requests and (not requires_python or _compatible(requests[0], requires_python)):
            return Choice(requests[0], path)
    if requires_python:
        return Choice(requires_python, "requires-python")
    return Choice(None, "runx's own Python")


def _compatible(request: str, requires_python: str) -> bool:
    """Could a ``.python-version`` line name a Python that satisfies the
    script's requires-python? uv ignores the file when it cannot.
    Version-like lines are checked;
    anything else (a path, a name, a range) is left for uv to judge."""
    import re

    from .pep440 import satisfies

    m = re.fullmatch(r"(?:(?:cpython|python|pypy|graalpy|cp|pp)[@-]?)?"
                     r"(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+@]?[a-z0-9_]*)?", request.lower())
    if not m:
        return True
    major, minor, patch = m.groups()
    if patch is not None:
        candidates = [f"{major}.{minor}.{patch}"]
    elif minor is not None:
        candidates = [f"{major}.{minor}.{p}" for p in range(100)]
    else:
        candidates = [f"{major}.{n}.{p}" for n in range(40) for p in range(0, 100, 33)]
    return any(satisfies(v, requires_python) for v in candidates)


def version_file(start: str) -> tuple[str, list[str]] | None:
    """The ``.python-version`` uv would read: the nearest one in ``start`` and
    its ancestors, else the user-level one (``uv python pin --global``).
    Returns (path, requests): one request per line, comments and blank lines
    dropped, as uv parses it. Stats and one small read: warm-path safe."""
    for d in ancestors(os.path.abspath(start)):
        found = _read_version_file(os.path.join(d, ".python-version"))
        if found is not None:
            return found
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return _read_version_file(os.path.join(config, "uv", ".python-version"))


def _read_version_file(path: str):
    try:
        with open(path, "rb") as f:
            data = f.read(65536)
    except OSError:
        return None
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines()]
    return path, [ln for ln in lines if ln and not ln.startswith("#")]


def find(choice: "Choice | str | None", cache: str, *, uv_python_args=(),
         script: str | None = None) -> Interpreter:
    """The interpreter for ``choice``. No request: runx's own Python, with no
    subprocess. Otherwise ask ``uv python find`` (every form uv accepts:
    ``3.12``, ``>=3.12``, ``cpython@3.12``, ``3.13t``, ``pypy@3.10``, paths,
    commands) once, and cache the answer under everything that can change it
    (see _answer_key); a cached answer is used only while the executables it
    named keep their (size, mtime)."""
    if isinstance(choice, str) or choice is None:
        choice = Choice(choice, "--python") if choice else Choice(None, "runx's own Python")
    if not choice.request:
        return current()
    request = choice.request
    key = _answer_key(request, tuple(uv_python_args))
    entry = os.path.join(cache, store.INTERPRETERS, "find-" + key + ".marshal")
    info = _cached_answer(entry)
    if info is None:
        info = _resolve(choice, tuple(uv_python_args), script)
        _store_answer(entry, info)
    if info["facts"]["executable"] == _base_of_current():
        return current()
    return Interpreter(**info["facts"])


# Environment variables that change what ``uv python find`` answers: uv's own
# (UV_PYTHON_PREFERENCE, UV_MANAGED_PYTHON, UV_PYTHON_INSTALL_DIR, ...), and
# pyenv's, since a pyenv shim on PATH picks its target from them.
_ENV_PREFIXES = ("UV_PYTHON", "UV_MANAGED_PYTHON", "UV_NO_MANAGED_PYTHON", "PYENV",
                 "UV_CONFIG_FILE", "UV_NO_CONFIG", "XDG_DATA_HOME")


def _answer_key(request: str, uv_python_args: tuple) -> str:
    """Everything uv's answer depends on: the request and options, PATH, the
    nearest .venv (uv considers it), uv's and pyenv's variables, and
    the files pyenv reads to pick a version (``$PYENV_ROOT/version``, the
    nearest ``.python-version``). Stats and small reads only."""
    from .requirements import _hash

    h = _hash(digest_size=16)
    cwd = os.getcwd()
    # uv looks at the nearest .venv up from the cwd, and a relative path is
    # relative to it: key on those, not on the cwd itself, so a script run
    # from a new directory does not ask uv again.
    where = cwd if (os.sep in request or request.startswith(".")) else _nearest_venv(cwd)
    h.update(("\0".join((request, *uv_python_args, os.environ.get("PATH", ""), where))
              + "\0").encode())
    for k in sorted(os.environ):
        if k.startswith(_ENV_PREFIXES):
            h.update(f"{k}={os.environ[k]}\0".encode())
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.join(os.path.expanduser("~"), ".pyenv")
    local = version_file(os.getcwd())
    for path in (os.path.join(pyenv_root, "version"), local[0] if local else None):
        if path:
            try:
                with open(path, "rb") as f:
                    h.update(path.encode() + b"\0" + f.read(65536) + b"\0")
            except OSError:
                pass
    return h.hexdigest()


def _nearest_venv(start: str) -> str:
    d = start
    while True:
        if os.path.isdir(os.path.join(d, ".venv")):
            return os.path.join(d, ".venv")
        parent = os.path.dirname(d)
        if parent == d:
            return ""
        d = parent


def _cached_answer(entry: str):
    """The cached answer, if every executable it named is unchanged."""
    import marshal

    # The answer names the program every run will exec as python: believed
    # only from a directory and a file that are ours and private. The cache
    # root was checked by the caller.
    got = ownership.read_private(entry)
    if got is None:
        return None
    try:
        info = marshal.loads(got[0])
        for sig in info["stats"]:
            if store.file_signature(sig[0]) != tuple(sig):
                return None
        if os.path.realpath(info["found"]) != info["real"]:
            return None             # a link retargeted, even to an identical-looking file
        return info
    except (OSError, ValueError, EOFError, TypeError, KeyError):
        return None


def _store_answer(entry: str, info: dict) -> None:
    import marshal

    ownership.write_private(entry, marshal.dumps(info))


def _resolve(choice: Choice, uv_python_args: tuple, script: str | None) -> dict:
    """Ask uv (cold path), downloading a managed Python when uv run would."""
    from . import uv

    request = choice.request
    what = _describe(choice)
    found, err = uv.python_find(request, uv_python_args)
    if not found and uv.downloads_allowed(uv_python_args) and _downloadable(err):
        failed = uv.python_install(request, uv_python_args)
        if failed:
            err = f"{err}; no download either: {failed}"
        else:
            found, err = uv.python_find(request, uv_python_args)
    if not found:
        if "is a pyenv shim" in err:
            hint = ("select that version with 'pyenv shell VERSION' or 'pyenv local VERSION', "
                    "or give the interpreter's own path: versions/VERSION/bin/ under pyenv's root")
        elif choice.source == "requires-python":
            hint = (f"install one with 'uv python install \"{request}\"', "
                    "or choose one with --python")
        elif "/" in request:
            hint = "give the path of a working Python executable, or a version like 3.12"
        else:
            hint = f"install it with 'uv python install {request}', or give a path"
        if choice.source == "requires-python":
            raise RunxError(f"{script} requires Python {request}: {err or 'none found'}",
                            hint, EXIT_ENV)
        raise RunxError(f"{what}: {err or 'no such Python found'}", hint, EXIT_ENV)
    real = os.path.realpath(found)
    facts = current() if real == _base_of_current() else _probe(real, what)
    # Re-validated on every use: what uv named, where its links lead, and the
    # base interpreter it runs (a shim or a venv's python runs another file).
    stats = []
    for p in dict.fromkeys((found, real, facts.executable)):
        stats.append(store.file_signature(p))
    return {"found": found, "real": real, "stats": stats, "facts": facts.as_dict()}


def _downloadable(err: str) -> bool:
    # uv says "No interpreter found for ..." when nothing local matches; other
    # errors (a malformed request, a missing path) are not fixed by a download.
    return "No interpreter found" in (err or "")


def _describe(choice: Choice) -> str:
    if choice.source in ("--python", "UV_PYTHON"):
        return f"{choice.source} {choice.request}"
    if choice.source == "requires-python":
        return f"requires-python {choice.request!r}"
    return f"{choice.request!r} from {choice.source}"


def _probe(path: str, what: str) -> Interpreter:
    """Run ``path`` once to learn its facts. Not cached by the binary's own
    (size, mtime): a pyenv shim is the same file whatever it runs (the
    answer cache above keys on what makes the shim choose)."""
    import json
    import subprocess

    try:
        out = subprocess.run([path, "-I", "-S", "-c", _PROBE], capture_output=True,
                             stdin=subprocess.DEVNULL, timeout=30, check=True).stdout
        return Interpreter(**json.loads(out))
    except (OSError, subprocess.SubprocessError, ValueError, TypeError):
        raise RunxError(f"{what}: {path} is not a working Python interpreter",
                        "give a path to a python executable, a command on PATH "
                        "or a version like 3.11")
