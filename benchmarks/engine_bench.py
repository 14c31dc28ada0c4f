"""The e2e scenario through the engines alone: where a replicated update's CPU goes, no I/O.

Run: ``.venv/bin/python benchmarks/engine_bench.py`` (``--updates N``, ``--runs K``,
``--window W``, ``--gc on|off|freeze``, ``--unsigned``; ``--transfer N`` for the other
scenario below).

The scenario is ``e2e_bench.py``'s (three replicas: A and B each linked to the relay R only,
``n=3, w=1``, A makes ``N`` updates, half ``orset.add`` of a new element and half
``ormap.update`` of a new key holding a register, ``W`` at a time), but the three
:class:`~sync.replica.Replica` engines run in this process with nothing else: every message
is encoded and decoded with the wire codec (:mod:`sync.messages`) and handed to its receiver
at once, no store, no websockets, no event loop. A run ends when B holds every update. So it
measures what the engines cost per update (the sans-I/O floor of the e2e figure) and splits
it into phases: A's ``local_update`` calls, every ``receive`` (R's and B's), every drain of
``effects`` and the codec.

``--gc``: ``on`` (the interpreter's default), ``off`` (no collections during the runs: the
engines' CPU alone) or ``freeze`` (``gc.freeze()`` once everything is imported: the full
collections no longer walk the modules' objects). ``--unsigned``: engines without a signer
(no seals, no verification: what signed origins cost, by difference).

Reported: the median seconds of the timed runs and updates/s, then the phases (median
seconds per run). Nothing here is asserted; it is a tool for the performance work.

``--transfer N``: what a new peer's engine spends on a bootstrap (``bootstrap_bench.py``'s
mixed case, without the store, the network and the other peer): a fresh replica receives a
state transfer of ``N`` small objects cycling through the six kinds, in chunks of 500 of one
partition, each chunk's ``receive`` then its drain of ``effects`` (the checkpoints of the
Persist included); what it asks to load is admitted as absent (a fresh store). Reported: the
fastest and the median run.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import crdt
from sync import messages as m
from sync.config import ReplicaConfig
from sync.digest import ctx_model
from sync.effects import Send
from sync.replica import Replica
from sync.ring import partition_of
from sync.signing import Signer

__all__ = ["main", "run"]

NOW = 1_000.0


class _Phases:
    """Seconds spent in each named phase of one run."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()

    def timed(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] += time.perf_counter() - start


def run(updates: int, window: int, *, signed: bool = True) -> tuple[float, Counter[str]]:
    """One run: seconds from A's first update until B holds every update, and the phases."""
    signers = [Signer.generate() for _ in range(3)]
    ids = [s.replica_id for s in signers]
    replicas = [
        Replica(
            ReplicaConfig(n=3, w=1, r=1, relay=(i == 1)),
            ids[i],
            signer=signers[i] if signed else None,
        )
        for i in range(3)
    ]
    a, _relay, b = replicas
    links = {(0, 1), (1, 0), (1, 2), (2, 1)}
    queue: deque[tuple[int, int, bytes]] = deque()
    phases = _Phases()

    def drain(i: int) -> None:
        for effect in phases.timed("effects", replicas[i].effects):
            if isinstance(effect, Send):
                j = ids.index(effect.peer)
                if (i, j) in links:
                    queue.append((i, j, phases.timed("encode", m.encode, effect.message)))

    def deliver() -> None:
        while queue:
            i, j, data = queue.popleft()
            msg = phases.timed("decode", m.decode, data)
            phases.timed("receive", replicas[j].receive, ids[i], msg, NOW)
            drain(j)

    for i, j in sorted(links):
        replicas[i].peer_up(ids[j], NOW, relay=(j == 1))
        drain(i)
    deliver()
    phases.seconds.clear()
    me = ids[0]
    start = time.perf_counter()
    for low in range(0, updates, window):
        for k in range(low, min(low + window, updates)):
            if k % 2 == 0:
                phases.timed(
                    "local_update",
                    a.local_update,
                    k + 1,
                    "bench:set",
                    "orset",
                    lambda s, k=k: s.add(me, f"item-{k}"),
                    NOW,
                    checked=True,
                )
            else:
                phases.timed(
                    "local_update",
                    a.local_update,
                    k + 1,
                    "bench:map",
                    "ormap",
                    lambda mp, k=k: mp.update(me, f"k{k}", "lww", lambda r, k=k: r.set(me, k)),
                    NOW,
                    checked=True,
                )
        drain(0)
        deliver()
    took = time.perf_counter() - start
    got = (len(b.current_value("bench:set") or ()), len(b.current_value("bench:map") or ()))
    want = (updates // 2 + updates % 2, updates // 2)
    if got != want:
        raise AssertionError(f"B holds {got} elements and entries, expected {want}")
    return took, phases.seconds


def _transfer_chunks(count: int) -> list[m.SnapshotChunk]:
    by_partition: dict[int, list[str]] = {}
    for i in range(count):
        key = f"key-{i}"
        by_partition.setdefault(partition_of(key, 64), []).append(key)
    chunks: list[m.SnapshotChunk] = []
    for p, unsorted in sorted(by_partition.items()):
        keys = sorted(unsorted)  # a sender reads its store's pages in key order
        for low in range(0, len(keys), 500):
            objects = []
            for j, key in enumerate(keys[low : low + 500]):
                kind = crdt.KINDS[j % len(crdt.KINDS)]
                state: Any = crdt.new(kind)
                if kind in ("lww", "mvregister"):
                    state.set("C", j)
                elif kind == "orset":
                    state.add("C", f"element {j}")
                elif kind in ("gcounter", "pncounter"):
                    state.increment("C", j + 1)
                else:
                    state.update("C", f"f{j}", "lww", lambda reg, j=j: reg.set("C", j))
                objects.append(m.SnapObject(key=key, kind=kind, state_json=state.to_json()))
            chunks.append(m.SnapshotChunk(batch_id=len(chunks) + 1, partition=p, objects=objects))
    return chunks


def run_transfer(chunks: list[m.SnapshotChunk]) -> float:
    """Seconds for a fresh replica to take every chunk (receive, then drain its effects)."""
    r = Replica(ReplicaConfig(n=2), "A")
    r.peer_up("B", NOW)
    r.effects()
    # B reports holding what A holds and asks for A's summaries back: A sends its summary of
    # every partition, which B's transfer answers (a chunk nobody asked for is refused).
    parts = {p: ctx_model(r.summary(p)) for p in {chunk.partition for chunk in chunks}}
    r.receive("B", m.Summary(parts=parts, reply=True), NOW)
    r.effects()
    start = time.perf_counter()
    for chunk in chunks:
        keys, _partitions = r.wants_message("B", chunk)
        if keys:
            r.admit(keys, [])
        r.receive("B", chunk, NOW)
        r.effects()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gc", choices=("on", "off", "freeze"), default="on")
    parser.add_argument("--unsigned", action="store_true", help="engines without a signer")
    parser.add_argument("--transfer", type=int, metavar="N", help="the state-transfer scenario")
    args = parser.parse_args(argv)
    if args.transfer:
        chunks = _transfer_chunks(args.transfer)
        run_transfer(chunks[:20])  # warm-up
        took = [run_transfer(chunks) for _ in range(args.runs)]
        print(
            f"engine: a state transfer of {args.transfer} objects in {len(chunks)} chunks, "
            f"{args.runs} runs: fastest {min(took):.3f} s, median {statistics.median(took):.3f} s "
            f"(runs: {', '.join(f'{t:.3f}' for t in took)})"
        )
        return 0
    run(min(args.updates, 1000), args.window, signed=not args.unsigned)  # warm-up
    if args.gc == "freeze":
        gc.collect()
        gc.freeze()
    elif args.gc == "off":
        gc.disable()
    results = [run(args.updates, args.window, signed=not args.unsigned) for _ in range(args.runs)]
    gc.enable()
    took = statistics.median(t for t, _ in results)
    print(
        f"engines: {args.updates} updates A -> R -> B ({'unsigned' if args.unsigned else 'signed'}"
        f", gc {args.gc}), median of {args.runs}: {took:.3f} s, {args.updates / took:,.0f} "
        f"updates/s (runs: {', '.join(f'{t:.3f}' for t, _ in results)})"
    )
    names = sorted({n for _, ph in results for n in ph}, key=lambda n: -results[0][1][n])
    for name in names:
        print(f"  {name:13} {statistics.median(ph[name] for _, ph in results):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
