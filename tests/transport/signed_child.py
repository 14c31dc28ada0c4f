"""Child process of the signed-restart tests: adds elements to an ORSet through a real Peer
(the transport tests' secret and fast timers), says so on stdout, and waits for the parent's
SIGKILL.

``python signed_child.py DB PEER_URL COUNT PREFIX MODE``: opens DB dialing PEER_URL, prints
``ID <replica id>``, adds ``PREFIX0`` .. ``PREFIX<COUNT-1>`` to the orset ``cart``, each
write awaited (committed here) before the next, then prints ``DONE``. MODE ``offline``: the
peer is down, the writes start at once (stored unsealed: nothing is sent); ``linked``: they
start once the link to the peer is up and the engine has taken it as up, so each is pushed
(sealed) as it is made.
"""

from __future__ import annotations

import asyncio
import sys

from sync.transport.peer import Peer
from tests.transport.conftest import WAIT, open_peer


def say(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


async def _linked(peer: Peer) -> None:
    while not (peer.transport.links and peer.replica.status()["peers_up"]):
        await asyncio.sleep(0.02)


async def main(path: str, url: str, count: int, prefix: str, mode: str) -> None:
    peer = await open_peer(path, listen=None, peers=[url])
    say(f"ID {peer.replica_id}")
    if mode == "linked":
        await asyncio.wait_for(_linked(peer), WAIT)
    elif mode != "offline":
        raise SystemExit(f"unknown mode {mode!r}")
    cart = peer.orset("cart")
    for i in range(count):
        await cart.add(f"{prefix}{i}")
    say("DONE")
    await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]))
