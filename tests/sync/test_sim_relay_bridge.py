"""A relay bridges devices that never reach each other, for writes made while it was down.

Devices behind NAT dial only the relay. With more peers than ``n``, many keys are homed on
devices alone, which anti-entropy (between the homes of a partition) cannot bring together:
they have no link. While the relay is up, a write reaches the other homes through it (hints,
forwards); a write made while it is down (a device off line, the relay restarting) must
reach them once it is back. A relay therefore holds every partition its peers are homes of
and takes part in their anti-entropy: what a device holds reaches the relay, and the relay
offers what it holds to the homes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sync.config import ReplicaConfig
from sync.ring import partition_of
from sync.simnet import SimCluster

DEVICES = [f"d{i}" for i in range(5)]
BASE = ReplicaConfig(n=3, partitions=16, anti_entropy_interval=2.0, write_timeout=2.0)


def behind_nat(base: ReplicaConfig, seed: int, **relay: Any) -> SimCluster:
    """``DEVICES`` and a relay (``base`` with ``relay=True`` and ``relay``'s options), the
    devices' links to each other cut (behind NAT: they reach only the relay), once up."""
    configs = {d: base for d in DEVICES} | {"relay": replace(base, relay=True, **relay)}
    sim = SimCluster([*DEVICES, "relay"], configs, seed=seed)
    for i, a in enumerate(DEVICES):
        for b in DEVICES[i + 1 :]:
            sim.cut(a, b)
    sim.run_for(5.0)
    return sim


def _cluster(seed: int) -> SimCluster:
    return behind_nat(BASE, seed)


def _keys(sim: SimCluster) -> tuple[str, tuple[str, ...], str]:
    """A key homed on devices only, its homes, and a device not among them."""
    ring = sim.replica("relay")._membership.ring()
    for i in range(1000):
        key = f"list:{i}"
        homes = ring.preference_list(partition_of(key, ring.partitions))
        if "relay" not in homes:
            outsider = next(d for d in DEVICES if d not in homes)
            return key, homes, outsider
    raise AssertionError("no key homed on devices only")


@pytest.mark.parametrize("seed", range(3))
def test_writes_made_while_the_relay_was_down_reach_every_home_once_it_is_back(
    seed: int,
) -> None:
    sim = _cluster(seed)
    key, homes, outsider = _keys(sim)
    home, other_home = homes[0], homes[1]
    sim.update(home, key, "orset", lambda s: s.add(home, "before"))
    sim.run_for(10.0)
    assert sim.values(key, homes, kind="orset") == dict.fromkeys(homes, frozenset({"before"}))
    sim.crash("relay")
    sim.run_for(5.0)
    # Off line from each other: a home adds, another home removes, a device that is not a
    # home adds.
    sim.update(home, key, "orset", lambda s: s.add(home, "by a home"))
    sim.update(outsider, key, "orset", lambda s: s.add(outsider, "by another"))
    sim.update(other_home, key, "orset", lambda s: s.remove("before"))
    sim.run_for(10.0)
    sim.restart("relay")
    sim.run_for(60.0)
    want = frozenset({"by a home", "by another"})
    assert sim.values(key, homes, kind="orset") == dict.fromkeys(homes, want)
    # The device that is not a home kept its write as a hint for each home (it may hold the
    # only copy); the homes never reach it to acknowledge, and the relay now holds the write
    # and takes it to them: the hints go, and the write is no longer counted pending.
    assert sim.replica(outsider).status()["hints"] == {}
