"""Child process of the cache crash test: writes through a Peer with a small cache and
prints ``ACK <key>`` after each write is acknowledged; the parent SIGKILLs it.

``python cache_child.py DB COUNT KEYS``: opens DB (already holding KEYS counters named
``key:NNNNNN``), then increments COUNT of them one after another (a seeded walk, so keys
come back after they were evicted), awaiting each write before printing its ACK.
"""

from __future__ import annotations

import asyncio
import sys

from sync.transport.peer import Peer


async def main(path: str, count: int, keys: int) -> None:
    async with Peer.open(path, cache_bytes=32 * 1024, anti_entropy_interval=0) as peer:
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        for i in range(count):
            key = f"key:{(i * 7919) % keys:06d}"
            await peer.gcounter(key).increment()
            sys.stdout.write(f"ACK {key}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
