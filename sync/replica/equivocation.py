"""Equivocation: an origin that sent two different writes under one log dot.

A log dot ``(partition, origin, seq)`` names one write of its origin, and every replica logs
one text per dot: a second entry under a dot already held is taken as known and skipped,
like any duplicate. An origin that tags two different writes with one dot (a faulty one, or
a hostile member sealing both) can show each peer a different one: each keeps the one it
heard of first, and anti-entropy, which compares log dots, never finds that their copies
differ. The receiver cannot tell which of the two is "right"; what it can do is notice
(:mod:`sync.replica.inbound` compares a known dot's entry with the one it holds, in its log
or earlier in the same message) and tell the operator, who can forget that member. With
signed origins the two entries are both covered by the origin's own seals, so the alarm
names who did it, not who passed it on (unsigned, any member may pose as any origin; and an
origin whose database was restored from a backup numbers some writes again, which looks the
same: the alarm says both). Once a replica compacted the dot's entry away, a later copy
has nothing to be compared with: it is joined as any dot known only from a summary is.

:class:`Equivocations` keeps a bounded record per origin and raises an ``Alarm`` at most
once per origin every :data:`~sync.replica.membership.ALARM_REPEAT` seconds, and for at most
:data:`EQUIVOCATION_ALARMS` origins in one such window (unsigned, a member posing as a new
made-up origin each time would otherwise raise one per message): past that, one
``equivocations_unreported`` alarm says the rest are only counted.

Knows the outbox and membership (its alarm interval).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sync.effects import Alarm, LogEntry
from sync.replica.membership import ALARM_REPEAT
from sync.replica.outbox import Outbox

__all__ = ["EQUIVOCATION_ALARMS", "MAX_EQUIVOCATORS", "Equivocations"]

#: Origins whose equivocations are remembered (the least recent one goes first).
MAX_EQUIVOCATORS = 64
#: Origins an ``equivocation`` alarm is raised for in one ``ALARM_REPEAT`` window, at most.
EQUIVOCATION_ALARMS = 8


@dataclass(slots=True)
class _Record:
    count: int
    last: float
    alarmed: float


class Equivocations:
    """Per origin, how many entries it sent under a log dot that names another of its writes
    here, and when the last came."""

    __slots__ = ("_me", "_outbox", "_records", "_signed", "_window")

    def __init__(self, me: str, outbox: Outbox, *, signed: bool) -> None:
        self._me = me
        self._outbox = outbox
        self._signed = signed  # (else any member may claim any origin)
        self._records: dict[str, _Record] = {}
        self._window = (float("-inf"), 0)  # the current window's start, its alarms raised

    def note(
        self, sender: str, entries: Sequence[LogEntry], found: Sequence[int], now: float
    ) -> None:
        """The entries at positions ``found`` of a message from ``sender`` reuse a log dot of
        another write of their origin: count them, and raise an alarm per origin (at most one
        per message, repeated while it lasts)."""
        alarmed: set[str] = set()
        records = self._records
        for i in found:
            e = entries[i]
            rec = records.get(e.origin)
            if rec is None:
                if len(records) >= MAX_EQUIVOCATORS:
                    del records[min(records, key=lambda o: records[o].last)]
                rec = records[e.origin] = _Record(0, now, now - ALARM_REPEAT)
            rec.count += 1
            rec.last = now
            if (
                now - rec.alarmed < ALARM_REPEAT
                or e.origin in alarmed
                or not self._may(sender, now)
            ):
                continue
            rec.alarmed = now
            alarmed.add(e.origin)
            where = f"partition {e.partition}, seq {e.seq}, key {e.key!r}"
            if e.origin == self._me:  # (only we issue our dots)
                text = (
                    f"equivocation: {sender} sent a write under this replica's own log dot "
                    f"({where}) that is not the write this replica made; it is ignored here, "
                    f"but a peer that took it keeps it. Either this database was restored "
                    f"from a backup (its numbers were used again: an identity conflict is "
                    f"reported too), or {sender} is faulty or hostile (see `shoal forget`)."
                )
            else:
                via = "" if sender == e.origin else f", received from {sender}"
                who = e.origin if self._signed else f"{e.origin} (or a member posing as it)"
                text = (
                    f"equivocation: {who} sent two different writes under one log dot of "
                    f"{e.origin} ({where}{via}); this replica keeps the one it heard of "
                    f"first, and a peer that heard of the other first keeps that one, so "
                    f"their copies of the key may differ for good. Either {e.origin}'s "
                    f"database was restored from a backup (then it reports an identity "
                    f"conflict), or the member is faulty or hostile (see `shoal forget`)."
                )
            self._outbox.emit(Alarm("equivocation", e.origin, text))

    def _may(self, sender: str, now: float) -> bool:
        """Whether one more origin's alarm may be raised in the current window (the one
        past the last is ``equivocations_unreported``)."""
        start, raised = self._window
        if now - start >= ALARM_REPEAT:
            start, raised = now, 0
        self._window = (start, raised + 1)
        if raised < EQUIVOCATION_ALARMS:
            return True
        if raised == EQUIVOCATION_ALARMS:
            self._outbox.emit(
                Alarm(
                    "equivocations_unreported",
                    sender,
                    f"equivocations: {EQUIVOCATION_ALARMS} origins were reported in the "
                    f"last {ALARM_REPEAT / 60:g} minutes; more (the latest from {sender}) "
                    f"are counted in status()['equivocations'] (the {MAX_EQUIVOCATORS} "
                    f"most recent origins) but not reported until then. Many origins at "
                    f"once: a member posing as made-up origins, or many restored databases.",
                )
            )
        return False

    def counts(self) -> dict[str, int]:
        """Per origin, the entries found reusing a log dot of another of its writes."""
        return {origin: r.count for origin, r in sorted(self._records.items())}
