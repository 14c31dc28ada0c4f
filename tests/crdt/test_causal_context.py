"""Unit tests for crdt/causal_context.py: compaction, membership, merge, codec."""

from __future__ import annotations

import json
import random

import pytest

from crdt import CausalContext, DecodeError, Dot


def dots_of(c: CausalContext) -> set[Dot]:
    return set(c.dots())


def test_add_in_order_stays_in_the_vector() -> None:
    c = CausalContext()
    for _ in range(3):
        c.add(c.next_dot("A"))
    assert c.vv == {"A": 3} and c.cloud == set()


def test_a_gap_goes_to_the_cloud_and_filling_it_compacts() -> None:
    c = CausalContext()
    c.add(Dot("A", 1))
    c.add(Dot("A", 3))
    c.add(Dot("A", 4))
    assert c.vv == {"A": 1} and c.cloud == {Dot("A", 3), Dot("A", 4)}
    assert not c.contains(Dot("A", 2)) and c.contains(Dot("A", 4))
    assert c.next_dot("A") == Dot("A", 5)
    c.add(Dot("A", 2))
    assert c.vv == {"A": 4} and c.cloud == set()


def test_adding_a_seen_dot_changes_nothing() -> None:
    c = CausalContext({"A": 2})
    c.add(Dot("A", 1))
    assert c == CausalContext({"A": 2})


def test_merge_unions_the_dots_and_compacts_touched_replicas() -> None:
    a = CausalContext({"A": 1}, cloud=[Dot("B", 2)])
    b = CausalContext({"B": 1}, cloud=[Dot("A", 3)])
    a.merge(b)
    assert a.vv == {"A": 1, "B": 2} and a.cloud == {Dot("A", 3)}
    a.merge(CausalContext({"A": 5}))
    assert a.vv == {"A": 5, "B": 2} and a.cloud == set()


def test_merge_equals_set_union_on_random_contexts() -> None:
    rng = random.Random(7)
    for _ in range(200):
        sets = [
            {Dot(rng.choice("AB"), rng.randint(1, 6)) for _ in range(rng.randint(0, 6))}
            for _ in range(2)
        ]
        a, b = (CausalContext(cloud=s) for s in sets)
        a.merge(b)
        assert dots_of(a) == sets[0] | sets[1]
        assert a == CausalContext(cloud=sets[0] | sets[1])  # compact form is canonical


def test_meet_equals_set_intersection_on_random_contexts() -> None:
    rng = random.Random(11)
    for _ in range(300):
        sets = [
            {Dot(rng.choice("ABC"), rng.randint(1, 8)) for _ in range(rng.randint(0, 10))}
            for _ in range(2)
        ]
        a, b = (CausalContext(cloud=s) for s in sets)
        both = a.meet(b)
        assert dots_of(both) == sets[0] & sets[1]
        assert both == CausalContext(cloud=sets[0] & sets[1])  # compact, canonical
        assert b.meet(a) == both
        assert dots_of(a) == sets[0] and dots_of(b) == sets[1]  # neither changed


def test_merging_a_cloud_into_a_compact_vector_equals_set_union() -> None:
    """A state's context (a vector, no cloud) merging a delta group's (a cloud of dots):
    one replica's run right after the vector folds into it; anything else (gaps, several
    replicas, dots seen already) is compacted as a union."""
    rng = random.Random(11)
    for _ in range(300):
        vv = {r: rng.randint(0, 4) for r in rng.sample("AB", rng.randint(0, 2))}
        base = rng.randint(0, 5)
        cloud = {Dot(rng.choice("AB" if rng.random() < 0.5 else "A"), c) for c in range(1, 12)}
        cloud = {d for d in cloud if d[1] > base and rng.random() < 0.9} | {Dot("A", base + 1)}
        a = CausalContext(vv)
        b = CausalContext.__new__(CausalContext)  # not compact: the cloud as a group has it
        b.vv, b.cloud = {}, set(cloud)
        want = dots_of(a) | cloud
        a.merge(b)
        assert dots_of(a) == want
        assert a == CausalContext(cloud=want)  # compact form is canonical
    a = CausalContext({"A": 10})
    b = CausalContext(cloud=[Dot("A", c) for c in range(12, 40)])
    a.merge(b)
    assert a.vv == {"A": 10} and len(a.cloud) == 28
    a.merge(CausalContext(cloud=[Dot("A", 11), Dot("B", 1)]))
    assert a.vv == {"A": 39, "B": 1} and not a.cloud


def test_equal_dot_sets_have_equal_encodings_whatever_the_order() -> None:
    dots = [Dot("A", n) for n in (5, 1, 3, 2)] + [Dot("B", 2)]
    a, b = CausalContext(), CausalContext()
    for d in dots:
        a.add(d)
    for d in reversed(dots):
        b.add(d)
    assert a == b
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)
    assert a.to_dict() == {"vv": {"A": 3}, "cloud": [["A", 5], ["B", 2]]}


def test_dots_not_in_lists_exactly_the_missing_dots() -> None:
    a = CausalContext({"A": 4}, cloud=[Dot("B", 3)])
    b = CausalContext({"A": 1}, cloud=[Dot("A", 3)])
    assert list(a.dots_not_in(b)) == [Dot("A", 2), Dot("A", 4), Dot("B", 3)]
    assert list(b.dots_not_in(a)) == []


def test_size_and_bottom() -> None:
    assert CausalContext().is_bottom() and CausalContext().size() == 0
    c = CausalContext({"A": 3}, cloud=[Dot("B", 5)])
    assert c.size() == 4 and not c.is_bottom()


def test_copy_is_independent() -> None:
    a = CausalContext({"A": 1})
    b = a.copy()
    b.add(Dot("A", 2))
    assert a.vv == {"A": 1}


def test_codec_round_trips_and_compacts_non_canonical_input() -> None:
    c = CausalContext.from_dict({"vv": {"A": 2}, "cloud": [["A", 1], ["A", 3], ["B", 2]]})
    assert c.to_dict() == {"vv": {"A": 3}, "cloud": [["B", 2]]}
    assert CausalContext.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        (None, "ctx"),
        ({"vv": {}}, "ctx.cloud"),
        ({"cloud": []}, "ctx.vv"),
        ({"vv": {}, "cloud": [], "x": 1}, "ctx.x"),
        ({"vv": [], "cloud": []}, "ctx.vv"),
        ({"vv": {"A": 0}, "cloud": []}, "ctx.vv.A"),
        ({"vv": {"": 1}, "cloud": []}, "ctx.vv"),
        ({"vv": {}, "cloud": {}}, "ctx.cloud"),
        ({"vv": {}, "cloud": [["A", 0]]}, "ctx.cloud[0][1]"),
    ],
)
def test_malformed_encoding_is_refused_naming_the_field(bad: object, path: str) -> None:
    with pytest.raises(DecodeError) as e:
        CausalContext.from_dict(bad)
    assert e.value.path == path
