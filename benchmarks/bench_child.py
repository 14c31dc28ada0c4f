"""A benchmark's child process: one peer (or one raw reference) alone in its own process.

Run by :class:`benchlib.Child`, never by hand. It speaks JSON lines: events on stdout
(``{"event": NAME, ...}``; ``{"event": "error", "error": TEXT}`` on failure), commands on
stdin (``{"cmd": NAME, ...}``; end of input is ``quit``).

Modes:

* ``peer --db PATH [--listen HOST:PORT] [--peer URL ...] [--options JSON]``: reports
  ``imported`` (memory once everything is imported), opens a ``Peer`` (``options`` are
  ``Peer.open`` keywords) and reports ``ready`` (URL, replica id, seconds to open, memory);
  then answers ``status`` (the peer's status snapshot), ``memory`` and ``quit`` (closes the
  peer, reports ``closed``).
* ``raw-echo [--db PATH --synchronous LEVEL]``: a plain ``websockets`` server on
  127.0.0.1, port 0, answering each binary message with a 2-byte ack, after committing it as
  one row in its own SQLite file (WAL) when ``--db`` is given: the reference of a durable
  round trip to a second process.
* ``raw-open --db PATH --what point|scan``: raw ``sqlite3`` opening the file read-only and
  either reading one object by primary key (``point``: what opening costs when objects are
  read on demand) or decoding every object's state into a dict (``scan``: the floor of a
  design that loads everything at open); reports seconds and memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import load_peer, proc_memory

__all__ = ["main"]


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def _commands() -> Any:
    """Commands from stdin, one per line, until ``quit`` or end of input."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        cmd = json.loads(line)
        if cmd.get("cmd") == "quit":
            return
        yield cmd


def _status(peer: Any) -> dict[str, Any]:
    s = peer.status_now()
    return {
        "connected": s["connected"],
        "keys": s["keys"],
        "log_size": s["log_size"],
        "peers": s["peers"],
        "node": s["node"],
    }


async def run_peer(args: argparse.Namespace) -> None:
    peer_class = load_peer()
    options: dict[str, Any] = json.loads(args.options)
    emit("imported", **proc_memory())
    t_start = time.time()
    t0 = time.perf_counter()
    peer = await peer_class.open(args.db, listen=args.listen, peers=args.peer, **options)
    open_s = time.perf_counter() - t0
    try:
        emit(
            "ready",
            url=peer.url,
            replica_id=peer.replica_id,
            open_s=open_s,
            t_open_start=t_start,
            **proc_memory(),
        )
        async for cmd in _commands():
            if cmd["cmd"] == "status":
                emit("status", status=_status(peer), **proc_memory())
            elif cmd["cmd"] == "memory":
                emit("memory", **proc_memory())
            elif cmd["cmd"] == "count-keys":  # every key the peer lists (store and memory)
                emit("count-keys", keys=sum([1 async for _ in peer.keys()]), **proc_memory())  # noqa: SIM118
            else:
                emit("error", error=f"unknown command {cmd!r}")
    finally:
        t1 = time.perf_counter()
        await peer.aclose()
        emit("closed", close_s=time.perf_counter() - t1)


async def run_raw_echo(args: argparse.Namespace) -> None:
    import sqlite3

    from websockets.asyncio.server import serve

    conn = None
    if args.db:
        conn = sqlite3.connect(args.db, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {args.synchronous}")
        conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")

    async def handler(ws: Any) -> None:
        async for message in ws:
            if conn is not None:
                conn.execute("INSERT INTO t (body) VALUES (?)", (message,))  # autocommit
            await ws.send(b"ok")

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        emit("ready", url=f"ws://127.0.0.1:{port}")
        async for cmd in _commands():
            emit("error", error=f"unknown command {cmd!r}")
    if conn is not None:
        conn.close()


def run_raw_open(args: argparse.Namespace) -> None:
    import sqlite3

    emit("imported", **proc_memory())
    t0 = time.perf_counter()
    conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    held: dict[str, Any] = {}
    if args.what == "point":
        key = conn.execute("SELECT key FROM objects LIMIT 1").fetchone()[0]
        t0 = time.perf_counter()  # the lookup of a key to read is not part of it
        conn.close()
        conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
        row = conn.execute("SELECT state FROM objects WHERE key = ?", (key,)).fetchone()
        held[key] = json.loads(row[0])
    else:
        for key, state in conn.execute("SELECT key, state FROM objects"):
            held[key] = json.loads(state)
    took = time.perf_counter() - t0
    emit("ready", open_s=took, objects=len(held), **proc_memory())
    conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("peer")
    p.add_argument("--db", required=True)
    p.add_argument("--listen")
    p.add_argument("--peer", action="append", default=[])
    p.add_argument("--options", default="{}", help="Peer.open keywords, as JSON")
    e = sub.add_parser("raw-echo")
    e.add_argument("--db")
    e.add_argument("--synchronous", default="FULL")
    o = sub.add_parser("raw-open")
    o.add_argument("--db", required=True)
    o.add_argument("--what", choices=["point", "scan"], default="scan")
    args = parser.parse_args(argv)
    try:
        if args.mode == "peer":
            asyncio.run(run_peer(args))
        elif args.mode == "raw-echo":
            asyncio.run(run_raw_echo(args))
        else:
            run_raw_open(args)
    except Exception as exc:
        emit("error", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
