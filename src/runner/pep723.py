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
    def __init__(self, dependencies=(), requires_python=None, found=False, tool_uv=None):
        self.dependencies = list(dependencies)
        self.requires_python = requires_python
        self.found = found          # a ``# /// script`` block was there
        self.tool_uv = tool_uv      # the block's [tool.uv] table, or None
        self.entry: str | None = None   # where it is cached (see _load_meta)
        self.satisfied: dict = {}       # interpreter version -> satisfies requires-python


def read(path: str, *, what: str = "script", cache: str | None = None) -> Metadata:
    """The ``script`` block of ``path``. Unreadable file, bad TOML, two
    blocks or wrongly typed fields: a UsageError naming the file. With
    ``cache`` (the checked cache root), a block read before is not parsed
    again (see _load_meta)."""
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
    return parse(text, path, cache=cache)


_OPEN = "# /// script"


def _lines(text: str) -> list:
    """Lines as uv (Rust's ``str::lines``) cuts them: at "\\n", one trailing
    "\\r" dropped. So a CRLF script reads like an LF one, as in uv."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


class Unclosed:
    """Where an opened block went wrong, for the error."""

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


def parse(text: str, path: str = "<script>", cache: str | None = None) -> Metadata:
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
        # PEP 723 says ignore the block, uv stops (exit 2): running without the
        # dependencies would run other code than uv does, so runx stops too,
        # and says exactly which line ended the block.
        where = Unclosed(start, None if stop is None else start + stop,
                         None if stop is None else lines[stop])
        raise UsageError(f"{path}, line {start}: {where.describe()}",
                         "uv refuses such a script too; close the block with '# ///'")
    # PEP 723: a second script block is an error (uv reads only the first).
    for k in range(closing + 2, len(lines)):
        if lines[k] == _OPEN:
            raise UsageError(f"{path}: more than one '# /// script' block (lines {start}, "
                             f"{start + k})", "PEP 723 allows one; merge them")
    content = "\n".join(toml[:closing]) + "\n"
    entry = _meta_entry(cache, content) if cache else None
    if entry is not None:
        cached = _load_meta(entry)
        if cached is not None:
            return cached
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
    meta = Metadata(deps, rp, True, tool_uv=tool_uv or None)
    if entry is not None:
        meta.entry = entry
        _store_meta(meta)
    return meta


# --- the parsed block, cached ----------------------------------------------------
#
# tomllib's import (re, enum, typing, string, datetime: about 10 ms) and the
# requires-python check (re) cost a warm `runx script.py` more than all the
# rest of runx's work: uv ran the same script warm 1.7x faster. What a block
# says is a function of its text alone, so the checked result is kept under
# the cache, named by the text's hash (script-settings/meta-HASH.marshal,
# expired like the settings beside it: its mtime is its last use), with the
# answer of requires-python for each interpreter version asked. Believed
# only from a file of ours that only we can write, as every cached answer.

_META_VERSION = 1


def _meta_entry(cache: str, content: str) -> str:
    from ..reaper import store
    from .requirements import _hash

    return os.path.join(cache, store.SCRIPT_SETTINGS,
                        "meta-" + _hash(content.encode(), digest_size=16).hexdigest() + ".marshal")


def _load_meta(entry: str) -> "Metadata | None":
    import marshal
    import time

    from ..reaper import ownership

    got = ownership.read_private(entry)
    if got is None:
        return None
    data, st = got
    try:
        version, deps, rp, tool_uv, satisfied = marshal.loads(data)
        if version != _META_VERSION:
            return None
        if time.time() - st.st_mtime > 3600:
            os.utime(entry)     # its last use, for the cache's expiry (reaper/expiry.py)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    meta = Metadata(deps, rp, True, tool_uv=tool_uv)
    meta.entry, meta.satisfied = entry, satisfied
    return meta


def _store_meta(meta: Metadata) -> None:
    import marshal

    assert meta.entry is not None
    try:
        data = marshal.dumps((_META_VERSION, meta.dependencies, meta.requires_python,
                              meta.tool_uv, meta.satisfied))
    except ValueError:
        return                  # a TOML date in [tool.uv]: parsed every time, not cached
    from ..reaper import ownership

    ownership.write_private(meta.entry, data)


# --- [tool.uv] in a script block -----------------------------------------------
#
# ``uv run script.py`` reads the block's [tool.uv] as configuration: below its
# command line and its variables, above every uv.toml (crates/uv/src/lib.rs
# merges it first). runx builds with ``uv pip install``, so each key uv takes
# there (its ToolUv: GlobalOptions, ResolverInstallerSchema and the
# dependency tables; tests/test_pep723.py checks the list against uv) is
# carried by what gives it that rank in uv pip, as the table below says:
#
#   req     a line of a requirements file (``-r``, named by its content, which
#           also holds the whole table as a comment: the layer key hashes it)
#   env     uv's variable, unless the user set it (uv ranks variables above
#           the script); part of the layer key
#   file    a requirements file named by a variable (overrides, excludes...)
#   quiet   uv's variable for how uv talks, not what it installs: not keyed
#   cli     an option of uv pip install, before the user's own (keyed)
#   again   a rebuild now, as -U/--reinstall (uv run re-resolves every time)
#   python  the interpreter lookup (uv python find)
#   none    no meaning for runx (documented in the README)
#   refuse  uv takes it, uv pip install has no way to: refused, with why

_KEYS: dict = {
    "index": ("req", None), "index-url": ("req", None), "extra-index-url": ("req", None),
    "find-links": ("req", None), "no-index": ("req", None),
    "constraint-dependencies": ("req", None), "sources": ("req", None),
    "no-sources": ("req", None), "no-sources-package": ("req", None),
    "exclude-newer": ("env", "UV_EXCLUDE_NEWER"), "prerelease": ("env", "UV_PRERELEASE"),
    "resolution": ("env", "UV_RESOLUTION"), "index-strategy": ("env", "UV_INDEX_STRATEGY"),
    "fork-strategy": ("env", "UV_FORK_STRATEGY"),
    "keyring-provider": ("env", "UV_KEYRING_PROVIDER"),
    "no-build": ("env", "UV_NO_BUILD"), "no-binary": ("env", "UV_NO_BINARY"),
    "no-build-package": ("env", "UV_NO_BUILD_PACKAGE"),
    "no-binary-package": ("env", "UV_NO_BINARY_PACKAGE"),
    "no-build-isolation": ("env", "UV_NO_BUILD_ISOLATION"),
    "torch-backend": ("env", "UV_TORCH_BACKEND"), "preview": ("env", "UV_PREVIEW"),
    "preview-features": ("env", "UV_PREVIEW_FEATURES"),
    "override-dependencies": ("file", "UV_OVERRIDE"),
    "build-constraint-dependencies": ("file", "UV_BUILD_CONSTRAINT"),
    "exclude-dependencies": ("file", "UV_EXCLUDE"),
    "config-settings": ("cli", "-C"),
    "config-settings-package": ("cli", "--config-settings-package"),
    "exclude-newer-package": ("cli", "--exclude-newer-package"),
    "prerelease-package": ("cli", "--prerelease-package"),
    "no-build-isolation-package": ("cli", "--no-build-isolation-package"),
    "upgrade": ("again", "--upgrade"), "upgrade-package": ("again", "--upgrade-package"),
    "reinstall": ("again", "--reinstall"), "reinstall-package": ("again", "--reinstall-package"),
    "python-preference": ("python", "--python-preference"),
    "python-downloads": ("python", "--no-python-downloads"),
    "link-mode": ("quiet", "UV_LINK_MODE"), "compile-bytecode": ("quiet", "UV_COMPILE_BYTECODE"),
    "native-tls": ("quiet", "UV_NATIVE_TLS"), "system-certs": ("quiet", "UV_SYSTEM_CERTS"),
    "offline": ("quiet", "UV_OFFLINE"), "no-cache": ("quiet", "UV_NO_CACHE"),
    "cache-dir": ("quiet", "UV_CACHE_DIR"),
    "concurrent-downloads": ("quiet", "UV_CONCURRENT_DOWNLOADS"),
    "concurrent-builds": ("quiet", "UV_CONCURRENT_BUILDS"),
    "concurrent-installs": ("quiet", "UV_CONCURRENT_INSTALLS"),
    "allow-insecure-host": ("quiet", "UV_INSECURE_HOST"),
    "http-proxy": ("quiet", "HTTP_PROXY"), "https-proxy": ("quiet", "HTTPS_PROXY"),
    "no-proxy": ("quiet", "NO_PROXY"),
    "required-version": ("none", "checked against the uv runx runs when a layer is built"),
    "dependency-metadata": ("refuse", "uv pip install reads it only from a uv.toml"),
    "extra-build-dependencies": ("refuse", "uv pip install reads it only from a uv.toml"),
    "extra-build-variables": ("refuse", "uv pip install reads it only from a uv.toml"),
}
_HINT = "see the README's 'Coming from uvx / uv run'; or run the script with 'uv run'"


class ToolUv:
    """What a [tool.uv] table becomes (see _KEYS): the dependencies left as
    they are, one generated requirements file (or None), uv's variables
    (``env`` keyed, ``quiet`` not), uv pip options (``uv_args`` keyed,
    ``again`` a rebuild now), interpreter lookup options, and uv's required
    version (or None)."""

    def __init__(self):
        self.dependencies: list = []
        self.requirements_file = None
        self.env: dict = {}
        self.quiet: dict = {}
        self.uv_args: list = []
        self.again: list = []
        self.python_args: list = []
        self.required_version = None


def tool_uv(meta: Metadata, script: str, cache: str, *, locked: bool = False,
            no_sources: bool = False) -> ToolUv:
    """Map the block's [tool.uv] (see _KEYS). ``locked``: the script's lock
    already holds what the dependency tables decide (sources, constraints,
    overrides, excludes), so only how to fetch and build it is mapped."""
    table = meta.tool_uv or {}
    for k in table:
        kind, why = _KEYS.get(k, ("unknown", None))
        if kind == "unknown":
            raise UsageError(f"{script}: [tool.uv] '{k}' in the script block: uv takes no such "
                             "key (nor does runx)", "check the spelling in uv's settings reference")
        if kind == "refuse":
            raise UsageError(f"{script}: [tool.uv] '{k}' in the script block: {why}", _HINT)
    t = ToolUv()
    v = _Values(script)
    lines = _index_lines(table, v) + _dependency_lines(table, v, cache, locked)
    t.dependencies = list(meta.dependencies)
    sources = {} if (locked or no_sources or table.get("no-sources")) else table.get("sources", {})
    if sources:
        skip = {_name_key(n) for n in v.strings("no-sources-package",
                                                 table.get("no-sources-package", []))}
        t.dependencies, sourced = _apply_sources(t.dependencies, sources, script, v.local, skip)
        lines += sourced
    for key, value in table.items():
        kind, target = _KEYS[key]
        target = target or ""
        if kind == "env" and not os.environ.get(target):
            t.env[target] = v.env_value(key, value)
        elif kind == "file" and not locked:
            t.env[target] = _content_file(cache, "".join(r + "\n" for r in v.strings(key, value)))
        elif kind == "quiet" and not os.environ.get(target):
            t.quiet[target] = (v.local(v.env_value(key, value)) if key == "cache-dir"
                               else v.env_value(key, value))
        elif kind == "cli":
            t.uv_args += v.cli_args(key, target, value)
        elif kind == "again" and value:
            t.again += [target] if value is True else v.cli_args(key, target, value)
        elif kind == "python":
            t.python_args += v.python_args(key, target, value)
        elif key == "required-version":
            t.required_version = v.string(key, value)
    if lines or t.env:
        keyed = sorted((k, x) for k, x in table.items() if _KEYS[k][0] in ("req", "env", "file"))
        head = "# runx: [tool.uv] of a script block: " + repr(keyed) + "\n"
        t.requirements_file = _content_file(cache, head + "".join(ln + "\n" for ln in lines))
    return t


class _Values:
    """The block's values, checked and spelled for uv; a wrong type is one
    usage error naming the key."""

    def __init__(self, script):
        self.script = script
        self.base = os.path.dirname(os.path.abspath(script))

    def fail(self, key, what):
        raise UsageError(f"{self.script}: [tool.uv] '{key}' must be {what}", _HINT)

    def string(self, key, value) -> str:
        if not isinstance(value, str):
            self.fail(key, "a string")
        return value

    def strings(self, key, value) -> list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            self.fail(key, "a list of strings")
        return value

    def table(self, key, value) -> dict:
        if not isinstance(value, dict):
            self.fail(key, "a table")
        return value

    def local(self, value: str) -> str:
        """A relative path in the block is relative to the script, as in uv."""
        if "://" in value:
            return value
        return os.path.normpath(os.path.join(self.base, os.path.expanduser(value)))

    def env_value(self, key, value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        sep = "," if key == "preview-features" else " "
        return value if isinstance(value, str) else sep.join(self.strings(key, value))

    def cli_args(self, key, flag, value) -> list:
        """uv pip's spelling of a table or list: -C K=V, --x PKG=V, --x PKG:K=V."""
        if isinstance(value, list):
            return [a for x in self.strings(key, value) for a in (flag, x)]
        out: list = []
        for name, item in self.table(key, value).items():
            if key == "config-settings-package":
                out += [a for k, x in self.table(key, item).items()
                        for y in (x if isinstance(x, list) else [x])
                        for a in (flag, f"{name}:{k}={y}")]
            else:
                out += [a for y in (item if isinstance(item, list) else [item])
                        for a in (flag, f"{name}={y}")]
        return out

    def python_args(self, key, flag, value) -> list:
        value = self.string(key, value)
        if key == "python-preference":
            return [] if os.environ.get("UV_PYTHON_PREFERENCE") else [flag, value]
        downloads = os.environ.get("UV_PYTHON_DOWNLOADS") or value
        return [flag] if downloads in ("never", "manual") and value != "automatic" else []


def _index_lines(table, v) -> list:
    """index, index-url, extra-index-url, find-links, no-index: the lines of
    a requirements file that tell uv pip the same."""
    lines = []
    indexes = table.get("index", [])
    if not isinstance(indexes, list) or not all(isinstance(i, dict) for i in indexes):
        raise UsageError(f"{v.script}: [[tool.uv.index]] must be an array of tables", _HINT)
    for ix in indexes:
        url = ix.get("url")
        if not isinstance(url, str):
            raise UsageError(f"{v.script}: [[tool.uv.index]] needs a 'url'", _HINT)
        other = set(ix) - {"name", "url", "default", "explicit", "format", "publish-url"}
        if ix.get("format", "simple") not in ("simple", "flat"):
            other.add("format")
        if other:
            raise UsageError(f"{v.script}: [[tool.uv.index]] '{sorted(other)[0]}': uv pip "
                             "install has no way to take it", _HINT)
        if ix.get("explicit") or table.get("no-index"):
            continue    # explicit: only for sources naming it (refused); no-index: all off
        if ix.get("format") == "flat":         # a directory or page of files
            lines.append("--find-links " + v.local(url))
        else:
            lines.append(("--index-url " if ix.get("default") else "--extra-index-url ")
                         + v.local(url))
    if "index-url" in table:
        lines.append("--index-url " + v.local(v.strings("index-url", table["index-url"])[0]))
    for u in v.strings("extra-index-url", table.get("extra-index-url", [])):
        lines.append("--extra-index-url " + v.local(u))
    for u in v.strings("find-links", table.get("find-links", [])):
        lines.append("--find-links " + v.local(u))
    if table.get("no-index"):
        lines.append("--no-index")
    return lines


def _dependency_lines(table, v, cache, locked) -> list:
    if locked or "constraint-dependencies" not in table:
        return []
    text = "".join(r.strip() + "\n" for r in v.strings("constraint-dependencies",
                                                         table["constraint-dependencies"]))
    return ["-c " + _content_file(cache, text)]


def _name_key(name: str) -> str:
    out: list = []
    for ch in name.lower():
        if ch in "-_.":
            if not out or out[-1] != "-":
                out.append("-")
        else:
            out.append(ch)
    return "".join(out)


def _apply_sources(deps, sources, script, local, skip=frozenset()):
    """Direct dependencies named in [tool.uv.sources] become direct references
    (``name[extras] @ URL ; marker``), as uv resolves them for a script;
    ``skip``: the no-sources-package names."""
    import re

    if not isinstance(sources, dict):
        raise UsageError(f"{script}: [tool.uv.sources] must be a table", _HINT)
    by_name = {_name_key(n): v for n, v in sources.items() if _name_key(n) not in skip}
    kept, sourced = [], []
    for d in deps:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?$", d)
        src = by_name.pop(_name_key(m.group(1)), None) if m else None
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
    if not meta.requires_python:
        return True
    ok = meta.satisfied.get(version)
    if ok is None:
        ok = meta.satisfied[version] = satisfies(version, meta.requires_python)
        if meta.entry is not None:
            _store_meta(meta)
    if ok:
        return True
    if verbosity >= 0:
        say(f"runx: warning: the requested interpreter is Python {version}, "
            f"which does not satisfy {path}'s requires-python "
            f"{meta.requires_python!r}; running it anyway, as uv does\n")
    return False
