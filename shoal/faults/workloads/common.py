"""What every workload shares: its :class:`Result`, its size (:class:`Scale`) and small helpers.

A workload is an ``async`` function ``run(workdir, *, seed, scale) -> Result``: it starts a
:class:`~shoal.faults.harness.Cluster` under ``workdir``, writes through embedded clients while
it injects its faults, heals, waits (bounded) for the served peers to converge, reads them with
``shoal inspect`` and hands the history and the final states to a checker. Every random choice
(partitions, victims, amounts, frame faults) comes from ``random.Random`` seeded with ``seed``;
what the seed cannot fix is timing, so the counts of writes vary a little from run to run,
while the properties checked must hold in every run.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from ..checkers import Verdict
from ..clients import Attempt, Op
from ..commands import Peer
from ..harness import Cluster

__all__ = [
    "Result",
    "Scale",
    "converge",
    "orset_adds",
    "rng_for",
    "stop_after",
    "timed",
]

Scale = Literal["short", "long"]


@dataclass(slots=True)
class Result:
    """One run of one workload: what was checked, with which parameters, and the verdict."""

    workload: str
    seed: int
    scale: Scale
    params: dict[str, Any]
    verdict: Verdict
    seconds: float = 0.0
    history: list[Attempt] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.verdict.ok


def rng_for(seed: int, what: str) -> random.Random:
    """The random source of one concern of a run (its own stream: adding a draw to one concern
    does not shift the others)."""
    return random.Random(f"{seed}/{what}")


def orset_adds(
    peer: Peer, writer: str, keys: list[str], *, w: Any, timeout: float, tag: str = ""
) -> Iterator[Op]:
    """An endless stream of adds of elements ``"{writer}{tag}-{i}"`` to ``keys`` in turn:
    unique as long as each stream of one writer has its own ``tag``."""
    for i in itertools.count():
        key = keys[i % len(keys)]
        element = f"{writer}{tag}-{i}"
        handle = peer.orset(key)
        yield key, "add", element, partial(handle.add, element, w=w, timeout=timeout)


async def converge(
    cluster: Cluster,
    names: list[str],
    key: str,
    expected: Callable[[Mapping[str, Any]], bool],
    timeout: float,
    polls: list[float] | None = None,
) -> tuple[float | None, dict[str, Any]]:
    """Poll the value of ``key`` at ``names`` (``shoal inspect``) until ``expected(values)``;
    (seconds it took or None after ``timeout``, the last values read). The time taken by each
    polling round (the resolution of the measure) is appended to ``polls``."""
    last: dict[str, Any] = {}

    async def check() -> bool:
        began = time.monotonic()
        last.clear()
        last.update(await cluster.values(key, names))
        if polls is not None:
            polls.append(time.monotonic() - began)
        return expected(last)

    took = await cluster.until(check, timeout, interval=0.05)
    return took, last


async def timed(coro: Awaitable[Result]) -> Result:
    """Await a workload and record its wall time in the result."""
    began = time.monotonic()
    result = await coro
    result.seconds = round(time.monotonic() - began, 1)
    return result


def stop_after(seconds: float) -> asyncio.Event:
    """An event set ``seconds`` from now (the end of a writing phase)."""
    event = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, event.set)
    return event
