"""Anti-entropy: summaries between the replicas that hold a partition (its homes, and any
relay: :meth:`~sync.replica.membership.Membership.shared_partitions`), and the log entries or
state each one lacks.

Rounds and digests are :mod:`sync.replica.gossip`'s: between converged peers a round is one
``Digest``, and a ``Summary`` is sent only for the partitions whose digests differ (and,
with no partition, to list the members when the members' digests differ). A summary is
answered with the log entries the other lacks, in ``Deltas`` of at most ``ae_batch``
entries (and half of ``max_message_bytes``), ``ae_max_inflight`` unacked per peer. When the
other lacks a dot this replica no longer has in its log (compacted, or received by state
transfer) it gets a state transfer instead: the partition's objects read from the store a
page at a time (:mod:`~sync.replica.transfer`), in ``SnapshotChunk`` of at most
``snapshot_chunk`` objects (a state too big for one message split into pieces), the last one
(sent only once every other message of its partition is acked) carrying our summary; the
partitions' transfers overlap, up to the window: while one partition's last chunk waits for
its acks (holding that chunk alone), the partitions queued after it are read and sent. A
chunk is taken only of a partition we sent its sender our summary of (which a transfer
answers: :meth:`AntiEntropy.asked`), and of the summary it ends with, only what
:func:`taken_summary` takes (a member could fill one with made-up dots and origins, which we
would hold, persist, and send on in every summary and transfer). Each message says how much
of the round is left (``remaining``). A summary with ``reply=True`` is answered with our own
summary of the same partitions, so each side sends the other what it lacks (and learns of an
identity conflict, below); one with ``reply=False`` is not (no ping-pong).

A received summary also teaches the members its sender lists (and is answered with our list
when it misses some member we know), is remembered for compaction (which runs on a change)
as far as it concerns what we hold (:func:`kept_summary`: a member's summary listing dots
held nowhere here was kept whole, up to 30 bytes of memory per byte received, per partition
and peer, and written to its record again on each later summary), and reveals an identity
conflict: a log dot of ours above our highest one means this database was restored or copied
(``IdentityConflict``; our numbering jumps above the seen dot).

:class:`AntiEntropy` owns one session per peer: the queue of batches and partition streams
planned for it and the messages in flight.

Knows the outbox, the timers, checked batches, local data, membership, outbound batching,
compaction and state transfers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from crdt import CRDT, CausalContext
from sync import messages as m
from sync.config import MESSAGE_ENVELOPE, ReplicaConfig
from sync.digest import ctx_model
from sync.effects import Alarm, IdentityConflict, LogEntry, ObjectState, ReadPage, Send
from sync.replica.checked import CheckedBatch
from sync.replica.compaction import Compaction
from sync.replica.local_data import LocalData
from sync.replica.membership import ALARM_REPEAT, Membership
from sync.replica.outbound import Outbound, entry_size
from sync.replica.outbox import Outbox
from sync.replica.timers import Timer, TimerKind, Timers
from sync.replica.transfer import PIECE_GAP, Chunk, Stream, Transfers

__all__ = [
    "REPORTED_CLOUD_MAX",
    "SUMMARY_ORIGINS_MAX",
    "TAKEN_ORIGINS_MAX",
    "AntiEntropy",
    "Batch",
    "Session",
    "ctx_model",
    "kept_summary",
    "taken_summary",
]

#: The cloud dots (dots past a version vector: seen out of order) of a peer's summary of one
#: partition that are remembered, at most (the lowest ones).
REPORTED_CLOUD_MAX = 1024

#: The origins new to our summary of a partition that one state transfer's summary adds to
#: it, at most (the first ones by id). An honest summary holds one origin per replica that
#: ever wrote to the partition, and nearly all of them are already ours after the first
#: transfer or the log entries: a bound as large as the cloud's lets a group of a thousand
#: writers in one go, and a larger one over as many transfers (the sender sends another
#: while we lack dots it has only in its states). A member's made-up origins cost us ~40
#: bytes each, held, persisted and sent on in every summary: ~40 KB per transfer, not ~2 MB.
TAKEN_ORIGINS_MAX = 1024
#: The origins our summary of a partition may hold for a state transfer's summary to add new
#: ones (below it, :data:`TAKEN_ORIGINS_MAX` a transfer). Without it a member asked again
#: and again could add that many a round until the partition's summary outgrew a message,
#: which every summary of it must fit in (a summary too big for a peer is refused whole);
#: 10,000 origins are some 400 kB. An honest group with more writers than that in one
#: partition is not supported: past it, the new origins' dots go on being sent (the sender
#: transfers again), and an alarm says so.
SUMMARY_ORIGINS_MAX = 10_000


def kept_summary(theirs: CausalContext, mine: CausalContext | None) -> CausalContext:
    """What is remembered of a peer's summary ``theirs`` of a partition we hold ``mine`` of:
    the dots both hold, with at most :data:`REPORTED_CLOUD_MAX` cloud dots. Every question
    asked of a remembered summary is whether the peer holds dots of ours (compaction, the
    hand-over, the release of hints to relays, propagation, lag), so the rest is never
    needed; a dot not remembered counts as not held by the peer (compaction waits, an offer
    or a hint goes again) until its next summary, or digest round, tells again. So what a
    peer's summaries take here is bounded by what we hold, not by what it sends."""
    if mine is None:
        return CausalContext()
    kept = theirs.meet(mine)
    if len(kept.cloud) > REPORTED_CLOUD_MAX:
        kept.cloud = set(sorted(kept.cloud)[:REPORTED_CLOUD_MAX])
    return kept


def taken_summary(theirs: CausalContext, mine: CausalContext) -> CausalContext:
    """What is taken of the summary ``theirs`` that ends a state transfer of a partition we
    hold ``mine`` of (a member asked for a transfer could send one full of made-up dots,
    each of which we would hold, persist and send on in every summary, and pass on in the
    transfers we make):

    * its version vector for the origins ``mine`` has, whole, and for the others only the
      first :data:`TAKEN_ORIGINS_MAX` by id, while ``mine`` holds fewer than
      :data:`SUMMARY_ORIGINS_MAX` origins (an origin whose entries are compacted away
      everywhere is real, may be known to no member, and is carried by a transfer's summary
      only, so a vector cannot be checked against what we know);
    * of its cloud dots we lack, only the lowest ones, while our cloud, but for the dots
      that vector covers, holds fewer than :data:`REPORTED_CLOUD_MAX`, and of origins new
      to us only within what is left of the vector's room of new origins.

    Taking less than the sender holds is safe: a dot we lack is sent again (as a log entry,
    or in the sender's next transfer, which takes the next origins), and joins are
    idempotent."""
    mvv, mcloud = mine.vv, mine.cloud
    ours = set(mvv).union(o for o, _ in mcloud)
    new = sorted(o for o in theirs.vv if o not in ours)
    vv = {o: c for o, c in theirs.vv.items() if o in ours}
    room = max(0, min(TAKEN_ORIGINS_MAX, SUMMARY_ORIGINS_MAX - len(ours)))
    vv.update((o, theirs.vv[o]) for o in new[:room])
    # A cloud's new origins share that room (once ours, the next transfer's vector of them
    # is taken whole).
    named = sorted({o for o, _ in theirs.cloud if o not in ours and o not in vv})
    known = ours.union(vv, named[: room - min(room, len(new))])
    fresh = [
        d for d in theirs.cloud if d[1] > mvv.get(d[0], 0) and d not in mcloud and d[0] in known
    ]
    room = REPORTED_CLOUD_MAX - len(mcloud)
    if len(fresh) > room:  # (but our dots the vector taken covers leave our cloud)
        room = REPORTED_CLOUD_MAX - sum(1 for o, c in mcloud if c > vv.get(o, 0))
        fresh = sorted(fresh)[: max(0, room)]
    taken: CausalContext = CausalContext.__new__(CausalContext)
    taken.vv = vv
    taken.cloud = set(fresh)
    taken.compact()
    return taken


def _in_parts(known: list[m.PeerInfo], max_bytes: int, first: int) -> list[list[m.PeerInfo]]:
    """``known`` (a list of members to send) cut into lists of at most a quarter of
    ``max_bytes`` of JSON each, the first of at most ``first`` (the first message also
    carries the partitions' contexts: it may carry no member); one list, maybe empty, when
    it fits."""
    budget = max_bytes // 4
    room = min(budget, first)
    lists: list[list[m.PeerInfo]] = [[]]
    size = 0
    for info in known:
        n = len(info.__pydantic_serializer__.to_json(info)) + 1
        if size + n > room and (lists[-1] or room < budget):
            lists.append([])
            size, room = 0, budget
        lists[-1].append(info)
        size += n
    return lists


def _summary(
    parts: dict[int, m.Ctx], listed: list[m.PeerInfo], reply: bool, more: bool, offer: bool
) -> m.Summary:
    return m.Summary.model_construct(
        proto=1,
        t="summary",
        parts=parts,
        known_peers=listed,
        reply=reply,
        more_members=more,
        offer=offer,
    )


@dataclass(slots=True)
class Batch:
    """One planned ``Deltas`` message (``size``: its entries' bytes)."""

    partition: int
    entries: list[LogEntry]
    more: bool = False
    size: int = 0


@dataclass(slots=True)
class Session:
    """The anti-entropy round with one peer: the batches and partition streams to send, and
    the messages in flight."""

    queue: deque[Batch | Stream] = field(default_factory=deque)
    inflight: dict[int, float] = field(default_factory=dict)  # batch id -> when sent
    parts: dict[int, int] = field(default_factory=dict)  # batch id in flight -> its partition
    progress: float = float("-inf")  # when the last of its messages was acknowledged
    counted: bool = False  # the objects of its streams were asked to be counted

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.inflight)

    def remaining(self) -> tuple[int, int]:
        """Entries (log entries, objects) and bytes still to send in the queue."""
        entries = size = 0
        for item in self.queue:
            if isinstance(item, Batch):
                entries += len(item.entries)
                size += item.size
            else:
                entries += item.objects_left
                size += item.bytes_left
        return entries, size

    def buffered(self) -> int:
        """Objects read from the store for its streams and not sent yet."""
        return sum(item.buffered for item in self.queue if isinstance(item, Stream))


class AntiEntropy:
    """Summaries to and from each peer, and the rounds of batches they lead to."""

    __slots__ = (
        "_asked",
        "_compaction",
        "_config",
        "_data",
        "_emit",
        "_full_alarms",
        "_listed_alarms",
        "_me",
        "_membership",
        "_outbound",
        "_outbox",
        "_sealed_only",
        "_sessions",
        "_timers",
        "_transfers",
        "_unreadable_alarms",
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
        # Per peer, the partitions we sent it a summary of (while it is a member): the only
        # ones it may send us a state transfer of.
        self._asked: dict[str, set[int]] = {}
        self._full_alarms: dict[int, float] = {}  # partition -> its last summary_full alarm
        # forgotten member -> its last forgotten_listed alarm
        self._listed_alarms: dict[str, float] = {}
        self._unreadable_alarms: dict[int, float] = {}  # partition -> its last such alarm
        self._transfers = Transfers(config, replica_id, outbox, data, outbound)

    # -- summaries -----------------------------------------------------------------------------
    def hand_over(self) -> None:
        """Offer what we hold of the partitions we are no longer a home of to their homes.

        Anti-entropy runs between the homes of a partition; when the ring grows (or a home
        is forgotten) a partition may get homes none of which held it, while the replicas
        that do hold it are homes no more: nothing carried it to its homes, and a write
        acknowledged by all its homes then could not be read from the new ones, for ever.
        So, each round, a replica sends each home that is up and, by its last summary,
        lacks something we hold of such a partition, our summary of it asking for theirs
        (``reply``); their answer plans what they lack as any summary does (log entries, or
        a state transfer), and the next answer, once they hold it all, ends the offer. (As
        Riak's hand-off of a vnode whose ownership moved; what we hold stays here.)"""
        membership, data, me = self._membership, self._data, self._me
        up, ring = membership.up, membership.ring()
        relays = membership.up_relays()
        offers: dict[str, list[int]] = {}  # per home, the partitions to offer it
        for p in data.held_partitions():
            homes = ring.preference_list(p)
            if me in homes:
                continue
            mine = data.summary(p)
            # Relays too: they hold every partition, and bridge homes that never meet.
            for home in (*homes, *(r for r in relays if r not in homes)):
                if home not in up:
                    continue
                theirs = membership.reported_summary(home, p)
                if theirs is not None and next(mine.dots_not_in(theirs), None) is None:
                    continue  # it holds all we have of p
                offers.setdefault(home, []).append(p)
        for home in sorted(offers):
            self.send_summary(home, reply=True, parts=offers[home])

    def stop(self, peer: str) -> None:
        """``peer`` went down: its round is abandoned. What we asked it stays while it is a
        member (:meth:`asked`)."""
        self._reset(peer)
        if not self._membership.is_member(peer):
            self._asked.pop(peer, None)

    def asked(self, peer: str, partition: int) -> bool:
        """May ``peer`` send us a state transfer of ``partition``? Only if we sent it our
        summary of that partition, which is what a transfer answers (:meth:`_plan`).

        Once asked, always asked while ``peer`` is a member, across its links: which of our
        summaries a transfer answers is not on the wire, a transfer may overlap the next
        summary (so a transfer cannot use up the asking), and a sender whose link was
        replaced (it redialled us before we saw the old one end) goes on with the transfer
        it had begun. A non-home, or a forgotten peer, loses it when it goes down."""
        asked = self._asked.get(peer)
        return asked is not None and partition in asked

    def send_summary(
        self,
        peer: str,
        *,
        reply: bool,
        parts: Iterable[int] | None = None,
        members: bool = False,
    ) -> None:
        """A ``Summary`` to ``peer`` of ``parts`` (default: every partition both are homes
        of), listing every member we know when ``members``."""
        summary = self._data.summary
        if parts is None:
            parts = self._membership.shared_partitions(peer)
        body = {p: ctx_model(summary(p)) for p in parts}
        if body:
            self._asked.setdefault(peer, set()).update(body)
        # The partitions we are no home of are offered (``offer``: nothing of them is sent
        # back), in a summary of their own when others are asked for beside them.
        offer = False
        if body and not self._config.relay:  # (a relay holds, and asks for, every partition)
            ring, me = self._membership.ring(), self._me
            offered = {p: ctx for p, ctx in body.items() if not ring.is_home(me, p)}
            if len(offered) == len(body):
                offer = True
            elif offered:
                for p in offered:
                    del body[p]
                self._emit(Send(peer, _summary(offered, [], reply, False, True)))
        known: list[m.PeerInfo] = []
        if members:
            self._membership.regossip(peer)
            known = self._membership.gossip(peer)
        # A list of members too big for one message goes on in members-only summaries
        # (the first one leaves room for the partitions' contexts).
        max_bytes = self._config.max_message_bytes
        first = max_bytes
        if known and body:
            first -= MESSAGE_ENVELOPE + sum(
                len(ctx.__pydantic_serializer__.to_json(ctx)) + 16 for ctx in body.values()
            )
        lists = _in_parts(known, max_bytes, first)
        for i, listed in enumerate(lists):
            first = i == 0
            msg = _summary(
                body if first else {}, listed, reply and first, i < len(lists) - 1, offer and first
            )
            self._emit(Send(peer, msg))

    def on_summary(
        self, peer: str, msg: m.Summary, theirs: dict[int, CausalContext], now: float
    ) -> dict[int, CausalContext]:
        """``peer`` reported its summaries ``theirs`` (checked); returns what of them is
        remembered (:func:`kept_summary`)."""
        me, membership = self._me, self._membership
        membership.learn_members(peer, msg.known_peers, now)
        for info in msg.known_peers:
            if membership.is_forgotten(info.replica_id):
                self._forgotten_listed(peer, info.replica_id, now)
        data = self._data
        kept = {p: kept_summary(ctx, data.summary_if_any(p)) for p, ctx in theirs.items()}
        if membership.store_summary(peer, kept, now):
            gone = set(membership.gone(now))
            for p in sorted(theirs):
                self._compaction.compact(p, now, gone)
        for p in sorted(theirs):
            seen = theirs[p].max_counter(me)
            ours = data.last_seq(p)
            if seen > ours:
                self._emit(IdentityConflict(peer, p, seen, ours))
                data.raise_seq(p, seen)
        self._plan(peer, theirs, msg.offer)
        self.pump(peer, now)
        missing = (bool(msg.known_peers) or msg.more_members) and membership.members_missing(
            peer, msg.known_peers, more=msg.more_members
        )
        if peer in membership.up and (msg.reply or missing):
            parts = sorted(theirs) if msg.reply else ()
            self.send_summary(peer, reply=False, parts=parts, members=missing)
        return kept

    def _plan(self, peer: str, theirs: dict[int, CausalContext], offer: bool) -> None:
        """Queue what ``peer`` lacks of the partitions in its summary that it is a home of:
        the log entries it lacks, or a state transfer of a partition when we no longer have
        one in our log.

        Which partitions: :meth:`serves`. A replica that is no home of a partition by its
        ring sends its summary only to offer it (``offer``, :meth:`hand_over`): unless we
        count it a home of it, it is sent nothing of it back."""
        sess = self._sessions.setdefault(peer, Session())
        if sess.busy:
            return  # one round at a time; the next summary picks up what this one missed
        data = self._data
        for p in sorted(theirs):
            if not self.serves(peer, p, offer):
                continue
            mine = data.summary_if_any(p)
            if mine is None:
                continue
            missing: list[LogEntry] = []
            snapshot = False
            sealed_only, me = self._sealed_only, self._me
            for d in mine.dots_not_in(theirs[p]):
                e = data.log.entry(p, d[0], d[1])
                if e is None or (sealed_only and e.seal is None and e.origin != me):
                    snapshot = True
                    break
                missing.append(e)
            if snapshot:
                sess.queue.append(Stream(p))  # every object of p, read when its turn comes
                continue
            chunks = self._outbound.split(missing)
            for i, chunk in enumerate(chunks):
                size = sum(entry_size(e) for e in chunk)
                sess.queue.append(Batch(p, chunk, more=i < len(chunks) - 1, size=size))

    def serves(self, peer: str, p: int, offer: bool) -> bool:
        """Is ``peer``, whose summary of partition ``p`` came (``offer``: as an offer), sent
        what it lacks of ``p``? A home of ``p`` by our ring, or a relay (it holds every
        partition), is. So is a home member asking (not ``offer``) as a home of ``p`` by
        its own ring, which may differ from ours: a member forgotten there and not (yet)
        here left it the home of partitions it is no home of by ours, and its reads answer
        from what it holds. Such a claim is taken only from a peer that could be right:
        within :meth:`~sync.replica.membership.Membership.claim_depth` of the partition's
        walk of our ring (a member is one place further for each member before it that it
        forgot), so a member asking for every partition gets at most about twice its share,
        not the whole database."""
        membership = self._membership
        ring = membership.ring()
        if membership.is_relay(peer) or ring.is_home(peer, p):
            return True
        return (
            not offer
            and membership.is_home(peer)
            and ring.within(peer, p, membership.claim_depth(peer))
        )

    def pump(self, peer: str, now: float) -> None:
        """Send the next planned messages to ``peer``, up to ``ae_max_inflight`` unacked,
        reading the next page of a partition stream when its chunks are all sent."""
        sess = self._sessions.get(peer)
        if sess is None or peer not in self._membership.up:
            return
        transfers = self._transfers
        queue = sess.queue
        at = 0  # items before it: streams whose summary-carrying chunk waits for acks
        while at < len(queue) and len(sess.inflight) < self._config.ae_max_inflight:
            item = queue[at]
            if isinstance(item, Batch):
                del queue[at]
                self._send_deltas(peer, sess, item, now)
                continue
            if not item.started:
                # The first read of the round also counts what its streams will send.
                count: list[int] = []
                if not sess.counted:
                    sess.counted = True
                    count = [x.partition for x in sess.queue if isinstance(x, Stream)]
                transfers.begin(peer, item, count)
                break
            pump = Timer(TimerKind.AE_PUMP, peer)
            if pump in self._timers and item.ready.holds_piece():
                break  # a piece went in this round: the next is cut and goes in its own
            try:
                held = item.ready.ahead()
                sends = held > 1 or (held == 1 and not item.end)  # (one left at the end: last)
                chunk = item.ready.popleft() if sends else None
            except Exception as exc:  # a stored state that cannot be cut: a corrupt row
                del queue[at]  # this partition is left out of the round; the rest goes on
                self._unreadable(peer, item.partition, exc, now)
                continue
            if chunk is not None:
                transfers.sent(item, chunk)
                self._send_chunk(peer, sess, item, chunk, False, now)
                if item.ready.drained and not item.end and not item.reading:
                    transfers.read(peer, item)  # one page ahead of the window
                if chunk.has_piece:
                    # A piece of a big state leaves with this round's effects; the next is
                    # cut in a round of its own, once this one is on its way.
                    self._timers.set(pump, now + PIECE_GAP)
                    break
                continue
            if item.end:
                if item.partition in sess.parts.values():
                    # The summary-carrying chunk goes only once every other message of its
                    # partition landed; meanwhile the streams behind it go on, so the window
                    # fills (such a stream holds one chunk, and a message in flight).
                    at += 1
                    continue
                del queue[at]
                chunk = item.ready.popleft() if item.ready else Chunk([])
                self._send_chunk(peer, sess, item, chunk, True, now)
                continue
            if not item.reading:
                transfers.read(peer, item)
            break
        if sess.inflight:
            self._timers.set_if_earlier(Timer(TimerKind.AE_TIMEOUT, peer), self._overdue(sess))

    def _send_deltas(self, peer: str, sess: Session, batch: Batch, now: float) -> None:
        bid = self._outbox.new_id()
        msg = m.Deltas.model_construct(
            proto=1,
            t="deltas",
            batch_id=bid,
            partition=batch.partition,
            entries=list(batch.entries),
            more=batch.more,
            remaining=sess.remaining(),
        )
        self._sent(peer, sess, bid, batch.partition, msg, now)

    def _send_chunk(
        self, peer: str, sess: Session, stream: Stream, chunk: Chunk, last: bool, now: float
    ) -> None:
        bid = self._outbox.new_id()
        msg = m.SnapshotChunk.model_construct(
            proto=1,
            t="snapshot",
            batch_id=bid,
            partition=stream.partition,
            objects=chunk.objects,
            summary=stream.summary if last else None,
            last=last,
            remaining=sess.remaining(),
        )
        self._sent(peer, sess, bid, stream.partition, msg, now)

    def _sent(
        self, peer: str, sess: Session, bid: int, partition: int, msg: m.Message, now: float
    ) -> None:
        sess.inflight[bid] = now
        sess.parts[bid] = partition
        self._outbound.expect_ack(peer, bid, now)
        self._emit(Send(peer, msg))

    def on_page(
        self,
        read: ReadPage,
        rows: list[ObjectState],
        end: bool,
        totals: dict[int, tuple[int, int]] | None,
        now: float,
    ) -> None:
        """The page ``read`` asked for (ignored if its stream is gone: the round was
        abandoned meanwhile, and a page read before a later round's checkpoints must not
        feed it)."""
        peer = read.peer
        sess = self._sessions.get(peer)
        if sess is None:
            return
        for item in sess.queue:
            if isinstance(item, Stream) and item.reading == read:
                if totals is not None:
                    self._transfers.counted(
                        (x for x in sess.queue if isinstance(x, Stream)), totals
                    )
                self._transfers.page(item, rows, end)
                self.pump(peer, now)
                return

    def buffered(self) -> int:
        """Objects read from the store for state transfers and not sent yet (every peer)."""
        return sum(sess.buffered() for sess in self._sessions.values())

    def acked(self, peer: str, batch_id: int, now: float) -> None:
        """``peer`` acknowledged the batch ``batch_id``: the round makes progress."""
        sess = self._sessions.get(peer)
        if sess is not None and sess.inflight.pop(batch_id, None) is not None:
            del sess.parts[batch_id]
            sess.progress = now

    def _overdue(self, sess: Session) -> float:
        """When the round counts as lost: ``write_timeout`` after its oldest message in
        flight was sent or, if later, after its last acknowledgement. A slow receiver that
        still acknowledges keeps its round (a transfer is never restarted for being slow);
        a lost message costs one window slot until the acks stop."""
        return max(min(sess.inflight.values()), sess.progress) + self._config.write_timeout

    def check_timeout(self, peer: str, now: float) -> None:
        """A batch to ``peer`` may be lost: abandon the round once it is overdue."""
        sess = self._sessions.get(peer)
        if sess is not None and sess.inflight:
            overdue = self._overdue(sess)
            if overdue <= now:
                self._reset(peer)  # lost: the next summary starts a new round
            else:
                self._timers.set(Timer(TimerKind.AE_TIMEOUT, peer), overdue)

    def _reset(self, peer: str) -> None:
        sess = self._sessions.pop(peer, None)
        if sess is not None:
            for bid in sess.inflight:
                self._outbound.give_up(peer, bid)
        self._timers.cancel(Timer(TimerKind.AE_TIMEOUT, peer))

    def on_deltas(self, peer: str, msg: m.Deltas, batch: CheckedBatch, now: float) -> None:
        """Apply a checked ``Deltas`` batch (the entries we lacked, forwarded by a relay to
        the homes connected to it) and acknowledge it."""
        self._outbound.relay_forward(peer, self._data.apply_entries(batch), now)
        self._emit(Send(peer, m.Ack(ids=[msg.batch_id])))

    # -- state transfer ------------------------------------------------------------------------
    def on_snapshot(
        self,
        peer: str,
        msg: m.SnapshotChunk,
        states: list[tuple[str, CRDT]],
        summary: CausalContext | None,
        now: float,
    ) -> None:
        """Merge a checked chunk of a state transfer: whole states (checkpointed now; a key
        it brought into the cache leaves it at the end of the drain) and pieces of split
        ones (merged as deltas, checkpointed with the partition's last chunk); the last one
        also carries the sender's summary, merged after every checkpoint it needs, as far as
        :func:`taken_summary` takes it. (The chunk answers a summary of ours:
        :meth:`asked`, checked by inbound.)"""
        data, p = self._data, msg.partition
        for (key, state), obj in zip(states, msg.objects, strict=True):
            if obj.piece:
                data.merge_piece(key, p, state, len(obj.state_json))
            else:
                data.merge_state(key, state, transferred=True, text=obj.state_json, partition=p)
        if summary is not None:
            data.pieces_done(p)
            data.merge_summary(p, taken_summary(summary, data.summary(p)))
            self._origins_full(peer, p, summary, now)
        self._emit(Send(peer, m.Ack(ids=[msg.batch_id])))

    def _forgotten_listed(self, peer: str, forgotten: str, now: float) -> None:
        """The alarm that ``peer`` lists ``forgotten``, a member forgotten here (at most one
        per forgotten member every ``ALARM_REPEAT``)."""
        if not _due(self._listed_alarms, forgotten, now):
            return
        self._emit(
            Alarm(
                "forgotten_listed",
                peer,
                f"{peer} still counts {forgotten} as a member, which was forgotten here: "
                f"until it is forgotten on every peer (shoal forget) or taken back here "
                f"(shoal forget --undo), the rings of {peer} and this replica differ, and "
                f"each is a home of partitions the other does not count it a home of.",
            )
        )

    def _unreadable(self, peer: str, p: int, exc: Exception, now: float) -> None:
        """The alarm that a stored state of partition ``p`` cannot be cut for ``peer``'s
        state transfer (at most one per partition every ``ALARM_REPEAT``): the partition is
        left out of the round, and tried again in the next."""
        if _due(self._unreadable_alarms, p, now):
            self._emit(
                Alarm(
                    "unreadable_state",
                    peer,
                    f"a state of partition {p} in this replica's store cannot be read for a "
                    f"state transfer to {peer} ({type(exc).__name__}: {exc}); the partition "
                    f"is left out of the transfer and tried again at the next anti-entropy "
                    f"round. The database is damaged: restore it from a backup.",
                )
            )

    def _origins_full(self, peer: str, p: int, theirs: CausalContext, now: float) -> None:
        """The alarm that our summary of ``p`` holds :data:`SUMMARY_ORIGINS_MAX` origins and
        ``peer``'s transfer named more (at most one per partition every ``ALARM_REPEAT``)."""
        ours = self._data.summary(p)
        if len(ours.vv) + len(ours.cloud) < SUMMARY_ORIGINS_MAX:
            return  # (the common case, without building the set of its origins)
        origins = set(ours.vv).union(o for o, _ in ours.cloud)
        named = chain(theirs.vv, (o for o, _ in theirs.cloud))
        if len(origins) < SUMMARY_ORIGINS_MAX or all(o in origins for o in named):
            return
        if not _due(self._full_alarms, p, now):
            return
        self._emit(
            Alarm(
                "summary_full",
                peer,
                f"a state transfer from {peer} names writers of partition {p} this replica "
                f"does not hold, and its summary of that partition already holds "
                f"{len(origins)} ({SUMMARY_ORIGINS_MAX} at most): they are not taken, and "
                f"their changes go on being sent. A group with that many writers in one "
                f"partition is not supported; else {peer} made them up.",
            )
        )


def _due(last: dict[Any, float], subject: object, now: float) -> bool:
    """Whether an alarm about ``subject`` is due (none in the last ``ALARM_REPEAT``), noting
    it as raised now if so."""
    if now - last.get(subject, float("-inf")) < ALARM_REPEAT:
        return False
    last[subject] = now
    return True
