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
    r = _Reader(text, environ, path)
    while r.i < len(text):
        end = r.line_end(r.i)
        stripped = text[r.i:end].strip()
        if stripped and not stripped.startswith("#"):
            end = r.assignment(stripped, end)
        r.i, r.line = end + 1, r.line + 1
    return r.out


class _Reader:
    """Where parse is in the text (``i``, ``line``) and what it has read."""

    def __init__(self, text: str, environ: dict, path: str):
        self.text, self.environ, self.path = text, environ, path
        self.out: dict = {}
        self.i, self.line = 0, 1

    def fail(self, msg: str):
        raise UsageError(f"env file {self.path}, line {self.line}: {msg}", _HINT)

    def line_end(self, j: int) -> int:
        end = self.text.find("\n", j)
        return len(self.text) if end < 0 else end

    def assignment(self, stripped: str, end: int) -> int:
        """One ``[export] NAME=VALUE`` (or a bare NAME, passed through) starting
        at ``self.i``; the index where its last line ends."""
        body = stripped
        if body.startswith(("export ", "export\t")):
            body = body[7:].lstrip()
        name, eq, rest = body.partition("=")
        name = name.strip()
        if not eq:
            if not _is_name(name):
                self.fail(f"expected NAME=VALUE, got {stripped[:40]!r}")
            return end                  # bare NAME: the caller's value passes through
        if not _is_name(name):
            self.fail(f"invalid variable name {name[:40]!r}")
        start = self.i + self.text[self.i:end].index("=") + 1   # where the value starts
        while start < end and self.text[start] in " \t":
            start += 1
        if rest.lstrip(" \t")[:1] in ("'", '"'):
            value, end = self.quoted(name, start)
        else:
            value = self.text[start:end]
            cut = min(x for x in (value.find(" #"), value.find("\t#"), len(value)) if x >= 0)
            value = self.expand(value[:cut].strip())
        self.out[name] = value
        return end

    def quoted(self, name: str, start: int) -> tuple:
        """A quoted value (it may span lines): the value and its line's end.
        Single quotes are literal; double quotes take \\n \\t \\r \\" \\\\ \\$
        and expand ${NAME}."""
        text, q = self.text, self.text[start]
        j, buf = start + 1, []
        while True:
            if j >= len(text):
                self.fail(f"unterminated {q}-quoted value for {name}")
            ch = text[j]
            if ch == q:
                break
            if q == '"' and ch == "\\" and j + 1 < len(text):
                buf.append(_ESCAPE.get(text[j + 1], "\\" + text[j + 1]))
                j += 2
                continue
            buf.append(ch)
            j += 1
        value = "".join(buf)
        if q == '"':        # \$ was marked with \0 to escape expansion: expand, then unmark
            value = "$".join(self.expand(p) for p in value.split("\0$"))
        self.line += text.count("\n", start, j)
        end = self.line_end(j)
        after = text[j + 1:end].strip()
        if after and not after.startswith("#"):
            self.fail(f"unexpected text after the quoted value of {name}: {after[:40]!r}")
        return value, end

    def expand(self, value: str) -> str:
        """${NAME} and ${NAME:-default}: the file's earlier lines, then environ."""
        res, j = [], 0
        while j < len(value):
            k = value.find("${", j)
            if k < 0:
                res.append(value[j:])
                break
            end = value.find("}", k)
            if end < 0:
                self.fail("unclosed '${'")
            res.append(value[j:k])
            inner = value[k + 2:end]
            name, sep, default = inner.partition(":-")
            if not _is_name(name):
                self.fail(f"bad variable reference '${{{inner}}}'")
            got = self.out[name] if name in self.out else self.environ.get(name)
            res.append(got if got else (default if sep else (got or "")))
            j = end + 1
        return "".join(res)


_ESCAPE = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "\0$"}
