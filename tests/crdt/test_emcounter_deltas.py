"""A counter in an ORMap holds one entry per replica, whatever order its deltas arrive in.

Each replica's entry carries its running totals, and each increment replaces that replica's
entry (``crdt/emcounter.py``). The delta of an increment carries in its context only the dot
it replaced, so a replica that missed the delta in between (a lost push, whose gap anti-
entropy fills later; the pieces of a state transfer) held both the earlier and the later
entry, and counted the earlier total twice until the missing delta came. As riak_dt's
embedded counter (one entry per actor, the later kept), the join keeps a replica's latest.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crdt import ORMap
from tests.crdt.conftest import REPLICAS, crdt_settings

__all__: list[str] = []


def _inc(replica: str, n: int) -> Any:
    return lambda c: c.increment(replica, n)


def _entries(m: ORMap, key: str) -> list[Any]:
    for k, _kind, body in m.to_dict()["entries"]:
        if k == key:
            return list(body)
    return []


def test_a_delta_missed_in_between_does_not_count_twice() -> None:
    a, b = ORMap(), ORMap()
    d1 = a.update("A", "hits", "gcounter", _inc("A", 1))
    a.update("A", "hits", "gcounter", _inc("A", 2))  # its delta is lost on the way to B
    d3 = a.update("A", "hits", "gcounter", _inc("A", 3))
    b.merge(d1)
    b.merge(d3)
    assert a.value == b.value == {"hits": 6}
    assert len(_entries(b, "hits")) == 1


def test_a_remove_missed_in_between_does_not_bring_the_old_total_back() -> None:
    """A saw its total removed and counts again from 0: its new entry says what it counts."""
    a, b = ORMap(), ORMap()
    b.merge(a.update("A", "stock", "pncounter", _inc("A", 5)))
    a.remove("stock")  # its delta is lost on the way to B
    b.merge(a.update("A", "stock", "pncounter", lambda c: c.decrement("A", 1)))
    assert a.value == b.value == {"stock": -1}


def test_pieces_of_a_state_transfer_do_not_count_twice() -> None:
    """The pieces of a split map each carry only their own dots' context."""
    a, b = ORMap(), ORMap()
    for i in range(30):
        a.update("A", f"pad{i:02}", "lww", lambda r, i=i: r.set("A", "x" * 40, now_ms=i))
    b.merge(a.update("A", "hits", "gcounter", _inc("A", 4)).copy())
    a.update("A", "hits", "gcounter", _inc("A", 1))
    for piece in a.split(400):
        b.merge(piece)
        assert b.value.get("hits", 0) <= 5
    assert b == a


@crdt_settings
@given(st.data())
def test_every_counter_holds_one_entry_per_replica_under_any_delivery(data: Any) -> None:
    states = {r: ORMap() for r in REPLICAS}
    deltas: list[ORMap] = []
    made = {"hits": 0}
    for _ in range(data.draw(st.integers(1, 25), label="steps")):
        r = data.draw(st.sampled_from(REPLICAS), label="replica")
        op = data.draw(st.sampled_from(["inc", "inc", "inc", "remove", "clear", "sync"]))
        if op == "inc":
            n = data.draw(st.integers(1, 3))
            made["hits"] += n
            deltas.append(states[r].update(r, "hits", "gcounter", _inc(r, n)))
        elif op == "remove":
            deltas.append(states[r].remove("hits"))
        elif op == "clear":
            deltas.append(states[r].clear())
        else:
            other = data.draw(st.sampled_from(REPLICAS))
            states[r].merge(states[other].copy())
        for target, i in data.draw(
            st.lists(st.tuples(st.sampled_from(REPLICAS), st.integers(0, 10**6)), max_size=3)
        ):
            if deltas:
                states[target].merge(deltas[i % len(deltas)])
        for s in states.values():
            replicas = [dot[0] for dot, _total in _entries(s, "hits")]
            assert len(replicas) == len(set(replicas)), _entries(s, "hits")
            assert s.value.get("hits", 0) <= made["hits"]
    full = ORMap()
    for s in states.values():
        full.merge(s.copy())
    for s in states.values():
        for d in deltas:
            s.merge(d)
        assert s == full
