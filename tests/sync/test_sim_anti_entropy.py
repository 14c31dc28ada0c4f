"""Anti-entropy: convergence after partitions, summaries only once converged, state transfer.

* 1000 keys written on both sides of a partition (and some keys on both sides at once)
  converge after the heal; once converged, more anti-entropy intervals send nothing but
  ``Digest`` messages.
* A replica that joins after the others compacted their logs catches up through a chunked
  state transfer (``SnapshotChunk``), not through log entries it can no longer get; when
  the transfer's summary brings more new origins than one takes, over several transfers.
"""

from __future__ import annotations

from typing import Any

import pytest

from crdt import CausalContext
from sync.config import MIN_MESSAGE_BYTES
from sync.replica import anti_entropy
from sync.replica.anti_entropy import taken_summary

__all__: list[str] = []

INTERVAL = 5.0


def test_1000_keys_written_under_partition_converge_then_only_digests(kit: Any) -> None:
    cluster = kit.cluster(kit.ids(4), n=3, anti_entropy_interval=INTERVAL, seed=9)
    left, right = ["p000", "p001"], ["p002", "p003"]
    cluster.partition([left, right])
    cluster.run_for(cluster.detect_delay + 0.5)
    ops = []
    for i in range(1000):
        side = left if i % 2 else right
        writer = side[(i // 2) % 2]
        ops.append(cluster.update(writer, f"k{i}", "orset", kit.add(writer, i)))
    for i in range(0, 100, 10):  # concurrent writes to the same keys on both sides
        ops.append(cluster.update("p000", f"k{i}", "orset", kit.add("p000", -i)))
    for i in range(1, 100, 10):
        ops.append(cluster.update("p003", f"c{i}", "pncounter", kit.incr("p003", i)))
        ops.append(cluster.update("p001", f"c{i}", "pncounter", kit.incr("p001", 1)))
    assert cluster.run_until(lambda: all(op.done for op in ops), max_steps=100_000)
    assert all(op.ok for op in ops)

    cluster.heal()
    holders = kit.homes_map(cluster, cluster.keys)
    kit.settle(cluster, holders=holders)
    for i in range(1000):
        expected = frozenset({i, -i}) if i % 10 == 0 and i < 100 else frozenset({i})
        values = cluster.values(f"k{i}", holders(f"k{i}"))
        assert set(values.values()) == {expected}, (i, values)
    for i in range(1, 100, 10):
        values = cluster.values(f"c{i}", holders(f"c{i}"))
        assert set(values.values()) == {i + 1}, (i, values)

    assert cluster.run_until_quiet(200_000)
    cluster.run_for(2 * INTERVAL)  # let in-progress rounds finish
    cluster.reset_stats()
    cluster.run_for(5 * INTERVAL)
    sent = cluster.stats.sent
    assert sent["Digest"] > 0, "no anti-entropy at all after convergence"
    assert set(sent) == {"Digest"}, f"converged peers sent more than digests: {dict(sent)}"
    assert cluster.anomalies == [] and cluster.protocol_errors == []


def test_a_replica_behind_the_compacted_log_gets_a_state_transfer(kit: Any) -> None:
    cluster = kit.cluster(
        ["p000", "p001"], n=3, anti_entropy_interval=1.0, checkpoint_every=10, seed=2
    )
    ops = [
        cluster.update("p000", f"s{i}", "gcounter", kit.incr("p000", i + 1), w=2)
        for i in range(300)
    ]
    assert cluster.run_until(lambda: all(op.done for op in ops), max_steps=100_000)
    assert all(op.ok for op in ops)
    assert cluster.run_until(
        lambda: cluster.disk("p000").compacted > 0 and cluster.disk("p001").compacted > 0,
        max_steps=200_000,
    ), "the two replicas never compacted their logs although both hold everything"

    cluster.add_replica("p002")
    kit.settle(cluster)
    assert cluster.stats.sent["SnapshotChunk"] > 0, dict(cluster.stats.sent)
    for i in range(300):
        assert cluster.values(f"s{i}") == dict.fromkeys(cluster.ids, i + 1)
    assert cluster.anomalies == [] and cluster.protocol_errors == []


def test_forgetting_a_down_replica_lets_compaction_proceed(kit: Any) -> None:
    # Causal stability waits for every known home; once the operator forgets a dead one
    # (on every replica), nothing else should be needed for compaction to proceed.
    cluster = kit.cluster(kit.ids(3), n=3, anti_entropy_interval=1.0, checkpoint_every=10)
    cluster.crash("p002")
    cluster.run_for(cluster.detect_delay + 0.5)
    ops = [cluster.update("p000", f"f{i}", "gcounter", kit.incr("p000"), w=2) for i in range(100)]
    assert cluster.run_until(lambda: all(op.done for op in ops), max_steps=50_000)
    assert all(op.ok for op in ops)
    cluster.run_for(5.0)
    assert cluster.disk("p000").compacted == 0, "compacted although a home never acknowledged"
    cluster.forget("p000", "p002")
    cluster.forget("p001", "p002")
    cluster.run_for(5.0)
    assert cluster.disk("p000").compacted > 0 and cluster.disk("p001").compacted > 0, (
        "log not compacted 5 anti-entropy intervals after the last missing home was forgotten"
    )


def test_anti_entropy_converges_through_lossy_links_in_small_batches(kit: Any) -> None:
    cluster = kit.cluster(
        kit.ids(3), n=3, anti_entropy_interval=1.0, ae_batch=20, ae_max_inflight=2, seed=5
    )
    cluster.partition([["p000", "p001"], ["p002"]])
    cluster.run_for(cluster.detect_delay + 0.5)
    ops = [cluster.update("p000", f"l{i}", "orset", kit.add("p000", i)) for i in range(300)]
    ops += [cluster.update("p002", f"l{i}", "orset", kit.add("p002", -i)) for i in range(0, 300, 3)]
    assert cluster.run_until(lambda: all(op.done for op in ops), max_steps=50_000)
    cluster.partition([cluster.ids])  # one group again, but the links stay bad:
    cluster.drop(None, None, 0.3)
    cluster.duplicate(0.2)
    cluster.reorder()
    kit.settle(cluster, rounds=200)
    assert cluster.stats.dropped["Deltas"] > 0, "the scenario lost no batch: it tests nothing"
    for i in range(300):
        expected = {i, -i} if i % 3 == 0 else {i}
        assert cluster.values(f"l{i}") == dict.fromkeys(cluster.ids, frozenset(expected))


def test_batches_stay_under_the_message_size_limit(kit: Any) -> None:
    limit = MIN_MESSAGE_BYTES
    cluster = kit.cluster(kit.ids(3), n=3, anti_entropy_interval=1.0, max_message_bytes=limit)
    cluster.partition([["p000", "p001"], ["p002"]])
    cluster.run_for(cluster.detect_delay + 0.5)
    big = "x" * 200  # (1000 of them: several times the limit)
    ops = [cluster.update("p000", f"b{i}", "orset", kit.add("p000", big)) for i in range(1000)]
    assert cluster.run_until(lambda: all(op.done for op in ops), max_steps=50_000)
    cluster.heal()
    kit.settle(cluster)  # an oversized message would raise SimulationError on delivery
    assert cluster.protocol_errors == []
    assert cluster.stats.sent["Deltas"] > 1000 // 500, "the batches were not split to fit"
    assert cluster.values("b999") == dict.fromkeys(cluster.ids, frozenset({big}))


def test_a_partition_whose_homes_are_all_new_gets_its_data_from_those_that_hold_it() -> None:
    """Three replicas, n=3 (each a home of every key), 30 keys written at w=3; six empty
    replicas join. A partition whose three new homes are all new replicas had no home that
    held it, and its old holders were homes no more: anti-entropy (between homes) never
    carried it, and an r=2 read on its homes found nothing, for ever. The old holders now
    offer it to its homes."""
    from sync.config import ReplicaConfig
    from sync.simnet import SimCluster

    cfg = ReplicaConfig(n=3, w=1, r=2, anti_entropy_interval=2.0, anti_entropy_idle_interval=10.0)
    cluster = SimCluster(["a", "b", "c"], cfg, seed=1)
    keys = [f"k{i}" for i in range(30)]
    for k in keys:
        op = cluster.update("a", k, "orset", lambda s, k=k: s.add("a", k), w=3)
        assert cluster.run_until(lambda op=op: op.done, 10_000) and op.ok
    assert cluster.run_until(lambda: cluster.quiet() and cluster.converged(), 200_000)
    for r in [f"n{i}" for i in range(6)]:
        cluster.add_replica(r)
    cluster.run_for(120, max_steps=3_000_000)
    ring = cluster.replica("n0")._membership.ring()
    moved = [k for k in keys if not set(ring.homes_of(k)) & {"a", "b", "c"}]
    assert moved  # (the case of the test: keys whose homes are all new)
    for k in moved:
        homes = ring.homes_of(k)
        assert cluster.values(k, homes) == dict.fromkeys(homes, frozenset({k}))
        op = cluster.read(homes[0], k, kind="orset", r=2)
        assert cluster.run_until(lambda op=op: op.done, 10_000)
        assert op.ok and op.state is not None and op.state.value == frozenset({k})


def test_a_replica_that_offers_a_partition_it_does_not_home_is_not_sent_the_partition() -> None:
    """A non-home coordinator that wrote one key of a partition offers it to the homes
    (the hand-over): the homes take its write and send it nothing of the partition back (a
    home answering an offer with what the offerer lacked made every replica that ever wrote
    a key homed elsewhere pull that key's whole partition)."""
    from sync.config import ReplicaConfig
    from sync.ring import Ring, partition_of
    from sync.simnet import SimCluster

    ids = ["p0", "p1", "p2", "p3"]
    cfg = ReplicaConfig(n=3, w=1, anti_entropy_interval=2.0, anti_entropy_idle_interval=10.0)
    cluster = SimCluster(ids, cfg, seed=3, known_peers=True)
    cluster.run_for(3)
    ring = Ring(ids, n=3, partitions=cfg.partitions, vnodes=cfg.vnodes)
    keys = [k for k in (f"k{i}" for i in range(2000)) if "p0" not in ring.homes_of(k)]
    part = partition_of(keys[0], cfg.partitions)
    same = [k for k in keys if partition_of(k, cfg.partitions) == part]
    assert len(same) >= 3
    homes = ring.homes_of(same[0])
    for k in same[1:3]:  # the homes write two keys of the partition
        op = cluster.update(homes[0], k, "gcounter", lambda g: g.increment(homes[0], 1))
        assert cluster.run_until(lambda op=op: op.done, 10_000) and op.ok
    op = cluster.update("p0", same[0], "gcounter", lambda g: g.increment("p0", 1))
    assert cluster.run_until(lambda op=op: op.done, 10_000) and op.ok
    cluster.run_for(60, max_steps=2_000_000)
    assert cluster.values(same[0], list(homes)) == dict.fromkeys(homes, 1)
    assert cluster.values(same[1], ["p0"]) == {"p0": None}  # not pulled to p0


def test_a_transfer_of_more_new_origins_than_are_taken_at_once_converges_over_rounds(
    kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state transfer's summary adds at most ``TAKEN_ORIGINS_MAX`` origins new to ours (one
    here): a new replica, sent summaries of five writers each, takes them one transfer at a
    time; each round its summary still lacks some, so the sender transfers again, until
    their summaries are the same."""
    monkeypatch.setattr(anti_entropy, "TAKEN_ORIGINS_MAX", 1)
    cut: list[int] = []  # the partitions of each transfer whose summary was not taken whole

    def spy(theirs: CausalContext, mine: CausalContext) -> CausalContext:
        taken = taken_summary(theirs, mine)
        if set(theirs.vv) - set(taken.vv):
            cut.append(len(set(theirs.vv) - set(taken.vv)))
        return taken

    monkeypatch.setattr(anti_entropy, "taken_summary", spy)
    writers = kit.ids(5)
    cluster = kit.cluster(writers, n=3, anti_entropy_interval=1.0, checkpoint_every=10, seed=4)
    ops = [
        cluster.update(w, f"s{i}", "gcounter", kit.incr(w), w=3) for i in range(40) for w in writers
    ]
    assert cluster.run_until(lambda: all(op.done for op in ops), max_steps=200_000)
    assert all(op.ok for op in ops)
    assert cluster.run_until(
        lambda: all(cluster.disk(w).compacted > 0 for w in writers), max_steps=400_000
    ), "the writers never compacted their logs"

    cluster.add_replica("p005")
    holders = kit.homes_map(cluster, cluster.keys)
    kit.settle(cluster, holders=holders)
    ring = kit.ring(cluster)
    parts = [p for p in range(cluster.config("p005").partitions) if ring.is_home("p005", p)]

    def same_summaries() -> bool:
        return all(
            cluster.replica("p005").summary(p) == cluster.replica(h).summary(p)
            for p in parts
            for h in ring.preference_list(p)
        )

    for _ in range(20):
        if same_summaries():
            break
        cluster.run_for(1.0)
    assert same_summaries()
    assert max(cut) >= 4, "no transfer brought more new origins than are taken at once"
    for i in range(40):
        homes = holders(f"s{i}")
        assert cluster.values(f"s{i}", homes) == dict.fromkeys(homes, 5)
    assert cluster.anomalies == [] and cluster.protocol_errors == []


def test_a_transfer_filling_our_gaps_also_brings_its_out_of_order_dots() -> None:
    """Our summary's cloud is full (1,100 of a's dots past a:1, which we lack); a state
    transfer's summary holds a:1 (so our cloud leaves for the vector) and b:5 out of order.
    b:5 is taken: the room for cloud dots is what our cloud holds once the transfer's vector
    is taken. Before, the room was counted on the cloud before, none, and the sender
    transferred the partition again next round only for b:5."""
    mine = CausalContext()
    mine.cloud = {("a", c) for c in range(2, 1102)}
    theirs = CausalContext()
    theirs.vv, theirs.cloud = {"a": 1101}, {("b", 5)}
    taken = taken_summary(theirs, mine)
    assert taken.vv == {"a": 1101} and taken.cloud == {("b", 5)}
    mine.merge(taken)
    assert mine == theirs
