"""Writes and reads while links are still being dialled (``Replica.links_connecting``).

Right after a peer opens, its links are being dialled and the replicas behind them are not
known yet. A write (or read) whose quorum cannot be met with the peers up waits for them
within its timeout; a peer that comes up meanwhile, even one this replica did not know
before its handshake, gets the entry and its ack counts. It fails fast only once nothing is
being dialled any more, naming the dials that failed. The simulator stands for the
adapter: ``SimCluster.links_connecting`` is what the transport's dial state would say, and a
replica that joins (``add_replica``) learns its peers only when the simulated detector
reports them up, ``detect_delay`` later.
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def _pair(kit: Any, *, apart: bool = False) -> Any:
    """p000, and p001 that has just joined and knows nobody yet (they meet ``detect_delay``
    later, or never when ``apart``)."""
    cluster = kit.cluster(["p000"], n=3, anti_entropy_interval=0)
    if apart:
        cluster.partition([["p000"]])  # a replica joining now stays alone
    cluster.add_replica("p001")
    assert cluster.replica("p001").status()["peers_known"] == []
    return cluster


def test_a_write_waits_for_a_link_being_dialled_and_its_unknown_peer_becomes_a_home(
    kit: Any,
) -> None:
    cluster = _pair(kit)
    cluster.links_connecting("p001", 1)  # p001 is dialling p000
    op = cluster.update("p001", "cart", "orset", kit.add("p001", "milk"), w=2, timeout=10.0)
    assert op.status == "pending"  # not failed: p000 may come up
    assert cluster.run_until(lambda: op.done, max_steps=10_000)
    assert op.ok, op.outcome
    assert op.result is not None and set(op.result.acked_by) == {"p000", "p001"}
    # Before its handshake p000 was unknown to p001: it became a home of the key on the way.
    assert "p000" in cluster.replica("p001").homes("cart")
    assert op.completed_at is not None and op.completed_at < op.issued_at + 10.0
    assert cluster.values("cart") == {"p000": frozenset({"milk"}), "p001": frozenset({"milk"})}


def test_without_a_dial_in_progress_a_write_still_fails_fast(kit: Any) -> None:
    cluster = _pair(kit)
    op = cluster.update("p001", "cart", "orset", kit.add("p001", "milk"), w=2, timeout=10.0)
    assert op.status == "failed"  # at once: nobody to wait for
    assert op.completed_at == op.issued_at
    assert "no other replica that counts is reachable" in str(op.outcome)
    assert cluster.values("cart", ["p001"]) == {"p001": frozenset({"milk"})}  # durable here


def test_a_write_fails_at_once_when_the_dial_fails_naming_it(kit: Any) -> None:
    cluster = _pair(kit, apart=True)  # p000 never comes up
    cluster.links_connecting("p001", 1)
    op = cluster.update("p001", "cart", "orset", kit.add("p001", "milk"), w=2, timeout=10.0)
    cluster.run_for(3.0)
    assert op.status == "pending"
    cluster.links_connecting("p001", 0, {"ws://p000.example:8765": "connection refused"})
    assert op.status == "failed"
    assert op.completed_at == op.issued_at + 3.0  # when the dial failed, not at the deadline
    reason = getattr(op.outcome, "reason", "")
    assert "the link to ws://p000.example:8765 failed: connection refused" in reason
    assert "durable here" in reason


def test_a_write_still_fails_at_its_deadline_if_the_dial_never_ends(kit: Any) -> None:
    cluster = _pair(kit, apart=True)
    cluster.links_connecting("p001", 1)
    op = cluster.update("p001", "cart", "orset", kit.add("p001", "milk"), w=2, timeout=4.0)
    assert cluster.run_until(lambda: op.done, max_steps=10_000)
    assert op.status == "failed" and op.completed_at == op.issued_at + 4.0
    assert "timed out after 4s" in str(op.outcome)


def test_a_read_waits_for_a_link_being_dialled_too(kit: Any) -> None:
    cluster = _pair(kit)
    cluster.update("p000", "cart", "orset", kit.add("p000", "milk"))  # only p000 has it
    cluster.links_connecting("p001", 1)
    read = cluster.read("p001", "cart", kind="orset", r=2, timeout=10.0)
    assert read.status == "pending"
    assert cluster.run_until(lambda: read.done, max_steps=10_000)
    assert read.ok and read.state is not None and read.state.value == frozenset({"milk"})


def test_a_read_fails_at_once_when_the_dial_fails(kit: Any) -> None:
    cluster = _pair(kit, apart=True)
    cluster.links_connecting("p001", 1)
    read = cluster.read("p001", "cart", kind="orset", r=2, timeout=10.0)
    cluster.links_connecting("p001", 0, {"ws://p000.example:8765": "wrong secret"})
    assert read.status == "failed" and read.completed_at == read.issued_at
    assert "the link to ws://p000.example:8765 failed: wrong secret" in str(read.outcome)


def test_a_home_that_comes_back_while_a_write_waits_gets_the_push_and_its_ack_counts(
    kit: Any,
) -> None:
    cluster = kit.cluster(kit.ids(3), n=3, anti_entropy_interval=0)
    cluster.run_for(cluster.detect_delay + 0.5)  # everyone knows everyone
    cluster.partition([["p000", "p001"], ["p002"]])
    cluster.run_for(cluster.detect_delay + 0.5)  # p002 is down for the others
    cluster.delay("p000", "p001", 5.0, 5.0)  # p001's ack will take ten seconds
    key = kit.key_where(cluster, lambda h: set(h) == {"p000", "p001", "p002"})
    op = cluster.update("p000", key, "orset", kit.add("p000", "x"), w=3, strict=True, timeout=30)
    assert op.status == "pending"
    cluster.heal()  # p002 comes up at once for p000, long before p001's ack
    assert cluster.run_until(lambda: op.done, max_steps=10_000)
    assert op.ok, op.outcome
    assert op.result is not None and set(op.result.acked_by) == {"p000", "p001", "p002"}


def test_a_bad_dial_state_is_refused_and_changes_nothing(kit: Any) -> None:
    cluster = _pair(kit, apart=True)
    cluster.links_connecting("p001", 1)
    op = cluster.update("p001", "cart", "orset", kit.add("p001", "milk"), w=2, timeout=10.0)
    for count, failures, error in (
        (-1, {}, ValueError),
        (True, {}, ValueError),
        (0, {1: "refused"}, TypeError),
        (0, {"ws://p000.example:8765": None}, TypeError),
    ):
        try:
            cluster.links_connecting("p001", count, failures)
        except error as exc:
            assert "count must be" in str(exc) or "failures must map" in str(exc)
        else:
            raise AssertionError(f"{count!r}, {failures!r} was taken")
        assert op.status == "pending"  # still dialling: a count of 0 was not taken
        assert cluster.replica("p001")._membership.connecting == 1
    cluster.links_connecting("p001", 0)
    assert op.status == "failed"
    assert "no other replica that counts is reachable" in str(op.outcome)
