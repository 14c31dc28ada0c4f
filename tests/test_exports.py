"""Every module declares ``__all__``; every name in it exists; packages re-export them; the
application package ``shoal`` exports the embedding API, the same names for type checkers
(``TYPE_CHECKING`` imports) as at run time (lazy loading)."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["crdt", "store", "sync", "shoal"]


def _modules() -> list[str]:
    names: list[str] = []
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_all_is_declared_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    missing = [attr for attr in exported if not hasattr(module, attr)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"


@pytest.mark.parametrize("package", ["crdt", "store"])
def test_package_reexports_its_modules_public_names(package: str) -> None:
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for attr in getattr(module, "__all__", []):
            assert attr in pkg.__all__, f"{package} does not re-export {info.name}.{attr}"


# What a user of the embedding API needs, by name (the README and docs/architecture.md).
EMBEDDING_API = {
    "Peer",
    "Subscription",
    "GCounterHandle",
    "PNCounterHandle",
    "LWWHandle",
    "MVRegisterHandle",
    "ORSetHandle",
    "ORMapHandle",
    "GCounter",
    "PNCounter",
    "LWWRegister",
    "MVRegister",
    "ORSet",
    "ORMap",
    "WriteResult",
    "QuorumNotReached",
    "ReadQuorumNotReached",
    "PeerFailed",
    "SyncError",
    "ONE",
    "QUORUM",
    "ALL",
    "LOCAL_QUORUM",
    "__version__",
}


def test_shoal_exports_the_embedding_api() -> None:
    import shoal

    missing = EMBEDDING_API - set(shoal.__all__)
    assert not missing, f"shoal.__all__ lacks {sorted(missing)}"


def _type_checking_imports(path: Path) -> dict[str, str]:
    """name -> module of the imports under ``if TYPE_CHECKING:`` in ``path``."""
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.unparse(stmt)
                found.update({alias.asname or alias.name: stmt.module for alias in stmt.names})
    return found


def test_shoal_names_are_the_same_for_checkers_and_at_run_time() -> None:
    import shoal

    typed = _type_checking_imports(ROOT / "shoal" / "__init__.py")
    assert typed == shoal._LAZY
    assert set(shoal.__all__) == set(typed) | {"__version__"}
    for name, module in typed.items():
        assert getattr(shoal, name) is getattr(importlib.import_module(module), name), name
    assert set(shoal.__all__) <= set(dir(shoal))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = shoal.Nope  # type: ignore[attr-defined]


def test_sync_transport_names_are_typed_too() -> None:
    import sync

    typed = _type_checking_imports(ROOT / "sync" / "__init__.py")
    assert typed == sync._TRANSPORT_NAMES
    for name in typed:
        assert name in sync.__all__


def test_importing_shoal_loads_nothing_until_a_name_is_used() -> None:
    code = (
        "import json, sys, shoal\n"
        "ours = {'crdt', 'store', 'sync', 'websockets', 'sqlalchemy'}\n"
        "def loaded(): return sorted(ours & {m.split('.')[0] for m in sys.modules})\n"
        "steps = [loaded()]\n"
        "shoal.ORSet\n"
        "steps.append(loaded())\n"
        "shoal.Peer\n"
        "steps.append(loaded())\n"
        "print(json.dumps(steps))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        [],
        ["crdt"],
        ["crdt", "sqlalchemy", "store", "sync", "websockets"],
    ]
