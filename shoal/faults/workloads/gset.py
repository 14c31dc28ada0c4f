"""G-set under partitions: adds of unique elements while the served peers are split in two.

Served peers ``p0..pN-1`` dial each other through proxies; each has one embedded writer
``w-pI`` that dials only it and adds unique elements to one ORSet (used as a grow-only set)
with ``w=2`` (the writer and its served peer, both homes: ``n`` covers the whole group). Each
round splits the served peers in two at random (seeded; each writer stays with its peer), cuts
every proxy between the halves for ``cut_s`` seconds, heals, and measures how long until every
served peer holds every add acknowledged before the heal (polling ``shoal inspect``; the
resolution is one polling round). At the end the writers stop and close, and the served peers
alone must converge.

Checked (:func:`~shoal.faults.checkers.check_set`): 0 acknowledged adds lost, every served
peer holds the same set, nothing appears that was never added; figures: adds attempted and
acknowledged, and the time to converge after each heal.
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
from .common import Result, Scale, converge, orset_adds, rng_for

__all__ = ["NAME", "Params", "run"]

NAME = "g-set"
KEY = "gset"


@dataclass(frozen=True, slots=True)
class Params:
    peers: int
    rounds: int
    cut_s: float
    healed_s: float
    window: int
    pace: float
    timeout: float = 5.0
    converge_timeout: float = 30.0


PRESETS: dict[Scale, Params] = {
    "short": Params(peers=2, rounds=1, cut_s=1.5, healed_s=0.5, window=4, pace=0.01),
    "long": Params(peers=5, rounds=8, cut_s=6.0, healed_s=3.0, window=16, pace=0.0),
}


def _holds_all(acked: set[str]) -> Any:
    def check(values: Mapping[str, Any]) -> bool:
        return all(acked <= set(v or ()) for v in values.values())

    return check


def _equal_and_hold(acked: set[str]) -> Any:
    def check(values: Mapping[str, Any]) -> bool:
        sets = [frozenset(v or ()) for v in values.values()]
        return len(set(sets)) == 1 and acked <= sets[0]

    return check


async def run(workdir: Path, *, seed: int, scale: Scale = "short") -> Result:
    p = PRESETS[scale]
    names = [f"p{i}" for i in range(p.peers)]
    config = ClusterConfig(n=2 * p.peers, w=2, seed=seed)
    rng = rng_for(seed, "partitions")
    history: list[Attempt] = []
    after_heal: list[float | None] = []
    async with Cluster(workdir, [PeerSpec(n) for n in names], config) as cluster:
        writers = {f"w-{n}": await cluster.client(f"w-{n}", [n]) for n in names}
        if not await cluster.linked(p.converge_timeout):
            raise RuntimeError("the cluster did not link up")
        stop = asyncio.Event()
        tasks = [
            asyncio.ensure_future(
                drive(
                    w,
                    orset_adds(peer, w, [KEY], w=2, timeout=p.timeout),
                    history,
                    window=p.window,
                    stop=stop,
                    pace=p.pace,
                )
            )
            for w, peer in writers.items()
        ]
        finals: dict[str, Any] = {}
        try:
            for round_ in range(1, p.rounds + 1):
                order = names[:]
                rng.shuffle(order)
                cut = rng.randint(1, len(order) - 1)
                left, right = order[:cut], order[cut:]
                cluster.partition(
                    [*left, *(f"w-{n}" for n in left)], [*right, *(f"w-{n}" for n in right)]
                )
                await asyncio.sleep(p.cut_s)
                if round_ < p.rounds:
                    # Every add acknowledged during the cut must reach every served peer.
                    check = _holds_all({a.arg for a in history if a.acked})
                else:
                    # Last round: the writers stop and close before the heal, so that the
                    # served peers alone must converge, and hold every acknowledged add.
                    stop.set()
                    await asyncio.gather(*tasks)
                    for w in writers:
                        await cluster.close_client(w)
                    check = _equal_and_hold({a.arg for a in history if a.acked})
                cluster.heal()
                took, finals = await converge(cluster, names, KEY, check, p.converge_timeout)
                after_heal.append(None if took is None else round(took, 2))
                if round_ < p.rounds:
                    await asyncio.sleep(p.healed_s)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    verdict = check_set(history, finals)
    if any(t is None for t in after_heal):
        verdict.problems.append(
            f"after a heal, the served peers did not hold every acknowledged add (or, after "
            f"the last, were not equal) within {p.converge_timeout} s: {after_heal}"
        )
    verdict.figures.update(converge_after_heal_s=after_heal)
    return Result(NAME, seed, scale, asdict(p), verdict, history=history)
