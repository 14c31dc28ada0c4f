"""Child process of the identity tests: counts through a Peer linked to another, then waits
for the parent's SIGKILL.

``python identity_child.py DB URL SECRET`` opens a Peer on DB that dials URL, increments the
counter ``n`` with w=2 (the other peer holds it), checkpoints the WAL into DB (as the store
does now and then), increments ``n`` again with w=2 (that one in the WAL only), prints
``ACK <replica id>`` and waits.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys

from sync.transport.peer import Peer


async def main(path: str, url: str, secret: str) -> None:
    async with Peer.open(
        path, listen=None, peers=[url], secret=secret, anti_entropy_interval=0.2
    ) as peer:
        await peer.connected(timeout=30, until="all")
        await peer.gcounter("n").increment(w=2, timeout=30)
        raw = sqlite3.connect(path)
        try:
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            raw.close()
        await peer.gcounter("n").increment(w=2, timeout=30)
        sys.stdout.write(f"ACK {peer.replica_id}\n")
        sys.stdout.flush()
        await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
