"""An offline backlog: N writes while the other home is down, then the catch-up, in bytes.

Run: ``.venv/bin/python benchmarks/backlog_bench.py`` (``--writes N``, 1000 by default;
``--runs K``, 3; ``--quick`` for 200 writes, one run). About 20 s.

**shoal.** Two peers on 127.0.0.1 in this process, each with its own SQLite file (default
``synchronous``), ``n=3, w=1``: B dials A; once they are linked A closes, and B adds ``N``
new elements to an ORSet one at a time (``await``, as an app's loop does), with A down;
then B closes, both reopen (B's backlog comes from its file) and the clock runs until A's
set holds all ``N``. Reported: B's time per offline write, the catch-up's time, and the
bytes B sent on the link until then (websocket message payloads, from B's ``status``),
per change. B signs its entries when they first leave it, so the backlog goes out in seals
of up to 128 entries.

**pycrdt** (the reference, same run, interleaved): a ``Doc`` whose ``Map`` gets the same
``N`` sets one transaction each while offline; the catch-up is the one update the other
``Doc`` lacks (``get_update(state)``), applied there: its bytes per change, and the time to
encode and apply it (in memory, no network, nothing durable).

Runs of the two sides alternate; each figure is the median with its range. No figure here
is asserted by a test; they go into ``benchmarks/README.md`` ("Signed when sent: an offline
backlog and one write at a time").
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
from benchlib import Spread

__all__ = ["main"]

SECRET = b"backlog bench secret"
KEY = "cart"
LIMIT_S = 60.0
LABELS = {"shoal": "shoal (SQLite, signed, 2 peers)", "pycrdt": "pycrdt (memory, one update)"}


async def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {LIMIT_S:.0f} s")
        await asyncio.sleep(0.01)


async def _shoal(folder: Path, writes: int) -> dict[str, float]:
    peer = benchlib.load_peer()
    # A compacts nothing and starts no round of its own: the catch-up is B's doing.
    a_opts = {"secret": SECRET, "anti_entropy_interval": 3600.0}
    a = await peer.open(str(folder / "a.db"), listen="127.0.0.1:0", **a_opts)
    b = await peer.open(str(folder / "b.db"), peers=[a.url], secret=SECRET)

    async def linked() -> bool:
        return bool((await b.status())["connected"])

    try:
        await _until(linked, "B linked to A")
    finally:
        await a.aclose()
    try:
        items = b.orset(KEY)
        start = time.perf_counter()
        for i in range(writes):
            await items.add(f"item-{i}")
        offline = time.perf_counter() - start
    finally:
        await b.aclose()
    a = await peer.open(str(folder / "a.db"), listen="127.0.0.1:0", **a_opts)
    try:
        start = time.perf_counter()
        b = await peer.open(str(folder / "b.db"), peers=[a.url], secret=SECRET)
        try:

            async def caught_up() -> bool:
                return len(await a.orset(KEY).value()) == writes

            await _until(caught_up, "the backlog at A")
            took = time.perf_counter() - start
            sent = sum(p["bytes_out"] for p in (await b.status())["peers"].values())
        finally:
            await b.aclose()
    finally:
        await a.aclose()
    return {"write_us": offline / writes * 1e6, "catch_up_s": took, "bytes": sent / writes}


def run_shoal(writes: int, limit: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="shoal-backlog-") as tmp:
        return asyncio.run(asyncio.wait_for(_shoal(Path(tmp), writes), limit))


def run_pycrdt(writes: int) -> dict[str, float]:
    from pycrdt import Doc, Map

    device, server = Doc(), Doc()
    device[KEY] = items = Map()
    start = time.perf_counter()
    for i in range(writes):
        with device.transaction():
            items[f"item-{i}"] = True
    offline = time.perf_counter() - start
    start = time.perf_counter()
    update = device.get_update(server.get_state())
    server.apply_update(update)
    took = time.perf_counter() - start
    got = len(server.get(KEY, type=Map))
    if got != writes:
        raise AssertionError(f"pycrdt: {got} of {writes} keys")
    return {"write_us": offline / writes * 1e6, "catch_up_s": took, "bytes": len(update) / writes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per side")
    parser.add_argument("--quick", action="store_true", help="200 writes, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.writes, args.runs = 200, 1
    if args.writes < 1 or args.runs < 1:
        parser.error("--writes and --runs must be at least 1")
    benchlib.preamble(f"backlog: {args.writes} offline writes, then the catch-up", argv)
    missing = benchlib.pycrdt_missing()
    sides = [("shoal", lambda left: run_shoal(args.writes, left))]
    if not missing:
        sides.append(("pycrdt", lambda _left: run_pycrdt(args.writes)))
    out = benchlib.interleaved(sides, args.runs, args.budget)
    print(f"\n{'':34s}{'bytes/change':>24s}{'catch-up':>30s}{'offline write':>30s}")
    for name, outcome in out.items():
        if not outcome.results:
            print(f"{LABELS[name]:34s}{outcome.failure or 'no run'}")
            continue
        cols = {f: Spread([r[f] for r in outcome.results]) for f in outcome.results[0]}
        print(
            f"{LABELS[name]:34s}{cols['bytes'].text('{:,.0f}', ' B'):>24s}"
            f"{cols['catch_up_s'].text('{:.3f}', ' s'):>30s}"
            f"{cols['write_us'].text('{:,.0f}', ' us'):>30s}"
        )
    if missing:
        print(f"pycrdt: not run ({missing})")
    elif out["shoal"].results and out["pycrdt"].results:
        shoal = Spread([r["bytes"] for r in out["shoal"].results]).median
        ref = Spread([r["bytes"] for r in out["pycrdt"].results]).median
        print(f"bytes per change, shoal/pycrdt: {shoal / ref:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
