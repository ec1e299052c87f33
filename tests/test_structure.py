"""The code's shape: runx's modules import each other without a cycle, and
always through the one namespace the wheel installs (runx_env).

Every import counts, at module level or inside a function (a deferred
import is still a dependency: two modules that reach for each other cannot
be understood, or changed, one at a time); type-only ones (``if
TYPE_CHECKING:``) do not, since they never run.
"""

import ast
import os

SRC = os.path.join(os.path.dirname(__file__), os.pardir, "src")
PACKAGES = ("runner", "reaper")


def _modules() -> dict:
    """module name -> file path, for every module of the packages."""
    out = {}
    for pkg in PACKAGES:
        root = os.path.join(SRC, pkg)
        for dirpath, _, files in os.walk(root):
            for f in files:
                if not f.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), SRC)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out["runx_env." + ".".join(rel)] = os.path.join(dirpath, f)
    return out


def import_graph() -> tuple:
    """(module -> the set of runx modules it imports, ``from pkg import mod``
    counting as importing pkg.mod when that is a module; [(module, name)]
    of imports of ``runner``/``reaper`` outside runx_env, which work in a
    checkout, where src/ is on sys.path, and fail once installed)."""
    mods = _modules()
    graph, stray = {}, []
    for name, path in mods.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):     # type-only imports never run
            if (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                    and node.test.id == "TYPE_CHECKING"):
                node.body = []
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            else:
                continue
            for t in targets:
                if t in mods and t != name:
                    deps.add(t)
                if t.split(".")[0] in PACKAGES:
                    stray.append((name, t))
        # A package's __init__ runs before any of its modules: not an edge
        # that makes a cycle by itself.
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    return graph, stray


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


def test_the_import_graph_has_no_cycle():
    graph, _ = import_graph()
    assert "runx_env.runner.cli" in graph and "runx_env.reaper.daemon" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_import_goes_through_the_namespace():
    _, stray = import_graph()
    assert stray == [], f"imports outside runx_env: {stray}"
