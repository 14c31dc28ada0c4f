"""Member cards over real links: a member of the group (it holds the secret and a key of its
own) lists a known peer with another address, site and home flag, or alters that peer's
card, and the peer it tells keeps what the listed peer itself said (``sync.member_cards``).

Real peers (SQLite files, websockets on 127.0.0.1) and a hand-made member that completes the
real handshake and sends well-formed, authenticated frames.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sync import messages as m
from sync.transport.peer import Peer
from tests.transport.conftest import eventually, open_peer
from tests.transport.test_hostile_exhaustion import linked_member

__all__: list[str] = []


def _as_known(a: Peer, b: Peer) -> tuple[str | None, str | None, bool]:
    membership = a.replica._membership
    rec = membership._peers[b.replica_id]
    return rec.address, rec.site, b.replica_id in membership.ring().peers


async def test_a_member_cannot_move_a_peer_it_lists(tmp_path: Path) -> None:
    """Before cards, ``a`` took the member's word: ``b``'s address pointed at a port nobody
    listens on, and ``b`` moved to another site (its acks then counted for the wrong
    ``LOCAL_QUORUM``)."""
    b = await open_peer(tmp_path / "b.db", site="east")
    a = await open_peer(tmp_path / "a.db", peers=[b.url], site="east")
    try:
        await eventually(lambda: b.replica_id in a.replica.status()["peers_up"], "b up on a")
        await eventually(lambda: _as_known(a, b) == (b.url, "east", True), "b as b said")
        async with linked_member(a) as h:
            lie = m.PeerInfo.model_construct(
                replica_id=b.replica_id, address="ws://127.0.0.1:9/", site="west", home=False
            )
            await h.send(m.Summary.model_construct(parts={}, known_peers=[lie], reply=True))
            await h.until("a summary back", lambda _: h.summaries() >= 1)
            assert _as_known(a, b) == (b.url, "east", True)
            # b's own card reached a (b lists itself in its summaries), and what a lists of
            # b is that card, which the member cannot alter unseen.
            await eventually(
                lambda: a.replica._membership.cards.held(b.replica_id) is not None, "b's card"
            )
            # What a lists of b is b's card, which the member cannot alter unseen.
            listed = [
                i
                for s in h.received
                if isinstance(s, m.Summary)
                for i in s.known_peers
                if i.replica_id == b.replica_id
            ]
            assert listed and all(i.sig is not None and i.address == b.url for i in listed)
            forged = listed[0].model_copy(update={"address": "ws://127.0.0.1:9/"})
            await h.send(m.Summary.model_construct(parts={}, known_peers=[forged], reply=True))
            await eventually(lambda: a.node.counters.remote_errors >= 1, "refused")
        assert _as_known(a, b) == (b.url, "east", True)
        assert a.node.failed is None
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_peer_learns_where_another_listens_from_that_ones_card(tmp_path: Path) -> None:
    """``c`` never linked to ``b``: it learns ``b``'s address from ``b``'s card, passed on by
    the relay both dial (before cards, a replica listed itself without its address)."""
    relay = await open_peer(tmp_path / "r.db", relay=True)
    b = await open_peer(tmp_path / "b.db", peers=[relay.url])
    c = await open_peer(tmp_path / "c.db", peers=[relay.url])
    try:

        def c_knows_b() -> bool:
            rec = c.replica._membership._peers.get(b.replica_id)
            return rec is not None and rec.address == b.url

        await eventually(c_knows_b, "b's address on c")
        card = c.replica._membership.cards.held(b.replica_id)
        assert card is not None and card.address == b.url
    finally:
        for p in (c, b, relay):
            await p.aclose()


async def test_an_older_card_replayed_after_a_restart_is_refused(tmp_path: Path) -> None:
    """``a`` held ``b``'s card saying it listens at its first address, then the card ``b``
    signed when it came back at another; ``a`` restarts (``b`` down); a member replays the
    first card. Before cards were persisted, ``a`` held none after its restart: it took the
    replayed card, and stored ``b``'s former address."""
    b = await open_peer(tmp_path / "b.db")
    a = await open_peer(tmp_path / "a.db", peers=[b.url])
    bid = b.replica_id
    try:
        await eventually(lambda: a.replica._membership.cards.held(bid) is not None, "b's card")
        first = a.replica._membership.cards.held(bid)
        assert first is not None and first.address == b.url
        await b.aclose()
        b = await open_peer(tmp_path / "b.db", peers=[a.url])  # another port: a newer card
        assert b.url != first.address
        await eventually(lambda: _as_known(a, b) == (b.url, None, True), "b's new address")
        # (The address comes with b's hello; its new card with b's next summary, later.)
        cards = a.replica._membership.cards
        await eventually(lambda: getattr(cards.held(bid), "address", None) == b.url, "new card")
        second = cards.held(bid)
        assert second is not None and second.address == b.url and second.at > first.at
    finally:
        await a.aclose()
        await b.aclose()
    a = await open_peer(tmp_path / "a.db")
    try:
        assert _as_known(a, b) == (b.url, None, True)
        async with linked_member(a) as h:
            await h.send(m.Summary.model_construct(parts={}, known_peers=[first], reply=True))
            await h.until("a summary back", lambda _: h.summaries() >= 1)
            assert _as_known(a, b) == (b.url, None, True)
            assert a.replica._membership.cards.held(bid) == second
        assert a.node.failed is None
    finally:
        await a.aclose()
    with sqlite3.connect(tmp_path / "a.db") as conn:
        stored = conn.execute("SELECT address FROM peers WHERE replica_id = ?", (bid,)).fetchone()
    assert stored == (b.url,)
