"""Child process of the compaction-then-crash test: waits until its peer's compaction has
emptied the delta log, then makes acknowledged writes, says so and waits for the parent's
SIGKILL.

``python compact_child.py DB``, DB already holding the gcounters ``c`` (at 10) and ``d``,
its log folded by a clean close. The peer is alone, so every entry it logs is stable at
once, and its anti-entropy interval (the compaction timer's) is short. Once the log is
empty it increments ``c`` five times, each awaited, and prints ``ACK``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys

from sync.transport.peer import Peer


def say(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def log_segments(path: str) -> int:
    with sqlite3.connect(path) as conn:
        count: int = conn.execute("SELECT count(*) FROM log_segments").fetchone()[0]
    conn.close()
    return count


async def main(path: str) -> None:
    # cache_bytes: at most one object loaded whole at open, so the next open relies on the
    # fold of the log into the stored objects (store.ondemand), not on the log in memory.
    async with Peer.open(path, cache_bytes=2048, anti_entropy_interval=0.05) as peer:
        for _ in range(1000):  # ~20 s at most
            if log_segments(path) == 0:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the log was never compacted")
        for _ in range(5):
            await peer.gcounter("c").increment()
        say("ACK")
        await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
