"""The embedding API in one page: two peers in one process, every handle type once.

This is the embedding API of the README made runnable: a "phone" peer listens
on 127.0.0.1 (the OS picks the port), a "laptop" peer dials it, both keep their data in
SQLite files in a temporary folder. The phone uses every handle (``orset``, ``pncounter``,
``mvregister``, ``lww``, ``ormap``) and the laptop watches the cart with ``subscribe`` until
it sees what the phone wrote.

Run: ``.venv/bin/python examples/embedded.py`` (``--keep DIR`` keeps the two databases).
Exit status 0 when the laptop ends with the phone's values, 1 if it did not within the
timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from shoal import Peer, QuorumNotReached

__all__ = ["main"]

SECRET = b"embedded example secret"
TIMEOUT = 10.0


async def watch_cart(laptop: Peer, want: frozenset[str]) -> frozenset[str]:
    """The laptop's view of the cart, once it equals ``want`` (every new value is printed)."""
    async with laptop.subscribe("cart:alice") as changes:
        current = frozenset(await laptop.orset("cart:alice").value())
        while current != want:
            current = frozenset(await anext(changes))
            print(f"laptop sees cart = {sorted(current)}")
    return current


async def connected(peer: Peer, timeout: float) -> bool:
    """Wait until ``peer`` has an open link to another peer; False after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (await peer.status())["connected"]:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def tour(folder: Path) -> int:
    async with (
        Peer.open(folder / "phone.db", listen="127.0.0.1:0", n=2, secret=SECRET) as phone,
        Peer.open(folder / "laptop.db", peers=[phone.url or ""], n=2, secret=SECRET) as laptop,
    ):
        print(f"phone  {phone.url}  replica {phone.replica_id[:8]}")
        print(f"laptop dials it      replica {laptop.replica_id[:8]}")
        if not await connected(phone, TIMEOUT):
            print(f"the laptop did not connect within {TIMEOUT:g} s")
            return 1
        watcher = asyncio.create_task(watch_cart(laptop, frozenset({"eggs"})))

        cart = phone.orset("cart:alice")
        await cart.add("milk")  # commits locally, replicates in the background
        try:
            result = await cart.add("eggs", w=2, timeout=2.0)  # waits for the laptop's ack
            print(f"eggs acknowledged by {result.acks} peers")
        except QuorumNotReached as exc:
            print(f"eggs are durable on the phone; the laptop did not ack in time ({exc})")
        await cart.remove("milk")
        print(f"phone reads cart (r=2) = {sorted(await cart.value(r=2, timeout=2.0))}")

        visits = phone.pncounter("visits")
        await visits.increment(3)
        await visits.decrement(1)
        note = phone.mvregister("note")
        await note.set("buy bread")
        title = phone.lww("title")
        await title.set("Groceries")
        prefs = phone.ormap("prefs")
        await prefs.update("theme", "lww", lambda reg: reg.set("dark"))
        values: dict[str, Any] = {
            "visits": await visits.value(),
            "note": await note.values(),
            "title": await title.value(),
            "prefs": await prefs.value(),
        }
        for key, value in values.items():
            print(f"phone  {key} = {value!r}")

        try:
            seen = await asyncio.wait_for(watcher, TIMEOUT)
        except TimeoutError:
            print(f"the laptop did not see the cart within {TIMEOUT:g} s")
            return 1
        status = await laptop.status()
        print(f"laptop: cart = {sorted(seen)}, connected to {len(status['connected'])} peer(s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The embedding API, two peers in-process.")
    parser.add_argument("--keep", metavar="DIR", type=Path, help="keep the databases in DIR")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        if any(args.keep.iterdir()):
            parser.error(f"--keep {args.keep}: must be an empty or new folder")
        return asyncio.run(tour(args.keep))
    with tempfile.TemporaryDirectory(prefix="shoal-embedded-") as tmp:
        return asyncio.run(tour(Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
