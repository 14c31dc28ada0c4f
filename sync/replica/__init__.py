"""The sans-I/O replication engine: one :class:`Replica` per peer, a façade over components.

(About 730 lines: every public entry point with its checks, and what touches several
components orchestrated in one place, in order; the components are modules of their own.)

:class:`Replica` takes every input (local writes and reads, received messages, peers up and
down, time passing) with the caller's ``now``, and gives back the effects to execute, in
order (:meth:`Replica.effects`), and when to call it next (:meth:`Replica.next_deadline`).
What it does with each input, and why, is the theory of operation: :mod:`sync.replica.theory`.

Its one job is to be the façade: it has its arguments checked before anything changes,
brackets each input (clamping ``now``, opening and closing the input's durable changes),
dispatches received messages and due timers with ``match``, and orchestrates what touches
several components (a peer going up, down or forgotten, an ack, a push). Each component of
``sync/replica/`` owns its state and knows only those before it in this order: timers,
outbox, local_data, membership, drain, propagation, outbound, hints, updates, writes, reads,
compaction, transfer, anti_entropy, gossip, inbound, reports (each module's docstring says
its job; ``tests/sync/test_replica_components.py`` checks their imports).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import crdt
from crdt import CRDT, CausalContext
from sync import messages as m
from sync.config import ReplicaConfig, check_key
from sync.effects import Effect, Loaded, LogDot, ObjectState, ReadPage, Send
from sync.errors import LocalProtocolError, RemoteProtocolError
from sync.member_cards import Cards
from sync.replica.anti_entropy import AntiEntropy
from sync.replica.api import ReplicaAPI
from sync.replica.checked import CheckedBatch
from sync.replica.compaction import Compaction
from sync.replica.drain import Drain
from sync.replica.equivocation import Equivocations
from sync.replica.gossip import Gossip
from sync.replica.hints import Hints
from sync.replica.inbound import Inbound
from sync.replica.local_data import LocalData, live_kinds
from sync.replica.membership import Membership
from sync.replica.outbound import Outbound
from sync.replica.outbox import Outbox
from sync.replica.propagation import Propagation, Whereabouts
from sync.replica.reads import Reads
from sync.replica.reports import Reports
from sync.replica.timers import Timer, TimerKind, Timers
from sync.replica.transfer import Progress, checked_page
from sync.replica.updates import Updates
from sync.replica.writes import Writes
from sync.ring import PartitionMemo
from sync.signing import Signer, Verifier

__all__ = ["Replica", "ReplicaAPI", "Whereabouts", "live_kinds"]

_COMPACT = Timer(TimerKind.COMPACT)


class Replica:
    """One peer's replication engine (:mod:`sync.replica.theory` says what it does).

    >>> from sync.config import ReplicaConfig
    >>> r = Replica(ReplicaConfig(n=1), "A")
    >>> r.local_update(1, "visits", "gcounter", lambda c: c.increment("A", 2), now=0.0)
    >>> [type(e).__name__ for e in r.effects()]
    ['Persist', 'Changed', 'WriteDone']
    >>> r.value("visits").value
    2

    ``partition_of``: the memo of keys' partitions to use, shared with the store that
    persists this replica (a key's partition is then hashed once for both); a memo of its own
    when None.
    """

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        loaded: Loaded | None = None,
        *,
        now: float = 0.0,
        signer: Signer | None = None,
        partition_of: PartitionMemo | None = None,
    ) -> None:
        if not isinstance(config, ReplicaConfig):
            raise TypeError(f"config must be a ReplicaConfig, got {type(config).__name__}")
        if not isinstance(replica_id, str) or not replica_id:
            raise ValueError(f"replica_id must be a non-empty str, got {replica_id!r}")
        if signer is not None and signer.replica_id != replica_id:
            raise ValueError(
                f"replica_id {replica_id!r} is not the id of the signer's key "
                f"({signer.replica_id!r})"
            )
        if partition_of is not None and (
            not isinstance(partition_of, PartitionMemo)
            or partition_of.partitions != config.partitions
        ):
            raise ValueError(
                f"partition_of must be a PartitionMemo of config.partitions "
                f"({config.partitions}) partitions, got {partition_of!r}"
            )
        self.config = config
        self.replica_id = replica_id
        self._now = float(now)
        rng = random.Random(f"{config.seed}/{replica_id}/{now!r}")
        # Message ids start at a random point so that late acks addressed to a previous
        # incarnation of this replica (before a crash) cannot match new messages.
        self._outbox = outbox = Outbox(rng.getrandbits(52))
        self._timers = timers = Timers()
        self._data = data = LocalData(config, replica_id, outbox, partition_of)
        cards = Cards(replica_id, signer, config.site, config.home, int(self._now * 1000))
        self._membership = membership = Membership(config, replica_id, outbox, cards)
        self._drain = Drain(outbox, data, membership, signer)
        self._propagation = propagation = Propagation(replica_id, membership)
        signs = signer is not None
        self._outbound = outbound = Outbound(
            config, replica_id, outbox, timers, membership, sealed=signs
        )
        self._hints = hints = Hints(config, replica_id, outbox, timers, membership, outbound)
        self._updates = Updates(config, replica_id, outbox, data)
        self._writes = writes = Writes(
            config, replica_id, outbox, timers, membership, outbound, hints
        )
        self._reads = reads = Reads(config, replica_id, outbox, timers, data, membership)
        self._compaction = compaction = Compaction(config, replica_id, data, membership, hints)
        self._anti_entropy = anti_entropy = AntiEntropy(
            config,
            replica_id,
            outbox,
            timers,
            data,
            membership,
            outbound,
            compaction,
            sealed_only=signs,
        )
        self._gossip = Gossip(
            config, replica_id, outbox, timers, data, membership, compaction, anti_entropy
        )
        self._inbound = Inbound(
            config, replica_id, data, membership, reads, None if signer is None else Verifier()
        )
        self._equivocations = equivocations = Equivocations(
            replica_id, outbox, signed=signer is not None
        )
        self._progress = progress = Progress(config, outbox)
        self._reports = Reports(
            replica_id,
            data,
            membership,
            propagation,
            hints,
            writes,
            reads,
            progress,
            anti_entropy,
            equivocations,
        )
        if loaded is not None:
            data.load(loaded)
            held = loaded.hints
            if signer is not None:
                # Another origin's entry stored unsealed (from before signing) could never be
                # delivered; ours (hints are sealed when stored, but a store may hold one
                # from before that) is sealed when it is handed off.
                held = [h for h in held if h.entry.seal is not None or h.entry.origin == replica_id]
            hints.load(held, self._now)
            membership.load(loaded.peers, self._now)
        self._had_homes = membership.has_homes()  # (when none: see _finish)
        timers.set(_COMPACT, self._now + compaction.interval())

    # -- the public API --------------------------------------------------------------------
    def local_update(
        self,
        op_id: int,
        key: str,
        kind: str,
        fn: Callable[[CRDT], CRDT],
        now: float,
        *,
        w: int | str | None = None,
        strict: bool | None = None,
        timeout: float | None = None,
        checked: bool = False,
    ) -> None:
        """Apply ``fn`` to the object ``(key, kind)`` (created as a bottom ``kind`` if absent).

        ``fn`` receives the object, calls one mutator on it and returns that mutator's
        delta. A key holding only another kind raises ``TypeError``; a key holding this kind
        and another (a clash) raises :class:`~sync.errors.KindClash`; an error raised by ``fn``
        propagates; bad ``w``/``timeout`` raise ``TypeError``/``ValueError``; a delta whose
        log entry would not fit in one message raises
        :class:`~sync.errors.ValueTooLarge`. In those cases nothing is queued and the
        replica is unchanged: ``fn`` runs on a fresh bottom or a *copy* of the object, which
        replaces it once its delta is known to fit (:mod:`~sync.replica.updates`).

        An ``fn`` whose ``resets`` attribute is True promises to call the kind's observed
        reset (``clear``, a delete): it is allowed on a key of this kind and another, since
        deleting one of them is how a clash ends.

        ``checked=True`` is the caller's promise that ``fn``'s delta fits in a message (the
        handles of :mod:`sync.transport.handles` check every value against
        ``config.max_value_bytes`` before its mutator runs): ``fn`` then runs on the live
        object, with no copy (the hot path). A delta that breaks the promise is refused
        too, never logged or sent, but the object in memory may keep the change until the
        replica is rebuilt: ``LocalProtocolError``, a bug of the caller.

        Next, the caller must drain :meth:`effects` and execute them in order: ``Persist``
        (the write is durable once it is), ``Changed``, then ``WriteDone``/``WriteFailed``
        for ``op_id`` (now or later, at the latest by ``now + timeout``) and the sends.
        """
        _check_now(now)
        check_key(key)
        if kind not in crdt.KINDS:
            raise ValueError(f"unknown CRDT kind {kind!r}; known: {', '.join(crdt.KINDS)}")
        level, strict_, timeout_ = self._writes.options(op_id, w, strict, timeout)
        updates = self._updates
        obj = updates.held(key, kind, fn)
        p = self._data.partition(key)
        homes, required, site = self._membership.placement(p, level)
        entry, replacement = updates.prepare(key, kind, p, obj, fn, checked)

        now = self._begin(now)
        try:
            updates.apply(entry, replacement)
            self._writes.start(op_id, entry, homes, required, site, strict_, timeout_, now)
        finally:
            self._finish()

    def local_read(
        self,
        op_id: int,
        key: str,
        now: float,
        *,
        kind: str | None = None,
        r: int | str | None = None,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        """Read the object ``(key, kind)`` from ``r`` replicas (this one answers at once when
        it counts). ``kind=None``: the one kind ``key`` holds here (:class:`KeyNotFound` if it
        holds none, :class:`KindClash` if several: name the kind).

        Next, the caller must drain :meth:`effects` and execute them: ``ReadReq`` sends now,
        and, now or later (at the latest by ``now + timeout``), exactly one ``ReadDone`` or
        ``ReadFailed`` for ``op_id``; read repairs and a ``Persist`` of the joined state may
        follow until every asked replica replied or the deadline passed.
        """
        check_key(key)
        level, strict_, timeout_ = self._reads.options(op_id, r, strict, timeout)
        if kind is None:
            kind = self._reads.kind_to_read(key)
        elif kind not in crdt.KINDS:
            raise ValueError(f"unknown CRDT kind {kind!r}; known: {', '.join(crdt.KINDS)}")
        self._data.require((key,))
        p = self._data.partition(key)
        homes, required, site = self._membership.placement(p, level)

        now = self._begin(now)
        try:
            self._reads.start(op_id, key, kind, p, homes, required, site, strict_, timeout_, now)
        finally:
            self._finish()

    def receive(self, peer_id: str, message: m.Message, now: float) -> None:
        """Handle ``message`` from ``peer_id`` (an authenticated, connected peer).

        ``RemoteProtocolError`` if the content is bad (a CRDT body that does not decode, a key
        in the wrong partition, a kind clash, a log dot of ours we never issued, a handshake or
        heartbeat message, which is the transport's business...): the replica is unchanged
        and the caller should close the connection. Nothing a peer sends can make a later
        ``Persist`` one the store refuses. Next, drain :meth:`effects`.
        """
        if peer_id == self.replica_id:
            raise LocalProtocolError("a replica cannot receive from itself")
        check = self._inbound
        try:
            # Each case checks the message first (may raise; nothing has changed yet), then
            # begins the input (self._begin) and applies it.
            match message:
                case m.Push():
                    batch, skewed = check.push(peer_id, message, self._peek(now))
                    self._data.require(oid[0] for oid in (*batch.groups, *batch.rejoin))
                    now = self._begin(now)
                    # An ack says that every entry it covers is durable here: a push with
                    # entries set aside is acked but for them (its sender keeps them, and
                    # retries), so that the writes it carries beside them complete.
                    self._membership.set_aside(peer_id, skewed, now)
                    self._equivocations.note(peer_id, message.entries, batch.equivocal, now)
                    self._on_push(peer_id, message, batch, now)
                case m.Deltas():
                    batch, skewed = check.deltas(peer_id, message, self._peek(now))
                    self._data.require(oid[0] for oid in batch.groups)
                    now = self._begin(now)
                    # Acked all the same: our next summary still lacks what was set aside.
                    self._membership.set_aside(peer_id, skewed, now)
                    self._equivocations.note(peer_id, message.entries, batch.equivocal, now)
                    self._anti_entropy.on_deltas(peer_id, message, batch, now)
                    self._progress.received(peer_id, message, now)
                case m.SnapshotChunk():
                    asked = self._anti_entropy.asked(peer_id, message.partition)
                    states, summary, skewed = check.snapshot(
                        peer_id, message, self._peek(now), asked=asked
                    )
                    self._data.require((key for key, _ in states), message.partition)
                    now = self._begin(now)
                    if skewed:  # not applied, not acked: the round restarts, later
                        self._membership.set_aside(peer_id, skewed, now)
                    else:
                        self._anti_entropy.on_snapshot(peer_id, message, states, summary, now)
                        self._progress.received(peer_id, message, now)
                case m.Ack() | m.AckExcept():
                    self._on_ack(peer_id, message, self._begin(now))
                case m.ReadReq():
                    check.read_request(peer_id, message)
                    self._data.require((message.key,))
                    self._begin(now)
                    self._reads.answer(peer_id, message)
                case m.ReadResp():
                    state = check.read_reply(peer_id, message)
                    state = self._reply_state(peer_id, message, state, now)
                    self._reads.on_reply(peer_id, message, state)
                case m.Repair():
                    repaired = check.repair(peer_id, message)
                    where = f"repair of {message.key!r}"
                    skew = check.skewed_state(message.state, self._peek(now), where)
                    self._data.require((message.key,))
                    now = self._begin(now)
                    if skew is not None:
                        self._membership.set_aside(peer_id, [skew], now)
                    else:
                        self._data.merge_state(message.key, repaired)
                case m.Summary():
                    parts = check.summary(peer_id, message)
                    now = self._begin(now)
                    ring = self._membership.ring()
                    kept = self._anti_entropy.on_summary(peer_id, message, parts, now)
                    self._card_news()
                    learnt = self._membership.ring() is not ring  # (members changed)
                    self._gossip.on_summary(peer_id, parts, message.offer, learnt, now)
                    self._propagation.reported(peer_id, kept)
                case m.Digest():
                    check.digest(peer_id, message)
                    recorded = self._gossip.on_digest(peer_id, message, self._begin(now))
                    if recorded:
                        self._propagation.reported(peer_id, recorded)
                case m.PartDigests():
                    check.part_digests(peer_id, message)
                    recorded = self._gossip.on_part_digests(peer_id, message, self._begin(now))
                    if recorded:
                        self._propagation.reported(peer_id, recorded)
                case m.ReadDigest():
                    check.read_digest(peer_id, message)
                    self._data.require((message.key,))
                    self._begin(now)
                    self._reads.answer_digest(peer_id, message)
                case m.ReadDigestResp():
                    ctx, state = check.read_digest_reply(peer_id, message)
                    state = self._reply_state(peer_id, message, state, now)
                    self._reads.on_digest_reply(peer_id, message, ctx, state)
                case m.ReadFetch():
                    seen = check.read_fetch(peer_id, message)
                    self._data.require((message.key,))
                    self._begin(now)
                    self._reads.answer_fetch(peer_id, message, seen)
                case _:
                    raise RemoteProtocolError(
                        f"{type(message).__name__} is a transport message; "
                        "the engine does not handle it",
                        peer_id,
                    )
        finally:
            self._finish()  # a no-op when the input never began

    def peer_up(
        self,
        peer_id: str,
        now: float,
        *,
        address: str | None = None,
        site: str | None = None,
        relay: bool = False,
        home: bool = True,
    ) -> None:
        """``peer_id`` is reachable (the transport completed a handshake with it); ``home``:
        what it said of itself (a non-home is never on the ring).

        Learns the peer (``Persist`` of the peer record when new or changed), starts
        anti-entropy with it (a ``Summary`` now and every interval) and hands off the hints
        held for it. Next, drain :meth:`effects`.
        """
        self._membership.check_connect(peer_id, home)
        now = self._begin(now)
        try:
            self._membership.connect(peer_id, now, address, site, relay, home)
            self._gossip.peer_up(peer_id, now)
            self._hints.handoff(peer_id, now)
            # Operations short of acks or replies: the peer may count for them now.
            self._writes.peer_up(peer_id, now)
            self._reads.peer_up(peer_id)
        finally:
            self._finish()

    def links_connecting(
        self, count: int, now: float, *, failures: Mapping[str, str] | None = None
    ) -> None:
        """The adapter's dial state: ``count`` links are still being dialled, to replicas
        not up yet (a dial in progress, or waiting to be retried after a link ended);
        ``failures`` maps each dialled URL known down (refused, wrong secret, forgotten...)
        to why. Call it whenever either changes (0 and no failures at start).

        A write or read that cannot reach its quorum with the peers up keeps waiting, until
        its deadline, while ``count`` is above 0; when it drops to 0 such operations fail
        at once, their error naming the failed dials. Next, drain :meth:`effects`.
        """
        self._membership.links_connecting(count, failures)  # (checked: raises first)
        self._begin(now)
        try:
            self._writes.dials_changed()
            self._reads.dials_changed()
        finally:
            self._finish()

    def peer_down(self, peer_id: str, now: float) -> None:
        """``peer_id`` is unreachable (the connection closed or timed out).

        Pending writes and reads stop waiting for it (they may fail now); its anti-entropy
        session stops; hints for it stay. Next, drain :meth:`effects`.
        """
        now = self._begin(now)
        try:
            self._down(peer_id, now)
        finally:
            self._finish()

    def announce(self, address: str | None, now: float) -> None:
        """This replica listens at ``address`` (a URL its peers can dial; None: it does not
        listen): what its card says (:mod:`sync.member_cards`), gossiped to every peer
        with the next summaries. ``TypeError`` (nothing changes) unless a str or None."""
        if address is not None and (not isinstance(address, str) or not address):
            raise TypeError(f"address must be a non-empty str or None, got {address!r}")
        self._begin(now)
        try:
            if self._membership.cards.announce(address):
                self._membership.changed()
            self._card_news()
        finally:
            self._finish()

    def _card_news(self) -> None:
        """When this replica signed a new card (it announced another address, or a peer
        showed it a card of its own from ahead of its clock), every peer up gets the
        members now, not at the next round (and a card that says what the one before said
        changes no digest of the members: no round would carry it)."""
        if self._membership.cards.take_resigned():
            for peer in sorted(self._membership.up):
                self._anti_entropy.send_summary(peer, reply=False, parts=(), members=True)

    def forget(self, peer_id: str, now: float, *, by: str = "an operator") -> None:
        """Forget ``peer_id`` for good: an operator's decision, on this replica only (no
        peer is told; the operator forgets it on each peer). ``by`` says who asked (logged).

        It leaves the ring, its hints are dropped, compaction stops waiting for it; an
        :class:`~sync.effects.Alarm` says so. ``ValueError`` (nothing changes) for an id this
        replica does not know or has forgotten already. Undone by :meth:`unforget`. Next,
        drain :meth:`effects`.
        """
        membership = self._membership
        membership.check_forget(peer_id)
        now = self._begin(now)
        try:
            # Forgotten first: a non-home taken down is dropped unless it is (membership).
            membership.forget(peer_id)
            self._down(peer_id, now)
            self._propagation.forget(peer_id)
            self._hints.forget(peer_id)
            # The forgotten peer may have been the only home holding compaction back.
            self._compaction.compact_all(now)
            membership.report_forgotten(peer_id, by)
        finally:
            self._finish()

    def unforget(self, peer_id: str, now: float, *, by: str = "an operator") -> None:
        """Undo :meth:`forget`: ``peer_id`` is a member again (on the ring if it is a home)
        and may connect. ``ValueError`` (nothing changes) if it is not forgotten here. Next,
        drain :meth:`effects`."""
        self._membership.check_forget(peer_id, undo=True)
        now = self._begin(now)
        try:
            self._membership.unforget(peer_id, now, by)
        finally:
            self._finish()

    def tick(self, now: float) -> None:
        """Time passed: fire what is due (deadlines, anti-entropy, hint hand-off and expiry).

        Call it at :meth:`next_deadline` (calling it earlier or more often is harmless).
        Next, drain :meth:`effects`.
        """
        now = self._begin(now)
        try:
            for timer in self._timers.firing(now):  # (and those set for now meanwhile)
                self._fire(timer, now)
        finally:
            self._finish()

    def snapshot_page(
        self,
        read: ReadPage,
        rows: Iterable[ObjectState],
        end: bool,
        now: float,
        *,
        totals: Mapping[int, tuple[int, int]] | None = None,
    ) -> None:
        """The page ``read`` (a :class:`~sync.effects.ReadPage` of ours) asked for:
        ``rows``, the objects as the store holds them, in (key, kind) order; ``end``: none
        follows them in the partition; ``totals``: the counts ``read.count`` asked for
        (partition -> ``(objects, characters of their states)``). A read whose transfer was
        abandoned meanwhile is ignored. ``TypeError`` for arguments of the wrong types,
        before anything changes. Next, drain :meth:`effects` (chunks to send, the next
        read)."""
        page, counts = checked_page(read, rows, end, totals)
        now = self._begin(now)
        try:
            self._anti_entropy.on_page(read, page, end, counts, now)
        finally:
            self._finish()

    def effects(self) -> list[Effect]:
        """Drain the queued effects, in the order the caller must execute them."""
        self._drain.flush()
        self._outbound.flush()
        self._data.end_drain()
        effects = self._outbox.drain()
        self._drain.seal_sent(effects)
        return effects

    # -- objects on demand (see sync.replica.theory) ---------------------------------------
    def wants_keys(self, keys: Iterable[str]) -> list[str]:
        """The keys of ``keys`` (a local write or read's) to load and :meth:`admit` before
        the input; empty when every object is in memory. Pure."""
        return self._data.missing(keys)

    def wants_message(self, peer_id: str, message: m.Message) -> tuple[list[str], list[int]]:
        """What to load before ``receive(peer_id, message)``: keys, and partitions whose
        every object a state transfer would send. Pure; bad input wants nothing (``receive``
        reports it)."""
        return self._inbound.wants(message), []

    def admit(
        self, keys: Iterable[str], rows: Iterable[ObjectState], partitions: Iterable[int] = ()
    ) -> None:
        """Hand over what :meth:`wants_keys`/:meth:`wants_message` named, as the store holds
        it: ``rows``, every object (each kind) of ``keys``. Objects already in memory are
        kept (they are newer). Changes no durable state. (``partitions``: no input names any
        any more, since state transfers read the store in pages; their rows are taken as
        any others.)"""
        del partitions
        self._data.admit(keys, rows)

    def checkpoint_all(self, now: float) -> None:
        """A clean close: checkpoint every object changed since its checkpoint, and have the
        store record that its log is folded into its objects (so the next open folds
        nothing). Next, drain :meth:`effects` (one ``Persist`` with ``log_folded``)."""
        self._begin(now)
        try:
            self._drain.fold_all()
        finally:
            self._finish()

    def unsaved_keys(self) -> dict[str, bool]:
        """Keys in memory whose store row may be missing or behind, each with whether it
        holds a live object here (``Peer.keys`` merges them with the store's: it lists the
        True ones and leaves out the False ones, deleted here but maybe live in the
        store)."""
        return self._data.unsaved_keys()

    @property
    def wall_offset(self) -> float:
        """Seconds the wall clock reads ahead of ``now`` (0.0 unless the adapter says): a
        received timestamp is judged against ``now + wall_offset``. An adapter whose ``now``
        is monotonic (it must never go back) sets it each round from the system clock, so
        that a step of the wall clock (NTP setting it right) moves the clock-skew horizon
        with it, where the engine's own clock cannot follow."""
        return self._inbound.wall_offset

    @wall_offset.setter
    def wall_offset(self, seconds: float) -> None:
        self._inbound.wall_offset = float(seconds)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must be called next (None: no timer pending)."""
        return self._timers.next()

    def value(self, key: str, kind: str | None = None) -> CRDT | None:
        """A copy of the local state of the object ``(key, kind)`` (None if this replica does
        not hold it in memory). ``kind=None``: the key's one kind (a clashed key raises
        :class:`~sync.errors.KindClash`: name the kind)."""
        obj = self._reads.local(key, kind)
        return obj.copy() if obj is not None else None

    def kinds_of(self, key: str) -> tuple[str, ...]:
        """The kinds ``key`` holds in memory, sorted (empty if none; two or more: a clash);
        O(1)."""
        return self._data.kinds_of(key)

    def current_value(self, key: str, kind: str | None = None) -> Any:
        """``value(key, kind).value`` without copying the state (None if not held here).

        A CRDT's ``value`` is a fresh structure (frozenset, dict, tuple...), so the caller
        may keep it; this skips the copy of the whole state that :meth:`value` makes.
        """
        obj = self._reads.local(key, kind)
        return obj.value if obj is not None else None

    def keys(self) -> list[str]:
        """Every key holding a live object in memory, sorted (``Peer.keys`` lists the
        store's too; a deleted object, whose state only remembers what the delete removed,
        is left out: its kind's ``is_live()``)."""
        data = self._data
        held = data.keys()
        return [k for k in held if data.kinds_of(k)]

    def whereabouts(self, key: str, dot: LogDot | None = None) -> Whereabouts:
        """Where the write ``dot`` (a :class:`~sync.effects.WriteResult`'s) of ``key`` is
        durable now, as far as this replica knows: here, at which homes, held as hints by
        whom (:class:`~sync.replica.propagation.Whereabouts`). Without ``dot``: every write
        of ``key`` still in the log here (older ones were compacted: every home has them).

        ``KeyError`` if this replica holds nothing of ``key`` (without ``dot``) or never
        applied ``dot``; ``ValueError`` if ``dot`` is not a log dot of ``key``'s partition.
        """
        return self._reports.whereabouts(key, dot)

    def homes(self, key: str) -> tuple[str, ...]:
        """The home replicas of ``key`` in this replica's current view of the ring."""
        return self._membership.ring().homes_of(key)

    def summary(self, partition: int) -> CausalContext:
        """A copy of this replica's summary (log dots applied) of ``partition``."""
        return self._data.summary(partition).copy()

    @property
    def peers_up(self) -> list[str]:
        """The peers currently up, sorted."""
        return self._membership.up_peers()

    def status(self) -> dict[str, Any]:
        """Health: log size, hints per target, peers up, lag per peer (log entries its last
        summary lacks), siblings per key (multi-value registers with more than one value),
        kind clashes (keys holding objects of several kinds: key -> kinds), writes set aside
        per writer for clock skew (``clock_skew``); :mod:`~sync.replica.reports` has it all."""
        return self._reports.status(self._now)

    # -- inputs ----------------------------------------------------------------------------
    def _peek(self, now: float) -> float:
        """The clamped ``now`` an input will run at, before it begins (for its checks)."""
        _check_now(now)
        return now if now > self._now else self._now

    def _begin(self, now: float) -> float:
        _check_now(now)
        if now > self._now:
            self._now = float(now)
        self._outbox.begin_input()
        return self._now

    def _finish(self) -> None:
        homes = self._membership.has_homes()
        if homes != self._had_homes:
            self._had_homes = homes
            if homes and self._outbox.changes is not None:  # (an input began)
                # The ring had no home and has some now: our writes made meanwhile go to
                # the homes of their partitions, as hints.
                self._hints.rehome(self._data.log.own_entries(), self._now)
        changes = self._outbox.end_input()
        if changes is not None:
            self._data.checkpoint_round(changes)

    # -- what touches several components ---------------------------------------------------
    def _reply_state(
        self, peer_id: str, message: m.ReadResp | m.ReadDigestResp, state: CRDT | None, now: float
    ) -> CRDT | None:
        """Open the input of a (checked) read reply carrying ``state``: the state, or None
        when it is stamped too far ahead (set aside, while the reply still counts)."""
        skew = None
        if state is not None and message.state is not None:
            digest = "digest " if isinstance(message, m.ReadDigestResp) else ""
            where = f"read {digest}reply for {message.key!r}"
            skew = self._inbound.skewed_state(message.state, self._peek(now), where)
        self._data.require((message.key,))
        now = self._begin(now)
        if skew is None:
            return state
        self._membership.set_aside(peer_id, [skew], now)
        return None

    def _on_push(self, peer: str, msg: m.Push, batch: CheckedBatch, now: float) -> None:
        hint_for = msg.hint_for
        if hint_for is not None:  # entries are held as hints only for one replica
            self._hints.hold(hint_for, batch.hints, now)
            self._hints.not_held += len(batch.not_held)
        self._outbound.relay_forward(peer, self._data.apply_entries(batch), now)
        for (key, _kind), (_p, delta) in batch.rejoin.items():
            self._data.merge_state(key, delta)
        if hint_for is not None:
            self._hints.handoff_soon(hint_for, now)
        if batch.set_aside or batch.not_held:
            # (what is not held must not count at the sender: as held here, for its write)
            skipped = sorted(batch.set_aside + batch.not_held)
            self._outbox.emit(Send(peer, m.AckExcept(push_id=msg.push_id, skipped=skipped)))
        else:
            self._outbox.emit(Send(peer, m.Ack(ids=[msg.push_id])))

    def _on_ack(self, peer: str, msg: m.Ack | m.AckExcept, now: float) -> None:
        handoff = False
        ids, skipped = (msg.ids, None) if isinstance(msg, m.Ack) else ([msg.push_id], msg.skipped)
        for bid in ids:
            record = self._outbound.acked(peer, bid)
            if record is None:
                continue  # a duplicate, or for a message we gave up on
            if record.ae:
                self._anti_entropy.acked(peer, bid, now)
                continue
            if skipped is not None:
                record = record.without(skipped)
            self._writes.acked(peer, record)
            self._propagation.acked(peer, record.entries, record.hint_for)
            for hid in record.hint_ids:
                self._hints.drop(hid)
                handoff = True
        if handoff:
            self._hints.handoff(peer, now)
        self._anti_entropy.pump(peer, now)

    def _down(self, peer: str, now: float) -> None:
        if not self._membership.disconnect(peer, now):
            return
        self._anti_entropy.stop(peer)
        self._progress.stop(peer, now)
        self._gossip.peer_down(peer)
        self._hints.peer_down(peer)
        self._outbound.peer_down(peer)
        self._writes.peer_down(peer)
        self._reads.peer_down(peer)

    def _fire(self, timer: Timer, now: float) -> None:
        match timer:
            case Timer(TimerKind.WRITE, int() as op_id):
                self._writes.expire(op_id)
            case Timer(TimerKind.READ, int() as op_id):
                self._reads.expire(op_id)
            case Timer(TimerKind.COMPACT):
                self._membership.report_gone(now)
                self._hints.release_gone(now)
                self._hints.release_to_relays()
                self._compaction.compact_all(now)
                self._timers.set(_COMPACT, now + self._compaction.interval())
            case Timer(TimerKind.ANTI_ENTROPY):
                self._gossip.round(now)
                self._anti_entropy.hand_over()
            case Timer(TimerKind.AE_TIMEOUT, str() as peer):
                self._anti_entropy.check_timeout(peer, now)
            case Timer(TimerKind.AE_PUMP, str() as peer):
                self._anti_entropy.pump(peer, now)
            case Timer(TimerKind.SWEEP):
                self._outbound.sweep(now, self._writes.pending)
            case Timer(TimerKind.HANDOFF, str() as peer):
                self._hints.handoff(peer, now)
            case Timer(TimerKind.HINT_EXPIRY):
                self._hints.expire(now)
            case _:
                raise AssertionError(f"a timer no component set: {timer}")


def _check_now(now: object) -> None:
    if type(now) is float and now == now:
        return  # the common case, first
    if isinstance(now, bool) or not isinstance(now, int | float) or now != now:
        raise TypeError(f"now must be a number of seconds, got {now!r}")
