"""Unit tests for crdt/ormap.py: embedded kinds, views, observed remove, codec."""

from __future__ import annotations

import json
from typing import Any

import pytest

import crdt.causal_context as causal_context_module
from crdt import ClockSkewError, DecodeError, ORMap, Timestamp
from crdt.embedded import embedded_kind


def enc(m: ORMap) -> str:
    return json.dumps(m.to_dict(), sort_keys=True)


def sync(a: ORMap, b: ORMap) -> None:
    a2 = a.copy()
    a.merge(b)
    b.merge(a2)


def deep_increment(n: Any) -> None:
    n.update("A", "deep", "gcounter", lambda c: c.increment("A"))


def test_every_embedded_kind_updates_and_reads() -> None:
    m = ORMap()
    m.update("A", "g", "gcounter", lambda c: c.increment("A", 2))
    m.update("A", "p", "pncounter", lambda c: c.decrement("A", 3))
    m.update("A", "l", "lww", lambda r: r.set("A", "dark", now_ms=10))
    m.update("A", "mv", "mvregister", lambda r: r.set("A", [1]))
    m.update("A", "s", "orset", lambda s: s.add("A", "x"))
    m.update(
        "A", "n", "ormap", lambda n: n.update("A", "deep", "gcounter", lambda c: c.increment("A"))
    )
    assert m.value == {
        "g": 2,
        "p": -3,
        "l": "dark",
        "mv": ([1],),
        "s": frozenset({"x"}),
        "n": {"deep": 1},
    }
    assert ORMap.from_dict(json.loads(enc(m))) == m


def test_the_delta_of_update_joined_into_the_old_state_gives_the_new_state() -> None:
    m = ORMap()
    m.update("A", "s", "orset", lambda s: s.add("A", "x"))
    old = m.copy()
    d = m.update("A", "s", "orset", lambda s: (s.add("A", "y"), s.remove("x")))
    assert m.value == {"s": frozenset({"y"})}
    old.merge(d)
    assert old == m and enc(old) == enc(m)


def test_several_mutations_in_one_fn_are_all_applied() -> None:
    m = ORMap()
    m.update("A", "c", "pncounter", lambda c: (c.increment("A", 5), c.decrement("A", 1)))
    assert m.value == {"c": 4}


def test_counter_increments_replace_the_replicas_previous_dot() -> None:
    m = ORMap()
    for _ in range(5):
        m.update("A", "c", "gcounter", lambda c: c.increment("A"))
    body = m.to_dict()["entries"][0][2]
    assert body == [[["A", 5], 5]]  # one dot per replica, carrying its running total


def test_concurrent_update_survives_an_observed_remove_of_a_set() -> None:
    a, b = ORMap(), ORMap()
    b.merge(a.update("A", "cart", "orset", lambda s: s.add("A", "milk")))
    rm = b.remove("cart")
    up = a.update("A", "cart", "orset", lambda s: s.add("A", "eggs"))
    a.merge(rm)
    b.merge(up)
    assert a == b
    assert a.value == {"cart": frozenset({"eggs"})}  # milk was seen by the remove


def test_concurrent_counter_increment_survives_a_remove_with_its_replicas_total() -> None:
    """Documented choice: one dot per replica (bounded state, as riak_dt_emcntr)."""
    a, b = ORMap(), ORMap()
    b.merge(a.update("A", "hits", "gcounter", lambda c: c.increment("A", 2)))
    b.merge(ORMap())
    rm = b.remove("hits")
    up = a.update("A", "hits", "gcounter", lambda c: c.increment("A", 3))
    a.merge(rm)
    b.merge(up)
    assert a == b and a.value == {"hits": 5}


def test_remove_then_update_starts_from_bottom() -> None:
    m = ORMap()
    m.update("A", "s", "orset", lambda s: s.add("A", "x"))
    m.remove("s")
    assert m.value == {} and "s" not in m
    m.update("A", "s", "orset", lambda s: s.add("A", "y"))
    assert m.value == {"s": frozenset({"y"})}


def test_using_a_key_as_another_kind_is_a_type_error_and_changes_nothing() -> None:
    m = ORMap()
    m.update("A", "k", "gcounter", lambda c: c.increment("A"))
    before = enc(m)
    with pytest.raises(TypeError, match="gcounter"):
        m.update("A", "k", "orset", lambda s: s.add("A", "x"))
    assert enc(m) == before


def test_an_unknown_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="zset"):
        ORMap().update("A", "k", "zset", lambda x: x)


def test_a_failing_fn_changes_nothing() -> None:
    m = ORMap()
    m.update("A", "s", "orset", lambda s: s.add("A", "x"))
    before = enc(m)

    def boom(s: Any) -> None:
        s.add("A", "y")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        m.update("A", "s", "orset", boom)
    with pytest.raises(TypeError):
        m.update("A", "s", "orset", lambda s: s.add("A", object()))
    assert enc(m) == before


def test_bad_keys_are_refused() -> None:
    m = ORMap()
    with pytest.raises(TypeError, match="dict"):
        m.update("A", {"a": 1}, "gcounter", lambda c: c.increment("A"))
    with pytest.raises(TypeError, match="bytes"):
        m.remove(b"k")
    assert m.is_bottom()


def test_keys_are_json_values_and_arrays_come_back_as_tuples() -> None:
    m = ORMap()
    m.update("A", ["x", 1], "gcounter", lambda c: c.increment("A"))
    m.update("A", 1, "gcounter", lambda c: c.increment("A"))
    m.update("A", "1", "gcounter", lambda c: c.increment("A"))
    assert m.value == {("x", 1): 1, 1: 1, "1": 1}
    assert ORMap.from_dict(m.to_dict()) == m


def test_get_returns_a_detached_view() -> None:
    m = ORMap()
    m.update("A", "s", "orset", lambda s: s.add("A", "x"))
    view = m.get("s")
    assert view.value == frozenset({"x"})
    view.add("A", "y")
    assert m.value == {"s": frozenset({"x"})}
    assert m.get("missing") is None


def test_lww_inside_a_map_orders_by_timestamp_and_checks_skew() -> None:
    a, b = ORMap(), ORMap()
    da = a.update("A", "t", "lww", lambda r: r.set("A", "old", now_ms=100))
    db = b.update("B", "t", "lww", lambda r: r.set("B", "new", now_ms=200))
    a.merge(db)
    b.merge(da)
    assert a.value == b.value == {"t": "new"}
    before = enc(a)
    with pytest.raises(ClockSkewError):
        a.update("A", "t", "lww", lambda r: r.set("A", "x", Timestamp(10**9, 0, "A"), 0))
    assert enc(a) == before
    d = a.update("A", "t", "lww", lambda r: r.set("A", "stale", Timestamp(1, 0, "A")))
    assert a.value == {"t": "new"} and d.is_bottom()


def test_nested_map_remove_is_observed() -> None:
    a, b = ORMap(), ORMap()

    def add_x(n: Any) -> None:
        n.update("A", "inner", "orset", lambda s: s.add("A", "x"))

    b.merge(a.update("A", "outer", "ormap", add_x))
    rm = b.update("B", "outer", "ormap", lambda n: n.remove("inner"))
    up = a.update(
        "A", "outer", "ormap", lambda n: n.update("A", "inner", "orset", lambda s: s.add("A", "y"))
    )
    a.merge(rm)
    b.merge(up)
    assert a == b and a.value == {"outer": {"inner": frozenset({"y"})}}


def test_concurrent_updates_of_one_key_with_two_kinds_join_deterministically() -> None:
    a, b = ORMap(), ORMap()
    da = a.update("A", "k", "gcounter", lambda c: c.increment("A"))
    db = b.update("B", "k", "orset", lambda s: s.add("B", "x"))
    a.merge(db)
    b.merge(da)
    assert a == b and a.value == {"k": frozenset({"x"})}  # "orset" > "gcounter"
    assert a.kind_of("k") == "orset"


def _clashed() -> tuple[ORMap, ORMap, ORMap, ORMap]:
    """Two replicas that wrote "k" concurrently, A as a gcounter and B as an orset, synced;
    and the two deltas."""
    a, b = ORMap(), ORMap()
    a.update("A", "other", "lww", lambda r: r.set("A", 1, now_ms=5))
    da = a.update("A", "k", "gcounter", lambda c: c.increment("A", 2))
    db = b.update("B", "k", "orset", lambda s: s.add("B", "x"))
    a.merge(db)
    b.merge(da)
    b.merge(a.copy())
    return a, b, da, db


def test_a_key_written_as_two_kinds_is_a_clash_each_kind_readable() -> None:
    a, b, da, db = _clashed()
    assert a.clashes() == b.clashes() == {"k": ("gcounter", "orset")}
    assert a.kinds_of("k") == ("gcounter", "orset") and a.kinds_of("other") == ("lww",)
    assert a.clashes_from(db) == {("k",): ("gcounter", "orset")}  # the delta just joined
    assert b.clashes_from(da) == {("k",): ("gcounter", "orset")}
    assert a.clash_paths() == {("k",): ("gcounter", "orset")} and a.has_clash()
    assert a.kinds_at(["k"]) == ("gcounter", "orset") and a.kinds_at(["nope", "k"]) == ()
    with pytest.raises(TypeError, match="not a str"):
        a.kinds_at("k")  # a str is a sequence too: not taken for a path of one-letter keys
    assert ORMap().clashes_from(db) == {} and a.clashes_from(ORMap()) == {}
    # value shows the kind last in alphabetical order; get(key, kind) reads either.
    assert a.value["k"] == frozenset({"x"})
    assert a.get("k", "gcounter").value == 2 and a.get("k", "orset").value == frozenset({"x"})
    assert a.get("k", "lww") is None and a.get("missing", "orset") is None
    with pytest.raises(ValueError, match="zset"):
        a.get("k", "zset")


def test_a_clashed_key_refuses_updates_of_either_kind_and_changes_nothing() -> None:
    a, _, _, _ = _clashed()
    before = enc(a)
    for kind, fn in (
        ("gcounter", lambda c: c.increment("A")),
        ("orset", lambda s: s.add("A", "y")),
        ("lww", lambda r: r.set("A", 1)),
    ):
        with pytest.raises(TypeError) as info:
            a.update("A", "k", kind, fn)
        message = str(info.value)
        assert "a gcounter and an orset" in message and "remove('k', kind=...)" in message
    assert enc(a) == before


def test_a_clash_inside_a_nested_map_has_its_path_and_ends_by_a_nested_remove() -> None:
    a, b = ORMap(), ORMap()
    da = a.update(
        "A", "outer", "ormap", lambda n: n.update("A", "x", "lww", lambda r: r.set("A", 1))
    )
    db = b.update(
        "B", "outer", "ormap", lambda n: n.update("B", "x", "gcounter", lambda c: c.increment("B"))
    )
    assert not a.has_clash() and a.clash_paths() == {}
    a.merge(db)
    b.merge(da)
    assert a == b and a.has_clash() and a.clashes() == {}  # not a key of this map
    assert a.clash_paths() == {("outer", "x"): ("gcounter", "lww")}
    assert a.clashes_from(db) == b.clashes_from(da) == {("outer", "x"): ("gcounter", "lww")}
    assert a.kinds_at(["outer", "x"]) == ("gcounter", "lww") and a.kinds_at(["outer"]) == ("ormap",)
    with pytest.raises(TypeError, match="holds a gcounter and a lww"):
        a.update(
            "A", "outer", "ormap", lambda n: n.update("A", "x", "lww", lambda r: r.set("A", 2))
        )
    b.merge(a.update("A", "outer", "ormap", lambda n: n.remove("x", kind="gcounter")))
    assert a == b and not a.has_clash() and a.value == {"outer": {"x": 1}}


def test_removing_one_kind_ends_the_clash_everywhere_and_keeps_the_other() -> None:
    a, b, _, _ = _clashed()
    with pytest.raises(ValueError, match="zset"):
        a.remove("k", kind="zset")
    rm = a.remove("k", kind="orset")
    b.merge(rm)
    assert a == b and a.clashes() == {} and a.value == {"k": 2, "other": 1}
    b.update("B", "k", "gcounter", lambda c: c.increment("B", 5))  # writable again
    assert b.value["k"] == 7
    # A remove without a kind still removes every kind of the key.
    a2, _, _, _ = _clashed()
    a2.remove("k")
    assert "k" not in a2 and a2.clashes() == {}


@pytest.mark.parametrize("seed", range(4))
def test_indexed_and_full_merge_paths_agree(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    rng = random.Random(seed)
    reps = {r: ORMap() for r in "ABC"}
    states: list[ORMap] = []
    for _ in range(40):
        r = rng.choice("ABC")
        key = rng.choice(["c", "s", "n"])
        m = reps[r]
        if rng.random() < 0.25:
            states.append(m.remove(key))
        elif key == "c":
            states.append(m.update(r, key, "pncounter", lambda c, r=r: c.increment(r)))
        elif key == "s":
            e = rng.choice("xyz")
            states.append(m.update(r, key, "orset", lambda s, r=r, e=e: s.add(r, e)))
        else:
            states.append(
                m.update(
                    r,
                    key,
                    "ormap",
                    lambda n, r=r: n.update(r, "v", "mvregister", lambda v: v.set(r, 1)),
                )
            )
        if rng.random() < 0.2:
            x, y = rng.sample("ABC", 2)
            reps[x].merge(reps[y])
    states += list(reps.values())
    results = []
    for small_min, ratio in ((10**9, 1.0), (-1, -1.0)):
        monkeypatch.setattr(causal_context_module, "_SMALL_CONTEXT_MIN", small_min)
        monkeypatch.setattr(causal_context_module, "_SMALL_CONTEXT_RATIO", ratio)
        acc = ORMap()
        for s in states:
            acc.merge(s)
        results.append(enc(acc))
    assert results[0] == results[1]


@pytest.mark.parametrize(
    ("entries", "path"),
    [
        ([["k", "zset", [[["A", 1], 1]]]], "entries[0][1]"),
        ([["k", "gcounter", []]], "entries[0][2]"),
        ([["k", "gcounter", [[["A", 1], -1]]]], "entries[0][2][0][1]"),
        ([["k", "pncounter", [[["A", 1], 1]]]], "entries[0][2][0]"),
        ([["k", "gcounter", [[["B", 1], 1]]]], "entries[0][2][0][0]"),
        ([["k", "lww", [[["A", 1], [1, 0], "v"]]]], "entries[0][2][0][1]"),
        (
            [["k", "orset", [["x", [["A", 1]]]]], ["j", "orset", [["x", [["A", 1]]]]]],
            "entries[1][2][0][1][0]",
        ),
        ([["k", "ormap", [["i", "mvregister", [[["A", 1], {1}]]]]]], "entries[0][2][0][2][0][1]"),
        ([[{"o": 1}, "gcounter", [[["A", 1], 1]]]], "entries[0][0]"),
    ],
)
def test_decode_refuses_malformed_entries_naming_the_path(entries: object, path: str) -> None:
    d = {"type": "ormap", "v": 1, "entries": entries, "ctx": {"vv": {"A": 1}, "cloud": []}}
    with pytest.raises(DecodeError) as e:
        ORMap.from_dict(d)
    assert e.value.path == path


def _index_of(m: ORMap) -> dict[Any, Any]:
    index: dict[Any, Any] = {}
    for ek, s in m._entries.items():
        for r, c in embedded_kind(ek[1]).dots(s):
            index.setdefault(r, {})[c] = ek
    return index


def _write(m: ORMap, replica: str, key: str, value: Any, now_ms: int) -> ORMap:
    return m.update(replica, key, "lww", lambda v: v.set(replica, value, now_ms=now_ms))


@pytest.mark.parametrize("seed", range(6))
def test_a_delta_group_merges_as_its_deltas_one_by_one(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replication engine joins a batch of one-key deltas into one map (a "delta group":
    one-entry stores, a context of a cloud of dots) and merges it into a big state, through
    the indexed join. It must give the state the deltas give merged one by one, and the full
    join's: new keys, keys whose dots the state has seen, keys the group's removes cover,
    concurrent entries, counters, sets."""
    import random

    rng = random.Random(seed)
    reps = {r: ORMap() for r in "ABX"}
    big = ORMap()
    for i in range(200):  # the state, and what X has seen of it
        r = rng.choice("AB")
        d = reps[r].update(r, f"k{i}", "lww", lambda x, r=r, i=i: x.set(r, i, now_ms=i))
        big.merge(d)
        if rng.random() < 0.5:
            reps["X"].merge(d)
    seen_before: list[ORMap] = []
    deltas: list[ORMap] = []
    for j in range(rng.randint(10, 45)):
        x = reps["X"]
        now = 1000 + j  # ms: after every write above
        roll = rng.random()
        if roll < 0.6:
            d = _write(x, "X", f"new{j}", f"n{j}", now)
        elif roll < 0.7:
            d = x.update("X", f"c{j % 3}", "gcounter", lambda c: c.increment("X"))
        elif roll < 0.8:
            d = x.update("X", "set", "orset", lambda s, j=j: s.add("X", j % 4))
        elif roll < 0.9:  # X overwrites (or removes) a key it has seen
            key = rng.choice([k for k, _ in x._entries if str(k).startswith("k")] or ["k0"])
            d = x.remove(key) if rng.random() < 0.5 else _write(x, "X", key, "over", now)
        else:  # a concurrent write on the state's side of a key X writes too
            d = _write(x, "X", f"k{j}", "x", now)
            big.merge(_write(reps["A"], "A", f"k{j}", "a", now))
        deltas.append(d)
        if rng.random() < 0.15:
            seen_before.append(d)  # the state has this one already
    for d in seen_before:
        big.merge(d)
    group = ORMap()
    for d in deltas:
        group.merge(d)
    one_by_one = big.copy()
    for d in deltas:
        one_by_one.merge(d)
    indexed = big.copy()
    size = group.context.size()
    assert size <= len(big._entries) * causal_context_module._SMALL_CONTEXT_RATIO  # _merge_small
    indexed.merge(group)
    assert indexed == one_by_one
    assert indexed._index == _index_of(indexed)
    monkeypatch.setattr(causal_context_module, "_SMALL_CONTEXT_MIN", -1)
    monkeypatch.setattr(causal_context_module, "_SMALL_CONTEXT_RATIO", -1.0)
    full = big.copy()
    full.merge(group)
    assert full == one_by_one
    assert enc(full) == enc(indexed)


@pytest.mark.parametrize(("bad", "why"), [("k\udfff", "surrogate"), (10**4000, "4000 digits")])
def test_decode_refuses_a_key_without_json_text(bad: object, why: str) -> None:
    """A key with no JSON text is refused by the decoder as by ``update`` (one check for map
    keys and set elements): a delta from a peer cannot put one in a state."""
    ctx = {"vv": {"A": 1}, "cloud": []}
    for entries in ([[bad, "gcounter", [[["A", 1], 1]]]], [["k", "orset", [[bad, [["A", 1]]]]]]):
        d = {"type": "ormap", "v": 1, "entries": entries, "ctx": ctx}
        with pytest.raises(DecodeError, match=why) as e:
            ORMap.from_dict(d)
        assert e.value.path in ("entries[0][0]", "entries[0][2][0][0]")
    with pytest.raises(TypeError, match=why):
        ORMap().update("A", bad, "gcounter", lambda c: c.increment("A"))
