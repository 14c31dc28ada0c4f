"""Writes: the replication of a local update, and its completion at ``w`` acks.

A write is durable here before anything else happens (the façade logs it first). Then
:meth:`Writes.start` pushes the entry to every home up; for each home that is down, sloppy
mode picks a fallback (membership's rule) and sends it the entry with ``hint_for=<home>``,
whose ack counts and is reported as hinted. A coordinator that is not a home keeps the entry
as a hint for every home too. The local ack counts if this replica is a home of the key, or
always in sloppy mode; ``strict`` counts only homes, ``LOCAL_QUORUM`` only peers of the site.

The write completes (``WriteDone``) at ``required`` acks, or fails (``WriteFailed``) at its
deadline, or as soon as no ack that could still count is outstanding. The common case (one
ack required, ours) completes at once, with no pending record and no deadline.

Knows the outbox, the timers, membership, outbound batching and hints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sync.config import ReplicaConfig
from sync.effects import HintId, HintRecord, LogEntry, WriteDone, WriteFailed, WriteResult
from sync.replica.hints import Hints
from sync.replica.membership import Membership
from sync.replica.outbound import AwaitingAck, Outbound
from sync.replica.outbox import Outbox
from sync.replica.timers import Timer, TimerKind, Timers

__all__ = ["PendingWrite", "Writes"]

_RESULTS_MEMO = 1 << 16  # keys whose local-only write result is shared (cleared when full)


@dataclass(slots=True)
class PendingWrite:
    """A write waiting for acks."""

    op_id: int
    key: str
    required: int
    homes: frozenset[str]
    strict: bool
    site: str | None  # LOCAL_QUORUM: only acks from this site count
    timeout: float
    acked_by: list[str] = field(default_factory=list)
    hinted: list[str] = field(default_factory=list)
    waiting: set[str] = field(default_factory=set)  # peers whose ack could still count
    fallbacks: set[str] = field(default_factory=set)

    def result(self) -> WriteResult:
        return WriteResult(
            key=self.key,
            acks=len(self.acked_by),
            required=self.required,
            acked_by=tuple(self.acked_by),
            hinted=tuple(self.hinted),
        )


class Writes:
    """The writes coordinated here that still wait for acks."""

    __slots__ = (
        "_config",
        "_emit",
        "_hints",
        "_local_results",
        "_me",
        "_membership",
        "_outbound",
        "_pending",
        "_timers",
        "pending",
    )

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        outbox: Outbox,
        timers: Timers,
        membership: Membership,
        outbound: Outbound,
        hints: Hints,
    ) -> None:
        self._config = config
        self._me = replica_id
        self._emit = outbox.emit
        self._timers = timers
        self._membership = membership
        self._outbound = outbound
        self._hints = hints
        self._pending: dict[int, PendingWrite] = {}
        #: The writes pending, by op id (read only: a view of what this owns).
        self.pending: Mapping[int, PendingWrite] = self._pending
        self._local_results: dict[str, WriteResult] = {}  # see start

    def __len__(self) -> int:
        return len(self._pending)

    def start(
        self,
        op_id: int,
        entry: LogEntry,
        homes: tuple[str, ...],
        required: int,
        site: str | None,
        strict: bool,
        timeout: float,
        now: float,
    ) -> None:
        """Replicate ``entry`` (logged here already) and complete or track write ``op_id``."""
        me = self._me
        membership = self._membership
        is_home = me in homes
        local_ack = (is_home or not strict) and membership.site_ok(site, me)
        # The common case (w=1 counting our own ack) completes now: no pending-write record,
        # no deadline, and the pushes carry no operation (their acks complete nothing).
        done = local_ack and required <= 1
        op = None
        if not done:
            op = PendingWrite(op_id, entry.key, required, frozenset(homes), strict, site, timeout)
            self._pending[op_id] = op
            if local_ack:
                op.acked_by.append(me)
        wop = None if op is None else op_id
        if not is_home:
            # Anti-entropy runs between homes only: keep the entry as a hint for every home.
            for home in homes:
                self._hints.add(HintRecord(home, entry, now))
        up = membership.up
        queue_push = self._outbound.queue_push
        chosen: set[str] | None = None  # homes and fallbacks picked (made when one is down)
        for home in homes:
            if home == me:
                continue
            if home in up:
                hid = None if is_home else HintId(home, entry.origin, entry.partition, entry.seq)
                if hid is not None:
                    self._hints.mark_sent(hid, now)
                queue_push(home, None, entry, wop, hid, now)
                if op is not None:
                    op.waiting.add(home)
            elif not strict:
                if chosen is None:
                    chosen = set(homes) | {me}
                fallback = membership.pick_fallback(entry.partition, chosen)
                if fallback is not None:
                    chosen.add(fallback)
                    if op is not None:
                        op.fallbacks.add(fallback)
                        op.waiting.add(fallback)
                    queue_push(fallback, home, entry, wop, None, now)
        if op is None:
            # Every write of a key acknowledged here alone has the same (immutable) result:
            # one object per key, not one per write.
            result = self._local_results.get(entry.key)
            if result is None or result.required != required:
                if len(self._local_results) >= _RESULTS_MEMO:
                    self._local_results.clear()
                result = WriteResult(key=entry.key, acks=1, required=required, acked_by=(me,))
                self._local_results[entry.key] = result
            self._emit(WriteDone(op_id, result))
            return
        self._timers.set(Timer(TimerKind.WRITE, op_id), now + timeout)
        self._progress(op)

    def _progress(self, op: PendingWrite) -> None:
        if len(op.acked_by) >= op.required:
            self._end(op)
            self._emit(WriteDone(op.op_id, op.result()))
        elif not op.waiting:
            self._end(op)
            self._emit(
                WriteFailed(
                    op.op_id,
                    op.result(),
                    f"{len(op.acked_by)} of {op.required} required acks: no other replica "
                    "that counts is reachable (durable here, will replicate later)",
                )
            )

    def _end(self, op: PendingWrite) -> None:
        del self._pending[op.op_id]
        self._timers.cancel(Timer(TimerKind.WRITE, op.op_id))

    def _counts_for(self, op: PendingWrite, peer: str) -> bool:
        if peer in op.homes or (not op.strict and peer in op.fallbacks):
            return self._membership.site_ok(op.site, peer)
        return False

    def acked(self, peer: str, record: AwaitingAck) -> None:
        """``peer`` acknowledged a push carrying the writes of ``record``."""
        for op_id in record.ops:
            op = self._pending.get(op_id)
            if op is None:
                continue
            op.waiting.discard(peer)
            if peer not in op.acked_by and self._counts_for(op, peer):
                op.acked_by.append(peer)
                if record.hint_for is not None:
                    op.hinted.append(peer)
            self._progress(op)

    def peer_down(self, peer: str) -> None:
        """Stop waiting for ``peer``: a write that can no longer reach its acks fails now."""
        for op in list(self._pending.values()):
            if peer in op.waiting:
                op.waiting.discard(peer)
                self._progress(op)

    def expire(self, op_id: int) -> None:
        """Write ``op_id`` reached its deadline (if still pending): it fails."""
        op = self._pending.get(op_id)
        if op is not None:
            self._end(op)
            self._emit(
                WriteFailed(
                    op.op_id,
                    op.result(),
                    f"timed out after {op.timeout:g}s with {len(op.acked_by)} of "
                    f"{op.required} required acks (durable here, will replicate later)",
                )
            )
