"""Opening a database of many small keys: seconds, and memory after open and at peak (issue 11).

Run: ``.venv/bin/python benchmarks/open_bench.py`` (10k, 100k and 1M keys, 3 runs each;
``--sizes 10000,100000`` to choose, ``--quick`` for 10k and 100k, one run each).

The database: ``N`` LWW registers with short values written once each by one peer, in the
state a lone peer reaches (object checkpoints and summaries, log compacted), built by
``dbgen.py`` through the store's batch API and cached under ``benchmarks/out/db/``
(``--form log`` keeps the log too: one entry per key). The first build of 1M keys takes
from half a minute (quiet machine) to a few minutes (busy one).

Each open runs in a **fresh process** (``bench_child.py``), so that its memory is its own:

* **shoal**: ``Peer.open(path)`` on the cached file in place (no listening, no peers: the
  resume path of a device), timed from the call to its return; then the resident set size
  (``VmRSS``) right after open, and the peak (``VmHWM``) of the process so far. The memory
  of the same process once everything is imported, before the open, is shown as the floor
  (``imported``). The first run checks the peer reports ``N`` keys.
* **raw sqlite3, point read** (reference): open the file read-only and read one object by
  primary key: what opening costs when objects are read on demand.
* **raw sqlite3, full scan** (reference): open read-only and decode every object's state
  into a dict: the floor of any design that loads everything at open.

Runs are interleaved (shoal, point, scan, shoal, ...); medians with their range. Goals of
issue 11: open in at most 1 s with at most 150 MB resident after open, at any key count.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
import dbgen
from benchlib import Child, GoalTable, Spread

__all__ = ["main"]

GOAL_S = 1.0
GOAL_RSS_MB = 150


async def _open_once(path: Path, mode: str, limit: float, check_keys: int | None) -> dict[str, Any]:
    with benchlib.scratch("open") as folder:
        return await _open_in(folder, path, mode, limit, check_keys)


async def _open_in(
    folder: Path, path: Path, mode: str, limit: float, check_keys: int | None
) -> dict[str, Any]:
    args = ["peer", "--db", str(path)] if mode == "shoal" else ["raw-open", "--db", str(path)]
    if mode != "shoal":
        args += ["--what", mode]
    child = await Child.start(f"open-{mode}", folder, *args)
    async with child:
        imported = await child.event("imported", 60.0)
        ready = await child.event("ready", limit)
        out = {
            "open_s": ready["open_s"],
            "rss_kib": ready["rss_kib"],
            "hwm_kib": ready["hwm_kib"],
            "imported_kib": imported["rss_kib"],
        }
        if check_keys is not None:
            # After the timed open: the peer lists every key of the file (the objects are
            # on disk, loaded on demand; its status counts only those in memory).
            listed = await child.ask({"cmd": "count-keys"}, "count-keys", limit + 120)
            keys = listed["keys"]
            if keys != check_keys:
                raise AssertionError(f"the peer reports {keys} keys; the file holds {check_keys}")
    return out


def _run(path: Path, mode: str, limit: float, check: int | None = None) -> dict[str, Any]:
    try:
        return asyncio.run(asyncio.wait_for(_open_once(path, mode, limit, check), limit + 60))
    except TimeoutError as exc:
        raise TimeoutError(f"no open within {limit:.0f} s") from exc


def measure(size: int, args: argparse.Namespace) -> dict[str, benchlib.Outcome]:
    built = dbgen.ensure(args.shape, size, args.form)
    checked: list[bool] = []

    def shoal(left: float) -> dict[str, Any]:
        check = None if checked else built.keys
        checked.append(True)
        return _run(built.a, "shoal", min(args.limit, left), check)

    print(f"  {size:,} keys ({args.shape}, {args.form}): {built.a}", flush=True)
    return benchlib.interleaved(
        [
            ("shoal", shoal),
            ("raw point read", lambda left: _run(built.a, "point", min(args.limit, left))),
            ("raw full scan", lambda left: _run(built.a, "scan", min(args.limit, left))),
        ],
        args.runs,
        args.budget,
    )


def _series(outcome: benchlib.Outcome, field: str, scale: float = 1.0) -> Spread:
    return Spread([r[field] * scale for r in outcome.results])


def report(results: dict[int, dict[str, benchlib.Outcome]]) -> bool:
    """Print the goal tables; True if a goal is missed."""
    time_table = GoalTable(
        "open: seconds from Peer.open(path) to its return, fresh process",
        f"<= {GOAL_S:.0f} s at any key count",
    )
    mem_table = GoalTable(
        "open: memory of the process after open (VmRSS) and its peak (VmHWM)",
        f"<= {GOAL_RSS_MB} MB resident after open, at any key count",
    )
    for size, out in results.items():
        shoal, point, scan = out["shoal"], out["raw point read"], out["raw full scan"]
        ref = (
            f"point read {_series(point, 'open_s', 1000).text('{:,.1f}', ' ms')}; "
            f"full scan {_series(scan, 'open_s').text('{:,.2f}', ' s')}"
        )
        if not shoal.results:
            time_table.add(f"{size:,} keys", shoal.failure or "no run", ref, "n/a", False)
            mem_table.add(f"{size:,} keys", shoal.failure or "no run", "", "n/a", False)
            continue
        s = _series(shoal, "open_s")
        ratio = (
            f"{s.median / _series(scan, 'open_s').median:.1f}x the full scan"
            if scan.results
            else "n/a"
        )
        time_table.add(f"{size:,} keys", s.text("{:,.2f}", " s"), ref, ratio, s.median <= GOAL_S)
        rss = _series(shoal, "rss_kib", 1 / 1024)
        hwm = _series(shoal, "hwm_kib", 1 / 1024)
        floor = _series(shoal, "imported_kib", 1 / 1024)
        scan_rss = _series(scan, "rss_kib", 1 / 1024)
        mem_table.add(
            f"{size:,} keys",
            f"after open {rss.text('{:,.0f}', ' MB')}; peak {hwm.text('{:,.0f}', ' MB')} "
            f"(imports alone: {floor.text('{:,.0f}', ' MB')})",
            f"full scan holds {scan_rss.text('{:,.0f}', ' MB')}" if scan.results else "n/a",
            f"{rss.median / scan_rss.median:.1f}x" if scan.results else "n/a",
            rss.median <= GOAL_RSS_MB,
        )
    time_table.print()
    mem_table.print()
    return time_table.missed or mem_table.missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="key counts, commas")
    parser.add_argument("--shape", choices=["lww", "mixed"], default="lww")
    parser.add_argument("--form", choices=dbgen.FORMS, default="compacted")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit", type=float, default=180.0, help="seconds allowed per open")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds per side and size")
    parser.add_argument("--quick", action="store_true", help="10k and 100k keys, one run")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.runs = "10000,100000", 1
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not sizes or min(sizes) < 1 or args.runs < 1:
        parser.error("--sizes must be positive key counts and --runs at least 1")
    benchlib.preamble("open_bench: open a database of many small keys (issue 11)", argv)
    results = {size: measure(size, args) for size in sizes}
    missed = report(results)
    print(f"load average at the end: {benchlib.load_now()}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
