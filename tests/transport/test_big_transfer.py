"""Issue 11: state transfers of any size, streamed by the sender in bounded memory.

Two peers on 127.0.0.1 over real websockets, each with its own SQLite file. The old peer's
database is built through the store's batch API in its compacted form (objects and
summaries, no log), so the new peer can only get it by a state transfer:

* one ORMap of 100k entries, a state several times bigger than a message: it used to be
  one snapshot message over ``max_message_bytes``, refused by the receiver's transport at
  every attempt, so the new peer never held it; it now travels as the pieces its type
  splits it into, and the new peer's file ends with the very same state;
* many small objects: the sender reads them from its store a page at a time, and never
  holds more than one page of them for the transfer (and the last chunk of each partition
  whose summary waits for its acks, at most the window), nor more objects than its cache.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import crdt
from store import Batch, ObjectRow, Store
from sync.config import ReplicaConfig
from sync.replica.local_data import OBJECT_OVERHEAD
from sync.ring import partition_of
from tests.transport.conftest import eventually, open_peer

ENTRIES = 100_000
MAX_MESSAGE = 1024 * 1024  # 1 MiB: the map's text (about 8 MB) is many messages
PARTITIONS = 64  # the engine's default


async def _build_map(path: Path) -> str:
    """A compacted database holding one ORMap of ``ENTRIES`` registers written by its own
    replica; the canonical text of the map."""
    async with await Store.open(path, synchronous="NORMAL") as st:
        origin = st.replica_id
        obj = crdt.ORMap()
        for i in range(ENTRIES):
            obj.update(origin, f"field {i:06d}", "lww", lambda r, i=i: r.set(origin, i, now_ms=i))
        p = partition_of("big", PARTITIONS)
        summary = {"vv": {origin: ENTRIES}, "cloud": []}
        await st.apply(Batch(objects=(ObjectRow("big", "ormap", obj.to_dict()),)))
        await st.apply(Batch(summaries=((p, summary),)))
        return obj.to_json()


def _stored(path: Path, key: str, kind: str) -> str | None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT state FROM objects WHERE key = ? AND kind = ?", (key, kind)
        ).fetchone()
        return None if row is None else str(row[0])
    finally:
        conn.close()


async def test_a_compacted_ormap_of_100k_entries_bootstraps_a_new_peer(tmp_path: Path) -> None:
    text = await _build_map(tmp_path / "a.db")
    assert len(text) > 4 * MAX_MESSAGE  # several messages big, even at the 4 MiB default
    # Both peers share this process: a round may wait on the other's splitting and merging
    # of the map for longer than the fast timers' 2 s ack timeout.
    opts: dict[str, Any] = {"n": 2, "max_message_bytes": MAX_MESSAGE, "write_timeout": 30.0}
    a = await open_peer(tmp_path / "a.db", **opts)
    b = None
    try:
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], **opts)
        p = partition_of("big", PARTITIONS)
        want = a.replica.summary(p)

        def b_durable() -> bool:
            return b is not None and b.replica.summary(p) == want

        await eventually(b_durable, "the map's state transfer", timeout=60)
        assert await b.ormap("big").value() == await a.ormap("big").value()
        assert a.node.counters.remote_errors == 0 and b.node.counters.remote_errors == 0
    finally:
        if b is not None:
            await b.aclose()
        await a.aclose()
    # B's file holds the same state, in its canonical text.
    assert _stored(tmp_path / "b.db", "big", "ormap") == text


N = 5_000
CHUNK = 50  # objects per snapshot chunk, and per page read for a transfer
CACHE = 64 * 1024  # about 128 small objects
MAX_RESIDENT = 2 * CACHE // OBJECT_OVERHEAD


def _key(i: int) -> str:
    return f"key:{i:05d}"


async def _build_counters(path: Path) -> None:
    """``N`` gcounters, key:i holding i + 1, compacted."""
    async with await Store.open(path, synchronous="NORMAL") as st:
        origin = st.replica_id
        seqs: dict[int, int] = {}
        rows = []
        for i in range(N):
            p = partition_of(_key(i), PARTITIONS)
            seqs[p] = seqs.get(p, 0) + 1
            rows.append(
                ObjectRow(_key(i), "gcounter", crdt.GCounter().increment(origin, i + 1).to_dict())
            )
        summaries = tuple((p, {"vv": {origin: n}, "cloud": []}) for p, n in sorted(seqs.items()))
        await st.apply(Batch(objects=tuple(rows), summaries=summaries))


async def test_the_sender_streams_a_bootstrap_in_pages_in_bounded_memory(
    tmp_path: Path,
) -> None:
    await _build_counters(tmp_path / "a.db")
    opts: dict[str, Any] = {"n": 2, "snapshot_chunk": CHUNK, "cache_bytes": CACHE}
    a = await open_peer(tmp_path / "a.db", **opts)
    b = None
    held: list[tuple[int, int]] = []  # after each page A read: (buffered, in its cache)
    real_page = a.replica.snapshot_page

    def page(*args: Any, **kw: Any) -> Any:
        out = real_page(*args, **kw)
        status = a.replica.status()
        held.append((status["transfer_buffered"], status["objects"]))
        return out

    a.replica.snapshot_page = page  # type: ignore[method-assign]
    try:
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url], **opts)
        want = [a.replica.summary(p) for p in range(PARTITIONS)]

        def b_durable() -> bool:
            return b is not None and [b.replica.summary(p) for p in range(PARTITIONS)] == want

        await eventually(b_durable, "the state transfer", timeout=60)
        for i in (0, 1, N // 2, N - 1):
            assert await b.gcounter(_key(i)).value() == i + 1
        counters = a.node.counters
    finally:
        if b is not None:
            await b.aclose()
        await a.aclose()
    # Every object was read once, in pages of at most CHUNK objects (one per partition at
    # least), and A never held more for the transfer than one page and the last chunk of each
    # partition whose summary waited for its acks (each has a message in flight: at most the
    # window), nor overfilled its cache.
    assert counters.objects_streamed == N
    assert counters.pages_read >= N // CHUNK
    assert len(held) == counters.pages_read
    window = ReplicaConfig().ae_max_inflight
    assert max(buffered for buffered, _ in held) <= CHUNK * (1 + window)
    assert max(objects for _, objects in held) <= MAX_RESIDENT
