"""``to_json()``: the compact ``json.dumps`` text of ``x.to_dict()``, built without the dict.

Contract (``crdt/base.py``): for every kind and every state, ``x.to_json()`` is exactly
``json.dumps(x.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)`` — same
key order, same canonical entry order, same escaping of strings and of non-ASCII text, same
float formatting — and raises what that raises. The properties here run it over the law
tests' histories, over histories with much wider values (any unicode, control characters,
big ints, floats, arrays and objects as register values, keys of every JSON kind, maps nested
three deep), and over the golden vectors' states.

ORSet and ORMap write the text from string fragments, so that encoding a big state makes no
object the cyclic collector tracks per element (the ``to_dict()`` tree makes several lists
per entry, which drive young collections, promote thousands of lists and trigger full
collections). The last tests pin that with the collector disabled, sampling the collector's
generation-0 count (tracked allocations minus deallocations) at every call and return inside
the encoder: with ``to_json()`` it stays near zero; with ``json.dumps(to_dict())`` it grows by
several per element — the measure is checked to see that too.
"""

from __future__ import annotations

import gc
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crdt
from crdt import GCounter, LWWRegister, MVRegister, ORMap, ORSet
from crdt._json import json_text
from crdt.errors import DecodeError
from tests.crdt.conftest import KINDS, REPLICAS, crdt_settings, history_steps, run_history

__all__: list[str] = []


def reference_text(x: Any) -> str:
    """The contract's text: the compact ``json.dumps`` of ``to_dict()``."""
    return json.dumps(x.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def assert_same_text(x: Any) -> None:
    assert x.to_json() == reference_text(x)


def every_state(kind: str, steps: list[list[Any]]) -> list[Any]:
    """Every state a history went through, and every delta it made."""
    h = run_history(kind, steps)
    return [*h.snapshots, *h.states.values(), *(d for _, d in h.deltas)]


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_to_json_is_the_json_text_of_to_dict_over_the_law_histories(
    kind: str, data: st.DataObject
) -> None:
    for x in every_state(kind, data.draw(history_steps(kind), label="steps")):
        assert_same_text(x)


# Wider values than the law tests': any text (but lone surrogates: see the example below),
# so control characters, quotes, backslashes and non-ASCII; ints past 64 bits; any finite
# float; arrays and objects of these.
_text = st.text(max_size=6)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
wide_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
# Hashable JSON values: scalars and arrays of them.
wide_elements: st.SearchStrategy[Any] = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=4
)
_EMBEDDED = ("gcounter", "pncounter", "lww", "mvregister", "orset", "ormap")
MAX_DEPTH = 3  # maps nested in maps nested in maps


@st.composite
def _map_key(draw: Any, kind: str) -> Any:
    """A key bound to ``kind`` (a key holds one kind): mostly one of two hot keys, so that
    replicas write the same entry concurrently, else of every kind of JSON text: strings
    plain ASCII or not, ints (some past 64 bits), arrays."""
    i = _EMBEDDED.index(kind)
    pick = draw(st.integers(0, 9))
    if pick < 6:
        return f"k {kind}" if pick % 2 else f"é{kind}"
    if pick == 6:
        return f"{kind}:{draw(_text)}"
    if pick == 7:
        return draw(st.integers(-3, 3) | st.just(2**70)) * len(_EMBEDDED) + i
    return [kind, draw(wide_elements)]


@st.composite
def wide_op(draw: Any, kind: str, pool: list[Any], depth: int = 0) -> list[Any]:
    """One operation (without the replica) on a ``kind`` state; elements from ``pool``."""
    if kind in ("gcounter", "pncounter"):
        names = ["increment"] if kind == "gcounter" else ["increment", "decrement"]
        n = draw(st.integers(1, 3) | st.integers(2**50, 2**56))  # big, but 2**63 stays far
        return [draw(st.sampled_from(names)), n]
    if kind == "lww":
        return ["set", draw(wide_values), draw(st.integers(1_000, 1_003))]
    if kind == "mvregister":
        return ["set", draw(wide_values)]
    if kind == "orset":
        return [draw(st.sampled_from(["add", "add", "remove"])), draw(st.sampled_from(pool))]
    kinds = [k for k in _EMBEDDED if k != "ormap" or depth + 1 < MAX_DEPTH]
    inner = draw(st.sampled_from(kinds))
    key = draw(_map_key(inner))
    if draw(st.integers(0, 5)) == 0:
        return ["remove", key]
    return ["update", key, inner, draw(wide_op(inner, pool, depth + 1))]


@st.composite
def wide_steps(draw: Any, kind: str) -> list[list[Any]]:
    """Mutations on replicas A, B, C with full-state merges mixed in (so that elements get
    several dots and registers concurrent entries)."""
    pool = draw(st.lists(wide_elements, min_size=1, max_size=4))
    steps: list[list[Any]] = []
    for _ in range(draw(st.integers(4, 16))):
        roll = draw(st.integers(0, 4))
        if roll == 0:
            steps.append(
                ["merge", draw(st.sampled_from(REPLICAS)), draw(st.sampled_from(REPLICAS))]
            )
        elif roll == 1:  # one operation made concurrently on A and B, then joined
            op = draw(wide_op(kind, pool))
            steps += [["A", *op], ["B", *op], ["merge", "A", "B"]]
        else:
            steps.append([draw(st.sampled_from(REPLICAS)), *draw(wide_op(kind, pool))])
    return steps


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_to_json_is_the_json_text_of_to_dict_for_wide_values(
    kind: str, data: st.DataObject
) -> None:
    for x in every_state(kind, data.draw(wide_steps(kind), label="steps")):
        assert_same_text(x)


def _golden_cases() -> list[Any]:
    out = []
    for kind in KINDS:
        path = Path(__file__).parent / "golden" / f"{kind}.jsonl"
        for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if raw.strip():
                case = json.loads(raw)
                out.append(pytest.param(kind, case, id=f"{kind}:{n}:{case['name']}"))
    return out


@pytest.mark.parametrize(("kind", "case"), _golden_cases())
def test_to_json_of_the_golden_vectors_states(kind: str, case: dict[str, Any]) -> None:
    for x in every_state(kind, case["ops"]):
        assert_same_text(x)
    decoded = crdt.from_dict(case["encoded"])
    assert_same_text(decoded)
    assert json.loads(decoded.to_json()) == case["encoded"]


# --------------------------------------------------------------------------- examples


def test_one_key_holding_two_kinds_sorts_by_kind() -> None:
    """Concurrent updates of one key with two kinds: entries ordered by (key text, kind)."""
    a, b = ORMap(), ORMap()
    a.update("A", "k", "orset", lambda s: s.add("A", "x"))
    b.update("B", "k", "lww", lambda r: r.set("B", "y", now_ms=1))
    b.update("B", "j", "gcounter", lambda c: c.increment("B"))
    a.merge(b)
    assert [e[1] for e in a.to_dict()["entries"]] == ["gcounter", "lww", "orset"]
    assert_same_text(a)


@pytest.mark.parametrize(
    "elements",
    [
        ["b", "a", "a b", "a!", "a"],  # plain strings holding a space: sorted as s + '"'
        ["b", "a", "ab"],  # plain strings
        [1, "1", 1.0, True, None, [1, "a"], -5, "é", 'a"', "a\n", 2**70, 0.1, -0.0],
    ],
    ids=["quoted", "plain", "mixed"],
)
def test_every_order_of_keys_and_elements(elements: list[Any]) -> None:
    s, m = ORSet(), ORMap()
    for i, e in enumerate(elements):
        s.add("A", e)
        m.update("B", e, "lww", lambda r, i=i: r.set("B", i, now_ms=1))
        m.update("B", [e], "orset", lambda t, e=e: t.add("B", e))
    s.merge(ORSet.from_dict(ORSet().add("B", elements[0]).to_dict()))  # two dots
    for x in (s, m):
        assert_same_text(x)


@pytest.mark.parametrize(
    ("bad", "why"),
    [(10**5000, "digits"), ("\ud800", "surrogate"), (["ok", "\udfff"], "surrogate")],
    ids=["huge-int", "lone-surrogate", "surrogate-in-array"],
)
def test_no_state_holds_a_value_without_json_text(bad: object, why: str) -> None:
    """An int too long for ``int.__repr__`` and a lone surrogate (no UTF-8) have no JSON text
    to write or send; the mutators refuse them before changing anything, so to_json() never
    meets one."""
    s, m, lww, mv = ORSet(), ORMap(), LWWRegister(), MVRegister()
    s.add("A", "x")
    before = (s.to_json(), m.to_json(), lww.to_json(), mv.to_json())
    with pytest.raises(TypeError, match=why):
        s.add("A", bad)
    with pytest.raises(TypeError, match=why):
        m.update("A", "k", "lww", lambda r: r.set("A", bad, now_ms=1))
    with pytest.raises(TypeError, match=why):
        lww.set("A", [bad], now_ms=1)
    with pytest.raises(TypeError, match=why):
        mv.set("A", bad)
    assert (s.to_json(), m.to_json(), lww.to_json(), mv.to_json()) == before


def test_numbers_and_replica_ids_without_json_text_are_refused_before_any_change() -> None:
    """Counters, amounts and times are 64-bit (as in Riak and Cassandra): arithmetic on them
    cannot outgrow their text; a replica id or timestamp replica must have UTF-8 text."""
    g, m, lww = GCounter(), ORMap(), LWWRegister()
    g.increment("A", 2**63 - 2)
    m.update("A", "c", "gcounter", lambda c: c.increment("A", 2**63 - 2))
    before = (g.to_json(), m.to_json(), lww.to_json())
    for call, exc in [
        (lambda: g.increment("A", 2), ValueError),  # the total would pass 2**63-1
        (lambda: g.increment("A", 2**63), ValueError),
        (lambda: m.update("A", "c", "gcounter", lambda c: c.increment("A", 2)), ValueError),
        (lambda: g.increment("\ud800"), ValueError),
        (lambda: lww.set("A", 1, now_ms=2**63), TypeError),
        (lambda: lww.set("A", 1, timestamp=(1, 0, "\udfff")), TypeError),
        (lambda: lww.set("A", 1, timestamp=(2**63, 0, "A")), TypeError),
        (lambda: m.update("A", "t", "lww", lambda r: r.set("A", 1, now_ms=2**64)), TypeError),
    ]:
        with pytest.raises(exc):
            call()
    assert (g.to_json(), m.to_json(), lww.to_json()) == before


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_no_state_holds_a_non_finite_float(bad: float) -> None:
    """json.dumps refuses NaN and infinities (ValueError); the CRDTs refuse them earlier, at
    the mutator (TypeError) and at the decoder (DecodeError), so no state holds one."""
    with pytest.raises(TypeError, match="non-finite"):
        ORSet().add("A", bad)
    with pytest.raises(TypeError, match="non-finite"):
        ORSet().add("A", [1, bad])
    with pytest.raises(TypeError, match="non-finite"):
        ORMap().update("A", "k", "lww", lambda r: r.set("A", bad, now_ms=1))
    with pytest.raises(TypeError, match="non-finite"):
        ORMap().update("A", "k", "mvregister", lambda r: r.set("A", {"x": [bad]}))
    with pytest.raises(TypeError, match="non-finite"):
        LWWRegister().set("A", bad, now_ms=1)
    with pytest.raises(TypeError, match="non-finite"):
        MVRegister().set("A", [bad])
    with pytest.raises(ValueError):  # were a state to hold one, to_json would raise as json.dumps
        json_text(bad)
    # What a JSON decoder that accepts NaN (json.loads does) may hand to from_dict:
    m = ORMap()
    m.update("A", "k", "lww", lambda r: r.set("A", 0.5, now_ms=1))
    m.update("A", "s", "orset", lambda t: t.add("A", 0.5))
    encoded = json.loads(m.to_json().replace("0.5", json.dumps(bad)))
    with pytest.raises(DecodeError):
        ORMap.from_dict(encoded)
    s = ORSet()
    s.add("A", 0.5)
    with pytest.raises(DecodeError):
        ORSet.from_dict(json.loads(s.to_json().replace("0.5", json.dumps(bad))))


def test_replica_ids_needing_escapes() -> None:
    s = ORSet()
    for r in ["A", 'q"uote', "back\\slash", "é", "\x01"]:
        s.add(r, r)
    assert_same_text(s)
    assert_same_text(s.clear())


def test_every_kind_has_to_json() -> None:
    for kind in KINDS:
        x = crdt.new(kind)
        assert x.to_json() == reference_text(x)
        assert x.to_json().startswith(f'{{"type":"{kind}"')  # what the store checks


# --------------------------------------------------------------------------- GC footprint

N = 5000
# The encoder's own containers (the sorted keys, the fragments, a few temporaries) plus
# slack; the to_dict() tree makes several lists per element.
MAX_LIVE_TRACKED = 50


def _orset() -> ORSet:
    s = ORSet()
    for i in range(N):
        s.add(REPLICAS[i % 3], f"element {i}")
    return s


def _lww_map() -> ORMap:
    m = ORMap()
    for i in range(N):
        value = i if i % 2 else f"value {i}"
        r = REPLICAS[i % 3]
        m.update(r, f"key-{i}", "lww", lambda x, r=r, v=value, i=i: x.set(r, v, now_ms=i))
    return m


def _mixed_map() -> ORMap:
    """Every embedded kind, nested maps included, with keys of every JSON kind."""
    m = ORMap()
    for i in range(N // 5):
        m.update("A", i, "gcounter", lambda c: c.increment("A", 2))
        m.update("B", [i, "p"], "pncounter", lambda c: c.decrement("B", 1))
        m.update("C", f"mv {i}", "mvregister", lambda r, i=i: r.set("C", [i, {"é": i}]))
        m.update("A", f"s{i}", "orset", lambda s, i=i: s.add("A", i))
        m.update(
            "B",
            f"n{i}",
            "ormap",
            lambda n, i=i: n.update("B", "in", "lww", lambda r: r.set("B", i / 3, now_ms=1)),
        )
    return m


def peak_tracked(encode: Callable[[], str]) -> int:
    """The most objects tracked by the cyclic collector alive at once during ``encode()``,
    above the count at the start, with the collector disabled: generation 0's count
    (tracked allocations minus deallocations, never reset while disabled), sampled at every
    Python and C call and return."""
    peak = 0
    count = gc.get_count

    def sample(frame: FrameType, event: str, arg: object) -> None:
        nonlocal peak
        n = count()[0]
        if n > peak:
            peak = n

    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    old_profile = sys.getprofile()
    try:
        start = count()[0]
        sys.setprofile(sample)
        try:
            encode()
        finally:
            sys.setprofile(old_profile)
    finally:
        if was_enabled:
            gc.enable()
    return peak - start


STATES = [_orset, _lww_map, _mixed_map]
IDS = ["orset", "lww-ormap", "mixed-ormap"]


@pytest.mark.parametrize("build", STATES, ids=IDS)
def test_to_json_keeps_no_tracked_object_per_element_alive(build: Callable[[], Any]) -> None:
    x = build()
    assert x.to_json() == reference_text(x)
    peak = peak_tracked(x.to_json)
    assert peak <= MAX_LIVE_TRACKED, f"{peak} tracked objects alive at once for {N} elements"


@pytest.mark.parametrize("build", STATES, ids=IDS)
def test_the_measure_sees_the_to_dict_tree(build: Callable[[], Any]) -> None:
    """The same measure over the old path: its tree keeps several lists per element alive."""
    x = build()
    peak = peak_tracked(lambda: reference_text(x))
    assert peak >= N, f"only {peak} tracked objects alive at once: the measure sees nothing"


def test_to_json_makes_no_young_collection() -> None:
    """With the collector enabled (default thresholds), encoding a big state triggers no
    collection at all; the to_dict() path triggers many."""
    x = _lww_map()
    thresholds = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        gc.collect()
        before = gc.get_stats()[0]["collections"]
        x.to_json()
        new_path = gc.get_stats()[0]["collections"] - before
        gc.collect()
        before = gc.get_stats()[0]["collections"]
        reference_text(x)
        old_path = gc.get_stats()[0]["collections"] - before
    finally:
        gc.set_threshold(*thresholds)
    assert new_path == 0
    assert old_path >= 10


@pytest.mark.parametrize(
    "encoded",
    [
        {"type": "gcounter", "v": 1, "counts": {"A": 2**63}},
        {"type": "orset", "v": 1, "entries": [["x", [["A", 2**63]]]], "ctx": {"vv": {"A": 2**63}}},
        {"type": "orset", "v": 1, "entries": [], "ctx": {"vv": {}, "cloud": [["A", 2**64]]}},
        {"type": "lww", "v": 1, "ts": [2**63, 0, "A"], "value": 1},
    ],
    ids=["gcounter-count", "orset-dot", "context-cloud", "lww-wall"],
)
def test_a_decoded_number_past_64_bits_is_refused(encoded: dict[str, object]) -> None:
    """A peer cannot hand us a counter or time that our next increment or tick would push
    past what its JSON text can hold (jiter parses up to 4300 digits)."""
    with pytest.raises(DecodeError):
        crdt.from_dict(encoded)
