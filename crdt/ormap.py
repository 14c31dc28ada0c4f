"""ORMap: a map from keys to embedded CRDTs, with observed-remove keys.

State: a ``DotMap[(key, kind) -> dot store]`` and *one* causal context shared by every
embedded value (Almeida, Shoker, Baquero, "Delta State Replicated Data Types", 2018,
section 7.4, "map embedding"; the Riak DT map, Brown et al. 2014). Every embedded value is
causal, a dot store read and written against the map's context:

============  =================================================================
kind          embedded dot store (value)
============  =================================================================
orset         ``element -> DotSet`` (frozenset), as :class:`~crdt.orset.ORSet`
mvregister    ``DotFun[dot -> value]`` (tuple of siblings)
lww           ``DotFun[dot -> (Timestamp, value)]`` (the value with the greatest
              timestamp; a set replaces the entries it has seen)
gcounter      causal counter ``DotFun[dot -> (p, 0)]`` (int: the sum of p)
pncounter     causal counter ``DotFun[dot -> (p, n)]`` (int: the sum of p - n)
ormap         ``DotMap[(key, kind) -> store]`` (dict), recursively
============  =================================================================

In a causal counter each replica keeps one dot carrying its running totals; an increment
replaces the replica's previous dot with a fresh one (as riak_dt's embedded counter).

``update(replica, key, kind, fn)`` hands ``fn`` a *view* of the embedded value of that kind:
an object with the standalone type's mutators (``increment(replica, n)``, ``decrement``,
``set(replica, value, ...)``, ``add``/``remove``, nested ``update``/``remove``) working on a
copy of the entry and of the map's context. Every mutation made through the view is applied to
the map and returned as one map delta: the new dots and the entry restricted to them, plus the
dots the view dropped. ``fn``'s return value is not needed.

``remove(key)`` is an observed remove: its delta is an empty store whose context holds the
key's dots. An update concurrent with the remove survives with only what the remove did not
see (Riak map semantics): for a set, the elements added concurrently; for a register, the
concurrent write; for a counter, the replicas whose dot is newer than the remove (with their
running totals). This is what makes delta merging and full-state merging agree.

A key holds one kind: ``update`` with another kind than the key holds raises TypeError.
(Internally entries are keyed by ``(key, kind)``, so concurrent updates of one key with two
kinds on two replicas still join deterministically; ``value`` then shows the kind that comes
last in alphabetical order.) Keys are hashable JSON values, as ORSet elements.

Encoding: ``{"type": "ormap", "v": 1, "entries": [[key, kind, body], ...], "ctx": {...}}``,
entries sorted by (key's canonical JSON, kind), with bodies:
orset ``[[element, [dot, ...]], ...]``; mvregister ``[[dot, value], ...]``;
lww ``[[dot, [wall_ms, logical, replica], value], ...]``; gcounter ``[[dot, p], ...]``;
pncounter ``[[dot, p, n], ...]``; ormap: a nested ``entries`` list. Dots are ``[replica, n]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from crdt._codec import FORMAT_VERSION, check_header, get_list
from crdt._json import Key, canonical, check_json, freeze, key_text, key_to_json, normalize, thaw
from crdt.causal_context import CausalContext, _dot_from_json, _dot_or_none
from crdt.dot import Dot, check_replica
from crdt.dotstores import DotFun, DotMap
from crdt.errors import ClockSkewError, DecodeError
from crdt.gcounter import check_amount
from crdt.hlc import Timestamp, check_time, tick
from crdt.mvregister import MVRegister, decode_dotfun
from crdt.orset import ORSet

__all__ = ["ORMap"]

_new_tuple = tuple.__new__  # a NamedTuple without its Python-level __new__
EMBEDDED_KINDS = ("gcounter", "pncounter", "lww", "mvregister", "orset", "ormap")
EntryKey = tuple[Key, str]
_SMALL_CONTEXT_RATIO = 0.25
_SMALL_CONTEXT_MIN = 8


# ---------------------------------------------------------------------------------------
# Embedded dot stores
# ---------------------------------------------------------------------------------------
class SetStore:
    """The dot store of an embedded OR-set: ``element key -> set of dots``."""

    __slots__ = ("entries",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, entries: dict[Key, set[Dot]] | None = None) -> None:
        self.entries: dict[Key, set[Dot]] = entries if entries is not None else {}

    def dots(self) -> Iterator[Dot]:
        for ds in self.entries.values():
            yield from ds

    def is_empty(self) -> bool:
        return not self.entries

    def join(self, ctx: CausalContext, other: SetStore, other_ctx: CausalContext) -> None:
        mine, theirs = self.entries, other.entries
        c, oc = ctx.contains, other_ctx.contains
        for k, d2 in theirs.items():
            d1 = mine.get(k)
            if d1 is None:
                new = {d for d in d2 if not c(d)}
            else:
                new = {d for d in d1 if d in d2 or not oc(d)} | {d for d in d2 if not c(d)}
            if new:
                mine[k] = new
            elif d1 is not None:
                del mine[k]
        for k in [k for k in mine if k not in theirs]:
            keep = {d for d in mine[k] if not oc(d)}
            if keep:
                mine[k] = keep
            else:
                del mine[k]

    def discard_covered(self, ctx: CausalContext) -> None:
        c = ctx.contains
        out: dict[Key, set[Dot]] = {}
        for k, ds in self.entries.items():
            keep = {d for d in ds if not c(d)}
            if keep:
                out[k] = keep
        self.entries = out

    def copy(self) -> SetStore:
        return SetStore({k: set(v) for k, v in self.entries.items()})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SetStore) and self.entries == other.entries

    def __repr__(self) -> str:
        return f"SetStore({self.entries!r})"


def _only_dot(store: Any, dot: Dot) -> bool:
    """True if ``store`` (a flat embedded store) holds exactly the one dot ``dot``."""
    if isinstance(store, DotFun):
        return len(store.entries) == 1 and dot in store.entries
    if isinstance(store, SetStore):
        if len(store.entries) != 1:
            return False
        (ds,) = store.entries.values()
        return len(ds) == 1 and dot in ds
    return False  # a nested map: the general join


def _empty_store(kind: str) -> Any:
    if kind == "orset":
        return SetStore()
    if kind == "ormap":
        return DotMap()
    return DotFun()


# ---------------------------------------------------------------------------------------
# Views: what ``update``'s fn receives
# ---------------------------------------------------------------------------------------
def _context_of(dot: Dot, others: list[Dot]) -> CausalContext:
    c = CausalContext()
    c.add(dot)
    for d in others:
        c.add(d)
    return c


class _CounterView:
    """An embedded grow-only counter: ``increment(replica, n=1)``, ``value``."""

    kind: ClassVar[str] = "gcounter"
    __slots__ = ("ctx", "store")

    def __init__(self, store: DotFun[tuple[int, int]], ctx: CausalContext) -> None:
        self.store = store
        self.ctx = ctx

    @property
    def value(self) -> int:
        return sum(p - n for p, n in self.store.entries.values())

    def _bump(self, replica: str, dp: int, dn: int) -> _CounterView:
        entries = self.store.entries
        old = [d for d in entries if d[0] == replica]
        p = sum(entries[d][0] for d in old) + dp
        n = sum(entries[d][1] for d in old) + dn
        dot = self.ctx.next_dot(replica)
        delta = type(self)(DotFun({dot: (p, n)}), _context_of(dot, old))
        for d in old:
            del entries[d]
        entries[dot] = (p, n)
        self.ctx.add(dot)
        return delta

    def increment(self, replica: str, n: int = 1) -> _CounterView:
        check_replica(replica)
        return self._bump(replica, check_amount(n), 0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value})"


class _PNCounterView(_CounterView):
    """An embedded counter: ``increment(replica, n=1)``, ``decrement(replica, n=1)``."""

    kind: ClassVar[str] = "pncounter"
    __slots__ = ()

    def decrement(self, replica: str, n: int = 1) -> _CounterView:
        check_replica(replica)
        return self._bump(replica, 0, check_amount(n))


def _lww_winner(entries: dict[Dot, tuple[Timestamp, Any]]) -> tuple[Timestamp, Any] | None:
    best: tuple[Timestamp, Any] | None = None
    for ts, v in entries.values():
        if best is None or ts > best[0] or (ts == best[0] and canonical(v) > canonical(best[1])):
            best = (ts, v)
    return best


class _LWWView:
    """An embedded LWW register: ``set(replica, value, timestamp=None, now_ms=None)``."""

    kind: ClassVar[str] = "lww"
    __slots__ = ("clock_bound_ms", "ctx", "store")

    def __init__(
        self,
        store: DotFun[tuple[Timestamp, Any]],
        ctx: CausalContext,
        clock_bound_ms: int = 60_000,
    ) -> None:
        self.store = store
        self.ctx = ctx
        self.clock_bound_ms = clock_bound_ms

    @property
    def value(self) -> Any:
        best = _lww_winner(self.store.entries)
        return None if best is None else normalize(best[1])

    @property
    def timestamp(self) -> Timestamp | None:
        best = _lww_winner(self.store.entries)
        return None if best is None else best[0]

    def set(
        self,
        replica: str,
        value: Any,
        timestamp: Timestamp | None = None,
        now_ms: int | None = None,
    ) -> _LWWView:
        """Write ``value`` (a write older than the current winner is a no-op)."""
        check_replica(replica)
        check_json(value)
        if now_ms is not None:
            check_time(now_ms)
        current = self.timestamp
        if timestamp is None:
            ts = tick(current, replica, now_ms)
        elif not isinstance(timestamp, Timestamp):
            raise TypeError(f"timestamp must be a Timestamp, got {type(timestamp).__name__}")
        else:
            ts = timestamp
        if now_ms is not None and ts.wall_ms - now_ms > self.clock_bound_ms:
            raise ClockSkewError(ts.wall_ms, now_ms, self.clock_bound_ms)
        if current is not None and ts <= current:
            return _LWWView(DotFun(), CausalContext(), self.clock_bound_ms)
        value = normalize(value)
        dot = self.ctx.next_dot(replica)
        old = list(self.store.entries)
        delta = _LWWView(DotFun({dot: (ts, value)}), _context_of(dot, old))
        self.store.entries = {dot: (ts, value)}
        self.ctx.add(dot)
        return delta

    def __repr__(self) -> str:
        return f"_LWWView({self.value!r})"


def _make_view(kind: str, store: Any, ctx: CausalContext) -> Any:
    """A standalone-looking object over ``store`` (owned by the view) and ``ctx``."""
    if kind == "orset":
        s = ORSet()
        s._entries = store.entries
        s._ctx = ctx
        s._index = None
        return s
    if kind == "mvregister":
        r = MVRegister()
        r._store = store
        r._ctx = ctx
        return r
    if kind == "ormap":
        m = ORMap()
        m._store = store
        m._ctx = ctx
        m._index = None
        return m
    if kind == "lww":
        return _LWWView(store, ctx)
    if kind == "pncounter":
        return _PNCounterView(store, ctx)
    return _CounterView(store, ctx)


def _view_state(kind: str, view: Any) -> tuple[Any, CausalContext]:
    """The (store, context) a view ended with."""
    if kind == "orset":
        return SetStore(view._entries), view._ctx
    if kind in ("mvregister", "ormap"):
        return view._store, view._ctx
    return view.store, view.ctx


def _store_value(kind: str, store: Any) -> Any:
    if kind == "orset":
        return frozenset(thaw(k) for k in store.entries)
    if kind == "mvregister":
        e = store.entries
        return tuple(normalize(e[d]) for d in sorted(e))
    if kind == "lww":
        best = _lww_winner(store.entries)
        return None if best is None else normalize(best[1])
    if kind in ("gcounter", "pncounter"):
        return sum(p - n for p, n in store.entries.values())
    return _map_value(store)


def _map_value(store: DotMap[EntryKey, Any]) -> dict[Any, Any]:
    chosen: dict[Key, str] = {}
    for key, kind in store.entries:
        if key not in chosen or kind > chosen[key]:
            chosen[key] = kind
    return {thaw(k): _store_value(kind, store.entries[(k, kind)]) for k, kind in chosen.items()}


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
    __slots__ = ("_ctx", "_index", "_store")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self._store: DotMap[EntryKey, Any] = DotMap()
        self._ctx = CausalContext()
        self._index: dict[Dot, EntryKey] | None = {}

    # -- reading ---------------------------------------------------------------------------
    @property
    def value(self) -> dict[Any, Any]:
        """``{key: embedded value}``; nested maps as nested dicts."""
        return _map_value(self._store)

    @property
    def context(self) -> CausalContext:
        return self._ctx

    def kind_of(self, key: object) -> str | None:
        """The kind ``key`` holds, or None."""
        k = freeze(key, "key")
        kinds = [kind for kind in EMBEDDED_KINDS if (k, kind) in self._store.entries]
        return max(kinds) if kinds else None

    def get(self, key: object) -> Any:
        """A detached copy (a view object) of the value at ``key``, or None.

        Mutating it changes nothing in the map: use ``update``.
        """
        kind = self.kind_of(key)
        if kind is None:
            return None
        store = self._store.entries[(freeze(key, "key"), kind)]
        return _make_view(kind, store.copy(), self._ctx.copy())

    def __contains__(self, key: object) -> bool:
        try:
            return self.kind_of(key) is not None
        except TypeError:
            return False

    def __len__(self) -> int:
        return len({k for k, _ in self._store.entries})

    def keys(self) -> frozenset[Any]:
        return frozenset(thaw(k) for k, _ in self._store.entries)

    def is_bottom(self) -> bool:
        return self._store.is_empty() and self._ctx.is_bottom()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ORMap):
            return NotImplemented
        return self._ctx == other._ctx and self._store == other._store

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
        check_replica(replica)
        k = freeze(key, "key")
        if kind not in EMBEDDED_KINDS:
            raise ValueError(f"unknown kind {kind!r}; known: {', '.join(EMBEDDED_KINDS)}")
        held = self.kind_of(key)
        if held is not None and held != kind:
            raise TypeError(f"key {key!r} holds a {held}, not a {kind}")
        ek: EntryKey = (k, kind)
        before = self._store.entries.get(ek)
        if before is None:
            before = _empty_store(kind)
        view = _make_view(kind, before.copy(), self._ctx.copy())
        fn(view)
        after, after_ctx = _view_state(kind, view)
        ctx = self._ctx
        new_dots = list(after_ctx.dots_not_in(ctx))
        delta = ORMap()
        delta._index = None
        dstore = after.copy()
        dstore.discard_covered(ctx)
        if not dstore.is_empty():
            delta._store.entries[ek] = dstore
        dctx = delta._ctx
        for d in new_dots:
            dctx.add(d)
        live = set(after.dots())
        old_dots = list(before.dots())
        for d in old_dots:
            if d not in live:
                dctx.add(d)
        # Joining the delta into this state gives exactly ``after`` at this entry (a view only
        # keeps old dots or adds new ones) and leaves every other entry alone (the delta's
        # context holds only new dots and this entry's dots): apply it directly, O(entry).
        entries = self._store.entries
        index = self._index
        if index is not None:
            for d in old_dots:
                index.pop(d, None)
        if after.is_empty():
            entries.pop(ek, None)
        else:
            entries[ek] = after.copy()
            if index is not None:
                for d in live:
                    index[d] = ek
        for d in new_dots:
            ctx.add(d)
        return delta

    def remove(self, key: object) -> ORMap:
        """Observed-remove of ``key`` (every kind it holds); returns the delta."""
        k = freeze(key, "key")
        delta = ORMap()
        delta._index = None
        for kind in EMBEDDED_KINDS:
            store = self._store.entries.get((k, kind))
            if store is not None:
                for d in store.dots():
                    delta._ctx.add(d)
        self.merge(delta)
        return delta

    # -- join ------------------------------------------------------------------------------
    def merge(self, other: ORMap) -> None:
        """Join in place; O(size of other) when other's context is small (a delta)."""
        if not isinstance(other, ORMap):
            raise TypeError(f"cannot merge {type(other).__name__} into ORMap")
        if other is self:
            return
        octx = other._ctx
        mine = self._store.entries
        theirs = other._store.entries
        if not octx.vv and len(octx.cloud) == 1 and len(theirs) == 1:
            # The delta of an update that wrote one new dot to an entry that its origin did
            # not hold: ({ek: store with exactly that dot}, {dot}). Joining it adds the entry
            # if the dot is new here, and changes nothing otherwise (O(1)).
            ((fk, s2),) = theirs.items()
            (dot,) = octx.cloud
            if fk not in mine and _only_dot(s2, dot):
                ctx = self._ctx
                if ctx.contains(dot):
                    return  # seen already (and removed since, or held): nothing to join
                mine[fk] = s2.copy()
                if self._index is not None:
                    self._index[dot] = fk
                ctx.add(dot)
                return
        size = octx.size()
        small = size <= _SMALL_CONTEXT_MIN or size <= len(mine) * _SMALL_CONTEXT_RATIO
        if not small:
            self._index = None
            self._store.join(self._ctx, other._store, octx)
            self._ctx.merge(octx)
            return
        if self._index is None:
            self._index = {d: ek for ek, s in mine.items() for d in s.dots()}
        index = self._index
        ctx = self._ctx
        theirs = other._store.entries
        touched = set(theirs)
        for d in octx.dots():
            ek = index.get(d)
            if ek is not None:
                touched.add(ek)
        for ek in touched:
            s1 = mine.get(ek)
            if s1 is not None:
                for d in s1.dots():
                    index.pop(d, None)
            s2 = theirs.get(ek)
            if s1 is None:
                s = theirs[ek].copy()
                s.discard_covered(ctx)
            elif s2 is None:
                s = s1
                s.discard_covered(octx)
            else:
                s = s1
                s.join(ctx, s2, octx)
            if s.is_empty():
                mine.pop(ek, None)
            else:
                mine[ek] = s
                for d in s.dots():
                    index[d] = ek
        ctx.merge(octx)

    def copy(self) -> ORMap:
        c = ORMap()
        c._store = self._store.copy()
        c._ctx = self._ctx.copy()
        c._index = None if self._index is None else dict(self._index)
        return c

    # -- codec -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "v": FORMAT_VERSION,
            "entries": _encode_map(self._store),
            "ctx": self._ctx.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ORMap:
        body = check_header(d, cls.kind, frozenset({"entries", "ctx"}))
        entries = get_list(body, "entries", "entries")
        if "ctx" not in body:
            raise DecodeError("ctx", "missing")
        m = cls()
        m._ctx = CausalContext.from_dict(body["ctx"], "ctx")
        seen: set[Dot] = set()
        m._store = _decode_map(entries, m._ctx, "entries", seen)
        m._index = None
        return m


def _text_of(k: Key) -> str:
    """``key_text(k)``, without ``json.dumps`` for the common plain ASCII string."""
    if type(k) is str and k.isascii() and k.isprintable() and '"' not in k and "\\" not in k:
        return '"' + k + '"'  # exactly what json.dumps gives for such a string
    return key_text(k)


def _json_of(k: Key) -> Any:
    return k if type(k) is str or type(k) is int else key_to_json(k)


def _plain(v: Any) -> Any:
    t = type(v)
    return normalize(v) if t is list or t is tuple or t is dict else v


def _encode_map(store: DotMap[EntryKey, Any]) -> list[Any]:
    # (text, kind) pairs are unique, so the tuple sort never compares the stores.
    entries = store.entries
    if len(entries) > 1:
        items = [(_text_of(k), kind, k, s) for (k, kind), s in entries.items()]
        items.sort()
    else:  # a delta: nothing to sort
        items = [("", kind, k, s) for (k, kind), s in entries.items()]
    return [[_json_of(k), kind, _encode_store(kind, s)] for _, kind, k, s in items]


def _encode_store(kind: str, store: Any) -> Any:
    if kind == "orset":
        set_entries = store.entries
        if len(set_entries) > 1:
            items = [(_text_of(k), k, ds) for k, ds in set_entries.items()]
            items.sort(key=lambda x: x[0])
        else:
            items = [("", k, ds) for k, ds in set_entries.items()]
        return [
            [_json_of(k), [[d[0], d[1]] for d in (ds if len(ds) == 1 else sorted(ds))]]
            for _, k, ds in items
        ]
    if kind == "ormap":
        return _encode_map(store)
    e = store.entries
    dots = list(e) if len(e) == 1 else sorted(e)
    if kind == "lww":
        out = []
        for d in dots:
            ts, v = e[d]
            out.append([[d[0], d[1]], [ts[0], ts[1], ts[2]], _plain(v)])
        return out
    if kind == "mvregister":
        return [[[d[0], d[1]], normalize(e[d])] for d in dots]
    if kind == "gcounter":
        return [[[d[0], d[1]], e[d][0]] for d in dots]
    return [[[d[0], d[1]], e[d][0], e[d][1]] for d in dots]


def _decode_map(
    entries: list[Any], ctx: CausalContext, path: str, seen: set[Dot]
) -> DotMap[EntryKey, Any]:
    # Error paths are formatted only when something is wrong (the hot loop of every delta
    # received).
    out: DotMap[EntryKey, Any] = DotMap()
    got = out.entries
    for i, entry in enumerate(entries):
        if type(entry) is not list or len(entry) != 3:
            raise DecodeError(f"{path}[{i}]", "expected [key, kind, body]")
        raw_key, kind, body = entry
        if type(raw_key) is str or type(raw_key) is int:
            k: Key = raw_key
        else:
            try:
                k = freeze(raw_key, "key")
            except TypeError as exc:
                raise DecodeError(f"{path}[{i}][0]", str(exc)) from exc
        if kind not in EMBEDDED_KINDS:
            raise DecodeError(f"{path}[{i}][1]", f"unknown kind {kind!r}")
        if (k, kind) in got:
            raise DecodeError(f"{path}[{i}]", "duplicate (key, kind)")
        if type(body) is not list or not body:
            raise DecodeError(f"{path}[{i}][2]", "expected a non-empty array")
        got[(k, kind)] = _decode_store(kind, body, ctx, f"{path}[{i}][2]", seen)
    return out


def _check_dot(dot: Dot, ctx: CausalContext, seen: set[Dot], path: str) -> None:
    if dot in seen:
        raise DecodeError(path, "dot used twice")
    if not ctx.contains(dot):
        raise DecodeError(path, "dot not covered by ctx")
    seen.add(dot)


def _decode_store(kind: str, body: list[Any], ctx: CausalContext, path: str, seen: set[Dot]) -> Any:
    if kind == "ormap":
        return _decode_map(body, ctx, path, seen)
    if kind == "orset":
        s = SetStore()
        for i, entry in enumerate(body):
            p = f"{path}[{i}]"
            if type(entry) is not list or len(entry) != 2:
                raise DecodeError(p, "expected [element, [dot, ...]]")
            try:
                k = freeze(entry[0])
            except TypeError as exc:
                raise DecodeError(f"{p}[0]", str(exc)) from exc
            if k in s.entries:
                raise DecodeError(f"{p}[0]", "duplicate element")
            if type(entry[1]) is not list or not entry[1]:
                raise DecodeError(f"{p}[1]", "expected a non-empty array of dots")
            dots: set[Dot] = set()
            for j, x in enumerate(entry[1]):
                dot = _dot_from_json(x, f"{p}[1][{j}]")
                _check_dot(dot, ctx, seen, f"{p}[1][{j}]")
                dots.add(dot)
            s.entries[k] = dots
        return s
    if kind == "mvregister":
        e = decode_dotfun(body, ctx, path)
        for i, d in enumerate(e):
            _check_dot(d, ctx, seen, f"{path}[{i}][0]")
        return DotFun(e)
    if kind == "lww":
        return DotFun(_decode_lww(body, ctx, path, seen))
    width = 3 if kind == "pncounter" else 2
    out: dict[Dot, Any] = {}
    for i, entry in enumerate(body):
        p = f"{path}[{i}]"
        if type(entry) is not list or len(entry) != width:
            raise DecodeError(p, f"expected an array of {width} items")
        dot = _dot_from_json(entry[0], f"{p}[0]")
        _check_dot(dot, ctx, seen, f"{p}[0]")
        nums = entry[1:] if kind == "pncounter" else [entry[1], 0]
        for j, x in enumerate(nums[: width - 1]):
            if type(x) is not int or x < 0:
                raise DecodeError(f"{p}[{j + 1}]", f"expected an integer >= 0, got {x!r}")
        out[dot] = (nums[0], nums[1])
    return DotFun(out)


def _decode_lww(
    body: list[Any], ctx: CausalContext, path: str, seen: set[Dot]
) -> dict[Dot, tuple[Timestamp, Any]]:
    out: dict[Dot, tuple[Timestamp, Any]] = {}
    contains = ctx.contains
    for i, entry in enumerate(body):
        if type(entry) is not list or len(entry) != 3:
            raise DecodeError(f"{path}[{i}]", "expected an array of 3 items")
        raw_dot, raw_ts, value = entry
        dot = _dot_or_none(raw_dot)
        if dot is None or dot in seen or not contains(dot):
            dot = _dot_from_json(raw_dot, f"{path}[{i}][0]")
            _check_dot(dot, ctx, seen, f"{path}[{i}][0]")  # raises
        seen.add(dot)
        if (
            type(raw_ts) is list
            and len(raw_ts) == 3
            and type(w := raw_ts[0]) is int
            and w >= 0
            and type(n := raw_ts[1]) is int
            and n >= 0
            and type(r := raw_ts[2]) is str
            and r
        ):
            ts: Timestamp = _new_tuple(Timestamp, (w, n, r))
        else:
            ts = Timestamp.from_json(raw_ts, f"{path}[{i}][1]")
        t = type(value)
        if not (t is str or t is int or t is bool or value is None):
            try:
                check_json(value, f"{path}[{i}][2]")
            except TypeError as exc:
                raise DecodeError(f"{path}[{i}][2]", str(exc)) from exc
            value = normalize(value)
        out[dot] = (ts, value)
    return out
