"""Idle anti-entropy: bytes per minute on the link between two converged peers (issue 11).

Run: ``.venv/bin/python benchmarks/idle_bench.py`` (10k and 1M keys, one 60 s window each;
``--keys 10000`` to choose, ``--window S``, ``--quick`` for 10k keys and a 20 s window).

**shoal.** Two processes (``bench_child.py``) open fresh copies of a cached *converged pair*
of databases (``dbgen.py``: the same ``N`` LWW keys and summaries in both, compacted), with
the defaults of ``Peer.open`` (``n=3``, anti-entropy every 5 s, websocket pings every 5 s).
A listens on 127.0.0.1; B dials it through a counting TCP proxy (``benchlib.CountingProxy``),
so the bytes are **TCP payload bytes of the link, both directions** (websocket frames with
their headers and masks, pings and pongs included). After B is connected and a warm-up
(``--warmup``, default 15 s, three anti-entropy rounds), the proxy's counters and both peers'
status (message payload bytes and message counts) are read at the start and the end of the
window; per minute = difference x 60 / window.

**pycrdt-websocket** (the reference, in the same window, concurrently): A and B ``Doc``s with
``N`` keys in a ``Map`` and a ``Provider`` each, through a ``WebsocketServer`` (websockets'
defaults: pings every 20 s); B's link to the server goes through a counting proxy too.

Goal of issue 11: at most 1 KB/min per link between converged peers, at any key count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
import dbgen
from benchlib import Child, CountingProxy, GoalTable

__all__ = ["main"]

GOAL_B_PER_MIN = 1024
OPTIONS = {"secret": benchlib.SECRET.decode()}


def _traffic(status: dict[str, Any]) -> tuple[int, int]:
    """(message payload bytes, messages) over every link of a peer, both directions."""
    peers = status["peers"].values()
    return (
        sum(p["bytes_in"] + p["bytes_out"] for p in peers),
        sum(p["messages_in"] + p["messages_out"] for p in peers),
    )


async def _wait_connected(child: Child, limit: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        status = (await child.ask({"cmd": "status"}, "status", limit))["status"]
        if status["connected"]:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{child.name} not connected within {limit:.0f} s")


class Gate:
    """Both sides set up first, then their windows start together."""

    def __init__(self) -> None:
        self.ready: list[asyncio.Event] = []
        self.start = asyncio.Event()

    def side(self) -> asyncio.Event:
        event = asyncio.Event()
        self.ready.append(event)
        return event

    async def open_when_ready(self, tasks: list[asyncio.Task[Any]], limit: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline and not any(t.done() for t in tasks):
            if all(e.is_set() for e in self.ready):
                break
            await asyncio.sleep(0.1)
        self.start.set()


async def shoal_idle(built: dbgen.Built, args: argparse.Namespace, gate: Gate) -> Any:
    with benchlib.scratch("idle") as folder:
        return await _shoal_idle_in(folder, built, args, gate)


async def _shoal_idle_in(
    folder: Path, built: dbgen.Built, args: argparse.Namespace, gate: Gate
) -> Any:
    ready_here = gate.side()
    a_path = dbgen.copy_db(built.a, folder / "a.db")
    b_path = dbgen.copy_db(built.b, folder / "b.db")
    options = json.dumps(OPTIONS)
    a = await Child.start("peer-A", folder, "peer", "--db", str(a_path), "--listen",
                          "127.0.0.1:0", "--options", options)  # fmt: skip
    async with a:
        ready = await a.event("ready", args.limit)
        async with CountingProxy.to_url(ready["url"]) as proxy:
            via = await proxy.start()
            b = await Child.start("peer-B", folder, "peer", "--db", str(b_path), "--peer", via,
                                  "--options", options)  # fmt: skip
            async with b:
                await b.event("ready", args.limit)
                await _wait_connected(b, 60.0)
                await asyncio.sleep(args.warmup)
                ready_here.set()
                await gate.start.wait()
                t0 = asyncio.get_running_loop().time()
                tcp0 = sum(proxy.counts())
                msg0 = _traffic((await a.ask({"cmd": "status"}, "status", 60.0))["status"])
                await asyncio.sleep(args.window)
                tcp1 = sum(proxy.counts())
                msg1 = _traffic((await a.ask({"cmd": "status"}, "status", 60.0))["status"])
                took = asyncio.get_running_loop().time() - t0
                if proxy.connections != 1:
                    raise AssertionError(f"B dialled {proxy.connections} times: link not idle")
    per_min = 60.0 / took
    return {
        "tcp_per_min": (tcp1 - tcp0) * per_min,
        "payload_per_min": (msg1[0] - msg0[0]) * per_min,
        "messages_per_min": (msg1[1] - msg0[1]) * per_min,
        "window_s": took,
    }


async def pycrdt_idle(keys: int, args: argparse.Namespace, gate: Gate) -> Any:
    ready_here = gate.side()
    items = {f"lww:{i:07d}": f"value {i}" for i in range(keys)}
    async with benchlib.pycrdt_pair(items, count_b=True) as pair:
        proxy = pair.proxy_b
        assert proxy is not None
        await asyncio.sleep(args.warmup)
        ready_here.set()
        await gate.start.wait()
        t0 = asyncio.get_running_loop().time()
        tcp0 = sum(proxy.counts())
        await asyncio.sleep(args.window)
        tcp1 = sum(proxy.counts())
        took = asyncio.get_running_loop().time() - t0
    return {"tcp_per_min": (tcp1 - tcp0) * 60.0 / took, "window_s": took}


async def _both(built: dbgen.Built, args: argparse.Namespace, with_pycrdt: bool) -> Any:
    gate = Gate()
    tasks = [asyncio.create_task(shoal_idle(built, args, gate))]
    if with_pycrdt:
        tasks.append(asyncio.create_task(pycrdt_idle(built.keys, args, gate)))
    await gate.open_when_ready(tasks, 2 * args.limit + args.warmup)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    if isinstance(results[0], BaseException):
        raise results[0]
    ref = results[1] if with_pycrdt else None
    if isinstance(ref, BaseException):  # the reference failed: shoal's figure still stands
        ref = {"error": _cause(ref)}
    return results[0], ref


def _cause(exc: BaseException) -> str:
    """The innermost cause of ``exc`` (anyio wraps failures in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", default="10000,1000000", help="key counts, commas")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before the window")
    parser.add_argument("--limit", type=float, default=600.0, help="seconds allowed to open")
    parser.add_argument("--quick", action="store_true", help="10k keys, a 20 s window")
    parser.add_argument("--check", action="store_true", help="exit 1 if the goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.keys, args.window, args.warmup = "10000", 20.0, 12.0
    counts = [int(k) for k in args.keys.split(",") if k]
    if not counts or min(counts) < 1 or args.window <= 0 or args.warmup < 0:
        parser.error("--keys must be positive counts, --window > 0, --warmup >= 0")
    benchlib.preamble("idle_bench: idle anti-entropy between converged peers (issue 11)", argv)
    missing = benchlib.pycrdt_missing()
    if missing is not None:
        print(f"  pycrdt-websocket is not installed ({missing}): shoal alone", flush=True)
    table = GoalTable(
        "idle link between two converged peers: bytes per minute (TCP payload, both ways)",
        f"<= {GOAL_B_PER_MIN} B/min per link at any key count",
    )
    for keys in counts:
        built = dbgen.ensure("lww", keys, "compacted", pair=True)
        print(f"  {keys:,} keys: window of {args.window:.0f} s after {args.warmup:.0f} s")
        try:
            shoal, ref = asyncio.run(_both(built, args, missing is None))
        except (TimeoutError, benchlib.ChildFailed) as exc:
            mark = table.note(f"{keys:,} keys: {exc}")
            table.add(f"{keys:,} keys", f"FAILS {mark}", "", "n/a", False)
            continue
        print(f"    shoal: {shoal}\n    pycrdt-websocket: {ref}", flush=True)
        ok = ref is not None and "error" not in ref
        if ok:
            ref_text = f"pycrdt-websocket {ref['tcp_per_min']:,.0f} B/min"
        elif ref is not None:
            mark = table.note(f"{keys:,} keys, pycrdt-websocket: {ref['error']}")
            ref_text = f"pycrdt-websocket failed {mark}"
        else:
            ref_text = "n/a"
        table.add(
            f"{keys:,} keys",
            f"{shoal['tcp_per_min']:,.0f} B/min ({shoal['payload_per_min']:,.0f} B/min of "
            f"message payload, {shoal['messages_per_min']:,.0f} messages/min)",
            ref_text,
            f"{shoal['tcp_per_min'] / ref['tcp_per_min']:,.0f}x" if ok else "n/a",
            shoal["tcp_per_min"] <= GOAL_B_PER_MIN,
        )
    table.print()
    print(f"load average at the end: {benchlib.load_now()}")
    return 1 if args.check and table.missed else 0


if __name__ == "__main__":
    sys.exit(main())
