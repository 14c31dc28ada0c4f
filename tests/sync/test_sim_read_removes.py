"""Reads see removes: a replica that removed something (an element, a map key, the whole
object) makes no new dot, so its causal context can equal that of a replica still holding it.

Three replicas, n=3, anti-entropy off (read repair is the only repair). ``milk`` is in the
cart everywhere; ``p001`` then removes it while every message to and from it is dropped, so
the others still hold it, under the same causal context. A read with r=3 from any replica
must return the join of the three states (milk removed: an observed remove wins over the
add it saw), and repair every replica that still holds it, the reader included, as Riak's
and Cassandra's quorum reads do: a remove acknowledged by one replica that a read asks is
never read back as present.
"""

from __future__ import annotations

from typing import Any

import pytest

__all__: list[str] = []

SETUP: dict[str, tuple[str, Any, Any, Any]] = {
    # kind, the write everyone acks, the remove at p001, the value expected after it
    "orset remove": (
        "orset",
        lambda s: s.add("p000", "milk"),
        lambda s: s.remove("milk"),
        frozenset(),
    ),
    "orset delete": ("orset", lambda s: s.add("p000", "milk"), lambda s: s.clear(), frozenset()),
    "ormap remove": (
        "ormap",
        lambda m: m.update("p000", "cart", "orset", lambda s: s.add("p000", "milk")),
        lambda m: m.remove("cart"),
        {},
    ),
}


def _stale_remove(kit: Any, case: str) -> Any:
    kind, write, remove, _ = SETUP[case]
    cluster = kit.cluster(kit.ids(3), n=3, anti_entropy_interval=0, seed=3)
    cluster.run_for(cluster.detect_delay + 0.5)
    op = cluster.update("p000", "k", kind, write, w=3)
    assert cluster.run_until(lambda: op.done, max_steps=10_000) and op.ok
    assert cluster.run_until_quiet(10_000)
    cluster.drop("p001", None, 1.0)
    op = cluster.update("p001", "k", kind, remove, w=1)
    assert cluster.run_until(lambda: op.done, max_steps=10_000) and op.ok
    cluster.heal()
    assert cluster.run_until_quiet(10_000)
    values = cluster.values("k")
    assert values["p001"] == SETUP[case][3] != values["p000"] == values["p002"], (
        "precondition: only p001 saw the remove"
    )
    ctxs = {rid: cluster.value(rid, "k").context for rid in cluster.ids}  # type: ignore[union-attr]
    assert ctxs["p000"] == ctxs["p001"] == ctxs["p002"], "precondition: one context"
    return cluster


@pytest.mark.parametrize("case", sorted(SETUP))
@pytest.mark.parametrize("reader", ["p000", "p001", "p002"])
def test_a_read_with_r_n_returns_and_spreads_a_remove_one_replica_made(
    kit: Any, reader: str, case: str
) -> None:
    cluster = _stale_remove(kit, case)
    kind, _, _, empty = SETUP[case]
    read = cluster.read(reader, "k", kind=kind, r=3)
    assert cluster.run_until(lambda: read.done, max_steps=10_000)
    assert read.ok, read.outcome
    assert read.state is not None and read.state.value == empty, "the removed value came back"
    assert cluster.run_until_quiet(10_000)
    assert cluster.values("k") == dict.fromkeys(cluster.ids, empty), "not every replica repaired"
    assert cluster.converged(["k"])


def test_a_read_with_r_2_that_asks_the_remover_returns_the_remove(kit: Any) -> None:
    cluster = _stale_remove(kit, "orset remove")
    cluster.crash("p002")
    read = cluster.read("p000", "k", kind="orset", r=2)
    assert cluster.run_until(lambda: read.done, max_steps=10_000)
    assert read.ok, read.outcome
    assert read.state is not None and read.state.value == frozenset()
    assert cluster.run_until_quiet(10_000)
    assert cluster.values("k", ["p000", "p001"]) == dict.fromkeys(["p000", "p001"], frozenset())
