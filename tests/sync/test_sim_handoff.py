"""Hinted handoff: a home is down, writes succeed through fallbacks, hints reach the home.

Five replicas, n=3, coordinator ``p000``, ``p001`` a home of every key used. With ``p001``
unreachable, ``w=3`` sloppy writes succeed with hinted acks from non-home fallbacks. Anti-
entropy is off, so when ``p001`` returns the only way the deltas can reach it is hinted
handoff: every one of them must, and every holder must then drop its hints (on disk). Hints
older than the hint window are dropped while the home is still away, and anti-entropy
repairs the home when it returns.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync.config import ReplicaConfig
from sync.ring import Ring
from sync.simnet import SimCluster

__all__: list[str] = []

HOME = "p001"
COORD = "p000"


def _make_unreachable(cluster: SimCluster, how: str) -> None:
    if how == "crash":
        cluster.crash(HOME)
    else:
        cluster.partition([[rid for rid in cluster.ids if rid != HOME]])
    cluster.run_for(cluster.detect_delay + 0.5)
    assert not cluster.believes_up(COORD, HOME)


def _bring_back(cluster: SimCluster, how: str) -> None:
    if how == "crash":
        cluster.restart(HOME)
    else:
        cluster.heal()


def _write_hinted(kit: Any, cluster: SimCluster, keys: list[str]) -> None:
    ops = [cluster.update(COORD, key, "orset", kit.add(COORD, key), w=3) for key in keys]
    assert cluster.run_until(lambda: all(op.done for op in ops), max_steps=50_000)
    for op in ops:
        assert op.ok, f"sloppy w=3 write with one home down must succeed: {op}"
        assert op.result is not None and op.result.hinted, f"no hinted ack: {op.result}"
        homes = kit.homes(cluster, op.key)
        assert not set(op.result.hinted) & set(homes), f"hint on a home: {op.result}"


@pytest.mark.parametrize("how", ["crash", "partition"])
def test_every_hinted_delta_reaches_the_home_and_hints_are_dropped(kit: Any, how: str) -> None:
    cluster = kit.cluster(kit.ids(5), n=3, anti_entropy_interval=0, write_timeout=2.0)
    keys = kit.keys_where(cluster, lambda h: COORD in h and HOME in h, 20, prefix="hh")
    _make_unreachable(cluster, how)
    _write_hinted(kit, cluster, keys)
    held = kit.hints_on_disks(cluster, HOME)
    assert held >= len(keys), f"{held} hints on disk for {len(keys)} hinted writes"

    _bring_back(cluster, how)
    assert cluster.run_until_quiet(100_000)
    missing = [k for k in keys if cluster.values(k, [HOME])[HOME] != frozenset({k})]
    assert missing == [], f"{len(missing)} of {len(keys)} hinted deltas never reached {HOME}"
    assert kit.hints_on_disks(cluster) == 0, "hints still held after the hand-off"
    for rid in cluster.ids:
        held = cluster.replica(rid).status()["hints"]
        assert not any(held.values()), f"{rid} still reports hints {held}"
    for key in keys:
        assert cluster.converged([key], kit.homes(cluster, key))
    assert cluster.anomalies == []


def test_hints_past_the_window_are_dropped_and_anti_entropy_repairs(kit: Any) -> None:
    cluster = kit.cluster(
        kit.ids(5), n=3, anti_entropy_interval=5.0, hint_window=20.0, write_timeout=2.0
    )
    keys = kit.keys_where(cluster, lambda h: COORD in h and HOME in h, 10, prefix="win")
    _make_unreachable(cluster, "crash")
    _write_hinted(kit, cluster, keys)
    assert kit.hints_on_disks(cluster, HOME) >= len(keys)

    cluster.run_for(60.0, max_steps=100_000)
    assert cluster.anomalies == []
    assert kit.hints_on_disks(cluster, HOME) == 0, "hints outlived the hint window"
    for rid in cluster.ids:
        if cluster.alive(rid):
            assert not cluster.replica(rid).status()["hints"].get(HOME), rid
    assert not cluster.alive(HOME)

    cluster.restart(HOME)
    assert cluster.run_until(
        lambda: all(cluster.values(k, [HOME])[HOME] == frozenset({k}) for k in keys),
        max_steps=200_000,
    ), "anti-entropy did not repair the home after its hints expired"
    for key in keys:
        assert cluster.converged([key], kit.homes(cluster, key))


def test_hint_holders_that_crash_and_restart_still_hand_off(kit: Any) -> None:
    cluster = kit.cluster(kit.ids(5), n=3, anti_entropy_interval=0, write_timeout=2.0)
    keys = kit.keys_where(cluster, lambda h: COORD in h and HOME in h, 12, prefix="hc")
    _make_unreachable(cluster, "crash")
    _write_hinted(kit, cluster, keys)
    holders = sorted({h for op in cluster.ops for h in (op.result.hinted if op.result else ())})
    for rid in holders:  # hints must come back from the holders' disks
        cluster.crash(rid)
    cluster.run_for(1.0)
    for rid in holders:
        cluster.restart(rid)
    cluster.run_for(3.0)
    cluster.restart(HOME)
    assert cluster.run_until_quiet(100_000)
    missing = [k for k in keys if cluster.values(k, [HOME])[HOME] != frozenset({k})]
    assert missing == [], f"hints lost in a crash of their holders: {missing}"
    assert kit.hints_on_disks(cluster) == 0


def test_hints_per_target_are_bounded_and_anti_entropy_repairs_the_rest(kit: Any) -> None:
    bound = 5
    cluster = kit.cluster(
        kit.ids(5), n=3, anti_entropy_interval=2.0, write_timeout=2.0, hint_max_per_target=bound
    )
    keys = kit.keys_where(cluster, lambda h: COORD in h and HOME in h, 12, prefix="hb")
    _make_unreachable(cluster, "crash")
    _write_hinted(kit, cluster, keys)
    for rid in cluster.ids:
        held = sum(1 for hid in cluster.disk(rid).hints if hid.target == HOME)
        assert held <= bound, f"{rid} holds {held} hints for {HOME} (bound {bound})"
    cluster.restart(HOME)
    kit.settle(cluster, holders=kit.homes_map(cluster, keys))
    assert all(cluster.values(k, [HOME])[HOME] == frozenset({k}) for k in keys)


def test_a_coordinators_own_hint_whose_push_was_lost_on_a_live_link_is_sent_again() -> None:
    """A coordinator that is not a home keeps its write as a hint for each home; the push to
    one home is lost while the link stays up (a full queue drops its oldest message). The
    hint was never sent again (no hand-off retry was set for it): held for ever, the entry
    never compacted, and without anti-entropy the home never had the write."""
    ids = ["p0", "p1", "p2", "p3"]
    cfg = ReplicaConfig(n=3, anti_entropy_interval=0, write_timeout=2.0)
    c = SimCluster(ids, cfg, seed=1, known_peers=True)
    c.run_for(3)
    ring = Ring(ids, n=3, partitions=cfg.partitions, vnodes=cfg.vnodes)
    key = next(k for k in (f"k{i}" for i in range(1000)) if "p0" not in ring.homes_of(k))
    home = ring.homes_of(key)[0]
    c.drop("p0", home, 1.0, one_way=True)  # the write's push to the home is lost
    op = c.update("p0", key, "gcounter", lambda g: g.increment("p0", 1), w=1)
    c.run_for(0.5)
    c.drop("p0", home, 0.0, one_way=True)  # the link is fine again
    c.run_for(10 * cfg.write_timeout)
    assert op.ok
    assert c.values(key, [home])[home] == 1
    assert c.replica("p0").status()["hints"] == {}  # handed off, acked, dropped
