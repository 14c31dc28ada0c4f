"""End-to-end benchmark: 10,000 small updates from peer A, through a relay, durable on peer B.

Run: ``.venv/bin/python benchmarks/e2e_bench.py`` (or ``make bench``, which also installs the
``bench`` extra). ``--updates N`` changes the count (default 10,000), ``--runs K`` the number
of runs of each side (default 3; the median is reported), ``--quick`` is ``--updates 1000
--runs 1`` for a smoke run.

**shoal.** Three real peers on loopback, each with its own SQLite file: A and B dial only the
relay (``n=3, w=1``: every peer is a home of every key). A makes ``N`` small updates, half
``orset.add`` of a new element, half ``ormap.update`` of a new key holding a register, issued
concurrently in windows of ``--window`` so that the local commits group. The clock stops when
the updates are **durable in the SQLite files of the relay and of B**: a separate read-only
SQLite connection per file polls the ``summaries`` table (the log dots a peer has applied,
written in the same transaction as the data, so what it counts is on disk) until it holds
every log dot that A's own file holds. At the end B's values are read and checked
(``N/2`` elements, ``N/2`` keys).

**pycrdt-websocket** (the reference, measured in the same run): A and B are pycrdt ``Doc``
objects with a ``Provider`` each, connected by websockets to a ``WebsocketServer`` whose
room lives in memory (no store). A makes ``N`` map sets, one transaction each; the clock stops
when B's map holds all ``N`` keys. Nothing is durable anywhere on this side.

The two sides run in turn (a pycrdt-websocket run, a shoal run, the next pycrdt-websocket
run...), so that a machine whose speed drifts during the benchmark weighs on both alike.

Reported: seconds and updates/s of each (the median of its runs), and the ratio (pycrdt time
/ shoal time). The goal of issue 5 is a ratio of at least 5 (shoal durable on all three
peers). If pycrdt-websocket is not installed, the shoal figures are reported alone. No figure
here is asserted by a test; they go into the "End to end" section of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["main", "run_pycrdt", "run_shoal"]

SET_KEY = "bench:set"
MAP_KEY = "bench:map"
SECRET = b"e2e bench secret"
GOAL_RATIO = 5.0
WAIT_LIMIT_S = 60.0  # per run: a broken build fails the run instead of hanging
POLL_S = 0.005


# --------------------------------------------------------------------------- durability probe


def _applied_dots(path: Path, origin: str) -> int:
    """Log dots of ``origin`` that the database at ``path`` has durably applied.

    Reads the ``summaries`` table (partition -> encoded CausalContext) through its own
    read-only connection: only committed transactions are visible to it.
    """
    uri = f"file:{path}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=1.0)
    except sqlite3.OperationalError:
        return 0
    try:
        rows = conn.execute("SELECT ctx FROM summaries").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        conn.close()
    total = 0
    for (blob,) in rows:
        ctx = json.loads(blob)
        total += int(ctx.get("vv", {}).get(origin, 0))
        total += sum(1 for replica, _ in ctx.get("cloud", []) if replica == origin)
    return total


async def _wait_durable(paths: Sequence[Path], origin: str, target: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_LIMIT_S
    pending = list(paths)
    while pending:
        counts = await asyncio.gather(
            *(asyncio.to_thread(_applied_dots, p, origin) for p in pending)
        )
        pending = [p for p, c in zip(pending, counts, strict=True) if c < target]
        if not pending:
            return
        if loop.time() > deadline:
            names = ", ".join(p.name for p in pending)
            raise TimeoutError(f"{names} not durable after {WAIT_LIMIT_S:.0f} s")
        await asyncio.sleep(POLL_S)


# --------------------------------------------------------------------------- shoal


async def three_peers(
    stack: AsyncExitStack, folder: Path, **engine: Any
) -> tuple[dict[str, Path], Any, Any, Any]:
    """Relay, A and B on loopback (A and B dial only the relay), each with its own SQLite
    file under ``folder``; returns once the relay sees both. ``engine``: more Peer options."""
    from sync.transport.peer import Peer

    paths = {name: folder / f"{name}.db" for name in ("a", "relay", "b")}
    common: dict[str, Any] = {"n": 3, "w": 1, "r": 1, "secret": SECRET, **engine}
    relay = await stack.enter_async_context(
        Peer.open(str(paths["relay"]), listen="127.0.0.1:0", relay=True, **common)
    )
    a, b = [
        await stack.enter_async_context(
            Peer.open(str(paths[name]), listen="127.0.0.1:0", peers=[relay.url], **common)
        )
        for name in ("a", "b")
    ]
    await _wait_connected(relay, 2)
    return paths, a, relay, b


async def make_updates(a: Any, updates: int, window: int) -> None:
    """The workload on A: set adds and map register writes alternately, ``window`` at once."""
    items, table = a.orset(SET_KEY), a.ormap(MAP_KEY)

    def op(i: int) -> Any:
        if i % 2 == 0:
            return items.add(f"item-{i}")
        return table.update(f"k{i}", "lww", lambda reg, i=i: reg.set(i))

    for low in range(0, updates, window):
        await asyncio.gather(*(op(i) for i in range(low, min(low + window, updates))))


async def _shoal_once(updates: int, window: int, folder: Path) -> float:
    async with AsyncExitStack() as stack:
        paths, a, _relay, b = await three_peers(stack, folder)
        start = time.perf_counter()
        await make_updates(a, updates, window)
        target = await asyncio.to_thread(_applied_dots, paths["a"], a.replica_id)
        await _wait_durable([paths["relay"], paths["b"]], a.replica_id, target)
        took = time.perf_counter() - start
        got_items = await b.orset(SET_KEY).value()
        got_keys = await b.ormap(MAP_KEY).value()
        want = updates // 2 + updates % 2, updates // 2
        if (len(got_items), len(got_keys)) != want or target < updates:
            raise AssertionError(
                f"B holds {len(got_items)} elements and {len(got_keys)} keys, expected "
                f"{want}; A logged {target} dots for {updates} updates"
            )
        return took


async def _wait_connected(peer: Any, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while loop.time() < deadline:
        status = await peer.status()
        connected = status.get("connected") if isinstance(status, dict) else status.connected
        if (connected if isinstance(connected, int) else len(connected)) >= count:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the relay did not see {count} peers within 10 s")


def run_shoal(updates: int, window: int, limit: float = WAIT_LIMIT_S) -> float:
    """One shoal run in a fresh temporary folder; seconds until durable on relay and B.

    Raises ``TimeoutError`` if the run takes more than ``limit`` seconds in all.
    """
    with tempfile.TemporaryDirectory(prefix="shoal-e2e-") as tmp:
        return asyncio.run(asyncio.wait_for(_shoal_once(updates, window, Path(tmp)), limit))


# --------------------------------------------------------------------------- pycrdt-websocket


class _Channel:
    """pycrdt's ``Channel`` over a ``websockets`` (asyncio API) connection."""

    def __init__(self, ws: Any, path: str) -> None:
        self._ws = ws
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    async def send(self, message: bytes) -> None:
        await self._ws.send(message)

    async def recv(self) -> bytes:
        return bytes(await self._ws.recv())

    def __aiter__(self) -> _Channel:
        return self

    async def __anext__(self) -> bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None


async def _pycrdt_once(updates: int) -> float:
    from pycrdt import Doc, Map, Provider
    from pycrdt.websocket import WebsocketServer
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    room = "/bench"
    async with WebsocketServer(auto_clean_rooms=False) as server:

        async def handler(ws: Any) -> None:
            await server.serve(_Channel(ws, ws.request.path))

        async with serve(handler, "127.0.0.1", 0, max_size=None) as ws_server:
            port = ws_server.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}{room}"
            doc_a, doc_b = Doc(), Doc()
            map_a = doc_a.get("m", type=Map)
            map_b = doc_b.get("m", type=Map)
            complete = asyncio.Event()

            def seen(_event: Any) -> None:
                if len(map_b) >= updates:
                    complete.set()

            map_b.observe(seen)
            async with (
                connect(url, max_size=None) as ws_a,
                connect(url, max_size=None) as ws_b,
                Provider(doc_a, _Channel(ws_a, room)) as provider_a,
                Provider(doc_b, _Channel(ws_b, room)) as provider_b,
            ):
                await asyncio.wait_for(provider_a.synced.wait(), 10.0)
                await asyncio.wait_for(provider_b.synced.wait(), 10.0)
                start = time.perf_counter()
                for i in range(updates):
                    map_a[f"k{i}"] = i  # one transaction, one update message, per set
                await asyncio.wait_for(complete.wait(), WAIT_LIMIT_S)
                took = time.perf_counter() - start
            if len(map_b) != updates:
                raise AssertionError(f"B holds {len(map_b)} keys, expected {updates}")
            return took


def run_pycrdt(updates: int, limit: float = WAIT_LIMIT_S) -> float:
    """One pycrdt-websocket run; seconds until B's map holds every key."""
    return asyncio.run(asyncio.wait_for(_pycrdt_once(updates), limit))


def _pycrdt_missing() -> str | None:
    for name in ("pycrdt", "pycrdt.websocket"):
        try:
            found = importlib.util.find_spec(name)
        except ImportError as exc:
            return str(exc)
        if found is None:
            return f"no module named {name!r}"
    return None


# --------------------------------------------------------------------------- report


def _interleaved(
    sides: Sequence[tuple[str, Callable[[float], float]]], runs: int, budget: float
) -> list[list[float]]:
    """Up to ``runs`` runs of each side, taken in turn (one run of each, then the next round),
    so that a machine whose speed drifts (other load, a CPU's clock) weighs on every side
    alike; each side may use ``budget`` seconds in all. The times of each side's runs."""
    times: list[list[float]] = [[] for _ in sides]
    used = [0.0 for _ in sides]
    stopped = [False for _ in sides]
    for k in range(runs):
        for i, (label, run) in enumerate(sides):
            if stopped[i]:
                continue
            left = budget - used[i]
            if left <= 0:
                print(f"  {label}: time budget of {budget:.0f} s used up after {k} run(s)")
                stopped[i] = True
                continue
            began = time.monotonic()
            try:
                took = run(left)
            except TimeoutError:
                print(f"  {label} run {k + 1}/{runs}: did not finish within {left:.0f} s")
                stopped[i] = True
                continue
            finally:
                used[i] += time.monotonic() - began
            times[i].append(took)
            print(f"  {label} run {k + 1}/{runs}: {took:.3f} s", flush=True)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=10_000, help="updates made on A")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side (median)")
    parser.add_argument(
        "--window", type=int, default=1000, help="shoal: updates issued concurrently on A"
    )
    parser.add_argument("--quick", action="store_true", help="1000 updates, one run")
    parser.add_argument(
        "--budget", type=float, default=45.0, help="seconds allowed for each side's runs"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.updates, args.runs = 1000, 1
    if args.updates < 2 or args.runs < 1 or args.window < 1 or args.budget <= 0:
        parser.error("--updates must be at least 2, --runs and --window at least 1, --budget > 0")
    print(
        f"e2e: {args.updates} updates A -> relay/server -> B, median of {args.runs} "
        f"(python {platform.python_version()}, {os.cpu_count()} cpus)",
        flush=True,
    )

    sides: list[tuple[str, Callable[[float], float]]] = [
        ("shoal", lambda left: run_shoal(args.updates, args.window, left))
    ]
    missing = _pycrdt_missing()
    if missing is None:
        sides.insert(0, ("pycrdt-websocket", lambda left: run_pycrdt(args.updates, left)))
    else:
        print(
            f"  pycrdt-websocket is not installed ({missing}); install the bench extra "
            "(pip install -e '.[bench]') to measure the reference. Reporting shoal alone.",
            flush=True,
        )
    measured = _interleaved(sides, args.runs, args.budget)
    medians = [statistics.median(t) if t else None for t in measured]
    shoal = medians[-1]
    reference = medians[0] if missing is None else None

    print()
    print(f"{'':42} {'seconds':>9} {'updates/s':>11}")
    if shoal is None:
        print(f"{'shoal, durable on relay and B (SQLite)':42} {'> budget':>9}")
    else:
        print(
            f"{'shoal, durable on relay and B (SQLite)':42} {shoal:9.3f} "
            f"{args.updates / shoal:11,.0f}"
        )
    if reference is not None:
        print(
            f"{'pycrdt-websocket, visible on B (memory)':42} {reference:9.3f} "
            f"{args.updates / reference:11,.0f}"
        )
    if shoal is None:
        print("shoal did not finish within its budget: no ratio")
        return 1 if args.check else 0
    if reference is not None:
        ratio = reference / shoal
        verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
        print(f"ratio pycrdt/shoal: {ratio:.2f}x (goal >= {GOAL_RATIO:.0f}x: {verdict})")
        if args.check and ratio < GOAL_RATIO:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
