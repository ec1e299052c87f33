"""What the docs and docstrings name exists: every module, function, class
and file of runx written in backticks in docs/, README.md and the
docstrings of src/ (issue 19: docs that named `daemon.Handshake`, a
`scripts/gen-readme-options`, `daemon.Job.fds` long after they were gone).

What counts as naming runx:
- a path under the repository (``src/…``, ``tests/…``, ``scripts/…``,
  ``docs/…``, ``.ci/…``), or under the package (``runner/…``, ``reaper/…``,
  ``runx_env/…``);
- a dotted name whose first part is a runx module (``store.find``,
  ``runx_env.runner.cli.main``) or a runx class (``Job.fds``), and any other
  dotted name whose first part is not a module of Python's standard library
  or a known third-party package (so a name of a module that was renamed or
  removed is caught, not skipped).
"""

import ast
import os
import re
import sys

import pytest

from conftest import SRC

pytestmark = pytest.mark.fast

ROOT = os.path.dirname(SRC)
# Dotted names of other projects the docs mention (first part).
OTHERS = {"trio", "pyfuse3", "psutil", "packaging", "jupyter_client", "ipykernel", "uv",
          "pytest", "setuptools", "hatchling", "pip", "pipx", "SourceLoader", "importlib",
          "_imp", "jedi", "mypy", "ruff", "twine", "numpy", "pandas", "requests", "rich",
          "httpx", "cowsay", "fuse", "self", "sys", "os"}
# Span shapes that are file names of other things, not runx's modules.
FILE_EXTS = (".json", ".cfg", ".toml", ".txt", ".md", ".pth", ".desktop", ".csh", ".fish",
             ".exe", ".whl", ".gz", ".lock", ".marshal", ".stamp", ".ipynb", ".yml", ".yaml",
             ".service", ".sh", ".ps1", ".bat", ".nu", ".xsh", ".so", ".pyc", ".zip", ".tar")


def _modules() -> dict:
    out = {}
    for d, dirs, files in os.walk(SRC):
        dirs[:] = [x for x in dirs if x not in ("__pycache__", "bin")]
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(d, f), SRC)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = os.path.join(d, f)
    return out


MODULES = _modules()


def _members(node) -> dict:
    """{name: ast node} of what a module or class body defines."""
    out = {}
    for n in node.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[n.name] = n
        elif isinstance(n, ast.Assign):
            for t in n.targets:
                for name in ast.walk(t):
                    if isinstance(name, ast.Name):
                        out[name.id] = n
        elif isinstance(n, (ast.AnnAssign, ast.AugAssign)) and isinstance(n.target, ast.Name):
            out[n.target.id] = n
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for a in n.names:
                out[(a.asname or a.name).split(".")[0]] = n
        elif isinstance(n, ast.If):        # TYPE_CHECKING blocks, platform branches
            out.update(_members(n))
            out.update(_members(ast.Module(body=n.orelse, type_ignores=[])))
        elif isinstance(n, ast.Try):
            for part in (n.body, *[h.body for h in n.handlers], n.orelse):
                out.update(_members(ast.Module(body=part, type_ignores=[])))
    if isinstance(node, ast.ClassDef):     # self.x = ... in methods, __slots__
        for n in ast.walk(node):
            if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                    and n.value.id == "self" and isinstance(n.ctx, ast.Store)):
                out.setdefault(n.attr, n)
    return out


TREES = {m: ast.parse(open(p).read(), p) for m, p in MODULES.items()}
BASENAMES: dict = {}
for _m in MODULES:
    BASENAMES.setdefault(_m.rsplit(".", 1)[-1], []).append(_m)
CLASSES: dict = {}
for _m, _t in TREES.items():
    for _n in _t.body:
        if isinstance(_n, ast.ClassDef):
            CLASSES.setdefault(_n.name, []).append(_n)


def _resolve_in(node, parts: list) -> bool:
    for p in parts:
        members = _members(node)
        if p not in members:
            return False
        node = members[p]
        if not isinstance(node, (ast.ClassDef, ast.Module)):
            return True                 # a function or a value: nothing below it to check
    return True


def names_ok(span: str) -> bool | None:
    """True or False for a span that names runx; None for one that does not."""
    span = span.strip()
    if span.endswith("()"):
        span = span[:-2]
    parts = span.split(".")
    first = parts[0]
    if first == "runx_env":
        for i in range(len(parts), 0, -1):
            mod = ".".join(parts[1:i])
            if mod in MODULES or (not mod and i == 1):
                return _resolve_in(TREES[mod] if mod else TREES[""], parts[i:])
        return False
    if first in BASENAMES:
        return any(_resolve_in(TREES[m], parts[1:]) for m in BASENAMES[first])
    if first in CLASSES:
        return any(_resolve_in(c, parts[1:]) for c in CLASSES[first])
    if first in sys.stdlib_module_names or first in OTHERS or first[:1].isupper():
        return None
    return False


def path_ok(span: str) -> bool | None:
    span = span.strip().rstrip("/")
    for prefix, base in (("src/", ROOT), ("tests/", ROOT), ("scripts/", ROOT), ("docs/", ROOT),
                         (".ci/", ROOT), ("runner/", SRC), ("reaper/", SRC)):
        if span.startswith(prefix):
            return os.path.exists(os.path.join(base, span.split("::")[0]))
    if span.startswith("runx_env/"):
        return os.path.exists(os.path.join(SRC, span[len("runx_env/"):]))
    return None


DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(\(\))?$")


# Tables a bench script rendered from a saved run quote that run (module
# names as they were then): not prose that must follow the code.
RENDERED = re.compile(r"<!-- bench:([\w-]+) begin -->.*?<!-- bench:\1 end -->", re.S)


def _texts():
    for name in sorted(os.listdir(os.path.join(ROOT, "docs"))):
        if name.endswith(".md"):
            with open(os.path.join(ROOT, "docs", name)) as f:
                yield f"docs/{name}", RENDERED.sub("", f.read())
    with open(os.path.join(ROOT, "README.md")) as f:
        yield "README.md", f.read()
    for m, path in MODULES.items():
        for node in ast.walk(TREES[m]):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield os.path.relpath(path, ROOT), doc


def broken_names() -> list:
    out = []
    for where, text in _texts():
        for a, b in re.findall(r"``([^`\n]+)``|`([^`\n]+)`", text):
            span = (a or b).strip()
            if " " in span or re.search(r"X\.Y|\d\.X\b", span) or span.endswith(".d"):
                continue        # a command line, pythonX.Y, a conf.d directory
            if "/" in span:
                ok = path_ok(span)
            elif span.endswith(FILE_EXTS) or (span.endswith(".py") and "." not in span[:-3]):
                ok = None if not span.endswith(".py") else (
                    True if span[:-3] in BASENAMES else None)
            elif DOTTED.match(span):
                ok = names_ok(span)
            else:
                ok = None
            if ok is False:
                out.append((where, span))
    return sorted(set(out))


def test_every_runx_name_in_the_docs_exists():
    assert broken_names() == []


def test_the_check_sees_a_stale_name():
    assert names_ok("store.find") is True
    assert names_ok("runx_env.runner.cli.main") is True
    assert names_ok("handoff.Job.fds") is True
    assert names_ok("daemon.Handshake") is False          # it is handoff.Handshake
    assert names_ok("scripts._content_file") is False     # pep723._content_file
    assert names_ok("runx_env.runner.layers") is False    # moved to the reaper's store
    assert names_ok("os.utime") is None and names_ok("json.dumps") is None
    assert path_ok("scripts/gen-readme-options") is False
    assert path_ok("src/runner/cli.py") is True and path_ok("/dev/null") is None
