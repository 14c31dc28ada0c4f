"""The layering of DESIGN.md, checked: crdt is pure, the engine in sync/ is sans-I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

IO_MODULES = {"asyncio", "websockets", "sqlalchemy", "aiosqlite", "asyncpg", "socket", "sqlite3"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _sources("crdt"), ids=lambda p: str(p.relative_to(ROOT)))
def test_crdt_imports_nothing_of_ours_and_no_io(path: Path) -> None:
    bad = _imports(path) & (IO_MODULES | {"store", "sync", "pydantic"})
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def _engine_sources() -> list[Path]:
    return [p for p in _sources("sync") if "transport" not in p.relative_to(ROOT).parts]


@pytest.mark.parametrize("path", _engine_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_is_sans_io(path: Path) -> None:
    bad = _imports(path) & (IO_MODULES | {"store"})
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _sources("store"), ids=lambda p: str(p.relative_to(ROOT)))
def test_store_does_not_depend_on_sync(path: Path) -> None:
    assert "sync" not in _imports(path), f"{path.relative_to(ROOT)} imports sync"


def test_the_checks_see_the_packages() -> None:
    # Guards the tests above against silently checking nothing.
    assert _sources("crdt") and _engine_sources() and _sources("store")
