"""PN-counter under message faults: increments and decrements while frames are lost,
duplicated, reordered and delayed, and one served peer is cut off for a while.

Served peers ``p0..pN-1`` dial each other through proxies; two embedded writers dial every
served peer and add seeded signed amounts to one PN-counter with ``w=2``. Every proxy delays
each frame and drops, duplicates and reorders data frames (:class:`~shoal.faults.proxy.
LinkFaults`, seeded per link); in the middle of the run one served peer (seeded) is cut off
from everyone for ``cut_s`` seconds. Then the writers stop and close, the faults are cleared,
the cut heals, and the served peers must converge.

Checked (:func:`~shoal.faults.checkers.check_counter`): every served peer holds the same value,
within ``[acknowledged sum + unacknowledged decrements, acknowledged sum + unacknowledged
increments]``: a duplicated or replayed delta must not count twice, a lost one must not count
once it was acknowledged.

:func:`run_corrupt` (``corrupt-frames``) is the same workload with one bit flipped in a share
of the data frames instead: a peer must refuse a corrupted frame (and close the link), never
apply it, so the same properties must hold.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..checkers import check_counter
from ..clients import Attempt, Op, drive
from ..commands import Peer
from ..harness import Cluster, ClusterConfig, PeerSpec
from ..proxy import LinkFaults
from .common import Result, Scale, converge, rng_for

__all__ = ["CORRUPT_NAME", "NAME", "Params", "run", "run_corrupt"]

NAME = "pn-counter"
CORRUPT_NAME = "corrupt-frames"
KEY = "counter"


@dataclass(frozen=True, slots=True)
class Params:
    peers: int
    write_s: float
    cut_s: float
    window: int
    pace: float
    drop: float = 0.02
    duplicate: float = 0.02
    reorder: float = 0.05
    corrupt: float = 0.0
    delay: float = 0.002
    jitter: float = 0.005
    timeout: float = 3.0
    converge_timeout: float = 30.0


PRESETS: dict[Scale, Params] = {
    "short": Params(peers=2, write_s=3.0, cut_s=1.0, window=4, pace=0.01),
    "long": Params(peers=3, write_s=60.0, cut_s=10.0, window=8, pace=0.01),
}
#: The same with one bit flipped in a share of the frames instead of the other faults.
CORRUPT_PRESETS: dict[Scale, Params] = {
    "short": Params(
        peers=2,
        write_s=4.0,
        cut_s=1.0,
        window=4,
        pace=0.01,
        drop=0,
        duplicate=0,
        reorder=0,
        corrupt=0.1,
    ),
    "long": Params(
        peers=3,
        write_s=60.0,
        cut_s=10.0,
        window=8,
        pace=0.01,
        drop=0,
        duplicate=0,
        reorder=0,
        corrupt=0.02,
    ),
}


def _amounts(peer: Peer, writer: str, seed: int, timeout: float) -> Iterator[Op]:
    rng = rng_for(seed, f"amounts/{writer}")
    handle = peer.pncounter(KEY)
    for _ in itertools.count():
        amount = rng.choice([-3, -2, -1, 1, 2, 3, 4, 5])
        if amount > 0:
            yield KEY, "add", amount, partial(handle.increment, amount, w=2, timeout=timeout)
        else:
            yield KEY, "add", amount, partial(handle.decrement, -amount, w=2, timeout=timeout)


def _all_equal(values: Mapping[str, Any]) -> bool:
    return len({v for v in values.values()}) == 1 and None not in values.values()


async def run(workdir: Path, *, seed: int, scale: Scale = "short") -> Result:
    """The pn-counter workload with dropped, duplicated, reordered and delayed frames."""
    return await _run(NAME, PRESETS[scale], workdir, seed, scale)


async def run_corrupt(workdir: Path, *, seed: int, scale: Scale = "short") -> Result:
    """The pn-counter workload with corrupted frames (one bit flipped in a data frame)."""
    return await _run(CORRUPT_NAME, CORRUPT_PRESETS[scale], workdir, seed, scale)


async def _run(name: str, p: Params, workdir: Path, seed: int, scale: Scale) -> Result:
    names = [f"p{i}" for i in range(p.peers)]
    writer_names = ["w0", "w1"]
    config = ClusterConfig(n=p.peers + len(writer_names), w=2, seed=seed)
    faults = LinkFaults(
        delay=p.delay,
        jitter=p.jitter,
        drop=p.drop,
        duplicate=p.duplicate,
        reorder=p.reorder,
        corrupt=p.corrupt,
    )
    victim = rng_for(seed, "victim").choice(names)
    history: list[Attempt] = []
    async with Cluster(workdir, [PeerSpec(n) for n in names], config) as cluster:
        writers = {w: await cluster.client(w, names) for w in writer_names}
        if not await cluster.linked(p.converge_timeout):
            raise RuntimeError("the cluster did not link up")
        cluster.set_faults(faults)
        stop = asyncio.Event()
        tasks = [
            asyncio.ensure_future(
                drive(
                    w,
                    _amounts(peer, w, seed, p.timeout),
                    history,
                    window=p.window,
                    stop=stop,
                    pace=p.pace,
                )
            )
            for w, peer in writers.items()
        ]
        try:
            quiet = (p.write_s - p.cut_s) / 2
            await asyncio.sleep(quiet)
            cluster.partition([victim], [n for n in [*names, *writer_names] if n != victim])
            await asyncio.sleep(p.cut_s)
            cluster.heal()
            await asyncio.sleep(quiet)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        for w in writer_names:
            await cluster.close_client(w)
        cluster.set_faults(LinkFaults())
        took, finals = await converge(cluster, names, KEY, _all_equal, p.converge_timeout)
        stats = {f"{s}->{d}": asdict(x.stats) for (s, d), x in sorted(cluster.proxies.items())}
    verdict = check_counter(history, finals)
    if took is None:
        verdict.problems.append(f"the served peers did not converge in {p.converge_timeout} s")
    frames = {k: sum(s[k] for s in stats.values()) for k in ("data_frames", "dropped")}
    for k in ("duplicated", "reordered", "corrupted"):
        frames[k] = sum(s[k] for s in stats.values())
    verdict.figures.update(cut_off=victim, converge_s=_round(took), frames=frames)
    return Result(name, seed, scale, asdict(p), verdict, history=history)


def _round(t: float | None) -> float | None:
    return None if t is None else round(t, 2)
