"""A new peer joins an old peer that holds 100k keys: time until all is durable, memory (issue 11).

Run: ``.venv/bin/python benchmarks/bootstrap_bench.py`` (three cases, 3 runs each;
``--cases mixed:100000`` to choose, ``--quick`` for a smoke run).

Cases (``SHAPE:N``, databases from ``dbgen.py``, cached under ``benchmarks/out/db/``):

* ``mixed:100000``: 100k keys cycling through the six kinds, one write each;
* ``lww:100000``: 100k LWW registers;
* ``ormap:100000``: one ORMap of 100k register entries.

Each old database is in its compacted form (objects and summaries, no log: what a lone peer
holds once its own writes are stable), so the newcomer gets a state transfer.

**shoal.** Two processes (``bench_child.py``), each with its own SQLite file
(``synchronous=FULL``), ``n=3, w=1``, default anti-entropy: the old peer A opens a fresh copy
of the cached database and listens on 127.0.0.1; once it is open, its peak memory is reset
(``/proc/PID/clear_refs``) and the new peer B, on an empty database, dials it. The clock
runs from B's call to ``Peer.open`` until B's SQLite file holds in its ``summaries`` every log
dot that A's file holds (a separate read-only connection polls it every 20 ms, as
``e2e_bench.py`` does: only committed data counts); once both closed, B's file must hold
every object of A's file with the same state text (the canonical encodings). Reported:
seconds; the CPU time B used from its start (its imports and open included: on a shared
machine a steadier figure than the seconds) and A used while serving; B's peak resident
memory (``VmHWM``); A's memory after open and how much its peak grew while serving; the
bytes A sent (websocket message payloads, from A's status); per run, the store reads B
made for its inputs (``b_loads``: a new peer's store holds nothing to find), B's commits
and the pages A read (from their status). A case that is not durable within ``--limit``
seconds is reported as failing, with B's progress and the last error line of either peer's
log.

**References, same run, interleaved** (shoal, pycrdt, sqlite3, shoal, ...):

* pycrdt full-state sync: a ``Doc`` whose ``Map`` holds the same rows (each key -> its
  stored state text; for the ORMap, each entry -> its value) encodes its full state and a
  fresh ``Doc`` applies it, in this process, no network;
* raw sqlite3 insert of the same rows: the object rows of A's file inserted into a fresh file
  of the store's schema in one transaction (WAL, ``synchronous=FULL``, commit included).

Goals of issue 11: durable in at most 2 s with B's peak at most 100 MB; A streams the
bootstrap in bounded memory (today it builds the snapshot of every object in one step).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
import dbgen
from benchlib import Child, GoalTable, Spread
from e2e_bench import _applied_dots

__all__ = ["main"]

GOAL_S = 2.0
GOAL_RSS_MB = 100
POLL_S = 0.02
OPTIONS = {"n": 3, "w": 1, "secret": benchlib.SECRET.decode()}


# --------------------------------------------------------------------------- shoal


def _last_error(log: Path) -> str | None:
    """The last line of a child's log that names an error or a refused message."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    pattern = re.compile(r"error|refus|too big|1009|exceed|Traceback", re.IGNORECASE)
    hits = [line.strip() for line in lines if pattern.search(line)]
    return hits[-1][:300] if hits else None


async def _bootstrap(built: dbgen.Built, limit: float) -> dict[str, Any]:
    with benchlib.scratch("bootstrap") as folder:
        return await _bootstrap_in(folder, built, limit)


async def _bootstrap_in(folder: Path, built: dbgen.Built, limit: float) -> dict[str, Any]:
    a_path = dbgen.copy_db(built.a, folder / "a.db")
    b_path = folder / "b.db"
    target = _applied_dots(a_path, built.origin)
    options = json.dumps(OPTIONS)
    a = await Child.start("old-peer-A", folder, "peer", "--db", str(a_path), "--listen",
                          "127.0.0.1:0", "--options", options)  # fmt: skip
    async with a:
        ready_a = await a.event("ready", 300.0)
        peak_reset = benchlib.reset_peak(a.pid)
        a_before = a.memory()["rss_kib"]
        a_cpu0 = benchlib.proc_cpu(a.pid)
        b = await Child.start("new-peer-B", folder, "peer", "--db", str(b_path), "--peer",
                              ready_a["url"], "--options", options)  # fmt: skip
        async with b:
            imported_b = await b.event("imported", 60.0)
            ready_b = await b.event("ready", 60.0)
            start = ready_b["t_open_start"]
            deadline = start + limit
            a_max = a_before
            have = 0
            while True:
                have = await asyncio.to_thread(_applied_dots, b_path, built.origin)
                a_max = max(a_max, a.memory()["rss_kib"])  # sampled, if clear_refs refused
                if have >= target or time.time() > deadline:
                    break
                await asyncio.sleep(POLL_S)
            took = time.time() - start
            b_cpu, a_cpu = benchlib.proc_cpu(b.pid), benchlib.proc_cpu(a.pid) - a_cpu0
            b_mem, a_mem = b.memory(), a.memory()
            if have < target:
                cause = _last_error(a.log) or _last_error(b.log) or "no error logged"
                raise TimeoutError(
                    f"B durable on {have:,} of {target:,} log dots after {limit:.0f} s; "
                    f"last error: {cause}"
                )
            status_a = (await a.ask({"cmd": "status"}, "status", 60.0))["status"]
            node_b = (await b.ask({"cmd": "status"}, "status", 60.0))["status"]["node"]
    # B's committed objects, byte for byte those of A's file (canonical encodings).
    mismatch = await asyncio.to_thread(_compare_objects, a_path, b_path)
    if mismatch is not None:
        raise AssertionError(f"B's objects differ from A's: {mismatch}")
    a_peak = a_mem["hwm_kib"] if peak_reset else a_max
    return {
        "seconds": took,
        "b_cpu_s": b_cpu,
        "a_cpu_s": a_cpu,
        "b_peak_kib": b_mem["hwm_kib"],
        "b_imported_kib": imported_b["rss_kib"],
        "a_open_kib": ready_a["rss_kib"],
        "a_before_kib": a_before,
        "a_growth_kib": max(0, a_peak - a_before),
        "a_peak_how": "VmHWM after clear_refs" if peak_reset else "VmRSS sampled every 20 ms",
        "bytes_sent": sum(p["bytes_out"] for p in status_a["peers"].values()),
        "b_loads": node_b["loads"],
        "b_commits": node_b["commits"],
        "a_pages": status_a["node"]["pages_read"],
    }


def _compare_objects(a_path: Path, b_path: Path) -> str | None:
    """None if both files hold the same objects with the same state texts, else what
    differs (B's file is read after B closed: everything it acknowledged is in it)."""

    def rows(path: Path) -> dict[tuple[str, str], str]:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return {
                (k, kind): st
                for k, kind, st in conn.execute("SELECT key, kind, state FROM objects")
            }
        finally:
            conn.close()

    a, b = rows(a_path), rows(b_path)
    if a.keys() != b.keys():
        return f"A holds {len(a):,} objects, B {len(b):,} ({len(a.keys() - b.keys()):,} missing)"
    differ = [oid for oid, text in a.items() if b[oid] != text]
    return f"{len(differ):,} states differ, e.g. {differ[0]}" if differ else None


def run_shoal(built: dbgen.Built, limit: float) -> dict[str, Any]:
    return asyncio.run(asyncio.wait_for(_bootstrap(built, limit), limit + 420.0))


# --------------------------------------------------------------------------- references


def _rows(built: dbgen.Built) -> list[tuple[str, str, int, str]]:
    conn = sqlite3.connect(f"file:{built.a}?mode=ro", uri=True)
    try:
        return list(conn.execute("SELECT key, kind, partition, state FROM objects ORDER BY key"))
    finally:
        conn.close()


def _pycrdt_items(built: dbgen.Built, rows: list[tuple[str, str, int, str]]) -> dict[str, Any]:
    """What the pycrdt ``Map`` holds: the same rows, in pycrdt's terms."""
    if built.shape != "ormap":
        return {key: state for key, _kind, _part, state in rows}
    import crdt

    (_key, _kind, _part, state), *_ = rows
    value = crdt.from_dict(json.loads(state)).value
    return {str(k): v for k, v in value.items()}


def run_pycrdt(items: dict[str, Any]) -> float:
    from pycrdt import Doc, Map

    doc = Doc()
    table = doc.get("m", type=Map)
    with doc.transaction():
        for key, value in items.items():
            table[key] = value
    start = time.perf_counter()
    fresh = Doc()
    got = fresh.get("m", type=Map)
    fresh.apply_update(doc.get_update())
    took = time.perf_counter() - start
    if len(got) != len(items):
        raise AssertionError(f"pycrdt synced {len(got)} of {len(items)} entries")
    return took


def run_sqlite(rows: list[tuple[str, str, int, str]]) -> float:
    from store_bench import _raw_db

    with benchlib.scratch("bootstrap-raw") as folder:
        conn = _raw_db(folder / "raw.db", "FULL")
        try:
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO objects (key, kind, partition, state) VALUES (?, ?, ?, ?)", rows
            )
            conn.execute("COMMIT")
            return time.perf_counter() - start
        finally:
            conn.close()


# --------------------------------------------------------------------------- report


def measure(case: str, args: argparse.Namespace) -> tuple[dbgen.Built, dict[str, Any]]:
    shape, n = case.split(":")
    built = dbgen.ensure(shape, int(n), "compacted")
    rows = _rows(built)
    items = _pycrdt_items(built, rows)
    cases: list[tuple[str, Any]] = [("shoal", lambda left: run_shoal(built, min(left, args.limit)))]
    missing = benchlib.pycrdt_missing()
    if missing is None:
        cases.append(("pycrdt full-state sync", lambda _left: run_pycrdt(items)))
    else:
        print(f"  pycrdt is not installed ({missing}): its column is left out", flush=True)
    cases.append(("raw sqlite3 insert", lambda _left: run_sqlite(rows)))
    print(f"  case {case}: {built.keys:,} keys, {built.writes:,} writes, {built.a}", flush=True)
    return built, benchlib.interleaved(cases, args.runs, args.budget)


def report(results: list[tuple[str, dbgen.Built, dict[str, Any]]]) -> bool:
    time_t = GoalTable(
        "bootstrap: a new peer B joins an old peer A; seconds until B holds all durably",
        f"<= {GOAL_S:.0f} s",
    )
    mem_t = GoalTable(
        "bootstrap: memory of the new peer B (peak) and of the old peer A (serving)",
        f"B's peak <= {GOAL_RSS_MB} MB; A streams the bootstrap in bounded memory",
    )
    for case, _built, out in results:
        shoal = out["shoal"]
        pyc = out.get("pycrdt full-state sync")
        raw = out["raw sqlite3 insert"]
        ref_bits = []
        if pyc is not None and pyc.results:
            ref_bits.append(f"pycrdt {Spread(pyc.results).text('{:.3f}', ' s')}")
        ref_bits.append(f"sqlite3 insert {Spread(raw.results).text('{:.3f}', ' s')}")
        ref = "; ".join(ref_bits)
        if not shoal.results:
            mark = time_t.note(f"{case}: {shoal.failure}")
            time_t.add(case, f"FAILS {mark}", ref, "n/a", False)
            mem_t.add(case, "n/a (did not finish)", "", "", False)
            continue
        secs = Spread([r["seconds"] for r in shoal.results])
        ratio = "n/a"
        if pyc is not None and pyc.results:
            ratio = f"{secs.median / Spread(pyc.results).median:,.0f}x pycrdt"
        b_cpu = Spread([r["b_cpu_s"] for r in shoal.results])
        a_cpu = Spread([r["a_cpu_s"] for r in shoal.results])
        took = (
            f"{secs.text('{:.2f}', ' s')} (CPU: B {b_cpu.text('{:.2f}', ' s')} from its start, "
            f"A {a_cpu.text('{:.2f}', ' s')} serving)"
        )
        time_t.add(case, took, ref, ratio, secs.median <= GOAL_S)
        b_peak = Spread([r["b_peak_kib"] / 1024 for r in shoal.results])
        b_floor = Spread([r["b_imported_kib"] / 1024 for r in shoal.results])
        growth = Spread([r["a_growth_kib"] / 1024 for r in shoal.results])
        a_open = Spread([r["a_open_kib"] / 1024 for r in shoal.results])
        sent = Spread([r["bytes_sent"] / 1e6 for r in shoal.results])
        mem_t.add(
            case,
            f"B peak {b_peak.text('{:,.0f}', ' MB')} (imports alone "
            f"{b_floor.text('{:,.0f}', ' MB')}); A +{growth.text('{:,.0f}', ' MB')} "
            f"serving (after open {a_open.text('{:,.0f}', ' MB')}); "
            f"{sent.text('{:,.1f}', ' MB')} sent",
            "",
            "",
            b_peak.median <= GOAL_RSS_MB,
        )
        print(f"  {case}: A's serving peak measured by {shoal.results[0]['a_peak_how']}")
    time_t.print()
    mem_t.print()
    return time_t.missed or mem_t.missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", default="mixed:100000,lww:100000,ormap:100000", help="SHAPE:N, commas"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit", type=float, default=60.0, help="seconds allowed per run")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per side and case")
    parser.add_argument("--quick", action="store_true", help="mixed:20000 and ormap:100000, once")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.cases, args.runs, args.limit = "mixed:20000,ormap:100000", 1, 20.0
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        shape, _, n = c.partition(":")
        if shape not in ("lww", "mixed", "ormap", "orset") or not n.isdigit():
            parser.error(f"bad case {c!r}: SHAPE:N with SHAPE in lww, mixed, ormap, orset")
    benchlib.preamble("bootstrap_bench: a new peer joins a peer holding many keys (issue 11)", argv)
    results = []
    for case in cases:
        built, out = measure(case, args)
        results.append((case, built, out))
    missed = report(results)
    print(f"load average at the end: {benchlib.load_now()}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
