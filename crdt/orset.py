"""ORSet: an add-wins observed-remove set without tombstones.

State: a ``DotMap[element -> DotSet]`` and a causal context (Almeida, Shoker, Baquero,
"Delta State Replicated Data Types", 2018, section 7.2, "add-wins OR-set"):

- ``add(r, e)``: a fresh dot ``d`` of ``r`` now tags ``e``, replacing the dots ``e`` had;
  delta ``({e: {d}}, {d} | old dots of e)``.
- ``remove(e)``: drop ``e``'s dots; delta ``({}, old dots of e)``.
- join: the dot-set join per element (``dotstores``). An element is in the set iff it has a
  live dot, so an add concurrent with a remove wins (the remove never saw the add's dot).

The store is specialised for speed as ``dict[key, set[Dot]]`` plus, built lazily, a reverse
index ``dot -> key``. A merge costs O(size of the other side) when the other side's context
is small (a delta): the dots it covers are looked up in the index instead of scanning every
element. Large contexts take a full pass, which drops the index (it is rebuilt on the next
small merge).

Elements are hashable JSON values: ``str``, ``int``, ``float``, ``bool``, ``None``, or
arrays of these (lists or tuples); ``value`` returns arrays as tuples. JSON objects cannot be
elements. ``True``, ``1`` and ``1.0`` are three distinct elements internally (distinct JSON),
but a Python frozenset, and so ``value``, cannot hold more than one of them.

Encoding: ``{"type": "orset", "v": 1, "entries": [[element, [[r, n], ...]], ...],
"ctx": {...}}``; entries sorted by the element's canonical JSON text, dots sorted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from crdt._codec import FORMAT_VERSION, check_header, get_list
from crdt._json import Key, freeze, key_text, key_to_json, thaw
from crdt.causal_context import CausalContext, _dot_or_none
from crdt.dot import Dot, check_replica, dot_from_json
from crdt.errors import DecodeError

__all__ = ["ORSet"]

# A merge whose other context holds at most this many dots per element of ours looks the
# covered dots up in the reverse index; anything bigger takes one full pass.
_SMALL_CONTEXT_RATIO = 0.25
_SMALL_CONTEXT_MIN = 8


def _text_of(k: Key) -> str:
    """``key_text(k)``, without ``json.dumps`` for the common plain ASCII string."""
    if type(k) is str and k.isascii() and k.isprintable() and '"' not in k and "\\" not in k:
        return '"' + k + '"'  # exactly what json.dumps gives for such a string
    return key_text(k)


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
        self._entries: dict[Key, set[Dot]] = {}
        self._ctx = CausalContext()
        self._index: dict[Dot, Key] | None = {}

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
        return frozenset(self._entries.get(freeze(element), ()))

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
        check_replica(replica)
        key = freeze(element)
        ctx = self._ctx
        dot = ctx.next_dot(replica)
        old = self._entries.get(key)
        delta = ORSet()
        delta._entries[key] = {dot}
        delta._index = None
        dctx = delta._ctx
        dctx.add(dot)
        index = self._index
        if old:
            for d in old:
                dctx.add(d)
                if index is not None:
                    index.pop(d, None)
        self._entries[key] = {dot}
        if index is not None:
            index[dot] = key
        ctx.add(dot)
        return delta

    def remove(self, element: object) -> ORSet:
        """Remove ``element`` (the dots seen here); returns the delta (bottom if absent)."""
        key = freeze(element)
        delta = ORSet()
        delta._index = None
        old = self._entries.pop(key, None)
        if old:
            index = self._index
            dctx = delta._ctx
            for d in old:
                dctx.add(d)
                if index is not None:
                    index.pop(d, None)
        return delta

    def clear(self) -> ORSet:
        """Remove every element seen here; returns the delta."""
        delta = ORSet()
        delta._index = None
        dctx = delta._ctx
        for dots in self._entries.values():
            for d in dots:
                dctx.add(d)
        self._entries = {}
        self._index = {}
        return delta

    # -- join ------------------------------------------------------------------------------
    def merge(self, other: ORSet) -> None:
        """Join ``other`` into this set, in place (see the module docstring for the cost)."""
        if type(other) is not ORSet and not isinstance(other, ORSet):
            raise TypeError(f"cannot merge {type(other).__name__} into ORSet")
        if other is self:
            return
        octx = other._ctx
        ovv = octx.vv
        ocloud = octx.cloud
        theirs = other._entries
        if not ovv and len(ocloud) == 1 and len(theirs) == 1:
            # The delta of add(e) for an e its origin did not hold: ({e: {d}}, {d}).
            ((key, d2),) = theirs.items()
            (dot,) = ocloud
            if len(d2) == 1 and dot in d2:
                ctx = self._ctx
                vv = ctx.vv
                replica, counter = dot
                seen = vv.get(replica, 0)
                cloud = ctx.cloud
                if counter <= seen or dot in cloud:
                    return  # seen already: the join changes nothing
                cur = self._entries.get(key)
                if cur is None:
                    self._entries[key] = {dot}
                else:
                    cur.add(dot)
                if self._index is not None:
                    self._index[dot] = key
                if counter == seen + 1 and not cloud:
                    vv[replica] = counter  # the common case of ctx.add, inlined
                else:
                    ctx.add(dot)
                return
        size = len(ocloud) + (sum(ovv.values()) if ovv else 0)
        if size <= _SMALL_CONTEXT_MIN or size <= len(self._entries) * _SMALL_CONTEXT_RATIO:
            self._merge_small(other)
        else:
            self._merge_full(other)

    def _merge_small(self, other: ORSet) -> None:
        """The join when ``other``'s context is small: O(|other|) with the reverse index."""
        index = self._index
        if index is None:
            index = self._index = {d: k for k, dots in self._entries.items() for d in dots}
        mine = self._entries
        theirs = other._entries
        ctx = self._ctx
        vv, cloud = ctx.vv, ctx.cloud
        octx = other._ctx
        ovv, ocloud = octx.vv, octx.cloud
        for key, d2 in theirs.items():
            d1 = mine.get(key)
            if d1 is None:
                new: set[Dot] = set()
                for d in d2:
                    if d[1] > vv.get(d[0], 0) and d not in cloud:
                        new.add(d)
                        index[d] = key
                if new:
                    mine[key] = new
                continue
            new = set()
            for d in d1:
                if d in d2 or (d[1] > ovv.get(d[0], 0) and d not in ocloud):
                    new.add(d)
            for d in d2:
                if d not in new and d[1] > vv.get(d[0], 0) and d not in cloud:
                    new.add(d)
            if new == d1:
                continue
            for d in d1:
                if d not in new:
                    del index[d]
            for d in new:
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
        dots = self._entries[key]
        dots.discard(dot)
        del self._index[dot]  # type: ignore[union-attr]
        if not dots:
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
                new = {d for d in d2 if d[1] > vv.get(d[0], 0) and d not in cloud}
                if new:
                    mine[key] = new
                continue
            new = {d for d in d1 if d in d2 or (d[1] > ovv.get(d[0], 0) and d not in ocloud)}
            for d in d2:
                if d not in new and d[1] > vv.get(d[0], 0) and d not in cloud:
                    new.add(d)
            if new != d1:
                if new:
                    mine[key] = new
                else:
                    del mine[key]
        if not octx.is_bottom():
            for key in [k for k in mine if k not in theirs]:
                dots = mine[key]
                keep = {d for d in dots if d[1] > ovv.get(d[0], 0) and d not in ocloud}
                if len(keep) != len(dots):
                    if keep:
                        mine[key] = keep
                    else:
                        del mine[key]
        ctx.merge(octx)

    def _rebuild_index(self) -> None:
        self._index = {d: k for k, dots in self._entries.items() for d in dots}

    # -- misc ------------------------------------------------------------------------------
    def copy(self) -> ORSet:
        c = ORSet()
        c._entries = {k: set(v) for k, v in self._entries.items()}
        c._ctx = self._ctx.copy()
        c._index = None if self._index is None else dict(self._index)
        return c

    def to_dict(self) -> dict[str, Any]:
        entries = self._entries
        if len(entries) > 1:
            items = [(_text_of(k), k, dots) for k, dots in entries.items()]
            items.sort(key=lambda x: x[0])
        else:  # a delta: nothing to sort
            items = [("", k, dots) for k, dots in entries.items()]
        return {
            "type": self.kind,
            "v": FORMAT_VERSION,
            "entries": [
                [
                    k if type(k) is str or type(k) is int else key_to_json(k),
                    [[d[0], d[1]] for d in (dots if len(dots) == 1 else sorted(dots))],
                ]
                for _, k, dots in items
            ],
            "ctx": self._ctx.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ORSet:
        body = check_header(d, cls.kind, frozenset({"entries", "ctx"}))
        entries = get_list(body, "entries", "entries")
        if "ctx" not in body:
            raise DecodeError("ctx", "missing")
        s = cls()
        s._ctx = CausalContext.from_dict(body["ctx"], "ctx")
        s._index = None
        seen: set[Dot] = set()
        contains = s._ctx.contains
        out = s._entries
        for i, entry in enumerate(entries):
            # Error paths are formatted only when something is wrong (the hot loop of every
            # delta received).
            if type(entry) is not list or len(entry) != 2:
                raise DecodeError(f"entries[{i}]", "expected [element, [dot, ...]]")
            el = entry[0]
            if type(el) is str or type(el) is int:
                key: Key = el
            else:
                try:
                    key = freeze(el)
                except TypeError as exc:
                    raise DecodeError(f"entries[{i}][0]", str(exc)) from exc
            if key in out:
                raise DecodeError(f"entries[{i}][0]", "duplicate element")
            raw = entry[1]
            if type(raw) is not list or not raw:
                raise DecodeError(f"entries[{i}][1]", "expected a non-empty array of dots")
            dots: set[Dot] = set()
            for j, x in enumerate(raw):
                dot = _dot_or_none(x)
                if dot is None:
                    dot = dot_from_json(x, f"entries[{i}][1][{j}]")
                if dot in seen:
                    raise DecodeError(f"entries[{i}][1][{j}]", "dot used twice")
                if not contains(dot):
                    raise DecodeError(f"entries[{i}][1][{j}]", "dot not covered by ctx")
                seen.add(dot)
                dots.add(dot)
            out[key] = dots
        return s
