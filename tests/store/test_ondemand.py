"""store.ondemand: batched object reads, paged keys, the log fold, a bounded start."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

import crdt
from shoal import cli
from store import Batch, LogRow, ObjectRow, default_partition_of, meta
from store.ondemand import prefix_end
from store.report import report_keys
from tests.store.conftest import Backend
from tests.store.helpers import counter_row, orset_row

ODD = ["a", "a\u00e9", "a\U0001f600", "a\uffff", "ab", "a\x7f", "a~", "b"]


def _delta(n: int) -> dict[str, Any]:
    return crdt.GCounter().increment("W", n).to_dict()


async def test_get_objects_reads_every_kind_of_a_batch_of_keys(backend: Backend) -> None:
    async with await backend.open() as store:
        rows = tuple(counter_row(f"k{i:04d}", i + 1) for i in range(1200))
        await store.apply(Batch(objects=(*rows, orset_row("k0007", "x"))))
        got = await store.get_objects([f"k{i:04d}" for i in range(0, 1200, 2)] + ["nope"])
        assert await store.get_objects([]) == []
    assert len(got) == 600
    assert [(r.key, r.kind) for r in got][:2] == [("k0000", "gcounter"), ("k0002", "gcounter")]
    assert got[-1] == counter_row("k1198", 1199)


async def test_keys_page_in_code_point_order_under_a_prefix(backend: Backend) -> None:
    keys = [*ODD, *(f"p/{i:03d}" for i in range(50))]
    async with await backend.open() as store:
        await store.apply(Batch(objects=tuple(counter_row(k) for k in keys)))
        await store.apply(Batch(objects=(orset_row("a", "x"),)))  # two kinds: listed once
        pages: list[list[str]] = []
        after = None
        while True:
            page = await store.keys("p/", after, 7)
            pages.append(page)
            if len(page) < 7:
                break
            after = page[-1]
        assert [k for p in pages for k in p] == [f"p/{i:03d}" for i in range(50)]
        assert await store.keys("a") == sorted(k for k in ODD if k.startswith("a"))
        # Code-point order: U+1F600 sorts after U+FFFF (UTF-16 would put it before).
        assert await store.keys(None, "a\uffff", 3) == ["a\U0001f600", "b", "p/000"]
        assert await store.keys("zz") == []


def test_prefix_end_bounds_every_string_with_the_prefix() -> None:
    assert prefix_end("ab") == "ac"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\U0010ffff") is None
    assert prefix_end("a\ud7ff") == "a\ue000"


async def test_a_crash_leaves_log_entries_that_the_open_folds_into_objects(
    backend: Backend,
) -> None:
    key, part = "c", default_partition_of("c")
    async with await backend.open() as store:
        await store.apply(Batch(objects=(ObjectRow(key, "gcounter", _delta(1)),)))
        # A clean close marks the log folded; entries after it are the crash's tail.
        await store.apply(Batch(log=(LogRow("W", part, 1, key, "gcounter", _delta(1)),)))
        await store.apply(_Folded())
        assert await store.fold_log() == 0
        await store.apply(
            Batch(
                log=(
                    LogRow("W", part, 2, key, "gcounter", _delta(5)),
                    LogRow("V", default_partition_of("solo"), 1, "solo", "gcounter", _delta(2)),
                )
            )
        )
    assert sorted(await asyncio.to_thread(_keys, backend.url)) == ["c", "solo"]
    async with await backend.open() as store:
        assert await store.fold_log(page=1) == 2  # two segments, one page each
        assert await store.fold_log() == 0  # idempotent, and nothing left
        row = await store.get_object(key, "gcounter")
        assert row is not None and crdt.from_dict(row.state).value == 5
        assert await store.get_object("solo") == ObjectRow("solo", "gcounter", _delta(2))
        small = await store.load_start(objects_limit=2)
        big = await store.load_start(objects_limit=1)
    assert small.objects_complete and len(small.objects) == 2
    assert not big.objects_complete and big.objects == {} and len(big.log) == 3


@pytest.mark.parametrize("counted", [True, False], ids=["Store.compact", "apply"])
async def test_entries_logged_after_a_compaction_emptied_the_log_are_folded_after_a_crash(
    backend: Backend, counted: bool
) -> None:
    # SQLite gives a new row the rowid after the largest one left: once compaction deleted
    # the segments at the top of the log, the next ones took ids at or below the fold mark,
    # and after a crash the open's fold (ids above the mark) skipped them: a lone device,
    # whose every entry is stable at once, lost the writes acknowledged since its last
    # compaction, and its summary said it had them, so nothing ever brought them back.
    key, part = "c", default_partition_of("c")
    async with await backend.open() as store:
        for seq in range(1, 6):  # five segments, folded by a clean close
            await store.apply(Batch(log=(LogRow("W", part, seq, key, "gcounter", _delta(seq)),)))
        await store.apply(Batch(objects=(ObjectRow(key, "gcounter", _delta(5)),)))
        await store.apply(_Folded())
    async with await backend.open() as store:
        assert await store.fold_log() == 0
        # Every entry is stable: the log is compacted away (the object holds it all), by
        # Store.compact or as a peer's batches do (segments below the watermark unread).
        if counted:
            assert await store.compact(part, {"W": 5}) == 5
        else:
            await store.apply(Batch(compact=((part, {"W": 5}),)))
        async with store.engine.connect() as conn:
            mark = await conn.scalar(select(meta.c.value).where(meta.c.name == "log_folded"))
        assert mark == "0"  # down to the last segment left: none
        for seq in (6, 7):  # acknowledged, not checkpointed yet; then the process dies
            await store.apply(Batch(log=(LogRow("W", part, seq, key, "gcounter", _delta(seq)),)))
    async with await backend.open() as store:
        assert await store.fold_log() == 2
        row = await store.get_object(key, "gcounter")
    assert row is not None and crdt.from_dict(row.state).value == 7


async def test_a_fold_mark_above_the_log_left_by_an_older_version_refolds_the_whole_log(
    backend: Backend,
) -> None:
    # What a version that did not lower the mark at compaction left after a kill -9: the
    # mark above every segment, and segments below it never folded. The open folds the
    # whole log again (merging is idempotent) rather than skip them.
    key, part = "c", default_partition_of("c")
    async with await backend.open() as store:
        await store.apply(Batch(objects=(ObjectRow(key, "gcounter", _delta(5)),)))
        for seq in (6, 7):
            await store.apply(Batch(log=(LogRow("W", part, seq, key, "gcounter", _delta(seq)),)))
        solo = LogRow("V", default_partition_of("solo"), 1, "solo", "gcounter", _delta(2))
        await store.apply(Batch(log=(solo,)))
        async with store.engine.begin() as conn:
            await conn.execute(insert(meta).values(name="log_folded", value="12"))
    # (What the next open will list, read without writing: the key only in the log too.)
    assert sorted(await asyncio.to_thread(_keys, backend.url)) == ["c", "solo"]
    async with await backend.open() as store:
        assert await store.fold_log() == 3
        assert await store.fold_log() == 0
        row = await store.get_object(key, "gcounter")
        assert await store.get_object("solo") == ObjectRow("solo", "gcounter", _delta(2))
    assert row is not None and crdt.from_dict(row.state).value == 7


def _keys(url: str) -> list[str]:
    found: list[str] = []
    report_keys(url, None, found.extend)
    return found


class _Folded(Batch):
    """A batch that only marks the log folded (as the engine's clean close does)."""

    log_folded = True


def test_inspect_keys_lists_keys_by_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def build() -> None:
        from store import Store

        async with await Store.open(tmp_path / "k.db") as store:
            await store.apply(Batch(objects=tuple(counter_row(f"key:{i}") for i in range(12))))

    asyncio.run(build())
    assert cli.main(["inspect", "--db", str(tmp_path / "k.db"), "--keys", "key:1"]) == 0
    assert capsys.readouterr().out.split() == ["key:1", "key:10", "key:11"]
    assert cli.main(["inspect", "--db", str(tmp_path / "k.db"), "--keys", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == sorted(f"key:{i}" for i in range(12))
    assert cli.main(["inspect", "--db", str(tmp_path / "none.db"), "--keys"]) == 1
