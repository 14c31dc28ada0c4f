"""A relay compacts the log of the partitions it is not a home of once every home has it.

A relay holds every partition its peers are homes of (it takes part in their anti-entropy),
so it logs the entries of partitions it is no home of; those must go once every home of
their partition reported holding them, as a home's do, or the relay's log (and the replay
of it at every open) grows with every write the group ever made.
"""

from __future__ import annotations

from dataclasses import replace

from sync.config import ReplicaConfig
from sync.simnet import SimCluster
from tests.sync.test_sim_relay_bridge import DEVICES, behind_nat

BASE = ReplicaConfig(
    n=3,
    partitions=16,
    anti_entropy_interval=2.0,
    anti_entropy_idle_interval=30.0,
    write_timeout=2.0,
)


def _write(sim: SimCluster) -> None:
    """100 adds by the devices in turn to 20 keys."""
    for i in range(100):
        d = DEVICES[i % 5]
        sim.update(d, f"k{i % 20}", "orset", lambda s, d=d, i=i: s.add(d, f"v{i}"))
        sim.run_for(0.2)


def _every_home_holds_every_add(sim: SimCluster) -> None:
    ring = sim.replica("relay")._membership.ring()
    for i in range(20):
        key = f"k{i}"
        homes = ring.homes_of(key)
        want = frozenset(f"v{j}" for j in range(i, 100, 20))
        assert sim.values(key, homes, kind="orset") == dict.fromkeys(homes, want)


def test_a_relay_compacts_the_partitions_it_is_not_a_home_of() -> None:
    sim = behind_nat(BASE, 1)
    _write(sim)
    sim.run_for(300.0)
    relay = sim.replica("relay")
    ring = relay._membership.ring()
    held = {
        p: sum(len(by_seq) for by_seq in (relay._data.log.of(p) or {}).values())
        for p in relay._data.log.partitions()
        if "relay" not in ring.preference_list(p)
    }
    assert sum(held.values()) == 0, held
    _every_home_holds_every_add(sim)  # nothing was lost


def test_a_relay_that_is_no_home_costs_a_digest_a_round_once_converged() -> None:
    # Every replica must know at the start that the relay is no home (as its handshake
    # says), else the devices' rings hold it and the relay's does not: the partitions
    # each side shares with the other differ, their digests never match, and every round
    # sends part digests and summaries for good.
    sim = behind_nat(BASE, 1, home=False)
    for i in range(20):
        sim.update(DEVICES[i % 5], f"k{i}", "orset", lambda s, i=i: s.add("x", f"v{i}"))
    sim.run_for(300.0)
    sim.reset_stats()
    sim.run_for(300.0)
    assert set(sim.stats.sent) == {"Digest"}, dict(sim.stats.sent)


def test_devices_behind_nat_compact_through_the_relay_and_raise_no_home_down() -> None:
    # A device never hears the other homes of its partitions (they are behind NAT too): it
    # kept its log of them until home_down_window, then reported them down though they were
    # on line behind the relay. The relay, which reaches them, stands in for them: what it
    # holds, it takes to them (and it reports a home that is really gone).
    window = 60.0
    sim = behind_nat(replace(BASE, home_down_window=window), 2)
    _write(sim)
    sim.run_for(3 * window)
    for d in DEVICES:
        status = sim.replica(d).status()
        assert status["homes_down"] == {}, (d, status["homes_down"])
        assert status["log_size"] == 0, (d, status["log_size"])
    _every_home_holds_every_add(sim)
