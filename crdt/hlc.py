"""A hybrid logical clock (HLC) with the physical time passed in.

A timestamp is ``(wall_ms, logical, replica)``, compared as a tuple: the physical part first,
then a logical counter that orders events within one millisecond (or while the physical clock
lags behind a timestamp already seen), then the replica id, which breaks the remaining ties so
that two distinct writers never produce equal timestamps. Kulkarni et al., "Logical Physical
Clocks and Consistent Snapshots in Globally Distributed Databases" (2014).

The clock never reads the system clock: every call takes ``now_ms`` from the caller (time is
an input, STYLE.md practice 6). ``observe`` enforces a skew bound: a remote timestamp more
than ``max_skew_ms`` ahead of ``now_ms`` raises :class:`~crdt.errors.ClockSkewError` instead
of dragging the clock into the future.

Encoded as ``[wall_ms, logical, replica]``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from crdt.dot import check_replica
from crdt.errors import ClockSkewError, DecodeError

__all__ = ["HybridLogicalClock", "Timestamp"]


class Timestamp(NamedTuple):
    """An HLC timestamp; tuple order is the clock order (ties broken by replica id).

    >>> Timestamp(5, 0, "A") < Timestamp(5, 1, "A") < Timestamp(5, 1, "B") < Timestamp(6, 0, "A")
    True
    """

    wall_ms: int
    logical: int
    replica: str

    def to_json(self) -> list[Any]:
        return [self.wall_ms, self.logical, self.replica]

    @classmethod
    def from_json(cls, x: object, path: str) -> Timestamp:
        if type(x) is not list or len(x) != 3:
            raise DecodeError(path, f"a timestamp must be [wall_ms, logical, replica], got {x!r}")
        wall, logical, replica = x
        if type(wall) is not int or wall < 0:
            raise DecodeError(f"{path}[0]", f"wall_ms must be an integer >= 0, got {wall!r}")
        if type(logical) is not int or logical < 0:
            raise DecodeError(f"{path}[1]", f"logical must be an integer >= 0, got {logical!r}")
        if type(replica) is not str or not replica:
            raise DecodeError(f"{path}[2]", f"replica must be a non-empty string, got {replica!r}")
        return cls(wall, logical, replica)

    def after(self, replica: str, now_ms: int | None) -> Timestamp:
        """The next timestamp of ``replica`` after this one, at physical time ``now_ms``."""
        return tick(self, replica, now_ms)


def tick(last: Timestamp | None, replica: str, now_ms: int | None) -> Timestamp:
    """A local event: greater than ``last``; ``now_ms`` None means "logical step only"."""
    last_wall = last.wall_ms if last is not None else 0
    last_logical = last.logical if last is not None else -1
    if now_ms is not None and now_ms > last_wall:
        return Timestamp(now_ms, 0, replica)
    return Timestamp(last_wall, last_logical + 1, replica)


def check_time(now_ms: object) -> int:
    if type(now_ms) is not int or now_ms < 0:
        raise TypeError(f"now_ms must be an int >= 0 (milliseconds), got {now_ms!r}")
    return now_ms


class HybridLogicalClock:
    """The HLC of one replica.

    >>> clock = HybridLogicalClock("A")
    >>> clock.now(1000)
    Timestamp(wall_ms=1000, logical=0, replica='A')
    >>> clock.now(1000)                  # same millisecond: the logical part counts
    Timestamp(wall_ms=1000, logical=1, replica='A')
    >>> clock.observe(Timestamp(1500, 4, "B"), now_ms=1001)   # a peer ahead (within bound)
    Timestamp(wall_ms=1500, logical=5, replica='A')
    >>> clock.now(1002)                  # never goes back
    Timestamp(wall_ms=1500, logical=6, replica='A')
    """

    __slots__ = ("_last", "max_skew_ms", "replica")

    def __init__(
        self, replica: str, *, max_skew_ms: int = 60_000, last: Timestamp | None = None
    ) -> None:
        self.replica = check_replica(replica)
        if type(max_skew_ms) is not int or max_skew_ms < 0:
            raise ValueError(f"max_skew_ms must be an int >= 0, got {max_skew_ms!r}")
        self.max_skew_ms = max_skew_ms
        self._last = last

    @property
    def last(self) -> Timestamp | None:
        """The latest timestamp issued or observed (None before the first)."""
        return self._last

    def now(self, now_ms: int) -> Timestamp:
        """A timestamp for a local event at physical time ``now_ms``."""
        check_time(now_ms)
        ts = tick(self._last, self.replica, now_ms)
        self._last = ts
        return ts

    def observe(self, remote: Timestamp, now_ms: int) -> Timestamp:
        """Account for a received timestamp; returns the receive event's timestamp.

        Raises ClockSkewError (and changes nothing) if ``remote`` is more than
        ``max_skew_ms`` ahead of ``now_ms``.
        """
        check_time(now_ms)
        if remote.wall_ms - now_ms > self.max_skew_ms:
            raise ClockSkewError(remote.wall_ms, now_ms, self.max_skew_ms)
        last = self._last
        lw = last.wall_ms if last is not None else -1
        ll = last.logical if last is not None else -1
        wall = max(lw, remote.wall_ms, now_ms)
        if wall == lw and wall == remote.wall_ms:
            logical = max(ll, remote.logical) + 1
        elif wall == lw:
            logical = ll + 1
        elif wall == remote.wall_ms:
            logical = remote.logical + 1
        else:
            logical = 0
        ts = Timestamp(wall, logical, self.replica)
        self._last = ts
        return ts
