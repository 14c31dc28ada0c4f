"""Shared helpers of the engine's simulation tests (tests/sync/test_sim_*.py).

Exposed as the ``kit`` fixture (test modules cannot import a conftest under
``--import-mode=importlib``): building clusters, mutators for ``SimCluster.update``, and the
ring questions a test asks to pick keys (``homes``, ``key_where``). Engine tests import
:func:`ask_transfer` (``from tests.sync.conftest import ask_transfer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from sync import messages as m
from sync.config import ReplicaConfig
from sync.digest import ctx_model
from sync.replica import Replica
from sync.ring import Ring
from sync.simnet import SimCluster

__all__ = ["SimKit", "ask_transfer", "asking_replica"]


def ask_transfer(r: Replica, peer: str, partitions: Iterable[int], now: float) -> None:
    """Have ``r`` send ``peer`` its summary of ``partitions``, which a state transfer answers
    (a chunk nobody asked for is refused): ``peer`` reports holding what ``r`` holds of them,
    asking for ``r``'s summaries back. ``r``'s effects are drained."""
    parts = {p: ctx_model(r.summary(p)) for p in partitions}
    r.receive(peer, m.Summary(parts=parts, reply=True), now)
    r.effects()


def asking_replica(partition: int) -> Replica:
    """Replica ``A`` (``n=2``) with ``B`` up, which asked ``B`` for a state transfer of
    ``partition`` (:func:`ask_transfer`): ``B``'s chunks of it are taken."""
    r = Replica(ReplicaConfig(n=2), "A")
    r.peer_up("B", 0.0)
    r.effects()
    ask_transfer(r, "B", [partition], 0.0)
    return r


class SimKit:
    """Helpers for building simulated clusters and choosing keys."""

    @staticmethod
    def ids(count: int) -> list[str]:
        """``count`` replica ids that sort in creation order: ``p000``, ``p001``..."""
        return [f"p{i:03d}" for i in range(count)]

    @staticmethod
    def cluster(
        ids: Iterable[str], *, seed: int = 0, detect_delay: float = 1.0, **config: Any
    ) -> SimCluster:
        """A cluster where every replica has ``ReplicaConfig(**config)``."""
        return SimCluster(list(ids), ReplicaConfig(**config), seed=seed, detect_delay=detect_delay)

    @staticmethod
    def ring(cluster: SimCluster, members: Iterable[str] | None = None) -> Ring:
        """The ring every replica computes when it knows ``members`` (default: everyone)."""
        cfg = cluster.config(cluster.ids[0])
        peers = cluster.ids if members is None else list(members)
        return Ring(peers, n=cfg.n, partitions=cfg.partitions, vnodes=cfg.vnodes)

    @staticmethod
    def homes(cluster: SimCluster, key: str) -> tuple[str, ...]:
        return SimKit.ring(cluster).homes_of(key)

    @staticmethod
    def key_where(
        cluster: SimCluster, pred: Callable[[tuple[str, ...]], bool], prefix: str = "key"
    ) -> str:
        """The first key ``prefix0``, ``prefix1``... whose preference list satisfies ``pred``."""
        ring = SimKit.ring(cluster)
        for i in range(100_000):
            key = f"{prefix}{i}"
            if pred(ring.homes_of(key)):
                return key
        raise AssertionError("no key satisfies the predicate")

    @staticmethod
    def keys_where(
        cluster: SimCluster, pred: Callable[[tuple[str, ...]], bool], count: int, prefix: str
    ) -> list[str]:
        """The first ``count`` keys ``prefix0``... whose preference list satisfies ``pred``."""
        ring = SimKit.ring(cluster)
        found = [k for k in (f"{prefix}{i}" for i in range(100_000)) if pred(ring.homes_of(k))]
        assert len(found) >= count, "not enough keys satisfy the predicate"
        return found[:count]

    @staticmethod
    def incr(replica: str, n: int = 1) -> Callable[[Any], Any]:
        """A counter mutator (gcounter/pncounter) acting as ``replica``."""
        return lambda c: c.increment(replica, n)

    @staticmethod
    def add(replica: str, element: Any) -> Callable[[Any], Any]:
        """An ORSet add acting as ``replica``."""
        return lambda s: s.add(replica, element)

    @staticmethod
    def remove(element: Any) -> Callable[[Any], Any]:
        """An ORSet observed-remove."""
        return lambda s: s.remove(element)

    @staticmethod
    def hints_on_disks(cluster: SimCluster, target: str | None = None) -> int:
        """Hints held on every disk (for ``target``, or for anyone)."""
        return sum(
            1
            for rid in cluster.ids
            for hid in cluster.disk(rid).hints
            if target is None or hid.target == target
        )

    @staticmethod
    def settle(
        cluster: SimCluster,
        *,
        holders: Callable[[str], Iterable[str]] | None = None,
        rounds: int = 40,
        max_steps: int = 200_000,
    ) -> None:
        """Run to quiescence, check convergence, and if not converged yet let one more
        anti-entropy period pass; fail after ``rounds`` periods."""
        period = cluster.config(cluster.ids[0]).anti_entropy_interval or 1.0
        for _ in range(rounds):
            assert cluster.run_until_quiet(max_steps), "the cluster never went quiet"
            if cluster.converged(holders=holders):
                return
            cluster.run_for(period)
        bad = cluster.divergent(holders=holders)
        raise AssertionError(
            f"no convergence after {rounds} rounds: {len(bad)} keys, e.g. "
            f"{dict(list(bad.items())[:3])}"
        )

    @staticmethod
    def homes_map(cluster: SimCluster, keys: Iterable[str]) -> Callable[[str], tuple[str, ...]]:
        """``holders`` for :meth:`SimCluster.converged`: each key's home replicas."""
        ring = SimKit.ring(cluster)
        table = {key: ring.homes_of(key) for key in keys}
        return lambda key: table[key]


@pytest.fixture
def kit() -> type[SimKit]:
    return SimKit
