"""The workloads of the fault suite, by name (see each module for its scenario and checks).

* ``g-set``: adds while the served peers are partitioned in two, rounds of cut and heal;
* ``pn-counter``: increments and decrements through dropped, duplicated, reordered frames;
* ``corrupt-frames``: the same through frames with one bit flipped;
* ``kill-9``: ``w=2`` writes while served peers are SIGKILLed and restarted;
* ``relay-handoff``: the relay is SIGKILLed while it hands hints off to a device;
* ``two-sites``: ``LOCAL_QUORUM`` writes in two sites while the link between them is cut;
* ``clock-skew``: a writer a day ahead (libfaketime) sets an LWW register before others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from . import crash, gset, handoff, pncounter, sites, skew
from .common import Result, Scale

__all__ = ["WORKLOADS", "Result", "Scale", "Workload"]


@dataclass(frozen=True, slots=True)
class Workload:
    """A workload's name, what it does and checks (one line each), how to run it, and a note
    on reading its figures."""

    name: str
    scenario: str
    checks: str
    run: Callable[..., Awaitable[Result]]
    note: str = ""

    async def __call__(self, workdir: Path, *, seed: int, scale: Scale = "short") -> Result:
        return await self.run(workdir, seed=seed, scale=scale)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            gset.NAME,
            "unique adds (w=2) to one ORSet per round while the served peers are split in two "
            "at random, in rounds of cut and heal; the writers close before the last heal",
            "0 acknowledged adds lost, all served peers equal after the heal, nothing that was "
            "never added; time from each heal until every peer holds every acknowledged add",
            gset.run,
            "The time to converge counts from the heal; it includes the served peers' redial "
            "(`shoal serve` backs off up to 5 s while a link is refused) and is measured by "
            "polling `shoal inspect` (resolution: one polling round, reported)",
        ),
        Workload(
            pncounter.NAME,
            "signed increments (w=2) while every link drops, duplicates, reorders and delays "
            "frames, and one served peer is cut off for a while",
            "all served peers equal, their value between the acknowledged sum and what the "
            "unacknowledged writes could add or take away",
            pncounter.run,
        ),
        Workload(
            pncounter.CORRUPT_NAME,
            "signed increments (w=2) while every link flips one bit in some of the data "
            "frames, and one served peer is cut off for a while",
            "as pn-counter: a corrupted frame must be refused, never applied",
            pncounter.run_corrupt,
            "A flipped bit that leaves the frame valid JSON (a digit of an amount or of a log "
            "dot) is applied today, since frames carry no MAC yet; whether a run meets one "
            "depends on the frames' contents, so this workload has no short test in make test",
        ),
        Workload(
            crash.NAME,
            "unique adds (w=2) while one served peer at a time is SIGKILLed and restarted",
            "0 acknowledged adds lost, all served peers equal, the same replica id after each "
            "restart",
            crash.run,
        ),
        Workload(
            handoff.NAME,
            "a writer's adds reach an offline device only as hints on a relay; the relay is "
            "SIGKILLed while it hands them off, and restarted",
            "every acknowledged add reaches the device, the relay ends with no pending hint, "
            "and the relay really was killed with hints pending",
            handoff.run,
        ),
        Workload(
            sites.NAME,
            "LOCAL_QUORUM adds in two sites while every link between the sites is cut",
            "every write acknowledged during the cut, none crossed it before the heal, 0 lost "
            "and all served peers equal after the heal",
            sites.run,
            "The time to converge counts from the heal; it includes the served peers' redial "
            "(`shoal serve` backs off up to 5 s while a link is refused) and is measured by "
            "polling `shoal inspect`",
        ),
        Workload(
            skew.NAME,
            "a writer whose clock is a day ahead (libfaketime) sets an LWW register, then a "
            "correct-clock writer sets it twice",
            "the correct-clock writes are acknowledged and every served peer ends with the "
            "last of them",
            skew.run,
        ),
    )
}
