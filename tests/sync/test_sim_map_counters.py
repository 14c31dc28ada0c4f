"""A counter in a map whose increments reach a replica with a gap counts each one once.

Two replicas, anti-entropy off. ``p000`` increments a counter inside a map three times at
w=1; the push of the second increment is lost. ``p001`` applies the first and the third
(a receiver takes gaps), and must read the running total the third carries (6), not that
plus the first's (7): crdt/emcounter.py keeps one entry per replica, the latest.
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def test_a_lost_push_between_two_increments_does_not_count_the_first_twice(kit: Any) -> None:
    cluster = kit.cluster(kit.ids(2), n=2, anti_entropy_interval=0, seed=1)
    cluster.run_for(cluster.detect_delay + 0.5)
    for n in (1, 2, 3):
        if n == 2:
            cluster.drop("p000", "p001", 1.0)
        op = cluster.update(
            "p000",
            "stats",
            "ormap",
            lambda m, n=n: m.update("p000", "hits", "gcounter", kit.incr("p000", n)),
            w=1,
        )
        assert cluster.run_until(lambda op=op: op.done, max_steps=10_000) and op.ok
        assert cluster.run_until_quiet(10_000)
        cluster.heal()
    assert cluster.run_until_quiet(10_000)
    assert cluster.values("stats") == {"p000": {"hits": 6}, "p001": {"hits": 6}}
