"""``--env-file FILE``: variables for the payload, in the usual dotenv format.

    # comment
    export NAME=value            # 'export ' is optional; a ' #' starts a comment
    GREETING="hello\\n world"     # double quotes: \\n \\t \\r \\" \\\\ \\$ escapes, may span lines
    RAW='no $expansion here'     # single quotes: taken literally, may span lines
    URL=http://${HOST:-localhost}:8000   # ${NAME} and ${NAME:-default}

``${NAME}`` (unquoted and double-quoted values) takes NAME from the file's
earlier lines, else from runx's own environment. A line with a bare NAME
(no ``=``) changes nothing: the variable is passed through as it is. Values
from the file replace the caller's; later files replace earlier ones. They go
to the payload only: runx and uv do not read them.
"""

from ..errors import UsageError

_HINT = "expected NAME=VALUE lines, '#' comments (see 'runx --help')"


def _is_name(s: str) -> bool:
    return bool(s) and (s[0].isalpha() or s[0] == "_") and all(
        c.isascii() and (c.isalnum() or c == "_") for c in s)


def load(path: str) -> str:
    from .paths import read_input

    data = read_input(path, "env file", "check the path given to --env-file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"env file {path}: not UTF-8 text (byte {e.start})", _HINT)


def parse(text: str, environ: dict, path: str = "<env file>") -> dict:
    """NAME → value, in file order. ``environ`` is only read, for ${NAME}."""
    out: dict = {}
    i, n, line = 0, len(text), 1

    def fail(msg: str):
        raise UsageError(f"env file {path}, line {line}: {msg}", _HINT)

    def lookup(name: str):
        return out[name] if name in out else environ.get(name)

    def expand(value: str) -> str:
        res, j = [], 0
        while j < len(value):
            k = value.find("${", j)
            if k < 0:
                res.append(value[j:])
                break
            end = value.find("}", k)
            if end < 0:
                fail("unclosed '${'")
            res.append(value[j:k])
            inner = value[k + 2:end]
            name, sep, default = inner.partition(":-")
            if not _is_name(name):
                fail(f"bad variable reference '${{{inner}}}'")
            got = lookup(name)
            res.append(got if got else (default if sep else (got or "")))
            j = end + 1
        return "".join(res)

    while i < n:
        end = text.find("\n", i)
        end = n if end < 0 else end
        raw = text[i:end]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i, line = end + 1, line + 1
            continue
        body = stripped
        if body.startswith("export ") or body.startswith("export\t"):
            body = body[7:].lstrip()
        name, eq, rest = body.partition("=")
        name = name.strip()
        if not eq:
            if _is_name(name):       # bare NAME: pass the caller's value through
                i, line = end + 1, line + 1
                continue
            fail(f"expected NAME=VALUE, got {stripped[:40]!r}")
        if not _is_name(name):
            fail(f"invalid variable name {name[:40]!r}")
        rest = rest.lstrip(" \t")
        # Where the value starts in the whole text (quotes may span lines).
        vstart = i + raw.index("=") + 1
        while vstart < end and text[vstart] in " \t":
            vstart += 1
        if rest[:1] in ("'", '"'):
            q = rest[0]
            j = vstart + 1
            buf = []
            while True:
                if j >= n:
                    fail(f"unterminated {q}-quoted value for {name}")
                ch = text[j]
                if ch == q:
                    break
                if q == '"' and ch == "\\" and j + 1 < n:
                    nxt = text[j + 1]
                    buf.append({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\",
                                "$": "\0$"}.get(nxt, "\\" + nxt))
                    j += 2
                    continue
                buf.append(ch)
                j += 1
            value = "".join(buf)
            if q == '"':
                # \$ was marked with \0 to escape expansion; expand, then unmark.
                parts = value.split("\0$")
                value = "$".join(expand(p) for p in parts)
            line += text.count("\n", vstart, j)
            end = text.find("\n", j)
            end = n if end < 0 else end
            after = text[j + 1:end].strip()
            if after and not after.startswith("#"):
                fail(f"unexpected text after the quoted value of {name}: {after[:40]!r}")
        else:
            value = text[vstart:end] if rest else ""
            k = value.find(" #")
            t = value.find("\t#")
            cut = min(x for x in (k, t, len(value)) if x >= 0)
            value = expand(value[:cut].strip())
        out[name] = value
        i, line = end + 1, line + 1
    return out
