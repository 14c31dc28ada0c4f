"""Anti-entropy: summaries between homes, and the log entries or state each one lacks.

With ``anti_entropy_interval`` set, on ``peer_up`` and every interval each up peer gets a
``Summary`` of the partitions both are homes of (and, when membership changed, the known
peers). A summary is answered with the log entries the other lacks, in ``Deltas`` of at most
``ae_batch`` entries (and half of ``max_message_bytes``), ``ae_max_inflight`` unacked per
peer. When the other lacks a dot this replica no longer has in its log (compacted, or
received by state transfer) it gets a state transfer instead: ``SnapshotChunk`` of at most
``snapshot_chunk`` objects, the last one (sent only once all others are acked) carrying our
summary. A summary with ``reply=True`` is answered with our own summary only when its sender
has something we lack (no ping-pong); converged peers exchange summaries only.

A received summary also teaches the members its sender lists, is remembered for compaction
(which runs on a change), and reveals an identity conflict: a log dot of ours above our
highest one means this database was restored or copied (``IdentityConflict``; our
numbering jumps above the seen dot).

:class:`AntiEntropy` owns one session per peer: the queue of batches planned for it and the
batches in flight.

Knows the outbox, the timers, local data, membership, outbound batching and compaction.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from crdt import CRDT, CausalContext
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import IdentityConflict, LogEntry, Send
from sync.replica.compaction import Compaction
from sync.replica.local_data import LocalData
from sync.replica.membership import Membership
from sync.replica.outbound import Outbound
from sync.replica.outbox import Outbox
from sync.replica.timers import Timer, TimerKind, Timers

__all__ = ["AntiEntropy", "Batch", "Session", "ctx_model"]


def ctx_model(ctx: CausalContext) -> m.Ctx:
    """``ctx`` as its wire model (sorted, as its canonical form)."""
    return m.Ctx.model_construct(
        vv={r: ctx.vv[r] for r in sorted(ctx.vv)}, cloud=[(d[0], d[1]) for d in sorted(ctx.cloud)]
    )


@dataclass(slots=True)
class Batch:
    """One planned anti-entropy message: a ``Deltas`` batch or a ``SnapshotChunk``."""

    partition: int
    entries: list[LogEntry] | None = None  # a Deltas batch...
    more: bool = False
    objects: list[m.SnapObject] | None = None  # ...or a snapshot chunk
    summary: m.Ctx | None = None
    last: bool = False


@dataclass(slots=True)
class Session:
    """The anti-entropy round with one peer: batches to send, and those in flight."""

    queue: deque[Batch] = field(default_factory=deque)
    inflight: dict[int, float] = field(default_factory=dict)  # batch id -> when sent

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.inflight)


class AntiEntropy:
    """Summaries to and from each peer, and the rounds of batches they lead to."""

    __slots__ = (
        "_compaction",
        "_config",
        "_data",
        "_emit",
        "_me",
        "_membership",
        "_outbound",
        "_outbox",
        "_sealed_only",
        "_sessions",
        "_timers",
    )

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        outbox: Outbox,
        timers: Timers,
        data: LocalData,
        membership: Membership,
        outbound: Outbound,
        compaction: Compaction,
        *,
        sealed_only: bool = False,
    ) -> None:
        self._config = config
        # A replica that signs sends only sealed entries (others are refused): one of another
        # origin held unsealed (logged before signing) is sent as a state transfer instead.
        self._sealed_only = sealed_only
        self._me = replica_id
        self._outbox = outbox
        self._emit = outbox.emit
        self._timers = timers
        self._data = data
        self._membership = membership
        self._outbound = outbound
        self._compaction = compaction
        self._sessions: dict[str, Session] = {}

    def _interval(self) -> float:
        return float(self._config.anti_entropy_interval or 0.0)

    # -- rounds --------------------------------------------------------------------------------
    def start(self, peer: str, now: float) -> None:
        """``peer`` came up: a summary now and every interval (if anti-entropy is on)."""
        if self._config.anti_entropy_on:
            self.send_summary(peer, reply=True)
            self._timers.set(Timer(TimerKind.ANTI_ENTROPY, peer), now + self._interval())

    def next_round(self, peer: str, now: float) -> None:
        """The interval passed: another summary to ``peer`` (if still up)."""
        if peer in self._membership.up and self._config.anti_entropy_on:
            self.send_summary(peer, reply=True)
            self._timers.set(Timer(TimerKind.ANTI_ENTROPY, peer), now + self._interval())

    def stop(self, peer: str) -> None:
        """``peer`` went down: no more summaries; its round is abandoned."""
        self._timers.cancel(Timer(TimerKind.ANTI_ENTROPY, peer))
        self._reset(peer)

    def send_summary(self, peer: str, *, reply: bool) -> None:
        summary = self._data.summary
        parts = {p: ctx_model(summary(p)) for p in self._membership.shared_partitions(peer)}
        known = self._membership.gossip(peer)
        msg = m.Summary.model_construct(
            proto=1, t="summary", parts=parts, known_peers=known, reply=reply
        )
        self._emit(Send(peer, msg))

    def on_summary(
        self, peer: str, msg: m.Summary, theirs: dict[int, CausalContext], now: float
    ) -> None:
        """``peer`` reported its summaries ``theirs`` (checked)."""
        me, membership = self._me, self._membership
        membership.learn_members(msg.known_peers, now)
        if membership.store_summary(peer, theirs, now):
            gone = set(membership.gone(now))
            for p in sorted(theirs):
                self._compaction.compact(p, now, gone)
        data = self._data
        for p in sorted(theirs):
            seen = theirs[p].max_counter(me)
            ours = data.last_seq(p)
            if seen > ours:
                self._emit(IdentityConflict(peer, p, seen, ours))
                data.raise_seq(p, seen)
        self._plan(peer, theirs)
        self.pump(peer, now)
        up = membership.up
        if msg.reply and peer in up and self._lacking(theirs):
            self.send_summary(peer, reply=False)
        elif msg.known_peers and peer in up and membership.members_missing(msg.known_peers):
            membership.regossip(peer)
            self.send_summary(peer, reply=False)

    def _lacking(self, theirs: dict[int, CausalContext]) -> bool:
        """True when the sender of ``theirs`` has log dots we lack."""
        summary = self._data.summary
        return any(next(ctx.dots_not_in(summary(p)), None) is not None for p, ctx in theirs.items())

    def busy(self, peer: str) -> bool:
        """True while a round with ``peer`` is under way (a summary then plans nothing; if
        the round ends earlier in the same drain, a partition not loaded is planned by the
        next summary)."""
        sess = self._sessions.get(peer)
        return sess is not None and sess.busy

    def snapshot_partitions(self, theirs: dict[int, CausalContext]) -> list[int]:
        """The partitions of ``theirs`` whose sender lacks a log dot we no longer have in our
        log: answering it means a state transfer (every object of the partition)."""
        data = self._data
        out: list[int] = []
        for p in sorted(theirs):
            mine = data.summary_if_any(p)
            if mine is not None and any(
                data.log_entry(p, d[0], d[1]) is None for d in mine.dots_not_in(theirs[p])
            ):
                out.append(p)
        return out

    def _plan(self, peer: str, theirs: dict[int, CausalContext]) -> None:
        """Queue what ``peer`` lacks of the partitions in its summary."""
        sess = self._sessions.setdefault(peer, Session())
        if sess.busy:
            return  # one round at a time; the next summary picks up what this one missed
        data = self._data
        for p in sorted(theirs):
            mine = data.summary_if_any(p)
            if mine is None:
                continue
            missing: list[LogEntry] = []
            snapshot = False
            sealed_only, me = self._sealed_only, self._me
            for d in mine.dots_not_in(theirs[p]):
                e = data.log_entry(p, d[0], d[1])
                if e is None or (sealed_only and e.seal is None and e.origin != me):
                    snapshot = True
                    break
                missing.append(e)
            if snapshot:
                # Every object of p goes; when they are not all in memory (the adapter loads
                # them before a summary that needs them), the next summary plans it.
                if not data.missing_partition(p):
                    self._plan_snapshot(sess, p)
                continue
            chunks = self._outbound.split(missing)
            for i, chunk in enumerate(chunks):
                sess.queue.append(Batch(p, entries=chunk, more=i < len(chunks) - 1))

    def _plan_snapshot(self, sess: Session, p: int) -> None:
        objs = [
            m.SnapObject.model_construct(key=key, kind=kind, state=state)
            for key, kind, state in self._data.snapshot_objects(p) or ()
        ]
        size = self._config.snapshot_chunk
        chunks = [objs[i : i + size] for i in range(0, len(objs), size)] or [[]]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            sess.queue.append(
                Batch(
                    p,
                    objects=chunk,
                    summary=ctx_model(self._data.summary(p)) if last else None,
                    last=last,
                )
            )

    def pump(self, peer: str, now: float) -> None:
        """Send the next planned batches to ``peer``, up to ``ae_max_inflight`` unacked."""
        sess = self._sessions.get(peer)
        if sess is None or peer not in self._membership.up:
            return
        while sess.queue and len(sess.inflight) < self._config.ae_max_inflight:
            item = sess.queue[0]
            if item.last and sess.inflight:
                break  # the summary-carrying chunk goes only once every other chunk landed
            sess.queue.popleft()
            bid = self._outbox.new_id()
            msg: m.Message
            if item.entries is not None:
                msg = m.Deltas.model_construct(
                    proto=1,
                    t="deltas",
                    batch_id=bid,
                    partition=item.partition,
                    entries=list(item.entries),
                    more=item.more,
                )
            else:
                msg = m.SnapshotChunk.model_construct(
                    proto=1,
                    t="snapshot",
                    batch_id=bid,
                    partition=item.partition,
                    objects=item.objects or [],
                    summary=item.summary,
                    last=item.last,
                )
            sess.inflight[bid] = now
            self._outbound.expect_ack(peer, bid, now)
            self._emit(Send(peer, msg))
        if sess.inflight:
            oldest = min(sess.inflight.values())
            self._timers.set_if_earlier(
                Timer(TimerKind.AE_TIMEOUT, peer), oldest + self._config.write_timeout
            )

    def acked(self, peer: str, batch_id: int) -> None:
        """``peer`` acknowledged the batch ``batch_id``."""
        sess = self._sessions.get(peer)
        if sess is not None:
            sess.inflight.pop(batch_id, None)

    def check_timeout(self, peer: str, now: float) -> None:
        """A batch to ``peer`` may be lost: abandon the round once the oldest is overdue."""
        sess = self._sessions.get(peer)
        if sess is not None and sess.inflight:
            oldest = min(sess.inflight.values())
            if oldest + self._config.write_timeout <= now:
                self._reset(peer)  # lost: the next summary starts a new round
            else:
                self._timers.set(
                    Timer(TimerKind.AE_TIMEOUT, peer), oldest + self._config.write_timeout
                )

    def _reset(self, peer: str) -> None:
        sess = self._sessions.pop(peer, None)
        if sess is not None:
            for bid in sess.inflight:
                self._outbound.give_up(peer, bid)
        self._timers.cancel(Timer(TimerKind.AE_TIMEOUT, peer))

    # -- state transfer ------------------------------------------------------------------------
    def on_snapshot(
        self,
        peer: str,
        msg: m.SnapshotChunk,
        states: list[tuple[str, CRDT]],
        summary: CausalContext | None,
    ) -> None:
        """Merge a checked chunk of a state transfer (and the sender's summary, if last)."""
        for key, state in states:
            self._data.merge_state(key, state)
        if summary is not None:
            self._data.merge_summary(msg.partition, summary)
        self._emit(Send(peer, m.Ack(ids=[msg.batch_id])))
