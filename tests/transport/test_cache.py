"""Issue 11: objects on demand, memory bounded by ``cache_bytes``, with a real store.

A store of many keys, built fast through the store's batch API, opened by a Peer with a
small cache: the open reads no object; reads, writes, a merge and a state transfer to a
new peer all give the right values while the objects in memory stay within the budget;
``peer.keys()`` pages the store's keys and the ones not yet stored; a SIGKILL with a dirty
cache loses nothing acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import crdt
import store.ondemand
import store.reads
from store import Batch, ObjectRow, Store
from sync.config import ReplicaConfig
from sync.replica.local_data import OBJECT_OVERHEAD
from sync.ring import partition_of
from tests.transport.conftest import eventually, open_peer

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("cache_child.py")
N = 20_000
CACHE = 64 * 1024  # about 128 small objects
PARTITIONS = ReplicaConfig().partitions
MAX_RESIDENT = 2 * CACHE // OBJECT_OVERHEAD


def _key(i: int) -> str:
    return f"key:{i:06d}"


async def _build(path: Path, n: int = N) -> None:
    """``n`` gcounters, key:i holding i, written through the batch API as a peer's compaction
    leaves its writes: checkpoints, and summaries naming one log dot of the writer ``seed``
    per key, its log gone. (Without the summaries the objects would be changes no log dot
    names, which no engine makes: anti-entropy, comparing log dots, could not tell a peer
    lacks them, and a new peer got them only when its transfer began by a snapshot.)"""
    seqs: dict[int, int] = {}
    async with await Store.open(path) as st:
        for start in range(0, n, 5000):
            keys = [_key(i) for i in range(start, min(n, start + 5000))]
            for key in keys:
                p = partition_of(key, PARTITIONS)
                seqs[p] = seqs.get(p, 0) + 1
            rows = tuple(
                ObjectRow(key, "gcounter", crdt.GCounter().increment("seed", i + 1).to_dict())
                for i, key in enumerate(keys, start)
            )
            summaries = tuple((p, {"vv": {"seed": seq}, "cloud": []}) for p, seq in seqs.items())
            await st.apply(Batch(objects=rows, summaries=summaries))


class _Decoded:
    """Counts the object rows the store decodes (every read of an object goes through it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = store.reads._object

        def counting(row: Any) -> Any:
            self.count += 1
            return real(row)

        monkeypatch.setattr(store.reads, "_object", counting)
        monkeypatch.setattr(store.ondemand, "_object", counting)


async def _eventually_or_report(check: Any, what: str, timeout: float, *peers: Any) -> None:
    """``eventually``, failing with what each peer's engine says (a stall names its stage)."""
    try:
        await eventually(check, what, timeout=timeout)
    except pytest.fail.Exception as exc:
        states = [
            {k: v for k, v in p.replica.status().items() if k not in ("objects_by_kind",)}
            for p in peers
        ]
        pytest.fail(f"{exc}; engines: {states!r}; nodes: {[p.node.counters for p in peers]!r}")


def _resident(peer: Any) -> int:
    status = peer.replica.status()
    assert status["cache_bytes"] <= 2 * CACHE
    return int(status["objects"])


async def test_a_big_store_opens_without_reading_its_objects_and_serves_them_on_demand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _build(tmp_path / "a.db")
    decoded = _Decoded(monkeypatch)
    a = await open_peer(tmp_path / "a.db", n=2, cache_bytes=CACHE)
    b = None
    try:
        assert decoded.count == 0, "opening read objects"
        assert _resident(a) == 0
        rng = random.Random(11)
        sample = rng.sample(range(N), 300)
        for i in sample:  # reads load what they need, one batch per engine round
            assert await a.gcounter(_key(i)).value() == i + 1
        assert 0 < decoded.count <= 2 * len(sample)
        await asyncio.gather(*(a.gcounter(_key(i)).increment(1000) for i in sample))
        await asyncio.gather(*(a.orset(f"new:{i}").add(i) for i in range(300)))
        assert _resident(a) <= MAX_RESIDENT
        for i in sample[:50]:
            assert await a.gcounter(_key(i)).value() == i + 1001
        assert a.node.counters.loads > 0

        # A new peer: a state transfer of every partition, under the same small cache.
        b = await open_peer(tmp_path / "b.db", listen=None, n=2, cache_bytes=CACHE, peers=[a.url])
        check = rng.sample(range(N), 40)

        async def b_has_all() -> bool:
            values = [await b.gcounter(_key(i)).value() for i in check]  # type: ignore[union-attr]
            return values == [i + 1 + (1000 if i in sample else 0) for i in check]

        await _eventually_or_report(b_has_all, "the state transfer", 60, a, b)
        assert _resident(a) <= MAX_RESIDENT and _resident(b) <= MAX_RESIDENT
        # Merge: both write the same keys, then both see both writes.
        both = sample[:20]
        await asyncio.gather(*(b.gcounter(_key(i)).increment(5) for i in both))
        await asyncio.gather(*(a.gcounter(_key(i)).increment(7) for i in both))

        async def merged() -> bool:
            for peer in (a, b):
                for i in both:
                    if await peer.gcounter(_key(i)).value() != i + 1013:  # type: ignore[union-attr]
                        return False
            return True

        await _eventually_or_report(merged, "both writes everywhere", 40, a, b)
        assert a.node.counters.remote_errors == 0 and b.node.counters.remote_errors == 0
    finally:
        if b is not None:
            await b.aclose()
        await a.aclose()
    # A clean close folds the log: the next open folds nothing and reads no object.
    decoded.count = 0
    async with await Store.open(tmp_path / "a.db") as st:
        assert await st.fold_log() == 0
        assert decoded.count == 0
        row = await st.get_object(_key(sample[0]), "gcounter")
        assert row is not None
        assert crdt.from_dict(row.state).value == sample[0] + 1001 + (
            12 if sample[0] in both else 0
        )


async def test_keys_pages_the_store_and_the_writes_not_stored_yet(tmp_path: Path) -> None:
    await _build(tmp_path / "k.db", 2000)
    peer = await open_peer(tmp_path / "k.db", listen=None, cache_bytes=CACHE)
    try:
        # Not awaited: queued now, listed by keys() all the same (read-your-writes).
        pending = [peer.gcounter(k).increment() for k in ("key:0001zz", "key:0001a", "other")]
        got = [k async for k in peer.keys(prefix="key:0001", page=7)]
        assert got == sorted([_key(i) for i in range(100, 200)] + ["key:0001a", "key:0001zz"])
        assert [k async for k in peer.keys(prefix="oth")] == ["other"]
        everything = [k async for k in peer.keys(page=333)]
        assert len(everything) == 2003 and everything == sorted(everything)
        assert [k async for k in peer.keys(prefix="nothing")] == []
        await asyncio.gather(*pending)
        with pytest.raises(TypeError):
            [k async for k in peer.keys(prefix=3)]  # type: ignore[arg-type]
    finally:
        await peer.aclose()


async def test_sigkill_with_a_dirty_cache_loses_nothing_acknowledged(tmp_path: Path) -> None:
    keys = 3000
    path = tmp_path / "c.db"
    await _build(path, keys)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), "100000", str(keys)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    acked: dict[str, int] = {}
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        assert line == "READY\n", line + (proc.stderr.read() if proc.stderr else "")
        for _ in range(600):  # enough writes to evict dirty objects many times
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
            assert line.startswith("ACK "), line
            key = line.split()[1]
            acked[key] = acked.get(key, 0) + 1
        last = key
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    peer = await open_peer(path, listen=None, cache_bytes=CACHE)
    try:
        for k, n in sorted(acked.items()):
            base = int(k.split(":")[1]) + 1
            value = await peer.gcounter(k).value()
            # At most one write was in flight (each is awaited): it may or may not be there.
            assert value == base + n or (value == base + n + 1 and k != last), (k, value)
    finally:
        await peer.aclose()


async def test_a_bad_key_fails_its_caller_not_the_node(tmp_path: Path) -> None:
    peer = await open_peer(tmp_path / "x.db", listen=None, cache_bytes=4096)
    try:
        for i in range(40):  # past the budget: objects are evicted, so inputs load first
            await peer.gcounter(f"k{i}").increment()
        with pytest.raises(TypeError, match="key must be a str"):
            await peer.node.write(123, "gcounter", lambda c: c.increment("x"))  # type: ignore[arg-type]
        assert peer.node.failed is None
        assert await peer.gcounter("k3").value() == 1
    finally:
        await peer.aclose()


async def test_an_object_bigger_than_the_cache_is_not_loaded_again_at_each_write(
    tmp_path: Path,
) -> None:
    """One set grows past the whole budget: it stays in memory while it is written (the
    most recently used object is never evicted), where it was evicted after every write and
    loaded, and saved whole, again at the next one (a write's cost grew with the set)."""
    peer = await open_peer(tmp_path / "big.db", listen=None, cache_bytes=CACHE)
    try:
        cart = peer.orset("cart")
        for i in range(600):  # 600 elements of about 160 bytes: past the 64 KiB budget
            await cart.add(f"{i:04d}:" + "x" * 150)
        loads = peer.node.counters.loads
        for i in range(600, 700):
            await cart.add(f"{i:04d}:" + "x" * 150)
        assert peer.node.counters.loads == loads  # none of the 100 writes loaded it
        assert len(await cart.value()) == 700
    finally:
        await peer.aclose()
    peer = await open_peer(tmp_path / "big.db", listen=None, cache_bytes=CACHE)
    try:
        assert len(await peer.orset("cart").value()) == 700
    finally:
        await peer.aclose()
