"""Deleting an object through the engine: the kind's ``clear`` written as a write.

The delete replicates like any write; afterwards the object reads as its kind's empty value
everywhere and ``Replica.keys()`` leaves it out (it is not live). An update concurrent with
the delete survives it. A delete of what holds nothing live changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

import crdt

__all__: list[str] = []

FIRST: dict[str, Any] = {
    "gcounter": lambda c: c.increment("p000", 3),
    "pncounter": lambda c: c.decrement("p000", 2),
    "lww": lambda r: r.set("p000", "dark", now_ms=1_000),
    "mvregister": lambda r: r.set("p000", ["milk"]),
    "orset": lambda s: s.add("p000", "milk"),
    "ormap": lambda m: m.update("p000", "theme", "lww", lambda r: r.set("p000", "x", now_ms=1)),
}


def clear(kind: str) -> Any:
    if kind == "lww":
        return lambda r: r.clear("p000", now_ms=2_000)
    return lambda obj: obj.clear()


@pytest.mark.parametrize("kind", crdt.KINDS)
def test_a_delete_replicates_and_leaves_the_key_out_of_the_listing(kit: Any, kind: str) -> None:
    cluster = kit.cluster(kit.ids(3), n=3, anti_entropy_interval=1.0)
    cluster.run_for(cluster.detect_delay + 0.5)
    cluster.update("p000", "k", kind, FIRST[kind], w="ALL")
    cluster.update("p000", "other", "gcounter", kit.incr("p000"), w="ALL")
    assert cluster.run_until_quiet(10_000)
    assert all(cluster.replica(r).keys() == ["k", "other"] for r in cluster.ids)

    op = cluster.update("p000", "k", kind, clear(kind), w="ALL")
    kit.settle(cluster)
    assert op.ok
    empty = crdt.new(kind).value
    assert cluster.values("k") == dict.fromkeys(cluster.ids, empty)
    for rid in cluster.ids:
        replica = cluster.replica(rid)
        assert replica.keys() == ["other"]
        state = replica.value("k")
        assert state is not None and not state.is_live()


def test_an_update_concurrent_with_a_delete_survives_it(kit: Any) -> None:
    cluster = kit.cluster(kit.ids(2), n=2, anti_entropy_interval=1.0)
    cluster.run_for(cluster.detect_delay + 0.5)
    cluster.update("p000", "cart", "orset", kit.add("p000", "milk"), w="ALL")
    assert cluster.run_until_quiet(10_000)
    cluster.partition([["p000"], ["p001"]])
    cluster.run_for(cluster.detect_delay + 0.5)
    cluster.update("p000", "cart", "orset", lambda s: s.clear())  # deleted at p000...
    cluster.update("p001", "cart", "orset", kit.add("p001", "eggs"))  # ...eggs added at p001
    cluster.heal()
    kit.settle(cluster)
    assert cluster.values("cart") == dict.fromkeys(cluster.ids, frozenset({"eggs"}))
    assert all(cluster.replica(r).keys() == ["cart"] for r in cluster.ids)


def test_deleting_what_holds_nothing_live_changes_nothing(kit: Any) -> None:
    cluster = kit.cluster(kit.ids(2), n=2, anti_entropy_interval=0)
    cluster.run_for(cluster.detect_delay + 0.5)

    def delete(obj: Any) -> Any:
        if not obj.is_live():
            raise KeyError("nothing to delete")
        return obj.clear()

    replica = cluster.replica("p000")
    before = replica.status()
    with pytest.raises(KeyError):
        cluster.update("p000", "absent", "orset", delete)
    assert replica.value("absent") is None and replica.keys() == []
    assert cluster.disk("p000").objects == {} and cluster.disk("p000").log == {}
    assert replica.status()["log_size"] == before["log_size"] == 0


def test_the_simulator_reads_a_delete_not_yet_checkpointed_from_memory(kit: Any) -> None:
    """``SimCluster.value``/``converged`` read an object from the replica's memory while it is
    there, deleted or not: its disk row, from before the delete, still holds it live."""
    cluster = kit.cluster(kit.ids(2), n=2, anti_entropy_interval=0, checkpoint_every=1)
    cluster.run_for(cluster.detect_delay + 0.5)
    cluster.update("p000", "cart", "orset", kit.add("p000", "milk"), w="ALL")
    assert cluster.run_until_quiet(10_000)
    cluster.update("p000", "cart", "orset", kit.remove("milk"), w="ALL")
    assert cluster.run_until_quiet(10_000)
    for rid in cluster.ids:  # the row on disk is the checkpoint of the add (geometric)
        assert "milk" in str(cluster.disk(rid).objects[("cart", "orset")].state)
    assert cluster.values("cart") == dict.fromkeys(cluster.ids, frozenset())
    assert cluster.converged(["cart"])
