"""What a replica remembers of writes set aside for a timestamp too far ahead of its clock.

Records only: :class:`~sync.replica.membership.Membership` keeps them (per writer, bounded)
and raises the alarms; :mod:`sync.replica.inbound` finds the writes.

Knows nothing else of the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SkewRecord", "Skewed"]


@dataclass(frozen=True, slots=True)
class Skewed:
    """A received write stamped further ahead of this replica's clock than the bound allows:
    the replica whose timestamp it is, how far ahead of our clock (ms), and what carried
    it."""

    writer: str
    ahead_ms: int
    what: str


@dataclass(slots=True)
class SkewRecord:
    """Writes of one replica set aside for a timestamp too far ahead of our clock: how many,
    how far ahead the last one was (ms), when the first and the last came, and when we last
    raised an alarm about it."""

    set_aside: int
    ahead_ms: int
    first: float
    last: float
    alarmed: float
