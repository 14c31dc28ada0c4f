"""A relay serving more devices than ``n``: a device's write reaches every home of its key.

The devices dial only the relay (behind NAT, they cannot reach each other), so a key whose
homes are devices other than the relay reaches them through the relay alone: the writer
cannot push to any of them. While the relay is up, each home the writer cannot reach gets
the write as a hint through the relay, which hands it off (a relay holds hints for any
number of homes). A write made while the relay is down reaches them by anti-entropy through
the relay once it is back: a relay holds every partition its peers are homes of.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sync.ring import partition_of
from sync.transport.peer import Peer
from tests.transport.conftest import eventually, open_peer

__all__: list[str] = []

DEVICES = 5


def _key_without(relay: Peer, others: set[str]) -> tuple[str, tuple[str, ...]]:
    """A key whose homes (by the relay's ring) are devices, none of them the relay."""
    ring = relay.replica._membership.ring()
    for i in range(1000):
        key = f"list:{i}"
        homes = ring.preference_list(partition_of(key, ring.partitions))
        if relay.replica_id not in homes and set(homes) <= others:
            return key, homes
    raise AssertionError("no key homed on devices only")


async def _group(tmp_path: Path, devices: list[Peer]) -> Peer:
    """A relay, and ``DEVICES`` devices dialling only it (appended to ``devices``), once every
    peer knows the whole group. Close them all (``devices`` and the relay) when done."""
    relay = await open_peer(tmp_path / "relay.db", relay=True)
    try:
        for i in range(DEVICES):
            devices.append(await open_peer(tmp_path / f"d{i}.db", listen=None, peers=[relay.url]))
        everyone = {relay.replica_id, *(d.replica_id for d in devices)}
        await eventually(
            lambda: all(p.replica._membership.ring().peers == everyone for p in (relay, *devices)),
            "every peer to know the group",
        )
    except BaseException:
        for p in (*devices, relay):
            await p.aclose()
        raise
    return relay


async def _homes_hold(
    by_id: dict[str, Peer], key: str, homes: tuple[str, ...], want: frozenset[str]
) -> None:
    async def held() -> bool:
        values = await asyncio.gather(*(by_id[h].orset(key).value() for h in homes))
        return all(v == want for v in values)

    await eventually(held, f"every home of {key} ({len(homes)}) to hold {sorted(want)}")


async def test_a_write_reaches_every_home_through_the_relay(tmp_path: Path) -> None:
    devices: list[Peer] = []
    relay = await _group(tmp_path, devices)
    try:
        ids = {d.replica_id for d in devices}
        key, homes = _key_without(relay, ids)
        for d in devices:
            await d.orset(key).add(d.replica_id)
        await _homes_hold({d.replica_id: d for d in devices}, key, homes, frozenset(ids))
    finally:
        for p in (*devices, relay):
            await p.aclose()


async def test_writes_made_while_the_relay_was_down_reach_every_home_once_it_is_back(
    tmp_path: Path,
) -> None:
    # The devices never reach each other; while the relay restarts, a home of the key and a
    # device that is not one write. Once the relay is back, anti-entropy through it (it
    # holds every partition its peers are homes of) brings both writes to every home.
    devices: list[Peer] = []
    relay = await _group(tmp_path, devices)
    try:
        key, homes = _key_without(relay, {d.replica_id for d in devices})
        by_id = {d.replica_id: d for d in devices}
        writer, outsider = by_id[homes[0]], next(d for d in devices if d.replica_id not in homes)
        port = relay.url.rsplit(":", 1)[1].split("/")[0]
        await relay.aclose()
        await writer.orset(key).add("by a home")
        await outsider.orset(key).add("by another")
        relay = await open_peer(tmp_path / "relay.db", relay=True, listen=f"127.0.0.1:{port}")
        await _homes_hold(by_id, key, homes, frozenset({"by a home", "by another"}))
        # The device that is not a home held its write as a hint for each home until the
        # relay held it (the homes' acks go to the relay, never to it).
        await eventually(
            lambda: outsider.replica.status()["hints"] == {}, "the outsider's hints to go"
        )
    finally:
        for p in (*devices, relay):
            await p.aclose()
