"""Where a write is: ``Replica.whereabouts`` and the pending-propagation count, simulated.

What a replica knows of where its write is comes from acks (a home that acked a push has
applied it; a fallback that acked holds a hint) and from the peers' summaries
(anti-entropy). A write made while one of its homes is down is first here, at the up homes
and held as a hint by a fallback; once the home is back and has it, every home holds it.
The knowledge is kept per peer and partition, not per write: after many writes and a
summary, nothing of them is left in it.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync.effects import LogDot
from sync.replica import Replica

__all__: list[str] = []


def _four(kit: Any, **config: Any) -> Any:
    cluster = kit.cluster(kit.ids(4), n=3, **config)
    cluster.run_for(cluster.detect_delay + 0.5)
    return cluster


def test_a_write_goes_from_here_and_a_hint_to_every_home(kit: Any) -> None:
    cluster = _four(kit, anti_entropy_interval=1.0, write_timeout=1.0)
    key = kit.key_where(cluster, lambda h: set(h) == {"p000", "p001", "p002"})
    homes = kit.homes(cluster, key)
    cluster.partition([["p000", "p001", "p003"], ["p002"]])  # a home is down
    cluster.run_for(cluster.detect_delay + 0.5)
    op = cluster.update("p000", key, "orset", kit.add("p000", "milk"), w=3)
    assert cluster.run_until(lambda: op.done, max_steps=10_000) and op.ok
    result = op.result
    assert result is not None and result.dot == LogDot("p000", result.dot.partition, 1)
    assert result.hinted == ("p003",)

    a = cluster.replica("p000")
    where = a.whereabouts(key, result.dot)
    assert where.here and where.homes == homes
    assert where.at_homes == tuple(h for h in homes if h != "p002")
    assert where.hints == ("p003",)  # the fallback acked holding it for p002
    assert not where.everywhere
    assert a.status()["pending_propagation"] == 1
    assert a.whereabouts(key) == where  # the key: its one write in the log

    cluster.heal()  # p002 returns: the hint is handed off, summaries say so
    kit.settle(cluster, holders=kit.homes_map(cluster, [key]))
    cluster.run_for(2.0)  # one more round of summaries
    where = a.whereabouts(key, result.dot)
    assert where.at_homes == homes and where.everywhere
    assert where.hints == ()
    assert a.status()["pending_propagation"] == 0


def test_acks_alone_tell_where_a_write_is(kit: Any) -> None:
    cluster = _four(kit, anti_entropy_interval=0)  # no summaries at all
    key = kit.key_where(cluster, lambda h: h[0] == "p000")
    op = cluster.update("p000", key, "gcounter", kit.incr("p000"), w=1)
    a = cluster.replica("p000")
    assert op.result is not None and op.result.dot is not None
    assert a.whereabouts(key, op.result.dot).at_homes == ("p000",)  # the pushes are in flight
    assert a.status()["pending_propagation"] == 1
    assert cluster.run_until_quiet(10_000)
    assert a.whereabouts(key, op.result.dot).everywhere
    assert a.status()["pending_propagation"] == 0


def test_a_coordinator_that_is_not_a_home_knows_when_every_home_has_its_write(kit: Any) -> None:
    cluster = _four(kit, anti_entropy_interval=0)
    key = kit.key_where(cluster, lambda h: "p003" not in h)
    op = cluster.update("p003", key, "orset", kit.add("p003", "x"), w=2)
    assert cluster.run_until_quiet(10_000) and op.ok
    d = cluster.replica("p003")
    where = d.whereabouts(key, op.result.dot if op.result else None)
    assert where.here and "p003" not in where.homes and where.everywhere


def test_what_is_known_of_the_peers_does_not_grow_with_the_writes(kit: Any) -> None:
    cluster = _four(kit, anti_entropy_interval=1.0)
    a = cluster.replica("p000")
    assert isinstance(a, Replica)

    def held() -> int:
        """Dots and entries that acks taught beyond the summaries (all peers, partitions)."""
        records = a._propagation._acked
        return sum(len(ctx.vv) + len(ctx.cloud) for p in records.values() for ctx in p.values())

    sizes = []
    every = [f"k{burst}-{i}" for burst in range(3) for i in range(300)]
    holders = kit.homes_map(cluster, every)
    for burst in range(3):
        keys = every[burst * 300 : (burst + 1) * 300]
        ops = [cluster.update("p000", k, "gcounter", kit.incr("p000")) for k in keys]
        kit.settle(cluster, holders=holders)
        cluster.run_for(2.0)  # summaries after the last acks
        assert all(op.ok for op in ops)
        assert a.status()["pending_propagation"] == 0
        sizes.append(held())
    # 900 acknowledged writes: what is left is at most one count per peer, partition and
    # origin (the partitions whose homes never send this replica a summary), not per write.
    assert sizes[0] == sizes[1] == sizes[2] <= 3 * cluster.config("p000").partitions


def test_whereabouts_of_what_is_not_here_is_an_error(kit: Any) -> None:
    cluster = _four(kit, anti_entropy_interval=0)
    a = cluster.replica("p000")
    with pytest.raises(KeyError, match="not held here"):
        a.whereabouts("nothing")
    op = cluster.update("p000", "k", "gcounter", kit.incr("p000"))
    assert op.result is not None and op.result.dot is not None
    dot = op.result.dot
    with pytest.raises(KeyError, match="never applied here"):
        a.whereabouts("k", LogDot(dot.origin, dot.partition, dot.seq + 5))
    with pytest.raises(ValueError, match="not a log dot of"):
        a.whereabouts("k", LogDot(dot.origin, dot.partition + 1, dot.seq))
