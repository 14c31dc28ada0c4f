"""Issue 11, digest anti-entropy at scale, in the simulator (fake clock, seeded; every
message through the real codec, so the bytes counted are the encoded messages'):

* between converged peers an idle round costs one small digest: with 10,000 keys, at most
  1 KB per link per minute, and only ``Digest`` messages;
* a round contacts a bounded number of peers: O(P) messages per round in a group of P;
* a group of 1,000 peers converges after partitions, and its idle cost stays bounded;
* a read at ``r=1`` is local (no message); at ``r=k`` it asks for digests and fetches only
  the part of a state it lacks (two reads of a 5,000-element set cost far less than it).

Counts, never timings.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync.config import ReplicaConfig
from sync.effects import ReadDone
from sync.simnet import SimCluster

__all__: list[str] = []

INTERVAL = 5.0
IDLE = 60.0


def _config(**kw: Any) -> ReplicaConfig:
    opts: dict[str, Any] = {"anti_entropy_idle_interval": IDLE, **kw}
    return ReplicaConfig(n=3, anti_entropy_interval=INTERVAL, seed=1, **opts)


def test_an_idle_round_between_converged_peers_is_one_small_digest(kit: Any) -> None:
    ids = kit.ids(2)
    cluster = SimCluster(ids, _config(), seed=3, known_peers=True)
    keys = [f"key{i}" for i in range(10_000)]
    for i, key in enumerate(keys):
        cluster.update(ids[i % 2], key, "gcounter", kit.incr(ids[i % 2]), w=1)
    cluster.run_for(10 * IDLE)  # replicated, and rounds backed off to the idle interval
    assert cluster.converged(keys)
    cluster.reset_stats()
    minutes = 10
    cluster.run_for(minutes * 60.0)
    sent = dict(cluster.stats.sent)
    assert set(sent) == {"Digest"}, sent  # no summary, no delta: nothing differs
    per_link_minute = cluster.stats.bytes_sent / minutes  # one link between the two
    assert per_link_minute <= 1024, f"{per_link_minute:.0f} B/min on the link, {sent}"
    assert sent["Digest"] <= 2 * minutes  # about one per idle interval, from either side


def test_a_round_contacts_a_bounded_number_of_peers(kit: Any) -> None:
    peers = 200
    fanout = 3
    cluster = SimCluster(kit.ids(peers), _config(gossip_fanout=fanout), seed=5, known_peers=True)
    cluster.run_for(2 * INTERVAL)  # the first exchanges between homes
    cluster.reset_stats()
    rounds = 4
    cluster.run_for(rounds * INTERVAL)  # at most `rounds` rounds per replica
    digests = cluster.stats.sent["Digest"]
    # Each replica sends at most `fanout` digests a round (and a reply at most to each digest
    # that taught it something): O(P) per round, not P*(P-1) as a summary to every peer.
    assert digests <= 2 * fanout * peers * rounds, dict(cluster.stats.sent)
    assert cluster.stats.total_sent() <= 2 * fanout * peers * rounds, dict(cluster.stats.sent)


@pytest.mark.timeout(600)  # about 35 s of CPU; two minutes and more on a loaded machine
def test_a_1000_peer_group_converges_after_partitions_and_idles_cheaply(kit: Any) -> None:
    peers = 1_000
    ids = kit.ids(peers)
    idle = 4 * INTERVAL  # a short back-off: fewer simulated minutes to run
    cluster = SimCluster(ids, _config(anti_entropy_idle_interval=idle), seed=7, known_peers=True)
    cluster.run_for(INTERVAL)
    written: list[str] = []
    # Two partitions in turn, each cutting a group of 20 peers off the others (a site lost).
    for cut in (ids[:20], ids[500:520]):
        inside = set(cut)
        rest = [rid for rid in ids if rid not in inside]
        cluster.partition([cut, rest])
        # Keys homed on both sides, written on both sides while apart.
        keys = kit.keys_where(
            cluster,
            lambda h, inside=inside: (
                any(p in inside for p in h) and any(p not in inside for p in h)
            ),
            8,
            f"{cut[0]}-",
        )
        for key in keys:
            homes = kit.homes(cluster, key)
            for writer in (
                next(p for p in homes if p in inside),
                next(p for p in homes if p not in inside),
            ):
                cluster.update(writer, key, "orset", kit.add(writer, writer), w=1)
        written += keys
        cluster.run_for(2 * INTERVAL)
        cluster.heal()
        cluster.run_for(6 * INTERVAL)
    homes = kit.homes_map(cluster, written)
    assert cluster.converged(written, holders=homes)
    for key in written:
        state = cluster.value(homes(key)[0], key, "orset")
        assert state is not None and len(state.value) == 2, (key, state)  # both sides' writes
    assert cluster.anomalies == [] and cluster.protocol_errors == []
    cluster.run_for(3 * idle)  # rounds back off
    cluster.reset_stats()
    cluster.run_for(idle)
    per_peer = cluster.stats.total_sent() / peers
    assert set(cluster.stats.sent) == {"Digest"}, dict(cluster.stats.sent)
    # At most a round's fan-out (3) per peer per idle interval, and replies to it.
    assert per_peer <= 2 * 3, f"{per_peer:.1f} messages per peer in an idle interval"


def test_a_read_at_r1_is_local_and_at_r2_fetches_only_what_differs(kit: Any) -> None:
    ids = kit.ids(3)
    cluster = SimCluster(ids, _config(), seed=9, known_peers=True)
    key = "big"
    size = 5_000
    cluster.update(ids[0], key, "orset", lambda s: _add_all(s, ids[0], size), w=3)
    cluster.run_for(2 * INTERVAL)
    assert cluster.converged([key])
    whole = len(cluster.value(ids[1], key, "orset").to_json())  # type: ignore[union-attr]
    cluster.reset_stats()
    for _ in range(2):
        op = cluster.read(ids[1], key, kind="orset", r=1)
        assert op.done and op.ok
    assert cluster.stats.total_sent() == 0, dict(cluster.stats.sent)  # local: no message

    # One element more at one replica only; a read at ALL from another asks both others for
    # a digest, fetches the part it lacks from the one ahead, repairs the one behind.
    cluster.drop(ids[0], None, 1.0)  # its pushes are lost; no anti-entropy round meanwhile
    cluster.update(ids[0], key, "orset", kit.add(ids[0], "late"), w=1)
    cluster.heal()
    cluster.reset_stats()
    for _ in range(2):
        op = cluster.read(ids[1], key, kind="orset", r="ALL")
        assert cluster.run_until(lambda op=op: op.done, max_steps=10_000)
        assert op.ok and isinstance(op.outcome, ReadDone) and op.outcome.state is not None
        assert "late" in op.outcome.state.value and len(op.outcome.state.value) == size + 1
    assert cluster.stats.sent["ReadFetch"] == 1 and cluster.stats.sent["Repair"] == 1
    assert cluster.stats.bytes_sent < whole // 20, (cluster.stats.bytes_sent, whole)
    assert cluster.converged([key])


def _add_all(s: Any, replica: str, count: int) -> Any:
    delta = s.add(replica, "e0")
    for i in range(1, count):
        delta.merge(s.add(replica, f"e{i}"))
    return delta
