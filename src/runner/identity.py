"""The layer key's inputs beyond the requirement text: what the text points at.

Two runs may share a layer only if uv, given what each run gives it, would
install the same thing. The requirement text alone does not say that:
``./proj`` names another project in another directory, a rebuilt wheel keeps
its file name, ``-r other.txt`` hides a file, and uv reads configuration
from the directory it runs in. So the key also covers (docs/design.md,
"The layer key"):

- local paths, resolved as uv resolves them, with a fingerprint of what they
  point at: for a file (wheel, sdist) its stat; for a directory (a project)
  the stat of the files uv itself watches before rebuilding it
  (``pyproject.toml``, ``setup.py``, ``setup.cfg``: uv's default cache-keys);
- every file reached from a requirements file through ``-r``/``-c``, with
  its content, and the local paths inside it;
- the uv configuration that applies in the current directory: the nearest
  ``uv.toml`` or ``pyproject.toml`` with a ``[tool.uv]`` table, the user's
  and the system's ``uv.toml``, and the ``UV_*`` variables.

This runs on every warm run: stats and small reads only. Where a
cheap test cannot be sure (does this pyproject.toml have a ``[tool.uv]``
table?), it counts the input in: a key that is too specific costs a rebuild,
one that is too loose runs the wrong code.
"""

import os

from .paths import MAX_INPUT, ancestors

# A project's files uv watches by default (its ``cache-keys`` setting).
PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
ARCHIVES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")
# Variables uv reads that change how it works, never what it installs.
# Everything else named UV_* is in the key (when unsure: in).
NEUTRAL_VARS = frozenset((
    "UV_CACHE_DIR", "UV_NO_CACHE", "UV_CONCURRENT_DOWNLOADS", "UV_CONCURRENT_BUILDS",
    "UV_CONCURRENT_INSTALLS", "UV_HTTP_TIMEOUT", "UV_REQUEST_TIMEOUT", "UV_HTTP_RETRIES",
    "UV_NO_PROGRESS", "UV_LOG_CONTEXT", "UV_NO_WRAP", "UV_LINK_MODE", "UV_COMPILE_BYTECODE",
    "UV_NATIVE_TLS", "UV_RUN_RECURSION_DEPTH", "UV_ENV_FILE", "UV_NO_ENV_FILE",
    "UV_CONCURRENT_CACHE_READS", "UV_HTTP_CONNECT_TIMEOUT", "UV_LOCK_TIMEOUT",
))
# Variables of uv pip install that neither uv run nor uvx reads
# (crates/uv-cli: PipInstallArgs' `env =` that RunArgs and ToolRunArgs lack):
# runx, which installs with uv pip, unsets them for uv and does not key them.
PIP_ONLY_VARS = frozenset(("UV_EXCLUDE", "UV_SYSTEM_PYTHON", "UV_BREAK_SYSTEM_PACKAGES",
                           "UV_REQUIRE_HASHES"))
# ... and those uvx reads (ToolRunArgs) but uv run does not: honoured in tool mode only.
TOOL_ONLY_VARS = frozenset(("UV_CONSTRAINT", "UV_OVERRIDE", "UV_BUILD_CONSTRAINT",
                            "UV_TORCH_BACKEND"))
MAX_FILES = 256             # files reached through -r/-c, in all
MAX_LISTING = 4096          # entries of a --find-links directory fingerprinted one by one
# Variables that name requirement-like files (space-separated, as uv reads them).
FILE_VARS = ("UV_CONSTRAINT", "UV_OVERRIDE", "UV_BUILD_CONSTRAINT", "UV_EXCLUDE")
MAX_WALK = 20000            # files of a project with its own cache-keys stat'ed one by one


class TooBig(Exception):
    pass


def stat_bytes(path: str) -> bytes:
    """What says a file changed: size, mtime (ns), inode, device; or 'missing'."""
    try:
        st = os.stat(path)
    except OSError:
        return b"missing"
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_dev}:{st.st_mode >> 12}".encode()


def fingerprint(path: str) -> bytes:
    """A local requirement: a file by its stat, a project by its watched files'."""
    if os.path.isdir(path):
        out = b"dir\0" + b"\0".join(stat_bytes(os.path.join(path, f)) for f in PROJECT_FILES)
        data = read_small(os.path.join(path, "pyproject.toml"))
        if data and b"cache-keys" in data:
            out += b"\0" + _wider_cache_keys(path, data)
        return out
    return b"file\0" + stat_bytes(path)


def _wider_cache_keys(root: str, data: bytes) -> bytes:
    """A project that sets uv's ``cache-keys`` (globs, git state, variables)
    is rebuilt by uv when any of them changes. Reading the setting needs a
    TOML parser and a glob matcher (neither is on the warm path), so runx
    keys on a superset: the stat of every file in the project (but .git,
    __pycache__ and nested venvs), the git HEAD and refs, and every variable
    the file names as ``env = "NAME"``. Only such projects pay for the walk."""
    parts = []
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", "__pycache__")
                             and not os.path.exists(os.path.join(dirpath, d, "pyvenv.cfg")))
        for f in sorted(filenames):
            n += 1
            if n > MAX_WALK:          # a huge tree: additions and removals still count
                parts.append(b"dir:" + dirpath.encode() + b":" + stat_bytes(dirpath))
                break
            parts.append(os.path.join(dirpath, f).encode() + b":"
                         + stat_bytes(os.path.join(dirpath, f)))
    git = os.path.join(root, ".git")
    head = read_small(os.path.join(git, "HEAD")) or b""
    parts.append(b"HEAD:" + head)
    if head.startswith(b"ref:"):
        ref = head[4:].strip().decode("utf-8", "replace")
        parts.append(stat_bytes(os.path.join(git, ref)))
    parts.append(stat_bytes(os.path.join(git, "packed-refs")))
    parts.append(stat_bytes(os.path.join(git, "refs", "tags")))
    flat = data.replace(b" ", b"").replace(b"\t", b"").replace(b"'", b'"')
    i = flat.find(b'env="')
    while i >= 0:
        j = flat.find(b'"', i + 5)
        if j < 0:
            break
        name = flat[i + 5:j].decode("utf-8", "replace")
        parts.append(b"env:" + name.encode() + b"=" + os.environ.get(name, "").encode())
        i = flat.find(b'env="', j)
    return b"\0".join(parts)


def listing(path: str) -> bytes:
    """A --find-links directory: every entry's stat, so a wheel rebuilt under
    the same name inside it counts (one scandir, no read)."""
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return b"unlisted\0" + stat_bytes(path)
    if len(entries) > MAX_LISTING:
        return b"big\0" + stat_bytes(path)
    out = []
    for e in entries:
        try:
            st = e.stat()
            out.append(f"{e.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
        except OSError:
            out.append(e.name + ":gone")
    return "\0".join(out).encode()


def _unquote(s: str) -> str:
    """%XX in a file: URL (urllib.parse would bring re onto the warm path)."""
    if "%" not in s:
        return s
    out = bytearray()
    b = s.encode()
    i = 0
    while i < len(b):
        if b[i] == 0x25 and i + 2 < len(b):
            try:
                out.append(int(b[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(b[i])
        i += 1
    return out.decode("utf-8", "replace")


def _quote(path: str) -> str:
    """The few characters a path may hold that a file: URL may not."""
    return path.replace("%", "%25").replace(" ", "%20").replace("#", "%23")


def _file_url_path(url: str) -> str:
    rest = url[5:]                      # after "file:"
    if rest.startswith("//"):
        rest = rest[2:]
        host, slash, tail = rest.partition("/")
        rest = "/" + tail if host in ("", "localhost") else "//" + rest
    return _unquote(rest.split("#", 1)[0])


def _is_pathlike(s: str) -> bool:
    if s.startswith(("./", "../", "/", "~", "file:")) or s in (".", ".."):
        return True
    if "://" in s:
        return False
    return "/" in s or os.sep in s or s.lower().endswith(ARCHIVES)


def local(req: str, base: str):
    """If REQ names a local path, ``(absolute path, REQ with that path)``, else None.

    Forms: ``./x``, ``../x``, ``/abs``, ``~/x``, ``dir/x.whl``, ``x.whl``,
    ``file:`` URLs, with ``[extras]`` and ``; markers``; ``name @ PATH-OR-FILE-URL``.
    Relative paths are taken against BASE (uv takes them against its cwd).
    A remote or VCS URL is not local: its text is its key, and the
    freshness rule re-resolves it.
    """
    req = req.strip()
    name, at, target = req.partition("@")
    if at and name.strip() and "/" not in name and ":" not in name:
        # name[extras] @ URL ; markers  (an '@' inside a path has no name before it)
        target = target.strip()
        markers = ""
        for sep in (" ;", "\t;"):
            if sep in target:
                target, _, m = target.partition(sep)
                markers = " ;" + m
                break
        if not _is_pathlike(target):
            return None
        path = _resolve(target, base)
        return path, f"{name.strip()} @ file://{_quote(path)}{markers}"
    markers = ""
    body = req
    if ";" in body:
        body, _, m = body.partition(";")
        markers = " ;" + m
        body = body.rstrip()
    extras = ""
    if body.endswith("]") and "[" in body:
        i = body.rindex("[")
        body, extras = body[:i], body[i:]
    if not _is_pathlike(body):
        return None
    path = _resolve(body, base)
    return path, path + extras + markers


def _resolve(target: str, base: str) -> str:
    if target.startswith("file:"):
        target = _file_url_path(target)
    else:
        target = target.split("#", 1)[0]
    return os.path.abspath(os.path.join(base, os.path.expanduser(target)))


def _expand(line: str) -> str:
    """``${NAME}`` in requirements files, as uv expands it."""
    while "${" in line:
        i = line.index("${")
        j = line.find("}", i)
        if j < 0:
            break
        line = line[:i] + os.environ.get(line[i + 2:j], "") + line[j + 1:]
    return line


def _lines(data: bytes):
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    logical = ""
    for raw in text.split("\n"):
        if raw.endswith("\\"):
            logical += raw[:-1]
            continue
        line = logical + raw
        logical = ""
        if line.lstrip().startswith("#"):
            continue
        i = line.find(" #")
        if i >= 0:
            line = line[:i]
        i = line.find("\t#")
        if i >= 0:
            line = line[:i]
        line = line.strip()
        if line:
            yield _expand(line)


_NESTED = ("-r", "--requirement", "-c", "--constraint", "--constraints")
_EDITABLE = ("-e", "--editable")
_LINKS = ("-f", "--find-links")


def _option(line: str, names) -> str | None:
    for n in names:
        if line == n:
            return ""
        if line.startswith(n + "=") or line.startswith(n + " ") or line.startswith(n + "\t"):
            return line[len(n) + 1:].strip()
        if len(n) == 2 and line.startswith(n) and not line.startswith(n + "-"):
            return line[2:].strip()      # -rfile, as pip and uv accept
    return None


def requirement_files(files, cwd: str, update, read) -> None:
    """Feed UPDATE with every file reached from FILES and the local paths in them.

    Verified against uv 0.13.9: ``-r``/``-c`` paths are relative to the file
    that names them; package paths and ``-e`` paths are relative to the
    current directory (as in pip). ``-f`` paths: both candidates are
    fingerprinted (more specific is safe). Cycles are cut; reads are bounded.
    """
    seen = set()
    todo = list(files)
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        if len(seen) > MAX_FILES:
            raise TooBig(f"more than {MAX_FILES} requirements files reached through -r/-c")
        data = read(path)
        update(b"rfile\0" + path.encode() + b"\0" + data + b"\0")
        here = os.path.dirname(path)
        for line in _lines(data):
            nested = _option(line, _NESTED)
            if nested is not None:
                if nested and "://" not in nested:
                    todo.append(os.path.abspath(os.path.join(here, os.path.expanduser(nested))))
                continue
            editable = _option(line, _EDITABLE)
            if editable is not None:
                found = local(editable, cwd) if editable else None
                if not found and editable and "://" not in editable and "+" not in editable:
                    # -e takes a bare directory name too (no ./): still a path
                    found = local("./" + editable, cwd)
                if found:
                    update(b"editable\0" + found[0].encode() + b"\0" + fingerprint(found[0]))
                continue
            links = _option(line, _LINKS)
            if links is not None:
                if links and "://" not in links:
                    for b in (cwd, here):
                        p = os.path.abspath(os.path.join(b, os.path.expanduser(links)))
                        update(b"links\0" + p.encode() + b"\0" + listing(p))
                continue
            if line.startswith("-"):
                continue                # other options are in the file's bytes
            found = local(line, cwd)
            if found:
                update(b"path\0" + found[0].encode() + b"\0" + fingerprint(found[0]))


def read_small(path: str) -> bytes | None:
    """A config or requirements file's bytes, None if absent. Most of the
    files looked for do not exist, and the ancestor walk asks two per level:
    access() answers without raising (1.3 us against 1.9 for a failed stat
    and 5 for a failed open, which builds an exception with the path)."""
    if not os.access(path, os.F_OK):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > MAX_INPUT:
            raise TooBig(f"{path} is larger than {MAX_INPUT >> 20} MiB")
        chunks = []
        total = 0
        while True:                 # size + 1: a file still growing is read to its end
            chunk = os.read(fd, size + 1)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_INPUT:    # growing for ever (or a /proc file): stop, refuse
                break
            size = 1 << 16
        data = b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > MAX_INPUT:
        raise TooBig(f"{path} is larger than {MAX_INPUT >> 20} MiB")
    return data


def _has_tool_uv(data: bytes):
    """True: a ``[tool.uv]`` table is surely there; None: maybe; False: no.

    uv parses TOML here; runx must not (tomllib is not on the warm path), so
    spacing and quoting are folded away and 'maybe' counts as yes for the key
    while the search goes on, as uv's would if the table were absent."""
    flat = data.replace(b" ", b"").replace(b"\t", b"").replace(b'"', b"").replace(b"'", b"")
    if flat.startswith((b"[tool.uv]", b"[tool.uv.", b"[[tool.uv.")) or any(
            h in flat for h in (b"\n[tool.uv]", b"\n[tool.uv.", b"\n[[tool.uv.")):
        return True
    if any(h in flat for h in (b"tool.uv.", b"tool.uv=", b"[tool]", b"tool={")):
        return None
    return False


def _config(path: str, data: bytes, update) -> None:
    """A config file by path and content, and the local paths in it (a
    ``find-links = ["./wheels"]`` whose wheel is rebuilt): every quoted
    string that looks like a path, against the file's directory, by its
    listing if a directory (which holds a project's pyproject.toml stat
    too), else its stat. A superset of the paths uv reads, found without
    a TOML parser."""
    update(b"config\0" + path.encode() + b"\0" + data + b"\0")
    here = os.path.dirname(path)
    for quote in (b'"', b"'"):
        pieces = data.split(quote)
        for raw in pieces[1:-1:2]:
            if len(raw) > 4096 or b"\n" in raw:
                continue
            s = raw.decode("utf-8", "replace")
            if s.startswith("file:") or (_is_pathlike(s) and "/" in s and "://" not in s):
                p = _resolve(s, here)
                update(b"cpath\0" + p.encode() + b"\0"
                       + (listing(p) if os.path.isdir(p) else stat_bytes(p)))


def _project_config(start: str, update) -> None:
    for d in ancestors(start):
        p = os.path.join(d, "uv.toml")
        data = read_small(p)
        if data is not None:
            _config(p, data, update)
            break
        p = os.path.join(d, "pyproject.toml")
        data = read_small(p)
        if data is not None:
            has = _has_tool_uv(data)
            if has is not False:
                _config(p, data, update)
                if has:
                    break


def uv_config(cwd: str | None, update, ignored=frozenset()) -> None:
    """The configuration ``uv pip install`` reads when run in CWD.

    Project level (checked against uv 0.13.9's -v output): walking up from
    the cwd, the first directory with a ``uv.toml``, or with a
    ``pyproject.toml`` that has a ``[tool.uv]`` table, wins (uv.toml first);
    a pyproject.toml without one is skipped. Then the user's
    ($XDG_CONFIG_HOME or ~/.config)/uv/uv.toml and the system's
    ($XDG_CONFIG_DIRS or /etc/xdg)/uv/uv.toml and /etc/uv/uv.toml, and
    UV_CONFIG_FILE. Files are keyed by path and content: relative paths in
    them resolve against their directory.
    """
    # UV_PROJECT moves where uv starts looking; look from both (a superset).
    starts = [cwd] if cwd else []
    if cwd and os.environ.get("UV_PROJECT"):
        starts.append(os.path.abspath(os.path.join(cwd, os.environ["UV_PROJECT"])))
    for d in starts:
        _project_config(d, update)
    env = os.environ
    home = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    places = [os.path.join(home, "uv", "uv.toml")]
    for x in (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":"):
        if x:
            places.append(os.path.join(x, "uv", "uv.toml"))
    places.append("/etc/uv/uv.toml")
    if env.get("UV_CONFIG_FILE"):
        places.append(os.path.abspath(env["UV_CONFIG_FILE"]))
    for p in places:
        data = read_small(p)
        if data is not None:
            _config(p, data, update)
    for var in sorted(env):
        if var.startswith("UV_") and var not in NEUTRAL_VARS and var not in ignored \
                and not var.startswith("UV_INTERNAL"):
            update(b"env\0" + var.encode() + b"=" + env[var].encode("utf-8", "surrogateescape")
                   + b"\0")
    # Variables that name files: what they point at decides too.
    files = []
    for var in FILE_VARS:
        if var not in ignored:
            files += [os.path.join(cwd or "/", f) for f in env.get(var, "").split()]
    if files:
        requirement_files(files, cwd or "/", update, lambda p: read_small(p) or b"missing")
    for u in env.get("UV_FIND_LINKS", "").replace(",", " ").split():
        if "://" not in u:
            p = os.path.join(cwd or "/", os.path.expanduser(u))
            update(b"links\0" + p.encode() + b"\0" + listing(p))
    # Which uv runs decides too (a newer uv may resolve differently).
    if env.get("RUNX_UV"):
        update(b"uv\0" + env["RUNX_UV"].encode() + b"\0" + stat_bytes(env["RUNX_UV"]))
