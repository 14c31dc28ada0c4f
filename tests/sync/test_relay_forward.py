"""A relay forwards other origins' entries ahead of its own commit.

The entries a relay passes on are signed by their origins and depend on nothing the relay
makes durable, so its forward leaves before its ``Persist``: the next hop does not wait for
the relay's commit. Its ``Ack`` to the sender still waits for it (an ack means applied and
durable), and the relay's own writes still go after their ``Persist``.
"""

from __future__ import annotations

import crdt
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import Effect, Persist, Send
from sync.replica import Replica
from sync.ring import partition_of


def _relay() -> Replica:
    r = Replica(ReplicaConfig(n=3, relay=True), "R")
    r.peer_up("A", 0.0)
    r.peer_up("B", 0.0)
    r.effects()
    return r


def _push_from_a(key: str) -> m.Push:
    delta = crdt.new("gcounter").increment("A", 1)
    entry = m.Entry(
        origin="A",
        partition=partition_of(key, 64),
        seq=1,
        key=key,
        kind="gcounter",
        delta_json=delta.to_json(),
    )
    return m.Push(push_id=5, entries=[entry])


def _order(effects: list[Effect]) -> list[str]:
    out = []
    for fx in effects:
        if isinstance(fx, Send):
            out.append(f"{type(fx.message).__name__} to {fx.peer}")
        elif isinstance(fx, Persist):
            out.append("Persist")
    return out


def test_a_forward_leaves_before_the_relays_commit_and_the_ack_after_it() -> None:
    r = _relay()
    r.receive("A", _push_from_a("k"), 1.0)
    order = _order(r.effects())
    assert order == ["Push to B", "Persist", "Ack to A"]


def test_the_relays_own_write_still_waits_for_its_commit() -> None:
    r = _relay()
    r.receive("A", _push_from_a("k"), 1.0)
    r.local_update(1, "mine", "gcounter", lambda c: c.increment("R", 1), 1.0)
    order = _order(r.effects())
    # The forward of A's entry goes first; R's own entry is pushed only after the Persist
    # that holds it, in a push of its own.
    assert order[0] == "Push to B"
    persist_at = order.index("Persist")
    own = [i for i, what in enumerate(order) if what.startswith("Push") and i > persist_at]
    assert own, order
    assert "Ack to A" in order[persist_at:]
