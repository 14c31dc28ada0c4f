"""Schema version 6: each known peer is stored with its newest member card (``peers.card``,
``sync.member_cards``), which its replica holds again at the next start; a version-5
database gets the column, its peers kept (with no card)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import insert, make_url, update
from sqlalchemy.ext.asyncio import create_async_engine

from store import SCHEMA_VERSION, Batch, CorruptBlob, InvalidInput, PeerRow
from store.schema import create_live_index, peers
from sync.effects import PeerRecord
from sync.member_cards import Cards, card_text
from sync.signing import Signer
from sync.transport.storage import loaded_from_store
from tests.store.conftest import Backend
from tests.store.helpers import old_layout, raw_tables, summary

# The version-5 layout: today's tables without the peers' cards.
v5 = old_layout({"peers": {"card"}})


def _driver_url(backend: Backend) -> Any:
    url = make_url(backend.url)
    return url.set(drivername="sqlite+aiosqlite" if backend.name == "sqlite" else url.drivername)


def _card(signer: Signer, address: str | None = "ws://b.example:7000") -> str:
    """``signer``'s card as its engine signs it, as a peer record keeps it."""
    cards = Cards(signer.replica_id, signer, "east", True, 1_700_000_000_000)
    cards.announce(address)
    return card_text(cards.own())


async def _make_v5(backend: Backend) -> None:
    """A version-5 database that knows two peers, one of them forgotten."""
    engine = create_async_engine(_driver_url(backend))
    me = Signer.generate()
    try:
        async with engine.begin() as conn:
            await conn.run_sync(v5.create_all)
            await conn.run_sync(create_live_index)
            t = v5.tables
            await conn.execute(
                insert(t["meta"]),
                [
                    {"name": "schema_version", "value": "5"},
                    {"name": "partitions", "value": "64"},
                    {"name": "replica_id", "value": me.replica_id},
                    {"name": "signing_key", "value": me.private_bytes().hex()},
                ],
            )
            await conn.execute(
                insert(t["peers"]),
                [
                    {
                        "replica_id": "B",
                        "address": "ws://b.example:7000",
                        "site": "east",
                        "summary": json.dumps({"3": summary({"B": 2})}),
                        "last_seen_ms": 1500,
                        "forgotten": False,
                    },
                    {
                        "replica_id": "C",
                        "address": None,
                        "site": None,
                        "summary": None,
                        "last_seen_ms": 0,
                        "forgotten": True,
                    },
                ],
            )
    finally:
        await engine.dispose()


async def test_a_version_5_database_gets_the_card_column_and_keeps_its_peers(
    backend: Backend,
) -> None:
    await _make_v5(backend)
    async with await backend.open() as store:
        assert store.migrated_from == 5 and SCHEMA_VERSION == 8
        loaded = await store.load()
        assert loaded.peers == {
            "B": PeerRow("B", "ws://b.example:7000", "east", {3: summary({"B": 2})}, 1.5),
            "C": PeerRow("C", forgotten=True),
        }
        b = Signer.generate()
        card = _card(b)
        await store.apply(Batch(peers=(PeerRow(b.replica_id, card=card),)))
        assert (await store.load()).peers[b.replica_id].card == card
    async with await backend.open() as again:  # migrated once
        assert again.migrated_from is None
        assert (await again.load()).peers[b.replica_id].card == card


async def test_an_engine_record_s_card_is_stored_and_read_back(backend: Backend) -> None:
    """The engine's ``PeerRecord`` (what ``Persist.peers`` holds) through the store and back
    (what the node loads), its card's text as it was."""
    b = Signer.generate()
    card = _card(b)
    record = PeerRecord(b.replica_id, "ws://b.example:7000", "east", None, 2.0, False, card)
    unsigned = PeerRecord("D", "ws://d.example:7000")
    async with await backend.open() as store:
        await store.apply(Batch(peers=(record, unsigned)))  # type: ignore[arg-type]
        loaded = loaded_from_store(await store.load())
    assert loaded.peers == {b.replica_id: record, "D": unsigned}
    # A card that says it listens nowhere replaces the one before.
    nowhere = _card(b, None)
    async with await backend.open() as store:
        await store.apply(Batch(peers=(PeerRow(b.replica_id, card=nowhere),)))
        assert (await store.load()).peers[b.replica_id].card == nowhere


@pytest.mark.parametrize(
    ("card", "detail"),
    [
        (b"{}", "JSON text of a card"),
        ("{not json", "is not JSON"),
        ('["a list"]', "not a card of"),
        ('{"replica_id":"X","key":"k","sig":"s","at":1}', "not a card of"),
        ('{"replica_id":"B","sig":"s","at":1}', "no key or signature"),
        ('{"replica_id":"B","key":"k","sig":"s","at":"1"}', "no integer 'at'"),
    ],
)
async def test_a_bad_card_is_refused_and_changes_nothing(
    backend: Backend, card: Any, detail: str
) -> None:
    async with await backend.open() as store:
        await store.apply(Batch(peers=(PeerRow("B", "ws://b.example:7000"),)))
        before = await raw_tables(store)
        bad = Batch(peers=(PeerRow("good"), PeerRow("B", "ws://evil.example:1", card=card)))
        with pytest.raises(InvalidInput, match=f"peers\\[1\\]\\.card .*{detail}"):
            await store.apply(bad)
        assert await raw_tables(store) == before


async def test_a_card_spoilt_in_the_database_names_its_peer(backend: Backend) -> None:
    async with await backend.open() as store:
        b = Signer.generate()
        await store.apply(Batch(peers=(PeerRow(b.replica_id, card=_card(b)),)))
        async with store.engine.begin() as conn:
            await conn.execute(update(peers).values(card='{"replica_id":"B"'))
        with pytest.raises(CorruptBlob) as info:
            await store.load()
    assert info.value.key == b.replica_id and info.value.table == "peers"
