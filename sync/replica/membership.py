"""Membership: the peers this replica knows, which are up, the ring, sites and fallbacks.

:class:`Membership` owns the peer records (persisted through the outbox's
:class:`~sync.replica.outbox.Changes`), the last summary each peer reported, the set of
peers up (and which of them are relays), the ring over the *homes* (rebuilt lazily when
membership changes), and the membership version gossiped to each peer in summaries. It
answers the placement questions of writes and reads: a partition's homes, the fallback for a
home that is down, the acks a consistency level requires, whether a peer's ack counts for a
site.

* **Homes and non-homes.** The ring is over every known, not-forgotten peer that is a home,
  and this replica if it is one (``config.home``). A short-lived replica (a command-line
  session, a test client) says it is not (``home=False``) in its handshake and when it is
  gossiped (:class:`~sync.messages.PeerInfo`), and every peer leaves it off the ring: it is
  never a home or a fallback, so nothing waits for it. What a peer said in its handshake
  wins over what others gossip about it while it is connected. A non-home is known only
  while it is up here: its record is in memory only (unless it is forgotten) and goes when
  its link does, it is gossiped only by the peers it is linked to, and only to correct a
  peer that takes it for a home (a peer learns no new non-home from gossip). So the
  sessions a group served (thousands of clients a day) leave nothing behind in anyone's
  membership, its gossip or its digest of the members, which covers the homes only.
* **Learning.** A peer that links to this one is known at once; the others are learned
  from what peers list in summaries, at most :data:`MAX_MEMBERS` of them in all (a member
  can list made-up ids: they would each be a home on the ring, persisted and gossiped on).
* **Forgetting** is an operator's action on this replica only (``Replica.forget``), and it
  can be undone (``unforget``); no message of a peer forgets anyone.
* **Homes down for long.** A home not seen (no link, no summary) for ``home_down_window``
  seconds is *gone* (:meth:`Membership.gone`): reported, and compaction stops waiting for
  it (see :mod:`sync.replica.compaction` for why that loses nothing, even when it returns);
  each absence is reported once, with an :class:`~sync.effects.Alarm`.
* **Dials**: how many links the adapter is still dialling and the dials that failed
  (:meth:`Membership.links_connecting`): a write or read short of peers waits while links
  are being dialled, and fails naming the failed dials (:meth:`Membership.unreachable`).
* **Health**: the writes of each writer set aside for clock skew (:class:`Skewed`), counted
  per writer, with an alarm at most once per writer every :data:`ALARM_REPEAT` seconds.

Knows only the outbox (and the records of :mod:`sync.replica.skew`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from crdt import CausalContext
from sync import messages as m
from sync.config import ReplicaConfig, check_bool
from sync.consistency import LOCAL_QUORUM, Level, required_acks
from sync.effects import Alarm, PeerRecord
from sync.errors import LocalProtocolError
from sync.member_cards import RESIGN_EVERY, Cards, card_fields, card_text
from sync.replica.outbox import Outbox
from sync.replica.skew import Skewed, SkewRecord
from sync.ring import Ring

__all__ = [
    "ALARM_REPEAT",
    "MAX_MEMBERS",
    "MAX_SKEWED_WRITERS",
    "Membership",
    "SkewRecord",
    "Skewed",
]

#: Seconds between two alarms about the same condition of one peer while it lasts.
ALARM_REPEAT = 600.0

#: The most peers a replica learns of from what others list (summaries' ``known_peers``):
#: ten times the largest group tested (1,000 peers). A member listing as many made-up ids as
#: a message holds (some 40,000) made every peer hold each of them, a home on its ring, and
#: gossip them on, without bound; past this many, no more are learned (counted in
#: ``members_not_learned``, with an alarm). A peer that links to this one is learned all the
#: same (it proved it holds the group's secret; links are bounded by the transport).
MAX_MEMBERS = 10_000

#: The most writers whose writes set aside for clock skew are remembered (the least recently
#: set aside go first): a member may relay writes of as many made-up writers as it likes.
MAX_SKEWED_WRITERS = 1_000


class Membership:
    """The peers of one replica, the ring they form, and the placement rules over it."""

    __slots__ = (
        "_away",
        "_config",
        "_contested_alarm",
        "_failures",
        "_first_fallback",
        "_gone_reported",
        "_gossiped",
        "_listing",
        "_me",
        "_members_version",
        "_non_homes",
        "_not_learned_alarm",
        "_outbox",
        "_peer_summaries",
        "_peers",
        "_relays",
        "_required_memo",
        "_ring",
        "_shared",
        "_skews",
        "_unlisted",
        "_up",
        "cards",
        "connecting",
        "not_learned",
        "up",
    )

    def __init__(
        self, config: ReplicaConfig, replica_id: str, outbox: Outbox, cards: Cards | None = None
    ) -> None:
        self._config = config
        self._me = replica_id
        self._outbox = outbox
        if cards is None:
            cards = Cards(replica_id, None, config.site, config.home, 0)
        #: This replica's card and the peers' newest ones (:mod:`sync.member_cards`).
        self.cards = cards
        self._peers: dict[str, PeerRecord] = {}
        self._peer_summaries: dict[str, dict[int, CausalContext]] = {}
        self._up: dict[str, float] = {}  # peer -> when it came up
        self._away: set[str] = set()  # known peers not up (those gone() looks at)
        #: The peers up, with when each came up (read only: a view of what this owns).
        self.up: Mapping[str, float] = self._up
        self._relays: set[str] = set()
        self._ring: Ring | None = None
        self._shared: dict[str, tuple[int, ...]] = {}  # peer -> partitions both hold
        self._members_version = 0
        self._gossiped: dict[str, int] = {}  # peer -> the members version it was sent
        # peer -> the members we know that it listed in the parts of a list still coming
        self._listing: dict[str, tuple[set[str], bool]] = {}
        self._unlisted: dict[str, int] = {}  # peer up -> our homes its last list lacked
        self._required_memo: dict[tuple[Level, int], tuple[int, None]] = {}
        self._skews: dict[str, SkewRecord] = {}  # writer -> writes of it set aside
        self._non_homes: set[str] = set()  # known peers that are not homes (in memory only)
        self._gone_reported: set[str] = set()  # gone homes already reported
        # partition -> pick_fallback(partition, its homes and us), until the ring, the up set
        # or the relays change (a write to a key whose home is down asks for every write)
        self._first_fallback: dict[int, str | None] = {}
        #: Links the adapter is still dialling (read only; see links_connecting).
        self.connecting = 0
        self._failures: dict[str, str] = {}  # dialled URLs known down, with why
        #: Peers listed by others and not learned (:data:`MAX_MEMBERS` known already).
        self.not_learned = 0
        self._not_learned_alarm = float("-inf")  # when the last alarm about it was raised
        self._contested_alarm = float("-inf")  # when the last about cards of ours elsewhere

    def links_connecting(self, count: object, failures: Mapping[str, str] | None) -> None:
        """The adapter is dialling ``count`` links whose replicas are not up yet; the dials
        in ``failures`` failed (URL -> why). ``ValueError`` for a bad ``count``,
        ``TypeError`` for bad ``failures``: nothing changes then."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be an int >= 0, got {count!r}")
        down = dict(failures or {})
        for url, why in down.items():
            if not isinstance(url, str) or not isinstance(why, str):
                raise TypeError(f"failures must map URL str -> reason str, got {url!r}: {why!r}")
        self.connecting, self._failures = count, down

    def unreachable(self, what: str) -> str:
        """Why no other replica that counts ``what`` (``"is reachable"``, ``"can reply"``),
        with the dials that failed (if any)."""
        failures = self._failures
        why = "; ".join(f"the link to {url} failed: {cause}" for url, cause in failures.items())
        return f"no other replica that counts {what}" + (f" ({why})" if why else "")

    def load(self, peers: Mapping[str, PeerRecord], now: float) -> None:
        """Know the peers a store kept, and hold their cards again. One last seen after
        ``now`` (by a run whose clock read ahead of this one's: the wall clock was set back
        since) counts as seen ``now``: else a home gone since would be reported, and stop
        holding compaction back, only past ``home_down_window`` plus the step."""
        for pid, peer in sorted(peers.items()):
            if pid == self._me:
                continue
            if peer.last_seen > now:
                peer = replace(peer, last_seen=now)
            self._peers[pid] = peer
            if peer.card is not None and not self.cards.restore(pid, peer.card):
                self._outbox.emit(  # (else held again: an older one replayed is refused)
                    Alarm(
                        "card_spoilt",
                        pid,
                        f"the card of {pid} kept in this database is not a valid card of it "
                        "(the database was altered or damaged?): not held; its next card is "
                        "taken as it comes",
                    )
                )
            if pid not in self._up:
                self._away.add(pid)
            if peer.summary:
                self._peer_summaries[pid] = {
                    int(p): CausalContext.from_dict(d) for p, d in peer.summary.items()
                }

    # -- the ring ----------------------------------------------------------------------------
    def ring(self) -> Ring:
        """The ring over the homes: every known, not-forgotten peer that is one, and this
        replica if it is one (empty when none is known: then no key has a home)."""
        if self._ring is None:
            non_homes = self._non_homes
            members = [
                p for p, rec in self._peers.items() if not rec.forgotten and p not in non_homes
            ]
            if self._config.home:
                members.append(self._me)
            cfg = self._config
            self._ring = Ring(members, n=cfg.n, partitions=cfg.partitions, vnodes=cfg.vnodes)
            self._shared.clear()
        return self._ring

    def changed(self) -> None:
        """Membership changed: rebuild the ring when next asked, gossip the members again."""
        self._ring = None
        self._first_fallback.clear()
        self._members_version += 1

    def shared_partitions(self, peer: str) -> tuple[int, ...]:
        """The partitions both this replica and ``peer`` hold, which anti-entropy keeps equal
        between them: those both are homes of, and with a relay (``peer`` up as one, or this
        replica), those the other is a home of. A relay holds every partition its peers are
        homes of: devices behind NAT reach only it, so it is their anti-entropy's only way
        to each other (a write made while it was down reaches the other homes through it
        once it is back)."""
        ring = self.ring()
        shared = self._shared.get(peer)
        if shared is None:
            me = self._me
            i_hold = self._config.relay  # (a relay holds every partition)
            they_hold = peer in self._relays
            homes = [ring.preference_list(p) for p in range(self._config.partitions)]
            shared = tuple(
                p
                for p, pl in enumerate(homes)
                if (i_hold or me in pl) and (they_hold or peer in pl)
            )
            self._shared[peer] = shared
        return shared

    # -- peers -------------------------------------------------------------------------------
    def learn(
        self,
        peer: str,
        address: str | None,
        site: str | None,
        now: float,
        home: bool | None = None,
    ) -> None:
        """Know ``peer`` (persisted when new or when its address or site changed, if it is a
        home), and whether it is a home when ``home`` says so."""
        if home is not None and (peer in self._non_homes) == home:
            if home:
                self._non_homes.discard(peer)
                self._outbox.durable.peers[peer] = None  # a home now: persisted
            else:
                self._non_homes.add(peer)
            self.changed()
        rec = self._peers.get(peer)
        if rec is None:
            self._peers[peer] = PeerRecord(peer, address, site, None, now)
            if peer not in self._up:
                self._away.add(peer)
            self._outbox.durable.peers[peer] = None
            self.changed()
            return
        changes: dict[str, Any] = {}
        if address is not None and address != rec.address:
            changes["address"] = address
        if site is not None and site != rec.site:
            changes["site"] = site
        if changes:
            self._peers[peer] = replace(rec, **changes)
            self._outbox.durable.peers[peer] = None

    def unlisten(self, peer: str) -> None:
        """``peer`` said (in its card) that it listens nowhere: forget the address it had."""
        rec = self._peers.get(peer)
        if rec is not None and rec.address is not None:
            self._peers[peer] = replace(rec, address=None)
            self._outbox.durable.peers[peer] = None

    def check_connect(self, peer: object, home: object) -> None:
        """``ValueError``/``LocalProtocolError``/``TypeError`` unless ``peer`` is an id that
        may come up (a non-empty str, not ours) saying ``home`` of itself (a bool)."""
        if not isinstance(peer, str) or not peer:
            raise ValueError(f"peer_id must be a non-empty str, got {peer!r}")
        if peer == self._me:
            raise LocalProtocolError("a replica cannot be its own peer")
        check_bool("home", home)

    def connect(
        self,
        peer: str,
        now: float,
        address: str | None,
        site: str | None,
        relay: bool,
        home: bool = True,
    ) -> None:
        """``peer`` is up (a relay or not, a home or not): learnt, seen now, sent the
        members again."""
        self.learn(peer, address, site, now, home)
        self._peers[peer] = replace(self._peers[peer], last_seen=now)
        self._outbox.durable.peers[peer] = None
        self._up[peer] = now
        self._first_fallback.clear()
        self._away.discard(peer)
        self._gone_reported.discard(peer)
        self._gossiped.pop(peer, None)  # (re)connected: send it the members again
        if relay != (peer in self._relays):
            self._shared.pop(peer, None)  # (what a relay shares differs)
        if relay:
            self._relays.add(peer)
        else:
            self._relays.discard(peer)

    def disconnect(self, peer: str, now: float) -> bool:
        """``peer`` is down (last seen now); False if it was not up. A non-home that is not
        forgotten is no longer known (the module docstring)."""
        if self._up.pop(peer, None) is None:
            return False
        self._first_fallback.clear()
        self._listing.pop(peer, None)  # (a list in parts ends with its link)
        self._unlisted.pop(peer, None)
        if peer in self._relays:
            self._relays.discard(peer)
            self._shared.pop(peer, None)
        rec = self._peers.get(peer)
        if rec is not None and peer in self._non_homes and not rec.forgotten:
            self._drop(peer)
            return True
        self._away.add(peer)
        if rec is not None:
            self._peers[peer] = replace(rec, last_seen=now)
            self._outbox.durable.peers[peer] = None
        return True

    def _drop(self, peer: str) -> None:
        """Know nothing more of ``peer``, a non-home that left (never persisted: nothing to
        delete from the store)."""
        del self._peers[peer]
        self._non_homes.discard(peer)
        self._away.discard(peer)
        self._peer_summaries.pop(peer, None)
        self._gossiped.pop(peer, None)
        self._listing.pop(peer, None)
        self._gone_reported.discard(peer)
        self._shared.pop(peer, None)
        self._skews.pop(peer, None)  # (else listed per peer, as a home, for good)
        self.cards.drop(peer)

    def check_forget(self, peer: object, *, undo: bool = False) -> None:
        """``ValueError`` unless ``peer`` is a replica id this replica may forget (a peer it
        knows and has not forgotten) or, ``undo``, take back (one it has forgotten)."""
        if not isinstance(peer, str) or not peer:
            raise ValueError(f"peer_id must be a non-empty str, got {peer!r}")
        if peer == self._me:
            raise ValueError("a replica cannot forget itself")
        if undo:
            if not self.is_forgotten(peer):
                raise ValueError(f"replica {peer!r} is not forgotten here")
            return
        if not self.knows(peer):
            known = ", ".join(self.members()) or "none"
            raise ValueError(f"unknown replica id {peer!r} (the peers known here: {known})")
        if self.is_forgotten(peer):
            raise ValueError(f"replica {peer} is forgotten already")

    def forget(self, peer: str) -> None:
        """Forget ``peer`` (known) for good: off the ring, its reported summary dropped."""
        self._peers[peer] = replace(self._peers[peer], forgotten=True, summary=None)
        self._peer_summaries.pop(peer, None)
        self._outbox.durable.peers[peer] = None
        self.changed()

    def report_forgotten(self, peer: str, by: str) -> None:
        """The alarm that ``peer`` was forgotten (off the ring, its hints dropped, compaction
        no longer waiting for it), asked by ``by``."""
        self._outbox.emit(
            Alarm(
                "forgotten",
                peer,
                f"forgot replica {peer} for good, asked by {by}: it is off the ring, "
                "its hints are dropped, compaction no longer waits for it and its links "
                f"are refused. Undo with peer.unforget({peer!r}) or shoal forget --undo.",
            )
        )

    def unforget(self, peer: str, now: float, by: str) -> None:
        """Take a forgotten ``peer`` back, asked by ``by`` (an alarm says so): a member again
        (on the ring if it is a home), as if last seen now (so not gone at once)."""
        self._peers[peer] = replace(self._peers[peer], forgotten=False, last_seen=now)
        self._outbox.durable.peers[peer] = None
        self.changed()
        self._outbox.emit(
            Alarm("unforgotten", peer, f"replica {peer} is a member again, asked by {by}")
        )

    def knows(self, peer: str) -> bool:
        """Known to this replica (a member, or forgotten)."""
        return peer in self._peers

    def is_home(self, peer: str) -> bool:
        """A known, not-forgotten peer that is a home (on the ring)."""
        return self.is_member(peer) and peer not in self._non_homes

    def non_homes(self) -> list[str]:
        """The known, not-forgotten peers that are not homes, sorted."""
        return sorted(p for p in self._non_homes if self.is_member(p))

    def has_homes(self) -> bool:
        """True when the ring has any home (else no key has one)."""
        return self._config.home or any(
            not rec.forgotten and p not in self._non_homes for p, rec in self._peers.items()
        )

    def gone(self, now: float) -> dict[str, float]:
        """The homes not seen (no link, no summary) for longer than ``home_down_window``,
        with how long, by peer."""
        # Asked at every compaction pass: only the peers not up are looked at (a 1,000-peer
        # group asks it often, with most of its peers up).
        window = self._config.home_down_window
        peers, non_homes = self._peers, self._non_homes
        if not self._config.relay and self._relays:
            # A relay is up: the homes we do not reach (behind NAT, as we may be) are its
            # to judge; it reaches them, and reports one that is really gone.
            return {}
        out = []
        for pid in self._away:
            rec = peers[pid]
            away = now - rec.last_seen
            if away > window and not rec.forgotten and pid not in non_homes:
                out.append((pid, away))
        return dict(sorted(out))

    def report_gone(self, now: float) -> None:
        """Raise an alarm for each home newly gone for long (past ``home_down_window``): once
        per absence."""
        window = self._config.home_down_window
        for peer, away in self.gone(now).items():
            if peer in self._gone_reported:
                continue
            self._gone_reported.add(peer)
            self._outbox.emit(
                Alarm(
                    "home_down",
                    peer,
                    f"home {peer} has not been seen for {away / 86_400:.1f} days (past "
                    f"home_down_window, {window / 86_400:g} days): compaction no longer waits "
                    "for it; when it returns it catches up by state transfer. If it is gone "
                    "for good, forget it (shoal forget).",
                )
            )

    def up_peers(self) -> list[str]:
        return sorted(self._up)

    def is_forgotten(self, peer: str) -> bool:
        rec = self._peers.get(peer)
        return rec is not None and rec.forgotten

    def is_member(self, peer: str) -> bool:
        """Known and not forgotten."""
        rec = self._peers.get(peer)
        return rec is not None and not rec.forgotten

    def forgotten(self) -> list[str]:
        return sorted(p for p, rec in self._peers.items() if rec.forgotten)

    def members(self) -> list[str]:
        """The known, not-forgotten peers, sorted."""
        return sorted(p for p, rec in self._peers.items() if not rec.forgotten)

    def records(self, peers: Iterable[str]) -> tuple[PeerRecord, ...]:
        """The records of ``peers`` to persist: a non-home's only once it is forgotten (so a
        restart never takes a short-lived replica for a home)."""
        out = []
        for p in peers:
            rec = self._peers.get(p)
            if rec is not None and (p not in self._non_homes or rec.forgotten):
                out.append(rec)
        return tuple(out)

    # -- summaries and gossip ----------------------------------------------------------------
    def peer_summary(self, peer: str, partition: int) -> CausalContext | None:
        """The last summary of ``partition`` that ``peer`` reported (None: never)."""
        return self._peer_summaries.get(peer, {}).get(partition)

    def reported_summaries(self) -> list[tuple[str, dict[int, CausalContext]]]:
        """Each member that reported summaries, with them, by peer id."""
        out = []
        for pid in sorted(self._peers):
            if self._peers[pid].forgotten:
                continue
            theirs = self._peer_summaries.get(pid)
            if theirs is not None:
                out.append((pid, theirs))
        return out

    def reported_summary(self, peer: str, partition: int) -> CausalContext | None:
        """The summary of ``partition`` that ``peer`` reported last (None: none)."""
        theirs = self._peer_summaries.get(peer)
        return None if theirs is None else theirs.get(partition)

    def store_summary(self, peer: str, theirs: Mapping[int, CausalContext], now: float) -> bool:
        """Remember what a member reported (persisted); True if it changed anything."""
        if not self.is_member(peer):
            return False
        stored = self._peer_summaries.setdefault(peer, {})
        changed = False
        for p, ctx in theirs.items():
            if stored.get(p) != ctx:
                stored[p] = ctx
                changed = True
        if changed:
            encoded = {p: c.to_dict() for p, c in sorted(stored.items())}
            self._peers[peer] = replace(self._peers[peer], summary=encoded, last_seen=now)
            self._outbox.durable.peers[peer] = None
        return changed

    def gossip(self, peer: str) -> list[m.PeerInfo]:
        """The members to list in a summary to ``peer``: this replica first, every home we
        know and the non-homes up here, if it was not sent the current membership yet, else
        none."""
        if self._gossiped.get(peer) == self._members_version:
            return []
        self._gossiped[peer] = self._members_version
        cards = self.cards
        known = [cards.own()]
        non_homes = self._non_homes
        for pid in sorted(self._peers):
            rec = self._peers[pid]
            if self._lists(pid):
                card = cards.held(pid)
                known.append(
                    card
                    if card is not None
                    else m.PeerInfo.model_construct(
                        replica_id=pid,
                        address=rec.address,
                        site=rec.site,
                        home=pid not in non_homes,
                    )
                )
        return known

    def learn_members(self, sender: str, listed: Iterable[m.PeerInfo], now: float) -> None:
        """Know the homes ``sender`` listed (but this replica and forgotten peers), and which
        peers we know are not homes (except for a peer connected to us: its own handshake
        said so); a non-home we do not know stays unknown; new ones only while fewer than
        :data:`MAX_MEMBERS` peers are known. When this replica signs, what it knows of a
        known peer (address, site, home) changes only by that peer's own card, newer than
        the one held (:mod:`sync.member_cards`; cards were checked with the message)."""
        skipped = 0
        peers, cards = self._peers, self.cards
        signs = cards.signs
        for info in listed:
            rid = info.replica_id
            if rid == self._me:
                if cards.seen_own(info, now):  # (our clock went back since it was signed)
                    self.changed()  # our newer card goes out with the next summaries
                elif cards.contested is not None:
                    self._contested(sender, cards.contested, now)
                continue
            if self.is_forgotten(rid):
                continue
            fresh = cards.newer(info)  # its own card, checked, newer than the one held
            if rid not in peers:
                if info.home is False:
                    continue
                if len(peers) >= MAX_MEMBERS:
                    skipped += 1
                    continue
            elif signs and not fresh:
                continue  # what a known peer is, only its own (newer) card changes
            if fresh:
                held = cards.held(rid)
                cards.hold(info)
                if held is None or card_fields(held) != card_fields(info):
                    self.changed()  # (the members' digest covers what the cards held say)
            self.learn(rid, info.address, info.site, now, None if rid in self._up else info.home)
            if fresh and info.address is None:
                self.unlisten(rid)  # (its own word: it no longer listens anywhere)
            if fresh and signs:  # kept with its record: held again after a restart
                peers[rid] = replace(peers[rid], card=card_text(info))
                self._outbox.durable.peers[rid] = None
        if not skipped:
            return
        self.not_learned += skipped
        if now - self._not_learned_alarm >= ALARM_REPEAT:
            self._not_learned_alarm = now
            self._outbox.emit(
                Alarm(
                    "members_full",
                    sender,
                    f"{skipped} peers {sender} listed were not learned: this replica knows "
                    f"{len(self._peers)}, the most it learns of from what others list is "
                    f"{MAX_MEMBERS} ({self.not_learned} not learned so far). A group that "
                    f"large is not supported; else a member made them up.",
                )
            )

    def _contested(self, sender: str, card: m.PeerInfo, now: float) -> None:
        """The alarm that another run of this replica id signs cards (at most one every
        :data:`ALARM_REPEAT` seconds)."""
        self.cards.contested = None
        if now - self._contested_alarm < ALARM_REPEAT:
            return
        self._contested_alarm = now
        self._outbox.emit(
            Alarm(
                "card_contested",
                self._me,
                f"{sender} listed a card of this replica, signed with its key, not older than "
                f"its own and saying it listens at {card.address} (site {card.site}): "
                f"another run of replica {self._me} (a copy of its store?) is up. This one "
                f"signs a card above it at most once every {RESIGN_EVERY:g} s; peers take "
                "the newer card of the two.",
            )
        )

    def regossip(self, peer: str) -> None:
        """Send ``peer`` the members again with the next summary."""
        self._gossiped.pop(peer, None)

    def members_missing(
        self, sender: str, listed: Iterable[m.PeerInfo], *, more: bool = False
    ) -> bool:
        """True when ``sender``'s list of members misses some home we know, or shows an older
        card than we hold (:meth:`Cards.behind`). A list too big for one message comes in
        parts (``more``: parts follow): the names of ours listed so far are kept until the
        last part (at most one per peer we know), then it is judged whole."""
        peers = self._peers
        names, behind = self._listing.pop(sender, (set(), False))
        listed = list(listed)
        names.update(i.replica_id for i in listed if i.replica_id in peers)
        # (Only the cards our own list would carry: else a card of a forgotten peer, or of
        # a non-home not up here, held newer than the one listed, got the sender a list
        # without it, again at each of its lists, which could answer back: a ping-pong.)
        behind = behind or self.cards.behind(i for i in listed if self._lists(i.replica_id))
        if more:
            self._listing[sender] = (names, behind)
            return False
        non_homes = self._non_homes
        self._unlisted[sender] = lacks = sum(
            not rec.forgotten and pid not in names and pid not in non_homes
            for pid, rec in peers.items()
        )
        return behind or lacks > 0

    def claim_depth(self, peer: str) -> int:
        """How far along a partition's walk of our ring ``peer`` may be to home it by its own
        ring: ``n``, one more per home of ours its last list lacked, ``n`` more at most."""
        return self._config.n + min(self._config.n, self._unlisted.get(peer, 0))

    def _lists(self, peer: str) -> bool:
        """Does :meth:`gossip` list ``peer`` (with the card held of it): this replica, and the
        known peers not forgotten, homes or up here?"""
        if peer == self._me:
            return True
        rec = self._peers.get(peer)
        return (
            rec is not None
            and not rec.forgotten
            and (peer not in self._non_homes or peer in self._up)
        )

    def homes(self) -> list[str]:
        """What the digest of the members covers: the homes the ring is over (this replica
        too if it is one), each as ``id@[address, site, home]`` when its card is held (what the
        card says: peers holding cards that say different things of a home exchange their
        lists; not its ``at``, else each restart of a member, a new card saying the same,
        sent every member the list of all, some 250 kB in a group of 1,000), else its id."""
        cards = self.cards
        out = []
        for rid in self.ring().peers:
            card = cards.own() if rid == self._me else cards.held(rid)
            out.append(rid if card is None or card.sig is None else f"{rid}@{card_fields(card)}")
        out.sort()
        return out

    # -- health ------------------------------------------------------------------------------
    def set_aside(self, sender: str, skewed: Iterable[Skewed], now: float) -> None:
        """Writes stamped too far ahead of our clock were set aside: count them per writer,
        and raise an alarm (at most one per writer per message, repeated while it lasts)."""
        bound = self._config.max_clock_skew
        alarmed: set[str] = set()
        for s in skewed:
            if self.note_skew(s.writer, s.ahead_ms, now) and s.writer not in alarmed:
                alarmed.add(s.writer)
                via = "" if sender == s.writer else f", received from {sender}"
                self._outbox.emit(
                    Alarm(
                        "clock_skew",
                        s.writer,
                        f"clock skew: a write of {s.writer} ({s.what}{via}) is stamped "
                        f"{s.ahead_ms / 1000:.1f} s ahead of this replica's clock, past the "
                        f"allowed {bound:g} s; it is set aside until this clock reaches it. "
                        f"Check the clock of {s.writer} (and this one's).",
                    )
                )

    def note_skew(self, writer: str, ahead_ms: int, now: float) -> bool:
        """A write of ``writer`` stamped ``ahead_ms`` ahead of our clock was set aside; True
        when an alarm is due (the first, or :data:`ALARM_REPEAT` seconds after the last)."""
        skews = self._skews
        rec = skews.get(writer)
        if rec is None:
            if len(skews) >= MAX_SKEWED_WRITERS:
                del skews[min(skews, key=lambda w: skews[w].last)]
            skews[writer] = SkewRecord(1, ahead_ms, now, now, now)
            return True
        rec.set_aside += 1
        rec.ahead_ms = ahead_ms
        rec.last = now
        if now - rec.alarmed >= ALARM_REPEAT:
            rec.alarmed = now
            return True
        return False

    def skews(self) -> dict[str, dict[str, Any]]:
        """Per writer whose writes were set aside for clock skew: ``set_aside`` (a count),
        ``ahead_ms`` (of the last one), ``first`` and ``last`` (this replica's clock)."""
        return {
            w: {"set_aside": r.set_aside, "ahead_ms": r.ahead_ms, "first": r.first, "last": r.last}
            for w, r in sorted(self._skews.items())
        }

    # -- placement ---------------------------------------------------------------------------
    def site_of(self, peer: str) -> str | None:
        if peer == self._me:
            return self._config.site
        rec = self._peers.get(peer)
        return rec.site if rec is not None else None

    def site_ok(self, site: str | None, peer: str) -> bool:
        """Whether an ack or reply of ``peer`` counts for an operation limited to ``site``."""
        return site is None or self.site_of(peer) == site

    def placement(self, partition: int, level: Level) -> tuple[tuple[str, ...], int, str | None]:
        """Where an operation on ``partition`` at ``level`` goes: the partition's homes, in
        preference order, the acks (or replies) it requires and their site (see
        :meth:`required`)."""
        homes = self.ring().preference_list(partition)
        required, site = self.required(level, homes)
        return homes, required, site

    def required(self, level: Level, homes: tuple[str, ...]) -> tuple[int, str | None]:
        """The acks (or replies) ``level`` requires of ``homes``, and the site they must come
        from (``LOCAL_QUORUM``; else None). ``ValueError`` for ``LOCAL_QUORUM`` without a
        site."""
        # A named level counts the homes that exist: in a group smaller than n (two devices,
        # n=3) ALL means both, as Riak and Cassandra users expect. An integer is taken at its
        # word (validated against n): asking for 3 acks from two peers fails honestly.
        if level != LOCAL_QUORUM:  # depends on the level and the number of homes only
            memo = (level, len(homes))
            found = self._required_memo.get(memo)
            if found is None:
                n = self._config.n if isinstance(level, int) else max(1, len(homes))
                found = self._required_memo[memo] = (required_acks(level, n), None)
            return found
        site = self._config.site
        if site is None:  # the caller's level (the configuration's are checked when made)
            raise ValueError("LOCAL_QUORUM needs site, and this replica has none")
        local = sum(1 for h in homes if self.site_of(h) == site)
        return required_acks(level, max(1, len(homes)), local_homes=local), site

    def first_fallback(self, partition: int) -> str | None:
        """``pick_fallback(partition, chosen)`` for ``chosen`` the partition's homes and this
        replica (the first home down of a write), remembered until membership changes."""
        found = self._first_fallback.get(partition, False)
        if found is False:
            chosen = {*self.ring().preference_list(partition), self._me}
            found = self._first_fallback[partition] = self.pick_fallback(partition, chosen)
        return found  # type: ignore[return-value]

    def is_relay(self, peer: str) -> bool:
        """Is ``peer`` a relay (by its handshake)?"""
        return peer in self._relays

    def up_relays(self) -> list[str]:
        """The relays up now, sorted (a relay is known as one only while it is up)."""
        return sorted(self._relays)

    def pick_fallback(self, partition: int, chosen: set[str]) -> str | None:
        """A peer up to stand in for a home of ``partition`` that is down: an up relay first,
        else the next up non-home peer clockwise; none of ``chosen``."""
        ring = self.ring()
        homes = set(ring.preference_list(partition))
        for relay in self.up_relays():
            if relay not in chosen and relay not in homes:
                return relay
        for peer in ring.walk(partition)[ring.n :]:
            if peer != self._me and peer in self._up and peer not in chosen:
                return peer
        return None
