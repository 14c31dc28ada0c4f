"""ORSet: an add-wins observed-remove set without tombstones.

State: a ``DotMap[element -> DotSet]`` and a causal context (Almeida, Shoker, Baquero,
"Delta State Replicated Data Types", 2018, section 7.2, "add-wins OR-set"):

- ``add(r, e)``: a fresh dot ``d`` of ``r`` now tags ``e``, replacing the dots ``e`` had;
  delta ``({e: {d}}, {d} | old dots of e)``.
- ``remove(e)``: drop ``e``'s dots; delta ``({}, old dots of e)``.
- join: the dot-set join per element (``dotstores``). An element is in the set iff it has a
  live dot, so an add concurrent with a remove wins (the remove never saw the add's dot).

The store is specialised for speed as ``dict[key, Dots]`` plus, built lazily, a reverse
index ``dot -> key``. ``Dots`` is an element's live dots sorted and *flattened* into one
immutable tuple ``(r1, c1, r2, c2, ...)``; with one dot (the common case) it is the dot
itself. Everything these dicts hold is a str, an int or a tuple of those, never a tuple of
tuples: CPython untracks a tuple only during a collection of the generation it is in, and
only if its items are untracked already, so each level of nesting costs one more collection
of an older generation. One level is untracked by the first (youngest) collection that sees
it, and a big set costs the cyclic collector a handful of objects, not a few per element
(see ``crdt/dot.py``). The tuples are never mutated, so a delta and the state may share
them. A merge costs O(size of
the other side) when the other side's context is small (a delta): the dots it covers are
looked up in the index instead of scanning every element. Large contexts take a full pass,
which drops the index (it is rebuilt on the next small merge).

Elements are hashable JSON values: ``str``, ``int``, ``float``, ``bool``, ``None``, or
arrays of these (lists or tuples); ``value`` returns arrays as tuples. JSON objects cannot be
elements. ``True``, ``1`` and ``1.0`` are three distinct elements internally (distinct JSON),
but a Python frozenset, and so ``value``, cannot hold more than one of them.

Encoding: ``{"type": "orset", "v": 1, "entries": [[element, [[r, n], ...]], ...],
"ctx": {...}}``; entries sorted by the element's canonical JSON text, dots sorted.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from operator import itemgetter
from typing import Any, ClassVar, cast

from crdt._codec import FORMAT_VERSION, check_header, get_list
from crdt._json import (
    REPLICA_TEXTS,
    Key,
    causal_state_json,
    freeze,
    key_json_text,
    key_text,
    key_to_json,
    plain_key,
    plain_strings,
    str_text,
    thaw,
)
from crdt.causal_context import CausalContext, _dot_or_none, context_of, small_context
from crdt.dot import Dot, check_replica, dot_from_json
from crdt.errors import DecodeError

__all__ = ["ORSet"]

_FIELDS = frozenset({"entries", "ctx"})  # the body fields of the encoding

# A merge whose other context holds at most this many dots per element of ours looks the
# covered dots up in the reverse index; anything bigger takes one full pass (ORMap's too:
# it imports them, and its tests patch its own copy).
_SMALL_CONTEXT_RATIO = 0.25
_SMALL_CONTEXT_MIN = 8


# An element's live dots, sorted and flattened: ``(r1, c1, r2, c2, ...)``; one dot is stored
# as the dot itself (see the module docstring for why not a tuple of dots).
Dots = tuple[Any, ...]
_new = object.__new__  # an instance without __init__, for the hot paths' fresh deltas


def dot_pairs(dots: Dots) -> list[Dot]:
    """The dots of a flat ``Dots``, in order."""
    if len(dots) == 2:
        return [dots]  # type: ignore[list-item]
    return list(zip(dots[::2], dots[1::2], strict=True))  # type: ignore[arg-type]


def flat_dots(dots: list[Dot]) -> Dots:
    """Sorted dots (plain tuples) as one flat ``Dots``; a single dot is kept as it is."""
    if len(dots) == 1:
        return dots[0]
    return tuple(chain.from_iterable(dots))


def unseen_dots(dots: Dots, vv: dict[str, int], cloud: set[Dot]) -> Dots:
    """The flat ``dots`` without those the context ``(vv, cloud)`` holds: ``dots`` itself if
    it holds none of them, ``()`` if it holds them all."""
    if len(dots) == 2:  # one dot
        return dots if dots[1] > vv.get(dots[0], 0) and dots not in cloud else ()
    keep = [d for d in dot_pairs(dots) if d[1] > vv.get(d[0], 0) and d not in cloud]
    if 2 * len(keep) == len(dots):
        return dots
    return flat_dots(keep) if keep else ()


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

    # -- reading ---------------------------------------------------------------------------
    @property
    def value(self) -> frozenset[Any]:
        return frozenset(thaw(k) for k in self._entries)

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
        """Remove every element seen here; returns the delta."""
        delta = ORSet._delta(
            {}, context_of(d for dots in self._entries.values() for d in dot_pairs(dots))
        )
        self._entries = {}
        self._index = {}
        return delta

    # -- join ------------------------------------------------------------------------------
    def merge(self, other: ORSet) -> None:
        """Join ``other`` into this set, in place (see the module docstring for the cost)."""
        if type(other) is not ORSet and not isinstance(other, ORSet):
            raise TypeError(f"cannot merge {type(other).__name__} into ORSet")
        theirs = other._entries
        octx = other._ctx
        if len(theirs) == 1:
            # The delta of add(e) for an e its origin did not hold: ({e: d}, {d}), its
            # context being the cloud {d} (or the vector {r: 1}, for d = (r, 1)). O(1).
            # (Merging a set into itself takes this path too: its dot is seen already.)
            dot: Dot
            for key, dot in theirs.items():  # type: ignore[assignment]
                ocloud = octx.cloud
                if len(dot) == 2 and (
                    (len(ocloud) == 1 and not octx.vv and dot in ocloud)
                    or (not ocloud and dot[1] == 1 and octx.vv == {dot[0]: 1})
                ):
                    ctx = self._ctx
                    vv = ctx.vv
                    replica, counter = dot
                    seen = vv.get(replica, 0)
                    cloud = ctx.cloud
                    if counter <= seen or (cloud and dot in cloud):
                        return  # seen already: the join changes nothing
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
                    return
        if other is self:
            return
        ovv = octx.vv
        size = len(octx.cloud) + (sum(ovv.values()) if ovv else 0)  # octx.size(), inlined
        if size <= _SMALL_CONTEXT_MIN or size <= len(self._entries) * _SMALL_CONTEXT_RATIO:
            self._merge_small(other)
        else:
            self._merge_full(other)

    def _merge_small(self, other: ORSet) -> None:
        """The join when ``other``'s context is small: O(|other|) with the reverse index."""
        index = self._index
        if index is None:
            index = self._index = _index_of(self._entries)
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
        for d in ocloud:
            owner = index.get(d)
            if owner is not None and owner not in theirs:
                self._drop_dot(owner, d)
        for r, n in ovv.items():
            for c in range(1, n + 1):
                owner = index.get((r, c))  # type: ignore[call-overload]
                if owner is not None and owner not in theirs:
                    self._drop_dot(owner, Dot(r, c))
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

    def _merge_full(self, other: ORSet) -> None:
        """The join in one pass over both sides; drops the reverse index."""
        self._index = None
        mine = self._entries
        theirs = other._entries
        ctx = self._ctx
        vv, cloud = ctx.vv, ctx.cloud
        octx = other._ctx
        ovv, ocloud = octx.vv, octx.cloud
        for key, d2 in theirs.items():
            d1 = mine.get(key)
            if d1 is None:
                if len(d2) == 2:  # one dot
                    if d2[1] > vv.get(d2[0], 0) and d2 not in cloud:
                        mine[key] = d2
                    continue
                new = unseen_dots(d2, vv, cloud)
                if new:
                    mine[key] = new
                continue
            new = join_dots(d1, d2, vv, cloud, ovv, ocloud)
            if new != d1:
                if new:
                    mine[key] = new
                else:
                    del mine[key]
        if ovv or ocloud:
            for key in [k for k in mine if k not in theirs]:
                dots = mine[key]
                if len(dots) == 2:  # one dot
                    if dots[1] <= ovv.get(dots[0], 0) or dots in ocloud:
                        del mine[key]
                    continue
                keep = unseen_dots(dots, ovv, ocloud)
                if keep is not dots:
                    if keep:
                        mine[key] = keep
                    else:
                        del mine[key]
        ctx.merge(octx)

    # -- misc ------------------------------------------------------------------------------
    def copy(self) -> ORSet:
        # The dot tuples are immutable: a shallow copy of the dicts is a full copy.
        c = ORSet._delta(self._entries.copy(), self._ctx.copy())
        c._index = None if self._index is None else self._index.copy()
        return c

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
        return causal_state_json(self, "orset", set_entries_json(self._entries))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ORSet:
        body = check_header(d, cls.kind, _FIELDS)
        entries = body.get("entries")
        if type(entries) is not list:
            entries = get_list(body, "entries", "entries")  # raises, naming what is wrong
        raw_ctx = body.get("ctx")
        if raw_ctx is None and "ctx" not in body:
            raise DecodeError("ctx", "missing")
        # CausalContext.from_dict, inlined (a delta's context: one call less per decode)
        ctx = small_context(raw_ctx)
        if ctx is None:
            ctx = CausalContext._from_dict_slowly(raw_ctx, "ctx")
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
                if (type(el) is str or type(el) is int) and type(raw) is list and len(raw) == 1:
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
        seen: set[Dot] = set()
        contains = ctx.contains
        for i, entry in enumerate(entries):
            # Error paths are formatted only when something is wrong (the hot loop of every
            # delta received).
            key = _decode_element(entry, i)
            if key in out:
                raise DecodeError(f"entries[{i}][0]", "duplicate element")
            raw = entry[1]
            if type(raw) is not list or not raw:
                raise DecodeError(f"entries[{i}][1]", "expected a non-empty array of dots")
            dots: list[Dot] = []
            for j, x in enumerate(raw):
                dot = _dot_or_none(x)
                if dot is None:
                    dot = dot_from_json(x, f"entries[{i}][1][{j}]")
                if dot in seen:
                    raise DecodeError(f"entries[{i}][1][{j}]", "dot used twice")
                if not contains(dot):
                    raise DecodeError(f"entries[{i}][1][{j}]", "dot not covered by ctx")
                seen.add(dot)
                dots.append(dot)
            if len(dots) > 1:
                dots.sort()
            out[key] = flat_dots(dots)
        return s


first_item = itemgetter(0)  # the sort key of (text or key, value) pairs, called from C


def sorted_keys(keys: list[Key]) -> list[Key]:
    """``keys`` sorted by their canonical JSON text (the order of canonical encodings).

    Plain string keys (the common case) are sorted without computing a text per key (see
    :func:`crdt._json.plain_strings`).
    """
    how = plain_strings(keys)
    if how == 2:
        return sorted(keys)  # type: ignore[type-var]
    if how == 1:
        quoted = [k + '"' for k in cast("list[str]", keys)]
        quoted.sort()
        return [q[:-1] for q in quoted]
    items = [(key_text(k), k) for k in keys]
    items.sort(key=first_item)
    return [k for _, k in items]


def encode_set_entries(entries: dict[Key, Dots]) -> list[list[Any]]:
    """The ``entries`` of the encoding: ``[[element, [[r, n], ...]], ...]`` sorted by text."""
    if len(entries) == 1:  # a delta: nothing to sort
        for k, dots in entries.items():
            body = [list(dots)] if len(dots) == 2 else [list(d) for d in dot_pairs(dots)]
            return [[k if type(k) is str or type(k) is int else key_to_json(k), body]]
    return [
        [
            k if type(k) is str or type(k) is int else key_to_json(k),
            [list(dots)] if len(dots) == 2 else [list(d) for d in dot_pairs(dots)],
        ]
        for k in sorted_keys(list(entries))
        for dots in (entries[k],)
    ]


def set_entries_json(entries: dict[Key, Dots]) -> str:
    """The text of ``encode_set_entries(entries)`` inside its brackets, from string fragments.

    No tuple, list or dict is made per element (only the one list of sorted keys and the one
    list of fragments), so nothing here gives the cyclic collector work per element.
    """
    rj = REPLICA_TEXTS
    if len(entries) <= 1:  # a delta (or empty): nothing to sort
        for k, dots in entries.items():
            text = str_text(k) if type(k) is str else key_json_text(k)
            if len(dots) == 2:
                return f"[{text},[[{rj[dots[0]]},{dots[1]}]]]"
            return f"[{text},[{_dots_json(dots)}]]"
        return ""
    how = plain_strings(entries)
    out: list[str] = []
    append = out.append
    if how == 1:
        # '"' + k + '"' sorts as k + '"' does (see plain_strings); the sort key is the text
        # without its opening quote, so the text is one concatenation away.
        quoted = [k + '"' for k in cast("dict[str, Dots]", entries)]
        quoted.sort()
        for q in quoted:
            dots = entries[q[:-1]]
            if len(dots) == 2:
                append(f'["{q},[[{rj[dots[0]]},{dots[1]}]]]')
            else:
                append(f'["{q},[{_dots_json(dots)}]]')
        return ",".join(out)
    if how == 2:
        for k in sorted(cast("dict[str, Dots]", entries)):
            dots = entries[k]
            if len(dots) == 2:
                append(f'["{k}",[[{rj[dots[0]]},{dots[1]}]]]')
            else:
                append(f'["{k}",[{_dots_json(dots)}]]')
        return ",".join(out)
    for k in sorted(entries, key=key_text):
        append(f"[{key_json_text(k)},[{_dots_json(entries[k])}]]")
    return ",".join(out)


def _dots_json(dots: Dots) -> str:
    """The text of a flat ``Dots`` as ``[r, n], ...`` (inside the brackets of its list)."""
    rj = REPLICA_TEXTS
    if len(dots) == 2:
        return f"[{rj[dots[0]]},{dots[1]}]"
    return ",".join([f"[{rj[dots[i]]},{dots[i + 1]}]" for i in range(0, len(dots), 2)])


def join_dots(
    d1: Dots, d2: Dots, vv: dict[str, int], cloud: set[Dot], ovv: dict[str, int], ocloud: set[Dot]
) -> Dots:
    """The dot-set join of one element's dots ``d1`` (ours) and ``d2`` (theirs), flat and
    sorted (``d1`` itself if unchanged; empty if no dot is left)."""
    if d1 == d2:
        return d1
    p1, p2 = dot_pairs(d1), dot_pairs(d2)
    new = [d for d in p1 if d in p2 or (d[1] > ovv.get(d[0], 0) and d not in ocloud)]
    for d in p2:
        if d not in p1 and d[1] > vv.get(d[0], 0) and d not in cloud:
            new.append(d)
    if not new:
        return ()
    if len(new) > 1:
        new.sort()
    if new == p1:
        return d1
    return flat_dots(new)


def _index_of(entries: dict[Key, Dots]) -> dict[Dot, Key]:
    """The reverse index ``dot -> key`` of ``entries``."""
    index: dict[Dot, Key] = {}
    for k, dots in entries.items():
        if len(dots) == 2:
            index[dots] = k  # type: ignore[index]
        else:
            for d in dot_pairs(dots):
                index[d] = k
    return index


def _decode_element(entry: object, i: int) -> Key:
    """The key of ``entries[i]`` (``[element, dots]``); DecodeError naming the path."""
    if type(entry) is not list or len(entry) != 2:
        raise DecodeError(f"entries[{i}]", "expected [element, [dot, ...]]")
    el = entry[0]
    if type(el) is str or type(el) is int:
        return el
    try:
        return freeze(el)
    except TypeError as exc:
        raise DecodeError(f"entries[{i}][0]", str(exc)) from exc
