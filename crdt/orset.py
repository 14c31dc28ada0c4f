"""ORSet: an add-wins observed-remove set without tombstones.

State: a ``DotMap[element -> DotSet]`` and a causal context (Almeida, Shoker, Baquero,
"Delta State Replicated Data Types", 2018, section 7.2, "add-wins OR-set"):

- ``add(r, e)``: a fresh dot ``d`` of ``r`` now tags ``e``, replacing the dots ``e`` had;
  delta ``({e: {d}}, {d} | old dots of e)``.
- ``remove(e)``: drop ``e``'s dots; delta ``({}, old dots of e)``.
- ``clear()``: drop every element; delta ``({}, the whole context)`` (every dot seen here,
  so an add this replica has not seen survives). ``is_live()``: the set holds an element.
- join: the dot-set join per element (``dotstores``). An element is in the set iff it has a
  live dot, so an add concurrent with a remove wins (the remove never saw the add's dot).

The store (``crdt/_setstore.py``, shared with the set embedded in an ORMap) is a ``dict``
from element to its live dots, sorted and flattened into one immutable tuple ``(r1, c1, r2,
c2, ...)`` (the dot itself when there is one, the common case), so that a big set costs the
cyclic garbage collector a handful of objects, not a few per element (``crdt/_flat.py``
says why). Built lazily beside it: a reverse index ``dot -> element``. A merge costs O(size
of the other side) when the other side's context is small (a delta): the dots it covers are
looked up in the index instead of scanning every element. Large contexts take a full pass,
which drops the index (it is rebuilt on the next small merge).

Elements are hashable JSON values: ``str``, ``int``, ``float``, ``bool``, ``None``, or
arrays of these (lists or tuples); ``value`` returns arrays as tuples. JSON objects cannot be
elements. ``True``, ``1`` and ``1.0`` are three distinct elements internally (distinct JSON),
but a Python frozenset, and so ``value``, cannot hold more than one of them.

Encoding: ``{"type": "orset", "v": 1, "entries": [[element, [[r, n], ...]], ...],
"ctx": {...}}``; entries sorted by the element's canonical JSON text, dots sorted.

Embedded in an ORMap (kind ``orset``, :class:`ORSetKind`): the same store under the map's
context; ``update``'s ``fn`` gets an ``ORSet`` over a copy of both, and the body of the map
entry is encoded as ``entries`` is here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from crdt._codec import FORMAT_VERSION
from crdt._flat import Dots, dot_pairs, flat_dots, join_dots, unseen_dots
from crdt._json import Key, causal_state_json, freeze, key_text, plain_key, thaw
from crdt._setstore import (
    SetStore,
    decode_set_entries,
    discard_set,
    encode_set_entries,
    index_of,
    join_set_into,
    set_dots,
    set_entries_json,
    set_value,
)
from crdt._split import (
    CAUSAL_OVERHEAD,
    check_budget,
    dots_bytes,
    pack,
    removed_contexts,
    utf8_len,
)
from crdt.causal_context import (
    CausalContext,
    context_of,
    decode_causal,
    indexed_dots,
    is_small,
    one_dot_delta,
    sole_dot,
)
from crdt.dot import MAX_INT, Dot, check_replica, next_counter
from crdt.embedded import ViewedKind

__all__ = ["ORSet"]

_FIELDS = frozenset({"entries", "ctx"})  # the body fields of the encoding
_new = object.__new__  # an instance without __init__, for the hot paths' fresh deltas


class ORSet:
    """An add-wins observed-remove set.

    >>> a, b = ORSet(), ORSet()
    >>> d1 = a.add("A", "milk")
    >>> b.merge(d1)
    >>> d2 = b.remove("milk")      # B removes the milk it has seen...
    >>> d3 = a.add("A", "milk")    # ...while A adds it again concurrently: add wins
    >>> a.merge(d2); b.merge(d3)
    >>> a.value == b.value == frozenset({"milk"})
    True
    >>> sorted(ORSet.from_dict(a.to_dict()).value)
    ['milk']
    """

    kind: ClassVar[str] = "orset"
    __slots__ = ("_ctx", "_entries", "_index")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self._entries: dict[Key, Dots] = {}
        self._ctx = CausalContext()
        self._index: dict[Dot, Key] | None = {}

    @classmethod
    def _delta(cls, entries: dict[Key, Dots], ctx: CausalContext) -> ORSet:
        """A state made of ``entries`` and ``ctx`` (taken, not copied), without an index."""
        d: ORSet = cls.__new__(cls)
        d._entries = entries
        d._ctx = ctx
        d._index = None
        return d

    def _store_copy(self) -> SetStore:
        """The entries, in a dict of their own (the store of an embedded set's view)."""
        return dict(self._entries)

    # -- reading ---------------------------------------------------------------------------
    @property
    def value(self) -> frozenset[Any]:
        return set_value(self._entries)

    @property
    def context(self) -> CausalContext:
        """The causal context (read-only: do not mutate)."""
        return self._ctx

    def __contains__(self, element: object) -> bool:
        try:
            key = freeze(element)
        except TypeError:
            return False
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Any]:
        return (thaw(k) for k in self._entries)

    def dots_of(self, element: object) -> frozenset[Dot]:
        """The live dots tagging ``element`` (empty if absent)."""
        return frozenset(dot_pairs(self._entries.get(freeze(element), ())))

    def is_bottom(self) -> bool:
        return not self._entries and self._ctx.is_bottom()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ORSet):
            return NotImplemented
        return self._entries == other._entries and self._ctx == other._ctx

    def __repr__(self) -> str:
        shown = sorted(self._entries, key=key_text)[:10]
        more = ", ..." if len(self._entries) > 10 else ""
        return f"ORSet({{{', '.join(key_text(k) for k in shown)}{more}}})"

    # -- mutators --------------------------------------------------------------------------
    def add(self, replica: str, element: object) -> ORSet:
        """Add ``element`` with a fresh dot of ``replica``; returns the delta."""
        if type(replica) is not str or not replica:
            check_replica(replica)  # raises
        key: Key = element if plain_key(element) else freeze(element)  # type: ignore[assignment]
        ctx = self._ctx
        vv = ctx.vv
        if ctx.cloud:
            dot = ctx.next_dot(replica)
            ctx.add(dot)
        else:  # the common case of next_dot and add, inlined
            n = vv.get(replica, 0) + 1
            if n > MAX_INT:
                n = next_counter(replica, n - 1)  # raises
            dot = (replica, n)  # type: ignore[assignment]
            vv[replica] = n
        entries = self._entries
        old = entries.get(key)
        entries[key] = dot  # one dot: the flat Dots is the dot itself
        index = self._index
        if index is not None:
            index[dot] = key
        delta: ORSet = _new(ORSet)
        delta._entries = {key: dot}
        delta._index = None
        if old is None:  # context_of_dot(dot), inlined
            dctx: CausalContext = _new(CausalContext)
            if dot[1] == 1:
                dctx.vv = {replica: 1}
                dctx.cloud = set()
            else:
                dctx.vv = {}
                dctx.cloud = {dot}
            delta._ctx = dctx
            return delta
        if len(old) == 2:  # old is one dot
            if index is not None:
                index.pop(old, None)  # type: ignore[call-overload]
            delta._ctx = context_of((dot, old))  # type: ignore[arg-type]
            return delta
        olds = dot_pairs(old)
        if index is not None:
            for d in olds:
                index.pop(d, None)
        delta._ctx = context_of((dot, *olds))
        return delta

    def remove(self, element: object) -> ORSet:
        """Remove ``element`` (the dots seen here); returns the delta (bottom if absent)."""
        key = freeze(element)
        old = self._entries.pop(key, None)
        if not old:
            return ORSet._delta({}, CausalContext())
        olds = dot_pairs(old)
        index = self._index
        if index is not None:
            for d in olds:
                index.pop(d, None)
        return ORSet._delta({}, context_of(olds))

    def clear(self) -> ORSet:
        """Remove every element seen here (an observed remove: an add concurrent with it
        survives the join); returns the delta, the empty set under this set's whole context
        (every dot seen here, compact however many elements the set held)."""
        delta = ORSet._delta({}, self._ctx.copy())
        self._entries = {}
        self._index = {}
        return delta

    def max_counter(self, replica: str) -> int:
        """The largest dot counter of ``replica`` this state has seen (0 if none): its
        context's, which covers every dot it holds. Only ``replica`` raises it, by its own
        events: a receiver refuses a state that raises its own (``sync.replica.inbound``)."""
        return self._ctx.max_counter(replica)

    def is_live(self) -> bool:
        """Holds an element (emptied, cleared or never added to: not live)."""
        return bool(self._entries)

    # -- join ------------------------------------------------------------------------------
    def merge(self, other: ORSet) -> None:
        """Join ``other`` into this set, in place (see the module docstring for the cost)."""
        if type(other) is not ORSet and not isinstance(other, ORSet):
            raise TypeError(f"cannot merge {type(other).__name__} into ORSet")
        theirs = other._entries
        octx = other._ctx
        if len(theirs) == 1:
            # The delta of add(e): ({e: d}, {d} | dots of e it replaced). When ``d`` is the
            # context's only dot (e was new at its origin), the join is O(1), inlined (the
            # delta merges of crdt_bench.py). (Merging a set into itself may come here too:
            # its dot is seen already.)
            dot = sole_dot(octx)
            if dot is not None:
                ((key, _),) = theirs.items()  # a store holds only dots of its context: d
                if self._join_one(key, dot):
                    return
        if other is self:
            return
        if is_small(octx, len(self._entries)):
            self._merge_small(other)
        else:
            self._index = None  # the full pass does not keep it
            join_set_into(self._entries, self._ctx, other._entries, octx)
            self._ctx.merge(octx)

    def _merge_small(self, other: ORSet) -> None:
        """The join when ``other``'s context is small: O(|other|) with the reverse index."""
        index = self._index
        if index is None:
            index = self._index = index_of(self._entries)
        mine = self._entries
        theirs = other._entries
        ctx = self._ctx
        vv, cloud = ctx.vv, ctx.cloud
        octx = other._ctx
        ovv, ocloud = octx.vv, octx.cloud
        for key, d2 in theirs.items():
            d1 = mine.get(key)
            if d1 is None:
                new = unseen_dots(d2, vv, cloud)
                if new:
                    mine[key] = new
                    for d in dot_pairs(new):
                        index[d] = key
                continue
            new = join_dots(d1, d2, vv, cloud, ovv, ocloud)
            if new == d1:
                continue
            live = dot_pairs(new) if new else []
            for d in dot_pairs(d1):
                if d not in live:
                    del index[d]
            for d in live:
                index[d] = key
            if new:
                mine[key] = new
            else:
                del mine[key]
        # Keys only on our side lose the dots the other side has seen (and removed): find
        # them through the index, looking up only the other context's dots.
        for d, owner in indexed_dots(index, octx):
            if owner not in theirs:
                self._drop_dot(owner, d)
        if not ovv and len(ocloud) == 1:
            for d in ocloud:
                ctx.add(d)
        else:
            ctx.merge(octx)

    def _drop_dot(self, key: Key, dot: Dot) -> None:
        keep = [d for d in dot_pairs(self._entries[key]) if d != dot]
        del self._index[dot]  # type: ignore[union-attr]
        if keep:
            self._entries[key] = flat_dots(keep)
        else:
            del self._entries[key]

    # -- misc ------------------------------------------------------------------------------
    def copy(self) -> ORSet:
        # The dot tuples are immutable: a shallow copy of the dicts is a full copy.
        c = ORSet._delta(self._entries.copy(), self._ctx.copy())
        c._index = None if self._index is None else self._index.copy()
        return c

    def split(self, max_bytes: int) -> list[ORSet]:
        """This set as deltas of at most ``max_bytes`` each when encoded (UTF-8), whose join
        is the set: ``[copy]`` if it fits; otherwise pieces of elements, each under the
        context of its own elements' dots, and pieces of the removed elements' dots (with
        no element), so that any of them, in any order, is a valid delta that removes
        nothing the set holds (``crdt/_split.py``). An element too big alone is a piece
        over the budget."""
        budget = check_budget(max_bytes)
        units = _element_units(self._entries)
        # The exact size of to_json(): the frame, the entries and their commas.
        frame = utf8_len(causal_state_json("orset", "", self._ctx.to_json()))
        if frame + sum(n for _, n, _ in units) - (1 if units else 0) <= budget:
            return [self.copy()]
        room = max(1, budget - CAUSAL_OVERHEAD)
        out = [
            ORSet._delta(dict(group), context_of([d for _, ds in group for d in dot_pairs(ds)]))
            for group in pack(((item, w) for item, _, w in units), room)
        ]
        live = set_dots(self._entries)
        out += [ORSet._delta({}, c) for c in removed_contexts(self._ctx, live, room)]
        return out or [self.copy()]  # a bottom: one piece

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "orset",
            "v": FORMAT_VERSION,
            "entries": encode_set_entries(self._entries),
            "ctx": self._ctx.to_dict(),
        }

    def to_json(self) -> str:
        """The JSON text of ``to_dict()``: ``json.dumps(self.to_dict(), ensure_ascii=False,
        separators=(",", ":"), allow_nan=False)``, byte for byte.

        Written from string fragments joined once, without building the dict: strings are
        never tracked by the cyclic collector, so encoding a big set allocates no tracked
        object per element, and cannot push a young collection (or a full one) meanwhile.
        """
        return causal_state_json("orset", set_entries_json(self._entries), self._ctx.to_json())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ORSet:
        entries, ctx = decode_causal(d, cls.kind, _FIELDS)
        out: dict[Key, Dots] = {}
        s: ORSet = _new(cls)
        s._entries = out
        s._ctx = ctx
        s._index = None
        if len(entries) == 1:  # a delta
            entry = entries[0]
            if type(entry) is list and len(entry) == 2:
                # The delta of an add, [[element, [[r, n]]]]: decoded inline.
                el, raw = entry
                if plain_key(el) and type(raw) is list and len(raw) == 1:
                    x = raw[0]
                    if type(x) is list and len(x) == 2:
                        r, c = x
                        if (
                            type(r) is str
                            and r
                            and type(c) is int
                            and c >= 1
                            and (c <= ctx.vv.get(r, 0) or (r, c) in ctx.cloud)
                        ):
                            out[el] = (r, c)
                            return s
        s._entries = decode_set_entries(entries, ctx, "entries", set())
        return s

    def merge_dict(self, d: object, skip: str) -> bool:
        """Join in place the delta ``d`` encodes if it is an add of one new dot (of a
        replica other than ``skip``) to an element not held here, without decoding it into
        a state first: True. False, nothing changed, for anything else, valid or not
        (``from_dict`` and ``merge`` it then). See :func:`crdt.merge_dict`."""
        one = one_dot_delta(d, "orset", 2)
        if one is None:
            return False
        (el, raw), dot = one
        r, c = dot
        if (
            r == skip
            or type(raw) is not list
            or len(raw) != 1
            or raw[0] != [r, c]
            or type(raw[0][1]) is not int
            or not plain_key(el)
        ):
            return False
        return el not in self._entries and self._join_one(el, dot)

    def _join_one(self, key: Key, dot: Dot) -> bool:
        """Join, in place, the delta ``({key: dot}, {dot})`` (an add of one new dot) when
        that is O(1): True. It adds the dot to ``key`` if the dot is new here; if the dot is
        seen already, nothing changes, unless another element holds it (its origin used it
        twice: the join drops it there), which only the reverse index tells: False then, and
        without an index, for the general join."""
        ctx = self._ctx
        vv, cloud = ctx.vv, ctx.cloud
        replica, counter = dot
        seen = vv.get(replica, 0)
        if counter <= seen or (cloud and dot in cloud):
            index = self._index
            return index is not None and index.get(dot, key) == key
        entries = self._entries
        cur = entries.get(key)
        entries[key] = dot if cur is None else flat_dots(sorted((*dot_pairs(cur), dot)))
        index = self._index
        if index is not None:
            index[dot] = key
        if counter == seen + 1 and not cloud:
            vv[replica] = counter  # the common case of ctx.add, inlined
        else:
            ctx.add(dot)
        return True


def _element_units(store: SetStore) -> list[tuple[tuple[Key, Dots], int, int]]:
    """Per element of ``store``, by its first dot (so that a piece's context is a run of
    dots where it can): ``((element, dots), its encoding's bytes and a comma, that plus its
    dots in a context)``."""
    out: list[tuple[tuple[Key, Dots], int, int]] = []
    for k, dots in sorted(store.items(), key=_first_dot):
        text = utf8_len(set_entries_json({k: dots})) + 1
        out.append(((k, dots), text, text + dots_bytes(dot_pairs(dots))))
    return out


def _first_dot(item: tuple[Key, Dots]) -> tuple[Any, Any]:
    dots = item[1]
    return dots[0], dots[1]


class ORSetKind(ViewedKind):
    """The embedded ``orset`` (:mod:`crdt.embedded`): an ORSet's store under the map's
    context; the view is an ORSet over a copy of the store and of the context."""

    kind = "orset"

    def value(self, store: SetStore) -> frozenset[Any]:
        return set_value(store)

    def dots(self, store: SetStore) -> list[Dot]:
        return set_dots(store)

    def join(
        self, s1: SetStore, ctx1: CausalContext, s2: SetStore, ctx2: CausalContext
    ) -> SetStore:
        out = dict(s1)
        return out if join_set_into(out, ctx1, s2, ctx2) else s1

    def discard(self, store: SetStore, ctx: CausalContext) -> SetStore:
        return discard_set(store, ctx)

    def view(self, store: SetStore | None, ctx: CausalContext) -> ORSet:
        return ORSet._delta(dict(store) if store else {}, ctx)

    def store_of(self, view: ORSet) -> SetStore:
        return view._store_copy()

    def encode(self, store: SetStore) -> list[Any]:
        return encode_set_entries(store)

    def to_json(self, store: SetStore) -> str:
        return f"[{set_entries_json(store)}]"

    def decode(self, body: list[Any], ctx: CausalContext, path: str, seen: set[Dot]) -> SetStore:
        return decode_set_entries(body, ctx, path, seen)

    def split(self, store: SetStore, max_bytes: int) -> list[SetStore]:
        units = _element_units(store)
        return [dict(group) for group in pack(((item, w) for item, _, w in units), max_bytes)]


ORSET = ORSetKind()
