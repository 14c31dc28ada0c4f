"""What the store remembers of keys' partitions. A peer hands the store its engine's own
memo of partitions (``partition_of``): the store keeps no second cache around it (an LRU of
64k keys there held about 7 MB, a tenth of a new peer's peak while it took 100k keys). A
store left to the default function keeps a small cache of its own, bounded."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from store import Batch, Store, default_partition_of
from store.store import _PARTITION_CACHE
from tests.store.helpers import counter_row

KEYS = 20_000


async def _retained_after_writing(store: Store) -> int:
    """Python memory still held once KEYS distinct keys were written (1,000 a batch), after
    a first batch (whatever the store sets up once is not counted)."""
    await store.apply(Batch(objects=tuple(counter_row(f"warm-{i}", 1) for i in range(1000))))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for low in range(0, KEYS, 1000):
            rows = tuple(counter_row(f"key-{i}", 1) for i in range(low, low + 1000))
            await store.apply(Batch(objects=rows))
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


async def test_a_given_partition_function_is_used_without_a_cache_around_it(
    tmp_path: Path,
) -> None:
    calls: list[str] = []

    def partition_of(key: str) -> int:
        if key == "key-7":  # (a list of every key would hold them all itself)
            calls.append(key)
        return default_partition_of(key)

    async with await Store.open(str(tmp_path / "g.db"), partition_of=partition_of) as store:
        retained = await _retained_after_writing(store)
        calls.clear()
        await store.apply(Batch(objects=(counter_row("key-7", 2),)))
    # Asked again for a key it has seen: nothing of the key was kept.
    assert "key-7" in calls
    # 20,000 keys in an LRU cache held about 2.3 MB; nothing grows with the keys now.
    assert retained < 1_000_000, retained


async def test_the_default_partition_cache_is_small_and_bounded(tmp_path: Path) -> None:
    assert _PARTITION_CACHE <= 4096
    async with await Store.open(str(tmp_path / "d.db")) as store:
        retained = await _retained_after_writing(store)
    assert retained < 1_000_000 + _PARTITION_CACHE * 200, retained
