"""A state transfer's state for a key held nowhere here passes through, never cached.

A new peer's bootstrap brings 100k keys it holds nothing of. Each state used to be adopted
into the cache, checkpointed and evicted again at the end of its drain: about a fifth of the
instructions of the engine's work on a transfer (``benchmarks/README.md``). Now such a state
goes straight to the drain's ``Persist`` as the text it came as, and its key is on demand
once the drain ends. An input of the same drain that reads or changes the key (a second
chunk, a push, a local write, a read) takes it into the cache first, so it sees, joins and
stores what a cached key would.
"""

from __future__ import annotations

import json

import crdt
from sync import messages as m
from sync.effects import Changed, Effect, KindClashFound, Persist
from sync.replica import Replica
from sync.ring import partition_of
from tests.sync.conftest import asking_replica

__all__: list[str] = []

KEY = "list"
PART = partition_of(KEY, 64)


def _replica() -> Replica:
    return asking_replica(PART)


def _orset(*elements: str) -> crdt.ORSet:
    s = crdt.ORSet()
    for i, element in enumerate(elements):
        s.add(f"C{i}", element)
    return s


def _chunk(batch_id: int, *states: tuple[str, crdt.CRDT]) -> m.SnapshotChunk:
    objects = [m.SnapObject(key=k, kind=s.kind, state_json=s.to_json()) for k, s in states]
    return m.SnapshotChunk(batch_id=batch_id, partition=PART, objects=objects)


def _rows(effects: list[Effect]) -> list[tuple[str, str, str]]:
    return [
        (o.key, o.kind, o.state_json)
        for fx in effects
        if isinstance(fx, Persist)
        for o in fx.objects
    ]


def _decoded(text: str) -> crdt.CRDT:
    return crdt.from_dict(json.loads(text))


def _keys_in(partition: int, count: int) -> list[str]:
    found = (k for k in (f"k{i:05d}" for i in range(100_000)) if partition_of(k, 64) == partition)
    return sorted(next(found) for _ in range(count))


def test_a_state_of_a_key_held_nowhere_is_stored_as_it_came_and_never_cached() -> None:
    r = _replica()
    keys = _keys_in(PART, 3)
    chunk = _chunk(1, *((k, _orset(f"item of {k}")) for k in keys))
    r.receive("B", chunk, 0.0)
    assert r.status()["objects"] == 0  # nothing entered the cache
    assert r.keys() == keys  # but the keys are held, until the drain ends
    rows = _rows(r.effects())
    assert rows == [(o.key, o.kind, o.state_json) for o in chunk.objects]
    assert all(row[2] is o.state_json for row, o in zip(rows, chunk.objects, strict=True))
    assert r.status()["objects"] == 0
    assert r.wants_keys(keys) == keys  # from now on loaded from the store when needed


def test_the_same_key_twice_in_one_drain_is_stored_once_as_the_join() -> None:
    r = _replica()
    r.receive("B", _chunk(1, (KEY, _orset("milk"))), 0.0)
    r.receive("B", _chunk(2, (KEY, _orset("milk", "eggs"))), 0.0)
    assert r.current_value(KEY) == frozenset({"milk", "eggs"})
    rows = _rows(r.effects())
    assert [row[:2] for row in rows] == [(KEY, "orset")]
    assert _decoded(rows[0][2]).value == frozenset({"milk", "eggs"})


def test_reads_and_kinds_see_a_key_passed_through_before_its_drain_ends() -> None:
    r = _replica()
    chunk = _chunk(1, (KEY, _orset("milk")))
    r.receive("B", chunk, 0.0)
    assert r.kinds_of(KEY) == ("orset",)
    assert r.current_value(KEY) == frozenset({"milk"})
    value = r.value(KEY)
    assert value is not None and value.value == frozenset({"milk"})
    (row,) = _rows(r.effects())  # read into the cache, it is still stored as it came
    assert row[:2] == (KEY, "orset") and row[2] is chunk.objects[0].state_json
    assert r.wants_keys([KEY]) == [KEY]


def test_a_local_write_in_the_same_drain_joins_it_and_the_change_feed_sees_both() -> None:
    r = _replica()
    r.receive("B", _chunk(1, (KEY, _orset("milk"))), 0.0)
    r.local_update(1, KEY, "orset", lambda s: s.add("A", "eggs"), 0.0)
    effects = r.effects()
    (changed,) = [fx for fx in effects if isinstance(fx, Changed) and fx.key == KEY]
    assert changed.objects is not None
    assert changed.objects["orset"].value == frozenset({"milk", "eggs"})
    rows = [row for row in _rows(effects) if row[:2] == (KEY, "orset")]
    assert len(rows) == 1
    assert _decoded(rows[0][2]).value == frozenset({"milk", "eggs"})


def test_a_second_kind_in_the_same_drain_is_reported_as_a_clash() -> None:
    r = _replica()
    r.receive("B", _chunk(1, (KEY, _orset("milk"))), 0.0)
    reg = crdt.LWWRegister()
    reg.set("C", "a word", (1, 0, "C"))
    r.receive("B", _chunk(2, (KEY, reg)), 0.0)
    effects = r.effects()
    assert [fx.kinds for fx in effects if isinstance(fx, KindClashFound)] == [("lww", "orset")]
    assert sorted(row[:2] for row in _rows(effects)) == [(KEY, "lww"), (KEY, "orset")]
    assert r.kinds_of(KEY) == ()  # both left the cache: on demand, as every transfer's key
    assert r.wants_keys([KEY]) == [KEY]


def test_a_bottom_state_stores_nothing() -> None:
    r = _replica()
    r.receive("B", _chunk(1, (KEY, crdt.ORSet())), 0.0)
    assert r.keys() == []
    assert _rows(r.effects()) == []
    assert r.wants_keys([KEY]) == []  # still known absent: nothing to load


def _two_siblings() -> crdt.MVRegister:
    reg = crdt.MVRegister()
    reg.set("C", "from C")
    other = crdt.MVRegister()
    other.set("D", "from D")
    reg.merge(other)  # concurrent writes: two siblings
    assert reg.sibling_count == 2
    return reg


def test_status_lists_the_siblings_of_a_register_passed_through_in_this_drain() -> None:
    r = _replica()
    reg = _two_siblings()
    obj = m.SnapObject(key=KEY, kind="mvregister", state_json=reg.to_json())
    r.receive("B", m.SnapshotChunk(batch_id=1, partition=PART, objects=[obj]), 0.0)
    # Held here until the drain ends, it is reported as a cached key is (a review found
    # status() walking the cache alone, so the register's siblings went unlisted).
    assert r.keys() == [KEY]
    assert r.kinds_of(KEY) == ("mvregister",)
    assert r.status()["siblings"] == {KEY: 2}


def test_admitting_a_key_passed_through_in_this_drain_keeps_what_it_holds() -> None:
    # An adapter may admit more than wants_* named: a key passed through in this drain is
    # held here (the store has nothing of it yet), and admit keeps it, as it keeps a cached
    # one, instead of marking it absent (a later write would start from nothing, and the
    # drain's Persist would store two rows for it).
    r = _replica()
    reg = _two_siblings()
    obj = m.SnapObject(key=KEY, kind="mvregister", state_json=reg.to_json())
    r.receive("B", m.SnapshotChunk(batch_id=1, partition=PART, objects=[obj]), 0.0)
    r.admit([KEY], [])
    r.local_update(1, KEY, "mvregister", lambda s: s.set("A", "from A"), 0.0)
    rows = _rows(r.effects())
    assert [row[:2] for row in rows] == [(KEY, "mvregister")]
    stored = _decoded(rows[0][2])
    assert stored.value == ("from A",)  # the write covers both siblings it saw
    assert stored.sibling_count == 1
