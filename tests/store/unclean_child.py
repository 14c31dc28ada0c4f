"""Child process of the unclean-end tests: writes, then waits to be killed.

``python unclean_child.py SYNCHRONOUS PATH [fresh]`` opens a Store on ``PATH`` at that
``synchronous`` level, writes the counter ``k`` (3), checkpoints the WAL into the database
file (as the store's own checkpoints do, now and then: up to here is on disk whatever
happens), writes ``k`` again (4: in the WAL only), prints ``WROTE <replica id>`` and waits
for a line on stdin (the test kills it first). ``fresh``: no checkpoint by the test (a run
killed before the store's first one).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys

from store import Batch, Store
from tests.store.helpers import counter_row


async def main(synchronous: str, path: str, fresh: bool) -> None:
    async with await Store.open(path, synchronous=synchronous) as store:
        await store.apply(Batch(objects=(counter_row("k", 3),)))
        if not fresh:
            raw = sqlite3.connect(path)
            try:
                raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                raw.close()
        await store.apply(Batch(objects=(counter_row("k", 4),)))
        print(f"WROTE {store.replica_id}", flush=True)
        await asyncio.to_thread(sys.stdin.readline)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:] == ["fresh"]))
