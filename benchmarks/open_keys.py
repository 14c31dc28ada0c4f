"""Opening a database of many small keys: wall time and memory, in a fresh process.

Builds (once, then reuses) a SQLite database of N gcounters through the store's batch API,
then, in a fresh Python process each time, opens a Peer on it (no network), and reports the
seconds ``Peer.open`` took, the resident set size after it and the peak of the process,
and then the same after reading 1,000 random keys. Run it from the repository root::

    .venv/bin/python benchmarks/open_keys.py --keys 100000 1000000 [--dir /tmp/shoal-open]

(the databases go in ``--dir``: about 130 MB for 1M keys). The same script measures an
older checkout with ``PYTHONPATH=/path/to/that/checkout`` and another ``--dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _build(path: Path, n: int) -> None:
    import crdt
    from store import Batch, ObjectRow, Store

    async with await Store.open(path, synchronous="NORMAL") as st:
        for start in range(0, n, 5000):
            rows = tuple(
                ObjectRow(
                    f"key:{i:07d}", "gcounter", crdt.GCounter().increment("seed", i + 1).to_dict()
                )
                for i in range(start, min(n, start + 5000))
            )
            await st.apply(Batch(objects=rows))


async def _measure(path: Path, n: int) -> dict[str, float]:
    from sync.transport.peer import Peer

    base = _rss_mb()
    t0 = time.perf_counter()
    peer = await Peer.open(str(path), anti_entropy_interval=0)
    opened = time.perf_counter() - t0
    out = {
        "open_s": opened,
        "rss_before_mb": base,
        "rss_open_mb": _rss_mb(),
        "peak_open_mb": _peak_mb(),
    }
    rng = random.Random(1)
    t0 = time.perf_counter()
    for i in rng.sample(range(n), 1000):
        assert await peer.gcounter(f"key:{i:07d}").value() == i + 1
    out["read_1000_s"] = time.perf_counter() - t0
    out["rss_read_mb"] = _rss_mb()
    out["peak_mb"] = _peak_mb()
    await peer.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, nargs="+", default=[100_000])
    ap.add_argument("--dir", default="/tmp/shoal-open")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_measure(Path(args.child[0]), int(args.child[1])))))
        return
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    for n in args.keys:
        path = Path(args.dir) / f"keys-{n}.db"
        if not path.exists():
            t0 = time.perf_counter()
            asyncio.run(_build(path, n))
            print(f"built {path} in {time.perf_counter() - t0:.1f} s")
        result = subprocess.run(
            [sys.executable, __file__, "--child", str(path), str(n)],
            check=True,
            capture_output=True,
            text=True,
        )
        r = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"{n:>9,} keys: open {r['open_s']:.2f} s, RSS {r['rss_open_mb']:.0f} MB after open "
            f"(process start {r['rss_before_mb']:.0f} MB, peak {r['peak_open_mb']:.0f} MB); "
            f"1,000 random reads {r['read_1000_s']:.2f} s, RSS {r['rss_read_mb']:.0f} MB, "
            f"peak {r['peak_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
