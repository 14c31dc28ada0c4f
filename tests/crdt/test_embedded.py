"""The embedded-type interface (crdt/embedded.py): every registered kind meets it, and a new
kind can be registered without touching ORMap.

The laws are checked through the interface alone, for every kind in the registry: states
are ``(store or None, context)`` pairs drawn from one causal history of one map entry on
replicas A, B, C (mutations through ``update``, joins through ``join``/``discard`` as the
map makes them, and removes of the entry). A kind registered without operations here fails
``test_every_registered_kind_is_exercised_here``.

The test-only kind ``flag`` (an enable-wins flag: a DotSet, as Riak's ``riak_dt_od_flag``)
is written against the interface in this file, registered for this module only, and used
through an unmodified ORMap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crdt
from crdt import (
    CausalContext,
    DecodeError,
    DotTaker,
    FlatKind,
    ORMap,
    embedded_kind,
    embedded_kinds,
    register_embedded,
    unregister_embedded,
)
from crdt.causal_context import claim_dot
from crdt.dot import Dot, dot_from_json
from tests.crdt.conftest import crdt_settings

__all__: list[str] = []

DEFAULT_KINDS = ("gcounter", "pncounter", "lww", "mvregister", "orset", "ormap")


# --------------------------------------------------------------------------- a test-only kind


class Flag(DotTaker):
    """An enable-wins flag in an ORMap: ``enable(replica)``, ``disable()``, ``value``."""

    __slots__ = ()

    @property
    def value(self) -> bool:
        return bool(self.store)

    def enable(self, replica: str) -> Flag:
        self.store = (replica, self.take_dot(replica)[1])  # replaces every dot seen
        return self

    def disable(self) -> Flag:
        self.store = ()  # drops every dot seen
        return self


class FlagKind(FlatKind):
    """Its store: the flat dots of the enables not yet seen disabled (entries of width 2)."""

    kind = "flag"
    width = 2
    view_type = Flag

    def value(self, store: tuple[Any, ...]) -> bool:
        return bool(store)

    def encode(self, store: tuple[Any, ...]) -> list[Any]:
        return [[store[i], store[i + 1]] for i in range(0, len(store), 2)]

    def to_json(self, store: tuple[Any, ...]) -> str:
        return json.dumps(self.encode(store), ensure_ascii=False, separators=(",", ":"))

    def decode(
        self, body: list[Any], ctx: CausalContext, path: str, seen: set[Dot]
    ) -> tuple[Any, ...]:
        dots = []
        for i, x in enumerate(body):
            dot = dot_from_json(x, f"{path}[{i}]")
            claim_dot(dot, ctx, seen, f"{path}[{i}]")
            dots.append(dot)
        dots.sort()
        return tuple(chain.from_iterable(dots))


@pytest.fixture(scope="module", autouse=True)
def flag_registered() -> Iterator[None]:
    register_embedded(FlagKind())
    yield
    unregister_embedded("flag")


# --------------------------------------------------------------------------- operations

Op = Callable[[Any], object]

_values = st.sampled_from([None, True, 0, 1.5, "x", "é", [1, "a"], {"k": [None]}])
_elements = st.sampled_from(["milk", "eggs", 1, ["a", 1]])
_n = st.integers(1, 4)


def _op(name: str, *args: Any, **kw: Any) -> Callable[[str], Op]:
    """An operation of ``fn``'s view as replica ``r``: ``view.name(r, *args)``."""
    return lambda r: lambda v: getattr(v, name)(r, *args, **kw)


def _nested(kind: str, key: str, inner: Callable[[str], Op]) -> Callable[[str], Op]:
    return lambda r: lambda m: m.update(r, key, kind, inner(r))


OPS: dict[str, st.SearchStrategy[Callable[[str], Op]]] = {
    "gcounter": st.builds(lambda n: _op("increment", n), _n),
    "pncounter": st.builds(
        lambda name, n: _op(name, n), st.sampled_from(["increment", "decrement"]), _n
    ),
    "lww": st.builds(lambda v, t: _op("set", v, now_ms=t), _values, st.integers(1_000, 1_003)),
    "mvregister": st.builds(lambda v: _op("set", v), _values),
    "orset": st.builds(lambda e: _op("add", e), _elements)
    | st.builds(lambda e: lambda r: lambda s: s.remove(e), _elements),
    "ormap": st.builds(lambda n: _nested("gcounter", "c", _op("increment", n)), _n)
    | st.builds(lambda e: _nested("orset", "s", _op("add", e)), _elements)
    | st.builds(lambda key: lambda r: lambda m: m.remove(key), st.sampled_from("cs")),
    "flag": st.just(_op("enable")) | st.just(lambda r: lambda f: f.disable()),
}
KINDS = (*DEFAULT_KINDS, "flag")
REPLICAS = ("A", "B", "C")

State = tuple[Any, CausalContext]  # (store or None, context)


def join(kind: str, a: State, b: State) -> State:
    """The join of two states of one map entry, as the map makes it."""
    impl = embedded_kind(kind)
    (s1, c1), (s2, c2) = a, b
    if s1 is None and s2 is None:
        s = None
    elif s2 is None:
        s = impl.discard(s1, c2)
    elif s1 is None:
        s = impl.discard(s2, c1)
    else:
        s = impl.join(s1, c1, s2, c2)
    ctx = c1.copy()
    ctx.merge(c2)
    return (s or None), ctx


def mutate(kind: str, state: State, fn: Op) -> State:
    impl = embedded_kind(kind)
    store, ctx = state
    before = ctx.copy()
    after, new = impl.update(store, ctx, fn)
    assert ctx == before, "update changed the map's context"
    assert all(not ctx.contains(d) for d in new) and len(set(new)) == len(new)
    out = ctx.copy()
    for d in new:
        out.add(d)
    return (after or None), out


def text(kind: str, state: State) -> str:
    """The canonical form of a state: its store's JSON text and its context's."""
    store, ctx = state
    body = None if store is None else embedded_kind(kind).to_json(store)
    return f"{body} {ctx.to_json()}"


@st.composite
def histories(draw: Any, kind: str) -> list[State]:
    """Every state a random history of one entry on replicas A, B, C went through."""
    states = {r: (None, CausalContext()) for r in REPLICAS}
    seen: list[State] = [(None, CausalContext())]
    for _ in range(draw(st.integers(1, 12))):
        roll = draw(st.integers(0, 5))
        r = draw(st.sampled_from(REPLICAS))
        if roll == 0:
            src = draw(st.sampled_from(REPLICAS))
            states[r] = join(kind, states[r], states[src])
        elif roll == 1:  # the map removes the entry: its store goes, its dots stay seen
            states[r] = (None, states[r][1].copy())
        else:
            states[r] = mutate(kind, states[r], draw(OPS[kind])(r))
        seen.append(states[r])
    return seen


def draw_states(data: st.DataObject, kind: str, count: int) -> list[State]:
    seen = data.draw(histories(kind), label="history")
    return [seen[data.draw(st.integers(0, len(seen) - 1))] for _ in range(count)]


# --------------------------------------------------------------------------- the laws


def test_every_registered_kind_is_exercised_here() -> None:
    assert set(DEFAULT_KINDS) <= set(embedded_kinds())
    assert set(embedded_kinds()) == set(KINDS) == set(OPS)


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_join_is_commutative_associative_and_idempotent(kind: str, data: st.DataObject) -> None:
    a, b, c = draw_states(data, kind, 3)
    assert text(kind, join(kind, a, b)) == text(kind, join(kind, b, a))
    assert text(kind, join(kind, join(kind, a, b), c)) == text(
        kind, join(kind, a, join(kind, b, c))
    )
    assert text(kind, join(kind, a, a)) == text(kind, a)
    ab = join(kind, a, b)
    assert text(kind, join(kind, ab, b)) == text(kind, ab)
    assert text(kind, join(kind, (None, CausalContext()), a)) == text(kind, a)


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_a_store_round_trips_through_its_codec(kind: str, data: st.DataObject) -> None:
    (state,) = draw_states(data, kind, 1)
    store, ctx = state
    if store is None:
        return
    impl = embedded_kind(kind)
    encoded = impl.encode(store)
    assert impl.to_json(store) == json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))
    seen: set[Dot] = set()
    back = impl.decode(json.loads(impl.to_json(store)), ctx, "body", seen)
    assert back == store and impl.to_json(back) == impl.to_json(store)
    assert seen == set(impl.dots(store))
    assert impl.value(back) == impl.value(store)


@pytest.mark.parametrize("kind", KINDS)
@crdt_settings
@given(data=st.data())
def test_a_store_holds_its_contexts_dots_and_its_view_reads_it(
    kind: str, data: st.DataObject
) -> None:
    (state,) = draw_states(data, kind, 1)
    store, ctx = state
    if store is None:
        return
    impl = embedded_kind(kind)
    dots = impl.dots(store)
    assert dots and len(set(dots)) == len(dots)  # non-empty: truthy and holding dots
    assert all(ctx.contains(d) for d in dots)
    assert impl.discard(store, ctx) == type(store)()  # its own context covers it all
    assert impl.view(store, ctx.copy()).value == impl.value(store)


# An operation of each kind that writes (takes a dot), for the examples below.
FIRST_OPS: dict[str, Callable[[str], Op]] = {
    "gcounter": _op("increment", 1),
    "pncounter": _op("decrement", 2),
    "lww": _op("set", "v", now_ms=5),
    "mvregister": _op("set", [1]),
    "orset": _op("add", "x"),
    "ormap": _nested("lww", "in", _op("set", 1, now_ms=5)),
    "flag": _op("enable"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_dot_used_by_another_entry_is_refused_by_the_decoder(kind: str) -> None:
    impl = embedded_kind(kind)
    store, ctx = mutate(kind, (None, CausalContext()), FIRST_OPS[kind]("A"))
    assert store is not None
    body = json.loads(impl.to_json(store))
    assert impl.decode(body, ctx, "entries[1][2]", set()) == store
    with pytest.raises(DecodeError, match="dot used twice") as e:
        impl.decode(body, ctx, "entries[1][2]", set(impl.dots(store)))
    assert e.value.path.startswith("entries[1][2][0]")


# --------------------------------------------------------------------------- the test-only kind


def _enable(m: ORMap, replica: str) -> ORMap:
    return m.update(replica, "on", "flag", lambda f: f.enable(replica))


def test_a_kind_registered_outside_ormap_works_in_an_ormap() -> None:
    a, b = ORMap(), ORMap()
    b.merge(_enable(a, "A"))
    assert a.value == b.value == {"on": True}
    off = b.update("B", "on", "flag", lambda f: f.disable())  # B disables what it saw...
    assert b.value == {} and off.to_dict()["entries"] == []  # no dot left: the entry goes
    on = _enable(a, "A")  # ...while A enables again: enable wins
    a.merge(off)
    b.merge(on)
    assert a == b and a.value == {"on": True}
    a.merge(b.remove("on"))
    assert a == b and a.value == {}


def test_a_registered_kind_is_encoded_and_decoded_by_the_map() -> None:
    m = ORMap()
    _enable(m, "A")
    m.update("A", "n", "gcounter", lambda c: c.increment("A", 3))
    encoded = m.to_dict()
    assert encoded["entries"] == [["n", "gcounter", [[["A", 2], 3]]], ["on", "flag", [["A", 1]]]]
    assert m.to_json() == json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))
    back = crdt.from_dict(json.loads(m.to_json()))
    assert back == m and back.value == {"n": 3, "on": True}
    assert back.get("on").value is True and back.kind_of("on") == "flag"


def test_an_unregistered_kind_is_refused_by_the_map_naming_the_known_ones() -> None:
    m = ORMap()
    _enable(m, "A")
    encoded = m.to_dict()
    impl = unregister_embedded("flag")
    try:
        with pytest.raises(DecodeError) as e:
            ORMap.from_dict(encoded)
        assert e.value.path == "entries[0][1]"
        with pytest.raises(ValueError, match="unknown kind 'flag'; known: gcounter, pncounter"):
            ORMap().update("A", "on", "flag", lambda f: f.enable("A"))
    finally:
        register_embedded(impl)


def test_registering_a_kind_checks_its_name_and_its_methods() -> None:
    with pytest.raises(ValueError, match="registered already"):
        register_embedded(FlagKind())

    class Named(FlagKind):
        kind = "two words"

    with pytest.raises(ValueError, match="ASCII identifier"):
        register_embedded(Named())

    class Partial:
        kind = "partial"

        def value(self, store: Any) -> Any:
            return store

    with pytest.raises(TypeError, match="Embedded"):
        register_embedded(Partial())  # type: ignore[arg-type]
    assert "partial" not in embedded_kinds() and "two words" not in embedded_kinds()
