"""Clock skew: a peer whose clock runs a day ahead writes an LWW register; peers with correct
clocks must still be able to write it afterwards, and their later write must win among them.

Served peers ``p0..pN-1`` dial each other through proxies. An embedded writer ``correct``
(correct clock) dials every served peer and sets the register once; then a writer in its own
process under libfaketime, its clock ``skew`` ahead (:mod:`shoal.faults.oneshot`, run with
``faketime -f +1d``), dials every served peer and sets the register too. Once the correct
writer has seen that value (or after a bound, if it never arrives), it sets the register twice
more; the served peers must converge.

Checked (:func:`~shoal.faults.checkers.check_register`): both later correct-clock writes are
acknowledged, and every correct-clock served peer ends with the last of them. DESIGN.md: clock
skew beyond the bound "is refused at receipt and raised as an alarm; it never stops correct
peers from writing".

Needs the ``faketime`` command (Debian's ``faketime`` package; ``scripts/install-faketime.sh``
installs it): :func:`faketime` finds it, and :class:`FaketimeMissing` says it is absent.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..checkers import check_register
from ..clients import Attempt, record
from ..harness import Cluster, ClusterConfig, PeerSpec
from ..inspector import child_env
from .common import Result, Scale

__all__ = ["NAME", "FaketimeMissing", "Params", "faketime", "run"]

NAME = "clock-skew"
KEY = "skew"
SKEWED_VALUE = "written a day ahead"


class FaketimeMissing(RuntimeError):
    """The ``faketime`` command is not installed."""


@dataclass(frozen=True, slots=True)
class Params:
    peers: int
    skew: str = "+1d"
    timeout: float = 5.0
    arrive_timeout: float = 8.0
    converge_timeout: float = 10.0


PRESETS: dict[Scale, Params] = {
    "short": Params(peers=2, arrive_timeout=5.0, converge_timeout=3.0),
    "long": Params(peers=3),
}


def faketime() -> str:
    """The path of the ``faketime`` command; FaketimeMissing if it is not installed."""
    path = shutil.which("faketime")
    if path is None:
        raise FaketimeMissing(
            "the clock-skew workload needs the faketime command (Debian package 'faketime'; "
            "bash scripts/install-faketime.sh installs it)"
        )
    return path


async def _skewed_write(cluster: Cluster, names: list[str], p: Params) -> Attempt:
    """Run :mod:`shoal.faults.oneshot` under faketime; its write as an Attempt."""
    urls = [await cluster.proxy("skewed", n) for n in names]
    argv = [faketime(), "-f", p.skew, sys.executable, "-m", "shoal.faults.oneshot"]
    argv += ["--db", str(cluster.workdir / "skewed.db"), "--secret-file"]
    argv += [str(cluster.workdir / "secret"), "--group", cluster.config.group]
    argv += ["--n", str(cluster.config.n), "--w", "2", "--key", KEY]
    argv += ["--lww", json.dumps(SKEWED_VALUE), "--timeout", str(p.timeout)]
    for url in urls:
        argv += ["--peer", url]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env()
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 4 * p.timeout + 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    lines = out.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the skewed writer failed ({proc.returncode}): {err.decode()[-2000:]}")
    got = json.loads(lines[-1])
    return Attempt(
        "skewed",
        KEY,
        "set",
        SKEWED_VALUE,
        bool(got["acked"]),
        got["error"],
        tuple(got["acked_by"]),
        tuple(got["hinted"]),
    )


async def run(workdir: Path, *, seed: int, scale: Scale = "short") -> Result:
    p = PRESETS[scale]
    faketime()  # before starting anything
    names = [f"p{i}" for i in range(p.peers)]
    config = ClusterConfig(n=p.peers + 2, w=2, seed=seed)
    correct: list[Attempt] = []
    figures: dict[str, Any] = {"skew": p.skew}
    async with Cluster(workdir, [PeerSpec(n) for n in names], config) as cluster:
        writer = await cluster.client("correct", names)
        if not await cluster.linked(p.converge_timeout):
            raise RuntimeError("the cluster did not link up")
        handle = writer.lww(KEY)
        first = await record("correct", KEY, "set", "before", partial(handle.set, "before", w=2))
        skewed = await _skewed_write(cluster, names, p)

        async def arrived() -> bool:
            return bool(writer.replica.current_value(KEY) == SKEWED_VALUE)

        seen = await cluster.until(arrived, p.arrive_timeout, interval=0.05)
        figures["skewed_value_reached_correct_writer"] = seen is not None
        for value in ("after-1", "after-2"):
            correct.append(
                await record(
                    "correct",
                    KEY,
                    "set",
                    value,
                    partial(handle.set, value, w=2, timeout=p.timeout),
                )
            )
        await cluster.close_client("correct")
        last = correct[-1].arg
        finals: dict[str, Any] = {}

        async def settled() -> bool:
            finals.update(await cluster.values(KEY, names))
            return all(v == last for v in finals.values())

        took = await cluster.until(settled, p.converge_timeout, interval=0.1)
    verdict = check_register(correct, finals, skewed=[skewed])
    if not first.acked:
        verdict.problems.append(f"the first correct write failed: {first.error}")
    figures["converge_s"] = None if took is None else round(took, 2)
    verdict.figures.update(figures)
    return Result(NAME, seed, scale, asdict(p), verdict, history=[first, skewed, *correct])
