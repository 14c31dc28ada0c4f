"""The embedded-type interface: what a CRDT kind implements, once, to live inside an ORMap.

An :class:`~crdt.ormap.ORMap` holds one causal context and, per ``(key, kind)``, a *store*:
a dot store of that kind, read and written against the map's context (Almeida, Shoker,
Baquero, "Delta State Replicated Data Types", 2018, section 7.4, "map embedding"). The map
never asks which kind a store is: it looks the kind's :class:`Embedded` up in a registry and
calls its join, value, codec and update, as riak_dt's map calls ``Type:merge``,
``Type:update`` and ``Type:value`` of each field's module and rust-crdt's ``Map<K, V:
Val<A>>`` calls its values' own ``merge``. Each kind implements the interface in or beside
its own module: ``crdt/emcounter.py`` (the embedded counters, as ``riak_dt_emcntr``),
``crdt/emlww.py``, ``crdt/mvregister.py``, ``crdt/orset.py``, ``crdt/ormap.py`` (a nested
map); ``crdt/ormap.py`` registers them. :func:`register_embedded` adds a kind without
touching the map.

A store, for every kind:

- is *immutable once stored*: every method returns a new store, or its argument unchanged,
  and never edits one in place, so states, their copies and their deltas share stores;
- is *falsy exactly when empty*: the map drops an entry whose store is empty (``()``,
  ``{}``) and passes ``None`` where it holds none;
- holds only dots of the context it is read with;
- is made of objects CPython's cyclic collector untracks (tuples of atoms, dicts of them:
  ``crdt/_flat.py`` says why), so that a big map is nearly invisible to the collector.

Partial implementations to build a kind on: :class:`FlatStore`, the dots and the join of a
store of flat entries of a fixed width (registers and counters); :class:`FlatKind`, a flat
store whose view, a :class:`DotTaker`, only reads the map's context and notes the dots it
takes, so the hot path copies nothing (counters, LWW registers); and :class:`ViewedKind`, for
a kind whose view is a whole CRDT over a copy of the map's context (a set, a multi-value
register, a nested map).

>>> from crdt import CausalContext
>>> counter, ctx = embedded_kind("pncounter"), CausalContext()
>>> store, new = counter.update(None, ctx, lambda c: c.decrement("A", 2))
>>> store, new, counter.value(store)
(('A', 1, 0, 2), [('A', 1)], -2)
>>> counter.encode(store), counter.to_json(store)
([[['A', 1], 0, 2]], '[[["A",1],0,2]]')
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

from crdt._flat import Entries, flat, rows
from crdt._json import same_json
from crdt._split import dot_bytes, pack, utf8_len
from crdt.causal_context import CausalContext
from crdt.dot import Dot, next_counter
from crdt.errors import shown

__all__ = [
    "DotTaker",
    "Embedded",
    "FlatKind",
    "FlatStore",
    "ViewedKind",
    "embedded_kind",
    "embedded_kinds",
    "register_embedded",
    "unregister_embedded",
]


@runtime_checkable
class Embedded(Protocol):
    """One kind of value an ORMap embeds: the operations the map calls on its stores."""

    @property
    def kind(self) -> str:
        """The kind's name in ``ORMap.update`` and in the encoding (an ASCII identifier)."""
        ...

    def value(self, store: Any) -> Any:
        """What ``ORMap.value`` shows for a (non-empty) store."""
        ...

    def dots(self, store: Any) -> list[Dot]:
        """Every dot of the store: the map indexes them and removes a key by them."""
        ...

    def join(self, s1: Any, ctx1: CausalContext, s2: Any, ctx2: CausalContext) -> Any:
        """The join of the stores of ``(s1, ctx1)`` and ``(s2, ctx2)``, commutative,
        associative and idempotent (the contexts join by union). Returning ``s1`` itself
        when nothing changes spares the map some work."""
        ...

    def discard(self, store: Any, ctx: CausalContext) -> Any:
        """``store`` without the dots ``ctx`` holds: its join with the empty store of a side
        whose context is ``ctx`` (a remove, or a side that no longer holds the entry)."""
        ...

    def view(self, store: Any, ctx: CausalContext) -> Any:
        """An object with the standalone type's reading methods and mutators over ``store``
        (None: empty) and ``ctx``, which the view may keep and change: ``ORMap.get`` passes a
        copy of the map's context."""
        ...

    def update(
        self, store: Any, ctx: CausalContext, fn: Callable[[Any], object]
    ) -> tuple[Any, list[Dot]]:
        """Run ``fn`` on a view of ``store`` (None: empty) under the map's context ``ctx``,
        which must come back unchanged; return the store the view ends with (in containers
        of its own: the view may outlive the call) and the fresh dots it took, in the order
        taken (no dots and ``store`` itself tell the map that nothing changed). A view only
        keeps dots of ``store`` or adds new ones: the map builds the delta from that."""
        ...

    def encode(self, store: Any) -> list[Any]:
        """The canonical JSON form of a (non-empty) store: the body of its map entry."""
        ...

    def to_json(self, store: Any) -> str:
        """``json.dumps(encode(store), ensure_ascii=False, separators=(",", ":"))``, byte for
        byte (raising what that raises)."""
        ...

    def decode(self, body: list[Any], ctx: CausalContext, path: str, seen: set[Dot]) -> Any:
        """The store a non-empty ``body`` encodes, each of its dots checked to be in ``ctx``
        and not in ``seen`` (the dots of the map's other entries), then added to ``seen``;
        :class:`~crdt.errors.DecodeError` naming the bad field under ``path``."""
        ...

    def split(self, store: Any, max_bytes: int) -> list[Any]:
        """A (non-empty) store too big for one message, as non-empty sub-stores whose dots
        partition the store's dots (so each, under the context of its own dots, is below
        the store, and their join is the store: ``crdt/_split.py``), each weighing at most
        ``max_bytes`` where it can (its ``to_json`` in UTF-8 plus its dots as a context's
        cloud: :func:`crdt._split.dots_bytes`); ``[store]`` if it cannot be cut."""
        ...


class DotTaker:
    """The view :class:`FlatKind` hands to ``ORMap.update``'s ``fn``: a flat store (``store``,
    replaced by every mutation, never edited) under the map's context (``ctx``, only read),
    and the dots its mutations took (``new``), which the map adds to its context after."""

    __slots__ = ("ctx", "new", "store")

    def __init__(self, store: tuple[Any, ...], ctx: CausalContext) -> None:
        self.store = store
        self.ctx = ctx
        self.new: list[Dot] = []

    def take_dot(self, replica: str) -> Dot:
        """A fresh dot of ``replica``: past the context and the dots this view took."""
        ctx = self.ctx
        n = ctx.max_counter(replica) if ctx.cloud else ctx.vv.get(replica, 0)
        for d in self.new:
            if d[0] == replica and d[1] > n:
                n = d[1]
        dot: Dot = (replica, next_counter(replica, n))  # type: ignore[assignment]
        self.new.append(dot)
        return dot


def _same(x: Entries, y: Entries, k: int) -> bool:
    """Flat entries of width ``k`` equal as their encodings are: ``1``, ``1.0`` and ``true``,
    ``0.0`` and ``-0.0``, an object and the same one with its keys reordered, are equal to
    Python, not to JSON, at the top of a value as inside it (a value is the last field of an
    entry; the other fields are dots, timestamps and counts, which the decoders take as
    ints and strs only)."""
    if x != y:
        return False
    if len(x) == k:  # one entry (the common case: a register's)
        return same_json(x[-1], y[-1])
    values1, values2 = x[k - 1 :: k], y[k - 1 :: k]
    return all(same_json(a, b) for a, b in zip(values1, values2, strict=True))


class FlatStore:
    """The store of a kind kept as flat entries of ``width`` fields, the first two the entry's
    dot, entries sorted by dot (``crdt/_flat.py``): its dots, its join (a DotFun's), its
    discard and its split (by entries), written once for every such kind. A mixin:
    ``FlatKind`` and the embedded multi-value register build on it (and write ``to_json``)."""

    width: int

    def to_json(self, store: Entries) -> str:  # pragma: no cover - every kind writes it
        raise NotImplementedError

    def split(self, store: Entries, max_bytes: int) -> list[Entries]:
        k = self.width
        if len(store) == k:
            return [store]  # one entry: cannot be cut
        # Each entry's weight: its text (the one-entry store's, brackets standing for the
        # comma) and its dot in a context.
        units = [(x, utf8_len(self.to_json(x)) + dot_bytes(x[:2])) for x in rows(store, k)]  # type: ignore[arg-type]
        return [flat(group) for group in pack(units, max_bytes)]

    def _either(self, x: Entries, y: Entries) -> Entries:
        """Of two entries of one dot that differ (its origin used the dot twice: a faulty or
        hostile one), the one of the smaller encoding: either side may hear of either first,
        and every replica keeps the same."""
        return x if self.to_json(x) <= self.to_json(y) else y

    def dots(self, store: Entries) -> list[Dot]:
        k = self.width
        if len(store) == k:
            return [(store[0], store[1])]  # type: ignore[list-item]
        return list(zip(store[::k], store[1::k], strict=True))  # type: ignore[arg-type]

    def discard(self, store: Entries, ctx: CausalContext) -> Entries:
        k = self.width
        if len(store) == k:  # one entry
            r, c = store[0], store[1]
            return store if c > ctx.vv.get(r, 0) and (r, c) not in ctx.cloud else ()
        entries = rows(store, k)
        seen = ctx.contains
        keep = [x for x in entries if not seen((x[0], x[1]))]  # type: ignore[arg-type]
        return store if len(keep) == len(entries) else flat(keep)

    def join(self, s1: Entries, ctx1: CausalContext, s2: Entries, ctx2: CausalContext) -> Entries:
        k = self.width
        if s1 is s2 or _same(s1, s2, k):
            return s1
        if len(s1) == k and len(s2) == k:  # one entry each (a write joining the one it replaces)
            a, b = s1[:2], s2[:2]
            if a == b:  # (and the entries differ: see _either)
                return self._either(s1, s2)
            keep1 = not ctx2.contains(a)  # type: ignore[arg-type]
            keep2 = not ctx1.contains(b)  # type: ignore[arg-type]
            if keep1 and keep2:
                return s1 + s2 if a < b else s2 + s1
            return s1 if keep1 else s2 if keep2 else ()
        r1, r2 = rows(s1, k), rows(s2, k)
        by2 = {y[:2]: y for y in r2}
        d1 = {x[:2] for x in r1}
        seen1, seen2 = ctx1.contains, ctx2.contains
        out = []
        for x in r1:
            y = by2.get(x[:2])
            if y is None:
                if not seen2(x[:2]):  # type: ignore[arg-type]
                    out.append(x)
            else:
                out.append(x if x is y or _same(x, y, k) else self._either(x, y))
        out += [y for y in r2 if y[:2] not in d1 and not seen1(y[:2])]  # type: ignore[arg-type]
        if len(out) > 1:
            out.sort()  # dots are unique: the sort never compares the other fields
        if len(out) == len(r1) and all(a is b for a, b in zip(out, r1, strict=True)):
            return s1
        return flat(out)


class FlatKind(FlatStore, ABC):
    """A kind whose store is flat entries (:class:`FlatStore`) and whose view is a
    :class:`DotTaker`: everything but the value and the codec, written once. A subclass sets
    ``kind``, ``width`` and ``view_type`` and writes ``value`` and the codec."""

    kind: str
    view_type: ClassVar[type[DotTaker]]

    def view(self, store: Entries | None, ctx: CausalContext) -> Any:
        return self.view_type(store if store is not None else (), ctx)

    def update(
        self, store: Entries | None, ctx: CausalContext, fn: Callable[[Any], object]
    ) -> tuple[Entries, list[Dot]]:
        # The view reads the map's context in place: nothing is copied (the hot path of
        # ``crdt_bench.py``'s ORMap adds and of ``e2e_bench.py``'s map updates).
        view = self.view_type(store if store is not None else (), ctx)
        fn(view)
        return view.store, view.new

    @abstractmethod
    def value(self, store: Entries) -> Any: ...

    @abstractmethod
    def encode(self, store: Entries) -> list[Any]: ...

    @abstractmethod
    def to_json(self, store: Entries) -> str: ...

    @abstractmethod
    def decode(self, body: list[Any], ctx: CausalContext, path: str, seen: set[Dot]) -> Entries: ...


class ViewedKind(ABC):
    """A kind whose view is a whole CRDT over a copy of the map's context: ``update`` runs
    ``fn`` on ``view(store, copy)`` and returns ``store_of(view)`` and the dots the copy
    gained. A subclass writes ``view``, ``store_of`` and the rest of :class:`Embedded`."""

    @abstractmethod
    def view(self, store: Any, ctx: CausalContext) -> Any: ...

    @abstractmethod
    def store_of(self, view: Any) -> Any:
        """The store ``view`` holds now, in a container of its own (the view may live on)."""

    def update(
        self, store: Any, ctx: CausalContext, fn: Callable[[Any], object]
    ) -> tuple[Any, list[Dot]]:
        view_ctx = ctx.copy()
        view = self.view(store, view_ctx)
        fn(view)
        return self.store_of(view), list(view_ctx.dots_not_in(ctx))


class _Registry:
    """The embedded kinds by name, and what ORMap derives from them (kept up to date here)."""

    __slots__ = ("by_kind", "descending", "others")

    def __init__(self) -> None:
        self.by_kind: dict[str, Embedded] = {}
        # kind -> the other kinds, which a key holding that kind must not hold as well
        self.others: dict[str, tuple[str, ...]] = {}
        # every kind, greatest first: where two kinds meet at one key, the greatest is shown
        self.descending: tuple[str, ...] = ()

    def changed(self) -> None:
        kinds = tuple(self.by_kind)
        self.others.clear()
        self.others.update({k: tuple(o for o in kinds if o != k) for k in kinds})
        self.descending = tuple(sorted(kinds, reverse=True))


REGISTRY = _Registry()
"""What ORMap reads (its dicts are updated in place: bind them once)."""


def register_embedded(impl: Embedded) -> None:
    """Make ``impl.kind`` a kind that ``ORMap.update`` accepts and ``ORMap.from_dict`` decodes.

    ValueError if the name is taken or not an ASCII identifier (it is written in the
    encoding as it is); TypeError if ``impl`` lacks a method of :class:`Embedded`.
    """
    if not isinstance(impl, Embedded):
        raise TypeError(f"{type(impl).__name__} does not implement crdt.embedded.Embedded")
    kind = impl.kind
    if type(kind) is not str or not (kind.isascii() and kind.isidentifier()):
        raise ValueError(f"an embedded kind is named by an ASCII identifier, got {shown(kind)}")
    if kind in REGISTRY.by_kind:
        raise ValueError(f"embedded kind {kind!r} is registered already")
    REGISTRY.by_kind[kind] = impl
    REGISTRY.changed()


def unregister_embedded(kind: str) -> Embedded:
    """Remove ``kind`` (for tests and plugins: maps holding it can no longer be decoded)."""
    impl = REGISTRY.by_kind.pop(kind)
    REGISTRY.changed()
    return impl


def embedded_kind(kind: object) -> Embedded:
    """The registered :class:`Embedded` of ``kind``; ValueError naming the known ones."""
    impl = REGISTRY.by_kind.get(kind) if type(kind) is str else None
    if impl is None:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(REGISTRY.by_kind)}")
    return impl


def embedded_kinds() -> tuple[str, ...]:
    """The registered kinds, in the order of registration."""
    return tuple(REGISTRY.by_kind)
