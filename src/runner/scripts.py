"""Scripts: what runs as ``python SCRIPT``, its PEP 723 metadata, and the
small PEP 440 check for its ``requires-python``.

Which first positional is a script (``runx SCRIPT [ARG...]``): an existing
file whose name ends in ``.py``, or an existing file whose first line is a
``#!`` line that mentions runx (``#!/usr/bin/env -S runx``: the kernel then
runs ``runx /path/to/script ARG...``). Anything else is a command, as before.

Only a run with a script (or ``--with-requirements x.py``) imports this
module; ``re`` and ``tomllib`` load only when a file has a ``# /// script``
block, never on a plain ``runx --with X cmd``.
"""

import os

from runner.errors import EXIT_ENV, RunxError, UsageError

_SHEBANG_PEEK = 512     # bytes read to see a shebang line


def is_script(arg: str) -> bool:
    """True if ``arg`` (the first positional) names a script runx should run
    with the environment's python. One stat for a plain command name."""
    if arg.endswith(".py"):
        return os.path.isfile(arg)
    if not os.path.isfile(arg):
        return False
    try:
        with open(arg, "rb") as f:
            first = f.read(_SHEBANG_PEEK).split(b"\n", 1)[0]
    except OSError:
        return False
    return first.startswith(b"#!") and b"runx" in first


def missing_script(arg: str) -> bool:
    """A ``.py`` name that is neither a file nor a command on PATH: the user
    meant a script that is not there (``runx sript.py``)."""
    if not arg.endswith(".py") or os.path.exists(arg):
        return False
    if "/" in arg:
        return True
    import shutil

    return shutil.which(arg) is None


class Metadata:
    def __init__(self, dependencies=(), requires_python=None, found=False, unclosed=None):
        self.dependencies = list(dependencies)
        self.requires_python = requires_python
        self.found = found          # a ``# /// script`` block was there
        self.unclosed = unclosed    # an Unclosed: a "# /// script" without its "# ///"


def read(path: str, *, what: str = "script") -> Metadata:
    """The ``script`` block of ``path``. Unreadable file, bad TOML, two
    blocks or wrongly typed fields: a UsageError naming the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror}",
                         "check the path" if what == "script"
                         else "check the path given to --with-requirements")
    if b"# /// script" not in data:          # the common case: no regex, no TOML
        return Metadata()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text (byte {e.start})",
                         "PEP 723 metadata is read as UTF-8")
    return parse(text, path)


_OPEN = "# /// script"


def _lines(text: str) -> list:
    """Lines as uv (Rust's ``str::lines``) cuts them: at "\\n", one trailing
    "\\r" dropped. So a CRLF script reads like an LF one, as in uv."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


class Unclosed:
    """Where an opened block went wrong, for the warning."""

    def __init__(self, line, stop_line=None, stop_text=None):
        self.line = line                # the '# /// script' line
        self.stop_line = stop_line      # the first line that is not a metadata comment
        self.stop_text = stop_text

    def describe(self) -> str:
        if self.stop_line is None:
            return ("the '# /// script' block has no closing '# ///' line before the end "
                    "of the file")
        shown = self.stop_text if len(self.stop_text) <= 40 else self.stop_text[:37] + "..."
        why = ("is not a comment" if not self.stop_text.startswith("#") else
               "has no space after '#'")
        return (f"the '# /// script' block has no closing '# ///' line: line "
                f"{self.stop_line} ({shown!r}) {why}, which ends the block; every line "
                "up to '# ///' must be '#' alone or start with '# '")


def parse(text: str, path: str = "<script>") -> Metadata:
    """The block as uv reads it (crates/uv-scripts, ScriptTag::parse): the
    first '# /// script', at the start of a line, opens it; it runs over the
    lines that are '#' alone or start with '# '; the last '///' among them
    closes it. CRLF line ends are the same as LF."""
    i = text.find(_OPEN)
    if i < 0 or (i > 0 and text[i - 1] not in "\r\n"):
        return Metadata()
    start = text.count("\n", 0, i) + 1
    lines = _lines(text[i:])
    if lines[0] != _OPEN:
        return Metadata()
    toml, stop = [], None
    for n, line in enumerate(lines[1:], 1):
        if line == "#":
            toml.append("")
        elif line.startswith("# "):
            toml.append(line[2:])
        else:
            stop = n
            break
    closing = max((k for k, ln in enumerate(toml) if ln == "///"), default=None)
    if closing is None:
        # uv refuses such a script; PEP 723 says ignore the block. runx runs
        # it and says exactly what is wrong (the caller warns).
        return Metadata(unclosed=Unclosed(start, None if stop is None else start + stop,
                                          None if stop is None else lines[stop]))
    # PEP 723: a second script block is an error (uv reads only the first).
    for k in range(closing + 2, len(lines)):
        if lines[k] == _OPEN:
            raise UsageError(f"{path}: more than one '# /// script' block (lines {start}, "
                             f"{start + k})", "PEP 723 allows one; merge them")
    content = "\n".join(toml[:closing]) + "\n"
    try:
        import tomllib
    except ImportError:      # Python 3.10
        import tomli as tomllib
    try:
        table = tomllib.loads(content)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: malformed '# /// script' block at line {start}: {e}",
                         "the block's content must be TOML (PEP 723)")
    deps = table.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise UsageError(f"{path}: 'dependencies' in the '# /// script' block must be a "
                         "list of strings", 'e.g. dependencies = ["requests<3", "rich"]')
    deps = [d.strip() for d in deps]
    for d in deps:
        if not d or d.startswith("-"):
            # uv would take "-e x" or "--index-url=..." as an option: refuse it.
            raise UsageError(f"{path}: {d!r} in 'dependencies' is not a requirement",
                             'e.g. dependencies = ["requests<3", "rich"]')
    rp = table.get("requires-python")
    if rp is not None and not isinstance(rp, str):
        raise UsageError(f"{path}: 'requires-python' must be a string",
                         'e.g. requires-python = ">=3.11"')
    if rp is not None:
        parse_specifier(rp, path)      # malformed: say so now, whatever the interpreter
    return Metadata(deps, rp, True)


# --- requires-python: a PEP 440 specifier check, not a resolver ---------------

_OPS = ("===", "~=", "==", "!=", "<=", ">=", "<", ">")
_PRE = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


def _version(text: str):
    """(release tuple, pre-release rank) of a PEP 440 version, or None.
    Enough for Python versions: epochs, post and dev releases are refused."""
    import re

    m = re.fullmatch(r"v?(\d+(?:\.\d+)*)(?:[-_.]?(a|alpha|b|beta|c|rc|pre|preview)[-_.]?(\d*))?",
                     text.strip().lower())
    if not m:
        return None
    release = tuple(int(x) for x in m.group(1).split("."))
    pre = (_PRE[m.group(2)], int(m.group(3) or 0)) if m.group(2) else (9, 0)
    return release, pre


def _pad(release: tuple, n: int) -> tuple:
    return release + (0,) * (n - len(release))


def _cmp(a, b) -> int:
    n = max(len(a[0]), len(b[0]))
    ka, kb = (_pad(a[0], n), a[1]), (_pad(b[0], n), b[1])
    return (ka > kb) - (ka < kb)


def parse_specifier(spec: str, path: str = "<script>") -> list:
    """``">=3.9, !=3.10.*"`` → [(op, version text, parsed, wildcard)]."""
    out = []
    for clause in spec.split(","):
        clause = clause.strip()
        op = next((o for o in _OPS if clause.startswith(o)), None)
        ver = clause[len(op):].strip() if op else ""
        wildcard = ver.endswith(".*")
        parsed = _version(ver[:-2] if wildcard else ver)
        if (op is None or parsed is None or (wildcard and op not in ("==", "!="))
                or (op == "~=" and len(parsed[0]) < 2)):
            if op == "===" and ver:
                out.append((op, ver, None, False))
                continue
            raise UsageError(f"{path}: invalid requires-python {spec!r} (at {clause!r})",
                             'write e.g. ">=3.10" or ">=3.9, <3.13" (PEP 440)')
        out.append((op, ver, parsed, wildcard))
    return out


def satisfies(version: str, spec: str) -> bool:
    """Does interpreter ``version`` ("3.11.7") satisfy ``spec`` (PEP 440)?"""
    v = _version(version)
    for op, text, want, wildcard in parse_specifier(spec):
        if op == "===":
            ok = version.strip() == text
        elif wildcard:
            prefix = want[0]
            ok = _pad(v[0], len(prefix))[:len(prefix)] == prefix
            ok = ok if op == "==" else not ok
        elif op == "~=":
            prefix = want[0][:-1]
            ok = _cmp(v, want) >= 0 and _pad(v[0], len(prefix))[:len(prefix)] == prefix
        else:
            c = _cmp(v, want)
            ok = {"==": c == 0, "!=": c != 0, "<=": c <= 0, ">=": c >= 0,
                  "<": c < 0, ">": c > 0}[op]
        if not ok:
            return False
    return True


def check_python(meta: Metadata, version: str, path: str, verbosity: int = 0) -> bool:
    """Does the chosen interpreter satisfy requires-python? When it does not
    (only an explicit --python / UV_PYTHON can choose such a one), warn and
    run anyway, as ``uv run --python X script.py`` does."""
    if not meta.requires_python or satisfies(version, meta.requires_python):
        return True
    if verbosity >= 0:
        import sys

        sys.stderr.write(f"runx: warning: the requested interpreter is Python {version}, "
                         f"which does not satisfy {path}'s requires-python "
                         f"{meta.requires_python!r}; running it anyway, as uv does\n")
    return False
