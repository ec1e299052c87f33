"""The code's shape, as executable architecture (docs/design.md, "Map of the code").

- ``src/`` is the package ``runx_env`` (pyproject.toml maps it; no links):
  every import inside it is relative, and names a file a reader finds from
  the importing file (an IDE's resolver, jedi, is run to prove it).
- Layers: ``runner`` → ``reaper`` → the package's own modules (``errors``,
  ``__init__``). Nothing below imports anything above.
- No import cycle between modules.

Every import counts, at module level or inside a function (a deferred
import is still a dependency: two modules that reach for each other cannot
be understood, or changed, one at a time); type-only ones (``if
TYPE_CHECKING:``) do not, since they never run.
"""

import ast
import functools
import os

import pytest

SRC = os.path.normpath(os.path.join(os.path.dirname(__file__), os.pardir, "src"))
ROOT = "runx_env"
# Lower layers first: a module may import its own layer and those before it.
LAYERS = ("runx_env", "runx_env.reaper", "runx_env.runner")


def _modules() -> dict:
    """module name -> file path, for every module under src/ (the package)."""
    out = {}
    for dirpath, dirs, files in os.walk(SRC):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if dirpath != SRC and not os.path.exists(os.path.join(dirpath, "__init__.py")):
            dirs[:] = []        # src/bin: the command, not part of the package
            continue
        for f in files:
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), SRC)[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            out[".".join([ROOT, *rel])] = os.path.join(dirpath, f)
    return out


def _package(module: str, path: str) -> str:
    return module if path.endswith("__init__.py") else module.rpartition(".")[0]


def _imports(path: str):
    """(node, [absolute targets]) of every import that runs, in ``path``."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):          # type-only imports never run
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def import_graph() -> tuple:
    """(module -> the runx modules it imports, ``from . import mod`` counting
    as importing the module mod; [(module, import)] of absolute imports of
    runx_env, runner or reaper, which break the one-namespace rule)."""
    mods = _modules()
    graph, absolute = {}, []
    for name, path in mods.items():
        pkg = _package(name, path)
        deps = set()
        for node in _imports(path):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] in (ROOT, "runner", "reaper"):
                        absolute.append((name, a.name))
                continue
            if not node.level:
                if node.module and node.module.split(".")[0] in (ROOT, "runner", "reaper"):
                    absolute.append((name, node.module))
                continue
            base = pkg.split(".")
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            for t in [target] + [f"{target}.{a.name}" for a in node.names]:
                if t in mods and t != name:
                    deps.add(t)
        # A package's __init__ runs before any of its modules: not an edge
        # that makes a cycle by itself.
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    return graph, absolute


def layer_of(module: str) -> int:
    """The index in LAYERS of the package a module belongs to."""
    best = 0
    for i, pkg in enumerate(LAYERS):
        if module == pkg or module.startswith(pkg + "."):
            if len(pkg) >= len(LAYERS[best]):
                best = i
    return best


def find_cycle(graph: dict) -> list | None:
    state: dict = {}
    stack: list = []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == "open":
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = "done"
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


@pytest.mark.fast
def test_the_import_graph_has_no_cycle():
    graph, _ = import_graph()
    assert "runx_env.runner.cli" in graph and "runx_env.reaper.daemon" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.fast
def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.fast
def test_nothing_below_imports_above():
    """runner → reaper → the package's own modules, never back: the reaper
    (and what both processes share of the cache) is understood without the
    runner."""
    graph, _ = import_graph()
    upward = sorted((m, d) for m, deps in graph.items() for d in deps
                    if layer_of(d) > layer_of(m))
    assert upward == [], f"imports from a lower layer into a higher one: {upward}"


@pytest.mark.fast
def test_the_layer_rule_sees_an_upward_import():
    assert layer_of("runx_env.reaper.sweep") < layer_of("runx_env.runner.cli")
    assert layer_of("runx_env.errors") < layer_of("runx_env.reaper.store")
    assert layer_of("runx_env.reaper.watch._pidfd") == layer_of("runx_env.reaper")


@pytest.mark.fast
def test_every_import_inside_the_package_is_relative():
    """An absolute ``runx_env`` import works only once installed, and names no
    file a reader (or a text-based tool) can find from the importing one;
    ``runner``/``reaper`` as top-level names would be a second copy of every
    module."""
    _, absolute = import_graph()
    assert absolute == [], f"absolute imports of the package: {absolute}"


@pytest.mark.fast
def test_the_checkout_has_no_links():
    """The package tree is real files: a checkout without symlink support
    builds, and no tool sees a module twice."""
    links = [os.path.join(d, n) for d, dirs, files in os.walk(SRC) for n in dirs + files
             if os.path.islink(os.path.join(d, n))]
    assert links == []


def test_an_ide_resolves_every_import_to_a_file_under_src():
    """jedi (the resolver behind many editors' Python support) follows every
    import in src/ to the module file it names, under src/: no import needs
    an installed package, an import hook or a link to be understood."""
    jedi = pytest.importorskip("jedi")
    project = jedi.Project(SRC, added_sys_path=[], smart_sys_path=False,
                           load_unsafe_extensions=False)
    mods = _modules()
    unresolved = []
    checked = 0
    for path in mods.values():
        with open(path) as f:
            source = f.read()
        lines = source.split("\n")
        script = jedi.Script(source, path=path, project=project)
        for node in _imports(path):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            for a in node.names:
                # Where the imported name is, on the import's first line or a later one.
                for lineno in range(node.lineno, node.end_lineno + 1):
                    col = _name_column(lines[lineno - 1], a.name)
                    if col is not None:
                        break
                else:
                    unresolved.append((path, node.lineno, a.name, "name not found"))
                    continue
                files = _resolve(script, lineno, col)
                checked += 1
                if not files or not all(f.startswith(SRC + os.sep) for f in files):
                    unresolved.append((os.path.relpath(path, SRC), lineno, a.name, sorted(files)))
    assert checked > 100
    assert unresolved == [], f"imports an IDE cannot follow: {unresolved}"


def _resolve(script, line: int, col: int) -> set:
    """The files jedi says the imported name at (line, col) is defined in:
    where "go to definition" lands (a name re-exported by the module it is
    imported from lands there), or for a module the module's file."""
    found = script.goto(line, col, follow_imports=False)
    if found and all(d.module_path for d in found):
        return {os.path.normpath(str(d.module_path)) for d in found}
    return {os.path.normpath(str(d.module_path)) for d in script.infer(line, col)
            if d.module_path}


def _name_column(line: str, name: str) -> int | None:
    """The column of ``name`` as a whole word after ``import`` on ``line``."""
    import re

    m = re.search(r"\bimport\b", line)
    start = m.end() if m else 0
    for w in re.finditer(rf"\b{re.escape(name)}\b", line):
        if w.start() >= start:
            return w.start()
    return None


# --- one owner per fact (issue 19.5) -----------------------------------------

# Names every implementation of one interface defines (each watch module),
# the idiom that stands in for typing's (tests/test_warm_path.py), and
# completion's view of the option table (derived from options.OPTIONS, not
# a copy of it).
SHARED_NAMES = {"NEEDS_ARMING", "TYPE_CHECKING", "OPTIONS"}


def _constants(path: str) -> list:
    """Public upper-case names assigned at module level in ``path``."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    out = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        out += [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()
                and not t.id.startswith("_")]
    return out


@pytest.mark.fast
def test_each_constant_is_defined_in_one_module():
    """A fact has one owner: a second module that defines the same constant
    (MIN_NOFILE was 32 in cli and 64 in build: two facts under one name)
    holds a copy that drifts. Import it from its owner instead."""
    where: dict = {}
    for module, path in _modules().items():
        for name in _constants(path):
            where.setdefault(name, []).append(module)
    twice = {n: ms for n, ms in where.items() if len(ms) > 1 and n not in SHARED_NAMES}
    assert not twice, twice


@functools.cache
def _code_facts(path: str) -> list:
    """(kind, value) of what ``path``'s code names: every attribute and name
    ("name", "sys.platform" / "KEY_LOCK"), and every string or bytes constant
    that is not a docstring ("str", its text)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            base = node.value.id if isinstance(node.value, ast.Name) else ""
            out.append(("name", node.attr))
            if base:
                out.append(("name", f"{base}.{node.attr}"))
        elif isinstance(node, ast.Name):
            out.append(("name", node.id))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes))
              and id(node) not in docstrings):
            text = node.value
            out.append(("str", text.decode("latin-1") if isinstance(text, bytes) else text))
    return out


# fact: (what names it in code, its owner, other modules allowed to). A
# "str" fact matches any string constant containing it (code run in another
# interpreter, like finish's compile script, counts).
WATCH = "runx_env.reaper.watch"
# interpreter.current() computes the interpreter's platform tag exactly as
# its probe does in another interpreter: the tag is a fact about the
# interpreter (hashed into the layer key), not a branch on the OS.
INTERPRETER = ("runx_env.runner.interpreter",)
# boot.py decides where the cache is before any runx module is loaded (the
# byte-code of runx's own modules lives there), so it cannot import the facade.
BOOT = ("runx_env.boot",)
OWNERS = {
    "the key lock's file name": (("name", "KEY_LOCK"), "runx_env.reaper.store", ()),
    "the mount table's reader": (("str", "/proc/self/mountinfo"), "runx_env.reaper.removal", ()),
    "the FUSE mount tool": (("str", "fusermount"), "runx_env.reaper.fuse_tree", ()),
    "PR_SET_PDEATHSIG": (("name", "prctl"), WATCH, ()),
    "which OS (sys.platform)": (("name", "sys.platform"), WATCH, INTERPRETER + BOOT),
    "which OS (os.uname)": (("name", "os.uname"), WATCH, INTERPRETER),
    "whether /proc has what the lease scan reads": (("str", "/proc/self/environ"), WATCH, ()),
}


@pytest.mark.fast
@pytest.mark.parametrize("fact", sorted(OWNERS))
def test_each_fact_is_named_by_its_owner_only(fact):
    (kind, value), owner, also = OWNERS[fact]
    found = {module for module, path in _modules().items()
             if any(k == kind and (value in v if kind == "str" else v == value)
                    for k, v in _code_facts(path))}
    assert owner in found and found <= {owner, *also}, (fact, owner, sorted(found))
