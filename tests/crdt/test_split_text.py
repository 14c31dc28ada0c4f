"""``split_text``: a state's JSON text cut into pieces that fit, without decoding it whole.

The pieces obey the rules of ``CRDT.split`` (``crdt/_split.py``); the properties of
``test_split.py`` run on both cuts there. Here: the budget check, then big states of every
kind that can be big (a set with removals, a map of every embedded kind with a nested map too
big for one piece, a register overwritten many times), a text in another layout than the
canonical one, and the memory it takes to cut a big map.
"""

from __future__ import annotations

import json
import random
import tracemalloc
from typing import Any

import pytest

import crdt
from crdt import MVRegister, ORMap, ORSet
from crdt._split_text import split_text
from tests.crdt.test_split import assert_same, join_all

__all__: list[str] = []


def nbytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def pieces_of(state: Any, budget: int) -> list[Any]:
    """The pieces of ``state``'s stored text, decoded (what a receiver makes of them)."""
    return [crdt.from_dict(json.loads(t)) for t in split_text(state.to_json(), budget)]


def test_a_budget_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        next(split_text(ORSet().to_json(), 0))
    with pytest.raises(TypeError, match="max_bytes"):
        next(split_text(ORSet().to_json(), 1.5))  # type: ignore[arg-type]


# -- big states ------------------------------------------------------------------------------
def check_big(state: Any, budget: int) -> list[Any]:
    """The pieces of ``state``'s text: each fits, they join as the state, and as much in
    reverse into a replica already holding it."""
    texts = list(split_text(state.to_json(), budget))
    assert len(texts) > 5 and all(nbytes(t) <= budget for t in texts)
    pieces = [crdt.from_dict(json.loads(t)) for t in texts]
    assert_same(join_all(state.kind, pieces), state)
    assert_same(join_all(state.kind, pieces[::-2], into=state), state)
    return pieces


def test_a_big_set_with_removals() -> None:
    rng = random.Random(7)
    s = ORSet()
    for i in range(6000):
        s.add("AAAAAAAAAAAAAAAAAAAA", f"item-{i}")
        if rng.random() < 0.4:
            s.remove(f"item-{rng.randrange(i + 1)}")
    s.add("BBBBBBBBBBBBBBBBBBBB", "late")
    s.add("AAAAAAAAAAAAAAAAAAAA", ["an", "array", 1.5, None])
    pieces = check_big(s, 8_000)
    # The removed elements' dots travel in pieces of their own, with no element.
    empty = [p for p in pieces if not p.value]
    assert empty and all(p.context.size() > 0 for p in empty)


def inc(c: Any) -> Any:
    return c.increment("A")


def nest(m: ORMap, kind: str, n: int) -> None:
    """Make ``m["nested"]`` a value of ``kind`` too big for one piece: ``n`` nested map
    entries, set elements, counter replicas or concurrent register siblings."""
    for i in range(n):
        r = f"R{i:04d}"
        if kind == "ormap":
            m.update("A", "nested", "ormap", lambda x, i=i: x.update("A", f"k{i}", "gcounter", inc))
        elif kind == "orset":
            m.update("A", "nested", "orset", lambda x, i=i: x.add("A", f"element {i}"))
        elif kind == "pncounter":
            m.update(r, "nested", "pncounter", lambda x, r=r: x.increment(r, 2).decrement(r, 1))
        else:  # concurrent writes by n replicas: n siblings
            other = ORMap()
            other.update(r, "nested", "mvregister", lambda x, r=r, i=i: x.set(r, [i, "sibling"]))
            m.merge(other)


@pytest.mark.parametrize("nested", ["ormap", "orset", "pncounter", "mvregister"])
def test_a_map_of_every_kind_with_a_nested_value_too_big_for_one_piece(nested: str) -> None:
    m = ORMap()
    for i in range(300):
        m.update("A", f"c{i}", "pncounter", lambda c: c.increment("A", 3))
        m.update("A", f"g{i}", "gcounter", inc)
        m.update("B", f"r{i}", "lww", lambda r, i=i: r.set("B", f"value {i}", now_ms=1_000))
        m.update("A", f"s{i}", "orset", lambda s, i=i: s.add("A", i))
        m.update("C", f"v{i}", "mvregister", lambda r, i=i: r.set("C", [i, "é€"]))
        m.update("C", [i, "an array key"], "lww", lambda r, i=i: r.set("C", {"i": i}))
    nest(m, nested, 2000 if nested in ("ormap", "orset") else 400)
    for i in range(0, 300, 3):
        m.remove(f"r{i}")
        m.update("B", f"v{i}", "mvregister", lambda r, i=i: r.set("B", i))  # overwrites
    pieces = check_big(m, 6_000)
    assert len([p for p in pieces if "nested" in p.value]) > 2  # the nested value was cut


def test_an_overwritten_register_sends_its_old_dots_compactly() -> None:
    r = MVRegister()
    for i in range(50_000):
        r.set("A", i)
    r.merge(MVRegister().set("B", "x" * 300))
    texts = list(split_text(r.to_json(), 200))
    assert_same(join_all("mvregister", [crdt.from_dict(json.loads(t)) for t in texts]), r)
    assert sum(nbytes(t) for t in texts) < 2_000  # A's 49,999 old dots: one number


def test_concurrent_registers_with_many_siblings() -> None:
    r = MVRegister()
    for i in range(200):
        r.merge(MVRegister().set(f"replica-{i:03d}", {"note": f"sibling {i}" * 3}))
    check_big(r, 1_000)


def test_a_text_in_another_layout_is_cut_all_the_same() -> None:
    s = ORSet()
    for i in range(500):
        s.add("A", f"element {i}")
    text = json.dumps(s.to_dict(), sort_keys=True)  # "ctx" first: not the canonical layout
    pieces = [crdt.from_dict(json.loads(t)) for t in split_text(text, 2_000)]
    assert len(pieces) > 5
    assert_same(join_all("orset", pieces), s)


def test_a_replica_named_like_the_context_key_does_not_confuse_it() -> None:
    s = ORSet()
    for i in range(300):
        s.add('],"ctx":{"vv":{}', f"element {i}")
        s.add("ctx", f"other {i}")
    s.remove("element 7")
    check_big(s, 2_000)


def test_a_counter_or_a_register_is_cut_by_its_type() -> None:
    g = crdt.GCounter()
    for i in range(500):
        g.increment(f"replica-{i:04d}", i + 1)
    texts = list(split_text(g.to_json(), 1_000))
    assert len(texts) > 5 and all(nbytes(t) <= 1_000 for t in texts)
    assert_same(join_all("gcounter", [crdt.from_dict(json.loads(t)) for t in texts]), g)


# -- memory ----------------------------------------------------------------------------------
def big_map(n: int) -> ORMap:
    m = ORMap()
    for i in range(n):
        m.update(
            "replica-A", f"field {i:06d}", "lww", lambda r, i=i: r.set("replica-A", i, now_ms=i)
        )
    for i in range(0, n, 10):
        m.remove(f"field {i:06d}")
    return m


def test_cutting_a_big_map_takes_far_less_memory_than_the_text() -> None:
    text = big_map(20_000).to_json()
    assert len(text) > 1_000_000
    budget = 20_000
    tracemalloc.start()
    try:
        count = 0
        for piece in split_text(text, budget):  # taken one at a time, as a sender does
            count += 1
            assert nbytes(piece) <= budget
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count > 50
    # Decoded whole, the map takes about 14 times its text (18 MB here); cutting the text
    # holds one piece being filled (its dots and context), a bit per dot of the context and
    # one entry at a time: about 10 times the budget (200 KB here), whatever the map's size.
    assert peak < len(text) // 4, (peak, len(text))


@pytest.mark.parametrize("seed", range(6))
def test_a_map_of_registers_is_cut_as_the_general_path_cuts_it(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A map entry that is one register write under a plain key (the bulk of a big map) is
    # made a unit without decoding the map around it: the pieces must be the very texts the
    # general path makes, whatever else the map holds (other kinds, non-ASCII and non-string
    # keys, removed and overwritten keys, values near and over the budget).
    rng = random.Random(seed)
    m = ORMap()
    for i in range(rng.randrange(50, 400)):
        key: Any = rng.choice([f"k{i}", f"k{i % 13}", f"ké{i}", i])
        r = rng.choice("ABC")
        kind = rng.choice(["lww", "lww", "lww", "orset", "mvregister"])
        value = rng.choice([i, None, True, "v" * rng.randrange(0, 400)])
        if kind in m.kinds_at([key]) or not m.kinds_at([key]):  # (else refused: a clash)
            if kind == "lww":
                m.update(r, key, "lww", lambda reg, r=r, v=value: reg.set(r, v))
            elif kind == "orset":
                m.update(r, key, "orset", lambda s, r=r, i=i: s.add(r, f"e{i}"))
            else:
                m.update(r, key, "mvregister", lambda v, r=r, i=i: v.set(r, i))
        if rng.random() < 0.1:
            m.remove(key)
    text = m.to_json()
    for budget in (200, 700, 5000):
        fast = list(split_text(text, budget))
        with monkeypatch.context() as patched:
            patched.setattr("crdt._split_text._one_write", lambda *args: None)
            general = list(split_text(text, budget))
        assert fast == general
        assert join_all("ormap", [crdt.from_dict(json.loads(t)) for t in fast]) == m
