"""A member that exhausts its receiver with valid-shaped messages: what a peer holds for
another one stays bounded.

A real peer (SQLite, websockets on 127.0.0.1) and a hand-made client that completes the real
handshake as a member (the group secret, a key of its own) and sends well-formed, sealed
messages. Each test sends what used to make the peer hold state without bound, and measures
what the peer then holds (counts of held objects, bytes on its disk, ``tracemalloc``), never
times: hints for replicas that are no home of their partition (any id will do, so one peer
held ``hint_max_per_target`` hints for each of as many targets as a member named), hints of
large values for a real home (held whatever their bytes, now up to ``hint_max_bytes``),
summaries whose contexts list dots the receiver holds nothing of (4.6 MB of them were kept as
55 MB of Python objects, and written to the peer's record on disk again on every later
summary), members made up by the thousand in summaries' lists of known peers (each was
learned, put on the ring and gossiped on), and the summary that ends a state transfer (one
nobody asked for, or one listing 100,000 made-up dots or origins: merged into the peer's
own summary whole, held, persisted and sent on).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import crdt
from sync import messages as m
from sync.replica.anti_entropy import REPORTED_CLOUD_MAX, TAKEN_ORIGINS_MAX
from sync.replica.membership import MAX_MEMBERS
from sync.ring import partition_of
from sync.transport.auth import Identity, Session, client_handshake
from sync.transport.metrics import render_metrics
from sync.transport.peer import Peer
from sync.transport.status import status_snapshot
from tests.transport.conftest import WAIT, eventually, member, open_peer

__all__: list[str] = []

PARTS = 64


class Member:
    """The hostile member's side of one link: sends sealed messages, reads the peer's."""

    def __init__(self, ws: ClientConnection, me: Identity, session: Session) -> None:
        self.ws = ws
        self.me = me
        self.session = session
        self.received: list[m.Message] = []

    async def send(self, msg: m.Message) -> None:
        await self.ws.send(self.session.seal(m.encode(msg)))

    async def until(self, what: str, done: Any) -> None:
        """Read the peer's messages until ``done(received)`` (at most 10,000 of them)."""
        for _ in range(10_000):
            if done(self.received):
                return
            frame = await asyncio.wait_for(self.ws.recv(), WAIT)
            assert isinstance(frame, bytes)
            self.received.append(m.decode(self.session.unseal(frame)))
        raise AssertionError(f"no {what} in 10,000 messages")

    def acked(self) -> set[int]:
        return {i for msg in self.received if isinstance(msg, m.Ack) for i in msg.ids}

    def acked_except(self) -> dict[int, list[int]]:
        """The pushes acknowledged but for some entries: push id -> their positions."""
        return {
            msg.push_id: list(msg.skipped) for msg in self.received if isinstance(msg, m.AckExcept)
        }

    def summaries(self) -> int:
        return sum(isinstance(msg, m.Summary) for msg in self.received)


@asynccontextmanager
async def linked_member(peer: Peer) -> AsyncIterator[Member]:
    """A member linked to ``peer``, once ``peer``'s engine has it up."""
    me = member()
    assert peer.url is not None
    async with connect(peer.url, max_size=None) as ws:
        info = await client_handshake(ws, me, timeout=WAIT)
        assert info.session is not None
        up = me.replica_id
        await eventually(lambda: up in peer.replica.status()["peers_up"], "the member up")
        yield Member(ws, me, info.session)


def _hints_on_disk(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM hints").fetchone()[0])


async def test_hints_for_replicas_that_are_no_home_are_not_held(tmp_path: Path) -> None:
    """A push of 10 entries for each of 40 made-up ids used to leave 400 hints here (on disk,
    in memory, and each target a ``hint_max_per_target`` of its own). A hint is held only
    for a home of its partition; the others are left out of the acks (as for a forgotten
    home: anti-entropy carries what they hold), counted, and not stored. A hint for a real
    home still is."""
    a = await open_peer(tmp_path / "a.db", n=1)
    try:
        async with linked_member(a) as h:
            mid = h.me.replica_id
            ring = a.replica._membership.ring()
            # A key of a partition the member is the only home of (n=1): held here as hints.
            key = next(
                k
                for k in (f"k{i}" for i in range(1000))
                if ring.preference_list(partition_of(k, PARTS)) == (mid,)
            )
            p = partition_of(key, PARTS)
            entries = [
                m.Entry(mid, p, seq, key, "gcounter", crdt.GCounter().increment(mid, seq).to_json())
                for seq in range(1, 11)
            ]
            seal = h.me.signer.seal(entries)  # type: ignore[union-attr]
            for e in entries:
                e.seal = seal
            ghosts = [f"ghost-{i}" for i in range(40)]
            for i, target in enumerate([*ghosts, mid]):
                await h.send(
                    m.Push.model_construct(push_id=i + 1, entries=entries, hint_for=target)
                )
            await h.until("acks", lambda _: 41 in h.acked() and len(h.acked_except()) == 40)
            assert h.acked_except() == {i: list(range(10)) for i in range(1, 41)}
            status = a.replica.status()
            assert status["hints"] == {mid: 10}, status["hints"]
            assert status["hints_not_held"] == 400
            assert a.node.failed is None
        assert _hints_on_disk(tmp_path / "a.db") == 10
    finally:
        await a.aclose()


async def test_hints_of_large_values_are_held_up_to_hint_max_bytes(tmp_path: Path) -> None:
    """Twelve pushes of one 8 KB change each, for a home that takes none of them back (the
    member itself, which never acks the hand-off), used to be held whole, on disk and in
    memory, whatever their size (a hint per change up to ``hint_max_per_target``). Past
    ``hint_max_bytes`` (64 KiB here) the oldest go first, counted in ``hints_dropped``."""
    budget = 64 * 1024
    a = await open_peer(tmp_path / "a.db", n=1, max_message_bytes=budget, hint_max_bytes=budget)
    try:
        async with linked_member(a) as h:
            mid = h.me.replica_id
            ring = a.replica._membership.ring()
            key = next(
                k
                for k in (f"k{i}" for i in range(1000))
                if ring.preference_list(partition_of(k, PARTS)) == (mid,)
            )
            p = partition_of(key, PARTS)
            for seq in range(1, 13):
                delta = crdt.ORSet().add(mid, f"{seq:04d}" + "x" * 8000)
                entry = m.Entry(mid, p, seq, key, "orset", delta.to_json())
                entry.seal = h.me.signer.seal([entry])  # type: ignore[union-attr]
                await h.send(m.Push.model_construct(push_id=seq, entries=[entry], hint_for=mid))
            await h.until("acks", lambda _: h.acked() >= set(range(1, 13)))
            status = a.replica.status()
            held = status["hints"][mid]
            assert 0 < held < 12
            assert 7 * 8000 < status["hint_bytes"] <= budget
            assert status["hints_dropped"] == 12 - held
            assert a.node.failed is None
            text, _ = render_metrics(status_snapshot(a))
            assert f"shoal_hint_bytes {float(status['hint_bytes'])}" in text
            assert f"shoal_hints_dropped_total {float(12 - held)}" in text
        assert _hints_on_disk(tmp_path / "a.db") == held  # the disk keeps the same hints
    finally:
        await a.aclose()


def _gapped(origin: str, count: int) -> m.Ctx:
    """A context of ``count`` dots of ``origin`` with a gap between each two."""
    return m.Ctx.model_construct(vv={}, cloud=[(origin, 2 * i + 2) for i in range(count)])


def _many_origins(count: int) -> m.Ctx:
    return m.Ctx.model_construct(vv={f"o{i}": 1 for i in range(count)}, cloud=[])


def _summary_bytes(db: Path, peer: str) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT length(summary) FROM peers WHERE replica_id = ?", (peer,)
        ).fetchone()
    return int(row[0] or 0)


async def test_a_summary_of_dots_held_nowhere_here_is_not_kept(tmp_path: Path) -> None:
    """Summaries of three partitions, each 1.1 to 1.8 MB of dots of made-up origins (gapped,
    so none folds into a version vector) or of 100,000 made-up origins, used to be kept
    whole: 55 MB of Python objects in all, written to the peer's record on disk again on
    every later summary of any partition. A peer's reported summary is kept only for what
    this replica holds (the dots compaction, hand-over and propagation ask the peer about),
    so it holds a few KB whatever it was sent; what the member did report of ours still
    counts (its lag is 0)."""
    a = await open_peer(tmp_path / "a.db")
    try:
        await a.gcounter("visits").increment(2)
        me = a.replica_id
        p_visits = partition_of("visits", PARTS)
        async with linked_member(a) as h:
            mid = h.me.replica_id
            ours = m.Ctx.model_construct(vv={me: a.replica.summary(p_visits).vv[me]}, cloud=[])
            await h.send(m.Summary.model_construct(parts={p_visits: ours}, reply=True))
            await h.until("a summary back", lambda _: h.summaries() >= 1)
            sent = [
                {0: _gapped("made-up", 100_000)},
                {1: _many_origins(100_000)},
                {2: _gapped("other", 100_000), p_visits: ours},
                {p_visits: ours},  # (a small one last: the link holds no big one at the end)
            ]
            texts = [m.encode(m.Summary.model_construct(parts=parts, reply=True)) for parts in sent]
            size = sum(map(len, texts))
            payloads = [h.session.seal(text) for text in texts]
            del sent, texts
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for i, payload in enumerate(payloads):
                    await h.ws.send(payload)
                    await h.until("a summary back", lambda _, n=i + 2: h.summaries() >= n)
                held = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            del payloads
            assert size > 3_000_000
            assert held < 2_000_000, f"{held} bytes held for {size} bytes of summaries"
            assert a.replica.status()["lag"] == {mid: 0}
        assert _summary_bytes(tmp_path / "a.db", mid) < 10_000
        assert a.node.failed is None
    finally:
        await a.aclose()


async def test_made_up_members_are_learned_only_up_to_max_members(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three summaries listing 4,000 made-up members each (no partition) used to leave
    12,001 peers known here (each a home on the ring, each persisted, each gossiped on).
    Past MAX_MEMBERS known, no more are learned: counted, with one alarm naming the sender;
    the link stays up and a peer that links is learned all the same."""
    a = await open_peer(tmp_path / "a.db")
    try:
        async with linked_member(a) as h:
            mid = h.me.replica_id
            for batch in range(3):
                listed = [
                    m.PeerInfo.model_construct(
                        replica_id=f"made-up-{batch}-{i}", address=None, site=None, home=True
                    )
                    for i in range(4_000)
                ]
                await h.send(m.Summary.model_construct(parts={}, known_peers=listed, reply=False))
            # (Each list is answered with ours, which it lacks; the answer to this one, of
            # partition 0, comes once the lists before it were handled.)
            probe = {0: m.Ctx.model_construct(vv={}, cloud=[])}
            await h.send(m.Summary.model_construct(parts=probe, reply=True))
            await h.until(
                "a summary of partition 0 back",
                lambda got: any(isinstance(x, m.Summary) and 0 in x.parts for x in got),
            )
            status = a.replica.status()
            assert len(status["peers_known"]) == MAX_MEMBERS
            assert status["members_not_learned"] == 12_001 - MAX_MEMBERS
            assert mid in status["peers_known"] and a.node.failed is None
            alarms = [r for r in caplog.records if "were not learned" in r.getMessage()]
            assert len(alarms) == 1 and mid in alarms[0].getMessage()
            b = await open_peer(tmp_path / "b.db", peers=[a.url])
            try:
                await eventually(
                    lambda: b.replica_id in a.replica.status()["peers_known"], "b known to a"
                )
            finally:
                await b.aclose()
    finally:
        await a.aclose()


async def _transfer_of_nothing(h: Member, summary: m.Ctx) -> None:
    """Ask ``h``'s peer for its summary of partition 5 (a state transfer answers one), then
    send it the last chunk of a transfer of partition 5 with no object and ``summary``, and
    read until it is acknowledged."""
    await h.send(m.Summary.model_construct(parts={5: m.Ctx()}, reply=True))
    await h.until("a summary back", lambda _: h.summaries() >= 1)
    chunk = m.SnapshotChunk.model_construct(
        batch_id=1, partition=5, objects=[], summary=summary, last=True
    )
    await h.send(chunk)
    await h.until("the chunk acked", lambda _: 1 in h.acked())


async def _summary_sent_of_5(h: Member) -> m.Ctx:
    """What ``h``'s peer now sends as its summary of partition 5."""
    seen = h.summaries()
    await h.send(m.Summary.model_construct(parts={5: m.Ctx()}, reply=True))
    await h.until("a summary back", lambda _: h.summaries() > seen)
    last = [x for x in h.received if isinstance(x, m.Summary) and 5 in x.parts][-1]
    return last.parts[5]


async def test_a_state_transfer_nobody_asked_for_is_refused(tmp_path: Path) -> None:
    """A ``SnapshotChunk`` of a partition this replica sent the member no summary of (a
    transfer answers one) used to be merged: its summary of 100,000 made-up dots (1.8 MB)
    was held, persisted, sent in every summary of the partition and passed on in every
    state transfer from here. It is refused: the link closes, saying why, and nothing of it
    is taken."""
    a = await open_peer(tmp_path / "a.db")
    try:
        async with linked_member(a) as h:
            chunk = m.SnapshotChunk.model_construct(
                batch_id=1, partition=5, objects=[], summary=_gapped("made-up", 100_000), last=True
            )
            await h.send(chunk)
            with pytest.raises(ConnectionClosed):
                await h.until("the link closed", lambda _: False)
            assert h.ws.close_code == 1002
            assert "snapshot of partition 5 not asked for" in (h.ws.close_reason or "")
            assert 1 not in h.acked()
        assert a.replica.summary(5).is_bottom()
        assert a.node.failed is None
    finally:
        await a.aclose()


async def test_a_state_transfer_summary_of_dots_never_sent_is_not_taken(tmp_path: Path) -> None:
    """A state transfer asked for (the member got our summary of partition 5) whose closing
    summary lists 100,000 gapped dots of a made-up origin (1.8 MB), and no object, was
    merged whole into this replica's summary of the partition. Of its cloud dots, only the
    lowest ``REPORTED_CLOUD_MAX`` are taken (while ours holds fewer), and that is all this
    replica then sends of it."""
    a = await open_peer(tmp_path / "a.db")
    try:
        async with linked_member(a) as h:
            await _transfer_of_nothing(h, _gapped("made-up", 100_000))
            taken = a.replica.summary(5)
            assert taken.vv == {} and len(taken.cloud) == REPORTED_CLOUD_MAX
            assert taken.cloud == {("made-up", 2 * i + 2) for i in range(REPORTED_CLOUD_MAX)}
            sent = await _summary_sent_of_5(h)
            assert len(sent.cloud) == REPORTED_CLOUD_MAX and not sent.vv
            assert a.node.failed is None
    finally:
        await a.aclose()


async def test_a_state_transfer_summary_of_made_up_origins_adds_a_bounded_few(
    tmp_path: Path,
) -> None:
    """A state transfer asked for whose closing summary names 100,000 made-up origins (1.4
    MB) was merged whole: each origin held, persisted and sent on. Only
    ``TAKEN_ORIGINS_MAX`` origins new to our summary are taken from one transfer (the
    first by id); the origins we have are taken as they come (a member can still claim
    log positions of them it does not have)."""
    a = await open_peer(tmp_path / "a.db")
    try:
        await a.gcounter("k").increment()
        me = a.replica_id
        p = partition_of("k", PARTS)
        async with linked_member(a) as h:
            await h.send(m.Summary.model_construct(parts={p: m.Ctx()}, reply=True))
            await h.until("a summary back", lambda _: h.summaries() >= 1)
            made_up = _many_origins(100_000).vv
            claim = m.Ctx.model_construct(vv={me: 1, **made_up}, cloud=[])
            for batch_id in (1, 2):  # a second transfer adds as many again, no more
                await h.send(m.Summary.model_construct(parts={p: m.Ctx()}, reply=True))
                await h.until("a summary back", lambda _, n=batch_id: h.summaries() >= n)
                chunk = m.SnapshotChunk.model_construct(
                    batch_id=batch_id, partition=p, objects=[], summary=claim, last=True
                )
                await h.send(chunk)
                await h.until("the chunk acked", lambda _, i=batch_id: i in h.acked())
                taken = a.replica.summary(p)
                first = sorted(made_up)[: batch_id * TAKEN_ORIGINS_MAX]
                assert set(taken.vv) == {me, *first} and not taken.cloud
            assert a.node.failed is None
    finally:
        await a.aclose()


async def test_summaries_asking_for_everything_get_one_window_at_a_time(tmp_path: Path) -> None:
    """What held: a member that reports holding nothing, again and again, gets one round at
    a time, at most ``ae_max_inflight`` messages of it unacknowledged: summaries that come
    while the round is on plan nothing more, and a member that never acknowledges is sent
    no more than that window (until ``write_timeout`` abandons the round: long here, so that
    no timing matters)."""
    a = await open_peer(
        tmp_path / "a.db", ae_batch=1, anti_entropy_interval=None, write_timeout=600.0
    )
    try:
        for i in range(40):
            await a.gcounter(f"k{i}").increment()
        async with linked_member(a) as h:
            nothing = m.Ctx.model_construct(vv={}, cloud=[])
            ask = m.Summary.model_construct(parts=dict.fromkeys(range(PARTS), nothing))
            probes = 0

            async def probe() -> list[m.Deltas]:
                """What it was sent once every message before this one was handled (a
                summary's answer comes after what the messages before it led to)."""
                nonlocal probes
                probes += 1
                await h.send(m.Summary.model_construct(parts={}, reply=True))
                await h.until("a summary back", lambda _, n=probes: h.summaries() >= n)
                return [x for x in h.received if isinstance(x, m.Deltas)]

            for _ in range(10):
                await h.send(ask)
                assert len(await probe()) == 4  # ae_max_inflight, never more
            acked: set[int] = set()
            for _ in range(40):
                batches = await probe()
                fresh = [b.batch_id for b in batches if b.batch_id not in acked]
                if not fresh:
                    break
                acked.update(fresh)
                await h.send(m.Ack(ids=fresh))
            entries = [e for b in await probe() for e in b.entries]
            # The one round, not one per summary: each change once.
            assert sorted(e.key for e in entries) == sorted(f"k{i}" for i in range(40))
    finally:
        await a.aclose()
