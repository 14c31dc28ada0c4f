"""Read repair: with anti-entropy off, one read with r=n leaves every replica merged.

Three replicas, n=3, anti-entropy off. Every message to and from ``p002`` is dropped (the
link stays "up", so no hint is kept for it) while ``p000`` writes with w=2 and ``p002``
writes concurrently with w=1. After the faults are cleared each side lacks the other's
write, and nothing but a read can fix that. One read with r=3 returns the join and repairs
every replica that was behind, including the coordinator itself.
"""

from __future__ import annotations

from typing import Any

import pytest

__all__: list[str] = []


@pytest.mark.parametrize("reader", ["p000", "p001", "p002"])
def test_one_read_with_r_n_repairs_every_stale_replica(kit: Any, reader: str) -> None:
    cluster = kit.cluster(kit.ids(3), n=3, anti_entropy_interval=0, seed=4)
    key = "cart"
    cluster.drop("p002", None, 1.0)
    mine = cluster.update("p000", key, "orset", kit.add("p000", "milk"), w=2)
    theirs = cluster.update("p002", key, "orset", kit.add("p002", "eggs"), w=1)
    assert cluster.run_until(lambda: mine.done and theirs.done, max_steps=10_000)
    assert mine.ok and theirs.ok
    cluster.heal()
    assert cluster.run_until_quiet(10_000)
    before = cluster.values(key)
    assert before == {
        "p000": frozenset({"milk"}),
        "p001": frozenset({"milk"}),
        "p002": frozenset({"eggs"}),
    }, "precondition: the replicas must be stale before the read"

    read = cluster.read(reader, key, kind="orset", r=3)
    assert cluster.run_until(lambda: read.done, max_steps=10_000)
    assert read.ok, read.outcome
    assert read.state is not None and read.state.value == frozenset({"milk", "eggs"})
    assert cluster.run_until_quiet(10_000)
    assert cluster.values(key) == dict.fromkeys(cluster.ids, frozenset({"milk", "eggs"}))
    assert cluster.converged([key])
    sent = cluster.stats.sent
    assert sent["Summary"] == 0 and sent["Deltas"] == 0, "anti-entropy ran although off"


def test_a_read_with_everyone_current_repairs_nothing(kit: Any) -> None:
    cluster = kit.cluster(kit.ids(3), n=3, anti_entropy_interval=0)
    write = cluster.update("p000", "k", "gcounter", kit.incr("p000", 3), w=3)
    assert cluster.run_until(lambda: write.done, max_steps=10_000) and write.ok
    assert cluster.run_until_quiet(10_000)
    cluster.reset_stats()
    read = cluster.read("p001", "k", r=3)
    assert cluster.run_until(lambda: read.done, max_steps=10_000) and read.ok
    assert cluster.run_until_quiet(10_000)
    assert read.state is not None and read.state.value == 3
    assert cluster.stats.sent["Repair"] == 0
    outcome = read.outcome
    assert getattr(outcome, "repaired", None) == ()


def test_a_replica_that_never_had_the_key_gets_it_from_one_read(kit: Any) -> None:
    cluster = kit.cluster(kit.ids(3), n=3, anti_entropy_interval=0)
    cluster.drop("p002", None, 1.0)
    write = cluster.update("p000", "note", "pncounter", kit.incr("p000", 4), w=2)
    assert cluster.run_until(lambda: write.done, max_steps=10_000) and write.ok
    cluster.heal()
    assert cluster.run_until_quiet(10_000)
    assert cluster.values("note") == {"p000": 4, "p001": 4, "p002": None}
    read = cluster.read("p002", "note", kind="pncounter", r=3)
    assert cluster.run_until(lambda: read.done, max_steps=10_000) and read.ok
    assert read.state is not None and read.state.value == 4
    assert cluster.run_until_quiet(10_000)
    assert cluster.values("note") == dict.fromkeys(cluster.ids, 4)
    assert ("note", "pncounter") in cluster.disk("p002").objects, "repair not persisted"
    cluster.crash("p002")
    cluster.restart("p002")
    assert cluster.values("note", ["p002"]) == {"p002": 4}, "the repair did not survive a restart"


def test_a_state_bigger_than_a_message_is_not_sent_by_reads_and_anti_entropy_brings_it(
    kit: Any,
) -> None:
    """A set grown by writes that each fit can outgrow one message. A read asking a replica
    that holds it, or repairing one that lacks it, must not send it whole (the receiver
    would refuse the message, closing the link): the answer is not sent (an alarm says why;
    the asker counts that replica as silent) and the repair is skipped, for anti-entropy to
    bring the set in pieces (as it does a state transfer's: test_sim_catch_up)."""
    limit = 64 * 1024
    cluster = kit.cluster(kit.ids(2), n=2, anti_entropy_interval=0, max_message_bytes=limit)
    cluster.run_for(cluster.detect_delay + 0.5)
    cluster.drop("p001", None, 1.0)  # p001 misses every write
    ops = [
        cluster.update("p000", "big", "orset", kit.add("p000", f"{i:03}" + "x" * 6000), w=1)
        for i in range(20)  # 20 elements of 6 KB: about 120 KB, two messages' worth
    ]
    assert cluster.run_until(lambda: all(op.done for op in ops), max_steps=20_000)
    cluster.heal()
    assert cluster.run_until_quiet(10_000)
    assert cluster.values("big")["p001"] is None

    behind = cluster.read("p001", "big", kind="orset", r=2, timeout=2.0)
    assert cluster.run_until(lambda: behind.done, max_steps=20_000)
    assert not behind.ok  # p000's answer was too big to send: one reply of two
    ahead = cluster.read("p000", "big", kind="orset", r=2, timeout=2.0)
    assert cluster.run_until(lambda: ahead.done, max_steps=20_000)
    assert ahead.ok and ahead.state is not None and len(ahead.state.value) == 20
    assert cluster.protocol_errors == []  # nothing over the limit was ever sent
    assert cluster.values("big")["p001"] is None  # the repair was skipped, not cut short
