"""ORMap: a map from keys to embedded CRDTs, with observed-remove keys.

State: *one* causal context shared by every embedded value, and a dot map ``(key, kind) ->
store`` (Almeida, Shoker, Baquero, "Delta State Replicated Data Types", 2018, section 7.4,
"map embedding"; the Riak DT map, Brown et al. 2014). Every store is a dot store of its kind
read and written against the map's context. The map is generic over what it holds: it calls
each kind's own join, value, update and codec through the embedded-type interface
(:mod:`crdt.embedded`, a registry keyed by kind) and never asks which kind a store is. The
kinds registered here:

==========  ==================================  ======================  ===================
kind        embedded value                      module                  ``fn`` receives
==========  ==================================  ======================  ===================
gcounter    causal counter, one dot per replica ``crdt/emcounter.py``   EmbeddedCounter
pncounter   the same, going both ways           ``crdt/emcounter.py``   EmbeddedPNCounter
lww         dot-tagged LWW register             ``crdt/emlww.py``       EmbeddedLWW
mvregister  multi-value register                ``crdt/mvregister.py``  MVRegister
orset       add-wins set                        ``crdt/orset.py``       ORSet
ormap       nested map                          this module             ORMap
==========  ==================================  ======================  ===================

Representation: one ``dict`` from ``(key, kind)`` (a plain tuple) to its store, plus a
reverse index ``replica -> counter -> (key, kind)`` built lazily (``crdt/_dot_index.py``).
Stores are immutable once stored (a mutation or a merge builds a new one and replaces it),
so states, their copies and the deltas they return share them, and they are made of objects
CPython's collector untracks: a big map is nearly invisible to it (``crdt/_flat.py``,
``tests/crdt/test_gc_footprint.py``).

``update(replica, key, kind, fn)`` hands ``fn`` a *view* of the embedded value of that kind:
an object with the standalone type's mutators (``increment(replica, n)``, ``decrement``,
``set(replica, value, ...)``, ``add``/``remove``, nested ``update``/``remove``). Every
mutation made through the view is applied to the map and returned as one map delta: the
entry restricted to the dots the update took, with a context of those dots and of the dots
it dropped. ``fn``'s return value is not needed.

``remove(key)`` is an observed remove: its delta is an empty store whose context holds the
key's dots. An update concurrent with the remove survives with only what the remove did not
see (Riak map semantics): for a set, the elements added concurrently; for a register, the
concurrent write; for a counter, the replicas whose dot is newer than the remove (with their
running totals). This is what makes delta merging and full-state merging agree. ``clear()``
removes every key seen here the same way (its delta: the empty map under the whole
context); ``is_live()``: the map holds a key.

A key holds one kind: ``update`` with another kind than the key holds raises TypeError.
Entries are keyed by ``(key, kind)``, so concurrent updates of one key with two kinds on
two replicas still join deterministically, and the key then holds both: a *kind clash*
(:meth:`ORMap.clashes`). ``value`` and ``get`` show the kind that comes last in
alphabetical order, ``get(key, kind)`` either; ``update`` refuses both kinds (TypeError,
naming them) until ``remove(key, kind=...)`` drops the one not kept, as a top-level key
written as two kinds does. Keys are hashable JSON values, as ORSet elements. An update
nests maps at most :data:`MAX_NESTING` deep, the outermost counted (one that would nest a
map deeper raises ValueError): with values of at most :data:`crdt._json.MAX_DEPTH` levels,
what a write makes stays well within what a JSON reader takes. (A state decoded from a peer
of an older version may nest deeper: it is read as it is.)

Encoding: ``{"type": "ormap", "v": 1, "entries": [[key, kind, body], ...], "ctx": {...}}``,
entries sorted by (key's canonical JSON, kind); ``body`` is the kind's encoding of its store
(see its module), a nested map's its ``entries``. Dots are ``[replica, n]``. The entries'
codec and the units of a split are in :mod:`crdt._map_codec`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from crdt._codec import FORMAT_VERSION
from crdt._dot_index import DotIndex, index_copy, index_dots, index_items, index_of, index_pop
from crdt._json import (
    Key,
    causal_state_json,
    causal_state_json_of_parts,
    freeze,
    plain_key,
    same_json,
    thaw,
)
from crdt._map_codec import (
    EntryKey,
    MapStore,
    decode_map,
    encode_map,
    entry_json,
    map_json,
    map_json_parts,
    map_units,
    pack_map,
)
from crdt._split import (
    CAUSAL_OVERHEAD,
    check_budget,
    removed_contexts,
    utf8_len,
)
from crdt.causal_context import (
    CausalContext,
    context_of,
    context_of_dot,
    decode_causal,
    is_small,
    one_dot_delta,
    sole_dot,
)
from crdt.dot import Dot, check_replica
from crdt.embedded import REGISTRY, ViewedKind, embedded_kind, register_embedded
from crdt.emcounter import GCOUNTER, PNCOUNTER
from crdt.emlww import LWW
from crdt.mvregister import MVREGISTER
from crdt.orset import ORSET

__all__ = ["MAX_NESTING", "ORMap"]

#: The most maps an ORMap value nests in one another, the outermost counted (each adds two
#: levels to the encoding: see :data:`crdt._json.MAX_DEPTH`).
MAX_NESTING = 32

_FIELDS = frozenset({"entries", "ctx"})  # the body fields of the encoding


# The registry's tables (crdt/embedded.py updates them in place as kinds are registered).
_KINDS = REGISTRY.by_kind
_OTHERS = REGISTRY.others


# ---------------------------------------------------------------------------------------
# The map's store, through each entry's kind (every function returns a new store)
# ---------------------------------------------------------------------------------------
def _map_dots(store: MapStore) -> list[Dot]:
    kinds = _KINDS
    return [d for ek, s in store.items() for d in kinds[ek[1]].dots(s)]


def _discard_map(store: MapStore, ctx: CausalContext) -> MapStore:
    kinds = _KINDS
    out: MapStore = {}
    for ek, s in store.items():
        t = kinds[ek[1]].discard(s, ctx)
        if t:
            out[ek] = t
    return out


def _join_map(s1: MapStore, ctx1: CausalContext, s2: MapStore, ctx2: CausalContext) -> MapStore:
    kinds = _KINDS
    out: MapStore = {}
    for ek, a in s1.items():
        b = s2.get(ek)
        if b is None:
            t = kinds[ek[1]].discard(a, ctx2)
        elif a == b and same_json(a, b):  # (``==`` takes 1 and true as one: JSON does not)
            t = a
        else:
            t = kinds[ek[1]].join(a, ctx1, b, ctx2)
        if t:
            out[ek] = t
    for ek, b in s2.items():
        if ek not in s1:
            t = kinds[ek[1]].discard(b, ctx1)
            if t:
                out[ek] = t
    return out


def _kinds_in(store: MapStore, k: Key) -> tuple[str, ...]:
    """The kinds the internal key ``k`` holds in ``store``, sorted."""
    return tuple(kind for kind in reversed(REGISTRY.descending) if (k, kind) in store)


def _store_clashes(
    mine: MapStore, theirs: MapStore, prefix: tuple[Any, ...]
) -> dict[tuple[Any, ...], tuple[str, ...]]:
    """The keys of ``theirs`` that hold two kinds or more in ``mine``, by path (``prefix``
    and the key), the maps nested in both looked into as well."""
    found: dict[tuple[Any, ...], tuple[str, ...]] = {}
    for k, kind in theirs:
        for o in _OTHERS[kind]:
            if (k, o) in mine:
                kinds = _kinds_in(mine, k)
                if len(kinds) > 1:
                    found[(*prefix, thaw(k))] = kinds
                break
        if kind == "ormap":
            inner = mine.get((k, "ormap"))
            if inner is not None:
                found.update(_store_clashes(inner, theirs[(k, kind)], (*prefix, thaw(k))))
    return found


def _store_has_clash(store: MapStore) -> bool:
    if len({k for k, _ in store}) != len(store):
        return True
    return any(_store_has_clash(s) for (_, kind), s in store.items() if kind == "ormap")


def _map_value(store: MapStore) -> dict[Any, Any]:
    chosen: dict[Key, str] = {}
    for key, kind in store:
        if key not in chosen or kind > chosen[key]:
            chosen[key] = kind
    kinds = _KINDS
    return {thaw(k): kinds[kind].value(store[(k, kind)]) for k, kind in chosen.items()}


# ---------------------------------------------------------------------------------------
# The map
# ---------------------------------------------------------------------------------------
class ORMap:
    """A map of embedded CRDTs with observed-remove keys.

    >>> a, b = ORMap(), ORMap()
    >>> d1 = a.update("A", "visits", "pncounter", lambda c: c.increment("A", 2))
    >>> d2 = a.update("A", "tags", "orset", lambda s: s.add("A", "new"))
    >>> b.merge(d1); b.merge(d2)
    >>> b.value == {"visits": 2, "tags": frozenset({"new"})}
    True
    >>> d3 = b.remove("tags")                                         # B removes tags...
    >>> d4 = a.update("A", "tags", "orset", lambda s: s.add("A", "hot"))  # ...A adds meanwhile
    >>> a.merge(d3); b.merge(d4)
    >>> a.value == b.value == {"visits": 2, "tags": frozenset({"hot"})}
    True
    """

    kind: ClassVar[str] = "ormap"
    __slots__ = ("_ctx", "_depth", "_entries", "_index")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self._entries: MapStore = {}
        self._ctx = CausalContext()
        self._index: DotIndex[EntryKey] | None = {}
        self._depth = 1  # the maps this one is in, itself counted: a view's is set by update

    @classmethod
    def _delta(cls, entries: MapStore, ctx: CausalContext) -> ORMap:
        """A map made of ``entries`` and ``ctx`` (taken, not copied), without an index."""
        m: ORMap = cls.__new__(cls)
        m._entries = entries
        m._ctx = ctx
        m._index = None
        m._depth = 1
        return m

    def _store_copy(self) -> MapStore:
        """The entries, in a dict of their own (the store of a nested map's view)."""
        return dict(self._entries)

    # -- reading ---------------------------------------------------------------------------
    @property
    def value(self) -> dict[Any, Any]:
        """``{key: embedded value}``; nested maps as nested dicts."""
        return _map_value(self._entries)

    @property
    def context(self) -> CausalContext:
        return self._ctx

    def kind_of(self, key: object) -> str | None:
        """The kind ``key`` holds (the one ``value`` shows, if it holds several), or None."""
        return self._kind_of(freeze(key, "key"))

    def kinds_of(self, key: object) -> tuple[str, ...]:
        """Every kind ``key`` holds, sorted: two or more is a kind clash."""
        return _kinds_in(self._entries, freeze(key, "key"))

    def has_clash(self) -> bool:
        """Does a key hold two kinds or more, here or in a nested map (is
        :meth:`clash_paths` not empty)? O(entries)."""
        return _store_has_clash(self._entries)

    def clashes(self) -> dict[Any, tuple[str, ...]]:
        """``{key: its kinds}`` of this map's keys holding two kinds or more (see the module
        docstring; nested maps' keys: :meth:`clash_paths`); O(entries)."""
        return {path[0]: kinds for path, kinds in self.clash_paths().items() if len(path) == 1}

    def clash_paths(self) -> dict[tuple[Any, ...], tuple[str, ...]]:
        """``{path: kinds}`` of the keys holding two kinds or more, in this map (a path of
        one key) and in the maps nested in it (the keys from this map down); O(entries)."""
        return _store_clashes(self._entries, self._entries, ())

    def clashes_from(self, other: ORMap) -> dict[tuple[Any, ...], tuple[str, ...]]:
        """:meth:`clash_paths` among the keys ``other`` holds, nested maps' included (the
        delta or state just joined into this map): O(entries of ``other``)."""
        return _store_clashes(self._entries, other._entries, ())

    def kinds_at(self, path: Sequence[object]) -> tuple[str, ...]:
        """Every kind the key at ``path`` holds (see :meth:`clash_paths`), sorted; () if
        there is no such key."""
        if isinstance(path, str):
            raise TypeError("a path is a sequence of keys (a list or tuple), not a str")
        store = self._entries
        for i, key in enumerate(path):
            k = freeze(key, "key")
            if i == len(path) - 1:
                return _kinds_in(store, k)
            inner = store.get((k, "ormap"))
            if inner is None:
                return ()
            store = inner
        return ()

    def _kind_of(self, k: Key) -> str | None:
        """The kind the internal key ``k`` holds, or None (the greatest, if several)."""
        entries = self._entries
        for kind in REGISTRY.descending:
            if (k, kind) in entries:
                return kind
        return None

    def get(self, key: object, kind: str | None = None) -> Any:
        """A detached copy (a view object) of the value at ``key``, or None; ``kind``: of
        that kind (None if the key does not hold it), else of the kind it holds.

        Mutating it changes nothing in the map: use ``update``.
        """
        k = freeze(key, "key")
        if kind is None:
            kind = self._kind_of(k)
            if kind is None:
                return None
        else:
            embedded_kind(kind)  # raises ValueError for an unknown kind
        store = self._entries.get((k, kind))
        if store is None:
            return None
        return _KINDS[kind].view(store, self._ctx.copy())

    def __contains__(self, key: object) -> bool:
        try:
            return self.kind_of(key) is not None
        except TypeError:
            return False

    def __len__(self) -> int:
        return len({k for k, _ in self._entries})

    def keys(self) -> frozenset[Any]:
        return frozenset(thaw(k) for k, _ in self._entries)

    def is_bottom(self) -> bool:
        return not self._entries and self._ctx.is_bottom()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ORMap):
            return NotImplemented
        return self._ctx == other._ctx and self._entries == other._entries

    def __repr__(self) -> str:
        return f"ORMap({self.value!r})"

    # -- mutators --------------------------------------------------------------------------
    def update(self, replica: str, key: object, kind: str, fn: Callable[[Any], object]) -> ORMap:
        """Apply ``fn`` to a view of the ``kind`` value at ``key``; returns the map delta.

        ``replica`` is checked like every mutator's; the view's mutators take their own
        replica argument, as the standalone types do. TypeError if ``key`` holds another kind
        or is not a hashable JSON value; ValueError for an unknown kind. If ``fn`` raises,
        nothing changes. ``fn``'s return value is not used: every mutation made through the
        view is in the returned delta.
        """
        if type(replica) is not str or not replica:
            check_replica(replica)  # raises
        k: Key = key if plain_key(key) else freeze(key, "key")  # type: ignore[assignment]
        impl = _KINDS.get(kind) if type(kind) is str else None
        if impl is None:
            impl = embedded_kind(kind)  # raises ValueError, naming the known kinds
        entries = self._entries
        before = entries.get((k, kind))
        for o in _OTHERS[kind]:
            if (k, o) in entries:  # a key holds one kind (see the module docstring)
                held = self.kinds_of(key)
                if len(held) > 1:
                    raise TypeError(
                        f"key {key!r} holds {' and '.join(map(_a, held))} (written as two "
                        f"kinds concurrently): remove the one not kept first, "
                        f"remove({key!r}, kind=...)"
                    )
                raise TypeError(f"key {key!r} holds {_a(o)}, not {_a(kind)}")
        ctx = self._ctx
        if kind == "ormap":
            fn = self._nested(fn)
        after, new = impl.update(before, ctx, fn)
        if not new and after is before:
            return ORMap._delta({}, CausalContext())  # nothing written (e.g. a stale set)
        ek: EntryKey = (k, kind)
        if before is None and len(new) == 1:
            # The common case: one write to a key not held. Every dot of ``after`` is new, so
            # the delta is the entry itself, whose only dot is the new one.
            dstore = after
            dctx = context_of_dot(new[0])
            old: list[Dot] = []
            live = new if after else []
        else:
            dstore = impl.discard(after, ctx) if after else after
            old = impl.dots(before) if before is not None else []
            live = impl.dots(after) if after else []
            kept = set(live)
            dctx = context_of([*new, *(d for d in old if d not in kept)])
        # Joining the delta into this state gives exactly ``after`` at this entry (a view only
        # keeps old dots or adds new ones) and leaves every other entry alone (the delta's
        # context holds only new dots and this entry's dots): apply it directly, O(entry).
        self._apply(ek, old, after, live, new)
        return ORMap._delta({ek: dstore} if dstore else {}, dctx)

    def _nested(self, fn: Callable[[Any], object]) -> Callable[[Any], object]:
        """``fn`` for the view of a map nested in this one, which it tells its depth (a view
        has no link to its parent); ValueError past :data:`MAX_NESTING`."""
        depth = self._depth + 1
        if depth > MAX_NESTING:
            raise ValueError(f"maps nest at most {MAX_NESTING} deep (this one would be deeper)")

        def at_depth(view: ORMap) -> object:
            view._depth = depth
            return fn(view)

        return at_depth

    def _apply(
        self, ek: EntryKey, old: list[Dot], after: Any, live: list[Dot], new: list[Dot]
    ) -> None:
        """Replace the store at ``ek`` (whose dots were ``old``) by ``after``; add ``new``."""
        index = self._index
        if index is not None:
            index_pop(index, old)
            index_dots(index, live, ek)
        if after:
            self._entries[ek] = after
        else:
            self._entries.pop(ek, None)
        ctx = self._ctx
        vv = ctx.vv
        for d in new:
            r, c = d
            if not ctx.cloud and c == vv.get(r, 0) + 1:
                vv[r] = c  # the common case of ctx.add, inlined
            else:
                ctx.add(d)

    def remove(self, key: object, kind: str | None = None) -> ORMap:
        """Observed-remove of ``key`` (every kind it holds; ``kind``: that kind only, how a
        kind clash is ended); returns the delta."""
        k = freeze(key, "key")
        entries = self._entries
        dots: list[Dot] = []
        if kind is not None:
            embedded_kind(kind)  # raises ValueError for an unknown kind
        for name, impl in _KINDS.items():
            store = entries.get((k, name))
            if store is not None and (kind is None or name == kind):
                dots += impl.dots(store)
        delta = ORMap._delta({}, context_of(dots))
        self.merge(delta)
        return delta

    def clear(self) -> ORMap:
        """Observed remove of every key (every kind) seen here: an update concurrent with it
        survives the join with only its own effect, as with :meth:`remove`. Returns the
        delta, the empty map under this map's whole context (every dot seen here)."""
        delta = ORMap._delta({}, self._ctx.copy())
        self._entries = {}
        self._index = {}
        return delta

    def max_counter(self, replica: str) -> int:
        """The largest dot counter of ``replica`` this state has seen (0 if none): its
        context's, which covers every dot of every value it holds (nested maps and the
        totals of embedded counters too: each rides on a dot). Only ``replica`` raises it,
        by its own events: a receiver refuses a state that raises its own
        (``sync.replica.inbound``)."""
        return self._ctx.max_counter(replica)

    def is_live(self) -> bool:
        """Holds a key (emptied, cleared or never updated: not live)."""
        return bool(self._entries)

    # -- join ------------------------------------------------------------------------------
    def merge(self, other: ORMap) -> None:
        """Join in place; O(size of other) when other's context is small (a delta)."""
        if type(other) is not ORMap and not isinstance(other, ORMap):
            raise TypeError(f"cannot merge {type(other).__name__} into ORMap")
        octx = other._ctx
        mine = self._entries
        theirs = other._entries
        if len(theirs) == 1:
            # The delta of an update that wrote one new dot to an entry its origin did not
            # hold: ``({ek: store}, {dot})``, the store holding just that dot (a store holds
            # only dots of its context). If ``ek`` is not held here, the join adds the entry
            # if the dot is new here and changes nothing otherwise: O(1), inlined (the delta
            # merges of crdt_bench.py's ORMap). (Merging a map into itself may come here too:
            # its dot is seen already.)
            dot = sole_dot(octx)
            if dot is not None:
                ((ek, store),) = theirs.items()
                if ek not in mine and self._join_new(ek, store, dot):
                    return
        if other is self:
            return
        if is_small(octx, len(mine)):
            self._merge_small(other)
        else:
            self._index = None
            self._entries = _join_map(mine, self._ctx, theirs, octx)
            self._ctx.merge(octx)

    def _merge_small(self, other: ORMap) -> None:
        """The join when ``other``'s context is small: O(|other|) with the reverse index.

        The entries joined are ``other``'s and ours whose dots ``other``'s context holds
        (found through the index); every other entry of ours is left as it is.
        """
        mine = self._entries
        index = self._index
        if index is None:
            index = self._index = index_of((_KINDS[ek[1]].dots(s), ek) for ek, s in mine.items())
        octx = other._ctx
        theirs = other._entries
        # Ours only, losing dots the other side has seen (and removed): found before any
        # entry changes, through the index, looking up only the other context's dots.
        extra = {ek for _, ek in index_items(index, octx) if ek not in theirs}
        kinds = _KINDS
        ctx = self._ctx
        for ek, s2 in theirs.items():
            s1 = mine.get(ek)
            if s1 is None:
                # New here (a delta group's new keys, e2e_bench.py): _join_entry, inlined.
                impl = kinds[ek[1]]
                s = impl.discard(s2, ctx)
                if s:
                    mine[ek] = s
                    index_dots(index, impl.dots(s), ek)
                continue
            self._join_entry(ek, s1, s2, octx, index)
        for ek in extra:
            self._join_entry(ek, mine[ek], None, octx, index)
        ctx.merge(octx)

    def _join_entry(
        self, ek: EntryKey, s1: Any, s2: Any, octx: CausalContext, index: DotIndex[EntryKey]
    ) -> None:
        """Join the other side's store ``s2`` at ``ek`` (its context ``octx``) into ours,
        ``s1`` (None: absent on that side), keeping ``index`` (ours) up to date."""
        impl = _KINDS[ek[1]]
        if s1 is None:
            s = impl.discard(s2, self._ctx)
        elif s2 is None:
            s = impl.discard(s1, octx)
        else:
            s = impl.join(s1, self._ctx, s2, octx)
        if s is s1:
            return
        mine = self._entries
        if s1 is not None:
            index_pop(index, impl.dots(s1))
        if s:
            mine[ek] = s
            index_dots(index, impl.dots(s), ek)
        else:
            mine.pop(ek, None)

    def split(self, max_bytes: int) -> list[ORMap]:
        """This map as deltas of at most ``max_bytes`` each when encoded (UTF-8), whose join
        is the map: ``[copy]`` if it fits; otherwise pieces of entries under the context of
        their own dots (an entry too big for one piece is cut by its kind's ``split``, a
        nested map by its entries, a set by its elements...), and pieces of the removed
        entries' dots (no entry), so that any of them, in any order, is a valid delta that
        removes nothing the map holds (``crdt/_split.py``). A single value too big alone
        is a piece over the budget."""
        budget = check_budget(max_bytes)
        entries = self._entries
        texts = {ek: utf8_len(entry_json(ek, st)) + 1 for ek, st in entries.items()}
        frame = utf8_len(causal_state_json("ormap", "", self._ctx.to_json()))
        if frame + sum(texts.values()) - (1 if texts else 0) <= budget:
            return [self.copy()]
        room = max(1, budget - CAUSAL_OVERHEAD)
        out = [
            ORMap._delta(store, context_of(dots))
            for store, dots in pack_map(map_units(entries, room, texts), room)
        ]
        out += [ORMap._delta({}, c) for c in removed_contexts(self._ctx, _map_dots(entries), room)]
        return out or [self.copy()]  # a bottom: one piece

    def copy(self) -> ORMap:
        # Stores are immutable once stored: a shallow copy of the dicts is a full copy.
        c = ORMap._delta(self._entries.copy(), self._ctx.copy())
        c._index = None if self._index is None else index_copy(self._index)
        return c

    # -- codec -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "ormap",
            "v": FORMAT_VERSION,
            "entries": encode_map(self._entries),
            "ctx": self._ctx.to_dict(),
        }

    def to_json(self) -> str:
        """The JSON text of ``to_dict()``: ``json.dumps(self.to_dict(), ensure_ascii=False,
        separators=(",", ":"), allow_nan=False)``, byte for byte.

        Written from string fragments joined once, without building the dict: strings are
        never tracked by the cyclic collector, so encoding a big map allocates no tracked
        object per entry (nested values included), and cannot push a young collection (or
        a full one) meanwhile.
        """
        if len(self._entries) <= 1:
            return causal_state_json("ormap", map_json(self._entries), self._ctx.to_json())
        parts = map_json_parts(self._entries)
        return causal_state_json_of_parts("ormap", parts, self._ctx.to_json())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ORMap:
        entries, ctx = decode_causal(d, cls.kind, _FIELDS)
        if len(entries) == 1:
            # A delta of one entry (every map delta received, e2e_bench.py): decode_map's
            # loop, inlined for its common case; anything else goes through it.
            entry = entries[0]
            if type(entry) is list and len(entry) == 3:
                k, kind, body = entry
                impl = _KINDS.get(kind) if type(kind) is str else None
                if (
                    impl is not None
                    and type(k) is str
                    and k.isascii()
                    and type(body) is list
                    and body
                ):
                    store = impl.decode(body, ctx, "entries[0][2]", set())
                    return cls._delta({(k, kind): store}, ctx)
        return cls._delta(decode_map(entries, ctx, "entries", set()), ctx)

    def merge_dict(self, d: object, skip: str) -> bool:
        """Join in place the delta ``d`` encodes if it is an update that wrote one new dot
        (of a replica other than ``skip``) to a key not held here, without decoding it into
        a map first: True. False, nothing changed, for anything else, valid or not
        (``from_dict`` and ``merge`` it then). See :func:`crdt.merge_dict`."""
        one = one_dot_delta(d, "ormap", 3)
        if one is None:
            return False
        (k, kind, body), dot = one
        if dot[0] == skip or type(k) is not str or not k.isascii() or type(body) is not list:
            return False
        impl = _KINDS.get(kind) if type(kind) is str else None
        ek = (k, kind)
        if impl is None or not body or ek in self._entries:
            return False
        one_ctx = context_of_dot(dot)
        try:
            store = impl.decode(body, one_ctx, "entries[0][2]", set())
        except (TypeError, ValueError):  # DecodeError, or a registered kind's own error
            return False  # (from_dict says why)
        return self._join_new(ek, store, dot)

    def _join_new(self, ek: EntryKey, store: Any, dot: Dot) -> bool:
        """Join, in place, the delta ``({ek: store}, {dot})`` (an update that wrote one new
        dot to ``ek``, which is not held here: the store holds just that dot) when that is
        O(1): True. It adds the entry if the dot is new here; if the dot is seen already (and
        removed since), nothing changes, unless another entry holds it (its origin used it
        twice: the join drops it there), which only the reverse index tells: False then, and
        without an index, for the general join."""
        ctx = self._ctx
        vv, cloud = ctx.vv, ctx.cloud
        r, c = dot
        seen = vv.get(r, 0)
        if c <= seen or (cloud and dot in cloud):
            index = self._index
            return index is not None and c not in index.get(r, ())
        self._entries[ek] = store  # stores are immutable: the delta's is shared
        index = self._index
        if index is not None:
            index_dots(index, (dot,), ek)
        if c == seen + 1 and not cloud:
            vv[r] = c  # the common case of ctx.add, inlined
        else:
            ctx.add(dot)
        return True


class ORMapKind(ViewedKind):
    """The embedded ``ormap`` (:mod:`crdt.embedded`): a nested map's store under the outer
    map's context; the view is an ORMap over a copy of both."""

    kind = "ormap"

    def value(self, store: MapStore) -> dict[Any, Any]:
        return _map_value(store)

    def dots(self, store: MapStore) -> list[Dot]:
        return _map_dots(store)

    def join(
        self, s1: MapStore, ctx1: CausalContext, s2: MapStore, ctx2: CausalContext
    ) -> MapStore:
        return _join_map(s1, ctx1, s2, ctx2)

    def discard(self, store: MapStore, ctx: CausalContext) -> MapStore:
        return _discard_map(store, ctx)

    def view(self, store: MapStore | None, ctx: CausalContext) -> ORMap:
        return ORMap._delta(dict(store) if store else {}, ctx)

    def store_of(self, view: ORMap) -> MapStore:
        return view._store_copy()

    def encode(self, store: MapStore) -> list[Any]:
        return encode_map(store)

    def to_json(self, store: MapStore) -> str:
        return f"[{map_json(store)}]"

    def decode(self, body: list[Any], ctx: CausalContext, path: str, seen: set[Dot]) -> MapStore:
        return decode_map(body, ctx, path, seen)

    def split(self, store: MapStore, max_bytes: int) -> list[MapStore]:
        return [st for st, _ in pack_map(map_units(store, max_bytes), max_bytes)]


ORMAP = ORMapKind()

# The kinds an ORMap embeds out of the box, in the order ``update``'s error lists them.
for _impl in (GCOUNTER, PNCOUNTER, LWW, MVREGISTER, ORSET, ORMAP):
    register_embedded(_impl)


def _a(kind: str | None) -> str:
    """``"an orset"``, ``"a gcounter"``: a kind as a sentence names it."""
    return f"{'an' if (kind or '')[:1] in 'aeiou' else 'a'} {kind}"
