"""Issue 14's speed goals, one table each, every figure beside a reference of the same run.

Run: ``.venv/bin/python benchmarks/speed_bench.py`` (every goal, 5 runs of each side;
``--goals serial,w2`` to choose, ``--runs K``, ``--quick`` for smaller counts and one run,
``--check`` to exit 1 when a goal is missed). About 10 minutes in all on the 2-core machine;
``--quick`` about 2.

| goal | what (see the module that measures it) |
| --- | --- |
| ``serial`` | one write in flight, w=1, durable, vs raw sqlite3 (``speed_local.py``) |
| ``w2`` | w=2 across two peers on loopback: p50 and p99 (``speed_wire.py``) |
| ``inflight`` | 1, 10, 100, 10,000 writes in flight vs pycrdt-websocket (``speed_wire.py``) |
| ``bytes`` | one change to a 100k-element ORSet: bytes per hop (``speed_wire.py``) |
| ``growth`` | cost per update at 100k updates vs at 10k (``speed_wire.py``) |
| ``concurrent`` | 1000 concurrent single writers at NORMAL vs raw (``speed_local.py``) |

Runs of shoal and of its reference alternate (shoal, reference, shoal, ...), so the noise of
the shared machine hits both alike; each figure is the median with its range. Each table
names the goal and says whether it is met in this run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
import speed_local
import speed_wire
from benchlib import GoalTable

__all__ = ["GOALS", "main"]

GOALS: dict[str, Callable[[argparse.Namespace], GoalTable]] = {
    "serial": speed_local.goal_serial,
    "w2": speed_wire.goal_w2,
    "inflight": speed_wire.goal_inflight,
    "bytes": speed_wire.goal_bytes,
    "growth": speed_wire.goal_growth,
    "concurrent": speed_local.goal_concurrent,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", default=",".join(GOALS), help="which goals, commas")
    parser.add_argument("--runs", type=int, default=5, help="runs of each side (median)")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per side and row")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smaller counts, one run")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1
    chosen = [g for g in args.goals.split(",") if g]
    unknown = [g for g in chosen if g not in GOALS]
    if unknown or args.runs < 1:
        parser.error(f"unknown goals {unknown}; choose among {', '.join(GOALS)}")
    benchlib.preamble("speed_bench: the speed goals of issue 14", argv)
    tables = []
    for goal in chosen:
        table = GOALS[goal](args)
        table.print()
        tables.append(table)
    if len(tables) > 1:
        print("== all tables")
        for table in tables:
            table.print()
    missed = [t.title for t in tables if t.missed]
    print(f"goals missed in this run: {len(missed)} of {len(tables)}")
    print(f"load average at the end: {benchlib.load_now()}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
