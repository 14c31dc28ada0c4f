"""A relay on PostgreSQL holding many keys: open, memory, and two devices catching up (issue 11).

Run: ``.venv/bin/python benchmarks/pg_relay_bench.py`` (1M keys; ``--keys N`` to choose,
``--watch S`` for how long the devices catch up; ``--quick`` for 20k keys under a 4 MiB
cache, until both hold every key, at most 50 s). The PostgreSQL server is ``--pg-url``, else
``SHOAL_TEST_PG_URL``, else the one ``scripts/test-postgres.sh start`` starts (installing
Debian's package when missing, as root; fsync off: a test server).

The data: ``N`` keys cycling through the six kinds, written once each, in the state a relay
reaches once its writes are everywhere (object checkpoints and summaries, log compacted),
built with ``dbgen.py``'s rows through the store's batch API into the database
``shoal_bench_mixed_<N>_g<generator>_s<schema>`` of that server, once, and reused (1M keys
take from about five minutes on a quiet 2-core machine to much longer on a busy one; the
build prints its time). Each run works on a copy (``CREATE DATABASE ... TEMPLATE``), dropped
afterwards.

In one run, in this order:

* **raw asyncpg** (the anchor, same server, same copy): ``SELECT count(*) FROM objects``, and
  a scan of every object row (key, kind, state) through a server-side cursor, in rows/s.
* **shoal relay, open**: ``Peer.open(URL, relay=True, listen=..., cache_bytes=C)`` in a
  fresh process (``bench_child.py``), timed from the call to its return; its resident set
  size (``VmRSS``) once everything is imported and right after open.
* **two devices catch up through it**: two device processes on SQLite files dial the relay;
  every 0.5 s the relay's ``VmRSS`` is sampled and each device's durable objects counted (raw
  sqlite3 on its file), until both hold every key or ``--watch`` seconds pass. Reported: the
  keys each device holds, the keys per second delivered to the two together, the relay's
  resident set at its largest (sampled; and its ``VmHWM`` after a reset at the start of the
  catch-up where the kernel allows ``clear_refs``), and the relay's objects in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
import dbgen
from benchlib import ROOT, Child

from store import SCHEMA_VERSION, Store

__all__ = ["main"]

SHAPE = "mixed"
POLL_S = 0.5


# --------------------------------------------------------------------------- the server


def _server_url(given: str | None) -> str:
    url = given or os.environ.get("SHOAL_TEST_PG_URL")
    if url:
        return url
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test-postgres.sh"), "start"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _with_db(url: str, name: str, driver: str = "postgresql+asyncpg") -> str:
    from sqlalchemy import make_url

    return make_url(url).set(database=name, drivername=driver).render_as_string(False)


async def _admin(url: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(_with_db(url, "postgres", "postgresql"))
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def _exists(url: str, name: str) -> bool:
    rows = await _admin(url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    return bool(rows)


async def ensure_pg(url: str, n: int) -> str:
    """The name of the cached database of ``n`` mixed keys on the server (built if missing)."""
    name = f"shoal_bench_{SHAPE}_{n}_g{dbgen.GENERATOR}_s{SCHEMA_VERSION}"
    if await _exists(url, name):
        return name
    building = f"{name}_building"
    await _admin(url, f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
    await _admin(url, f'CREATE DATABASE "{building}" TEMPLATE template0')
    print(f"  building {n:,} {SHAPE} keys into PostgreSQL database {name} ...", flush=True)
    t0 = time.perf_counter()
    async with await Store.open(_with_db(url, building), partitions=dbgen.PARTITIONS) as st:
        origin = st.replica_id
        for batch in dbgen._batches(SHAPE, n, origin, "compacted"):
            await st.apply(batch)
    await _admin(url, f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    print(f"  built in {time.perf_counter() - t0:.1f} s", flush=True)
    return name


# --------------------------------------------------------------------------- the anchor


async def raw_anchor(url: str) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(_with_db(url, make_db(url), "postgresql"))
    try:
        t0 = time.perf_counter()
        count = await conn.fetchval("SELECT count(*) FROM objects")
        count_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = 0
        async with conn.transaction():
            async for _ in conn.cursor("SELECT key, kind, state FROM objects", prefetch=5000):
                rows += 1
        scan_s = time.perf_counter() - t0
    finally:
        await conn.close()
    return {"count": count, "count_s": count_s, "scan_rows": rows, "scan_s": scan_s}


def make_db(url: str) -> str:
    from sqlalchemy import make_url

    return str(make_url(url).database)


# --------------------------------------------------------------------------- the run


def _durable(path: Path) -> int:
    """Objects committed in a device's SQLite file (0 before it exists)."""
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM objects").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet


async def run(url: str, n: int, cache_bytes: int, watch: float) -> dict[str, Any]:
    built = await ensure_pg(url, n)
    copy = f"shoal_bench_run_{uuid.uuid4().hex[:10]}"
    await _admin(url, f'CREATE DATABASE "{copy}" TEMPLATE "{built}"')
    run_url = _with_db(url, copy)
    try:
        anchor = await raw_anchor(run_url)
        with benchlib.scratch("pg-relay") as folder:
            out = await _run_in(folder, run_url, n, cache_bytes, watch)
    finally:
        await _admin(url, f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
    return {**out, "anchor": anchor, "database": built}


async def _run_in(folder: Path, url: str, n: int, cache_bytes: int, watch: float) -> dict[str, Any]:
    secret = benchlib.SECRET.decode()
    relay_opts = json.dumps({"relay": True, "cache_bytes": cache_bytes, "secret": secret})
    device_opts = json.dumps({"secret": secret})
    relay = await Child.start("relay", folder, "peer", "--db", url, "--listen", "127.0.0.1:0",
                              "--options", relay_opts)  # fmt: skip
    async with relay:
        imported = await relay.event("imported", 60.0)
        ready = await relay.event("ready", 600.0)
        peak_reset = benchlib.reset_peak(relay.pid)
        before = relay.memory()["rss_kib"]
        paths = [folder / "d1.db", folder / "d2.db"]
        d1 = await Child.start("device-1", folder, "peer", "--db", str(paths[0]), "--peer",
                               ready["url"], "--options", device_opts)  # fmt: skip
        async with d1:
            d2 = await Child.start("device-2", folder, "peer", "--db", str(paths[1]), "--peer",
                                   ready["url"], "--options", device_opts)  # fmt: skip
            async with d2:
                await d1.event("ready", 60.0)
                await d2.event("ready", 60.0)
                t0 = time.time()
                most = before
                held = [0, 0]
                while True:
                    most = max(most, relay.memory()["rss_kib"])
                    held = [await asyncio.to_thread(_durable, p) for p in paths]
                    if min(held) >= n or time.time() - t0 > watch:
                        break
                    await asyncio.sleep(POLL_S)
                took = time.time() - t0
                mem = relay.memory()
                status = (await relay.ask({"cmd": "status"}, "status", 60.0))["status"]
                devices_hwm = [d1.memory()["hwm_kib"], d2.memory()["hwm_kib"]]
    return {
        "open_s": ready["open_s"],
        "imported_kib": imported["rss_kib"],
        "open_kib": ready["rss_kib"],
        "before_kib": before,
        "most_kib": max(most, mem["hwm_kib"]) if peak_reset else most,
        "peak_how": "VmHWM after clear_refs" if peak_reset else "VmRSS sampled every 0.5 s",
        "held": held,
        "seconds": took,
        "relay_objects": status["keys"],
        "bytes_out": sum(p["bytes_out"] for p in status["peers"].values()),
        "devices_hwm_kib": devices_hwm,
    }


def report(n: int, cache_bytes: int, r: dict[str, Any]) -> None:
    a = r["anchor"]
    delivered = sum(r["held"])
    print(f"  database {r['database']}: {a['count']:,} objects")
    print("| figure | shoal relay | raw asyncpg, same server |")
    print("| --- | --- | --- |")
    print(
        f"| open {n:,} keys (cache_bytes {cache_bytes // 1024:,} KiB) | {r['open_s']:.2f} s | "
        f"count(*) {a['count_s'] * 1000:,.0f} ms |"
    )
    print(
        f"| relay RSS: imports / after open | {benchlib.mib(r['imported_kib'])} / "
        f"{benchlib.mib(r['open_kib'])} | |"
    )
    rate = delivered / r["seconds"] if r["seconds"] else 0.0
    scan_rate = a["scan_rows"] / a["scan_s"] if a["scan_s"] else 0.0
    print(
        f"| two devices catch up for {r['seconds']:.0f} s | {r['held'][0]:,} + {r['held'][1]:,} "
        f"keys durable ({rate:,.0f} keys/s together) | scan of every object row "
        f"{scan_rate:,.0f} rows/s |"
    )
    print(
        f"| relay RSS during the catch-up | at most {benchlib.mib(r['most_kib'])} "
        f"({r['peak_how']}); {r['relay_objects']:,} objects in memory at the end | |"
    )
    print(
        f"| devices' peak RSS | {benchlib.mib(r['devices_hwm_kib'][0])}, "
        f"{benchlib.mib(r['devices_hwm_kib'][1])} | |"
    )
    print(f"  relay sent {r['bytes_out'] / 2**20:,.1f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--cache-bytes", type=int, default=64 * 1024 * 1024)
    parser.add_argument("--watch", type=float, default=60.0, help="seconds of catch-up at most")
    parser.add_argument("--pg-url", help="the server's SQLAlchemy URL (any database on it)")
    parser.add_argument(
        "--quick", action="store_true", help="20k keys, 4 MiB cache, until caught up"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.keys, args.watch, args.cache_bytes = 20_000, 50.0, 4 * 1024 * 1024
    if args.keys < 1 or args.cache_bytes < 1 or args.watch <= 0:
        parser.error("--keys, --cache-bytes and --watch must be positive")
    benchlib.preamble("pg_relay_bench: a relay on PostgreSQL, two devices catching up", argv)
    url = _server_url(args.pg_url)
    result = asyncio.run(run(url, args.keys, args.cache_bytes, args.watch))
    report(args.keys, args.cache_bytes, result)
    print(f"load average at the end: {benchlib.load_now()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
