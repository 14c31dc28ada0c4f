"""``crdt.merge_dict``: joining a one-dot delta straight from its dict.

What it takes, ``from_dict`` accepts, and the join is the one ``merge(from_dict(d))`` makes;
what it does not take it leaves alone (False, the state unchanged), valid or not. The
receiving engine relies on both (``sync/replica/inbound.py``): every delta a peer's writes
bring it goes through here, and a dict taken here is not decoded again.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crdt
from crdt import ORMap, ORSet
from crdt.errors import DecodeError
from tests.crdt.conftest import crdt_settings, history_steps, run_history
from tests.crdt.test_codec import corrupted


def _reference(state: Any, d: Any) -> Any | None:
    """``state`` joined with ``from_dict(d)``, or None if ``from_dict`` refuses ``d``."""
    try:
        delta = crdt.from_dict(copy.deepcopy(d))
    except DecodeError:
        return None
    out = state.copy()
    out.merge(delta)
    return out


def _check(state: Any, d: Any, skip: str = "") -> bool:
    """merge_dict on a copy of ``state``: taken means accepted and joined alike; not taken
    means unchanged. Returns whether it was taken."""
    target = state.copy()
    kept = copy.deepcopy(d)
    taken = crdt.merge_dict(target, d, skip)
    assert d == kept, "merge_dict changed its input"
    if taken:
        expected = _reference(state, d)
        assert expected is not None, f"taken, but from_dict refuses it: {d!r}"
        assert target == expected
        assert target.to_json() == expected.to_json()
    else:
        assert target == state
    return taken


def test_an_add_of_a_new_element_is_taken_and_joined() -> None:
    a, group = ORSet(), ORSet()
    group.merge(a.add("A", "milk"))
    d = a.add("A", "eggs").to_dict()
    assert _check(group, d)
    assert crdt.merge_dict(group, d)
    assert group.value == {"milk", "eggs"}


def test_an_update_of_a_new_key_is_taken_and_joined() -> None:
    a, group = ORMap(), ORMap()
    group.merge(a.update("A", "x", "lww", lambda r: r.set("A", 1, now_ms=5)))
    d = a.update("A", "y", "lww", lambda r: r.set("A", 2, now_ms=6)).to_dict()
    assert _check(group, d)
    assert crdt.merge_dict(group, d)
    assert group.value == {"x": 1, "y": 2}


def test_a_dot_of_the_skipped_replica_is_not_taken() -> None:
    a, group = ORSet(), ORSet()
    group.merge(a.add("A", "milk"))
    d = a.add("A", "eggs").to_dict()
    assert not _check(group, d, skip="A")
    assert _check(group, d, skip="B")


def test_an_element_held_already_is_left_to_merge() -> None:
    a, b, group = ORSet(), ORSet(), ORSet()
    group.merge(a.add("A", "milk"))
    d = b.add("B", "milk").to_dict()  # concurrent add: the element gets a second dot
    assert not _check(group, d)


def test_a_dot_seen_already_is_taken_and_changes_nothing() -> None:
    a, group = ORSet(), ORSet()
    delta = a.add("A", "milk")
    group.merge(delta)
    group.merge(a.remove("milk"))
    assert _check(group, delta.to_dict())
    assert group.value == frozenset()


def _set(dot: list[Any], vv: dict[str, Any], cloud: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "orset",
        "v": 1,
        "entries": [["e", [dot]]],
        "ctx": {"vv": vv, "cloud": cloud},
        **extra,
    }


def _map(kind: str, stamp: list[Any]) -> dict[str, Any]:
    body = [[["A", 1], stamp, 0]]
    return {
        "type": "ormap",
        "v": 1,
        "entries": [["k", kind, body]],
        "ctx": {"vv": {"A": 1}, "cloud": []},
    }


@pytest.mark.parametrize(
    "d",
    [
        # the counter as a bool, a float, zero, past 2**63-1
        _set(["A", True], {"A": 1}, []),
        _set(["A", 2.0], {}, [["A", 2]]),
        _set(["A", 0], {}, [["A", 0]]),
        _set(["A", 2**63], {}, [["A", 2**63]]),
        # a dot its context does not hold
        _set(["A", 3], {}, [["A", 2]]),
        # the version as a bool, another version, an extra field, an empty replica
        _set(["A", 1], {"A": 1}, [], v=True),
        _set(["A", 1], {"A": 1}, [], v=2),
        _set(["A", 1], {"A": 1}, [], x=1),
        _set(["", 1], {"": 1}, []),
        # a map entry whose value does not decode, or names an unknown kind
        _map("lww", [0, -1, "A"]),
        _map("zset", [0, 0, "A"]),
        # a map key that is no text (a lone surrogate); a body that is no list
        {**_map("lww", [0, 0, "A"]), "entries": [["\ud800", "lww", [[["A", 1], [0, 0, "A"], 0]]]]},
        {**_map("lww", [0, 0, "A"]), "entries": [["k", "lww", {"a": 1}]]},
        # a context with a field it has not
        _set(["A", 1], {"A": 1}, []) | {"ctx": {"vv": {"A": 1}, "cloud": [], "x": 1}},
    ],
)
def test_what_from_dict_refuses_is_not_taken(d: dict[str, Any]) -> None:
    state: Any = crdt.new(d["type"])
    state.merge(crdt.new(d["type"]))
    assert _reference(state, d) is None
    assert not _check(state, d)


def test_a_valid_delta_of_more_than_one_dot_is_left_to_merge() -> None:
    a, group = ORSet(), ORSet()
    a.add("A", "milk")
    a.add("A", "eggs")
    group.merge(a.add("A", "milk"))  # its context: the dot it replaced too
    # the context of an add that replaced no dot, but holds more dots than its own: a
    # valid delta (it removes what those dots held), not a one-dot delta
    d = {"type": "orset", "v": 1, "entries": [["tea", [["A", 3]]]],
         "ctx": {"vv": {"A": 3}, "cloud": []}}  # fmt: skip
    assert _reference(group, d) is not None
    assert not _check(group, d)


@pytest.mark.parametrize("kind", ["orset", "ormap"])
@crdt_settings
@given(data=st.data())
def test_every_delta_of_a_history_joins_alike(kind: str, data: st.DataObject) -> None:
    h = run_history(kind, data.draw(history_steps(kind), label="steps"))
    for state in h.snapshots[:: max(1, len(h.snapshots) // 6)]:
        for _, delta in h.deltas:
            _check(state, delta.to_dict())


@pytest.mark.parametrize("kind", ["orset", "ormap"])
@crdt_settings
@given(data=st.data())
def test_a_corrupted_delta_is_taken_only_if_from_dict_accepts_it(
    kind: str, data: st.DataObject
) -> None:
    h = run_history(kind, data.draw(history_steps(kind), label="steps"))
    if not h.deltas:
        return
    _, delta = data.draw(st.sampled_from(h.deltas), label="delta")
    state = data.draw(st.sampled_from(h.snapshots), label="state")
    _check(state, data.draw(corrupted(delta.to_dict()), label="corrupted"))


@pytest.mark.parametrize("kind", ["orset", "ormap"])
def test_the_reverse_index_is_kept_as_merge_keeps_it(kind: str) -> None:
    """A state that holds its reverse index (dot -> element or key) after a join from a
    dict removes what a later remove names, as after ``merge``."""
    writer: Any = crdt.new(kind)

    def write(name: str) -> Any:
        if kind == "orset":
            return writer.add("A", name)
        return writer.update("A", name, "lww", lambda r: r.set("A", 1, now_ms=5))

    first, second = write("x"), write("y")
    removal = writer.remove("y")
    taken: Any = crdt.new(kind)
    taken.merge(first)
    taken.merge(writer.remove("nothing") if kind == "orset" else first)  # builds the index
    reference = taken.copy()
    assert crdt.merge_dict(taken, second.to_dict())
    reference.merge(crdt.from_dict(second.to_dict()))
    taken.merge(removal)
    reference.merge(removal)
    assert taken == reference and taken.to_json() == reference.to_json()
    assert set(taken.value) == {"x"}


def test_a_registered_kind_whose_decoder_raises_its_own_error_is_left_to_from_dict() -> None:
    """A kind registered by an application may raise ValueError or TypeError rather than
    DecodeError for a body it refuses: merge_dict takes nothing, and from_dict raises it."""
    from crdt.embedded import register_embedded, unregister_embedded
    from tests.crdt.test_embedded import FlagKind

    class Strict(FlagKind):
        kind = "strict"

        def decode(self, body: Any, ctx: Any, path: str, seen: Any) -> Any:
            raise ValueError(f"{path}: not a body of mine")

    register_embedded(Strict())
    try:
        d = {
            "type": "ormap",
            "v": 1,
            "entries": [["k", "strict", [["A", 1]]]],
            "ctx": {"vv": {"A": 1}, "cloud": []},
        }
        state = ORMap()
        assert not crdt.merge_dict(state, d)
        assert state == ORMap()
        with pytest.raises(ValueError, match="not a body of mine"):
            crdt.from_dict(d)
    finally:
        unregister_embedded("strict")
