"""The LWW register embedded in an ORMap (kind ``lww``): a dot-tagged last-writer-wins register.

A standalone :class:`~crdt.lww.LWWRegister` is not causal, so a map could not remove it by
the dots it has seen. Embedded, each write is an entry of a DotFun tagged with a fresh dot
and carrying its :class:`~crdt.hlc.Timestamp`, and replaces the entries it has seen; writes
that did not see each other are both kept, and the value is the one with the greatest
timestamp (ties between equal timestamps: the greater canonical JSON text, as
``LWWRegister``). A remove of the key keeps only the writes it did not see (Riak map
semantics). Timestamps, the clock bound and the checks are those of ``LWWRegister.set``.

Store: flat entries ``(r, c, wall_ms, logical, ts_replica, value)`` (``crdt/_flat.py``),
sorted by dot; with a str, int, float, bool or null value an entry is a tuple of atoms.
Encoding (the body of the map entry): ``[[dot, [wall_ms, logical, replica], value], ...]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from crdt._flat import flat, rows
from crdt._json import (
    REPLICA_TEXTS,
    canonical,
    check_json,
    json_text,
    normalize,
    plain,
    read_json,
    str_text,
)
from crdt.causal_context import CausalContext, claim_dot
from crdt.dot import MAX_INT, Dot, check_replica, dot_from_json, dot_or_none
from crdt.embedded import DotTaker, FlatKind
from crdt.errors import DecodeError
from crdt.hlc import (
    DEFAULT_MAX_SKEW_MS,
    Timestamp,
    check_time,
    timestamp_from_json,
    write_timestamp,
)
from crdt.lww import check_timestamp

__all__ = ["EmbeddedLWW"]

Store = tuple[Any, ...]  # (r, c, wall_ms, logical, ts_replica, value, ...)


def _winner(store: Store) -> tuple[Timestamp, Any] | None:
    """The ``(timestamp, value)`` of the winning entry (None for an empty store)."""
    if len(store) == 6:
        return store[2:5], store[5]  # type: ignore[return-value]
    best: tuple[Timestamp, Any] | None = None
    for i in range(0, len(store), 6):
        ts: Timestamp = store[i + 2 : i + 5]  # type: ignore[assignment]
        v = store[i + 5]
        if best is None or ts > best[0] or (ts == best[0] and canonical(v) > canonical(best[1])):
            best = (ts, v)
    return best


class EmbeddedLWW(DotTaker):
    """An LWW register in an ORMap (what ``update``'s ``fn`` gets for ``"lww"``):
    ``set(replica, value, timestamp=None, now_ms=None)``, ``value``, ``timestamp``.

    >>> from crdt import ORMap
    >>> a, b = ORMap(), ORMap()
    >>> d1 = a.update("A", "theme", "lww", lambda r: r.set("A", "dark", now_ms=1_000))
    >>> d2 = b.update("B", "theme", "lww", lambda r: r.set("B", "light", now_ms=2_000))
    >>> a.merge(d2); b.merge(d1)            # concurrent writes: the later timestamp wins
    >>> a.value == b.value == {"theme": "light"}, a.get("theme").timestamp
    (True, (2000, 0, 'B'))
    """

    kind: ClassVar[str] = "lww"
    clock_bound_ms: ClassVar[int] = DEFAULT_MAX_SKEW_MS
    __slots__ = ()

    @property
    def value(self) -> Any:
        best = _winner(self.store)
        return None if best is None else normalize(best[1])

    @property
    def timestamp(self) -> Timestamp | None:
        best = _winner(self.store)
        return None if best is None else best[0]

    def set(
        self,
        replica: str,
        value: Any,
        timestamp: Timestamp | None = None,
        now_ms: int | None = None,
    ) -> EmbeddedLWW:
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
        # The current winner's timestamp, the two common cases inlined (calling _winner for
        # them costs 3-8% of an ORMap update in crdt_bench.py): no entry yet (a new key), or
        # one entry.
        store = self.store
        current: Timestamp | None
        if not store:
            current = None
        elif len(store) == 6:
            current = store[2:5]  # type: ignore[assignment]
        else:
            current = self.timestamp
        given = None if timestamp is None else check_timestamp(timestamp)
        ts = write_timestamp(current, replica, now_ms, given, self.clock_bound_ms)
        if current is not None and ts <= current:
            return self
        if t is list or t is tuple or t is dict:
            value = normalize(value)
        self.store = (replica, self.take_dot(replica)[1], ts[0], ts[1], ts[2], value)
        return self

    def __repr__(self) -> str:
        return f"EmbeddedLWW({self.value!r})"


class LWWKind(FlatKind):
    """The embedded ``lww``: entries ``(r, c, wall_ms, logical, ts_replica, value)``."""

    kind = "lww"
    width = 6
    view_type = EmbeddedLWW

    def value(self, store: Store) -> Any:
        best = _winner(store)
        return None if best is None else normalize(best[1])

    def encode(self, store: Store) -> list[Any]:
        return [[[x[0], x[1]], [x[2], x[3], x[4]], _plain(x[5])] for x in rows(store, 6)]

    def to_json(self, store: Store) -> str:
        rj = REPLICA_TEXTS
        if len(store) == 6:  # one write (every delta of a set: e2e_bench.py), inlined
            r, c, w, n, tr, v = store
            t = type(v)
            return (
                f"[[[{rj[r]},{c}],[{w},{n},{rj[tr]}],"
                f"{str_text(v) if t is str else v if t is int else json_text(v)}]]"
            )
        body = ",".join(
            [
                f"[[{rj[store[i]]},{store[i + 1]}],[{store[i + 2]},{store[i + 3]},"
                f"{rj[store[i + 4]]}],{json_text(store[i + 5])}]"
                for i in range(0, len(store), 6)
            ]
        )
        return f"[{body}]"

    def decode(self, body: list[Any], ctx: CausalContext, path: str, seen: set[Dot]) -> Store:
        # Error paths are formatted only when something is wrong (every delta of a map of
        # registers received goes through here: e2e_bench.py).
        if len(body) == 1:
            one = _one_write(body[0], ctx, seen)
            if one is not None:
                return one
        out: list[Store] = []
        contains = ctx.contains
        for i, entry in enumerate(body):
            if type(entry) is not list or len(entry) != 3:
                raise DecodeError(f"{path}[{i}]", "expected an array of 3 items")
            raw_dot, raw_ts, value = entry
            dot = dot_or_none(raw_dot)
            if dot is None or dot in seen or not contains(dot):
                p = f"{path}[{i}][0]"
                dot = dot_from_json(raw_dot, p)
                claim_dot(dot, ctx, seen, p)  # raises
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
                w, n, r = timestamp_from_json(raw_ts, f"{path}[{i}][1]")
            t = type(value)
            if not (t is str or t is int or t is bool or value is None):
                read_json(value, f"{path}[{i}][2]")
                value = normalize(value)
            out.append((dot[0], dot[1], w, n, r, value))
        if len(out) > 1:
            out.sort()  # dots are unique: the sort never compares the values
        return flat(out)


def _one_write(x: object, ctx: CausalContext, seen: set[Dot]) -> Store | None:
    """The entry of a well-formed ``[dot, [wall_ms, logical, replica], scalar]`` whose dot is
    in ``ctx`` and not in ``seen`` (then added to it): the body of the delta of one write,
    decoded inline; None for anything else (the general loop then decodes it, or says what
    is wrong)."""
    if type(x) is not list or len(x) != 3:
        return None
    raw_dot, raw_ts, v = x
    if type(raw_dot) is not list or len(raw_dot) != 2 or type(raw_ts) is not list:
        return None
    r, c = raw_dot
    if type(r) is not str or not r or type(c) is not int or not 1 <= c <= MAX_INT:
        return None
    dot: Dot = (r, c)  # type: ignore[assignment]
    if (c > ctx.vv.get(r, 0) and dot not in ctx.cloud) or dot in seen:
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
    seen.add(dot)
    return (r, c, w, n, tr, v)


def _plain(v: Any) -> Any:
    t = type(v)
    return normalize(v) if t is list or t is tuple or t is dict else v


LWW = LWWKind()
