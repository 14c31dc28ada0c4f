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

A local write over a register (:func:`write_timestamp`) takes the next tick after the
register's timestamp: ``max(now_ms, its wall_ms)``, the logical part counting when the wall
part is the held one (at its limit, 2**63-1, the wall part moves a millisecond on instead).
It never raises, however far ahead the held timestamp is (short of one at (2**63-1,
2**63-1), which no clock within the skew bound makes): a register
that holds a timestamp from a clock ahead of ours (a peer's, or our own before it was set
right) stays writable, and the write still wins over every write it has seen. Only a
timestamp the caller gives is checked against the bound.

A timestamp is a *plain* ``tuple`` at run time (``Timestamp(5, 0, "A")`` returns
``(5, 0, "A")``), read by index or unpacking: registers keep one per write, and an exact
tuple of ints and a str is untracked by the cyclic garbage collector (a ``NamedTuple`` is
not). Tuple order is the clock order.

Encoded as ``[wall_ms, logical, replica]`` (:func:`timestamp_to_json`).
"""

from __future__ import annotations

from typing import Any, TypeGuard

from crdt.dot import MAX_INT, check_replica
from crdt.errors import ClockSkewError, DecodeError, shown

__all__ = ["HybridLogicalClock", "Timestamp"]


class Timestamp(tuple[int, int, str]):
    """An HLC timestamp ``(wall_ms, logical, replica)``; instances are plain tuples.

    ``Timestamp(wall_ms, logical, replica)`` returns the exact tuple (not an instance of this
    class), so the garbage collector can untrack it; read the fields by index or unpacking.
    Tuple order is the clock order (ties broken by replica id):

    >>> Timestamp(5, 0, "A") < Timestamp(5, 1, "A") < Timestamp(5, 1, "B") < Timestamp(6, 0, "A")
    True
    >>> Timestamp(5, 0, "A")
    (5, 0, 'A')
    """

    __slots__ = ()

    def __new__(cls, wall_ms: int, logical: int, replica: str) -> Timestamp:
        return (wall_ms, logical, replica)  # type: ignore[return-value]


def is_timestamp(x: object) -> TypeGuard[Timestamp]:
    """True iff ``x`` is a well-formed timestamp: an exact tuple (int >= 0, int >= 0, str)."""
    if type(x) is not tuple or len(x) != 3:
        return False
    wall, logical, replica = x
    if not (
        type(wall) is int
        and 0 <= wall <= MAX_INT
        and type(logical) is int
        and 0 <= logical <= MAX_INT
        and type(replica) is str
        and replica != ""
    ):
        return False
    try:
        check_replica(replica)  # no lone surrogate: it must have UTF-8 text
    except ValueError:
        return False
    return True


def timestamp_to_json(ts: Timestamp) -> list[Any]:
    """``(wall_ms, logical, replica)`` -> ``[wall_ms, logical, replica]``."""
    return [ts[0], ts[1], ts[2]]


def timestamp_from_json(x: object, path: str) -> Timestamp:
    """Decode ``[wall_ms, logical, replica]``; DecodeError naming ``path`` when malformed."""
    if type(x) is not list or len(x) != 3:
        raise DecodeError(path, f"a timestamp must be [wall_ms, logical, replica], got {shown(x)}")
    wall, logical, replica = x
    if type(wall) is not int or not 0 <= wall <= MAX_INT:
        raise DecodeError(
            f"{path}[0]", f"wall_ms must be an integer in 0..2**63-1, got {shown(wall)}"
        )
    if type(logical) is not int or not 0 <= logical <= MAX_INT:
        raise DecodeError(
            f"{path}[1]", f"logical must be an integer in 0..2**63-1, got {shown(logical)}"
        )
    if type(replica) is not str or not replica:
        raise DecodeError(f"{path}[2]", f"replica must be a non-empty string, got {shown(replica)}")
    return Timestamp(wall, logical, replica)


def tick(last: Timestamp | None, replica: str, now_ms: int | None) -> Timestamp:
    """A local event: greater than ``last``; ``now_ms`` None means "logical step only"."""
    if last is None:
        if now_ms is not None and now_ms > 0:
            return (now_ms, 0, replica)  # type: ignore[return-value]
        return (0, 0, replica)  # type: ignore[return-value]
    last_wall = last[0]
    if now_ms is not None and now_ms > last_wall:
        return (now_ms, 0, replica)  # type: ignore[return-value]
    return _after(last_wall, last[1], replica)


def _after(wall: int, logical: int, replica: str) -> Timestamp:
    """The timestamp right after ``(wall, logical)``: the logical part counts on, and at its
    limit the wall part moves a millisecond on instead. A timestamp we were sent (one within
    the skew bound, so taken) may carry any logical part up to 2**63-1; counting past it would
    stamp our next write with a value no peer accepts (nor our own store, once reopened)."""
    if logical < MAX_INT:
        return (wall, logical + 1, replica)  # type: ignore[return-value]
    if wall < MAX_INT:
        return (wall + 1, 0, replica)  # type: ignore[return-value]
    raise ValueError("the clock is exhausted: a timestamp at (2**63-1, 2**63-1) was taken")


def write_timestamp(
    current: Timestamp | None,
    replica: str,
    now_ms: int | None,
    given: Timestamp | None,
    bound_ms: int,
) -> Timestamp:
    """The timestamp of a local write over a register whose winner is stamped ``current``.

    ``given`` (the caller's own timestamp, already checked to be one) is taken as it is, but
    raises :class:`~crdt.errors.ClockSkewError` if it is more than ``bound_ms`` ahead of
    ``now_ms``. Without it, the next tick after ``current`` at ``now_ms`` (see the module
    docstring): never an error (but past ``(2**63-1, 2**63-1)``).

    >>> write_timestamp(Timestamp(86_400_000, 3, "B"), "A", 1_000, None, 60_000)
    (86400000, 4, 'A')
    """
    if given is None:
        return tick(current, replica, now_ms)
    if now_ms is not None and given[0] - now_ms > bound_ms:
        raise ClockSkewError(given[0], now_ms, bound_ms)
    return given


# How far ahead of the local clock (ms) a timestamp may be: the default of
# HybridLogicalClock.max_skew_ms and of the LWW registers' clock_bound_ms.
DEFAULT_MAX_SKEW_MS = 60_000


def check_time(now_ms: object) -> int:
    if type(now_ms) is not int or not 0 <= now_ms <= MAX_INT:
        raise TypeError(f"now_ms must be an int in 0..2**63-1 (milliseconds), got {shown(now_ms)}")
    return now_ms


class HybridLogicalClock:
    """The HLC of one replica.

    >>> clock = HybridLogicalClock("A")
    >>> clock.now(1000)                  # (wall_ms, logical, replica)
    (1000, 0, 'A')
    >>> clock.now(1000)                  # same millisecond: the logical part counts
    (1000, 1, 'A')
    >>> clock.observe(Timestamp(1500, 4, "B"), now_ms=1001)   # a peer ahead (within bound)
    (1500, 5, 'A')
    >>> clock.now(1002)                  # never goes back
    (1500, 6, 'A')
    """

    __slots__ = ("_last", "max_skew_ms", "replica")

    def __init__(
        self, replica: str, *, max_skew_ms: int = DEFAULT_MAX_SKEW_MS, last: Timestamp | None = None
    ) -> None:
        self.replica = check_replica(replica)
        if type(max_skew_ms) is not int or max_skew_ms < 0:
            raise ValueError(f"max_skew_ms must be an int >= 0, got {shown(max_skew_ms)}")
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
        rw, rl = remote[0], remote[1]
        if rw - now_ms > self.max_skew_ms:
            raise ClockSkewError(rw, now_ms, self.max_skew_ms)
        last = self._last
        lw = last[0] if last is not None else -1
        ll = last[1] if last is not None else -1
        wall = max(lw, rw, now_ms)
        if wall == lw and wall == rw:
            ts = _after(wall, max(ll, rl), self.replica)
        elif wall == lw:
            ts = _after(wall, ll, self.replica)
        elif wall == rw:
            ts = _after(wall, rl, self.replica)
        else:
            ts = Timestamp(wall, 0, self.replica)
        self._last = ts
        return ts
