"""A store on SQLite does not load PostgreSQL's SQLAlchemy dialect (about 2 MB resident in
every peer otherwise): only a store on PostgreSQL imports it, when it first writes. Nor does a
peer load what only a command reads (``store.report``, behind ``shoal inspect``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_sqlite_peer_writes_without_importing_the_postgresql_dialect(tmp_path: Path) -> None:
    code = f"""
import asyncio, sys
from shoal import Peer

async def main():
    async with Peer.open({str(tmp_path / "a.db")!r}) as peer:
        await peer.orset("cart").add("milk")
        await peer.pncounter("n").increment(2)
    print("postgresql" if "sqlalchemy.dialects.postgresql" in sys.modules else "sqlite only")

asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sqlite only"


def test_a_peer_does_not_import_the_report_of_shoal_inspect(tmp_path: Path) -> None:
    code = f"""
import asyncio, sys
from shoal import Peer

async def main():
    async with Peer.open({str(tmp_path / "a.db")!r}) as peer:
        await peer.orset("cart").add("milk")
    print("report" if "store.report" in sys.modules else "no report")
    import store
    print(store.report_keys.__module__)  # still there for those who ask

asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["no report", "store.report"]


def test_the_lazy_names_of_store_are_those_of_the_report() -> None:
    # store/__init__.py lists the report's names so as not to import it: the two lists agree.
    import store
    import store.report

    assert frozenset(store.report.__all__) == store._REPORT_NAMES
    assert all(getattr(store, name) is getattr(store.report, name) for name in store._REPORT_NAMES)
