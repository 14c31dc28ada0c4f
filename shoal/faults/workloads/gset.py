"""G-set under partitions: adds of unique elements while the served peers are split in two.

Served peers ``p0..pN-1`` dial each other through proxies; each has one embedded writer
``w-pI`` that dials only it and adds unique elements with ``w=2`` (the writer and its served
peer, both homes: ``n`` covers the whole group). Each round has its own ORSet key (used as a
grow-only set): the writers add to it for ``healed_s`` seconds, then the served peers are split
in two at random (seeded; each writer stays with its peer) and every proxy between the halves
is cut while the writers go on for ``cut_s`` seconds; then the writers pause, the cut heals,
and the round measures how long until every served peer holds the same set and every add
acknowledged in the round (polling ``shoal inspect``; the resolution is one polling round,
reported as ``poll_round_s``). Before the last heal the writers close, so that the served peers
alone must converge.

Checked (:func:`~shoal.faults.checkers.check_set` over the union of the rounds' sets): 0
acknowledged adds lost, every served peer holds the same sets, nothing appears that was never
added; figures: adds attempted and acknowledged, the time to converge after each heal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..checkers import check_set
from ..clients import Attempt, drive
from ..commands import Peer
from ..harness import Cluster, ClusterConfig, PeerSpec
from .common import Result, Scale, converge, orset_adds, rng_for, stop_after

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
    "long": Params(peers=5, rounds=10, cut_s=6.0, healed_s=2.0, window=8, pace=0.02),
}


def _equal_and_hold(acked: set[str]) -> Any:
    def check(values: Mapping[str, Any]) -> bool:
        sets = [frozenset(v or ()) for v in values.values()]
        return len(set(sets)) == 1 and acked <= sets[0]

    return check


async def _write(
    writers: dict[str, Peer],
    key: str,
    tag: str,
    p: Params,
    history: list[Attempt],
    seconds: float,
) -> None:
    """Every writer adds to ``key`` for ``seconds`` (elements tagged ``tag``: each phase has
    its own); returns once their writes all ended."""
    stop = stop_after(seconds)
    await asyncio.gather(
        *(
            drive(
                w,
                orset_adds(peer, w, [key], w=2, timeout=p.timeout, tag=tag),
                history,
                window=p.window,
                stop=stop,
                pace=p.pace,
            )
            for w, peer in writers.items()
        )
    )


async def run(workdir: Path, *, seed: int, scale: Scale = "short") -> Result:
    p = PRESETS[scale]
    names = [f"p{i}" for i in range(p.peers)]
    config = ClusterConfig(n=2 * p.peers, w=2, seed=seed)
    rng = rng_for(seed, "partitions")
    history: list[Attempt] = []
    after_heal: list[float | None] = []
    polls: list[float] = []
    async with Cluster(workdir, [PeerSpec(n) for n in names], config) as cluster:
        writers = {f"w-{n}": await cluster.client(f"w-{n}", [n]) for n in names}
        if not await cluster.linked(p.converge_timeout):
            raise RuntimeError("the cluster did not link up")
        keys = [f"{KEY}-{r}" for r in range(1, p.rounds + 1)]
        for round_, key in enumerate(keys, 1):
            await _write(writers, key, f"/{round_}a", p, history, p.healed_s)
            order = names[:]
            rng.shuffle(order)
            cut = rng.randint(1, len(order) - 1)
            left, right = order[:cut], order[cut:]
            cluster.partition(
                [*left, *(f"w-{n}" for n in left)], [*right, *(f"w-{n}" for n in right)]
            )
            await _write(writers, key, f"/{round_}b", p, history, p.cut_s)
            if round_ == p.rounds:
                # The writers close before the last heal: the served peers alone must converge.
                for w in writers:
                    await cluster.close_client(w)
            acked = {a.arg for a in history if a.acked and a.key == key}
            cluster.heal()
            took, _ = await converge(
                cluster, names, key, _equal_and_hold(acked), p.converge_timeout, polls
            )
            after_heal.append(None if took is None else round(took, 2))
        finals: dict[str, set[Any]] = {n: set() for n in names}
        for n in names:
            for k in keys:
                finals[n].update(await cluster.value(n, k) or ())
    verdict = check_set(history, finals)
    if any(t is None for t in after_heal):
        verdict.problems.append(
            f"after a heal, the served peers were not equal and holding every acknowledged add "
            f"within {p.converge_timeout} s: {after_heal}"
        )
    verdict.figures.update(
        converge_after_heal_s=after_heal,
        poll_round_s=round(sum(polls) / len(polls), 3) if polls else None,
    )
    return Result(NAME, seed, scale, asdict(p), verdict, history=history)
