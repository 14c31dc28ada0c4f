"""Messages and bytes per round at 200 and 1,000 peers, in the simulator (issue 11).

Run: ``.venv/bin/python benchmarks/scale_sim.py`` (50, 100, 200 and 1,000 peers, each capped
at ``--cap`` seconds of wall time, default 300; ``--peers 200`` to choose; ``--quick`` for 50
and 100 peers capped at 60 s).

The cluster is ``sync.simnet.SimCluster`` (fake clock, every message through the real codec,
latency 1-5 ms per message), ``known_peers=True`` (a configured group: every replica starts
knowing every other), ``n=3``, anti-entropy every 5 s, seed 1. Each peer count runs in its
own process, which reports each phase as it ends; when the cap is reached the process is
killed and the phases it did not finish are reported as such (today's cost per round grows
with the square of the group, so the largest groups do not finish: that is the finding).

Phases, each with its wall time and the messages and bytes (encoded message bytes, as the
simulator counts them: no websocket framing) sent by all peers:

1. **build**: ``SimCluster(...)``: the constructor tells every replica that every other is
   up (``peer_up``), and each answers with a summary;
2. **startup**: one anti-entropy interval of simulated time, delivering that first exchange;
3. **idle**: ``--rounds`` intervals with no writes: messages per peer per round;
4. **writing**: ``--writes`` increments of distinct counters issued at once at peers chosen
   by the seed (``w=1``), run until every write is acknowledged and nothing is in flight:
   messages per write (``Push``/``Ack``), and what else was sent meanwhile.

The reference (same run) is the smallest group measured: per-peer figures that grow with the
group size show the quadratic total. Goal of issue 11: O(P) messages per round cluster-wide
(a bounded number per peer), 1,000 peers idle and writing.

A last scenario measures **a read at r=1** (issue 11): three replicas, one ORSet of 5,000
elements converged everywhere, then two reads at ``r=1`` by one replica: the messages and
bytes they cause. Goal: none (r=1 is local).
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
from benchlib import GoalTable

from sync.config import ReplicaConfig
from sync.simnet import SimCluster

__all__ = ["main"]

INTERVAL = 5.0
MAX_STEPS = 50_000_000


def _emit(phase: str, started: float, cluster: SimCluster, **extra: Any) -> None:
    stats = cluster.stats
    print(
        json.dumps(
            {
                "phase": phase,
                "wall_s": round(time.perf_counter() - started, 3),
                "sent": dict(stats.sent),
                "messages": stats.total_sent(),
                "bytes": stats.bytes_sent,
                **extra,
            }
        ),
        flush=True,
    )


def child(peers: int, args: argparse.Namespace) -> None:
    """One peer count, phase by phase (run in its own process: the parent caps its time)."""
    ids = [f"peer-{i:04d}" for i in range(peers)]
    config = ReplicaConfig(n=3, anti_entropy_interval=INTERVAL, seed=args.seed)
    t = time.perf_counter()
    cluster = SimCluster(ids, config, seed=args.seed, known_peers=True)
    _emit("build", t, cluster)
    cluster.reset_stats()
    t = time.perf_counter()
    cluster.run_for(INTERVAL, max_steps=MAX_STEPS)
    _emit("startup", t, cluster)
    cluster.reset_stats()
    t = time.perf_counter()
    cluster.run_for(INTERVAL * args.rounds, max_steps=MAX_STEPS)
    _emit("idle", t, cluster, rounds=args.rounds)
    cluster.reset_stats()
    t = time.perf_counter()
    rng = random.Random(args.seed)
    ops = []
    for i in range(args.writes):
        at = rng.choice(ids)
        ops.append(
            cluster.update(at, f"counter-{i}", "gcounter", lambda c, at=at: c.increment(at, 1))
        )
    # quiet(): no message in flight, no operation pending. Checked at every step: between
    # two anti-entropy rounds the cluster is quiet for a single step.
    done = cluster.run_until(cluster.quiet, max_steps=MAX_STEPS)
    if not done or not all(op.ok for op in ops):
        raise SystemExit(f"writes did not complete: {sum(op.ok for op in ops)}/{len(ops)} ok")
    _emit("writing", t, cluster, writes=args.writes, sim_s=round(cluster.now, 3))


def read_r1(elements: int, seed: int) -> dict[str, Any]:
    """Two r=1 reads of a converged ORSet of ``elements``: what they send."""
    ids = ["a", "b", "c"]
    cluster = SimCluster(ids, ReplicaConfig(n=3, seed=seed), seed=seed, known_peers=True)
    step = 500
    for low in range(0, elements, step):
        high = min(elements, low + step)
        cluster.update("a", "cart", "orset", lambda s, lo=low, hi=high: _add_many(s, "a", lo, hi))
    cluster.run_until(lambda: cluster.quiet() and cluster.converged(), max_steps=5_000_000)
    sizes = {rid: len(cluster.values("cart")[rid]) for rid in ids}
    if set(sizes.values()) != {elements}:
        raise AssertionError(f"not converged: {sizes}")
    cluster.reset_stats()
    reads = [cluster.read("b", "cart", r=1) for _ in range(2)]
    cluster.run_until(lambda: all(op.done for op in reads) and cluster.quiet(), max_steps=1_000_000)
    return {"sent": dict(cluster.stats.sent), "bytes": cluster.stats.bytes_sent}


def _add_many(s: Any, replica: str, low: int, high: int) -> Any:
    delta = None
    for i in range(low, high):
        d = s.add(replica, f"element {i}")
        if delta is None:
            delta = d
        else:
            delta.merge(d)
    return delta


# --------------------------------------------------------------------------- parent


def run_capped(peers: int, args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """Phases reported by the child for ``peers`` within the cap; and why it stopped early."""
    cmd = [sys.executable, __file__, "--child", str(peers), "--rounds", str(args.rounds),
           "--writes", str(args.writes), "--seed", str(args.seed)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    phases: dict[str, Any] = {}
    deadline = time.monotonic() + args.cap
    stopped: str | None = None
    while True:
        left = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(0.0, left))
        except queue.Empty:
            proc.kill()
            done = ", ".join(phases) or "nothing"
            stopped = f"capped at {args.cap:.0f} s of wall time (finished: {done})"
            break
        if line is None:
            break
        phase = json.loads(line)
        phases[phase["phase"]] = phase
        print(f"    {peers} peers, {phase['phase']}: {phase['wall_s']:.1f} s wall, "
              f"{phase['messages']:,} messages, {phase['bytes']:,} B", flush=True)  # fmt: skip
    proc.wait(timeout=30)
    if stopped is None and proc.returncode != 0:
        assert proc.stderr is not None
        stopped = f"failed: {proc.stderr.read().strip().splitlines()[-1:]}"
    return phases, stopped


def _per_peer_round(phase: dict[str, Any], peers: int) -> float:
    return float(phase["messages"]) / peers / phase["rounds"]


def report(results: dict[int, tuple[dict[str, Any], str | None]], reads: dict[str, Any]) -> bool:
    idle = GoalTable(
        "idle anti-entropy in the simulator: messages per peer per round (5 s)",
        "O(P) messages per round cluster-wide (a bounded number per peer), 1,000 peers",
    )
    writing = GoalTable(
        "writes in the simulator: messages per write, and the cost of getting there",
        "1,000 peers idle and writing (every phase finishes)",
    )
    smallest = min((p for p, (ph, _) in results.items() if "idle" in ph), default=None)
    for peers, (phases, stopped) in results.items():
        mark = idle.note(f"{peers} peers: {stopped}") if stopped else ""
        build, startup = phases.get("build"), phases.get("startup")
        cost = (
            f"build {build['wall_s']:.1f} s"
            + (f", startup round {startup['wall_s']:.1f} s wall / {startup['bytes'] / 1e6:,.1f} MB"
               if startup else "")
            if build
            else "build did not finish"
        )  # fmt: skip
        if "idle" not in phases:
            idle.add(f"{peers} peers", f"not reached {mark}", cost, "n/a", False)
        else:
            ph = phases["idle"]
            per = _per_peer_round(ph, peers)
            per_bytes = ph["bytes"] / peers / ph["rounds"]
            wall = ph["wall_s"] / ph["rounds"]
            ratio, met = "reference", None
            if smallest is not None and peers != smallest:
                base = _per_peer_round(results[smallest][0]["idle"], smallest)
                ratio = f"{per / base:.1f}x per peer at {peers / smallest:.0f}x the peers"
                met = per / base <= 1.5
            idle.add(
                f"{peers} peers",
                f"{per:,.1f} messages, {per_bytes:,.0f} B per peer per round; "
                f"{wall:.2f} s wall per round {mark}".rstrip(),
                cost,
                ratio,
                met,
            )
        if "writing" in phases:
            ph = phases["writing"]
            sent = ph["sent"]
            per_write = (sent.get("Push", 0) + sent.get("Ack", 0)) / ph["writes"]
            others = {k: v for k, v in sent.items() if k not in ("Push", "Ack")}
            writing.add(
                f"{peers} peers",
                f"{per_write:.1f} Push+Ack per write ({ph['writes']} writes); meanwhile "
                f"{sum(others.values()):,} others {others}; {ph['wall_s']:.1f} s wall",
                "",
                "",
                True if peers >= 1000 else None,
            )
        else:
            writing.add(f"{peers} peers", "not reached", "", "", False)
    idle.print()
    writing.print()
    r1 = GoalTable("a read at r=1 (3 replicas, one converged ORSet of 5,000 elements)",
                   "r=1 is local: no message")  # fmt: skip
    total = sum(reads["sent"].values())
    r1.add("two reads at r=1", f"{total} messages, {reads['bytes']:,} B {reads['sent']}",
           "0 messages (local read)", "n/a", total == 0)  # fmt: skip
    r1.print()
    return idle.missed or writing.missed or r1.missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default="50,100,200,1000", help="group sizes, commas")
    parser.add_argument("--cap", type=float, default=300.0, help="wall seconds per group size")
    parser.add_argument("--rounds", type=int, default=2, help="idle rounds measured")
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="50 and 100 peers, 60 s cap")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args)
        return 0
    if args.quick:
        args.peers, args.cap = "50,100", 60.0
    sizes = sorted({int(p) for p in args.peers.split(",") if p})
    if not sizes or sizes[0] < 2 or args.rounds < 1 or args.writes < 1:
        parser.error("--peers must be at least 2, --rounds and --writes at least 1")
    benchlib.preamble("scale_sim: anti-entropy and writes at scale, simulated (issue 11)", argv)
    results = {}
    for peers in sizes:
        print(f"  {peers} peers (cap {args.cap:.0f} s):", flush=True)
        results[peers] = run_capped(peers, args)
    print("  read at r=1 ...", flush=True)
    reads = read_r1(5000, args.seed)
    missed = report(results, reads)
    print(f"load average at the end: {benchlib.load_now()}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
