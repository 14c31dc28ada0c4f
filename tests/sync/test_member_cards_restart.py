"""Member cards survive a restart: the card held of each known peer is persisted with its
record and held again when the records are loaded (``sync.member_cards``), so an older card
of that peer, replayed by a member after the restart, is refused as it was before.

Engines driven by hand, as in ``test_member_cards.py``; the restart is a new engine loaded
from the records the first one emitted in ``Persist.peers`` (as the node's store keeps
them: a later record of a peer replaces the earlier).
"""

from __future__ import annotations

from dataclasses import replace

from sync import messages as m
from sync.effects import Alarm, Loaded, PeerRecord, Persist
from sync.replica import Replica
from sync.signing import Signer
from tests.sync.test_member_cards import T0, _card, _config, _gossiped, _record

__all__: list[str] = []

H = "h-member"  # a member up at a: the one that lists cards


class _Run:
    """One engine of replica ``signer`` (none: unsigned) and the peer records it persisted."""

    def __init__(
        self, signer: Signer | None, now: float, peers: dict[str, PeerRecord] | None = None
    ) -> None:
        self.signer = signer
        rid = signer.replica_id if signer is not None else "p000"
        self.stored: dict[str, PeerRecord] = dict(peers or {})
        self.r = Replica(_config(), rid, Loaded(peers=dict(self.stored)), now=now, signer=signer)
        self.alarms: list[Alarm] = []
        self.r.peer_up(H, now)
        self._drain()

    def _drain(self) -> None:
        for fx in self.r.effects():
            if isinstance(fx, Persist):
                self.stored.update((p.replica_id, p) for p in fx.peers)
            elif isinstance(fx, Alarm):
                self.alarms.append(fx)

    def listed(self, cards: list[m.PeerInfo], now: float) -> None:
        """``H`` sends a summary listing ``cards``, through the codec."""
        msg = m.Summary.model_construct(proto=1, t="summary", parts={}, known_peers=cards)
        self.r.receive(H, m.decode(m.encode(msg)), now)
        self._drain()

    def restarted(self, now: float) -> _Run:
        """A new engine of this replica, loaded from what this one persisted."""
        return _Run(self.signer, now, self.stored)


def test_an_older_card_replayed_after_a_restart_is_refused() -> None:
    """The hole: after a restart nothing was held, so a member replaying b's older card
    (its former address and site, validly signed by b) moved b back here, and the move was
    persisted, until b's current card came round again."""
    b = Signer.generate()
    bid = b.replica_id
    old = _card(b, T0, "ws://b.example:7000", site="east")
    moved = _card(b, T0 + 60, "ws://b.example:7001", site="west")
    run = _Run(Signer.generate(), T0)
    run.listed([old], T0 + 1)
    run.listed([moved], T0 + 61)
    assert _record(run.r, bid) == ("ws://b.example:7001", "west", True)
    run.listed([old], T0 + 62)  # refused before the restart ...
    assert _record(run.r, bid) == ("ws://b.example:7001", "west", True)

    again = run.restarted(T0 + 100)
    assert _record(again.r, bid) == ("ws://b.example:7001", "west", True)
    again.listed([old], T0 + 101)  # ... and after it
    assert _record(again.r, bid) == ("ws://b.example:7001", "west", True)
    assert again.stored[bid].address == "ws://b.example:7001"  # (nothing older persisted)
    # What it gossips of b is b's card as b signed it, held again.
    assert [i for i in _gossiped(again.r, H) if i.replica_id == bid] == [moved]
    # A newer card of b is still taken.
    newest = _card(b, T0 + 200, "ws://b.example:7002", site="west")
    again.listed([newest], T0 + 201)
    assert _record(again.r, bid) == ("ws://b.example:7002", "west", True)


def test_a_peer_that_said_it_listens_nowhere_stays_so_after_a_restart() -> None:
    b = Signer.generate()
    bid = b.replica_id
    listening = _card(b, T0, "ws://b.example:7000")
    run = _Run(Signer.generate(), T0)
    run.listed([listening], T0 + 1)
    run.listed([_card(b, T0 + 90, None)], T0 + 91)
    assert _record(run.r, bid) == (None, None, True)
    assert run.stored[bid].address is None  # persisted

    again = run.restarted(T0 + 100)
    assert _record(again.r, bid) == (None, None, True)
    again.listed([listening], T0 + 101)  # its former card, replayed
    assert _record(again.r, bid) == (None, None, True)
    assert again.stored[bid].address is None


def test_a_card_spoilt_in_the_store_is_not_held_nor_passed_on() -> None:
    """A stored card that does not verify (altered in the database) is not held: passed on
    in gossip, it would get this replica's messages refused as a hostile member's."""
    b = Signer.generate()
    bid = b.replica_id
    run = _Run(Signer.generate(), T0)
    run.listed([_card(b, T0, "ws://b.example:7000")], T0 + 1)
    card = run.stored[bid].card
    assert card is not None
    run.stored[bid] = replace(run.stored[bid], card=card.replace("7000", "6666"))
    again = run.restarted(T0 + 100)
    assert _record(again.r, bid) == ("ws://b.example:7000", None, True)
    assert again.r._membership.cards.held(bid) is None
    assert [(a.kind, a.peer) for a in again.alarms] == [("card_spoilt", bid)]  # (said so)
    assert run.alarms == []
    (listed,) = [i for i in _gossiped(again.r, H) if i.replica_id == bid]
    assert listed.sig is None and listed.address == "ws://b.example:7000"


def test_an_engine_without_a_key_persists_no_cards() -> None:
    """The simulator's engines: their records carry no card (the golden traces hold)."""
    b = Signer.generate()
    run = _Run(None, T0)
    run.listed([_card(b, T0, "ws://b.example:7000")], T0 + 1)
    assert run.stored[b.replica_id].address == "ws://b.example:7000"
    assert all(rec.card is None for rec in run.stored.values())
