"""LWWRegister: a last-writer-wins register ordered by hybrid logical clock timestamps.

State: ``(value, timestamp)``; join: keep the pair with the greater timestamp (Shapiro et al.
2011, spec. 8). Timestamps are :class:`~crdt.hlc.Timestamp` ``(wall_ms, logical, replica)``,
so concurrent writes in the same millisecond are ordered by the logical part and then by
replica id. In the (misuse) case of two different values under one identical timestamp, the
greater canonical JSON text wins, so the join stays commutative.

``set(replica, value, timestamp=None, now_ms=None)``: without ``timestamp`` the register
makes one: the next HLC tick after its current timestamp at physical time ``now_ms`` (or a
logical step when ``now_ms`` is None; the register never reads the system clock), which
never fails: over a timestamp ahead of ``now_ms`` (a peer's fast clock, or ours before it
was set right) it keeps that wall time and counts the logical part
(:func:`~crdt.hlc.write_timestamp`). A ``timestamp`` given by the caller more than
``clock_bound_ms`` ahead of ``now_ms`` raises :class:`~crdt.errors.ClockSkewError` (nothing
changes); without ``now_ms`` there is no local clock to check against.
``merge`` never raises: it is a join. When the incoming winner is more than the bound ahead
of the local clock (``now_ms`` passed to ``merge``, else the last ``now_ms`` this register
was given, even one behind an earlier one: the clock was set back), the
``on_skew(timestamp, now_ms)`` hook is called if set, and the merge still happens: refusing
it would make replicas diverge.

``clear(replica, timestamp=None, now_ms=None)`` deletes: it is not causal (an LWW register
keeps no causal history), so a delete is a *tombstone* written like a value, with a new
timestamp, and ordered like one (Cassandra's deletes): a set with a later timestamp, even a
concurrent one, wins over it, and one with an earlier timestamp loses. A tombstone reads as
the bottom's value (None) and ``is_live()`` is False for it (and for the bottom). Under one
identical timestamp (misuse) a tombstone beats a value.

Encoding: ``{"type": "lww", "v": 1, "value": value, "ts": [wall_ms, logical, replica]}``;
the bottom has ``"value": null, "ts": null``; a tombstone has ``"value": null`` and a
timestamp, and one more field, ``"deleted": true`` (a register never deleted encodes as it
always did).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from crdt._codec import FORMAT_VERSION, check_header, field
from crdt._json import (
    REPLICA_TEXTS,
    canonical,
    check_json,
    encoding_rank,
    json_text,
    normalize,
    read_json,
)
from crdt._split import check_budget
from crdt.dot import check_replica
from crdt.errors import DecodeError, shown
from crdt.hlc import (
    DEFAULT_MAX_SKEW_MS,
    Timestamp,
    check_time,
    is_timestamp,
    timestamp_from_json,
    write_timestamp,
)

__all__ = ["LWWRegister"]

_FIELDS = frozenset({"value", "ts", "deleted"})  # the body fields ("deleted": optional)

SkewHook = Callable[[Timestamp, int], None]


def check_timestamp(timestamp: object) -> Timestamp:
    """``timestamp`` if it is a well-formed :class:`~crdt.hlc.Timestamp`, else TypeError."""
    if not is_timestamp(timestamp):
        raise TypeError(
            "timestamp must be a Timestamp (wall_ms >= 0, logical >= 0, replica), "
            f"got {type(timestamp).__name__} {timestamp!r}"
        )
    return timestamp


def wins(
    ts: Timestamp,
    value: Any,
    cur_ts: Timestamp | None,
    cur_value: Any,
    deleted: bool = False,
    cur_deleted: bool = False,
) -> bool:
    """Does ``(ts, value)`` beat ``(cur_ts, cur_value)``? (At one timestamp: a tombstone,
    then the greater :func:`~crdt._json.encoding_rank`: every replica keeps the same text
    whichever it heard of first.)"""
    if cur_ts is None or ts > cur_ts:
        return True
    if ts != cur_ts or deleted != cur_deleted:
        return ts == cur_ts and deleted
    return encoding_rank(value) > encoding_rank(cur_value)


class LWWRegister:
    """A last-writer-wins register.

    >>> a, b = LWWRegister(), LWWRegister()
    >>> d1 = a.set("A", "dark", now_ms=1_000)
    >>> d2 = b.set("B", "light", now_ms=1_000)   # same millisecond: replica id breaks the tie
    >>> a.merge(d2); b.merge(d1)
    >>> a.value, b.value, a.timestamp
    ('light', 'light', (1000, 0, 'B'))
    >>> a.set("A", "x", timestamp=Timestamp(999_999, 0, "A"), now_ms=2_000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    crdt.errors.ClockSkewError: timestamp wall_ms=999999 is 997999 ms ahead of ...
    """

    kind: ClassVar[str] = "lww"
    __slots__ = ("_deleted", "_local_ms", "_ts", "_value", "clock_bound_ms", "on_skew")
    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self, *, clock_bound_ms: int = DEFAULT_MAX_SKEW_MS, on_skew: SkewHook | None = None
    ) -> None:
        if type(clock_bound_ms) is not int or clock_bound_ms < 0:
            raise ValueError(f"clock_bound_ms must be an int >= 0, got {shown(clock_bound_ms)}")
        self.clock_bound_ms = clock_bound_ms
        self.on_skew = on_skew
        self._value: Any = None
        self._ts: Timestamp | None = None
        self._local_ms: int | None = None
        self._deleted = False  # the value is a tombstone (see clear)

    @property
    def value(self) -> Any:
        """The current value (None for the bottom); a copy: editing it changes nothing."""
        return normalize(self._value)

    @property
    def timestamp(self) -> Timestamp | None:
        return self._ts

    def set(
        self,
        replica: str,
        value: Any,
        timestamp: Timestamp | None = None,
        now_ms: int | None = None,
    ) -> LWWRegister:
        """Write ``value``; returns the delta. A write with an older timestamp loses."""
        check_json(value)
        return self._write(replica, normalize(value), False, timestamp, now_ms)

    def clear(
        self, replica: str, timestamp: Timestamp | None = None, now_ms: int | None = None
    ) -> LWWRegister:
        """Delete: write a tombstone, timestamped as ``set`` does; returns the delta. A set
        with a later timestamp (concurrent or not) wins over it."""
        return self._write(replica, None, True, timestamp, now_ms)

    def max_counter(self, replica: str) -> int:
        """0: a register counts nothing per replica (its timestamp's logical part never
        runs out, :func:`crdt.hlc.tick`)."""
        return 0

    def is_live(self) -> bool:
        """Holds a value: neither the bottom nor a tombstone."""
        return self._ts is not None and not self._deleted

    def _write(
        self,
        replica: str,
        value: Any,
        deleted: bool,
        timestamp: Timestamp | None,
        now_ms: int | None,
    ) -> LWWRegister:
        check_replica(replica)
        if now_ms is not None:
            check_time(now_ms)
        given = None if timestamp is None else check_timestamp(timestamp)
        ts = write_timestamp(self._ts, replica, now_ms, given, self.clock_bound_ms)
        if now_ms is not None:  # the clock as it reads now, even if set back since
            self._local_ms = now_ms
        delta = self._empty()
        delta._value, delta._ts, delta._deleted = value, ts, deleted
        if wins(ts, value, self._ts, self._value, deleted, self._deleted):
            self._value, self._ts, self._deleted = value, ts, deleted
        return delta

    def merge(self, other: LWWRegister, now_ms: int | None = None) -> None:
        """Join: keep the greater timestamp. Never raises for an LWWRegister.

        ``on_skew`` is called (and the merge still happens) when the winner came from
        ``other`` and is more than ``clock_bound_ms`` ahead of the local clock.
        """
        if not isinstance(other, LWWRegister):
            raise TypeError(f"cannot merge {type(other).__name__} into LWWRegister")
        ts = other._ts
        if ts is None or not wins(
            ts, other._value, self._ts, self._value, other._deleted, self._deleted
        ):
            return
        local = now_ms if now_ms is not None else self._local_ms
        hook = self.on_skew
        if hook is not None and local is not None and ts[0] - local > self.clock_bound_ms:
            hook(ts, local)
        self._value, self._ts, self._deleted = other._value, ts, other._deleted

    def _empty(self) -> LWWRegister:
        return LWWRegister(clock_bound_ms=self.clock_bound_ms, on_skew=self.on_skew)

    def copy(self) -> LWWRegister:
        c = self._empty()
        c._value, c._ts, c._local_ms = self._value, self._ts, self._local_ms
        c._deleted = self._deleted
        return c

    def split(self, max_bytes: int) -> list[LWWRegister]:
        """``[copy]``: one value cannot be cut (the engine refuses a value too big for a
        message at the write); the same contract as the other kinds' ``split``."""
        check_budget(max_bytes)
        return [self.copy()]

    def is_bottom(self) -> bool:
        return self._ts is None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LWWRegister):
            return NotImplemented
        return (
            self._ts == other._ts
            and self._deleted == other._deleted
            and (self._ts is None or canonical(self._value) == canonical(other._value))
        )

    def __repr__(self) -> str:
        if self._deleted:
            return f"LWWRegister(<deleted>, ts={self._ts!r})"
        return f"LWWRegister({self._value!r}, ts={self._ts!r})"

    def to_dict(self) -> dict[str, Any]:
        d = {
            "type": self.kind,
            "v": FORMAT_VERSION,
            "value": normalize(self._value),
            "ts": None if self._ts is None else [self._ts[0], self._ts[1], self._ts[2]],
        }
        if self._deleted:
            d["deleted"] = True
        return d

    def to_json(self) -> str:
        """``json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"),
        allow_nan=False)``, written without the dict (every delta sent is encoded once)."""
        ts = self._ts
        value = json_text(self._value)
        if ts is None:
            return f'{{"type":"lww","v":{FORMAT_VERSION},"value":{value},"ts":null}}'
        tail = ',"deleted":true}' if self._deleted else "}"
        return (
            f'{{"type":"lww","v":{FORMAT_VERSION},"value":{value},'
            f'"ts":[{ts[0]},{ts[1]},{REPLICA_TEXTS[ts[2]]}]{tail}'
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LWWRegister:
        body = check_header(d, cls.kind, _FIELDS)
        value = field(body, "value", "value")
        raw_ts = field(body, "ts", "ts")
        read_json(value, "value")
        r = cls()
        deleted = body.get("deleted", False)
        if deleted is not True and "deleted" in body:
            raise DecodeError("deleted", f"expected true (or no field), got {shown(deleted)}")
        if raw_ts is None:
            if value is not None:
                raise DecodeError("ts", "null timestamp with a non-null value")
            if deleted:
                raise DecodeError("deleted", "a tombstone needs a timestamp")
            return r
        if deleted and value is not None:
            raise DecodeError("value", "a tombstone holds no value (null)")
        r._ts = timestamp_from_json(raw_ts, "ts")
        r._value = normalize(value)
        r._deleted = deleted
        return r
