"""What opening a store with many keys reads: the same statements at any size, and the one
pass over the keys (the kind clashes) streamed from the partial index of live keys.

An engine with a bounded cache opens with :meth:`Store.fold_log` and
:meth:`Store.load_start`, which reads no object of a large database; the kind clashes
(:func:`store.ondemand.kind_clashes`) are the only read that grows with the keys. On
PostgreSQL it grouped the plain key, which the index of live keys (``key COLLATE "C"``) does
not order: the server hashed every key, spilling to disk, 0.9 s of a 1.0 s open of a million
keys (``benchmarks/pg_relay_bench.py``). These tests check plans and statements, not times.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from store import LIVE_INDEX, Batch, Store
from tests.store.conftest import Backend
from tests.store.helpers import counter_row, orset_row
from tests.store.test_live import emptied_set


async def _statements_of(store: Store, call: Any) -> list[tuple[str, Any]]:
    """The statements (and parameters) ``await call()`` reads through the store."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        seen.append((statement, params))

    event.listen(store.read_engine, "before_cursor_execute", capture)
    try:
        await call()
    finally:
        event.remove(store.read_engine, "before_cursor_execute", capture)
    return seen


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """A PostgreSQL JSON plan's nodes, top-down."""
    return [plan, *(n for child in plan.get("Plans", ()) for n in _nodes(child))]


async def test_the_clash_pass_streams_the_live_key_index(backend: Backend) -> None:
    """The grouping that finds the clashed keys reads the partial index of live keys in its
    order: no hash and no sort of the keys (PostgreSQL: sequential scans and sorts priced
    out, as in ``test_the_live_index_serves_the_listing``, so that the plan shows what
    *can* serve the query, not what is cheapest on a small table)."""
    async with await backend.open() as store:
        await store.apply(Batch(objects=tuple(counter_row(f"k{i:05d}") for i in range(2000))))
        await store.apply(Batch(objects=(orset_row("k00007", "x"),)))
        seen = await _statements_of(store, lambda: store.load_start(objects_limit=10))
        grouped = [(s, p) for s, p in seen if "GROUP BY" in s]
        assert len(grouped) == 1, grouped
        ((statement, params),) = grouped
        async with store.engine.connect() as conn:
            if backend.name == "sqlite":
                plan = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
                text = "\n".join(str(row[-1]) for row in plan.all())
                assert LIVE_INDEX in text and "TEMP B-TREE" not in text, text
            else:
                await conn.exec_driver_sql("ANALYZE objects")
                await conn.exec_driver_sql("SET enable_seqscan = off")
                await conn.exec_driver_sql("SET enable_sort = off")
                out = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", params)
                raw = out.scalar_one()
                nodes = _nodes(raw[0]["Plan"])
                kinds = [n["Node Type"] for n in nodes]
                assert kinds == ["Aggregate", "Index Only Scan"], nodes
                assert nodes[0]["Strategy"] == "Sorted", nodes[0]  # a GroupAggregate
                assert nodes[1]["Index Name"] == LIVE_INDEX, nodes[1]
        assert (await store.load_start(objects_limit=10)).clashes == {
            "k00007": ("gcounter", "orset")
        }


async def test_many_clashes_are_all_found(backend: Backend) -> None:
    """More clashed keys than one lookup of their kinds takes (500), and a resolved clash."""
    async with await backend.open() as store:
        clashed = [f"c{i:04d}" for i in range(700)]
        await store.apply(
            Batch(
                objects=(
                    *(counter_row(k) for k in clashed),
                    *(orset_row(k, "x") for k in clashed),
                    counter_row("resolved"),
                    emptied_set("resolved"),
                    counter_row("alone"),
                )
            )
        )
        found = (await store.load_start(objects_limit=0)).clashes
        assert found == {k: ("gcounter", "orset") for k in clashed}


async def test_opening_runs_the_same_statements_at_any_size(backend: Backend) -> None:
    """Above ``objects_limit`` objects, opening (``fold_log`` and ``load_start``) runs the same
    statements whatever the number of keys: none per key, per page of keys or per object."""

    async def opening(n: int) -> list[str]:
        async with await backend.open() as store:
            done = await store.count_objects(range(64))
            have = sum(count for count, _ in done.values())
            rows = tuple(counter_row(f"n{i:05d}") for i in range(have, n))
            if rows:
                await store.apply(Batch(objects=rows))

            async def both() -> None:
                await store.fold_log()
                await store.load_start(objects_limit=10)

            return [s for s, _ in await _statements_of(store, both)]

    small = await opening(50)
    large = await opening(3000)
    assert small == large
    assert len(small) <= 12, small
