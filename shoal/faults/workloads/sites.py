"""Two sites with ``LOCAL_QUORUM`` writes while the link between the sites is cut.

Served peers ``east-I`` and ``west-I`` (``--site east`` / ``--site west``) dial each other
through proxies; one embedded writer per site (``writer-east``, ``writer-west``, in its site)
dials the served peers of its own site and adds unique elements to one ORSet with
``w="LOCAL_QUORUM"``. After ``before_s`` seconds every proxy between the sites is cut for
``cut_s`` seconds while both writers go on; then the writers stop and close, the cut heals and
the served peers must converge.

Checked: every write was acknowledged (a local quorum needs no other site), no write made
during the cut reached the other site before the heal (the cut held), and after the heal
0 acknowledged adds lost and every served peer equal (:func:`~shoal.faults.checkers.
check_set`); figures: writes per phase and the time to converge after the heal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..checkers import check_set
from ..clients import Attempt, drive
from ..harness import Cluster, ClusterConfig, PeerSpec
from .common import Result, Scale, converge, orset_adds

__all__ = ["NAME", "Params", "run"]

NAME = "two-sites"
KEY = "sites"
SITES = ("east", "west")


@dataclass(frozen=True, slots=True)
class Params:
    per_site: int
    before_s: float
    cut_s: float
    window: int
    pace: float
    timeout: float = 5.0
    converge_timeout: float = 30.0


PRESETS: dict[Scale, Params] = {
    "short": Params(per_site=1, before_s=0.5, cut_s=1.5, window=4, pace=0.01),
    "long": Params(per_site=3, before_s=5.0, cut_s=30.0, window=8, pace=0.01),
}


def _equal_and_hold(acked: set[str]) -> Any:
    def check(values: Mapping[str, Any]) -> bool:
        sets = [frozenset(v or ()) for v in values.values()]
        return len(set(sets)) == 1 and acked <= sets[0]

    return check


async def run(workdir: Path, *, seed: int, scale: Scale = "short") -> Result:
    p = PRESETS[scale]
    members = {s: [f"{s}-{i}" for i in range(p.per_site)] for s in SITES}
    names = [n for s in SITES for n in members[s]]
    specs = [PeerSpec(n, site=s) for s in SITES for n in members[s]]
    config = ClusterConfig(n=len(names) + len(SITES), w=1, seed=seed)
    history: list[Attempt] = []
    async with Cluster(workdir, specs, config) as cluster:
        writers = {s: await cluster.client(f"writer-{s}", members[s], site=s) for s in SITES}
        if not await cluster.linked(p.converge_timeout):
            raise RuntimeError("the cluster did not link up")
        stop = asyncio.Event()
        tasks = [
            asyncio.ensure_future(
                drive(
                    f"writer-{s}",
                    orset_adds(peer, f"writer-{s}", [KEY], w="LOCAL_QUORUM", timeout=p.timeout),
                    history,
                    window=p.window,
                    stop=stop,
                    pace=p.pace,
                )
            )
            for s, peer in writers.items()
        ]
        try:
            await asyncio.sleep(p.before_s)
            cluster.partition([*members["east"], "writer-east"], [*members["west"], "writer-west"])
            cut_at = time.monotonic()
            await asyncio.sleep(p.cut_s)
            stop.set()
            await asyncio.gather(*tasks)
            during = [a for a in history if a.started >= cut_at]
            # The cut held: a write made during it is not at the other site yet.
            crossed: list[str] = []
            for s, other in (("east", "west"), ("west", "east")):
                made = {a.arg for a in during if a.writer == f"writer-{s}" and a.acked}
                for n in members[other]:
                    crossed += sorted(made & set(await cluster.value(n, KEY) or ()))
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        for s in SITES:
            await cluster.close_client(f"writer-{s}")
        cluster.heal()
        acked = {a.arg for a in history if a.acked}
        took, finals = await converge(
            cluster, names, KEY, _equal_and_hold(acked), p.converge_timeout
        )
    verdict = check_set(history, finals)
    refused = [a for a in history if not a.acked]
    if refused:
        verdict.problems.append(
            f"{len(refused)} LOCAL_QUORUM writes were not acknowledged, e.g. "
            f"{refused[0].arg!r}: {refused[0].error or 'quorum not reached'}"
        )
    if crossed:
        verdict.problems.append(f"{len(crossed)} writes crossed the cut: {crossed[:5]}")
    if took is None:
        verdict.problems.append(f"the sites did not converge in {p.converge_timeout} s of the heal")
    verdict.figures.update(
        during_cut=len(during),
        during_cut_acknowledged=sum(1 for a in during if a.acked),
        converge_after_heal_s=None if took is None else round(took, 2),
    )
    return Result(NAME, seed, scale, asdict(p), verdict, history=history)
