"""ORMap: a map from keys to embedded CRDTs, with observed-remove keys.

State: a dot map ``(key, kind) -> dot store`` and *one* causal context shared by every
embedded value (Almeida, Shoker, Baquero, "Delta State Replicated Data Types", 2018,
section 7.4, "map embedding"; the Riak DT map, Brown et al. 2014). Every embedded value is
causal, a dot store read and written against the map's context:

============  =================================================================
kind          embedded dot store (value)
============  =================================================================
orset         ``dict[element key -> flat dots]``, as :class:`~crdt.orset.ORSet`
              (value: frozenset)
mvregister    ``(r, c, value, ...)``, 3 items per entry (value: tuple of siblings)
lww           ``(r, c, wall_ms, logical, ts_replica, value, ...)``, 6 items per entry
              (value: the one with the greatest timestamp; a set replaces the entries it
              has seen)
gcounter      causal counter ``(r, c, p, 0, ...)``, 4 items per entry (value: sum of p)
pncounter     causal counter ``(r, c, p, n, ...)``, 4 items per entry (value: sum of p - n)
ormap         ``dict[(key, kind) -> store]`` (value: dict), recursively
============  =================================================================

Representation, chosen so that a big map is nearly invisible to CPython's cyclic garbage
collector: the map is one ``dict`` from ``(key, kind)`` (a plain tuple) to its store, plus a
reverse index ``dot -> (key, kind)``. A register's or a counter's store is *one flat tuple*
of its entries' fields, a fixed number per kind (the table above), entries sorted by dot
``(r, c)``; a set's elements hold their dots flat as well (``crdt/orset.py``). No store is a
tuple of tuples because CPython untracks a tuple only during a collection of the generation
it is in, and only if its items are untracked already: each level of nesting takes one more
collection of an older generation, and a third level reaches the oldest generation still
tracked, where it counts toward the trigger of *full* collections. So with a str, int,
float, bool or null value a map entry is made only of objects the collector untracks at
its first (youngest) pass, and costs it nothing afterwards (a list or object value is
tracked, as any Python list or dict). A set's or a nested map's store is one ``dict``
(untracked by a full collection while all it holds is untracked). Every store is *immutable once
stored*: a mutation or a merge builds a new store (copy on write) and replaces it, never
edits one in place, so states, their copies and the deltas they return may share stores.
Register and counter stores hold one entry but for concurrent writes, so this costs O(1);
a set's or a nested map's store costs O(its size) per change, as the copy that the views
made before.

In a causal counter each replica keeps one dot carrying its running totals; an increment
replaces the replica's previous dot with a fresh one (as riak_dt's embedded counter).

``update(replica, key, kind, fn)`` hands ``fn`` a *view* of the embedded value of that kind:
an object with the standalone type's mutators (``increment(replica, n)``, ``decrement``,
``set(replica, value, ...)``, ``add``/``remove``, nested ``update``/``remove``) working on a
copy of the entry. Every mutation made through the view is applied to the map and returned
as one map delta: the new dots and the entry restricted to them, plus the dots the view
dropped. ``fn``'s return value is not needed. The views of a set, a multi-value register and
a nested map are an :class:`~crdt.orset.ORSet`, a :class:`~crdt.mvregister.MVRegister` and an
:class:`ORMap` over a copy of the map's context, whose mutators return their own deltas; the
views of an LWW register and of the counters only read the map's context (they note the dots
they take: the hot path copies nothing) and their mutators return the view itself.

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

from collections.abc import Callable
from itertools import chain
from typing import Any, ClassVar

from crdt._codec import FORMAT_VERSION, check_header, get_list
from crdt._json import (
    REPLICA_TEXTS,
    Key,
    canonical,
    causal_state_json,
    check_json,
    freeze,
    json_text,
    key_json_text,
    key_text,
    key_to_json,
    normalize,
    plain,
    plain_key,
    plain_strings,
    str_text,
    thaw,
)
from crdt.causal_context import (
    CausalContext,
    _dot_or_none,
    context_of,
    context_of_dot,
    small_context,
)
from crdt.dot import MAX_INT, Dot, check_replica, dot_from_json
from crdt.dotstores import DotFun
from crdt.errors import ClockSkewError, DecodeError
from crdt.gcounter import check_amount
from crdt.hlc import DEFAULT_MAX_SKEW_MS, Timestamp, check_time, tick, timestamp_from_json
from crdt.lww import check_timestamp
from crdt.mvregister import MVRegister, decode_dotfun
from crdt.orset import (
    _SMALL_CONTEXT_MIN,
    _SMALL_CONTEXT_RATIO,
    Dots,
    ORSet,
    dot_pairs,
    encode_set_entries,
    first_item,
    flat_dots,
    join_dots,
    set_entries_json,
    unseen_dots,
)

__all__ = ["ORMap"]

_FIELDS = frozenset({"entries", "ctx"})  # the body fields of the encoding

EMBEDDED_KINDS = ("gcounter", "pncounter", "lww", "mvregister", "orset", "ormap")
# For each kind, the kinds a key holding it must not also hold (see ``update``).
_OTHER_KINDS = {k: tuple(o for o in EMBEDDED_KINDS if o != k) for k in EMBEDDED_KINDS}
_KINDS_DESC = tuple(sorted(EMBEDDED_KINDS, reverse=True))
EntryKey = tuple[Key, str]
# A register's or counter's store: its entries' fields in one flat tuple, ``_STRIDE[kind]``
# items per entry, the first two the entry's dot ``(r, c)``; entries sorted by dot.
FunStore = tuple[Any, ...]
_STRIDE = {"lww": 6, "mvregister": 3, "gcounter": 4, "pncounter": 4}
SetStore = dict[Key, Dots]
MapStore = dict[EntryKey, Any]


# ---------------------------------------------------------------------------------------
# Embedded dot stores (immutable once stored: every function here returns a new store)
# ---------------------------------------------------------------------------------------
def _rows(store: FunStore, k: int) -> list[FunStore]:
    """The entries of a register or counter store of stride ``k``, each a tuple, in order."""
    if len(store) == k:
        return [store]
    return [store[i : i + k] for i in range(0, len(store), k)]


def _flat(rows: list[FunStore]) -> FunStore:
    """Entries sorted by dot (plain tuples) as one flat store; a single entry as it is."""
    if len(rows) == 1:
        return rows[0]
    return tuple(chain.from_iterable(rows))


def _fun_dots(store: FunStore, k: int) -> list[Dot]:
    """The dots of a register or counter store of stride ``k``, in order."""
    if len(store) == k:
        return [(store[0], store[1])]  # type: ignore[list-item]
    return list(zip(store[::k], store[1::k], strict=True))  # type: ignore[arg-type]


def _dot_list(kind: str, store: Any) -> list[Dot]:
    """Every dot of ``store``."""
    if kind == "orset":
        return [d for ds in store.values() for d in dot_pairs(ds)]
    if kind == "ormap":
        return [d for (_, k2), s in store.items() for d in _dot_list(k2, s)]
    return _fun_dots(store, _STRIDE[kind])


def _only_dot(kind: str, store: Any) -> Dot | None:
    """The dot of ``store`` if it holds exactly one (a flat store only), else None."""
    if kind == "orset":
        if len(store) != 1:
            return None
        (ds,) = store.values()
        return ds if len(ds) == 2 else None
    if kind == "ormap":
        return None  # a nested map: the general join
    return (store[0], store[1]) if len(store) == _STRIDE[kind] else None  # type: ignore[return-value]


def _discard(kind: str, store: Any, ctx: CausalContext) -> Any:
    """``store`` without the dots ``ctx`` covers: its join with the empty store of ``ctx``."""
    if kind == "orset":
        vv, cloud = ctx.vv, ctx.cloud
        out: dict[Any, Any] = {}
        for k, ds in store.items():
            keep = unseen_dots(ds, vv, cloud)
            if keep:
                out[k] = keep
        return out
    if kind == "ormap":
        out = {}
        for ek, s in store.items():
            t = _discard(ek[1], s, ctx)
            if t:
                out[ek] = t
        return out
    rows = _rows(store, _STRIDE[kind])
    c = ctx.contains
    keep_fun = [x for x in rows if not c((x[0], x[1]))]  # type: ignore[arg-type]
    return store if len(keep_fun) == len(rows) else _flat(keep_fun)


def _join(kind: str, s1: Any, ctx1: CausalContext, s2: Any, ctx2: CausalContext) -> Any:
    """The join of ``(s1, ctx1)`` and ``(s2, ctx2)``'s stores (``s1`` itself if unchanged)."""
    if kind == "orset":
        return _join_set(s1, ctx1, s2, ctx2)
    if kind == "ormap":
        return _join_map(s1, ctx1, s2, ctx2)
    return _join_fun(_STRIDE[kind], s1, ctx1, s2, ctx2)


def _join_fun(
    k: int, s1: FunStore, ctx1: CausalContext, s2: FunStore, ctx2: CausalContext
) -> FunStore:
    """The join of two register or counter stores of stride ``k``."""
    if s1 == s2:
        return s1
    if len(s1) == k and len(s2) == k:  # one entry each (a write joining the one it replaces)
        a, b = s1[:2], s2[:2]
        keep1 = a == b or not ctx2.contains(a)  # type: ignore[arg-type]
        keep2 = a != b and not ctx1.contains(b)  # type: ignore[arg-type]
        if keep1 and keep2:
            return s1 + s2 if a < b else s2 + s1
        return s1 if keep1 else s2 if keep2 else ()
    r1, r2 = _rows(s1, k), _rows(s2, k)
    d1 = {x[:2] for x in r1}
    d2 = {x[:2] for x in r2}
    c, oc = ctx1.contains, ctx2.contains
    out = [x for x in r1 if x[:2] in d2 or not oc(x[:2])]  # type: ignore[arg-type]
    out += [y for y in r2 if y[:2] not in d1 and not c(y[:2])]  # type: ignore[arg-type]
    if len(out) > 1:
        out.sort()  # dots are unique: the sort never compares the values
    if len(out) == len(r1) and all(a is b for a, b in zip(out, r1, strict=True)):
        return s1
    return _flat(out)


def _join_set(s1: SetStore, ctx1: CausalContext, s2: SetStore, ctx2: CausalContext) -> SetStore:
    vv1, cloud1, vv2, cloud2 = ctx1.vv, ctx1.cloud, ctx2.vv, ctx2.cloud
    out: SetStore = {}
    same = True  # out == s1 so far: then return s1 itself (the caller sees "unchanged")
    for k, d1 in s1.items():
        d2 = s2.get(k)
        if d2 is None:
            keep = unseen_dots(d1, vv2, cloud2)
        else:
            keep = join_dots(d1, d2, vv1, cloud1, vv2, cloud2)
        if keep:
            out[k] = keep
        same = same and keep is d1
    for k, d2 in s2.items():
        if k not in s1:
            left = unseen_dots(d2, vv1, cloud1)
            if left:
                out[k] = left
                same = False
    return s1 if same else out


def _join_map(s1: MapStore, ctx1: CausalContext, s2: MapStore, ctx2: CausalContext) -> MapStore:
    out: MapStore = {}
    for first, mine, theirs, ctx in ((True, s1, s2, ctx2), (False, s2, s1, ctx1)):
        vv, cloud = ctx.vv, ctx.cloud
        for ek, a in mine.items():
            b = theirs.get(ek)
            if b is None:
                if type(a) is tuple and len(a) == _STRIDE[ek[1]]:
                    # One register or counter entry: _discard, inlined.
                    r, n = a[0], a[1]
                    if n > vv.get(r, 0) and (not cloud or (r, n) not in cloud):
                        out[ek] = a
                    continue
                t = _discard(ek[1], a, ctx)
            elif not first:
                continue  # on both sides: joined in the first round
            elif a == b:
                t = a
            else:
                t = _join(ek[1], a, ctx1, b, ctx2)
            if t:
                out[ek] = t
    return out


# ---------------------------------------------------------------------------------------
# Views: what ``update``'s fn receives
# ---------------------------------------------------------------------------------------
class _FunView:
    """The view of a register or counter store: reads the context, notes the dots it takes."""

    __slots__ = ("ctx", "new", "store")

    def __init__(self, store: FunStore, ctx: CausalContext) -> None:
        self.store = store
        self.ctx = ctx
        self.new: list[Dot] = []

    def _next_dot(self, replica: str) -> Dot:
        """A fresh dot of ``replica``: past the context and the dots this view took."""
        ctx = self.ctx
        n = ctx.max_counter(replica) if ctx.cloud else ctx.vv.get(replica, 0)
        for d in self.new:
            if d[0] == replica and d[1] > n:
                n = d[1]
        dot: Dot = (replica, n + 1)  # type: ignore[assignment]
        self.new.append(dot)
        return dot


class _CounterView(_FunView):
    """An embedded grow-only counter: ``increment(replica, n=1)``, ``value``."""

    kind: ClassVar[str] = "gcounter"
    __slots__ = ()

    @property
    def value(self) -> int:
        store = self.store
        return sum(store[2::4]) - sum(store[3::4])

    def _bump(self, replica: str, dp: int, dn: int) -> _CounterView:
        p, n = dp, dn
        rest = []
        for x in _rows(self.store, 4):
            if x[0] == replica:
                p += x[2]
                n += x[3]
            else:
                rest.append(x)
        if p > MAX_INT or n > MAX_INT:
            raise ValueError(f"counter overflow: {replica!r}'s total would pass 2**63-1")
        rest.append((replica, self._next_dot(replica)[1], p, n))
        rest.sort()
        self.store = _flat(rest)
        return self

    def increment(self, replica: str, n: int = 1) -> _CounterView:
        """Add ``n >= 1`` at ``replica``; returns the view (``update`` returns the delta)."""
        check_replica(replica)
        return self._bump(replica, check_amount(n), 0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value})"


class _PNCounterView(_CounterView):
    """An embedded counter: ``increment(replica, n=1)``, ``decrement(replica, n=1)``."""

    kind: ClassVar[str] = "pncounter"
    __slots__ = ()

    def decrement(self, replica: str, n: int = 1) -> _CounterView:
        """Subtract ``n >= 1`` at ``replica``; returns the view."""
        check_replica(replica)
        return self._bump(replica, 0, check_amount(n))


def _lww_winner(store: FunStore) -> tuple[Timestamp, Any] | None:
    if len(store) == 6:
        return store[2:5], store[5]  # type: ignore[return-value]
    best: tuple[Timestamp, Any] | None = None
    for i in range(0, len(store), 6):
        ts: Timestamp = store[i + 2 : i + 5]  # type: ignore[assignment]
        v = store[i + 5]
        if best is None or ts > best[0] or (ts == best[0] and canonical(v) > canonical(best[1])):
            best = (ts, v)
    return best


class _LWWView(_FunView):
    """An embedded LWW register: ``set(replica, value, timestamp=None, now_ms=None)``."""

    kind: ClassVar[str] = "lww"
    clock_bound_ms: ClassVar[int] = DEFAULT_MAX_SKEW_MS
    __slots__ = ()

    @property
    def value(self) -> Any:
        best = _lww_winner(self.store)
        return None if best is None else normalize(best[1])

    @property
    def timestamp(self) -> Timestamp | None:
        best = _lww_winner(self.store)
        return None if best is None else best[0]

    def set(
        self,
        replica: str,
        value: Any,
        timestamp: Timestamp | None = None,
        now_ms: int | None = None,
    ) -> _LWWView:
        """Write ``value`` (a write older than the current winner is a no-op); returns the view.

        Checks and errors as :meth:`crdt.lww.LWWRegister.set`.
        """
        if type(replica) is not str or not replica:
            check_replica(replica)  # raises
        t = type(value)
        if not plain(value):
            check_json(value)
        if now_ms is not None and (type(now_ms) is not int or not 0 <= now_ms <= MAX_INT):
            check_time(now_ms)  # raises
        # The current winner's timestamp, the two common cases inlined (calling _lww_winner
        # for them costs 3-8% of an update): no entry yet (a new key), or one entry.
        store = self.store
        current: Timestamp | None
        if not store:
            current = None
        elif len(store) == 6:
            current = store[2:5]  # type: ignore[assignment]
        else:
            current = self.timestamp
        ts = tick(current, replica, now_ms) if timestamp is None else check_timestamp(timestamp)
        if now_ms is not None and ts[0] - now_ms > self.clock_bound_ms:
            raise ClockSkewError(ts[0], now_ms, self.clock_bound_ms)
        if current is not None and ts <= current:
            return self
        if t is list or t is tuple or t is dict:
            value = normalize(value)
        self.store = (replica, self._next_dot(replica)[1], ts[0], ts[1], ts[2], value)
        return self

    def __repr__(self) -> str:
        return f"_LWWView({self.value!r})"


_FUN_VIEWS: dict[str, type[_FunView]] = {
    "lww": _LWWView,
    "gcounter": _CounterView,
    "pncounter": _PNCounterView,
}


def _make_view(kind: str, store: Any, ctx: CausalContext) -> Any:
    """A standalone-looking object over a copy of ``store`` and ``ctx`` (owned by the view)."""
    if kind == "orset":
        return ORSet._delta(dict(store) if store else {}, ctx)
    if kind == "mvregister":
        r = MVRegister()
        r._store = DotFun({x[:2]: x[2] for x in _rows(store, 3)} if store else None)  # type: ignore[misc]
        r._ctx = ctx
        return r
    if kind == "ormap":
        return ORMap._delta(dict(store) if store else {}, ctx)
    return _FUN_VIEWS[kind](store if store else (), ctx)


def _view_store(kind: str, view: Any) -> Any:
    """A copy of the store a view ended with (the view may outlive the update)."""
    if kind in ("orset", "ormap"):
        return dict(view._entries)
    if kind == "mvregister":
        # Sorted by dot (the dots are unique: the sort never compares the values).
        return _flat([(r, c, v) for (r, c), v in sorted(view._store.entries.items())])
    return view.store


def _store_value(kind: str, store: Any) -> Any:
    if kind == "orset":
        return frozenset(thaw(k) for k in store)
    if kind == "mvregister":
        return tuple(normalize(v) for v in store[2::3])
    if kind == "lww":
        best = _lww_winner(store)
        return None if best is None else normalize(best[1])
    if kind in ("gcounter", "pncounter"):
        return sum(store[2::4]) - sum(store[3::4])
    return _map_value(store)


def _map_value(store: MapStore) -> dict[Any, Any]:
    chosen: dict[Key, str] = {}
    for key, kind in store:
        if key not in chosen or kind > chosen[key]:
            chosen[key] = kind
    return {thaw(k): _store_value(kind, store[(k, kind)]) for k, kind in chosen.items()}


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
    __slots__ = ("_ctx", "_entries", "_index")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self._entries: MapStore = {}
        self._ctx = CausalContext()
        self._index: dict[Dot, EntryKey] | None = {}

    @classmethod
    def _delta(cls, entries: MapStore, ctx: CausalContext) -> ORMap:
        """A map made of ``entries`` and ``ctx`` (taken, not copied), without an index."""
        m: ORMap = cls.__new__(cls)
        m._entries = entries
        m._ctx = ctx
        m._index = None
        return m

    # -- reading ---------------------------------------------------------------------------
    @property
    def value(self) -> dict[Any, Any]:
        """``{key: embedded value}``; nested maps as nested dicts."""
        return _map_value(self._entries)

    @property
    def context(self) -> CausalContext:
        return self._ctx

    def kind_of(self, key: object) -> str | None:
        """The kind ``key`` holds, or None."""
        return self._kind_of(freeze(key, "key"))

    def _kind_of(self, k: Key) -> str | None:
        """The kind the internal key ``k`` holds, or None."""
        entries = self._entries
        for kind in _KINDS_DESC:
            if (k, kind) in entries:
                return kind
        return None

    def get(self, key: object) -> Any:
        """A detached copy (a view object) of the value at ``key``, or None.

        Mutating it changes nothing in the map: use ``update``.
        """
        k = freeze(key, "key")
        kind = self._kind_of(k)
        if kind is None:
            return None
        return _make_view(kind, self._entries[(k, kind)], self._ctx.copy())

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
        others = _OTHER_KINDS.get(kind) if type(kind) is str else None
        if others is None:
            raise ValueError(f"unknown kind {kind!r}; known: {', '.join(EMBEDDED_KINDS)}")
        entries = self._entries
        before = entries.get((k, kind))
        for o in others:
            # A key holds one kind: the greatest kind present (see the module docstring).
            if (k, o) in entries and (before is None or o > kind):
                raise TypeError(f"key {key!r} holds a {self.kind_of(key)}, not a {kind}")
        ek: EntryKey = (k, kind)
        if kind in _FUN_VIEWS:
            return self._update_fun(ek, before, fn)
        return self._update_view(ek, before, fn)

    def _update_fun(
        self, ek: EntryKey, before: FunStore | None, fn: Callable[[Any], object]
    ) -> ORMap:
        """``update`` of a register or counter: the view copies nothing, notes its new dots."""
        ctx = self._ctx
        view = _FUN_VIEWS[ek[1]](before if before is not None else (), ctx)
        fn(view)
        new = view.new
        if not new:
            return ORMap._delta({}, CausalContext())  # nothing written (e.g. a stale set)
        after = view.store
        if before is None and len(new) == 1:
            # The common case: one write to a key not held. The delta is the entry itself,
            # whose only dot is the new one.
            dstore: FunStore = after
            dctx = context_of_dot(new[0])
            old: list[Dot] = []
            live = new
        else:
            k = _STRIDE[ek[1]]
            c = ctx.contains
            rows = _rows(after, k)
            fresh = [x for x in rows if not c((x[0], x[1]))]  # type: ignore[arg-type]
            dstore = after if len(fresh) == len(rows) else _flat(fresh)
            old = _fun_dots(before, k) if before is not None else []
            live = _fun_dots(after, k)
            kept = set(live)
            dctx = context_of([*new, *(d for d in old if d not in kept)])
        # Joining the delta into this state gives exactly ``after`` at this entry (a view only
        # keeps old dots or adds new ones) and leaves every other entry alone (the delta's
        # context holds only new dots and this entry's dots): apply it directly, O(entry).
        self._apply(ek, old, after, live, new)
        return ORMap._delta({ek: dstore} if dstore else {}, dctx)

    def _update_view(self, ek: EntryKey, before: Any, fn: Callable[[Any], object]) -> ORMap:
        """``update`` of a set, a multi-value register or a nested map, through a full view."""
        kind = ek[1]
        ctx = self._ctx
        view_ctx = ctx.copy()
        view = _make_view(kind, before, view_ctx)
        fn(view)
        after = _view_store(kind, view)
        new = list(view_ctx.dots_not_in(ctx))
        dstore = _discard(kind, after, ctx)
        old = _dot_list(kind, before) if before is not None else []
        live_list = _dot_list(kind, after)
        live = set(live_list)
        dctx = context_of([*new, *(d for d in old if d not in live)])
        self._apply(ek, old, after, live_list, new)
        return ORMap._delta({ek: dstore} if dstore else {}, dctx)

    def _apply(
        self, ek: EntryKey, old: list[Dot], after: Any, live: list[Dot], new: list[Dot]
    ) -> None:
        """Replace the store at ``ek`` (whose dots were ``old``) by ``after``; add ``new``."""
        index = self._index
        if index is not None:
            for d in old:
                index.pop(d, None)
            for d in live:
                index[d] = ek
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

    def remove(self, key: object) -> ORMap:
        """Observed-remove of ``key`` (every kind it holds); returns the delta."""
        k = freeze(key, "key")
        entries = self._entries
        dots: list[Dot] = []
        for kind in EMBEDDED_KINDS:
            store = entries.get((k, kind))
            if store is not None:
                dots += _dot_list(kind, store)
        delta = ORMap._delta({}, context_of(dots))
        self.merge(delta)
        return delta

    # -- join ------------------------------------------------------------------------------
    def merge(self, other: ORMap) -> None:
        """Join in place; O(size of other) when other's context is small (a delta)."""
        if type(other) is not ORMap and not isinstance(other, ORMap):
            raise TypeError(f"cannot merge {type(other).__name__} into ORMap")
        octx = other._ctx
        mine = self._entries
        theirs = other._entries
        if len(theirs) == 1:
            # The delta of an update that wrote one new dot to an entry that its origin did
            # not hold: ({ek: store with exactly that dot}, {dot}). Joining it adds the entry
            # if the dot is new here, and changes nothing otherwise (O(1)). (Merging a map
            # into itself may take this path too: its dot is seen already.)
            for fk, s2 in theirs.items():
                if fk in mine:
                    break
                if type(s2) is not tuple:  # a set or a nested map
                    only = _only_dot(fk[1], s2)
                    if only is not None and _is_only_dot(only, octx):
                        self._merge_one(fk, s2, only)
                        return
                    break
                # A register or counter (r, c, ...): _merge_one, inlined (the hot path).
                r, c = s2[0], s2[1]
                ovv, ocloud = octx.vv, octx.cloud
                dot: Dot
                if ocloud:
                    dot = (r, c)  # type: ignore[assignment]
                    if ovv or len(ocloud) != 1 or dot not in ocloud:
                        break
                elif c != 1 or len(ovv) != 1 or ovv.get(r) != 1:
                    break
                else:
                    dot = (r, 1)  # type: ignore[assignment]
                width = len(s2)  # one entry: the stride of its kind (lww: the common case)
                if not ((width == 6 and fk[1] == "lww") or width == _STRIDE[fk[1]]):
                    break
                ctx = self._ctx
                vv, cloud = ctx.vv, ctx.cloud
                seen = vv.get(r, 0)
                if c <= seen or (cloud and dot in cloud):
                    return  # seen already (and removed since, or held): nothing to join
                mine[fk] = s2  # stores are immutable: the delta's is shared
                index = self._index
                if index is not None:
                    index[dot] = fk
                if c == seen + 1 and not cloud:
                    vv[r] = c
                else:
                    ctx.add(dot)
                return
        if other is self:
            return
        ovv = octx.vv
        size = len(octx.cloud) + (sum(ovv.values()) if ovv else 0)  # octx.size(), inlined
        if size <= _SMALL_CONTEXT_MIN or size <= len(mine) * _SMALL_CONTEXT_RATIO:
            self._merge_small(other)
        else:
            self._index = None
            self._entries = _join_map(mine, self._ctx, theirs, octx)
            self._ctx.merge(octx)

    def _merge_one(self, ek: EntryKey, store: Any, dot: Dot) -> None:
        """Join the delta ``({ek: store}, {dot})``, ``dot`` being the only dot of ``store``."""
        ctx = self._ctx
        vv = ctx.vv
        r, c = dot
        seen = vv.get(r, 0)
        cloud = ctx.cloud
        if c <= seen or (cloud and dot in cloud):
            return  # seen already (and removed since, or held): nothing to join
        # Stores are never edited in place, so the delta's may be shared (a dict is copied
        # all the same: a delta and a state share no mutable container).
        self._entries[ek] = store if type(store) is tuple else dict(store)
        if self._index is not None:
            self._index[dot] = ek
        if c == seen + 1 and not cloud:
            vv[r] = c
        else:
            ctx.add(dot)

    def _merge_small(self, other: ORMap) -> None:
        """The join when ``other``'s context is small: O(|other|) with the reverse index.

        The entries joined are ``other``'s and ours whose dots ``other``'s context holds
        (found through the index); every other entry of ours is left as it is. A register or
        counter store of one entry (a delta group's new key: the replication engine joins a
        batch of one-key deltas into one map and merges that) is joined without the generic
        path's lists: it is kept, or dropped, as its one dot is seen or not.
        """
        mine = self._entries
        index = self._index
        if index is None:
            index = self._index = {d: ek for ek, s in mine.items() for d in _dot_list(ek[1], s)}
        octx = other._ctx
        ovv, ocloud = octx.vv, octx.cloud
        theirs = other._entries
        # Ours only, losing dots the other side has seen (and removed): found before any
        # entry changes, through the index, looking up only the other context's dots.
        extra: set[EntryKey] = set()
        for d in ocloud:
            ek = index.get(d)
            if ek is not None and ek not in theirs:
                extra.add(ek)
        for r, n in ovv.items():
            for c in range(1, n + 1):
                ek = index.get((r, c))  # type: ignore[call-overload]
                if ek is not None and ek not in theirs:
                    extra.add(ek)
        ctx = self._ctx
        vv, cloud = ctx.vv, ctx.cloud
        for ek, s2 in theirs.items():
            s1 = mine.get(ek)
            if s1 is None and type(s2) is tuple and len(s2) == _STRIDE[ek[1]]:
                # One register or counter entry, new here: _discard, inlined. Kept (shared:
                # stores are immutable) unless this side has seen its dot.
                r, c = s2[0], s2[1]
                if c > vv.get(r, 0) and (not cloud or (r, c) not in cloud):
                    mine[ek] = s2
                    index[(r, c)] = ek  # type: ignore[index]
                continue
            self._join_entry(ek, s1, s2, octx, index)
        for ek in extra:
            s1 = mine[ek]
            if type(s1) is tuple and len(s1) == _STRIDE[ek[1]]:
                # One entry, ours only: dropped if the other side has seen its dot (it has:
                # the index found it through that dot).
                r, c = s1[0], s1[1]
                if c <= ovv.get(r, 0) or (r, c) in ocloud:
                    del mine[ek]
                    del index[(r, c)]  # type: ignore[arg-type]
                continue
            self._join_entry(ek, s1, None, octx, index)
        ctx.merge(octx)

    def _join_entry(
        self, ek: EntryKey, s1: Any, s2: Any, octx: CausalContext, index: dict[Dot, EntryKey]
    ) -> None:
        """Join the other side's store ``s2`` at ``ek`` (its context ``octx``) into ours,
        ``s1`` (None: absent on that side), keeping ``index`` (ours) up to date."""
        kind = ek[1]
        if s1 is None:
            s = _discard(kind, s2, self._ctx)  # a new dict for a set or map: nothing shared
        elif s2 is None:
            s = _discard(kind, s1, octx)
        else:
            s = _join(kind, s1, self._ctx, s2, octx)
        if s is s1:
            return
        mine = self._entries
        if s1 is not None:
            for d in _dot_list(kind, s1):
                index.pop(d, None)
        if s:
            mine[ek] = s
            for d in _dot_list(kind, s):
                index[d] = ek
        else:
            mine.pop(ek, None)

    def copy(self) -> ORMap:
        # Stores are immutable once stored: a shallow copy of the dicts is a full copy.
        c = ORMap._delta(self._entries.copy(), self._ctx.copy())
        c._index = None if self._index is None else self._index.copy()
        return c

    # -- codec -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "ormap",
            "v": FORMAT_VERSION,
            "entries": _encode_map(self._entries),
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
        return causal_state_json(self, "ormap", _map_json(self._entries))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ORMap:
        body = check_header(d, cls.kind, _FIELDS)
        entries = get_list(body, "entries", "entries")
        if "ctx" not in body:
            raise DecodeError("ctx", "missing")
        raw_ctx = body["ctx"]
        # CausalContext.from_dict, inlined (a delta's context: one call less per decode)
        ctx = small_context(raw_ctx)
        if ctx is None:
            ctx = CausalContext._from_dict_slowly(raw_ctx, "ctx")
        if len(entries) == 1:
            one = _one_register(entries[0], ctx)
            if one is not None:
                return cls._delta(one, ctx)
        return cls._delta(_decode_map(entries, ctx, "entries", set()), ctx)


def _is_only_dot(dot: Dot, ctx: CausalContext) -> bool:
    """Is ``dot`` the only dot of ``ctx``?"""
    ovv, ocloud = ctx.vv, ctx.cloud
    if ocloud:
        return not ovv and len(ocloud) == 1 and dot in ocloud
    return dot[1] == 1 and len(ovv) == 1 and ovv.get(dot[0]) == 1


def _plain(v: Any) -> Any:
    t = type(v)
    return normalize(v) if t is list or t is tuple or t is dict else v


def _encode_map(store: MapStore) -> list[Any]:
    out = []
    for (k, kind), s in _sorted_items(store) if len(store) > 1 else store.items():
        if type(k) is not str and type(k) is not int:
            k = key_to_json(k)
        if kind == "lww" and len(s) == 6:  # the common entry, inlined
            r, c, w, n, tr, v = s
            t = type(v)
            if t is list or t is dict:
                v = normalize(v)
            out.append([k, kind, [[[r, c], [w, n, tr], v]]])
        else:
            out.append([k, kind, _encode_store(kind, s)])
    return out


def _sorted_items(store: MapStore) -> list[tuple[EntryKey, Any]]:
    """The items of ``store`` by (key's canonical JSON text, kind)."""
    if plain_strings([k for k, _ in store]) == 2:
        return sorted(store.items(), key=first_item)  # str keys, sorting as their texts do
    # (text, kind) pairs are unique, so the tuple sort never compares the keys.
    keyed = [(key_text(k), kind, k) for k, kind in store]
    keyed.sort()
    return [((k, kind), store[(k, kind)]) for _, kind, k in keyed]


def _encode_store(kind: str, store: Any) -> Any:
    # Register and counter stores are kept sorted by dot, as the encoding wants them.
    if kind == "lww":
        return [[[x[0], x[1]], [x[2], x[3], x[4]], _plain(x[5])] for x in _rows(store, 6)]
    if kind == "orset":
        return encode_set_entries(store)
    if kind == "ormap":
        return _encode_map(store)
    if kind == "mvregister":
        return [[[x[0], x[1]], normalize(x[2])] for x in _rows(store, 3)]
    if kind == "gcounter":
        return [[[x[0], x[1]], x[2]] for x in _rows(store, 4)]
    return [[[x[0], x[1]], x[2], x[3]] for x in _rows(store, 4)]


def _map_json(store: MapStore) -> str:
    """The text of ``_encode_map(store)`` inside its brackets, from string fragments.

    Only the list of sorted entry keys (tuples the map holds already) and the list of
    fragments are made: no tuple, list or dict per entry.
    """
    rj = REPLICA_TEXTS
    if len(store) <= 1:  # a delta (or empty): nothing to sort
        for ek, s in store.items():
            k, kind = ek
            text = str_text(k) if type(k) is str else key_json_text(k)
            if kind == "lww" and len(s) == 6:  # the delta of one write, inlined
                r, c, w, n, tr, v = s
                t = type(v)
                return (
                    f'[{text},"lww",[[[{rj[r]},{c}],[{w},{n},{rj[tr]}],'
                    f"{str_text(v) if t is str else v if t is int else json_text(v)}]]]"
                )
            return _entry_json(text, kind, s)
        return ""
    how = plain_strings(map(first_item, store))
    out: list[str] = []
    append = out.append
    if how == 2:  # str keys sorting as their texts do: the tuple order is the text order
        for ek in sorted(store):
            k, kind = ek
            s = store[ek]
            if kind == "lww" and len(s) == 6:  # the common entry, inlined
                r, c, w, n, tr, v = s
                t = type(v)
                append(
                    f'["{k}","lww",[[[{rj[r]},{c}],[{w},{n},{rj[tr]}],'
                    f"{str_text(v) if t is str else v if t is int else json_text(v)}]]]"
                )
            else:
                append(_entry_json(f'"{k}"', kind, s))
        return ",".join(out)
    for ek in sorted(store, key=_sort_text):
        k, kind = ek
        append(_entry_json(f'"{k}"' if how else key_json_text(k), kind, store[ek]))
    return ",".join(out)


def _sort_text(ek: EntryKey) -> str:
    """A string sorting as ``(key's canonical text, kind)`` does: no text holds a NUL."""
    return f"{key_text(ek[0])}\x00{ek[1]}"


def _entry_json(text: str, kind: str, store: Any) -> str:
    """The text of one entry ``[key, kind, body]``, ``text`` being the key's JSON text."""
    rj = REPLICA_TEXTS
    if kind == "lww":
        if len(store) == 6:
            r, c, w, n, tr, v = store
            return f'[{text},"lww",[[[{rj[r]},{c}],[{w},{n},{rj[tr]}],{json_text(v)}]]]'
        body = ",".join(
            [
                f"[[{rj[store[i]]},{store[i + 1]}],[{store[i + 2]},{store[i + 3]},"
                f"{rj[store[i + 4]]}],{json_text(store[i + 5])}]"
                for i in range(0, len(store), 6)
            ]
        )
    elif kind == "orset":
        body = set_entries_json(store)
    elif kind == "ormap":
        body = _map_json(store)
    elif kind == "mvregister":
        body = ",".join(
            [
                f"[[{rj[store[i]]},{store[i + 1]}],{json_text(store[i + 2])}]"
                for i in range(0, len(store), 3)
            ]
        )
    elif kind == "gcounter":
        body = ",".join(
            [f"[[{rj[store[i]]},{store[i + 1]}],{store[i + 2]}]" for i in range(0, len(store), 4)]
        )
    else:
        body = ",".join(
            [
                f"[[{rj[store[i]]},{store[i + 1]}],{store[i + 2]},{store[i + 3]}]"
                for i in range(0, len(store), 4)
            ]
        )
    return f'[{text},"{kind}",[{body}]]'


def _decode_map(entries: list[Any], ctx: CausalContext, path: str, seen: set[Dot]) -> MapStore:
    # Error paths are formatted only when something is wrong (the hot loop of every delta
    # received).
    got: MapStore = {}
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
        if type(kind) is not str or kind not in _OTHER_KINDS:
            raise DecodeError(f"{path}[{i}][1]", f"unknown kind {kind!r}")
        if (k, kind) in got:
            raise DecodeError(f"{path}[{i}]", "duplicate (key, kind)")
        if type(body) is not list or not body:
            raise DecodeError(f"{path}[{i}][2]", "expected a non-empty array")
        if kind == "lww":
            got[(k, kind)] = _decode_lww(body, ctx, path, i, seen)
        else:
            got[(k, kind)] = _decode_store(kind, body, ctx, f"{path}[{i}][2]", seen)
    return got


def _one_register(entry: object, ctx: CausalContext) -> MapStore | None:
    """The map of the well-formed entry ``[key, "lww", [[dot, ts, scalar]]]`` (the delta of one
    write, decoded inline), or None for anything else (``_decode_map`` then decodes it)."""
    if type(entry) is not list or len(entry) != 3:
        return None
    k, kind, body = entry
    if (
        kind != "lww"
        or (type(k) is not str and type(k) is not int)
        or type(body) is not list
        or len(body) != 1
    ):
        return None
    x = body[0]
    if type(x) is not list or len(x) != 3:
        return None
    raw_dot, raw_ts, v = x
    if type(raw_dot) is not list or len(raw_dot) != 2 or type(raw_ts) is not list:
        return None
    r, c = raw_dot
    if type(r) is not str or not r or type(c) is not int or not 1 <= c <= MAX_INT:
        return None
    if c > ctx.vv.get(r, 0) and (r, c) not in ctx.cloud:
        return None
    t = type(v)
    if not (t is str or t is int or t is bool or v is None) or len(raw_ts) != 3:
        return None
    w, n, tr = raw_ts
    if (
        type(w) is not int
        or not 0 <= w <= MAX_INT
        or type(n) is not int
        or not 0 <= n <= MAX_INT
        or type(tr) is not str
        or not tr
    ):
        return None
    return {(k, "lww"): (r, c, w, n, tr, v)}


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
        s: SetStore = {}
        for i, entry in enumerate(body):
            p = f"{path}[{i}]"
            if type(entry) is not list or len(entry) != 2:
                raise DecodeError(p, "expected [element, [dot, ...]]")
            try:
                k = freeze(entry[0])
            except TypeError as exc:
                raise DecodeError(f"{p}[0]", str(exc)) from exc
            if k in s:
                raise DecodeError(f"{p}[0]", "duplicate element")
            if type(entry[1]) is not list or not entry[1]:
                raise DecodeError(f"{p}[1]", "expected a non-empty array of dots")
            dots: list[Dot] = []
            for j, x in enumerate(entry[1]):
                dot = dot_from_json(x, f"{p}[1][{j}]")
                _check_dot(dot, ctx, seen, f"{p}[1][{j}]")
                dots.append(dot)
            dots.sort()
            s[k] = flat_dots(dots)
        return s
    if kind == "mvregister":
        e = decode_dotfun(body, ctx, path)  # checks every dot is unique here and in ctx
        for i, d in enumerate(e):
            if d in seen:
                raise DecodeError(f"{path}[{i}][0]", "dot used twice")
            seen.add(d)
        return _flat([(r, c, v) for (r, c), v in sorted(e.items())])
    width = 3 if kind == "pncounter" else 2
    out: list[FunStore] = []
    for i, entry in enumerate(body):
        p = f"{path}[{i}]"
        if type(entry) is not list or len(entry) != width:
            raise DecodeError(p, f"expected an array of {width} items")
        dot = dot_from_json(entry[0], f"{p}[0]")
        _check_dot(dot, ctx, seen, f"{p}[0]")
        nums = entry[1:] if kind == "pncounter" else [entry[1], 0]
        for j, x in enumerate(nums[: width - 1]):
            if type(x) is not int or not 0 <= x <= MAX_INT:
                raise DecodeError(f"{p}[{j + 1}]", f"expected an integer >= 0, got {x!r}")
        out.append((dot[0], dot[1], nums[0], nums[1]))
    out.sort()
    return _flat(out)


def _decode_lww(
    body: list[Any], ctx: CausalContext, path: str, pos: int, seen: set[Dot]
) -> FunStore:
    """Decode the body of ``path[pos]``: ``[[dot, [wall_ms, logical, replica], value], ...]``."""
    out: list[FunStore] = []
    contains = ctx.contains
    for i, entry in enumerate(body):
        if type(entry) is not list or len(entry) != 3:
            raise DecodeError(f"{path}[{pos}][2][{i}]", "expected an array of 3 items")
        raw_dot, raw_ts, value = entry
        dot = _dot_or_none(raw_dot)
        if dot is None or dot in seen or not contains(dot):
            p = f"{path}[{pos}][2][{i}][0]"
            dot = dot_from_json(raw_dot, p)
            _check_dot(dot, ctx, seen, p)  # raises
        seen.add(dot)
        if not (
            type(raw_ts) is list
            and len(raw_ts) == 3
            and type(w := raw_ts[0]) is int
            and 0 <= w <= MAX_INT
            and type(n := raw_ts[1]) is int
            and 0 <= n <= MAX_INT
            and type(r := raw_ts[2]) is str
            and r
        ):  # the checked path, for its error message
            w, n, r = timestamp_from_json(raw_ts, f"{path}[{pos}][2][{i}][1]")
        t = type(value)
        if not (t is str or t is int or t is bool or value is None):
            try:
                check_json(value, f"{path}[{pos}][2][{i}][2]")
            except TypeError as exc:
                raise DecodeError(f"{path}[{pos}][2][{i}][2]", str(exc)) from exc
            value = normalize(value)
        out.append((dot[0], dot[1], w, n, r, value))
    if len(out) > 1:
        out.sort()  # dots are unique: the sort never compares the values
    return _flat(out)
