"""Member cards: what gossip may change of a known peer (its address, site, home flag) is
only what that peer signed of itself (``sync.member_cards``).

Engines driven by hand, each with a key of its own (as every ``Peer`` has), messages through
the real codec: a summary from one peer listing the members it knows, as a member of the
group (holder of the secret) could make it.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from crdt import CausalContext
from sync import member_cards
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import Alarm, Send
from sync.errors import RemoteProtocolError
from sync.member_cards import Cards
from sync.replica import Replica
from sync.signing import Signer
from tests.sync.conftest import ask_transfer

__all__: list[str] = []

PARTS = 16
T0 = 1_700_000_000.0  # the engines' clock: Unix seconds, as a Peer's


def _config(**kw: Any) -> ReplicaConfig:
    return ReplicaConfig(n=3, partitions=PARTS, vnodes=4, anti_entropy_interval=5.0, **kw)


def _replica(signer: Signer | None = None, **kw: Any) -> tuple[Replica, Signer]:
    signer = signer or Signer.generate()
    return Replica(_config(**kw), signer.replica_id, now=T0, signer=signer), signer


def _card(signer: Signer, at_s: float, address: str | None, **kw: Any) -> m.PeerInfo:
    """``signer``'s card as its engine signs it at ``at_s`` (Unix seconds)."""
    cards = Cards(signer.replica_id, signer, kw.get("site"), kw.get("home", True), int(at_s * 1000))
    cards.announce(address)
    return cards.own()


def _summary_from(sender: str, target: Replica, listed: list[m.PeerInfo], now: float) -> None:
    """``sender`` (up at ``target``) sends it a summary listing ``listed``, through the codec."""
    msg = m.Summary.model_construct(proto=1, t="summary", parts={}, known_peers=listed)
    target.receive(sender, m.decode(m.encode(msg)), now)
    target.effects()


def _record(r: Replica, peer: str) -> tuple[str | None, str | None, bool]:
    rec = r._membership._peers[peer]
    return rec.address, rec.site, peer in r._membership.ring().peers


def _gossiped(r: Replica, peer: str) -> list[m.PeerInfo]:
    """What ``r`` lists of the members in its next summary to ``peer``."""
    r._membership.regossip(peer)
    return r._membership.gossip(peer)


@pytest.fixture
def group() -> tuple[Replica, str, Signer, str]:
    """``a`` knows ``b`` (from b's own card) and has a member ``h`` up."""
    a, _ = _replica()
    b = Signer.generate()
    h = Signer.generate().replica_id
    a.peer_up(h, T0)
    a.effects()
    _summary_from(h, a, [_card(b, T0, "ws://b.example:7000", site="east")], T0)
    assert _record(a, b.replica_id) == ("ws://b.example:7000", "east", True)
    return a, h, b, b.replica_id


def test_what_a_member_says_of_a_known_peer_without_its_card_changes_nothing(
    group: tuple[Replica, str, Signer, str],
) -> None:
    """The attack: a member lists a known peer with its own idea of it (address elsewhere,
    another site, not a home). Before cards, ``a`` took all three."""
    a, h, _b, bid = group
    lie = m.PeerInfo(replica_id=bid, address="ws://evil.example:1", site="west", home=False)
    _summary_from(h, a, [lie], T0 + 1)
    assert _record(a, bid) == ("ws://b.example:7000", "east", True)


def test_a_card_altered_on_the_way_is_refused_with_its_message(
    group: tuple[Replica, str, Signer, str],
) -> None:
    """A member that alters a peer's card (its address) or makes one up under another key
    is refused: the link's reason names the card, and nothing of the message is taken."""
    a, h, b, bid = group
    real = _card(b, T0 + 10, "ws://b.example:7000", site="east")
    altered = real.model_copy(update={"address": "ws://evil.example:1"})
    mallory = Signer.generate()
    own_key = _card(mallory, T0 + 10, "ws://evil.example:1").model_copy(update={"replica_id": bid})
    not_b64 = real.model_copy(update={"sig": "!" * 88})
    newcomer = Signer.generate().replica_id
    _summary_from(h, a, [real], T0 + 10)  # the real one first: verified and held
    for bad, why in (
        (altered, "does not verify"),
        (own_key, "is not the key of"),
        (not_b64, "not base64"),
    ):
        listed = [m.PeerInfo(replica_id=newcomer), bad]
        with pytest.raises(RemoteProtocolError, match=f"member card of {bid}: .*{why}"):
            _summary_from(h, a, listed, T0 + 11)
        assert _record(a, bid) == ("ws://b.example:7000", "east", True)
        assert newcomer not in a._membership._peers  # (listed first: nothing was taken)


def test_a_peer_moves_by_a_newer_card_of_its_own_and_an_older_one_changes_nothing(
    group: tuple[Replica, str, Signer, str],
) -> None:
    a, h, b, bid = group
    moved = _card(b, T0 + 60, "ws://b.example:7001", site="west")
    _summary_from(h, a, [moved], T0 + 61)
    assert _record(a, bid) == ("ws://b.example:7001", "west", True)
    # What a gossips of b is b's card, as b signed it.
    assert [i for i in _gossiped(a, h) if i.replica_id == bid] == [moved]
    # An old card, replayed, changes nothing back.
    _summary_from(h, a, [_card(b, T0 - 60, "ws://b.example:7000", site="east")], T0 + 62)
    assert _record(a, bid) == ("ws://b.example:7001", "west", True)
    # b no longer listens (a device behind NAT now): its own card clears the old address,
    # which a would otherwise dial for ever.
    _summary_from(h, a, [_card(b, T0 + 90, None, site="west")], T0 + 91)
    assert _record(a, bid) == (None, "west", True)
    # b restarted as a short-lived replica: its own card takes it off a's ring.
    _summary_from(h, a, [_card(b, T0 + 120, None, home=False)], T0 + 121)
    assert bid not in a._membership.ring().peers


def test_a_replica_shown_a_card_of_its_own_not_older_than_its_own_signs_a_newer_one() -> None:
    """Its clock went back since it signed that one (or a copy of it ran ahead): the order of
    its cards holds without a persisted counter or a right clock."""
    a, signer = _replica()
    h = Signer.generate().replica_id
    a.peer_up(h, T0)
    a.effects()
    a.announce("ws://a.example:7000", T0)
    first = _gossiped(a, h)[0]
    assert first.replica_id == a.replica_id and first.address == "ws://a.example:7000"
    ahead = _card(signer, T0 + 86_400, "ws://a.example:6999")  # a day ahead, another address
    _summary_from(h, a, [ahead], T0 + 1)
    now = _gossiped(a, h)[0]
    assert now.at == ahead.at + 1 and now.address == "ws://a.example:7000"
    assert Cards(h, None, None, True, 0).check(now) is None  # signed, valid
    # Once ahead, an older card of its own changes nothing.
    _summary_from(h, a, [first], T0 + 2)
    assert _gossiped(a, h)[0] == now


def test_a_newer_card_is_sent_on_in_the_next_summaries() -> None:
    a, _ = _replica()
    h = Signer.generate().replica_id
    a.peer_up(h, T0)
    a.effects()
    a.announce("ws://a.example:7000", T0 + 1)
    sent = [
        fx.message
        for fx in a.effects()
        if isinstance(fx, Send) and isinstance(fx.message, m.Summary) and fx.message.known_peers
    ]
    a.tick(T0 + 10)
    sent += [
        fx.message
        for fx in a.effects()
        if isinstance(fx, Send) and isinstance(fx.message, m.Summary) and fx.message.known_peers
    ]
    assert any(s.known_peers[0].address == "ws://a.example:7000" for s in sent)


def test_an_engine_without_a_key_takes_gossip_as_before() -> None:
    """The simulator's engines sign nothing; what their gossip does is unchanged (the golden
    traces hold it), and their listings carry no card."""
    a = Replica(_config(), "p000", now=0.0)
    a.peer_up("p009", 0.0)
    a.effects()
    _summary_from("p009", a, [m.PeerInfo(replica_id="p001", address="sim://p001")], 0.0)
    _summary_from("p009", a, [m.PeerInfo(replica_id="p001", address="sim://x", site="w")], 0.0)
    assert _record(a, "p001") == ("sim://x", "w", True)
    own = _gossiped(a, "p009")[0]
    assert own.sig is None and b'"sig"' not in m.encode(
        m.Summary.model_construct(proto=1, t="summary", parts={}, known_peers=[own])
    )


def test_the_signature_covers_every_field() -> None:
    """Also once the card itself was verified (each valid card is verified once: what is
    remembered is the whole card, not its signature)."""
    signer = Signer.generate()
    card = _card(signer, T0, "ws://b.example:7000", site="east")
    check = Cards("x", None, None, True, 0).check
    assert check(card) is None
    assert check(card) is None
    for change in (
        {"address": "ws://b.example:7001"},
        {"site": "west"},
        {"home": False},
        {"at": card.at + 1},
    ):
        assert "does not verify" in (check(card.model_copy(update=change)) or "")
    assert base64.b64decode(card.key or "") == signer.public_key


def test_a_fresh_card_is_taken_when_the_memo_of_verified_cards_fills_during_its_message(
    group: tuple[Replica, str, Signer, str],
) -> None:
    """The memo of verified cards is cleared when full: a card verified earlier in the same
    message (by ``Inbound.summary``) was then no longer known as verified when membership
    read it, and a peer's newer card was dropped (for good in a group of more members than
    the memo holds: the same cards fell out of it on every exchange)."""
    a, h, b, bid = group
    cards = a._membership.cards
    z = Signer.generate()
    base = _card(z, T0, None)
    memo = member_cards._MEMO
    for i in range(memo - 1 - len(cards._verified)):
        payload = member_cards.card_payload(z.replica_id, None, None, True, base.at + 1 + i)
        sig = base64.b64encode(z.sign(payload)).decode("ascii")
        assert cards.check(base.model_copy(update={"at": base.at + 1 + i, "sig": sig})) is None
    assert len(cards._verified) == memo - 1
    moved = _card(b, T0 + 60, "ws://b.example:7001", site="west")
    other = _card(Signer.generate(), T0 + 60, "ws://c.example:7000")
    _summary_from(h, a, [moved, other], T0 + 61)
    assert _record(a, bid) == ("ws://b.example:7001", "west", True)


def _pump(
    replicas: dict[str, list[Replica]],
    now: float,
    alarms: list[Alarm],
    sent: list[tuple[str, str, m.Message]] | None = None,
) -> None:
    """Deliver every message the engines send, through the codec, until none is left
    (``replicas``: id -> the engines running as that id; each link joins one engine of
    each side, the one that has the other up); keep their alarms in ``alarms``, and what
    was delivered (sender, receiver, message) in ``sent``."""
    pending = True
    while pending:
        pending = False
        for rid, engines in replicas.items():
            for engine in engines:
                for fx in engine.effects():
                    if isinstance(fx, Alarm):
                        alarms.append(fx)
                    if not isinstance(fx, Send):
                        continue
                    for target in replicas[fx.peer]:
                        if rid in target._membership.up:
                            pending = True
                            if sent is not None:
                                sent.append((rid, fx.peer, fx.message))
                            target.receive(rid, m.decode(m.encode(fx.message)), now)


def test_two_runs_of_one_replica_do_not_outbid_each_other_round_after_round() -> None:
    """Two runs of one replica id (a restored copy started beside it), each listening at an
    address of its own, each linked to one of two peers linked to each other. Each run shown
    the other's card, newer than its own, signed one above it: the peers' idea of where
    that replica listens flipped every few rounds, each flip sent on to every member, for
    ever. Now each answers once (at most once every ``RESIGN_EVERY`` seconds), an alarm
    says why, and the peers agree on the newer card."""
    signer = Signer.generate()
    aid = signer.replica_id
    one, _ = _replica(signer)
    two = Replica(one.config, aid, now=T0 + 5, signer=signer)  # started 5 s later
    h1, _ = _replica()
    h2, _ = _replica()
    for x, y in ((one, h1), (h1, h2), (two, h2)):
        x.peer_up(y.replica_id, T0 + 5)
        y.peer_up(x.replica_id, T0 + 5)
    one.announce("ws://one.example:7000", T0 + 5)
    two.announce("ws://two.example:7000", T0 + 5)
    engines = {aid: [one, two], h1.replica_id: [h1], h2.replica_id: [h2]}
    alarms: list[Alarm] = []
    signed: dict[int, set[int]] = {id(one): set(), id(two): set()}
    for t in range(5, 300, 5):  # within RESIGN_EVERY
        for engine in (one, two, h1, h2):
            engine.tick(T0 + t)
        _pump(engines, T0 + t, alarms)
        for run in (one, two):
            signed[id(run)].add(run._membership.cards.own().at)
    assert all(len(ats) <= 2 for ats in signed.values())  # announced, answered once
    held = [h._membership.cards.held(aid) for h in (h1, h2)]
    assert held[0] is not None and held[0] == held[1]
    assert [a.kind for a in alarms] == ["card_contested"]
    assert member_cards.RESIGN_EVERY >= 300


def test_a_member_restarted_saying_the_same_of_itself_sends_no_member_lists_about() -> None:
    """``b`` restarts (a new card, newer, saying the same address) and links to ``a``; ``h``
    is linked to ``a`` only. The members' digest covered each card's ``at``: ``a`` and
    ``h`` exchanged their lists of all members (some 250 kB each in a group of 1,000, to
    and from every member) for a card that changed nothing. Restarted on another port, its
    new address still reaches ``h``."""
    bs = Signer.generate()
    b, _ = _replica(bs)
    a, _ = _replica()
    h, _ = _replica()
    for x, y in ((b, a), (a, h)):
        x.peer_up(y.replica_id, T0)
        y.peer_up(x.replica_id, T0)
    b.announce("ws://b.example:7000", T0)
    engines = {bs.replica_id: [b], a.replica_id: [a], h.replica_id: [h]}
    sent: list[tuple[str, str, m.Message]] = []
    for t in range(0, 60, 5):
        for engine in (a, b, h):
            engine.tick(T0 + t)
        _pump(engines, T0 + t, [], sent)
    assert h._membership._peers[bs.replica_id].address == "ws://b.example:7000"
    for start, address in ((T0 + 60, "ws://b.example:7000"), (T0 + 120, "ws://b.example:7001")):
        old = engines[bs.replica_id][0]
        old.peer_down(a.replica_id, start)
        a.peer_down(bs.replica_id, start)
        new = Replica(b.config, bs.replica_id, now=start, signer=bs)
        engines[bs.replica_id] = [new]
        new.announce(address, start)
        new.peer_up(a.replica_id, start)
        a.peer_up(bs.replica_id, start, address=address)
        del sent[:]
        for t in range(0, 60, 5):
            for engine in (a, h, new):
                engine.tick(start + t)
            _pump(engines, start + t, [], sent)
        assert h._membership._peers[bs.replica_id].address == address
        lists = [
            (src, dst)
            for src, dst, msg in sent
            if isinstance(msg, m.Summary) and msg.known_peers and bs.replica_id not in (src, dst)
        ]
        assert bool(lists) == (address != "ws://b.example:7000")


def test_two_runs_of_one_replica_started_in_the_same_millisecond_are_told_apart() -> None:
    """Their cards have the same ``at``: neither was newer, so the peers linked to each kept
    its own and, their digests differing, exchanged their lists of all members every round,
    for ever (neither run being shown the other's card). Of two cards of one ``at``, the
    one with the greater signature now wins everywhere. (The run that lost still exchanges
    lists with its own peers, its card differing from theirs: the alarm says why.)"""
    signer = Signer.generate()
    aid = signer.replica_id
    one, _ = _replica(signer)
    two, _ = _replica(signer)
    h1, _ = _replica()
    h2, _ = _replica()
    for x, y in ((one, h1), (h1, h2), (two, h2)):
        x.peer_up(y.replica_id, T0)
        y.peer_up(x.replica_id, T0)
    one.announce("ws://one.example:7000", T0)
    two.announce("ws://two.example:7000", T0)
    engines = {aid: [one, two], h1.replica_id: [h1], h2.replica_id: [h2]}
    sent: list[tuple[str, str, m.Message]] = []
    for t in range(0, 300, 5):
        del sent[:]
        for engine in (one, two, h1, h2):
            engine.tick(T0 + t)
        _pump(engines, T0 + t, [], sent)
    held = [h._membership.cards.held(aid) for h in (h1, h2)]
    assert held[0] is not None and held[0] == held[1]
    between_peers = [
        msg
        for src, dst, msg in sent
        if isinstance(msg, m.Summary) and msg.known_peers and aid not in (src, dst)
    ]
    assert not between_peers


SMALL = 64 * 1024  # the smallest max_message_bytes


def _knowing(count: int) -> tuple[Replica, str, list[m.PeerInfo]]:
    """A replica at ``SMALL`` messages with a member ``h`` up, told by ``h`` of ``count``
    members' cards."""
    a, _ = _replica(max_message_bytes=SMALL)
    h = Signer.generate().replica_id
    a.peer_up(h, T0)
    a.effects()
    members = [
        _card(Signer.generate(), T0, f"ws://10.0.{i // 250}.{i % 250}:7000") for i in range(count)
    ]
    for i in range(0, len(members), 100):
        _summary_from(h, a, members[i : i + 100], T0)
    return a, h, members


def _newcomer_asks(a: Replica, parts: dict[int, m.Ctx]) -> tuple[Replica, list[m.Summary]]:
    """A new replica ``q`` comes up at ``a`` and sends it a summary of ``parts`` listing
    itself alone (so a's list is what it lacks); the summaries ``a`` answers with."""
    q, _ = _replica(max_message_bytes=SMALL)
    qid = q._membership._me
    a.peer_up(qid, T0, home=True)
    a.effects()
    hello = m.Summary.model_construct(
        proto=1, t="summary", parts=parts, known_peers=[q._membership.cards.own()], reply=True
    )
    a.receive(qid, hello, T0)
    sent = [
        e.message
        for e in a.effects()
        if isinstance(e, Send) and e.peer == qid and isinstance(e.message, m.Summary)
    ]
    return q, sent


def _deliver(a: Replica, q: Replica, sent: list[m.Summary]) -> None:
    """``a``'s summaries to ``q``, each within ``SMALL`` bytes, through the codec."""
    q.peer_up(a._membership._me, T0, home=True)
    q.effects()
    for s in sent:
        data = m.encode(s)
        assert len(data) <= SMALL
        q.receive(a._membership._me, m.decode(data, max_size=SMALL), T0)


def test_a_list_of_members_too_big_for_one_message_goes_in_parts() -> None:
    """At the smallest ``max_message_bytes`` (64 KiB) a list of 600 members' cards (some
    160 kB) fits no message: before, it went as one summary, which the receiver refuses
    (the link closes, 1009) on every exchange. Now it goes in parts, each within the bound,
    the receiver learns every member, and judges the list whole: it sends none back."""
    a, _, members = _knowing(600)
    assert len(a._membership._peers) == 601
    q, sent = _newcomer_asks(a, {})
    listing = [s for s in sent if s.known_peers]
    assert len(listing) >= 3
    _deliver(a, q, listing)
    assert {c.replica_id for c in members} <= set(q._membership._peers)
    back = [
        e.message
        for e in q.effects()
        if isinstance(e, Send) and isinstance(e.message, m.Summary) and e.message.known_peers
    ]
    assert back == []  # nothing missing from a's list, judged whole


def test_the_first_part_of_a_list_leaves_room_for_big_partition_contexts() -> None:
    """The first summary of a list in parts also carries the partitions' contexts: when
    those are big (a partition written by a thousand replicas: some 50 kB at 64 KiB
    messages), the members it carries are fewer, so that it fits; before, it
    carried a quarter of a message of cards whatever the contexts took, and went over."""
    a, h, members = _knowing(300)
    # What h's state transfer of partition 3 brings: its writers' dots.
    ask_transfer(a, h, [3], T0)
    writers = {Signer.generate().replica_id: 1_000_000 + i for i in range(1600)}
    for i, some in enumerate((dict(list(writers.items())[:800]), writers)):
        chunk = m.SnapshotChunk.model_construct(
            batch_id=i, partition=3, objects=[], summary=m.Ctx(vv=some), last=True
        )
        a.receive(h, chunk, T0)  # (up to TAKEN_ORIGINS_MAX new writers a transfer)
        a.effects()
    assert a.summary(3).vv == writers
    q, sent = _newcomer_asks(a, {3: m.Ctx()})
    assert sent[0].parts and sum(len(s.known_peers) for s in sent) == 303
    _deliver(a, q, sent)
    assert {c.replica_id for c in members} <= set(q._membership._peers)
    assert q.summary(3) == CausalContext()  # (q took a's summary as a report, not as its own)


def _behind_on_b(**new_card: Any) -> tuple[Replica, Replica, Signer, m.PeerInfo, m.PeerInfo]:
    """``a`` and ``c``, each told of ``b``'s card by a member ``h`` up at both; ``c`` then of
    ``b``'s newer card (``new_card``: its fields), ``a`` not: (a, c, b, old card, new)."""
    a, _ = _replica()
    c, _ = _replica()
    b = Signer.generate()
    old = _card(b, T0, "ws://b.example:7000")
    new = _card(b, T0 + 60, "ws://b.example:7001", **new_card)
    h = Signer.generate().replica_id
    for r in (a, c):
        r.peer_up(h, T0)
        r.effects()
        _summary_from(h, r, [old], T0 + 1)
    _summary_from(h, c, [new], T0 + 61)
    return a, c, b, old, new


def test_a_member_that_lists_an_older_card_is_sent_the_newer_one() -> None:
    """``c`` holds ``b``'s newer card (it moved), ``a`` the older one, and ``a`` sends ``c``
    its list of members (their digests differ). ``c`` judged that list only by the ids it
    names, found none missing and sent nothing back: a newer card reached a member only over
    a link of its own, never through another member (found by a review: a peer dialling
    learned addresses kept dialling ``b``'s old one). Now ``c`` answers with its list, and
    ``a`` takes the newer card from it."""
    a, c, b, old, new = _behind_on_b()
    c.peer_up(a.replica_id, T0 + 62)
    c.effects()  # (its opening summary: lost, or a was not listening yet)
    a.peer_up(c.replica_id, T0 + 62)
    a.effects()
    listed = a._membership.gossip(c.replica_id) or _gossiped(a, c.replica_id)
    assert old in listed
    msg = m.Summary.model_construct(proto=1, t="summary", parts={}, known_peers=listed)
    c.receive(a.replica_id, m.decode(m.encode(msg)), T0 + 63)
    answers = [
        fx.message
        for fx in c.effects()
        if isinstance(fx, Send) and fx.peer == a.replica_id and isinstance(fx.message, m.Summary)
    ]
    assert any(new in s.known_peers for s in answers), answers
    for s in answers:
        a.receive(c.replica_id, m.decode(m.encode(s)), T0 + 64)
    assert _record(a, b.replica_id) == ("ws://b.example:7001", None, True)
    assert c._membership.cards.held(b.replica_id) == new  # (and c kept the newer one)


def _shuttle(x: Replica, y: Replica, now: float, rounds: int = 12) -> int:
    """Deliver the summaries ``x`` and ``y`` send each other until none is left (at most
    ``rounds`` deliveries); how many were delivered."""
    delivered = 0
    for _ in range(rounds):
        moved = False
        for src, dst in ((x, y), (y, x)):
            for fx in src.effects():
                if (
                    isinstance(fx, Send)
                    and fx.peer == dst.replica_id
                    and isinstance(fx.message, m.Summary)
                ):
                    dst.receive(src.replica_id, m.decode(m.encode(fx.message)), now)
                    delivered += 1
                    moved = True
        if not moved:
            break
    return delivered


@pytest.mark.parametrize("why", ["forgotten", "no longer a home"])
def test_an_older_card_of_a_peer_we_do_not_list_starts_no_ping_pong(why: str) -> None:
    """``a`` lists ``b`` with its older card to ``c``, which holds ``b``'s newer card but
    does not list ``b`` itself: ``c`` forgot it, or its newer card says it is no longer a
    home (``c`` lists a non-home only while it is up). ``c`` answered with its list (``a``
    is behind on ``b``), which does not list ``b``, so ``a`` found a home missing from it and
    answered with its own list, and so on without end: a list each way per message, between
    rounds. ``c`` judges a list only by the cards it would list itself."""
    a, c, b, _, _ = _behind_on_b(home=why == "forgotten")
    if why == "forgotten":
        c.forget(b.replica_id, T0 + 62)
    else:
        assert c._membership.non_homes() == [b.replica_id]
    c.peer_up(a.replica_id, T0 + 62)
    a.peer_up(c.replica_id, T0 + 62)
    assert _shuttle(a, c, T0 + 63) < 12  # (the opening summaries)
    msg = m.Summary.model_construct(
        proto=1, t="summary", parts={}, known_peers=_gossiped(a, c.replica_id)
    )
    c.receive(a.replica_id, m.decode(m.encode(msg)), T0 + 64)
    assert _shuttle(a, c, T0 + 64) < 12
