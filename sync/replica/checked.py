"""A received batch once inbound validation checked it: what local data applies.

:class:`~sync.replica.inbound.Inbound` makes it (decoding and checking every entry, changing
nothing); :class:`~sync.replica.local_data.LocalData` applies it, and the façade and
anti-entropy hand it from one to the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crdt import CRDT
from sync.effects import LogEntry

__all__ = ["CheckedBatch", "ObjectId"]

ObjectId = tuple[str, str]  # an object's name: (key, kind)


@dataclass(slots=True)
class CheckedBatch:
    """A received batch, checked (nothing changed yet): the entries to apply as a home of
    their key, the entries only to hold as hints, and per key the join of the deltas of the
    entries to apply that this replica lacks (a *delta group*, merged into the state once;
    each delta is joined into it at once, most straight from their parsed JSON, so a batch of
    hundreds of decoded deltas is never alive at the same time) with the key's partition."""

    home: list[LogEntry]
    hints: list[LogEntry]
    groups: dict[ObjectId, tuple[int, CRDT]]
    #: Per key, the join of the deltas of entries whose log dots are in our summary but not
    #: in our log (learned from a state transfer's summary, or compacted): a ``Push`` of
    #: them is acknowledged only once they are joined in (see :mod:`sync.replica.theory`,
    #: "An ack means applied").
    rejoin: dict[ObjectId, tuple[int, CRDT]] = field(default_factory=dict)
    #: The positions, in the message, of the entries set aside for clock skew (neither
    #: applied nor held): a ``Push``'s ack leaves them out (``AckExcept``).
    set_aside: list[int] = field(default_factory=list)
    #: The positions of the entries of a ``Push`` for another replica (``hint_for``) that are
    #: neither applied nor held (their target is forgotten, or no home of their partition
    #: here): its ack leaves them out too, so the sender counts no hint held here for them.
    not_held: list[int] = field(default_factory=list)
    #: The positions of entries under a log dot that names another write of their origin
    #: here (in our log, or earlier in the message): taken as known, and reported
    #: (:mod:`sync.replica.equivocation`).
    equivocal: list[int] = field(default_factory=list)
