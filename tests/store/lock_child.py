"""Child process of the lock tests: holds a database open until told to let it go.

``python lock_child.py hold URL`` opens a Store on ``URL``, writes the counter ``child``
(3), prints ``HELD <pid>``, then waits for a line (or EOF) on stdin, closes the store and
prints ``CLOSED``. ``python lock_child.py fork URL`` does the same, but after opening forks a
grandchild that inherits every descriptor, waits only for EOF on stdin and exits; it prints
``GRANDCHILD <pid>`` before ``HELD``. ``python lock_child.py creating PATH`` stops where an
opener making a new database is between taking its lock (the store's own, of the missing
database) and locking the file SQLite has just made, still empty: it prints ``CREATING
<pid>`` there and waits for a line.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import crdt
from store import Batch, ObjectRow, Store
from store.lock import lock_sqlite


def _grandchild() -> None:
    try:
        os.close(1)  # the test waits for the child's stdout to close when it dies
        while os.read(0, 4096):  # until the test closes our stdin
            pass
    finally:
        os._exit(0)


async def creating(path: Path) -> None:
    lock = await lock_sqlite(path)  # the database is missing: its sidecar only
    path.touch()  # what SQLite's first connection makes: an empty file
    print(f"CREATING {os.getpid()}", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await lock.release()
    print("CLOSED", flush=True)


async def main(mode: str, url: str) -> None:
    if mode == "creating":
        return await creating(Path(url))
    async with await Store.open(url) as store:
        counter = crdt.GCounter()
        counter.increment("C", 3)
        await store.apply(Batch(objects=(ObjectRow("child", "gcounter", counter.to_dict()),)))
        if mode == "fork":
            pid = os.fork()
            if pid == 0:
                _grandchild()
            print(f"GRANDCHILD {pid}", flush=True)
        print(f"HELD {os.getpid()}", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
    print("CLOSED", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
