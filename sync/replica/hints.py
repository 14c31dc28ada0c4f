"""Hints: deltas held for a home replica that was unreachable, and their hand-off.

:class:`Hints` owns two sets of hints, each by target then in the order stored:

* hints **held for others** (this replica was a fallback, or is a relay): held only for a
  home of their partition in our ring (the others are counted, :attr:`Hints.not_held`, see
  :mod:`sync.replica.inbound`), bounded by ``hint_max_per_target`` per target and by
  ``hint_max_bytes`` all targets together (each hint counted as its entry takes in a
  message, :func:`~sync.replica.outbound.entry_size`; the oldest go first, counted in
  :attr:`Hints.dropped`) and dropped after ``hint_window``; what they carried is then left
  to anti-entropy, as Cassandra and Riak do past their hint limits;
* hints of **our own entries** kept by a coordinator that is not a home of the key: the only
  copy until a home acknowledges it (anti-entropy runs between homes only), so they are
  exempt from all three limits. Dropping one would lose the write for the group: its log
  entry is kept only while a hint of it is pending (:mod:`sync.replica.compaction`), and no
  home would ever ask for it. Their bytes are reported (:attr:`Hints.own_bytes`), not
  bounded: they are this replica's own writes, whose entries its log holds anyway, and they
  go as the homes (or a relay) take them (below).

Hints are handed off to their target when it is up, as ``Push`` batches of ``ae_batch``
(on ``peer_up``, on each ack, and retried every ``write_timeout``), and dropped on its ack.
Our own hints for a home gone for long go once every other home has their writes
(:meth:`Hints.release_gone`), and those for a home we do not reach once an up relay holds
their writes (:meth:`Hints.release_to_relays`). A coordinator that knew no home at all kept
its writes in its log; when the ring first has homes, they become hints for them
(:meth:`Hints.rehome`).
Every add and drop is recorded in the outbox's :class:`~sync.replica.outbox.Changes`.

Knows the outbox, the timers, membership and outbound batching.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import replace

from crdt import Dot
from sync.config import ReplicaConfig
from sync.effects import HintId, HintRecord, LogEntry
from sync.replica.membership import Membership
from sync.replica.outbound import Outbound, entry_size
from sync.replica.outbox import Outbox
from sync.replica.timers import Timer, TimerKind, Timers

__all__ = ["Hints"]

_EXPIRY = Timer(TimerKind.HINT_EXPIRY)


class Hints:
    """The hints this replica holds, their bounds, expiry and hand-off."""

    __slots__ = (
        "_config",
        "_held",
        "_me",
        "_membership",
        "_order",
        "_outbound",
        "_outbox",
        "_own",
        "_sent_at",
        "_timers",
        "dropped",
        "held_bytes",
        "not_held",
        "own_bytes",
    )

    def __init__(
        self,
        config: ReplicaConfig,
        replica_id: str,
        outbox: Outbox,
        timers: Timers,
        membership: Membership,
        outbound: Outbound,
    ) -> None:
        self._config = config
        self._me = replica_id
        self._outbox = outbox
        self._timers = timers
        self._membership = membership
        self._outbound = outbound
        self._held: dict[str, dict[HintId, HintRecord]] = {}  # for others, by target
        self._own: dict[str, dict[HintId, HintRecord]] = {}  # of our own entries, by target
        self._sent_at: dict[HintId, float] = {}  # when each hint was last sent to its target
        # The hints for others, all targets together, in the order stored, with their sizes:
        # the first is the oldest, the first to go past ``hint_max_bytes``.
        self._order: dict[HintId, int] = {}
        #: Bytes of the hints held for others (what ``hint_max_bytes`` bounds).
        self.held_bytes = 0
        #: Bytes of the hints of our own entries (never dropped by a bound).
        self.own_bytes = 0
        #: Hints for others dropped past ``hint_max_per_target`` or ``hint_max_bytes``
        #: before their target had them (left to anti-entropy), since this replica started.
        self.dropped = 0
        #: Entries of pushes for another replica not held (forgotten, or no home of their
        #: partition here), since this replica started.
        self.not_held = 0

    def load(self, records: Iterable[HintRecord], now: float) -> None:
        """Hold the hints a store kept. One stored after ``now`` (by a run whose clock read
        ahead of this one's: the wall clock was set back since) counts as stored ``now``:
        else it would outlive the hint window by the step, and so would every hint stored
        after it (expiry goes through each target's hints in the order stored).

        Our own write's hints for its homes share one entry, as they did when it was made
        (the store keeps one row per home): else each would hold a copy of the value."""
        shared: dict[tuple[int, int], LogEntry] = {}
        for rec in sorted(records, key=lambda h: h.stored_at):
            if rec.stored_at > now:
                rec = replace(rec, stored_at=now)
            if rec.id.origin == self._me:
                e = rec.entry
                first = shared.setdefault((e.partition, e.seq), e)
                if first is not e and first == e:
                    rec = replace(rec, entry=first)
            self._store(rec.id).setdefault(rec.target, {})[rec.id] = rec
            self._count(rec)
        if any(self._held.values()):
            self._schedule_expiry()
            if self.held_bytes > self._config.hint_max_bytes or any(
                len(h) > self._config.hint_max_per_target for h in self._held.values()
            ):
                # A bound lowered since they were stored: it holds at the first tick (a drop
                # is a durable change, made only within an input).
                self._timers.set_if_earlier(_EXPIRY, now)

    def _count(self, rec: HintRecord) -> None:
        size = entry_size(rec.entry)
        if rec.id.origin == self._me:
            self.own_bytes += size
        else:
            self._order[rec.id] = size
            self.held_bytes += size

    def _bound(self, held: dict[HintId, HintRecord]) -> None:
        """Drop the oldest hints for others past the bounds: of ``held`` (one target's)
        past ``hint_max_per_target``, then of all targets past ``hint_max_bytes``."""
        config = self._config
        while len(held) > config.hint_max_per_target:
            self.drop(next(iter(held)))
            self.dropped += 1
        while self._order and self.held_bytes > config.hint_max_bytes:
            self.drop(next(iter(self._order)))
            self.dropped += 1

    def _store(self, hid: HintId) -> dict[str, dict[HintId, HintRecord]]:
        return self._own if hid.origin == self._me else self._held

    def add(self, rec: HintRecord) -> None:
        """Hold ``rec`` (persisted); a hint for others may push out the oldest one."""
        own = rec.entry.origin == self._me
        held = (self._own if own else self._held).setdefault(rec.target, {})
        if rec.id in held:
            return
        held[rec.id] = rec
        hints = self._outbox.durable.hints
        hints.pop(rec.id, None)
        hints[rec.id] = rec
        self._count(rec)
        if own:
            return
        self._bound(held)
        self._schedule_expiry()

    def drop(self, hid: HintId) -> None:
        """Drop a hint (persisted), if held."""
        store = self._store(hid)
        held = store.get(hid.target)
        rec = None if held is None else held.pop(hid, None)
        if held is None or rec is None:
            return
        if store is self._own:
            self.own_bytes -= entry_size(rec.entry)
        else:
            self.held_bytes -= self._order.pop(hid)
        self._sent_at.pop(hid, None)
        hints = self._outbox.durable.hints
        hints.pop(hid, None)
        hints[hid] = None
        if not held:
            del store[hid.target]

    def forget(self, target: str) -> None:
        """Drop every hint for ``target`` (it is forgotten)."""
        for hid in [*self._held.get(target, {}), *self._own.get(target, {})]:
            self.drop(hid)

    def mark_sent(self, hid: HintId, now: float) -> None:
        """The entry of hint ``hid`` was sent to its target now (with a write): retried by
        the hand-off after ``write_timeout`` if no ack drops it (the push may be lost on a
        link that stays up: a full queue drops its oldest message)."""
        self._sent_at[hid] = now
        retry = Timer(TimerKind.HANDOFF, hid.target)
        self._timers.set_if_earlier(retry, now + self._config.write_timeout)

    def _schedule_expiry(self) -> None:
        oldest = min(
            (next(iter(h.values())).stored_at for h in self._held.values() if h), default=None
        )
        if oldest is not None:
            self._timers.set_if_earlier(_EXPIRY, oldest + self._config.hint_window)

    def expire(self, now: float) -> None:
        """Drop the hints for others older than the hint window, then those past the
        bounds (lowered since they were stored)."""
        window = self._config.hint_window
        for target in sorted(self._held):
            held = self._held[target]
            expired = []
            for hid, rec in held.items():
                if rec.stored_at + window > now:  # the same sum as the timer: no float drift
                    break
                expired.append(hid)
            for hid in expired:
                self.drop(hid)
        for target in sorted(self._held):
            if bounded := self._held.get(target):  # the byte bound may have emptied it
                self._bound(bounded)
        self._schedule_expiry()

    def handoff(self, target: str, now: float) -> None:
        """Send the next batch of hints held for ``target`` (if it is up)."""
        if target not in self._membership.up:
            return
        own = self._own.get(target, {})
        held = self._held.get(target, {})
        if not own and not held:
            return
        retry = self._config.write_timeout
        batch: list[HintRecord] = []
        for hid, rec in itertools.chain(own.items(), held.items()):
            sent = self._sent_at.get(hid)
            if sent is not None and sent + retry > now:
                continue
            batch.append(rec)
            if len(batch) >= self._config.ae_batch:
                break
        for rec in batch:
            self._sent_at[rec.id] = now
            self._outbound.queue_push(target, None, rec.entry, None, rec.id, now)
        self._timers.set(Timer(TimerKind.HANDOFF, target), now + retry)

    def hold(self, target: str, entries: Iterable[LogEntry], now: float) -> None:
        """Hold ``entries`` (of a received push) as hints for ``target``."""
        for e in entries:
            self.add(HintRecord(target, e, now))

    def handoff_soon(self, target: str, now: float) -> None:
        """Hand off to ``target`` at the next tick, if it is another replica and up (a hint
        for it just arrived)."""
        if target != self._me and target in self._membership.up:
            self._timers.set_if_earlier(Timer(TimerKind.HANDOFF, target), now)

    def peer_down(self, peer: str) -> None:
        """No hand-off to ``peer`` while it is down; what was sent counts as unsent."""
        self._timers.cancel(Timer(TimerKind.HANDOFF, peer))
        for hid in [h for h in self._sent_at if h.target == peer]:
            del self._sent_at[hid]

    def counts(self) -> dict[str, int]:
        """Hints held per target (ours and others'), by target."""
        return {
            t: len(self._held.get(t, ())) + len(self._own.get(t, ()))
            for t in sorted(set(self._held) | set(self._own))
        }

    def own_for(self, target: str) -> list[HintId]:
        """The hints of our own entries held for ``target``, in the order stored."""
        return list(self._own.get(target, ()))

    def holds(self, hid: HintId) -> bool:
        """True while hint ``hid`` is held."""
        return hid in self._store(hid).get(hid.target, {})

    def release_gone(self, now: float) -> None:
        """Drop the hints of our own writes held for any home gone for long (past
        ``home_down_window``) once every home that is not gone has them (it catches up by
        state transfer when it returns)."""
        membership = self._membership
        gone = membership.gone(now)
        if not gone:
            return
        ring, me = membership.ring(), self._me
        for target in gone:
            for hid in self.own_for(target):
                live = [h for h in ring.preference_list(hid.partition) if h != me and h not in gone]
                if live and not any(
                    self.holds(HintId(h, hid.origin, hid.partition, hid.seq)) for h in live
                ):
                    self.drop(hid)

    def release_to_relays(self) -> None:
        """Drop the hints of our own writes held for a home we do not reach, once an up relay
        holds the write (by its last summary). A relay holds every partition its peers are
        homes of and offers what it holds to the homes (:mod:`sync.replica.anti_entropy`),
        so the write reaches them through it; their acknowledgements would reach the relay,
        never us (devices behind NAT), and the hints would otherwise stay until the homes
        were gone for ``home_down_window``."""
        membership = self._membership
        up = membership.up
        relays = membership.up_relays()
        if not relays:
            return
        for target in [t for t in self._own if t not in up]:
            for hid in list(self._own[target]):
                dot = Dot(hid.origin, hid.seq)
                for relay in relays:
                    theirs = membership.reported_summary(relay, hid.partition)
                    if theirs is not None and theirs.contains(dot):
                        self.drop(hid)
                        break

    def rehome(self, own: Mapping[int, Iterable[LogEntry]], now: float) -> None:
        """The ring had no home and has some now: hand ``own`` (our writes made meanwhile,
        per partition, kept in our log and never compacted) to the homes of their
        partitions, as hints."""
        ring, me = self._membership.ring(), self._me
        for p, entries in own.items():
            homes = ring.preference_list(p)
            if me in homes:
                continue
            for entry in entries:
                for home in homes:
                    self.add(HintRecord(home, entry, now))
        for home in self._membership.up_peers():
            self.handoff(home, now)

    def own_pending(self, partition: int) -> list[int]:
        """The seqs of our own entries of ``partition`` still held as hints for a home."""
        me = self._me
        return [
            hid.seq
            for held in self._own.values()
            for hid in held
            if hid.partition == partition and hid.origin == me
        ]
