"""Relay kill -9 during hinted handoff: the hints a relay holds survive SIGKILL mid-handoff.

Three members, ``n=2``: a served relay, a served device that dials only the relay, and an
embedded writer that dials only the relay (two devices that cannot reach each other). The
writer picks keys whose homes are the writer and the device (seeded order of candidates), so
each write it makes goes to the relay as a *hint* for the device (sloppy quorum: the relay's
ack counts towards ``w=2``). Then:

1. the device is SIGKILLed; the writer makes ``writes`` adds with ``w=2`` and closes, so the
   relay's hints are the only copies for the device;
2. the link device -> relay gets a per-frame delay, so that handing the hints off takes
   several round trips; the device restarts and the relay starts handing off;
3. once some hints were handed off (fewer than ``kill_below`` of them pending, read from
   ``shoal status``) but not all, the relay is SIGKILLed, then restarted on its database;
4. the device must end with every acknowledged add, and the relay with no pending hint.

Checked: every acknowledged add is on the device (:func:`~shoal.faults.checkers.check_set`
over the device alone), the relay's pending hints reach 0, and the run really exercised the
case (writes acknowledged through hints, the relay killed with hints still pending); figures:
the hints pending before the handoff and at the kill.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sync.replica import Replica

from ..checkers import check_set
from ..clients import Attempt, Op, drive
from ..commands import Peer
from ..harness import Cluster, ClusterConfig, PeerSpec
from ..proxy import LinkFaults
from .common import Result, Scale, rng_for
from .crash import union_of

__all__ = ["NAME", "Params", "run"]

NAME = "relay-handoff"
RELAY, DEVICE, WRITER = "relay", "device", "writer"


@dataclass(frozen=True, slots=True)
class Params:
    writes: int
    keys: int
    delay: float  # per frame on the device -> relay link during the handoff
    window: int
    kill_below: float = 0.6  # kill the relay once fewer than this share of hints are pending
    timeout: float = 5.0
    converge_timeout: float = 40.0


PRESETS: dict[Scale, Params] = {
    # The relay hands hints off in pushes of up to 500 entries: more writes, more round trips.
    "short": Params(writes=1100, keys=8, delay=0.15, window=32),
    "long": Params(writes=12000, keys=32, delay=0.1, window=32),
}


def _keys_homed(peer: Peer, homes: set[str], count: int, seed: int) -> list[str]:
    replica = peer.replica
    assert isinstance(replica, Replica)
    candidates = [f"handoff-{i}" for i in range(100_000)]
    rng_for(seed, "keys").shuffle(candidates)
    chosen = [k for k in itertools.islice(candidates, 0, None) if set(replica.homes(k)) == homes]
    return chosen[:count]


def _adds(peer: Peer, keys: list[str], writes: int, timeout: float) -> Iterator[Op]:
    for i in range(writes):
        key, element = keys[i % len(keys)], f"{WRITER}-{i}"
        handle = peer.orset(key)
        yield key, "add", element, partial(handle.add, element, w=2, timeout=timeout)


async def _pending_for(cluster: Cluster, device_id: str) -> int | None:
    status = await cluster.status(RELAY)
    peer = status.get("peers", {}).get(device_id)
    return None if peer is None else int(peer.get("pending_hints") or 0)


async def run(workdir: Path, *, seed: int, scale: Scale = "short") -> Result:
    p = PRESETS[scale]
    specs = [PeerSpec(RELAY, relay=True, dials=()), PeerSpec(DEVICE, dials=(RELAY,))]
    config = ClusterConfig(n=2, w=2, seed=seed)
    history: list[Attempt] = []
    problems: list[str] = []
    figures: dict[str, Any] = {}
    async with Cluster(workdir, specs, config) as cluster:
        writer = await cluster.client(WRITER, [RELAY])
        device_id = cluster.peers[DEVICE].replica_id
        assert device_id is not None

        async def knows_all() -> bool:
            return device_id in writer.replica.status()["peers_known"]

        if not await cluster.linked(p.converge_timeout) or (
            await cluster.until(knows_all, p.converge_timeout) is None
        ):
            raise RuntimeError("the cluster did not link up")
        keys = _keys_homed(writer, {writer.replica_id, device_id}, p.keys, seed)
        await cluster.kill(DEVICE)
        await drive(WRITER, _adds(writer, keys, p.writes, p.timeout), history, window=p.window)
        await cluster.close_client(WRITER)
        hinted = sum(1 for a in history if a.acked and a.hinted)
        before = await _pending_for(cluster, device_id)
        figures.update(hinted_acks=hinted, pending_before_handoff=before)

        link = cluster.proxies[(DEVICE, RELAY)]
        link.set_faults(LinkFaults(delay=p.delay))
        await cluster.restart(DEVICE)
        at_kill: list[int] = []

        async def mid_handoff() -> bool:
            pending = await _pending_for(cluster, device_id)
            if pending is not None and before and 0 < pending < before * p.kill_below:
                at_kill.append(pending)
                return True
            return pending == 0

        await cluster.until(mid_handoff, p.converge_timeout, interval=0.02)
        await cluster.kill(RELAY)
        figures["pending_at_kill"] = at_kill[0] if at_kill else None
        link.set_faults(LinkFaults())
        await cluster.restart(RELAY)
        acked = {a.arg for a in history if a.acked}
        held: dict[str, frozenset[Any]] = {}

        async def delivered() -> bool:
            held[DEVICE] = await union_of(cluster, DEVICE, keys)
            return acked <= held[DEVICE] and await _pending_for(cluster, device_id) == 0

        took = await cluster.until(delivered, p.converge_timeout, interval=0.1)
        figures["delivered_after_restart_s"] = None if took is None else round(took, 2)
        figures["pending_at_end"] = await _pending_for(cluster, device_id)
    verdict = check_set(history, held)
    if hinted == 0:
        problems.append("no write was acknowledged through a hint: handoff was not exercised")
    if not at_kill:
        problems.append("the relay was not killed while hints were pending (handoff too fast?)")
    if took is None:
        problems.append(
            f"within {p.converge_timeout} s of the relay's restart the device did not hold "
            f"every acknowledged add, or the relay still had hints pending"
        )
    verdict.problems.extend(problems)
    verdict.figures.update(figures)
    return Result(NAME, seed, scale, asdict(p), verdict, history=history)
