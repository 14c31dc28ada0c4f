"""Short-lived replicas leave nothing behind: a group serves thousands of sessions (command-
line runs, test clients, pages), each a non-home replica with an id of its own. Every one
that ever connected used to stay in every peer's membership, gossip and ``/status`` (with
its traffic counters, one Prometheus series each) for as long as any peer ran.

Real peers over websockets on 127.0.0.1, sessions opened and closed one after the other.
"""

from __future__ import annotations

from pathlib import Path

from sync.transport.metrics import render_metrics

from .conftest import WAIT, eventually, linked, open_peer

SESSIONS = 12


async def test_sessions_that_left_are_not_listed_and_their_writes_stay(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    assert a.url is not None
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
    try:
        await linked(a, b)
        ids = []
        for i in range(SESSIONS):
            session = await open_peer(tmp_path / f"s{i}.db", listen=None, peers=[a.url], home=False)
            try:
                await linked(session, a)
                ids.append(session.replica_id)
                await session.gcounter("visits").increment(w=1, timeout=WAIT)
                await eventually(
                    lambda n=i + 1: a.replica.current_value("visits") == n, "the visit at a"
                )
            finally:
                await session.aclose()
        await eventually(lambda: b.replica.current_value("visits") == SESSIONS, "visits at b")

        def settled() -> bool:
            return not set(ids) & set(a.status_now()["peers"])

        await eventually(settled, "the sessions gone from a's peers")
        status = a.status_now()
        assert set(status["peers"]) == {b.replica_id}
        assert status["engine"]["peers_known"] == [b.replica_id]
        assert status["engine"]["non_homes"] == []
        departed = status["transport"]["departed_non_homes"]
        assert departed["non_homes"] == SESSIONS
        assert departed["bytes_in"] > 0 and departed["messages_in"] >= SESSIONS
        metrics, _ = render_metrics(status)  # no series per session that left
        assert f"shoal_non_homes_departed_total {SESSIONS}.0" in metrics
        assert not [rid for rid in ids if rid in metrics]
        # b never linked to a session, and was not told of them.
        assert set(b.status_now()["peers"]) == {a.replica_id}
        assert b.status_now()["engine"]["peers_known"] == [a.replica_id]
    finally:
        await b.aclose()
        await a.aclose()
