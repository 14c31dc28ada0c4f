"""Where a write is, through real peers: a relay holds a hint for an offline home, the home
comes back, and ``peer.whereabouts`` / ``peer.watch`` go from "here and a hint at the relay"
to "at every home"; ``pending_propagation`` in the status and the metrics follows."""

from __future__ import annotations

from pathlib import Path

from sync.replica import Whereabouts
from sync.transport.metrics import render_metrics
from sync.transport.status import status_snapshot
from tests.transport.conftest import WAIT, eventually, linked, open_peer

__all__: list[str] = []


async def test_a_hint_at_a_relay_then_every_home(tmp_path: Path) -> None:
    relay = await open_peer(tmp_path / "relay.db", relay=True, n=2)
    two = await open_peer(tmp_path / "two.db", peers=[relay.url], n=2)
    one = await open_peer(tmp_path / "one.db", listen=None, peers=[relay.url, two.url], n=2)
    one_id = one.replica_id
    try:
        await linked(one, two, relay)
        await one.aclose()
        await eventually(lambda: one_id not in two.transport.links, "two to see one go")
        await eventually(lambda: one_id not in relay.transport.links, "the relay too")
        devices = {one_id, two.replica_id}
        key = next(
            k
            for k in (f"list-{i}" for i in range(1000))
            if set(two.replica.homes(k)) == devices  # type: ignore[attr-defined]
            and set(relay.replica.homes(k)) == devices  # type: ignore[attr-defined]
        )
        result = await two.orset(key).add("milk", w=2, timeout=WAIT)
        assert result.hinted == (relay.replica_id,) and result.dot is not None

        where = two.whereabouts(result)
        assert isinstance(where, Whereabouts)
        assert where.here and where.at_homes == (two.replica_id,)
        assert where.hints == (relay.replica_id,)
        assert not where.everywhere
        assert two.whereabouts(key) == where  # the key's one write
        assert status_snapshot(two)["pending_propagation"] == 1
        assert "shoal_pending_propagation 1.0" in render_metrics(status_snapshot(two))[0]

        watching = two.watch(result, timeout=WAIT).__aiter__()
        assert await watching.__anext__() == where  # where it is now, first
        one = await open_peer(tmp_path / "one.db", listen=None, peers=[relay.url, two.url], n=2)
        seen = [w async for w in watching]  # each change, until every home has it
        assert seen and seen[-1].everywhere
        assert set(seen[-1].at_homes) == devices
        assert two.whereabouts(result).everywhere
        await eventually(
            lambda: status_snapshot(two)["pending_propagation"] == 0, "nothing left to propagate"
        )
    finally:
        await one.aclose()
        await two.aclose()
        await relay.aclose()
