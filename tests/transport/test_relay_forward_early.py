"""Through real peers: a relay forwards a device's write before its own commit finishes.

A and B reach each other only through the relay R. R's commit of A's write is held in R's
store thread (a commit hook waits); B must get the write all the same, since R's forward
carries A's signed entry and depends on nothing R makes durable. R's ack to A still waits
for R's commit."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event

from tests.transport.conftest import WAIT, eventually, linked, open_peer

__all__: list[str] = []

QUIET = {"anti_entropy_interval": 3600.0, "anti_entropy_idle_interval": 3600.0}


async def test_a_relay_forwards_before_its_commit_and_acks_after(tmp_path: Path) -> None:
    relay = await open_peer(tmp_path / "relay.db", relay=True, **QUIET)
    a = await open_peer(tmp_path / "a.db", listen=None, peers=[relay.url], **QUIET)
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[relay.url], **QUIET)
    armed, holding, release = threading.Event(), threading.Event(), threading.Event()
    held_to_the_end = threading.Event()  # the hold ran out (longer than any wait below)

    def hold_commit(conn: Any) -> None:  # in R's store thread
        # Only the commit that logs A's write: another one of R's (a peer record learnt, a
        # summary) held instead would stop R's engine before it took A's push at all.
        if armed.is_set() and not release.is_set() and _logs_the_list(conn):
            holding.set()
            if not release.wait(3 * WAIT):
                held_to_the_end.set()

    engine = relay.store.write_engine
    try:
        await linked(a, relay)
        await linked(b, relay)
        await relay.node.drain()
        event.listen(engine, "commit", hold_commit)
        armed.set()
        result = await a.orset("list").add("milk")  # w=1: durable on A
        assert result.acks == 1

        async def b_has_it() -> bool:
            return await b.orset("list").value() == frozenset({"milk"})

        await eventually(b_has_it, "B to get A's write while R's commit is held")
        # R's commit of it is still held: B got it from R's forward, not after the commit.
        assert holding.is_set() and not held_to_the_end.is_set()
        # ...and R has not acknowledged it to A: an ack means durable, and it is not yet.
        assert relay.replica_id not in a.whereabouts(result).at_homes
        release.set()
        await eventually(
            lambda: relay.replica_id in a.whereabouts(result).at_homes,
            "R's ack to A once its commit is done",
        )

        async def relay_has_it() -> bool:
            return await relay.orset("list").value() == frozenset({"milk"})

        await eventually(relay_has_it, "R to commit A's write once its commit goes on")
    finally:
        # (The hook stays: once released it returns at once. Removing a listener while R's
        # store thread may be dispatching a commit to it is not safe in SQLAlchemy.)
        release.set()
        for peer in (a, b, relay):
            await peer.aclose()


def _logs_the_list(conn: Any) -> bool:
    """Whether the transaction committing on ``conn`` (R's store thread) logs an entry of the
    key ``list`` (read on the driver's connection: inside the transaction, before its commit)."""
    raw = conn.connection.driver_connection
    query = "SELECT count(*) FROM log_segments WHERE entries LIKE '%\"list\"%'"
    return bool(raw.execute(query).fetchone()[0])
