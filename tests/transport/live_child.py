"""Child process of the delete-then-crash tests: deletes key ``b`` through a Peer, says how
far it got on stdout, and waits for the parent's SIGKILL.

``python live_child.py DB MODE``, DB already holding the orsets ``a``, ``b``, ``c``
(checkpointed live by a clean close):

* ``uncommitted``: the store's commits hang from now on; the delete is issued and
  ``COMMITTING`` printed once its transaction has started (it never commits).
* ``logged``: the delete is awaited (its log entry committed; no checkpoint: the store's row
  of ``b`` is still live), then ``ACK``.
* ``evicted``: with a small cache, the delete and then writes of 40 other keys are awaited,
  so that ``b`` leaves the cache with a checkpoint saying it is deleted, then ``ACK``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from sync.transport.peer import Peer


def say(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


async def main(path: str, mode: str) -> None:
    cache = 8 * 1024 if mode == "evicted" else 64 * 1024 * 1024
    async with Peer.open(path, cache_bytes=cache, anti_entropy_interval=0) as peer:
        if mode == "uncommitted":
            started = asyncio.Event()

            async def hang(prepared: Any, *, lone: bool = False) -> list[int]:
                started.set()
                await asyncio.Event().wait()  # until SIGKILL
                raise AssertionError("unreachable")

            peer.store._transaction = hang  # type: ignore[method-assign]
            pending = asyncio.ensure_future(peer.orset("b").delete())
            await asyncio.wait_for(started.wait(), 30)
            say("COMMITTING")
            assert not pending.done()
        else:
            await peer.delete("b")
            if mode == "evicted":
                for i in range(40):
                    await peer.gcounter(f"f{i:02d}").increment()
            say("ACK")
        await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
