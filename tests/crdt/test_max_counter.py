"""``max_counter(replica)``: the largest counter of a replica a state holds, which only that
replica raises (receivers refuse a message raising theirs: tests/sync/test_own_counters.py);
and minting past 2**63-1 is an error that changes nothing, never a dot no decoder takes."""

from __future__ import annotations

from typing import Any

import pytest

import crdt
from crdt import CausalContext, Dot

MAX = 2**63 - 1


def test_each_kind_reports_the_counters_a_replica_raised_in_it() -> None:
    s = crdt.ORSet()
    s.add("A", "x")
    s.add("A", "y")
    s.add("B", "z")
    assert (s.max_counter("A"), s.max_counter("B"), s.max_counter("C")) == (2, 1, 0)
    r = crdt.MVRegister()
    r.set("A", 1)
    assert r.max_counter("A") == 1
    m = crdt.ORMap()
    m.update("A", "k", "orset", lambda x: x.add("A", "x"))
    m.update("A", "n", "gcounter", lambda c: c.increment("A", 7))
    assert m.max_counter("A") == 2  # two dots, whatever the counter's total
    g = crdt.GCounter()
    g.increment("A", 7)
    assert g.max_counter("A") == 7
    p = crdt.PNCounter()
    p.decrement("A", 9)
    assert p.max_counter("A") == 9
    w = crdt.LWWRegister()
    w.set("A", 1, now_ms=5)
    assert w.max_counter("A") == 0
    cloud = CausalContext({"A": 1}, [Dot("A", 5)])
    assert cloud.max_counter("A") == 5


@pytest.mark.parametrize("kind", ["orset", "mvregister", "ormap", "orset-cloud"])
def test_a_dot_past_the_limit_is_refused_and_nothing_changes(kind: str) -> None:
    vv = {"A": MAX}
    cloud = [Dot("A", MAX)] if kind == "orset-cloud" else []
    if kind == "orset-cloud":
        vv = {"A": 1}
    ctx = {"vv": vv, "cloud": [list(d) for d in cloud]}
    name = "orset" if kind == "orset-cloud" else kind
    state: Any = crdt.from_dict({"type": name, "v": 1, "entries": [], "ctx": ctx})
    before = state.to_dict()
    ops = {
        "orset": lambda s: s.add("A", "x"),
        "mvregister": lambda s: s.set("A", "x"),
        "ormap": lambda s: s.update("A", "k", "orset", lambda x: x.add("A", "x")),
    }
    with pytest.raises(ValueError, match="every dot counter"):
        ops[name](state)
    assert state.to_dict() == before
