"""Scale: in a 200-peer cluster with n=3 a write costs about n-1 deltas, not one per peer.

The replicas start knowing the whole group (``known_peers``, as after a first gossip round)
and anti-entropy is off, so every ``Push`` counted is the write's own replication.
"""

from __future__ import annotations

from typing import Any

from sync.config import ReplicaConfig
from sync.simnet import SimCluster

__all__: list[str] = []

PEERS = 200
N = 3


def test_a_write_sends_n_minus_1_deltas_in_a_200_peer_cluster(kit: Any) -> None:
    ids = kit.ids(PEERS)
    cluster = SimCluster(ids, ReplicaConfig(n=N, anti_entropy_interval=0), seed=1, known_peers=True)
    assert cluster.run_until_quiet(1_000_000)
    ring = kit.ring(cluster)
    keys = [f"key{i}" for i in range(3)]
    for key in keys:
        homes = ring.homes_of(key)
        for coordinator, expected in ((homes[1], N - 1), (_non_home(ids, homes, key), N)):
            cluster.reset_stats()
            op = cluster.update(coordinator, key, "gcounter", kit.incr(coordinator), w=N)
            assert cluster.run_until(lambda op=op: op.done, max_steps=10_000)
            assert op.ok, op.outcome
            assert cluster.run_until_quiet(10_000)
            pushes = cluster.stats.sent["Push"]
            role = "home" if coordinator in homes else "non-home"
            assert pushes == expected, f"a {role} coordinator sent {pushes} Push (n={N})"
            assert cluster.stats.total_sent() <= 2 * expected, dict(cluster.stats.sent)
        holders = [rid for rid in ids if cluster.value(rid, key) is not None]
        assert set(homes) <= set(holders) and len(holders) == N + 1  # + the non-home writer
        assert cluster.converged([key], homes)
        assert kit.hints_on_disks(cluster) == 0


def _non_home(ids: list[str], homes: tuple[str, ...], key: str) -> str:
    # A deterministic, key-dependent choice among the 197 peers that are not homes.
    others = [rid for rid in ids if rid not in homes]
    return others[sum(key.encode()) % len(others)]
