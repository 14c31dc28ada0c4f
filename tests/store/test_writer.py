"""The store's single writer: if it ever stops, callers get an error instead of waiting."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from store import Batch, Store, StoreError
from tests.store.helpers import counter_row


async def test_apply_after_the_writer_stopped_raises_instead_of_hanging(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "w.db"))
    try:
        await store.apply(Batch(objects=(counter_row("k", 1),)))
        store._writer.cancel()  # a writer that died (a bug, a cancelled task)
        with contextlib.suppress(asyncio.CancelledError):
            await store._writer
        with pytest.raises(StoreError, match="writer"):
            await asyncio.wait_for(store.apply(Batch(objects=(counter_row("k", 2),))), 5.0)
        row = await store.get_object("k")
        assert row is not None and row.state == counter_row("k", 1).state
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(store.aclose(), 5.0)
