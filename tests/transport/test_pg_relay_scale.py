"""Issue 11: a relay on PostgreSQL holding many keys serves two devices in bounded memory.

A PostgreSQL database of :data:`N` keys of the six kinds (object checkpoints and summaries,
the log compacted: what a relay holds once its writes are everywhere), built through the
store's batch API; a relay opened on it with a small ``cache_bytes``; two devices on SQLite
files dial it and catch up. Every key's value reaches both devices' stores, the relay's engine
never holds more objects than its budget allows (sampled after every load from the store and
every 5 ms during the catch-up), and a write on one device reaches the other through the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import crdt
from store import Batch, ObjectRow, Store
from store import default_partition_of as partition_of
from sync.replica.local_data import OBJECT_OVERHEAD
from sync.transport.peer import Peer
from tests.store.conftest import fresh_pg_database, pg_url_or_skip
from tests.transport.conftest import eventually, open_peer

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(400)]

N = 12_000
PARTITIONS = 16  # 750 keys each: a whole partition is far over the budget
CACHE = 64 * 1024  # about 128 small objects
# The cache is trimmed at each drain; between two drains a round may add what it loaded.
MAX_RESIDENT = 2 * CACHE // OBJECT_OVERHEAD
KINDS = ("lww", "gcounter", "pncounter", "mvregister", "orset", "ormap")
CATCH_UP = 240.0  # seconds allowed for both devices to hold every key (a loaded 2-core box)


def _state(kind: str, origin: str, i: int) -> crdt.CRDT:
    """Key ``i``'s object after one write by ``origin``: each kind with a value of its own."""
    obj = crdt.new(kind)
    if kind == "lww":
        obj.set(origin, f"value {i}", now_ms=1_780_000_000_000 + i)
    elif kind in ("gcounter", "pncounter"):
        obj.increment(origin, 1 + i % 97)
    elif kind == "mvregister":
        obj.set(origin, f"note {i}")
    elif kind == "orset":
        obj.add(origin, f"element {i}")
    else:
        obj.update(origin, f"field {i % 10}", "lww", lambda reg: reg.set(origin, i, now_ms=i + 1))
    return obj


def _key(i: int) -> str:
    return f"{KINDS[i % len(KINDS)]}:{i:06d}"


async def _build(url: str, n: int) -> dict[str, Any]:
    """``n`` keys written once each by the database's own replica, as checkpoints and
    summaries (the compacted form); returns each key's value."""
    values: dict[str, Any] = {}
    async with await Store.open(url, partitions=PARTITIONS) as st:
        origin = st.replica_id
        seqs: dict[int, int] = {}
        for start in range(0, n, 4000):
            rows = []
            touched = set()
            for i in range(start, min(n, start + 4000)):
                key, kind = _key(i), KINDS[i % len(KINDS)]
                obj = _state(kind, origin, i)
                rows.append(ObjectRow(key, kind, obj.to_dict()))
                values[key] = obj.value
                p = partition_of(key, PARTITIONS)
                seqs[p] = seqs.get(p, 0) + 1
                touched.add(p)
            summaries = tuple((p, {"vv": {origin: seqs[p]}, "cloud": []}) for p in sorted(touched))
            await st.apply(Batch(objects=tuple(rows), summaries=summaries))
    return values


async def _stored(path: Path) -> dict[str, Any]:
    """Every object value in the SQLite store at ``path``, by key."""
    out: dict[str, Any] = {}
    async with await Store.open(path, partitions=PARTITIONS) as st:
        for p in range(PARTITIONS):
            async for page in st.snapshot(p):
                for row in page:
                    out[row.key] = crdt.from_dict(row.state).value
    return out


class _Resident:
    """The relay engine's objects in memory, sampled after each load from the store (the
    moment a round holds the most) and every 5 ms in between."""

    def __init__(self, peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.peer = peer
        self.most = 0
        self.most_bytes = 0
        self.samples = 0
        replica = peer.replica
        real = replica.admit

        def admit(*args: Any, **kw: Any) -> None:
            real(*args, **kw)
            self.sample()

        monkeypatch.setattr(replica, "admit", admit)

    def sample(self) -> None:
        status = self.peer.replica.status()
        self.most = max(self.most, int(status["objects"]))
        self.most_bytes = max(self.most_bytes, int(status["cache_bytes"]))
        self.samples += 1

    @contextlib.asynccontextmanager
    async def polling(self) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                self.sample()
                await asyncio.sleep(0.005)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    url, drop = await fresh_pg_database(pg_url_or_skip())
    try:
        yield url
    finally:
        await drop()


async def _count_keys(peer: Peer) -> int:
    return sum([1 async for _ in peer.keys(page=5000)])


async def test_a_relay_on_postgres_serves_two_devices_many_keys_in_bounded_memory(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = await _build(pg_url, N)
    relay = await open_peer(pg_url, relay=True, cache_bytes=CACHE, partitions=PARTITIONS)
    devices: list[Peer] = []
    try:
        assert relay.replica.status()["objects"] == 0  # opening read no object
        resident = _Resident(relay, monkeypatch)
        async with resident.polling():
            for name in ("d1", "d2"):
                devices.append(
                    await open_peer(
                        tmp_path / f"{name}.db", peers=[relay.url], partitions=PARTITIONS
                    )
                )

            async def caught_up() -> bool:
                assert resident.most <= MAX_RESIDENT, (resident.most, MAX_RESIDENT)
                counts = [await _count_keys(d) for d in devices]
                return counts == [N, N]

            await eventually(caught_up, "both devices to hold every key", timeout=CATCH_UP)
        assert resident.samples > 0
        assert resident.most <= MAX_RESIDENT, (resident.most, MAX_RESIDENT)
        assert resident.most_bytes <= 2 * CACHE, (resident.most_bytes, CACHE)

        # A write on one device reaches the other through the relay (they never link).
        d1, d2 = devices
        assert d2.replica_id not in d1.transport.links
        await d1.orset("orset:000004").add("from d1")
        await d2.gcounter("gcounter:000001").increment(1000)

        async def crossed() -> bool:
            got_set = await d2.orset("orset:000004").value()
            got_counter = await d1.gcounter("gcounter:000001").value()
            return (
                got_set == {"element 4", "from d1"}
                and got_counter == written["gcounter:000001"] + 1000
            )

        await eventually(crossed, "each device's write at the other", timeout=60)
        written["orset:000004"] = {"element 4", "from d1"}
        written["gcounter:000001"] += 1000
        assert relay.node.counters.remote_errors == 0
        for d in devices:
            assert d.node.counters.remote_errors == 0
    finally:
        for d in devices:
            await d.aclose()
        await relay.aclose()
    for name in ("d1", "d2"):
        held = await _stored(tmp_path / f"{name}.db")
        assert held.keys() == written.keys(), name
        wrong = [k for k, v in written.items() if held[k] != v]
        assert not wrong, (name, len(wrong), wrong[:5])
