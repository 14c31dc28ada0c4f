"""The canonical codec of every CRDT kind: round trips, canonical bytes, and refusals.

Contract (docs/architecture.md section 1): ``to_dict()`` is JSON-compatible, tagged
``{"type": kind, "v": 1, ...}``, and canonical — equal states give byte-equal
``json.dumps(d, sort_keys=True)`` whatever order they were built in; ``from_dict`` (the
type's, and ``crdt.from_dict`` dispatching on ``type``) gives back an equal state, and refuses
an unknown type or version or a malformed body with ``DecodeError`` whose ``path`` names the
bad field. A fuzz test corrupts valid encodings at random places: the decoder must either
refuse with ``DecodeError`` or return a state that is itself valid — never leak another
exception.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crdt
from crdt import DecodeError
from tests.crdt.conftest import (
    KINDS,
    canonical_bytes,
    crdt_settings,
    history_steps,
    new,
    run_history,
)

__all__: list[str] = []

CLASSES = {
    "gcounter": crdt.GCounter,
    "pncounter": crdt.PNCounter,
    "lww": crdt.LWWRegister,
    "mvregister": crdt.MVRegister,
    "orset": crdt.ORSet,
    "ormap": crdt.ORMap,
}


def test_every_kind_is_registered_and_new_makes_a_bottom_of_that_class() -> None:
    assert set(crdt.KINDS) == set(KINDS)
    for kind, cls in CLASSES.items():
        x = crdt.new(kind)
        assert type(x) is cls
        assert x.kind == kind
        assert x.is_bottom()
        assert x.to_dict()["type"] == kind
        assert x.to_dict()["v"] == 1


def test_new_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="zset"):
        crdt.new("zset")


# --------------------------------------------------------------------------- round trips


def all_states(kind: str, steps: list[list[Any]]) -> list[Any]:
    h = run_history(kind, steps)
    return [*h.snapshots, *(d for _, d in h.deltas)]


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_round_trip_through_json_text_gives_an_equal_state_and_identical_bytes(
    kind: str, data: st.DataObject
) -> None:
    for x in all_states(kind, data.draw(history_steps(kind), label="steps")):
        d = x.to_dict()
        assert d["type"] == kind and d["v"] == 1
        text = json.dumps(d, sort_keys=True, allow_nan=False)  # JSON-compatible, no NaN
        for decoded in (CLASSES[kind].from_dict(json.loads(text)), crdt.from_dict(d)):
            assert type(decoded) is type(x)
            assert decoded == x
            assert decoded.value == x.value
            assert canonical_bytes(decoded) == canonical_bytes(x)
            assert decoded.is_bottom() == x.is_bottom()


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_equal_states_built_in_different_orders_encode_to_identical_bytes(
    kind: str, data: st.DataObject
) -> None:
    h = run_history(kind, data.draw(history_steps(kind), label="steps"))
    parts = [s for s in h.states.values()] + [d for _, d in h.deltas]
    orders = [
        data.draw(st.permutations(range(len(parts))), label="first order"),
        data.draw(st.permutations(range(len(parts))), label="second order"),
    ]
    built = []
    for order in orders:
        x = new(kind)
        for i in order:
            x.merge(parts[i].copy())
        built.append(x)
    assert built[0] == built[1]
    assert canonical_bytes(built[0]) == canonical_bytes(built[1])


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_to_dict_and_from_dict_share_no_mutable_data_with_the_state(
    kind: str, data: st.DataObject
) -> None:
    """The store and the wire may hold or edit an encoded dict; the state must not follow."""
    h = run_history(kind, data.draw(history_steps(kind), label="steps"))
    for x in h.states.values():
        before = canonical_bytes(x)
        d = x.to_dict()
        _scramble(d)
        assert canonical_bytes(x) == before, "editing to_dict() output changed the state"

        d = x.to_dict()
        y = CLASSES[kind].from_dict(d)
        _scramble(d)
        assert canonical_bytes(y) == before, "editing from_dict() input changed the state"


def _scramble(x: Any) -> None:
    """Mutate every list and dict inside ``x`` in place."""
    if isinstance(x, list):
        for i in x:
            _scramble(i)
        x.append("scrambled")
    elif isinstance(x, dict):
        for v in list(x.values()):
            _scramble(v)
        x["scrambled"] = True


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_type_is_refused_naming_the_type(kind: str) -> None:
    d = new(kind).to_dict()
    d["type"] = "zset"
    with pytest.raises(DecodeError, match="zset") as e:
        crdt.from_dict(d)
    assert e.value.path == "type"
    with pytest.raises(DecodeError) as e:
        CLASSES[kind].from_dict(d)
    assert e.value.path == "type"


@pytest.mark.parametrize("kind", KINDS)
def test_a_dict_of_another_kind_is_refused_by_the_type_decoder(kind: str) -> None:
    other = "orset" if kind != "orset" else "gcounter"
    with pytest.raises(DecodeError) as e:
        CLASSES[kind].from_dict(new(other).to_dict())
    assert e.value.path == "type"
    assert other in str(e.value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("version", [2, 0, "1", 1.0, True, None])
def test_unknown_format_version_is_refused_naming_v(kind: str, version: Any) -> None:
    d = new(kind).to_dict()
    d["v"] = version
    for decode in (crdt.from_dict, CLASSES[kind].from_dict):
        with pytest.raises(DecodeError) as e:
            decode(d)
        assert e.value.path == "v"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("field", ["type", "v"])
def test_missing_header_field_is_refused(kind: str, field: str) -> None:
    d = new(kind).to_dict()
    del d[field]
    with pytest.raises(DecodeError) as e:
        crdt.from_dict(d)
    assert e.value.path == field


@pytest.mark.parametrize("bad", [None, [], "orset", 3, ["type", "orset"]])
def test_non_object_input_is_refused(bad: Any) -> None:
    with pytest.raises(DecodeError):
        crdt.from_dict(bad)


def sample(kind: str) -> Any:
    """A small non-trivial state of each kind (every body field populated)."""
    x = new(kind)
    if kind == "gcounter":
        x.increment("A", 2)
    elif kind == "pncounter":
        x.increment("A", 2)
        x.decrement("B", 1)
    elif kind == "lww":
        x.set("A", ["milk"], now_ms=1_000)
    elif kind == "mvregister":
        x.set("A", ["milk"])
    elif kind == "orset":
        x.add("A", "milk")
        x.add("B", "eggs")
    elif kind == "ormap":
        x.update("A", "cart", "orset", lambda s: s.add("A", "milk"))
        x.update("A", "n", "pncounter", lambda c: c.decrement("A", 1))
    return x


@pytest.mark.parametrize("kind", KINDS)
def test_every_missing_body_field_is_refused_naming_it(kind: str) -> None:
    d = sample(kind).to_dict()
    for field in [k for k in d if k not in ("type", "v")]:
        broken = copy.deepcopy(d)
        del broken[field]
        with pytest.raises(DecodeError) as e:
            crdt.from_dict(broken)
        assert e.value.path.startswith(field), (field, e.value.path)


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_body_field_is_refused_naming_it(kind: str) -> None:
    d = sample(kind).to_dict()
    d["colour"] = "blue"
    with pytest.raises(DecodeError, match="colour") as e:
        crdt.from_dict(d)
    assert e.value.path == "colour"


# (kind, where to break, the bad value, the path the error must start with)
MALFORMED: list[tuple[str, tuple[Any, ...], Any, str]] = [
    ("gcounter", ("counts",), [], "counts"),
    ("gcounter", ("counts",), {"A": -1}, "counts"),
    ("gcounter", ("counts",), {"A": "2"}, "counts"),
    ("gcounter", ("counts",), {"A": 2.0}, "counts"),
    ("gcounter", ("counts",), {"A": True}, "counts"),
    ("gcounter", ("counts",), {"": 2}, "counts"),
    ("gcounter", ("counts",), {1: 2}, "counts"),
    ("pncounter", ("n",), None, "n"),
    ("pncounter", ("p",), {"A": "x"}, "p"),
    ("lww", ("ts",), "yesterday", "ts"),
    ("lww", ("ts",), [1000, 0], "ts"),
    ("lww", ("ts",), [1000, -1, "A"], "ts"),
    ("lww", ("ts",), [1000, 0, ""], "ts"),
    ("lww", ("ts",), [1000.5, 0, "A"], "ts"),
    ("lww", ("ts",), None, "ts"),  # a null timestamp with a non-null value
    ("mvregister", ("entries",), {}, "entries"),
    ("mvregister", ("entries", 0), [["A", 1]], "entries[0]"),
    ("mvregister", ("entries", 0, 0), ["A", 0], "entries[0][0]"),
    ("mvregister", ("entries", 0, 0), ["A", 9], "entries[0][0]"),  # dot not in ctx
    ("mvregister", ("ctx",), [], "ctx"),
    ("mvregister", ("ctx", "vv"), {"A": 0}, "ctx.vv"),
    ("mvregister", ("ctx", "vv"), {"A": 1, 1: 1}, "ctx.vv"),
    ("mvregister", ("ctx", "cloud"), [["A"]], "ctx.cloud"),
    ("orset", ("entries",), "milk", "entries"),
    ("orset", ("entries", 0), ["eggs"], "entries[0]"),
    ("orset", ("entries", 0, 0), {"an": "object"}, "entries[0][0]"),
    ("orset", ("entries", 0, 1), [], "entries[0][1]"),
    ("orset", ("entries", 0, 1, 0), ["B", "1"], "entries[0][1][0]"),
    ("orset", ("entries", 1), ["eggs", [["A", 1]]], "entries[1]"),  # duplicate element
    ("orset", ("ctx",), None, "ctx"),
    ("ormap", ("entries", 0), ["cart", "orset"], "entries[0]"),
    ("ormap", ("entries", 0, 1), "zset", "entries[0][1]"),
    ("ormap", ("entries", 0, 2), [], "entries[0][2]"),
    ("ormap", ("entries", 0, 2, 0, 1, 0), ["A", -3], "entries[0][2][0][1][0]"),
    ("ormap", ("entries", 1, 2, 0), [["A", 2], 1], "entries[1][2][0]"),  # pncounter: 3 wide
    ("ormap", ("entries", 1, 2, 0, 2), -1, "entries[1][2][0][2]"),
]


def _put(d: Any, where: tuple[Any, ...], bad: Any) -> None:
    for step in where[:-1]:
        d = d[step]
    d[where[-1]] = bad


@pytest.mark.parametrize(
    ("kind", "where", "bad", "path"),
    MALFORMED,
    ids=[f"{k}-{'.'.join(map(str, w))}-{b!r}" for k, w, b, _ in MALFORMED],
)
def test_malformed_body_is_refused_with_the_path_of_the_bad_field(
    kind: str, where: tuple[Any, ...], bad: Any, path: str
) -> None:
    d = sample(kind).to_dict()
    _put(d, where, bad)
    kept = copy.deepcopy(d)
    with pytest.raises(DecodeError) as e:
        crdt.from_dict(d)
    assert e.value.path.startswith(path), e.value.path
    assert e.value.reason
    assert d == kept, "from_dict changed its input"


_junk = st.sampled_from(
    [None, True, 0, -1, 1, 2**70, 1.5, "", "A", [], {}, ["A"], ["A", 0], ["A", 1], [[]], {"A": 1}]
)


@st.composite
def corrupted(draw: Any, d: Any) -> Any:
    """``d`` with one node replaced, deleted or given an extra item, somewhere inside."""
    d = copy.deepcopy(d)
    node = d
    while True:
        children = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        if not children:
            break
        at = draw(st.sampled_from(children))
        child = node[at]
        if isinstance(child, dict | list) and child and draw(st.booleans()):
            node = child
            continue
        action = draw(st.sampled_from(["replace", "delete", "extend"]))
        if action == "replace" or (action == "delete" and isinstance(node, list)):
            node[at] = draw(_junk)
        elif action == "delete":
            del node[at]
        elif isinstance(child, list):
            child.append(draw(_junk))
        else:
            node[at] = draw(_junk)
        break
    return d


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_corrupted_encodings_are_refused_cleanly_or_decode_to_a_valid_state(
    kind: str, data: st.DataObject
) -> None:
    h = run_history(kind, data.draw(history_steps(kind), label="steps"))
    good = h.states[data.draw(st.sampled_from(sorted(h.states)), label="replica")]
    bad = data.draw(corrupted(good.to_dict()), label="corrupted")
    try:
        x = crdt.from_dict(bad)
    except DecodeError as e:
        assert e.path and e.reason
        return
    # Accepted: then it must be a state like any other. (Merging it with ``good`` must not
    # raise, but need not commute: a corrupted dot may name another event than in ``good``.)
    assert crdt.from_dict(x.to_dict()) == x
    y = new(kind)
    y.merge(x)
    assert y == x
    x.copy().merge(good)
    good.copy().merge(x)
