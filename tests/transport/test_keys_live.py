"""``Peer.keys()`` leaves deleted keys out, over a real store (SQLite and PostgreSQL).

The store lists the keys of live objects (schema version 4); the engine's unsaved view says,
per key it changed since its checkpoint, whether the key is live here. So a key deleted
here or on another peer is not listed even while the store still holds it live, and a key
written again after its delete is listed even while the store still holds it deleted
(read-your-writes both ways); and both stay so after a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from sync.transport.peer import Peer
from tests.store.conftest import fresh_pg_database, pg_url_or_skip
from tests.transport.conftest import WAIT, eventually, linked, local_value, open_peer

__all__: list[str] = []

NewDatabase = Callable[[str], Awaitable[str]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[NewDatabase]:
    """Makes a fresh database named ``name`` on the parametrized backend; returns its URL."""
    drops: list[Callable[[], Awaitable[None]]] = []

    async def make(name: str) -> str:
        if request.param == "sqlite":
            return str(tmp_path / f"{name}.db")
        url, drop = await fresh_pg_database(pg_url_or_skip())
        drops.append(drop)
        return url

    try:
        yield make
    finally:
        for drop in drops:
            await drop()


async def listed(peer: Peer, prefix: str | None = None, page: int = 500) -> list[str]:
    return [k async for k in peer.keys(prefix, page=page)]


async def test_a_delete_leaves_the_listing_at_once_and_after_a_restart(
    new_db: NewDatabase,
) -> None:
    url = await new_db("a")
    peer = await open_peer(url, listen=None)
    try:
        for key in ("a", "b", "c", "d"):
            await peer.orset(key).add("x")
    finally:
        await peer.aclose()  # a clean close checkpoints every object: all live in the store
    peer = await open_peer(url, listen=None)
    try:
        await peer.delete("b")  # durable in the log; the store's row of b is still live
        assert await peer.store.keys() == ["a", "b", "c", "d"]
        assert await listed(peer) == ["a", "c", "d"]
        pending = peer.orset("c").delete()  # not awaited: deleted before the listing all the same
        assert await listed(peer) == ["a", "d"]
        assert await listed(peer, page=1) == ["a", "d"]  # pages of deleted keys only, too
        await pending
    finally:
        await peer.aclose()  # checkpoints b and c as deleted
    peer = await open_peer(url, listen=None)
    try:
        assert await peer.store.keys() == ["a", "d"]
        assert await listed(peer) == ["a", "d"]
        # Written again: listed at once, while the store still holds it deleted.
        pending = peer.orset("b").add("y")
        assert await listed(peer) == ["a", "b", "d"]
        assert await peer.store.keys() == ["a", "d"]
        await pending
    finally:
        await peer.aclose()
    peer = await open_peer(url, listen=None)
    try:
        assert await listed(peer) == ["a", "b", "d"]
        assert await peer.orset("b").value() == frozenset({"y"})
    finally:
        await peer.aclose()


async def test_deleted_objects_evicted_from_a_small_cache_stay_unlisted(
    new_db: NewDatabase,
) -> None:
    """Past the cache budget, deleted objects leave memory with a checkpoint that says so."""
    url = await new_db("c")
    peer = await open_peer(url, listen=None, cache_bytes=16 * 1024)
    keys = [f"k{i:03d}" for i in range(120)]
    try:
        for key in keys:
            await peer.gcounter(key).increment(2)
        for key in keys[::2]:
            await peer.delete(key)
        assert peer.replica.status()["objects"] < len(keys)  # evictions happened
        assert await listed(peer, "k", page=7) == keys[1::2]
        assert await listed(peer, "k0") == keys[1:100:2]
    finally:
        await peer.aclose()
    peer = await open_peer(url, listen=None, cache_bytes=16 * 1024)
    try:
        assert await listed(peer, page=9) == keys[1::2]
        assert await peer.gcounter(keys[0]).value() == 0
    finally:
        await peer.aclose()


async def test_a_delete_on_one_peer_leaves_the_listing_of_the_other(
    new_db: NewDatabase,
) -> None:
    a_url, b_url = await new_db("a"), await new_db("b")
    a = await open_peer(a_url, n=2)
    b = await open_peer(b_url, n=2, listen=None, peers=[a.url])
    try:
        await linked(a, b)
        for key in ("cart", "notes", "title"):
            await a.lww(key).set(key.upper(), w=2, timeout=WAIT)
        assert await listed(b) == ["cart", "notes", "title"]
        await b.aclose()
        b = await open_peer(b_url, n=2, listen=None, peers=[a.url])  # all live in b's store
        await linked(a, b)
        await a.delete("notes", w=2, timeout=WAIT)  # acked by b: applied there
        assert await listed(b) == ["cart", "title"]
        assert await listed(a) == ["cart", "title"]
    finally:
        await b.aclose()
        await a.aclose()
    b = await open_peer(b_url, n=2, listen=None)
    try:
        assert await listed(b) == ["cart", "title"]
        assert await b.store.keys() == ["cart", "title"]
        assert local_value(b, "notes") is None
    finally:
        await b.aclose()


async def test_a_replicated_delete_reaches_the_listing_by_anti_entropy(
    tmp_path: Path,
) -> None:
    """Not only through the write's own push: a peer offline during the delete learns it
    from anti-entropy, and then leaves the key out."""
    a = await open_peer(tmp_path / "a.db", n=2)
    b = await open_peer(tmp_path / "b.db", n=2, listen=None, peers=[a.url])
    b_id = b.replica_id
    try:
        await linked(a, b)
        await a.orset("cart").add("milk", w=2, timeout=WAIT)
        await b.aclose()
        await eventually(lambda: b_id not in a.transport.links, "a to see b go")
        await a.delete("cart")
        b = await open_peer(tmp_path / "b.db", n=2, listen=None, peers=[a.url])
        assert await listed(b) == ["cart"]  # not heard of the delete yet
        await eventually(lambda: local_value(b, "cart") == frozenset(), "b to learn the delete")
        assert await listed(b) == []
    finally:
        await b.aclose()
        await a.aclose()


async def test_keys_is_consistent_with_the_replica_while_writes_race(tmp_path: Path) -> None:
    """Deletes and re-adds interleaved with listings: each listing equals the live keys the
    engine held when it was taken (every write before it was awaited)."""
    peer = await open_peer(tmp_path / "r.db", listen=None, cache_bytes=8 * 1024)
    try:
        live: set[str] = set()
        for step in range(60):  # a fixed walk: key step % 7, added to or deleted
            key = f"k{step % 7}"
            if key in live and step % 3 == 0:
                await peer.delete(key)
                live.discard(key)
            else:
                await peer.orset(key).add(step)
                live.add(key)
            assert await listed(peer, page=2) == sorted(live), step
    finally:
        await peer.aclose()
