"""Scripts: what runs as ``python SCRIPT``, its PEP 723 metadata (read as
uv reads it, ``[tool.uv]`` included), and the check of its
``requires-python`` against the interpreter (the specifiers themselves are
runner/pep440.py's).

Which first positional is a script (``runx SCRIPT [ARG...]``) is
options.is_script's: a command given by path must not load this module.

Only a run with a script (or ``--with-requirements x.py``) imports this
module; ``re`` and ``tomllib`` load only when a file has a ``# /// script``
block, never on a plain ``runx --with X cmd``.
"""

import os

from ..errors import UsageError, say
from .pep440 import parse_specifier, satisfies


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
    def __init__(self, dependencies=(), requires_python=None, found=False, unclosed=None,
                 tool_uv=None):
        self.dependencies = list(dependencies)
        self.requires_python = requires_python
        self.found = found          # a ``# /// script`` block was there
        self.unclosed = unclosed    # an Unclosed: a "# /// script" without its "# ///"
        self.tool_uv = tool_uv      # the block's [tool.uv] table, or None
        self.uv_env = {}            # what tool_uv() sends to uv by its variables


def read(path: str, *, what: str = "script") -> Metadata:
    """The ``script`` block of ``path``. Unreadable file, bad TOML, two
    blocks or wrongly typed fields: a UsageError naming the file."""
    from .paths import read_input

    data = read_input(path, what, "check the path" if what == "script"
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
        import tomli as tomllib  # type: ignore[no-redef]
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
    tool = table.get("tool", {})
    tool_uv = tool.get("uv") if isinstance(tool, dict) else None
    if tool_uv is not None and not isinstance(tool_uv, dict):
        raise UsageError(f"{path}: 'tool.uv' in the '# /// script' block must be a table",
                         "see https://docs.astral.sh/uv/guides/scripts/")
    return Metadata(deps, rp, True, tool_uv=tool_uv or None)


# --- [tool.uv] in a script block -----------------------------------------------
#
# ``uv run script.py`` applies the block's [tool.uv] settings. runx builds its
# layer with ``uv pip install``, so each key is mapped to what makes uv pip do
# the same, or refused: never ignored. The mapped settings are written to a
# requirements file named by its content (it also carries the whole table as
# a comment), passed with ``-r``: the layer key hashes that file, so any change
# to the table names another layer. Settings a requirements file cannot carry
# go to uv through its environment variables (unless the user set them: uv
# ranks its variables above the script's settings).

_UV_ENV = {"exclude-newer": "UV_EXCLUDE_NEWER", "prerelease": "UV_PRERELEASE",
           "resolution": "UV_RESOLUTION", "index-strategy": "UV_INDEX_STRATEGY"}
_UV_FILES = {"override-dependencies": "UV_OVERRIDE",
             "build-constraint-dependencies": "UV_BUILD_CONSTRAINT"}
_UV_KEYS = set(_UV_ENV) | set(_UV_FILES) | {
    "sources", "index", "index-url", "extra-index-url", "find-links", "no-index",
    "constraint-dependencies"}
_HINT = "remove it, or run the script with 'uv run'"


class ToolUv:
    """What a [tool.uv] table becomes: the dependencies left as they are, one
    generated requirements file (or None), and variables for uv."""

    def __init__(self, dependencies, requirements_file, env):
        self.dependencies = dependencies
        self.requirements_file = requirements_file
        self.env = env


def tool_uv(meta: Metadata, script: str, cache: str) -> ToolUv:
    table = meta.tool_uv or {}
    for k in table:
        if k not in _UV_KEYS:
            raise UsageError(f"{script}: [tool.uv] '{k}' in the script block is not "
                             "supported by runx", _HINT)
    base = os.path.dirname(os.path.abspath(script))
    lines, env, deps = [], {}, list(meta.dependencies)

    def strings(key, value):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise UsageError(f"{script}: [tool.uv] '{key}' must be a list of strings", _HINT)
        return value

    def local(value):
        # A relative path in the block is relative to the script, as in uv.
        if "://" in value:
            return value
        return os.path.normpath(os.path.join(base, os.path.expanduser(value)))

    def companion(key, reqs):
        text = "".join(r.strip() + "\n" for r in strings(key, reqs))
        return _content_file(cache, text)

    indexes = table.get("index", [])
    if not isinstance(indexes, list) or not all(isinstance(i, dict) for i in indexes):
        raise UsageError(f"{script}: [[tool.uv.index]] must be an array of tables", _HINT)
    for ix in indexes:
        url = ix.get("url")
        if not isinstance(url, str):
            raise UsageError(f"{script}: [[tool.uv.index]] needs a 'url'", _HINT)
        other = set(ix) - {"name", "url", "default", "explicit", "format"}
        if ix.get("format", "simple") not in ("simple", "flat"):
            other.add("format")
        if other:
            raise UsageError(f"{script}: [[tool.uv.index]] '{sorted(other)[0]}' is not "
                             "supported by runx", _HINT)
        if ix.get("explicit") or table.get("no-index"):
            continue    # explicit: only for sources naming it (refused); no-index: all off
        if ix.get("format") == "flat":         # a directory or page of files
            lines.append("--find-links " + local(url))
        else:
            lines.append(("--index-url " if ix.get("default") else "--extra-index-url ")
                         + local(url))
    if "index-url" in table:
        lines.append("--index-url " + local(strings("index-url", table["index-url"])[0]))
    for u in strings("extra-index-url", table.get("extra-index-url", [])):
        lines.append("--extra-index-url " + local(u))
    for u in strings("find-links", table.get("find-links", [])):
        lines.append("--find-links " + local(u))
    if table.get("no-index"):
        lines.append("--no-index")
    if "constraint-dependencies" in table:
        lines.append("-c " + companion("constraint-dependencies",
                                       table["constraint-dependencies"]))
    for key, var in _UV_FILES.items():
        if key in table and not os.environ.get(var):
            env[var] = companion(key, table[key])
    for key, var in _UV_ENV.items():
        if key in table and not os.environ.get(var):
            value = table[key]
            if not isinstance(value, str):
                raise UsageError(f"{script}: [tool.uv] '{key}' must be a string", _HINT)
            env[var] = value
    sources = table.get("sources", {})
    if not isinstance(sources, dict):
        raise UsageError(f"{script}: [tool.uv.sources] must be a table", _HINT)
    if sources:
        deps, sourced = _apply_sources(deps, sources, script, local)
        lines += sourced
    if not lines and not env:
        return ToolUv(deps, None, env)
    head = "# runx: [tool.uv] of a script block: " + repr(sorted(table.items())) + "\n"
    return ToolUv(deps, _content_file(cache, head + "".join(ln + "\n" for ln in lines)), env)


def _apply_sources(deps, sources, script, local):
    """Direct dependencies named in [tool.uv.sources] become direct references
    (``name[extras] @ URL ; marker``), as uv resolves them for a script."""
    import re

    def key(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    by_name = {key(n): v for n, v in sources.items()}
    kept, sourced = [], []
    for d in deps:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?$", d)
        src = by_name.pop(key(m.group(1)), None) if m else None
        if m is None or src is None:
            kept.append(d)
            continue
        name, extras, marker = m.group(1), m.group(2) or "", m.group(4) or ""
        if not isinstance(src, dict):
            raise UsageError(f"{script}: [tool.uv.sources] '{name}': runx supports one "
                             "source table per package (path, git or url)", _HINT)
        extra_keys = set(src) - {"path", "editable", "git", "rev", "tag", "branch", "url",
                                 "subdirectory"}
        if extra_keys:
            raise UsageError(f"{script}: [tool.uv.sources] '{name}': "
                             f"'{sorted(extra_keys)[0]}' is not supported by runx", _HINT)
        sub = "#subdirectory=" + src["subdirectory"] if src.get("subdirectory") else ""
        if "path" in src:
            path = local(src["path"])
            if src.get("editable"):
                sourced.append(f"-e {path}")
                continue
            url = "file://" + path
        elif "git" in src:
            ref = src.get("rev") or src.get("tag") or src.get("branch")
            url = "git+" + src["git"] + (f"@{ref}" if ref else "") + sub
        elif "url" in src:
            url = src["url"] + sub
        else:
            raise UsageError(f"{script}: [tool.uv.sources] '{name}' needs path, git or url",
                             _HINT)
        sourced.append(f"{name}{extras} @ {url}" + (f" {marker}" if marker else ""))
    # A source for a package that is not a direct dependency does nothing in
    # uv either (sources apply to direct dependencies only).
    return kept, sourced


def _content_file(cache: str, text: str) -> str:
    """A file under the cache named by its content: written once, then only
    looked at, so equal settings give an equal path (and layer key)."""
    from ..reaper import store
    from .requirements import _hash

    d = os.path.join(cache, store.SCRIPT_SETTINGS)
    path = os.path.join(d, _hash(text.encode(), digest_size=16).hexdigest() + ".txt")
    for _ in range(3):
        try:
            os.utime(path)      # its last use, for the cache's expiry (reaper/expiry.py)
            break
        except FileNotFoundError:
            pass
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, path)
            break
        except FileNotFoundError:
            continue            # the cache's expiry removed the empty directory meanwhile
    return path


def check_python(meta: Metadata, version: str, path: str, verbosity: int = 0) -> bool:
    """Does the chosen interpreter satisfy requires-python? When it does not
    (only an explicit --python / UV_PYTHON can choose such a one), warn and
    run anyway, as ``uv run --python X script.py`` does."""
    if not meta.requires_python or satisfies(version, meta.requires_python):
        return True
    if verbosity >= 0:
        say(f"runx: warning: the requested interpreter is Python {version}, "
            f"which does not satisfy {path}'s requires-python "
            f"{meta.requires_python!r}; running it anyway, as uv does\n")
    return False
