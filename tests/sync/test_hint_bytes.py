"""Hints are bounded in bytes (``hint_max_bytes``), not only in count.

A fallback holding hints of large values for a home that is down held every one of them, in
memory and on disk, up to ``hint_max_per_target`` (100,000 per target, each entry up to a
message): gigabytes for a relay. Past ``hint_max_bytes`` (all targets together) the oldest go
first and are left to anti-entropy, as past the count bound; a replica's hints of its *own*
writes are never dropped (they are the write's only way to a home), only reported.

The bytes are asserted as the engine counts them (``entry_size``, what each entry takes in a
message), on the held hints and on what the disk keeps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from store import Batch, Store
from sync.config import ReplicaConfig
from sync.replica import Replica
from sync.replica.outbound import entry_size
from tests.sync.test_replica import Wire, add, key_homed, ring_of

__all__: list[str] = []

MESSAGE = 64 * 1024
BIG = 8000  # characters per value: about 8 KiB an entry, eight hints to a 64 KiB budget


def _fallback_wire(budget: int) -> tuple[Wire, list[str]]:
    """A, B, C, D with C dead: A's writes to keys homed at A and C (not D) leave D a hint for
    C each; and the keys, in the order written."""
    w = Wire("ABCD", n=3, w=1, max_message_bytes=MESSAGE, hint_max_bytes=budget)
    w.connect()
    ring = ring_of(w)
    keys = [
        k
        for k in (f"h{i}" for i in range(5000))
        if (h := ring.homes_of(k))[0] == "A" and "C" in h and "D" not in h
    ][:12]
    for x in "ABD":
        w.down(x, "C")
    w.dead.add("C")
    return w, keys


def _write_big(w: Wire, keys: list[str], writer: str = "A") -> None:
    for i, key in enumerate(keys):
        value = f"{i:04d}" + "x" * BIG
        w.r[writer].local_update(i, key, "orset", add(value, writer), w.now)
        w.run()


def test_hints_for_others_are_bounded_in_bytes_the_oldest_going_first() -> None:
    w, keys = _fallback_wire(MESSAGE)
    _write_big(w, keys)
    status = w.r["D"].status()
    held = w.disk["D"].hints
    on_disk = sum(entry_size(h.entry) for h in held.values())
    # Held: at most the budget, in memory and on disk alike; without it, all twelve (~97 KB).
    assert status["hint_bytes"] == on_disk <= MESSAGE
    kept = status["hints"]["C"]
    assert kept == len(held) < len(keys)
    assert status["hints_dropped"] == len(keys) - kept
    assert sorted(h.entry.key for h in held.values()) == sorted(keys[-kept:])  # the newest
    assert on_disk + entry_size(next(iter(held.values())).entry) > MESSAGE  # none more fits
    # C returns: it gets the hints held, and anti-entropy brings the rest.
    w.dead.discard("C")
    for x in "ABD":
        w.up(x, "C")
    w.run()
    w.advance(30.0)
    assert w.r["D"].status()["hints"] == {} and w.r["D"].status()["hint_bytes"] == 0
    assert w.disk["D"].hints == {}
    assert all(w.value("C", k) is not None for k in keys)


def test_a_smaller_budget_holds_from_the_restart() -> None:
    w, keys = _fallback_wire(2 * MESSAGE)
    _write_big(w, keys)
    assert w.r["D"].status()["hints"] == {"C": 12}
    assert w.r["D"].status()["hint_bytes"] > MESSAGE
    w.configs["D"] = dataclasses.replace(w.configs["D"], hint_max_bytes=MESSAGE)
    w.restart("D")
    assert w.r["D"].next_deadline() == w.now
    w.r["D"].tick(w.now)  # the bound holds at the first tick, an input: a drop is persisted
    w.run()
    status = w.r["D"].status()
    assert status["hint_bytes"] == sum(entry_size(h.entry) for h in w.disk["D"].hints.values())
    assert status["hint_bytes"] <= MESSAGE
    assert status["hints_dropped"] == 12 - status["hints"]["C"] > 0


def test_own_hints_of_a_non_home_coordinator_are_never_dropped_by_the_budget() -> None:
    w = Wire("ABCD", n=3, w=1, max_message_bytes=MESSAGE, hint_max_bytes=MESSAGE)
    w.connect()
    ring = ring_of(w)
    keys: list[str] = []
    for _ in range(12):
        keys.append(key_homed(ring, lambda h: "A" not in h and "D" in h, f"k{len(keys)}-"))
    homes = sorted({h for k in keys for h in ring.homes_of(k)})
    for h in homes:
        w.down("A", h)
    _write_big(w, keys)
    status = w.r["A"].status()
    own = [h for h in w.disk["A"].hints.values()]
    assert len(own) == sum(len(ring.homes_of(k)) for k in keys)  # one per home of each key
    assert status["own_hint_bytes"] == sum(entry_size(h.entry) for h in own) > 2 * MESSAGE
    assert status["hint_bytes"] == 0 and status["hints_dropped"] == 0
    for h in homes:
        w.up("A", h)
    w.run()
    assert w.r["A"].status()["own_hint_bytes"] == 0 and w.disk["A"].hints == {}
    assert all(w.value(h, k) is not None for k in keys for h in ring.homes_of(k))


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"hint_max_bytes": 0}, ValueError),
        ({"hint_max_bytes": MESSAGE - 1, "max_message_bytes": MESSAGE}, ValueError),
        ({"hint_max_bytes": 1024 * 1024}, ValueError),  # below the 4 MiB message default
        ({"hint_max_bytes": True}, TypeError),
        ({"hint_max_bytes": "1 GiB"}, TypeError),
        ({"hint_max_bytes": 2.0**30}, TypeError),
    ],
)
def test_a_bad_hint_budget_is_refused_naming_it(options: dict[str, object], error: type) -> None:
    with pytest.raises(error, match="hint_max_bytes must be"):
        ReplicaConfig(**options)  # type: ignore[arg-type]


def test_the_budget_is_at_least_one_message() -> None:
    assert ReplicaConfig().hint_max_bytes == 256 * 1024 * 1024
    assert ReplicaConfig(max_message_bytes=MESSAGE, hint_max_bytes=MESSAGE).hint_max_bytes == (
        MESSAGE
    )


async def test_own_hints_loaded_from_the_store_share_one_copy_of_each_write(
    tmp_path: Path,
) -> None:
    """A real SQLite store keeps one row per home and loads a copy of the entry from each;
    loaded, a write's hints for its homes share one entry again, as when it was made,
    instead of holding a copy of the value each."""
    w = Wire("ABCD", n=3, w=1, max_message_bytes=MESSAGE, hint_max_bytes=MESSAGE)
    w.connect()
    ring = ring_of(w)
    keys = [key_homed(ring, lambda h: "A" not in h, f"k{i}-") for i in range(4)]
    for h in "BCD":
        w.down("A", h)
    _write_big(w, keys)
    before = w.r["A"].status()["own_hint_bytes"]
    async with await Store.open(tmp_path / "a.db", partitions=64) as st:
        await st.apply(Batch(hints_add=tuple(w.disk["A"].hints.values())))
        stored = (await st.load()).hints
    assert len(stored) == 3 * len(keys)
    assert len({id(h.entry) for h in stored}) == len(stored)  # a copy per row
    loaded = w.disk["A"].loaded()
    loaded.hints = list(stored)
    w.r["A"] = Replica(w.configs["A"], "A", loaded, now=w.now)
    assert w.r["A"].status()["own_hint_bytes"] == before
    own = w.r["A"]._hints._own  # what the engine holds in memory
    entries = [rec.entry for held in own.values() for rec in held.values()]
    assert len(entries) == 3 * len(keys)
    assert len({id(e) for e in entries}) == len(keys)  # one copy per write, not per home
