"""Pre-encoded blobs: a log entry's ``delta_json`` and a checkpoint's ``state_json`` are stored
verbatim, or refused."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pytest

import crdt
from store import Batch, HintRow, InvalidInput, LogRow, default_partition_of, sql
from tests.store.conftest import Backend
from tests.store.helpers import counter_row, key_in, log_entry, raw_tables


@dataclass(frozen=True, slots=True)
class EngineEntry:
    """Shaped like the engine's ``LogEntry`` once it carries its delta's JSON text."""

    origin: str
    partition: int
    seq: int
    key: str
    kind: str
    delta: dict[str, Any]
    delta_json: Any = None


@dataclass(frozen=True, slots=True)
class BareEntry:
    """A log entry without a ``delta_json`` attribute (the store encodes its delta)."""

    origin: str
    partition: int
    seq: int
    key: str
    kind: str
    delta: dict[str, Any]


def orset_delta(element: str, replica: str = "a" * 32) -> dict[str, Any]:
    delta = crdt.ORSet().add(replica, element)
    return delta.to_dict()


def entry(key: str, seq: int, delta_json: Any = None, element: str = "x") -> EngineEntry:
    delta = orset_delta(element)
    text = json.dumps(delta, indent=1) if delta_json is None else delta_json
    return EngineEntry("A", default_partition_of(key), seq, key, "orset", delta, text)


async def test_delta_json_is_the_stored_blob_and_reads_back_as_the_delta(
    backend: Backend,
) -> None:
    # Formatted unlike the store's own encoding, so the raw blob shows which one was kept.
    logged, hinted = entry("cart", 1), entry("cart", 2, element="y")
    bare = BareEntry("A", default_partition_of("cart"), 3, "cart", "orset", orset_delta("z"))
    async with await backend.open() as store:
        await store.apply(
            Batch(log=(logged, bare), hints_add=(HintRow("T", hinted, 1.0),))  # type: ignore[arg-type]
        )
        tables = await raw_tables(store)
        loaded = await store.load()
    # One segment: [[seq, key, kind, delta_text], ...], each delta text a JSON string (its
    # last column is the seals, none here).
    (segment,) = tables["log_segments"]
    assert segment[-1] == "[]"
    assert [e[3] for e in json.loads(segment[-2])] == [logged.delta_json, sql.encode(bare.delta)]
    assert [row[7] for row in tables["hints"]] == [hinted.delta_json]
    assert [(e.seq, e.delta) for e in loaded.log] == [
        (1, logged.delta),
        (3, bare.delta),
    ]
    assert loaded.hints[0].entry.delta == hinted.delta
    # Reads fill the cache with the stored text.
    assert [e.delta_json for e in loaded.log] == [logged.delta_json, sql.encode(bare.delta)]
    assert loaded.hints[0].entry.delta_json == hinted.delta_json


def test_prepare_keeps_the_text_itself() -> None:
    text = '{"type":"gcounter","v":1,"counts":{"A":1}}'
    plain = log_entry("k", 1)
    given = LogRow(plain.origin, plain.partition, 1, "k", "gcounter", plain.delta, text)
    prepared = sql.prepare(Batch(log=(given,)), 64, default_partition_of)
    (row,) = prepared.log_rows()
    assert row[5] is text  # (then the seal: None)
    assert given == plain  # delta_json is a cache of delta, not part of the value


@pytest.mark.parametrize("bad", [b'{"type":"orset"}', 7, "", "[1, 2]", ' {"type":"orset"}', "null"])
@pytest.mark.parametrize("where", ["log", "hints_add"])
async def test_a_bad_delta_json_is_refused_and_nothing_is_written(
    backend: Backend, bad: Any, where: str
) -> None:
    bad_entry = entry("cart", 1, delta_json=bad)
    if where == "log":
        batch = Batch(log=(log_entry("other", 1), bad_entry))  # type: ignore[arg-type]
    else:
        batch = Batch(
            log=(log_entry("other", 1),),
            hints_add=(HintRow("T", bad_entry, 1.0),),  # type: ignore[arg-type]
        )
    async with await backend.open() as store:
        await store.apply(Batch(objects=(counter_row("seed"),)))
        before = await raw_tables(store)
        with pytest.raises(InvalidInput, match="delta_json") as info:
            await store.apply(batch)
        assert f"{where}[" in str(info.value) and "'cart'" in str(info.value)
        assert await raw_tables(store) == before


def test_the_declared_kind_is_still_checked_against_the_delta() -> None:
    delta = orset_delta("x")
    lying = EngineEntry("A", default_partition_of("k"), 1, "k", "gcounter", delta, '{"a":1}')
    with pytest.raises(InvalidInput, match="encodes a 'orset', not the declared 'gcounter'"):
        sql.prepare(Batch(log=(lying,)), 64, default_partition_of)  # type: ignore[arg-type]


def test_the_fast_path_and_the_checked_path_make_the_same_rows() -> None:
    # Keys in partition 0 (a falsy memo value), a non-dict mapping, repeated keys.
    keys = [key_in(0, 0), key_in(0, 1), key_in(5, 0), key_in(0, 0)]
    plain = [log_entry(k, i + 1) for i, k in enumerate(keys)]
    proxied = [
        LogRow(e.origin, e.partition, e.seq, e.key, e.kind, MappingProxyType(e.delta))  # type: ignore[arg-type]
        for e in plain
    ]
    fast = sql.prepare(Batch(log=tuple(plain)), 64, default_partition_of)
    checked = sql.prepare(Batch(log=tuple(proxied)), 64, default_partition_of)
    assert fast.log_rows() == checked.log_rows()
    assert sorted(row[0] for row in fast.log_rows()) == [0, 0, 0, 5]


class TextOnlyEntry:
    """Like the engine's LogEntry that keeps only the text: ``delta`` decodes it, counted."""

    def __init__(self, key: str, seq: int, kind: str, text: str) -> None:
        self.origin, self.partition, self.seq = "A", default_partition_of(key), seq
        self.key, self.kind, self.delta_json = key, kind, text
        self.decoded = 0

    @property
    def delta(self) -> dict[str, Any]:
        self.decoded += 1
        value: dict[str, Any] = json.loads(self.delta_json)
        return value


def test_compact_delta_json_is_kind_checked_without_decoding_the_delta() -> None:
    compact = sql.encode(orset_delta("x"))
    entries = [TextOnlyEntry("k", 1, "orset", compact), TextOnlyEntry("k", 2, "orset", compact)]
    prepared = sql.prepare(Batch(log=tuple(entries)), 64, default_partition_of)  # type: ignore[arg-type]
    assert [row[5] for row in prepared.log_rows()] == [compact, compact]
    assert [e.decoded for e in entries] == [0, 0]
    # Another layout (indented, "type" not first) is checked on the decoded delta instead.
    spaced = TextOnlyEntry("k", 3, "orset", json.dumps(orset_delta("x"), indent=1))
    sql.prepare(Batch(log=(spaced,)), 64, default_partition_of)  # type: ignore[arg-type]
    assert spaced.decoded >= 1
    # A text that declares another kind than the entry's is refused.
    lying = TextOnlyEntry("k", 4, "gcounter", compact)
    with pytest.raises(InvalidInput, match="encodes a 'orset', not the declared 'gcounter'"):
        sql.prepare(Batch(log=(lying,)), 64, default_partition_of)  # type: ignore[arg-type]


class TextOnlyObject:
    """Like the engine's ObjectState: the state's JSON text; ``state`` decodes it, counted."""

    def __init__(self, key: str, kind: str, text: str) -> None:
        self.key, self.kind, self.state_json = key, kind, text
        self.decoded = 0

    @property
    def state(self) -> dict[str, Any]:
        self.decoded += 1
        value: dict[str, Any] = json.loads(self.state_json)
        return value


async def test_a_checkpoint_state_json_is_stored_as_it_is(backend: Backend) -> None:
    compact = sql.encode(crdt.ORSet().add("a" * 32, "milk").to_dict())
    obj = TextOnlyObject("cart", "orset", compact)
    async with await backend.open() as store:
        await store.apply(Batch(objects=(obj,)))  # type: ignore[arg-type]
        tables = await raw_tables(store)
        loaded = await store.load()
    assert [row[3] for row in tables["objects"] if row[0] == "cart"] == [compact]
    assert obj.decoded == 0  # kind checked on the text
    assert loaded.objects[("cart", "orset")].state == json.loads(compact)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        # Cut short, in another spelling than the compact one, which the store would trust
        # (the caller guarantees a compact text is the JSON of the state), so it is decoded.
        ('{"type": "orset", "v": 1, "entries":', "not JSON"),
        ('{"type":"gcounter","v":1,"counts":{}}', "not the declared 'orset'"),
    ],
)
async def test_a_bad_state_json_is_refused_and_nothing_is_written(
    backend: Backend, text: str, match: str
) -> None:
    async with await backend.open() as store:
        await store.apply(Batch(objects=(counter_row("seed"),)))
        before = await raw_tables(store)
        bad = TextOnlyObject("cart", "orset", text)
        with pytest.raises(InvalidInput, match=match):
            await store.apply(Batch(objects=(counter_row("other"), bad)))  # type: ignore[arg-type]
        assert await raw_tables(store) == before
