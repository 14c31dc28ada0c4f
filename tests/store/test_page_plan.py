"""The page of objects a state transfer reads leaves no state text to SQLite's sorter.

``store.ondemand.objects_page`` reads the states of a page after finding its positions. The
index ``(partition, key)`` does not cover ``kind``, so an ``ORDER BY key, kind`` on the states
query made SQLite sort the rows, states included, in a temporary b-tree: a 10 MB state
took 60 MB of the process there (bootstrap_bench.py's ORMap). The states query must not
sort (its plan has no temporary b-tree), and the page still comes in (key, kind) order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event

import crdt
from store import Batch, ObjectRow, Store
from store.ondemand import objects_page
from sync.ring import partition_of

__all__: list[str] = []


async def test_the_states_of_a_page_are_read_without_a_sort(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    keys = [k for k in (f"k{i}" for i in range(400)) if partition_of(k, 64) == 5][:6]
    async with await Store.open(path) as st:
        rows = []
        for k in keys:
            for kind in ("orset", "gcounter"):  # two kinds of one key: kind orders them
                obj = crdt.ORSet().add("A", k) if kind == "orset" else crdt.GCounter()
                rows.append(ObjectRow(k, kind, obj.to_dict()))
        await st.apply(Batch(objects=tuple(rows)))
    engine = create_engine(f"sqlite:///{path}")
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.connect() as conn:
            page, end = objects_page(conn, 5, None, 100, 1 << 20)
            plans = [
                conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}", p).all()
                for s, p in list(statements)
                if "objects.state" in s and "length" not in s
            ]
    finally:
        engine.dispose()
    assert end and [(k, kind) for k, kind, _ in page] == sorted(
        (k, kind) for k in keys for kind in ("gcounter", "orset")
    )
    assert plans, "no query read the states"
    for plan in plans:
        assert not any("TEMP B-TREE" in str(row[-1]) for row in plan), plan
