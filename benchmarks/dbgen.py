"""Databases for the scale benchmarks, built fast through the store's batch API and cached.

A peer that made ``N`` writes leaves, per write, an object checkpoint, a log entry (until
compaction) and its partition's summary. Writing a million of them through a running peer
would take minutes, so this module writes the same rows directly with
:meth:`store.Store.apply`, in batches of :data:`BATCH` writes, from real CRDT mutations (every
state and delta below is made by the ``crdt`` types' own mutators, and encoded by them).

Shapes (the data):

* ``lww``: ``N`` keys, each one LWW register holding a short string.
* ``mixed``: ``N`` keys cycling through the six kinds (lww, gcounter, pncounter, mvregister,
  orset with one element, ormap with one register entry), one write each.
* ``ormap``: one key, an ORMap of ``N`` register entries, one write per entry.
* ``orset``: one key, an ORSet of ``N`` elements, one write per element.

Forms (what the log holds):

* ``compacted``: objects and summaries, no log: what a peer reaches once every home has seen
  its writes (a lone peer compacts at once: it is the only home).
* ``log``: the log entries too, and a peer record for an absent home that has never
  reported, so that the engine's compaction (causal stability) keeps waiting and the log stays.

The writes' origin is the replica id minted by the store that builds the first database,
called ``origin`` below. With ``pair=True`` a second database ``b.db`` gets the same rows
(same origin, its own replica id): two converged peers. Each database is built once into
``benchmarks/out/db/<shape>-<N>-<form>-g<generator>-s<schema>/`` and reused; a run copies it
first (:func:`copy_db`) when the run changes it. A copy opened by a peer gets a new replica id
(the store notices the file moved), so in a run the data's origin is a third id: the
figures do not depend on it.

``python benchmarks/dbgen.py SHAPE N [--form F] [--pair]`` builds one (and prints where).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import OUT

import crdt
from store import SCHEMA_VERSION, Batch, LogRow, ObjectRow, PeerRow, Store
from store import default_partition_of as partition_of

__all__ = ["SHAPES", "Built", "copy_db", "ensure"]

GENERATOR = 1  # bump when the rows below change: cached databases are then rebuilt
BATCH = 5000  # writes per store transaction while building
PARTITIONS = 64  # the engine's default (ReplicaConfig.partitions)
BASE_MS = 1_780_000_000_000  # wall time of the writes (HLC timestamps), fixed for repeatability
ABSENT_HOME = "absent-home-never-reported"
SHAPES = ("lww", "mixed", "ormap", "orset")
FORMS = ("compacted", "log")


@dataclass(frozen=True)
class Built:
    """A cached database (and its converged twin when built as a pair)."""

    folder: Path
    shape: str
    keys: int  # objects in the database
    writes: int  # log dots of ``origin`` in the summaries
    form: str
    origin: str

    @property
    def a(self) -> Path:
        return self.folder / "a.db"

    @property
    def b(self) -> Path:
        return self.folder / "b.db"


# --------------------------------------------------------------------------- the writes


def _one_write(kind: str, origin: str, i: int) -> crdt.CRDT:
    """The state of a fresh object of ``kind`` after one write (it equals its delta)."""
    now = BASE_MS + i
    obj = crdt.new(kind)
    if kind == "lww":
        obj.set(origin, f"value {i}", now_ms=now)
    elif kind == "gcounter":
        obj.increment(origin, 1 + i % 7)
    elif kind == "pncounter":
        obj.increment(origin, 1 + i % 5)
    elif kind == "mvregister":
        obj.set(origin, f"note {i}")
    elif kind == "orset":
        obj.add(origin, f"element {i}")
    else:
        obj.update(origin, f"field {i % 10}", "lww", lambda reg: reg.set(origin, i, now_ms=now))
    return obj


MIXED = ("lww", "gcounter", "pncounter", "mvregister", "orset", "ormap")


def _many_keys(shape: str, n: int, origin: str) -> Iterator[list[tuple[str, str, crdt.CRDT]]]:
    """Chunks of (key, kind, state) for ``n`` keys written once each."""
    chunk: list[tuple[str, str, crdt.CRDT]] = []
    for i in range(n):
        kind = "lww" if shape == "lww" else MIXED[i % len(MIXED)]
        chunk.append((f"{kind}:{i:07d}", kind, _one_write(kind, origin, i)))
        if len(chunk) == BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _one_object(shape: str, n: int, origin: str) -> tuple[str, str, crdt.CRDT, list[crdt.CRDT]]:
    """(key, kind, final state, deltas) of one object grown by ``n`` writes."""
    if shape == "ormap":
        key, obj = "big:map", crdt.ORMap()
        deltas = [
            obj.update(
                origin,
                f"field {i:06d}",
                "lww",
                lambda reg, i=i: reg.set(origin, i, now_ms=BASE_MS + i),
            )
            for i in range(n)
        ]
    else:
        key, obj = "big:set", crdt.ORSet()
        deltas = [obj.add(origin, f"element {i:06d}") for i in range(n)]
    return key, obj.kind, obj, deltas


def _batches(shape: str, n: int, origin: str, form: str) -> Iterator[Batch]:
    """Every write of the database, as the store batches that make it durable."""
    seqs: dict[int, int] = {}

    def log_row(key: str, kind: str, delta: crdt.CRDT) -> tuple[int, LogRow | None]:
        """The write's partition, and its log row if the form keeps the log."""
        p = partition_of(key, PARTITIONS)
        seqs[p] = seqs.get(p, 0) + 1
        if form != "log":
            return p, None
        return p, LogRow(origin, p, seqs[p], key, kind, delta.to_dict(), delta.to_json())

    def summaries(parts: set[int]) -> tuple[tuple[int, dict[str, Any]], ...]:
        return tuple((p, {"vv": {origin: seqs[p]}, "cloud": []}) for p in sorted(parts))

    if form == "log":
        # A home that never reported: compaction waits for it, so the log stays.
        yield Batch(peers=(PeerRow(ABSENT_HOME),))
    if shape in ("lww", "mixed"):
        for chunk in _many_keys(shape, n, origin):
            rows = [log_row(k, kind, s) for k, kind, s in chunk]
            yield Batch(
                objects=tuple(ObjectRow(k, kind, s.to_dict()) for k, kind, s in chunk),
                log=tuple(row for _, row in rows if row is not None),
                summaries=summaries({p for p, _ in rows}),
            )
        return
    key, kind, obj, deltas = _one_object(shape, n, origin)
    for i in range(0, len(deltas), BATCH):
        rows = [log_row(key, kind, d) for d in deltas[i : i + BATCH]]
        yield Batch(
            log=tuple(row for _, row in rows if row is not None),
            summaries=summaries({p for p, _ in rows}),
        )
    yield Batch(objects=(ObjectRow(key, kind, obj.to_dict()),))


async def _write(path: Path, shape: str, n: int, form: str, origin: str | None) -> str:
    # NORMAL: the build need not survive a power loss (closing the store checkpoints it).
    async with await Store.open(path, partitions=PARTITIONS, synchronous="NORMAL") as store:
        origin = origin or store.replica_id
        for batch in _batches(shape, n, origin, form):
            await store.apply(batch)
    return origin


# --------------------------------------------------------------------------- the cache


def _folder(shape: str, n: int, form: str) -> Path:
    return OUT / "db" / f"{shape}-{n}-{form}-g{GENERATOR}-s{SCHEMA_VERSION}"


def ensure(shape: str, n: int, form: str = "compacted", *, pair: bool = False) -> Built:
    """The cached database of ``n`` writes of ``shape`` in ``form`` (built if missing)."""
    if shape not in SHAPES or form not in FORMS or n < 1:
        raise ValueError(f"no such database: {shape!r} {n} {form!r}")
    folder = _folder(shape, n, form)
    meta = folder / "meta.json"
    if meta.exists():
        info = json.loads(meta.read_text())
        if not pair or info["pair"]:
            return Built(folder, shape, info["keys"], n, form, info["origin"])
    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    print(f"  building {shape} database of {n:,} writes ({form}) in {folder} ...", flush=True)
    t0 = time.perf_counter()
    origin = asyncio.run(_write(tmp / "a.db", shape, n, form, None))
    if pair:
        asyncio.run(_write(tmp / "b.db", shape, n, form, origin))
    keys = n if shape in ("lww", "mixed") else 1
    took = time.perf_counter() - t0
    (tmp / "meta.json").write_text(
        json.dumps({"origin": origin, "keys": keys, "pair": pair, "build_s": round(took, 1)})
    )
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    print(f"  built in {took:.1f} s", flush=True)
    return Built(folder, shape, keys, n, form, origin)


def copy_db(src: Path, dst: Path) -> Path:
    """A copy of a cached database (its WAL is checkpointed when it was closed)."""
    shutil.copyfile(src, dst)
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=SHAPES)
    parser.add_argument("n", type=int)
    parser.add_argument("--form", choices=FORMS, default="compacted")
    parser.add_argument("--pair", action="store_true")
    args = parser.parse_args(argv)
    built = ensure(args.shape, args.n, args.form, pair=args.pair)
    print(built.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
