"""Gossip: when anti-entropy rounds run, which peers each one contacts, and their digests.

**Rounds.** With ``anti_entropy_interval`` set, one timer per replica
(``Timer(TimerKind.ANTI_ENTROPY)``) runs a round: a ``Digest`` to at most ``gossip_fanout``
up peers, so a round costs O(fan-out) messages per replica and O(P) in a group of P peers,
whatever its size. A peer that comes up and shares a partition with this replica gets a
``Digest`` at once (a reconnected home catches up without waiting for a round). While rounds
find nothing different the interval doubles after each one, up to
``anti_entropy_idle_interval``; a difference (a digest that did not match, here or at a
peer, unless it is the one that peer sent last time with ours as they were; a summary
received that differs from ours or taught us a member), a summary recorded anew, or a
peer coming up brings it back to ``anti_entropy_interval``, the next round within that.
Each interval is shortened by up to a tenth, by a hash of the replica id and the round
number, so that replicas started together drift apart instead of sending in step.

**Fan-out.** The peers of a round, at most ``gossip_fanout``: the next peers sharing a
partition with this replica (both homes of it) in turn; then, in one slot at least when
some up peer shares
nothing with us, the next up peers in turn, whatever they share, so that membership
spreads to every peer. "In turn" is a rotation in an order of the peers that is fixed per
replica (a CRC-32 of both ids) and differs between replicas, served from a cursor, so every
sharing peer is met within ``ceil(S / (fanout - 1))`` rounds (``S`` sharing peers up) and
every up peer within ``U`` rounds (``U`` peers up), and new peers slot in without
reshuffling the others. A peer whose digest arrived since our previous round (before the
first one: within the last interval) is skipped and counts as met: two peers need one digest
per round between them, not two.

**Digests.** A ``Digest`` carries the root digest of our summaries of the partitions both
peers are homes of and the digest of the members we know (:mod:`sync.digest`):

* equal roots: the other's summaries of those partitions equal ours. They are recorded as
  its reported summaries (membership keeps them: compaction needs them), without being
  sent; when that changed what we had recorded and the digest asked for a reply, ours goes
  back (``reply=False``), so the other records ours too. Between converged peers whose
  records are current, a round is one digest and nothing else;
* different roots: the receiver answers ``PartDigests``, one digest per shared partition;
  the first peer records the partitions whose digests match and sends a ``Summary``
  (``reply=True``) of those that differ; from there :mod:`sync.replica.anti_entropy` sends
  the entries each side lacks, as before. When the answer's summaries equal ours, nothing
  moved either way: the digests differ because the two rings do (each covers partitions
  the other's does not: a member forgotten on one side only), and the same part digests,
  ours unchanged, start a summary again only after ``anti_entropy_idle_interval``
  (:meth:`Gossip.on_summary`). A peer that asks for partitions we do not count it a home
  of, as a home of them by its ring, *claims* them: our digests for it cover them too
  (:meth:`Gossip._claim`), so a change to them here starts an exchange;
* different member digests: the receiver sends a ``Summary`` listing every member it knows
  (and no partition); the other learns them and answers with its own list if ours misses
  some (:meth:`sync.replica.anti_entropy.AntiEntropy.on_summary`).

Knows the outbox, the timers, local data, membership, compaction and anti-entropy.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Callable, Iterable
from hashlib import blake2b

from crdt import CausalContext
from sync import messages as m
from sync.config import ReplicaConfig
from sync.digest import members_digest, part_digest, root_digest
from sync.effects import Send
from sync.replica.anti_entropy import AntiEntropy
from sync.replica.compaction import Compaction
from sync.replica.local_data import LocalData
from sync.replica.membership import Membership
from sync.replica.outbox import Outbox
from sync.replica.timers import Timer, TimerKind, Timers
from sync.ring import Ring

__all__ = ["Gossip", "Rotation"]

_ROUND = Timer(TimerKind.ANTI_ENTROPY)
_JITTER = 0.1  # at most this fraction of an interval is taken off it
_NEVER = float("-inf")
# A peer's part digests and ours (partition, digest), in order.
_PartsSeen = tuple[tuple[tuple[int, str], ...], tuple[tuple[int, str], ...]]


class Rotation:
    """Peers served in turn, in an order fixed per replica, from a cursor that survives the
    set of peers changing (a peer that joins takes its place in the order).

    A peer's place is ``(crc32 of both ids, its id)``: computed when needed rather than
    kept (a replica of a 1,000-peer group holds only the list of its peers).
    """

    __slots__ = ("_cursor", "_order", "_seed")

    def __init__(self, me: str) -> None:
        self._seed = zlib.crc32(f"{me}\0".encode("utf-8", "surrogatepass"))
        self._order: list[str] = []
        self._cursor: tuple[int, str] = (-1, "")

    def __len__(self) -> int:
        return len(self._order)

    def place(self, peer: str) -> tuple[int, str]:
        """Where ``peer`` sits in this replica's order."""
        return zlib.crc32(peer.encode("utf-8", "surrogatepass"), self._seed), peer

    def reset(self, peers: Iterable[str]) -> None:
        """Serve ``peers`` from now on (the cursor stays where it is in the order)."""
        self._order = sorted(peers, key=self.place)

    def take(self, want: int, skip: Callable[[str], bool]) -> list[str]:
        """The next ``want`` peers after the cursor (at most one turn), passing over those
        ``skip`` names (they count as served); the cursor moves past every peer looked at."""
        order = self._order
        out: list[str] = []
        if want <= 0 or not order:
            return out
        start = bisect.bisect_right(order, self._cursor, key=self.place)
        total = len(order)
        for i in range(total):
            peer = order[(start + i) % total]
            if skip(peer):
                continue
            out.append(peer)
            if len(out) == want:
                break
        self._cursor = self.place(peer)  # the last one looked at
        return out


class Gossip:
    """The anti-entropy rounds of one replica: their timing, their peers, their digests."""

    __slots__ = (
        "_all",
        "_anti_entropy",
        "_armed",
        "_asking",
        "_base",
        "_claims",
        "_compaction",
        "_config",
        "_data",
        "_differed",
        "_emit",
        "_futile",
        "_heard",
        "_idle",
        "_interval",
        "_last_round",
        "_me",
        "_members",
        "_members_ring",
        "_membership",
        "_on",
        "_quiet",
        "_rounds",
        "_shared",
        "_sharing",
        "_sharing_ring",
        "_stale",
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
        compaction: Compaction,
        anti_entropy: AntiEntropy,
    ) -> None:
        self._config = config
        self._me = replica_id
        self._emit = outbox.emit
        self._timers = timers
        self._data = data
        self._membership = membership
        self._compaction = compaction
        self._anti_entropy = anti_entropy
        self._on = config.anti_entropy_on
        self._armed = False  # the round timer is set
        self._base = float(config.anti_entropy_interval or 0.0)
        idle = config.anti_entropy_idle_interval
        self._idle = self._base if idle is None else max(self._base, float(idle))
        self._interval = self._base
        self._quiet = True  # nothing differed since the last round
        self._rounds = 0
        self._last_round = _NEVER
        self._heard: dict[str, float] = {}  # peer -> when its last digest arrived
        # Per up peer: the digests (its root and members, ours) of its last digest that
        # differed from ours; the part digests (its, ours) whose summaries we sent it
        # and the partitions whose answer we wait for; those whose summaries were found
        # equal (see :meth:`on_part_digests`, :meth:`on_summary`).
        self._differed: dict[str, tuple[str, str, str, str]] = {}
        self._asking: dict[str, tuple[_PartsSeen, set[int]]] = {}
        self._futile: dict[str, tuple[_PartsSeen, float]] = {}
        self._claims: dict[str, set[int]] = {}  # peer up -> the partitions it claims
        self._stale = True  # the rotations must be rebuilt (the peers up changed)
        self._sharing_ring: Ring | None = None
        self._sharing: dict[str, tuple[int, ...]] = {}  # peer -> partitions both are homes of
        self._members_ring: Ring | None = None
        self._members = ""
        self._shared = Rotation(replica_id)
        self._all = Rotation(replica_id)

    @property
    def interval(self) -> float:
        """The interval after the current round (``anti_entropy_interval`` unless idle)."""
        return self._interval

    # -- peers and rounds ----------------------------------------------------------------------
    def peer_up(self, peer: str, now: float) -> None:
        """``peer`` came up: a digest now if it shares a partition; rounds (again)."""
        self._stale = True
        if not self._on:
            return
        self.changed(now)
        if not self._armed:
            self._armed = True
            self._timers.set(_ROUND, now + self._interval)
        if self.shared(peer):
            self._send_digest(peer, self._members_digest(), reply=True)

    def peer_down(self, peer: str) -> None:
        self._stale = True
        for seen in (self._heard, self._differed, self._asking, self._futile, self._claims):
            seen.pop(peer, None)

    def changed(self, now: float) -> None:
        """Something differed: rounds at ``anti_entropy_interval`` again, the next within it."""
        self._quiet = False
        if self._interval > self._base:
            self._interval = self._base
            if self._armed:
                self._timers.set_if_earlier(_ROUND, now + self._base)

    def round(self, now: float) -> None:
        """The round timer fired: a digest to each peer of this round; the next round."""
        if not self._on or not self._membership.up:
            self._armed = False
            return  # no round until a peer comes up
        peers = self._choose(max(self._last_round, now - self._interval))
        self._last_round = now
        if peers:
            members = self._members_digest()
            for peer in peers:
                self._send_digest(peer, members, reply=True)
        self._interval = min(2 * self._interval, self._idle) if self._quiet else self._base
        self._quiet = True
        self._rounds += 1
        self._timers.set(_ROUND, now + self._interval * (1.0 - _JITTER * self._jitter()))

    def _jitter(self) -> float:
        data = f"{self._me}\0{self._rounds}".encode("utf-8", "surrogatepass")
        return int.from_bytes(blake2b(data, digest_size=8).digest(), "big") / 2**64

    def _choose(self, since: float) -> list[str]:
        """The peers of this round (see the module docstring); a peer heard from after
        ``since`` counts as met."""
        self._refresh_sharing()
        if self._stale:
            up = self._membership.up
            self._all.reset(up)
            self._shared.reset(p for p in up if p in self._sharing)
            self._stale = False
        fanout = self._config.gossip_fanout
        heard = self._heard
        chosen: list[str] = []
        taken: set[str] = set()

        def skip(peer: str) -> bool:
            return peer in taken or heard.get(peer, _NEVER) > since

        reserve = 1 if len(self._all) > len(self._shared) else 0
        for peer in self._shared.take(fanout - reserve - len(chosen), skip):
            chosen.append(peer)
            taken.add(peer)
        chosen.extend(self._all.take(fanout - len(chosen), skip))
        return chosen

    def _refresh_sharing(self) -> None:
        """Rebuild the sharing map when the ring changed."""
        ring = self._membership.ring()
        if ring is not self._sharing_ring:
            me = self._me
            found: dict[str, list[int]] = {}
            for p in range(self._config.partitions):
                homes = ring.preference_list(p)
                if me in homes:
                    for peer in homes:
                        if peer != me:
                            found.setdefault(peer, []).append(p)
            self._sharing = {peer: tuple(parts) for peer, parts in found.items()}
            self._sharing_ring = ring
            self._stale = True

    # -- digests -------------------------------------------------------------------------------
    def shared(self, peer: str) -> tuple[int, ...]:
        """The partitions this replica and ``peer`` both hold, in order
        (:meth:`~sync.replica.membership.Membership.shared_partitions`), and those ``peer``
        claims (:meth:`_claim`)."""
        base = self._membership.shared_partitions(peer)
        claims = self._claims.get(peer)
        return tuple(sorted(claims.union(base))) if claims else base

    def _claim(self, peer: str, parts: Iterable[int]) -> None:
        """``peer`` asked for ``parts`` as a home of them by its ring (a summary that is no
        offer, or its part digests): those it may home by its ring
        (:meth:`~sync.replica.anti_entropy.AntiEntropy.serves`) that we home and do not
        count it a home of are claimed: our digests for it cover them from now on, so that
        a change to them here starts an exchange (else only ``peer``'s rounds would compare
        them, and a round with it counts as met whenever its digest came first). Claims
        last while ``peer`` is up, and one goes once its part digests leave it out."""
        base = self._membership.shared_partitions(peer)
        if len(base) == self._config.partitions:
            return  # (every partition is shared already)
        shared = frozenset(base)
        ring, me, relay = self._membership.ring(), self._me, self._config.relay
        serves = self._anti_entropy.serves
        new = [
            p
            for p in parts
            if p not in shared and (relay or ring.is_home(me, p)) and serves(peer, p, False)
        ]
        if new:
            self._claims.setdefault(peer, set()).update(new)

    def _members_digest(self) -> str:
        ring = self._membership.ring()  # a new ring exactly when the members changed
        if ring is not self._members_ring:
            self._members = members_digest(self._membership.homes())
            self._members_ring = ring
        return self._members

    def _part(self, p: int) -> str:
        return part_digest(p, self._data.summary_if_any(p))

    def _send_digest(self, peer: str, members: str, *, reply: bool) -> None:
        root = root_digest(self._part(p) for p in self.shared(peer))
        msg = m.Digest.model_construct(t="digest", root=root, members=members, reply=reply)
        self._emit(Send(peer, msg))

    def on_digest(self, peer: str, msg: m.Digest, now: float) -> dict[int, CausalContext]:
        """``peer``'s digest; returns the summaries recorded as its (empty: none changed).

        A digest that differs from ours is always answered (a message of the exchange it
        starts may be lost), but only a new difference, not the one ``peer`` sent last time
        with ours as they were, counts as a change that speeds up our rounds."""
        self._heard[peer] = now
        members = self._members_digest()
        parts = self.shared(peer)
        root = root_digest(self._part(p) for p in parts)
        if msg.members != members or msg.root != root:
            seen = (msg.root, msg.members, root, members)
            if self._differed.get(peer) != seen:
                self._differed[peer] = seen
                self.changed(now)
        if msg.members != members:
            self._anti_entropy.send_summary(peer, reply=False, parts=(), members=True)
        if msg.root == root:
            recorded = self._record(peer, parts, now)
            if recorded and msg.reply:
                self._send_digest(peer, members, reply=False)
            return recorded
        digests = {p: self._part(p) for p in parts}
        self._emit(Send(peer, m.PartDigests.model_construct(t="part_digests", parts=digests)))
        return {}

    def on_part_digests(
        self, peer: str, msg: m.PartDigests, now: float
    ) -> dict[int, CausalContext]:
        """``peer``'s digests per shared partition (checked): the matching ones are recorded
        (returned), a summary of the others goes to ``peer``."""
        same: list[int] = []
        differ: list[int] = []
        theirs = msg.parts
        claims = self._claims.get(peer)
        if claims:
            claims.intersection_update(theirs)  # (those it left out, it claims no longer)
        self._claim(peer, theirs)
        ours = {p: self._part(p) for p in self.shared(peer)}
        for p, digest in ours.items():
            (same if theirs.get(p) == digest else differ).append(p)
        recorded = self._record(peer, same, now) if same else {}
        if differ:
            key = (tuple(sorted(theirs.items())), tuple(ours.items()))
            futile = self._futile.get(peer)
            if futile is None or futile[0] != key:
                self.changed(now)
            elif now - futile[1] < self._idle:
                return recorded  # the summaries we would send were found equal lately
            # (else checked again, without speeding the rounds up)
            self._asking[peer] = (key, set(differ))
            self._anti_entropy.send_summary(peer, reply=True, parts=differ)
        return recorded

    def on_summary(
        self, peer: str, theirs: dict[int, CausalContext], offer: bool, learnt: bool, now: float
    ) -> None:
        """``peer`` sent its summaries ``theirs`` (checked; ``offer``: as an offer; ``learnt``:
        its list of members changed ours). That is a change (rounds at
        ``anti_entropy_interval`` again) if it did, or if any of them differs from ours.
        Unless an offer, it claims them (:meth:`_claim`). When they answer the summaries
        :meth:`on_part_digests` sent it and equal ours, that exchange moved nothing either
        way: the digests differ for another reason (our rings differ, so each digest covers
        partitions the other's does not), and the same part digests with ours as they are
        start it again only after ``anti_entropy_idle_interval`` (a changed summary on
        either side makes other digests). Only an answer received counts, so a lost message
        is asked again."""
        summary_if_any = self._data.summary_if_any
        empty = CausalContext()
        if learnt or any(ctx != (summary_if_any(p) or empty) for p, ctx in theirs.items()):
            self.changed(now)
        if not offer:
            self._claim(peer, theirs)
        asking = self._asking.get(peer)
        if asking is None:
            return
        key, waiting = asking
        for p, ctx in theirs.items():
            if p in waiting:
                if ctx != (summary_if_any(p) or empty):
                    del self._asking[peer]
                    return
                waiting.discard(p)
        if not waiting:
            del self._asking[peer]
            self._futile[peer] = (key, now)

    def _record(self, peer: str, parts: Iterable[int], now: float) -> dict[int, CausalContext]:
        """Record our summaries of ``parts`` as ``peer``'s (its digests say they are equal);
        compact what that makes stable. Returns them if anything changed, else empty."""
        summary_if_any = self._data.summary_if_any
        ours: dict[int, CausalContext] = {}
        for p in parts:
            ctx = summary_if_any(p)
            ours[p] = ctx.copy() if ctx is not None else CausalContext()
        if not ours or not self._membership.store_summary(peer, ours, now):
            return {}
        self.changed(now)
        gone = set(self._membership.gone(now))
        for p in ours:
            self._compaction.compact(p, now, gone)
        return ours
