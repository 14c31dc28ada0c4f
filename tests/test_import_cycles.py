"""No import cycles among shoal's modules, whichever way a module imports another.

Every ``import`` statement counts: at module level, inside a function (a lazy import), and
under ``if TYPE_CHECKING:`` (a cycle there still ties the two modules together for a reader,
a type checker and the next refactoring). The graph is read from the sources with ``ast``,
without importing anything.

Edges. ``import a.b.c`` and ``from a.b.c import name`` point at the module ``a.b.c``;
``from a.b import c`` points at ``a.b.c`` when that is a module, else at ``a.b`` (``c`` is a
name it defines). A package's ``__init__`` is the module named after the package. Importing
``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``, but those implicit edges are not
counted: otherwise every package that re-exports its own modules would be a cycle. So the
rule is the usual one: no module may reach itself through the imports it names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("crdt", "store", "sync", "shoal")

Graph = dict[str, set[str]]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def imports_of(root: Path, path: Path, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that ``path`` imports, anywhere in its body."""
    module = module_name(root, path)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                source = _resolve_relative(module, is_package, node.level, node.module)
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.add(sub if sub in modules else source)
    return {m for m in found if m in modules and m != module}


def build_graph(root: Path, packages: Iterable[str] = PACKAGES) -> Graph:
    paths = [p for package in packages for p in sorted((root / package).rglob("*.py"))]
    modules = {module_name(root, p) for p in paths}
    return {module_name(root, p): imports_of(root, p, modules) for p in paths}


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle per strongly connected component that has one, as a closed path through
    its first module (the component may hold more modules: fix this cycle, run again)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0

    def connect(v: str) -> None:  # Tarjan's algorithm; the graphs here are a few hundred nodes
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: Graph, component: set[str]) -> list[str]:
    """A shortest closed path through the first module of ``component`` (breadth first)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w not in parents:
                    parents[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def _describe(cycles: list[list[str]]) -> str:
    return "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_no_import_cycle_in_any_package() -> None:
    graph = build_graph(ROOT)
    cycles = find_cycles(graph)
    assert not cycles, f"import cycles: {_describe(cycles)}"


def test_the_graph_sees_every_package_and_lazy_imports() -> None:
    # Guards the test above against checking nothing: every package is read, and an import
    # inside a function or under TYPE_CHECKING makes an edge like any other.
    graph = build_graph(ROOT)
    for package in PACKAGES:
        assert package in graph, f"{package} not read"
    assert "sync.transport.peer" in graph["shoal"]  # under TYPE_CHECKING (and loaded lazily)
    assert "shoal.demo" in graph["shoal.cli"]  # imported inside a function


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # Module level.
        ({"a.py": "import pkg.b\n", "b.py": "from pkg import a\n"}, "pkg.a -> pkg.b -> pkg.a"),
        # Inside a function, relative, through a package __init__ name.
        (
            {
                "a.py": "def f():\n    from .b import thing\n",
                "b.py": "from . import c\n",
                "c.py": "from .a import f\n",
            },
            "pkg.a -> pkg.b -> pkg.c -> pkg.a",
        ),
        # Under TYPE_CHECKING, with ``..`` from a subpackage.
        (
            {
                "a.py": "from .sub.d import D\n",
                "sub/__init__.py": "",
                "sub/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from ..a import A\n",
            },
            "pkg.a -> pkg.sub.d -> pkg.a",
        ),
    ],
)
def test_the_checker_finds_and_names_a_cycle(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert _describe(find_cycles(build_graph(tmp_path, ["pkg"]))) == expected


def test_the_checker_accepts_a_package_that_reexports_its_modules(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from .a import A\nfrom .b import B\n")
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "pkg" / "b.py").write_text("from pkg.a import A\nB = A\n")
    assert find_cycles(build_graph(tmp_path, ["pkg"])) == []
