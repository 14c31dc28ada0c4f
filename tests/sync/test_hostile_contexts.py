"""Causal contexts from a hostile member that claim a huge run of dots (``2**62`` of them).

A member may legitimately claim such a run: a snapshot's summary may lie (the docs say so),
and a member may mint as many dots of its own as it likes. What it must not do is make a
correct peer walk or build that run dot by dot:

* ``Replica.status()`` counts each peer's lag (the log dots of our summaries it lacks)
  arithmetically (``sync/replica/reports.py``): exact, whatever the size of the run;
* the part of a state a reader has not seen (``sync.digest.unseen_part``, behind read
  fetches and read repairs) falls back to the whole state when the part would need a cloud
  of the run: a join with the whole state gives the same result.

The exactness of ``2**62``-sized answers is what shows they were computed, not counted: an
iterative count could never finish (pytest-timeout stops such a test).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crdt
from crdt import CausalContext, ORSet
from sync import messages as m
from sync.digest import unseen_part
from sync.effects import LogEntry, ReadDone
from sync.replica.reports import _count_not_in
from sync.ring import partition_of
from tests.crdt.conftest import crdt_settings
from tests.sync.conftest import ask_transfer
from tests.sync.test_replica import Wire, add

__all__: list[str] = []

HUGE = 2**62
PARTS = 8


# -- counting the dots one context lacks ----------------------------------------------------
@st.composite
def _contexts(draw: st.DrawFn) -> CausalContext:
    """A small compact context over three replicas, with gaps (cloud dots) in any place."""
    vv = draw(st.dictionaries(st.sampled_from("ABC"), st.integers(1, 8), max_size=3))
    cloud = draw(st.lists(st.tuples(st.sampled_from("ABC"), st.integers(1, 16)), max_size=8))
    return CausalContext(vv, cloud)


@crdt_settings
@given(_contexts(), _contexts())
def test_the_dots_a_context_lacks_are_counted_as_listing_them_one_by_one(
    a: CausalContext, b: CausalContext
) -> None:
    assert _count_not_in(a, b) == sum(1 for _ in a.dots_not_in(b))
    assert _count_not_in(a, a) == 0


@pytest.mark.timeout(30)
def test_the_count_is_exact_over_a_run_no_one_could_walk() -> None:
    ours = CausalContext({"zz": HUGE, "a": 3}, [("b", 7)])
    theirs = CausalContext({"zz": 2**61, "b": 7}, [("zz", 2**61 + 5), ("zz", HUGE + 9)])
    # zz: 2**61+1 .. 2**62 less their cloud dot 2**61+5 (their HUGE+9 is beyond our run);
    # a: all three; b: our cloud dot 7 is in their vector.
    assert _count_not_in(ours, theirs) == HUGE - 2**61 - 1 + 3
    assert _count_not_in(theirs, ours) == 6 + 1  # (b, 1..6) and (zz, 2**62 + 9)


def _snapshot_claiming(summary: dict[str, Any]) -> m.Message:
    """The last chunk of a state transfer whose summary says ``summary``."""
    raw = {
        "proto": 1,
        "t": "snapshot",
        "batch_id": 1,
        "partition": 0,
        "objects": [],
        "summary": summary,
        "last": True,
    }
    return m.decode(json.dumps(raw).encode())


@pytest.mark.timeout(30)
def test_status_after_a_summary_claiming_2_62_dots_reports_the_exact_lag_at_once() -> None:
    w = Wire("AB", n=2, partitions=PARTS, vnodes=4, anti_entropy_interval=5.0)
    w.connect()
    assert w.r["A"].status()["lag"] == {"B": 0}
    ask_transfer(w.r["A"], "B", [0], w.now)
    w.r["A"].receive("B", _snapshot_claiming({"vv": {"zz": HUGE}, "cloud": []}), w.now)
    w.drain("A")
    assert w.r["A"].summary(0).vv == {"zz": HUGE}, "the lie is taken (that is allowed)"
    assert w.r["A"].status()["lag"] == {"B": HUGE}
    # B now reports half the run, and a gap in it.
    half = {"vv": {"zz": 2**61}, "cloud": [["zz", 2**61 + 5]]}
    w.r["A"].receive("B", m.decode(json.dumps({"proto": 1, **_summary(half)}).encode()), w.now)
    w.drain("A")
    assert w.r["A"].status()["lag"] == {"B": HUGE - 2**61 - 1}


def _summary(part0: dict[str, Any]) -> dict[str, Any]:
    empty = {"vv": {}, "cloud": []}
    return {"t": "summary", "parts": {str(p): part0 if p == 0 else empty for p in range(PARTS)}}


# -- the part of a state a reader has not seen ----------------------------------------------
def _own_add_claiming_2_62(element: str = "milk") -> dict[str, Any]:
    """H's ORSet add of ``element`` at (H, 1) under a context claiming H:1..2**62."""
    return {
        "type": "orset",
        "v": 1,
        "entries": [[element, [["H", 1]]]],
        "ctx": {"vv": {"H": HUGE}, "cloud": []},
    }


@pytest.mark.timeout(30)
def test_the_unseen_part_of_a_state_claiming_2_62_own_dots_joins_as_the_whole_state() -> None:
    ours = crdt.from_dict(_own_add_claiming_2_62())
    ours.merge(ORSet().add("A", "eggs"))  # (A, 1): unseen by the reader
    theirs = crdt.from_dict(
        {
            "type": "orset",
            "v": 1,
            "entries": [["milk", [["H", 1]]], ["tea", [["B", 1]]]],
            "ctx": {"vv": {"B": 1, "H": 1}, "cloud": []},
        }
    )
    part = unseen_part(ours, theirs.context)  # its seen holds (H, 1), which ours holds
    assert part is not None
    got = theirs.copy()
    got.merge(part)
    expected = theirs.copy()
    expected.merge(ours)
    assert got == expected
    assert got.value == frozenset({"milk", "eggs", "tea"})
    assert got.context.vv == {"A": 1, "B": 1, "H": HUGE}
    assert part == ours, "the whole state, as the part would need a cloud of 2**62 dots"


def test_a_part_with_a_small_gap_is_still_only_the_part() -> None:
    # What the fallback must leave alone: a state whose context covers a few dots its store
    # no longer holds (removed elements) gives a reader the part it lacks, gaps and all.
    ours = ORSet()
    for i in range(10):
        ours.add("A", f"e{i}")
    theirs = ours.copy()
    for i in range(1, 10):
        ours.remove(f"e{i}")
    part = unseen_part(ours, theirs.context)
    assert part is not None
    assert part.to_dict()["ctx"] == {"vv": {}, "cloud": [["A", c] for c in range(2, 11)]}
    assert part.value == frozenset()
    got = theirs.copy()
    got.merge(part)
    assert got == ours


@pytest.mark.timeout(30)
def test_a_quorum_read_of_a_key_under_such_a_context_completes_with_every_write() -> None:
    # H's one push plants the context on A and B; A then writes while B is cut off, so B's
    # read finds A's digest different and fetches what it has not seen, with a seen context
    # holding (H, 1): A answers with its whole state instead of building a cloud of 2**62.
    w = Wire("ABH", n=3, w=1, anti_entropy_interval=0, partitions=PARTS, vnodes=4)
    w.connect()
    key = "cart"
    delta = json.dumps(_own_add_claiming_2_62(), separators=(",", ":"))
    entry = LogEntry("H", partition_of(key, PARTS), 1, key, "orset", delta)
    push = m.decode(m.encode(m.Push.model_construct(push_id=1, entries=[entry], hint_for=None)))
    for i in "AB":
        w.deliver("H", i, push)
    w.run()
    w.cut.add(frozenset(("A", "B")))
    w.r["A"].local_update(1, key, "orset", add("eggs", "A"), w.now)
    w.run()
    w.cut.clear()
    w.down("B", "H")  # so that B's read asks A
    w.r["B"].local_read(2, key, w.now, r=2)
    w.run()
    assert w.messages(m.ReadFetch, "B"), "B fetched what it had not seen"
    (resp,) = w.messages(m.ReadResp, "A")
    assert isinstance(resp, m.ReadResp) and resp.state == w.state("A", key).to_dict()
    (done,) = w.of("B", ReadDone)
    assert done.state is not None and done.state.value == frozenset({"milk", "eggs"})
    assert w.value("B", key) == frozenset({"milk", "eggs"})
    assert w.state("B", key) == w.state("A", key)
