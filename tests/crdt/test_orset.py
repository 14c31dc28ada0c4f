"""Unit tests for crdt/orset.py: add-wins semantics, elements, both merge paths, codec."""

from __future__ import annotations

import json
import random

import pytest

import crdt.causal_context as causal_context_module
from crdt import DecodeError, Dot, ORSet
from crdt._setstore import index_of


def enc(s: ORSet) -> str:
    return json.dumps(s.to_dict(), sort_keys=True)


def test_add_and_remove_locally() -> None:
    s = ORSet()
    s.add("A", "milk")
    s.add("A", "eggs")
    s.remove("milk")
    assert s.value == frozenset({"eggs"})
    assert "eggs" in s and "milk" not in s and len(s) == 1


def test_a_concurrent_add_wins_over_a_remove() -> None:
    a, b = ORSet(), ORSet()
    b.merge(a.add("A", "x"))
    rm = b.remove("x")
    add = a.add("A", "x")
    a.merge(rm)
    b.merge(add)
    assert a.value == b.value == frozenset({"x"}) and a == b


def test_a_remove_only_removes_what_it_observed() -> None:
    a, b = ORSet(), ORSet()
    da = a.add("A", "x")
    db = b.add("B", "x")  # concurrent add of the same element by B
    a.merge(db)
    rm = b.remove("x")  # B has seen only its own add
    a.merge(rm)
    assert a.value == frozenset({"x"})
    assert a.dots_of("x") == da.dots_of("x")


def test_re_adding_replaces_the_old_dot_and_the_delta_covers_it() -> None:
    s = ORSet()
    s.add("A", "x")
    old = s.copy()
    d = s.add("A", "x")
    assert s.dots_of("x") == frozenset({Dot("A", 2)})
    assert d.context.to_dict() == {"vv": {"A": 2}, "cloud": []}
    old.merge(d)
    assert old == s


def test_remove_of_an_absent_element_returns_a_bottom_delta() -> None:
    s = ORSet()
    assert s.remove("nothing").is_bottom()


def test_clear_removes_everything_seen() -> None:
    s = ORSet()
    for e in "abc":
        s.add("A", e)
    peer = s.copy()
    d = s.clear()
    assert s.value == frozenset()
    peer.merge(d)
    assert peer.value == frozenset() and peer == s


def test_elements_true_one_and_one_point_zero_are_distinct_internally() -> None:
    s = ORSet()
    s.add("A", 1)
    s.add("A", True)
    s.add("A", 1.0)
    assert len(s) == 3
    assert [e[0] for e in s.to_dict()["entries"]] == [1, 1.0, True]
    s.remove(True)
    assert len(s) == 2 and True not in [type(x) is bool for x in s]


def test_arrays_are_elements_and_come_back_as_tuples() -> None:
    s = ORSet()
    s.add("A", ["milk", 2])
    s.add("A", ("milk", 2))  # the same JSON array
    assert s.value == frozenset({("milk", 2)}) and len(s) == 1
    assert ORSet.from_dict(json.loads(enc(s))) == s


@pytest.mark.parametrize("bad", [object(), {"a": 1}, [{"a": 1}], {1, 2}, b"x", float("inf")])
def test_non_json_or_unhashable_elements_are_refused_and_change_nothing(bad: object) -> None:
    s = ORSet()
    s.add("A", "kept")
    before = enc(s)
    with pytest.raises(TypeError):
        s.add("A", bad)
    with pytest.raises(TypeError):
        s.remove(bad)
    assert enc(s) == before


def test_bad_replica_changes_nothing() -> None:
    s = ORSet()
    with pytest.raises(TypeError):
        s.add(None, "x")  # type: ignore[arg-type]
    assert s.is_bottom()


def test_encoding_is_canonical_whatever_the_insertion_order() -> None:
    a, b = ORSet(), ORSet()
    da = [a.add("A", e) for e in ("x", "y", 3)]
    db = [b.add("B", e) for e in ("y", "z")]
    for d in db:
        a.merge(d)
    for d in reversed(da):
        b.merge(d)
    assert a == b and enc(a) == enc(b)
    # sorted by canonical JSON text: "\"x\"" < "3"
    assert [e[0] for e in a.to_dict()["entries"]] == ["x", "y", "z", 3]
    assert a.to_dict()["entries"][1] == ["y", [["A", 2], ["B", 1]]]


def _random_history(seed: int) -> list[ORSet]:
    rng = random.Random(seed)
    reps = {r: ORSet() for r in "ABC"}
    deltas: list[ORSet] = []
    for _ in range(60):
        r = rng.choice("ABC")
        e = rng.choice(["a", "b", "c", "d", 1, None])
        s = reps[r]
        deltas.append(s.add(r, e) if rng.random() < 0.6 else s.remove(e))
        if rng.random() < 0.2:
            x, y = rng.sample("ABC", 2)
            reps[x].merge(reps[y])
    return [*reps.values(), *deltas]


@pytest.mark.parametrize("seed", range(8))
def test_indexed_and_full_merge_paths_agree(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression guard for the two join implementations (O(delta) and one full pass)."""
    states = _random_history(seed)
    results = []
    for small_min, ratio in ((10**9, 1.0), (-1, -1.0)):
        monkeypatch.setattr(causal_context_module, "_SMALL_CONTEXT_MIN", small_min)
        monkeypatch.setattr(causal_context_module, "_SMALL_CONTEXT_RATIO", ratio)
        acc = ORSet()
        for s in states:
            acc.merge(s)
        results.append(enc(acc))
    assert results[0] == results[1]


def test_merging_deltas_into_a_big_set_keeps_the_index_consistent() -> None:
    big = ORSet()
    for i in range(200):
        big.add("A", f"e{i}")
    peer = big.copy()
    removes = [peer.remove(f"e{i}") for i in range(0, 200, 3)]
    adds = [peer.add("B", f"n{i}") for i in range(50)]
    for d in removes + adds:
        big.merge(d)
    assert big == peer
    assert big._index == index_of(big._entries)
    full = ORSet()
    full.merge(peer)
    assert full.value == big.value


def test_merge_with_itself_and_other_kinds() -> None:
    s = ORSet()
    s.add("A", "x")
    s.merge(s)
    assert s.value == frozenset({"x"})
    with pytest.raises(TypeError):
        s.merge([])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entries", "path", "reason"),
    [
        ([["x", [["A", 1]]], ["x", [["A", 2]]]], "entries[1][0]", "duplicate"),
        ([["x", [["B", 1]]]], "entries[0][1][0]", "not covered"),
        ([["x", [["A", 1]]], ["y", [["A", 1]]]], "entries[1][1][0]", "twice"),
        ([["x", []]], "entries[0][1]", "non-empty"),
        ([[{"o": 1}, [["A", 1]]]], "entries[0][0]", "object"),
        ([["x"]], "entries[0]", "expected"),
    ],
)
def test_decode_refuses_inconsistent_states(entries: object, path: str, reason: str) -> None:
    d = {"type": "orset", "v": 1, "entries": entries, "ctx": {"vv": {"A": 2}, "cloud": []}}
    with pytest.raises(DecodeError, match=reason) as e:
        ORSet.from_dict(d)
    assert e.value.path == path


@pytest.mark.parametrize(("bad", "why"), [("milk\ud800", "surrogate"), (10**4000, "4000 digits")])
def test_decode_refuses_an_element_without_json_text(bad: object, why: str) -> None:
    """An element with no JSON text (a lone surrogate has no UTF-8; an int this long has no
    portable text) is refused by the decoder as by ``add``, and as ORMap's embedded sets
    refuse it: a delta from a peer cannot put one in a state."""
    ctx = {"vv": {"A": 2}, "cloud": []}
    for entries in ([[bad, [["A", 1]]]], [["ok", [["A", 2]]], [bad, [["A", 1]]]]):
        d = {"type": "orset", "v": 1, "entries": entries, "ctx": ctx}
        with pytest.raises(DecodeError, match=why) as e:
            ORSet.from_dict(d)
        assert e.value.path == f"entries[{len(entries) - 1}][0]"
