"""A write whose push reached a replica after the push of an earlier write was lost.

Two replicas, anti-entropy off. ``p000`` writes one object three times at w=1; the push of
the second write is lost (the link stays up). ``p001`` applies the first and the third (a
receiver takes gaps) and must read what the third says, as if it had the second too:

* a counter in a map reads the running total the third carries (6), not that plus the
  first's (7): crdt/emcounter.py keeps one entry per replica, the latest;
* a multi-value register reads the third value alone, not the first as its sibling: the
  delta of a set carries every dot its writer had seen (crdt/mvregister.py).
"""

from __future__ import annotations

from typing import Any

import pytest

__all__: list[str] = []

CASES: dict[str, tuple[str, Any, Any]] = {
    "counter in a map": (
        "ormap",
        lambda n: lambda m: m.update("p000", "hits", "gcounter", lambda c: c.increment("p000", n)),
        {"hits": 6},
    ),
    "multi-value register": ("mvregister", lambda n: lambda r: r.set("p000", f"v{n}"), ("v3",)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_lost_push_between_two_writes_leaves_nothing_of_the_first(kit: Any, case: str) -> None:
    kind, write, expected = CASES[case]
    cluster = kit.cluster(kit.ids(2), n=2, anti_entropy_interval=0, seed=1)
    cluster.run_for(cluster.detect_delay + 0.5)
    for n in (1, 2, 3):
        if n == 2:
            cluster.drop("p000", "p001", 1.0)
        op = cluster.update("p000", "k", kind, write(n), w=1)
        assert cluster.run_until(lambda op=op: op.done, max_steps=10_000) and op.ok
        assert cluster.run_until_quiet(10_000)
        cluster.heal()
    assert cluster.run_until_quiet(10_000)
    assert cluster.values("k") == {"p000": expected, "p001": expected}
