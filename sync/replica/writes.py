"""Writes: the replication of a local update, and its completion at ``w`` acks.

A write is durable here before anything else happens (:mod:`~sync.replica.updates` logs
it first). Then :meth:`Writes.start` pushes the entry to every home up; for each home that
is down, sloppy mode picks a fallback (membership's rule) and sends it the entry with
``hint_for=<home>``, whose ack counts and is reported as hinted; fallbacks are distinct,
but a relay stands in for every home down that no other peer can (devices that reach only
the relay), and its ack counts once. A coordinator that is not
a home keeps the entry as a hint for every home too. The local ack counts if this replica
is a home of the key, or always in sloppy mode; ``strict`` counts only homes,
``LOCAL_QUORUM`` only peers of the site.

The write completes (``WriteDone``) at ``required`` acks, or fails (``WriteFailed``) at its
deadline, or as soon as no ack that could still count is outstanding and no link is still
being dialled (:meth:`Writes.dials_changed`: right after a peer opens, its links are
being dialled and the replicas behind them are not known yet; a write waits for them, within
its timeout, and fails fast only once every dial has failed or none is left). A write short
of its acks *re-targets* when a peer comes up (:meth:`Writes.peer_up`): the peer gets the
push if it is a home of the key now (a peer unknown until its handshake may be one) or, in
sloppy mode, stands in for a home that is down, and its ack counts. The common case (one
ack required, ours) completes at once, with no pending record and no deadline.

Every result carries the write's log dot (:class:`~sync.effects.LogDot`). A write's options
(``w``, ``strict``, ``timeout``) are checked here too, before anything changes
(:meth:`Writes.options`, with the configuration's checks, which the handles run at the
call); the adapter's dial state is membership's
(:meth:`~sync.replica.membership.Membership.links_connecting`).

Knows the outbox, the timers, membership, outbound batching and hints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sync.config import ReplicaConfig
from sync.consistency import Level
from sync.effects import (
    HintId,
    HintRecord,
    LogDot,
    LogEntry,
    WriteDone,
    WriteFailed,
    WriteResult,
)
from sync.errors import LocalProtocolError
from sync.replica.hints import Hints
from sync.replica.membership import Membership
from sync.replica.outbound import AwaitingAck, Outbound
from sync.replica.outbox import Outbox
from sync.replica.timers import Timer, TimerKind, Timers

__all__ = ["PendingWrite", "Writes"]


@dataclass(slots=True)
class PendingWrite:
    """A write waiting for acks."""

    op_id: int
    key: str
    required: int
    homes: set[str]
    strict: bool
    site: str | None  # LOCAL_QUORUM: only acks from this site count
    timeout: float
    entry: LogEntry
    acked_by: list[str] = field(default_factory=list)
    hinted: list[str] = field(default_factory=list)
    waiting: set[str] = field(default_factory=set)  # peers whose ack could still count
    fallbacks: set[str] = field(default_factory=set)
    covered: set[str] = field(default_factory=set)  # homes down that a fallback stands in for

    def result(self) -> WriteResult:
        e = self.entry
        return WriteResult(
            key=self.key,
            acks=len(self.acked_by),
            required=self.required,
            acked_by=tuple(self.acked_by),
            hinted=tuple(self.hinted),
            dot=LogDot(e.origin, e.partition, e.seq),
        )


class Writes:
    """The writes coordinated here that still wait for acks."""

    __slots__ = (
        "_config",
        "_emit",
        "_hints",
        "_me",
        "_me_only",
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
        self._me_only = (replica_id,)  # acked_by of every write this replica alone acks
        self._emit = outbox.emit
        self._timers = timers
        self._membership = membership
        self._outbound = outbound
        self._hints = hints
        self._pending: dict[int, PendingWrite] = {}
        #: The writes pending, by op id (read only: a view of what this owns).
        self.pending: Mapping[int, PendingWrite] = self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def options(
        self, op_id: int, w: Level | None, strict: bool | None, timeout: float | None
    ) -> tuple[Level, bool, float]:
        """A new write's level, strictness and timeout (the configuration's where None),
        before anything changes: ``LocalProtocolError`` if write ``op_id`` is pending still,
        ``TypeError``/``ValueError`` for a bad option."""
        if op_id in self._pending:
            raise LocalProtocolError(f"write op_id {op_id} is still pending")
        return self._config.write_options(w, strict, timeout)

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
            op = PendingWrite(op_id, entry.key, required, set(homes), strict, site, timeout, entry)
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
        relay: str | None = None  # a relay picked as a fallback: it stands in for any home
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
                    fallback = membership.first_fallback(entry.partition)
                    chosen = set()  # none found: none for the next home down either
                    if fallback is not None:
                        chosen = {*homes, me}
                elif chosen:
                    fallback = membership.pick_fallback(entry.partition, chosen)
                    if fallback is None:
                        # A relay holds hints for any number of homes: no other peer up to
                        # stand in for this one (devices that reach only the relay), so it
                        # holds this home's too, or the home never gets the write (the relay
                        # applies and forwards only what it is a home of, and the homes
                        # have no link to run anti-entropy on).
                        fallback = relay
                else:
                    fallback = None
                if relay is None and fallback is not None and membership.is_relay(fallback):
                    relay = fallback
                if fallback is not None:
                    chosen.add(fallback)
                    if op is not None:
                        op.fallbacks.add(fallback)
                        op.waiting.add(fallback)
                        op.covered.add(home)
                    queue_push(fallback, home, entry, wop, None, now)
        if op is None:
            self._emit(WriteDone.acked_here(op_id, entry, required, self._me_only))
            return
        self._timers.set(Timer(TimerKind.WRITE, op_id), now + timeout)
        self._progress(op)

    def _progress(self, op: PendingWrite) -> None:
        if len(op.acked_by) >= op.required:
            self._end(op)
            self._emit(WriteDone(op.op_id, op.result()))
        elif not op.waiting and not self._membership.connecting:
            self._end(op)
            self._emit(
                WriteFailed(
                    op.op_id,
                    op.result(),
                    f"{len(op.acked_by)} of {op.required} required acks: "
                    f"{self._membership.unreachable('is reachable')} "
                    "(durable here, will replicate later)",
                )
            )

    def _short(self, op: PendingWrite) -> bool:
        """Can ``op`` not reach its acks even if every peer it waits for acks?"""
        could = sum(1 for p in op.waiting if self._counts_for(op, p))
        return len(op.acked_by) + could < op.required

    def dials_changed(self) -> None:
        """The dial state changed (:meth:`Membership.links_connecting`). A write
        with nothing left to wait for waits while links are being dialled, and fails now
        once none is."""
        if not self._membership.connecting:
            for op in sorted(self._pending.values(), key=lambda o: o.op_id):
                if not op.waiting:
                    self._progress(op)

    def peer_up(self, peer: str, now: float) -> None:
        """``peer`` came up (membership and the ring know it now): every write short of its
        acks sends it the entry if it counts now, as a home of the key or, in sloppy mode,
        as the fallback of a home that is down."""
        membership = self._membership
        for op in sorted(self._pending.values(), key=lambda o: o.op_id):
            if peer in op.waiting or peer in op.acked_by or not self._short(op):
                continue
            if not membership.site_ok(op.site, peer):
                continue
            e = op.entry
            homes = membership.ring().preference_list(e.partition)
            if peer in homes:
                op.homes.add(peer)
                hid = None
                if self._me not in homes:
                    hid = HintId(peer, e.origin, e.partition, e.seq)
                    self._hints.add(HintRecord(peer, e, now))
                    self._hints.mark_sent(hid, now)
                self._outbound.queue_push(peer, None, e, op.op_id, hid, now)
            elif not op.strict:
                up = membership.up
                down = [h for h in homes if h != self._me and h not in up and h not in op.covered]
                if not down:
                    continue
                op.fallbacks.add(peer)
                op.covered.add(down[0])
                self._outbound.queue_push(peer, down[0], e, op.op_id, None, now)
            else:
                continue
            op.waiting.add(peer)

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
