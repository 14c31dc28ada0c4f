"""MVRegister: a multi-value register that keeps every concurrent write as a sibling.

State: a ``DotFun[dot -> value]`` and a causal context (Almeida, Shoker, Baquero, "Delta
State Replicated Data Types", 2018, section 7.3, "multi-value register"). ``set(r, v)`` tags
``v`` with a fresh dot of ``r`` and drops every value this replica has seen; its delta is
``({d: v}, {d} | every dot seen)``: the register itself, so that a replica that missed the
delta of an earlier set (a lost push, taken out of order) drops the value that set
overwrote too, and does not show it as a sibling of the later one. Writes that did not see
each other both survive the join: the register then holds *siblings*, listed by ``values``
in dot order (replica id, then counter), which is stable across replicas. A later ``set`` by
a replica that has merged all siblings replaces them all. ``resolve(fn)`` folds siblings for
the reader, e.g. a union of lists.
``clear()`` drops every value seen here (delta: the empty register under the whole context),
so a ``set`` concurrent with it survives; ``is_live()``: the register holds a value.

Encoding: ``{"type": "mvregister", "v": 1, "entries": [[[r, n], value], ...], "ctx": {...}}``,
entries sorted by dot.

Embedded in an ORMap (kind ``mvregister``, :class:`MVRegisterKind`): the entries under the
map's context, kept as flat entries ``(r, c, value)`` sorted by dot (``crdt/_flat.py``);
``update``'s ``fn`` gets an ``MVRegister`` over them and a copy of the map's context, and the
body of the map entry is encoded as ``entries`` is here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from crdt._codec import FORMAT_VERSION
from crdt._flat import flat, rows
from crdt._json import (
    REPLICA_TEXTS,
    canonical,
    causal_state_json,
    check_json,
    json_text,
    normalize,
    read_json,
)
from crdt._split import CAUSAL_OVERHEAD, check_budget, dot_bytes, pack, removed_contexts, utf8_len
from crdt.causal_context import CausalContext, context_of, decode_causal
from crdt.dot import Dot, check_replica, dot_from_json, dot_to_json
from crdt.dotstores import DotFun
from crdt.embedded import FlatStore, ViewedKind
from crdt.errors import DecodeError

__all__ = ["MVRegister"]

_FIELDS = frozenset({"entries", "ctx"})  # the body fields of the encoding

R = TypeVar("R")
Store = tuple[Any, ...]  # an embedded register's flat entries: (r, c, value, ...)


class MVRegister:
    """A multi-value register.

    >>> a, b = MVRegister(), MVRegister()
    >>> d1 = a.set("A", ["milk"])
    >>> d2 = b.set("B", ["eggs"])
    >>> a.merge(d2); a.values                  # concurrent writes: two siblings
    (['milk'], ['eggs'])
    >>> a.resolve(lambda vs: sorted(set().union(*vs)))
    ['eggs', 'milk']
    >>> _ = a.set("A", ["bread"]); a.value     # A has seen both: one value again
    (['bread'],)
    """

    kind: ClassVar[str] = "mvregister"
    __slots__ = ("_ctx", "_store")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self._store: DotFun[Any] = DotFun()
        self._ctx = CausalContext()

    @classmethod
    def _over(cls, store: Store | None, ctx: CausalContext) -> MVRegister:
        """A register holding the flat entries ``store`` (None: none) under ``ctx`` (taken,
        not copied): the view of an embedded register."""
        r: MVRegister = cls.__new__(cls)
        r._store = DotFun({x[:2]: x[2] for x in rows(store, 3)} if store else None)  # type: ignore[misc]
        r._ctx = ctx
        return r

    def _flat_entries(self) -> Store:
        """The entries as a new flat store, sorted by dot (the dots are unique: the sort never
        compares the values)."""
        return flat([(r, c, v) for (r, c), v in sorted(self._store.entries.items())])

    @property
    def values(self) -> tuple[Any, ...]:
        """The siblings, ordered by their dots (copies: editing them changes nothing)."""
        e = self._store.entries
        return tuple(normalize(e[d]) for d in sorted(e))

    @property
    def value(self) -> tuple[Any, ...]:
        """Same as ``values``."""
        return self.values

    @property
    def sibling_count(self) -> int:
        """How many siblings the register holds: ``len(values)``, without copying them."""
        return len(self._store.entries)

    def resolve(self, fn: Callable[[tuple[Any, ...]], R]) -> R:
        """``fn(values)``: fold the siblings into one value for the reader."""
        return fn(self.values)

    @property
    def context(self) -> CausalContext:
        return self._ctx

    def set(self, replica: str, value: Any) -> MVRegister:
        """Replace every value seen here with ``value``; returns the delta (the new value
        under the whole context: it supersedes every value seen here, not only those held)."""
        check_replica(replica)
        check_json(value)
        value = normalize(value)
        dot = self._ctx.next_dot(replica)
        self._store.entries = {dot: value}
        self._ctx.add(dot)
        delta = MVRegister()
        delta._store.entries[dot] = value
        delta._ctx = self._ctx.copy()
        return delta

    def clear(self) -> MVRegister:
        """Drop every value seen here (an observed remove: the register reads as empty, and
        a concurrent ``set`` survives the join); returns the delta, the empty register
        under this register's whole context (every dot seen here, compact)."""
        delta = MVRegister()
        delta._ctx = self._ctx.copy()
        self._store.entries = {}
        return delta

    def max_counter(self, replica: str) -> int:
        """The largest dot counter of ``replica`` this state has seen (0 if none): its
        context's, which covers every dot it holds. Only ``replica`` raises it, by its own
        events: a receiver refuses a state that raises its own (``sync.replica.inbound``)."""
        return self._ctx.max_counter(replica)

    def is_live(self) -> bool:
        """Holds a value (cleared, or never set: not live)."""
        return bool(self._store.entries)

    def merge(self, other: MVRegister) -> None:
        if not isinstance(other, MVRegister):
            raise TypeError(f"cannot merge {type(other).__name__} into MVRegister")
        if other is self:
            return
        self._store.join(self._ctx, other._store, other._ctx)
        self._ctx.merge(other._ctx)

    def copy(self) -> MVRegister:
        c = MVRegister()
        c._store = self._store.copy()
        c._ctx = self._ctx.copy()
        return c

    def is_bottom(self) -> bool:
        return self._store.is_empty() and self._ctx.is_bottom()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MVRegister):
            return NotImplemented
        if self._ctx != other._ctx:
            return False
        e1, e2 = self._store.entries, other._store.entries
        return e1.keys() == e2.keys() and all(
            canonical(v) == canonical(e2[d]) for d, v in e1.items()
        )

    def __repr__(self) -> str:
        return f"MVRegister({list(self.values)!r})"

    def split(self, max_bytes: int) -> list[MVRegister]:
        """This register as deltas of at most ``max_bytes`` each when encoded, whose join is
        the register: ``[copy]`` if it fits; otherwise pieces of siblings under the context
        of their own dots, and pieces of the overwritten values' dots (no value), any of
        which, in any order, is a valid delta (``crdt/_split.py``)."""
        budget = check_budget(max_bytes)
        e = self._store.entries
        rj = REPLICA_TEXTS
        units = [(d, utf8_len(f"[[{rj[d[0]]},{d[1]}],{json_text(e[d])}]") + 1) for d in sorted(e)]
        frame = utf8_len(causal_state_json("mvregister", "", self._ctx.to_json()))
        if frame + sum(n for _, n in units) - (1 if units else 0) <= budget:
            return [self.copy()]
        room = max(1, budget - CAUSAL_OVERHEAD)
        out: list[MVRegister] = []
        for group in pack(((d, n + dot_bytes(d)) for d, n in units), room):
            piece = MVRegister()
            piece._store.entries = {d: e[d] for d in group}
            piece._ctx = context_of(group)
            out.append(piece)
        for ctx in removed_contexts(self._ctx, e, room):
            piece = MVRegister()
            piece._ctx = ctx
            out.append(piece)
        return out or [self.copy()]  # a bottom: one piece

    def to_dict(self) -> dict[str, Any]:
        e = self._store.entries
        return {
            "type": self.kind,
            "v": FORMAT_VERSION,
            "entries": [[dot_to_json(d), normalize(e[d])] for d in sorted(e)],
            "ctx": self._ctx.to_dict(),
        }

    def to_json(self) -> str:
        """``json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"),
        allow_nan=False)``, written without the dict (every delta sent is encoded once)."""
        rj = REPLICA_TEXTS
        e = self._store.entries
        entries = ",".join(
            [f"[[{rj[d[0]]},{d[1]}],{json_text(e[d])}]" for d in (sorted(e) if len(e) > 1 else e)]
        )
        return causal_state_json("mvregister", entries, self._ctx.to_json())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MVRegister:
        entries, ctx = decode_causal(d, cls.kind, _FIELDS)
        r = cls()
        r._ctx = ctx
        r._store.entries = decode_dotfun(entries, ctx, "entries")
        return r


def decode_dotfun(entries: list[Any], ctx: CausalContext, path: str) -> dict[Dot, Any]:
    """Decode ``[[dot, value], ...]`` checking values are JSON and dots are in ``ctx``."""
    out: dict[Dot, Any] = {}
    for i, entry in enumerate(entries):
        p = f"{path}[{i}]"
        if type(entry) is not list or len(entry) != 2:
            raise DecodeError(p, "expected [dot, value]")
        dot = dot_from_json(entry[0], f"{p}[0]")
        if dot in out:
            raise DecodeError(f"{p}[0]", "duplicate dot")
        if not ctx.contains(dot):
            raise DecodeError(f"{p}[0]", "dot not covered by ctx")
        read_json(entry[1], f"{p}[1]")
        out[dot] = normalize(entry[1])
    return out


class MVRegisterKind(FlatStore, ViewedKind):
    """The embedded ``mvregister`` (:mod:`crdt.embedded`): flat entries ``(r, c, value)``
    viewed as an MVRegister over a copy of the map's context."""

    kind = "mvregister"
    width = 3

    def value(self, store: Store) -> tuple[Any, ...]:
        return tuple(normalize(v) for v in store[2::3])

    def view(self, store: Store | None, ctx: CausalContext) -> MVRegister:
        return MVRegister._over(store, ctx)

    def store_of(self, view: MVRegister) -> Store:
        return view._flat_entries()

    def encode(self, store: Store) -> list[Any]:
        return [[[x[0], x[1]], normalize(x[2])] for x in rows(store, 3)]

    def to_json(self, store: Store) -> str:
        rj = REPLICA_TEXTS
        body = ",".join(
            [
                f"[[{rj[store[i]]},{store[i + 1]}],{json_text(store[i + 2])}]"
                for i in range(0, len(store), 3)
            ]
        )
        return f"[{body}]"

    def decode(self, body: list[Any], ctx: CausalContext, path: str, seen: set[Dot]) -> Store:
        e = decode_dotfun(body, ctx, path)  # checks every dot is unique here and in ctx
        for i, d in enumerate(e):
            if d in seen:
                raise DecodeError(f"{path}[{i}][0]", "dot used twice")
            seen.add(d)
        return flat([(r, c, v) for (r, c), v in sorted(e.items())])


MVREGISTER = MVRegisterKind()
