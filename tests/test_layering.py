"""The layering of docs/architecture.md, checked: crdt is pure and depends on the standard
library only (its runtime dependencies are zero), the engine in sync/ is sans-I/O, and the
application package shoal/ sits on top: crdt, store and sync never import it, not even
lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
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
    bad = _imports(path) & (IO_MODULES | {"store", "sync"})
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


# What a crdt module may import: the standard library and crdt itself (relative imports,
# level > 0, stay inside the package and are not listed by _imports).
CRDT_MAY_IMPORT = frozenset(sys.stdlib_module_names) | {"crdt", "__future__"}


@pytest.mark.parametrize("path", _sources("crdt"), ids=lambda p: str(p.relative_to(ROOT)))
def test_crdt_imports_only_the_standard_library(path: Path) -> None:
    bad = _imports(path) - CRDT_MAY_IMPORT
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: not the standard library"


def test_importing_crdt_loads_only_the_standard_library() -> None:
    """The same at run time, transitively: a fresh interpreter without site (no .pth hooks)
    imports every crdt module and lists the top-level modules it loaded."""
    modules = ", ".join(f"crdt.{p.stem}" for p in _sources("crdt") if p.stem != "__init__")
    code = (
        f"import sys, crdt, {modules}\n"
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    loaded = set(out) - CRDT_MAY_IMPORT - set(sys.builtin_module_names) - {"__main__"}
    assert not loaded, f"importing crdt loads {sorted(loaded)}: not the standard library"


def _engine_sources() -> list[Path]:
    return [p for p in _sources("sync") if "transport" not in p.relative_to(ROOT).parts]


@pytest.mark.parametrize("path", _engine_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_is_sans_io(path: Path) -> None:
    bad = _imports(path) & (IO_MODULES | {"store"})
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _sources("store"), ids=lambda p: str(p.relative_to(ROOT)))
def test_store_does_not_depend_on_sync(path: Path) -> None:
    assert "sync" not in _imports(path), f"{path.relative_to(ROOT)} imports sync"


LAYERS = ("crdt", "store", "sync")


def _dynamic_imports(path: Path) -> set[str]:
    """Module names given as string constants to ``importlib.import_module``/``__import__``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0]
        if name in {"import_module", "__import__"} and isinstance(first, ast.Constant):
            found.add(str(first.value).split(".")[0])
    return found


@pytest.mark.parametrize(
    "path",
    [p for layer in LAYERS for p in _sources(layer)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_layers_never_import_the_application_package(path: Path) -> None:
    # _imports walks the whole tree: imports inside functions and under TYPE_CHECKING count.
    bad = (_imports(path) | _dynamic_imports(path)) & {"shoal"}
    assert not bad, f"{path.relative_to(ROOT)} imports shoal: the layers never reach up"


def test_the_checks_see_the_packages() -> None:
    # Guards the tests above against silently checking nothing.
    assert _sources("crdt") and _engine_sources() and _sources("store") and _sources("shoal")


@pytest.mark.parametrize(
    "text",
    [
        "import shoal.cli\n",
        "def f():\n    from shoal import Peer\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from shoal.demo import main\n",
        "import importlib\nm = importlib.import_module('shoal.cli')\n",
        "m = __import__('shoal')\n",
    ],
)
def test_an_upward_import_is_seen_however_it_is_spelled(tmp_path: Path, text: str) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(text)
    assert "shoal" in _imports(probe) | _dynamic_imports(probe)
