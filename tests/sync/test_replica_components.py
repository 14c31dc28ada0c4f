"""The components of ``sync/replica/`` and what each may know, checked from their imports.

Each component knows only those before it (no import cycle, and a seam for each later
change): ``COMPONENTS`` lists them in that order with the components each one imports, and
every module's docstring says the same in its last paragraph. Only the façade
(``sync/replica/__init__.py``) knows them all; no component imports the façade.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

__all__: list[str] = []

PACKAGE = Path(__file__).resolve().parents[2] / "sync" / "replica"

# In order; each with the components it imports (all of them earlier in the list).
COMPONENTS: dict[str, set[str]] = {
    "timers": set(),
    "outbox": set(),
    "seals": set(),
    "checked": set(),
    "log": {"checked", "seals"},
    "map_clashes": {"outbox"},
    "evicted": set(),
    "skew": set(),
    "local_data": {"outbox", "log", "map_clashes", "evicted", "checked"},
    "membership": {"outbox", "skew"},
    "equivocation": {"outbox", "membership"},
    "drain": {"outbox", "local_data", "membership"},
    "propagation": {"membership"},
    "outbound": {"outbox", "timers", "membership"},
    "hints": {"outbox", "timers", "membership", "outbound"},
    "updates": {"outbox", "local_data", "outbound"},
    "writes": {"outbox", "timers", "membership", "outbound", "hints"},
    "reads": {"outbox", "timers", "local_data", "membership", "outbound"},
    "compaction": {"log", "local_data", "membership", "hints"},
    "transfer": {"outbox", "local_data", "outbound"},
    "anti_entropy": {
        "outbox",
        "timers",
        "checked",
        "local_data",
        "membership",
        "outbound",
        "compaction",
        "transfer",
    },
    "gossip": {"outbox", "timers", "local_data", "membership", "compaction", "anti_entropy"},
    "inbound": {"checked", "local_data", "membership", "reads"},
    "reports": {
        "local_data",
        "membership",
        "equivocation",
        "propagation",
        "hints",
        "writes",
        "reads",
        "transfer",
        "anti_entropy",
    },
    "api": set(),
}
# Modules that hold text only (no code), so not components: the façade's docstring points
# to them rather than importing them.
TEXT_ONLY = {"theory"}
# Parts of one component, which it makes and holds (local_data's, membership's), not the
# façade.
PARTS = {"seals", "log", "map_clashes", "evicted", "skew"}


def _components_imported(path: Path) -> set[str]:
    """The ``sync.replica`` modules that ``path`` imports (``"__init__"`` for the façade)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path.name}: relative import; name sync.replica.<module>")
            module = node.module or ""
            names = [module]
            if module == "sync.replica":
                names = [f"sync.replica.{alias.name}" for alias in node.names]
        for name in names:
            if name == "sync.replica":
                found.add("__init__")
            elif name.startswith("sync.replica."):
                sub = name.split(".")[2]
                found.add(sub if (PACKAGE / f"{sub}.py").exists() else "__init__")
    return found


def test_every_module_of_the_package_is_listed() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(COMPONENTS) | TEXT_ONLY, "update COMPONENTS (and the docs)"


@pytest.mark.parametrize("name", sorted(TEXT_ONLY))
def test_a_text_only_module_holds_no_code(name: str) -> None:
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    doc, *rest = tree.body
    assert isinstance(doc, ast.Expr) and ast.get_docstring(tree), f"{name} has no docstring"
    allowed = "__all__: list[str] = []"
    assert [ast.unparse(n) for n in rest] in ([], [allowed]), f"{name} must hold text only"


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_a_component_imports_exactly_the_components_it_may_know(name: str) -> None:
    before = list(COMPONENTS)[: list(COMPONENTS).index(name)]
    assert COMPONENTS[name] <= set(before), f"{name} may only know components before it"
    imported = _components_imported(PACKAGE / f"{name}.py")
    assert imported == COMPONENTS[name], f"{name} imports {sorted(imported)}"


def test_the_facade_composes_every_component() -> None:
    imported = _components_imported(PACKAGE / "__init__.py")
    assert imported == set(COMPONENTS) - PARTS


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    # Guards the checks above against silently seeing nothing.
    bad = tmp_path / "bad.py"
    bad.write_text("from sync.replica.writes import Writes\nimport sync.replica\n")
    assert _components_imported(bad) == {"writes", "__init__"}
