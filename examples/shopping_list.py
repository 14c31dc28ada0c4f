"""A shopping list that several terminals, phones or laptops share: shoal's first example.

Each copy of the program keeps the list in its own SQLite file and works offline; when it
can reach another copy (``--peer URL``) or is reached by one (``--listen HOST:PORT``), they
exchange what the other lacks. The list is an add-wins observed-remove set (``peer.orset``):
two people adding and removing at the same time never lose an item someone added.

Commands (one per run, or many in ``shell``):

* ``add ITEM...`` / ``remove ITEM...``: change the list. With peers, the write waits up to
  ``--timeout`` s for one other peer to hold it (``w=2``); if none answers it stays saved
  here and goes out the next time this database is online. Removing an item that is not on
  the list is refused (exit status 1) and removes nothing.

When a ``--peer`` cannot be reached, the program says why (``await peer.connected()``
tells, per peer, its state and last error): ``not syncing: wrong secret for ws://...``, or
``unreachable``, ``TLS verification failed``, ``forgotten``... and whether it will sync by
itself once the other side is back (unreachable, busy) or needs a fix first (a wrong secret,
a forgotten replica).
* ``list``: print the list; with peers, ask one other peer first (``r=2``, read repair).
* ``serve``: stay online (``--listen``) so that others can sync through this copy; prints the
  list whenever it changes, here or elsewhere. Ctrl-C (or SIGTERM) stops it cleanly.
* ``shell``: the same, plus a prompt reading ``add milk``, ``remove milk``, ``list``, ``quit``
  from standard input.

Run ``python examples/shopping_list.py --help``; examples/README.md walks through two
terminals step by step.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from shoal import DialState, Peer, QuorumNotReached, ReadQuorumNotReached, StoreError

__all__ = ["main"]

DEFAULT_SECRET = "shoal shopping-list example"  # fine on loopback; pass --secret for real use
#: Peers in these states sync by themselves once the other side is back.
TRANSIENT = {DialState.CONNECTING, DialState.UNREACHABLE, DialState.REFUSED}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="shopping_list.py",
        description="A shopping list shared by several databases through shoal peers.",
    )
    parser.add_argument("--db", required=True, type=Path, help="this copy's SQLite file")
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="accept peers here (port 0: the OS picks one)"
    )
    parser.add_argument(
        "--peer", metavar="URL", action="append", default=[], help="a peer to dial (repeatable)"
    )
    parser.add_argument("--secret", default=DEFAULT_SECRET, help="the group's shared secret")
    parser.add_argument("--name", default="groceries", help="which list (default: groceries)")
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for another peer"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = commands.add_parser("add", help="add items")
    add.add_argument("items", nargs="+", metavar="ITEM")
    remove = commands.add_parser("remove", help="remove items")
    remove.add_argument("items", nargs="+", metavar="ITEM")
    commands.add_parser("list", help="print the list")
    commands.add_parser("serve", help="stay online and print changes until Ctrl-C")
    commands.add_parser("shell", help="stay online and read commands from standard input")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    host, _, port = (args.listen or "127.0.0.1:0").rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        parser.error(f"--listen must be HOST:PORT, got {args.listen!r}")
    for url in args.peer:
        if not url.startswith(("ws://", "wss://")):
            parser.error(f"--peer must be a ws:// or wss:// URL, got {url!r}")
    if args.command in ("serve", "shell") and not (args.listen or args.peer):
        parser.error(f"{args.command} needs --listen or --peer: there is nobody to share with")
    for item in getattr(args, "items", []):
        if not item.strip():
            parser.error("an item must not be empty")
    return args


def show(items: frozenset[Any] | set[Any]) -> str:
    return ", ".join(sorted(map(str, items))) if items else "(empty)"


async def reach_peers(peer: Peer, timeout: float) -> bool:
    """Wait (at most ``timeout`` s) until each peer is connected or has failed with a
    reason; say why for each one that is not connected; True if one is."""
    links = await peer.connected(timeout=timeout)
    for link in links.down.values():
        later = (
            "it syncs once the peer is back"
            if link.state in TRANSIENT
            else "fix this to sync with it"
        )
        print(f"not syncing: {link} ({later})", file=sys.stderr)
    return bool(links.up)


async def change(
    peer: Any, key: str, verb: str, items: Sequence[str], *, online: bool, timeout: float
) -> int:
    """Add or remove ``items``; 1 (and nothing changed) if a removed item is not listed."""
    shopping = peer.orset(key)
    if verb == "remove":
        current = await read(peer, key, online=online, timeout=timeout)
        missing = [item for item in items if item not in current]
        if missing:
            print(f"not on the list: {', '.join(missing)}; nothing removed", file=sys.stderr)
            return 1
    for item in items:
        mutate = shopping.add if verb == "add" else shopping.remove
        if not online:
            await mutate(item)
            print(f"{verb} {item}: saved here only (no peer connected)")
            continue
        try:
            result = await mutate(item, w=2, timeout=timeout)
        except QuorumNotReached:
            print(f"{verb} {item}: saved here; no peer confirmed it yet, it syncs later")
        else:
            print(f"{verb} {item}: saved here and on {result.acks - 1} other peer(s)")
    return 0


async def read(peer: Any, key: str, *, online: bool, timeout: float) -> frozenset[Any]:
    shopping = peer.orset(key)
    if online:
        with contextlib.suppress(ReadQuorumNotReached):
            return frozenset(await shopping.value(r=2, timeout=timeout))
    return frozenset(await shopping.value())


async def watch(peer: Any, key: str) -> None:
    """Print the list every time it changes, here or on another peer."""
    async for value in peer.subscribe(key):
        print(f"[list] {show(frozenset(value))}", flush=True)


async def stdin_lines() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield line.decode().strip()


async def shell(peer: Any, key: str, timeout: float) -> None:
    print("commands: add ITEM..., remove ITEM..., list, quit", flush=True)
    async for line in stdin_lines():
        words = line.split()
        if not words:
            continue
        verb, items = words[0].lower(), words[1:]
        if verb in ("quit", "exit"):
            return
        if verb in ("add", "remove") and items:
            await change(peer, key, verb, items, online=True, timeout=timeout)
            sys.stdout.flush()
        elif verb == "list" and not items:
            print(show(await read(peer, key, online=True, timeout=timeout)), flush=True)
        else:
            print(f"? {line!r}: try add ITEM..., remove ITEM..., list, quit", flush=True)


async def run(args: argparse.Namespace) -> int:
    key = f"list:{args.name}"
    async with Peer.open(
        str(args.db),
        listen=args.listen,
        peers=args.peer,
        n=3,
        w=1,
        r=1,
        secret=args.secret.encode(),
    ) as peer:
        if peer.url:
            print(f"listening on {peer.url}", flush=True)
        online = bool(args.peer) and await reach_peers(peer, args.timeout)
        if args.peer and not online:
            print("no peer connected: working offline")
        if args.command in ("add", "remove"):
            return await change(
                peer, key, args.command, args.items, online=online, timeout=args.timeout
            )
        elif args.command == "list":
            print(show(await read(peer, key, online=online, timeout=args.timeout)))
        else:
            watcher = asyncio.create_task(watch(peer, key))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            waiters = [asyncio.create_task(stop.wait())]
            if args.command == "shell":
                waiters.append(asyncio.create_task(shell(peer, key, args.timeout)))
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in [watcher, *waiters]:
                task.cancel()
            print("stopping", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The library logs each peer's change of state at WARNING; this program prints the
    # reasons itself (reach_peers), so only errors of the library's are shown.
    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    try:
        return asyncio.run(run(args))
    except (OSError, StoreError) as exc:  # a port in use, a missing folder, not a database
        why = str(exc)
        if isinstance(exc, OSError) and exc.strerror:  # without "[Errno N]"
            why = exc.strerror + (f": {exc.filename}" if exc.filename else "")
        print(f"shopping_list.py: {why}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
