"""kill -9 during ``w=2`` writes: served peers are SIGKILLed and restarted while writers write.

Served peers ``p0..pN-1`` dial each other through proxies; two embedded writers dial every
served peer and add unique elements to a few ORSet keys with ``w=2``. A killer (seeded: which
peer, and when) SIGKILLs one running served peer at a time, keeps it down for ``down_s``
seconds and restarts it on the same database (a new port: the proxies follow it). Then the
writers stop and close, and the served peers alone must converge.

Checked: every acknowledged add is on every served peer and they all hold the same sets
(:func:`~shoal.faults.checkers.check_set` over the union of the keys: elements are unique
across keys), and a peer restarted after SIGKILL comes back under the same replica id (its
database was not mistaken for a copy).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..checkers import check_set
from ..clients import Attempt, drive
from ..harness import Cluster, ClusterConfig, PeerSpec
from .common import Result, Scale, orset_adds, rng_for

__all__ = ["NAME", "Params", "run", "union_of"]

NAME = "kill-9"
KEYS = [f"crash-{i}" for i in range(4)]


@dataclass(frozen=True, slots=True)
class Params:
    peers: int
    kills: int
    up_s: tuple[float, float]  # seconds between a restart and the next kill (uniform)
    down_s: float
    window: int
    pace: float
    timeout: float = 3.0
    converge_timeout: float = 30.0


PRESETS: dict[Scale, Params] = {
    "short": Params(peers=2, kills=2, up_s=(0.3, 0.6), down_s=0.3, window=4, pace=0.01),
    "long": Params(peers=3, kills=40, up_s=(1.0, 4.0), down_s=1.0, window=8, pace=0.01),
}


async def union_of(cluster: Cluster, name: str, keys: list[str]) -> frozenset[Any]:
    """Every element of the ORSets ``keys`` in served peer ``name``'s database."""
    data = await cluster.inspect(name)
    out: set[Any] = set()
    for obj in data["objects"]:
        if obj["key"] in keys:
            out.update(obj["value"])
    return frozenset(out)


async def run(workdir: Path, *, seed: int, scale: Scale = "short") -> Result:
    p = PRESETS[scale]
    names = [f"p{i}" for i in range(p.peers)]
    writer_names = ["w0", "w1"]
    config = ClusterConfig(n=p.peers + len(writer_names), w=2, seed=seed)
    rng = rng_for(seed, "kills")
    history: list[Attempt] = []
    identity_changes: list[str] = []
    kills: list[str] = []
    async with Cluster(workdir, [PeerSpec(n) for n in names], config) as cluster:
        writers = {w: await cluster.client(w, names) for w in writer_names}
        if not await cluster.linked(p.converge_timeout):
            raise RuntimeError("the cluster did not link up")
        stop = asyncio.Event()
        tasks = [
            asyncio.ensure_future(
                drive(
                    w,
                    orset_adds(peer, w, KEYS, w=2, timeout=p.timeout),
                    history,
                    window=p.window,
                    stop=stop,
                    pace=p.pace,
                )
            )
            for w, peer in writers.items()
        ]
        try:
            for _ in range(p.kills):
                await asyncio.sleep(rng.uniform(*p.up_s))
                victim = rng.choice(names)
                before = cluster.peers[victim].replica_id
                await cluster.kill(victim)
                kills.append(victim)
                await asyncio.sleep(p.down_s)
                await cluster.restart(victim)
                after = cluster.peers[victim].replica_id
                if after != before:
                    identity_changes.append(f"{victim}: {before} -> {after}")
            await asyncio.sleep(p.up_s[0])
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        for w in writer_names:
            await cluster.close_client(w)
        acked = {a.arg for a in history if a.acked}
        finals: dict[str, frozenset[Any]] = {}

        async def converged() -> bool:
            for n in names:
                finals[n] = await union_of(cluster, n, KEYS)
            return _equal_and_hold(finals, acked)

        took = await cluster.until(converged, p.converge_timeout, interval=0.05)
    verdict = check_set(history, finals)
    if took is None:
        verdict.problems.append(f"the served peers did not converge in {p.converge_timeout} s")
    for change in identity_changes:
        verdict.problems.append(f"replica id changed across a kill -9: {change}")
    verdict.figures.update(kills=len(kills), converge_s=None if took is None else round(took, 2))
    return Result(NAME, seed, scale, asdict(p), verdict, history=history)


def _equal_and_hold(finals: Mapping[str, frozenset[Any]], acked: set[str]) -> bool:
    sets = list(finals.values())
    return len(set(sets)) == 1 and acked <= sets[0]
