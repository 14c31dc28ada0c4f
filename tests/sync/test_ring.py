"""Unit tests of sync.ring: partitions, tokens, preference lists, walks."""

from __future__ import annotations

from collections import Counter
from hashlib import blake2b

import pytest

from sync.ring import RING_SIZE, PartitionMemo, Ring, partition_of, token_of


def test_partition_of_is_blake2b_big_endian_mod_partitions() -> None:
    for key in ["", "cart:alice", "ünïcode", "k" * 1000]:
        digest = blake2b(key.encode(), digest_size=8).digest()
        assert partition_of(key, 64) == int.from_bytes(digest, "big") % 64
        assert partition_of(key, 1) == 0


def test_partition_of_spreads_keys_over_partitions() -> None:
    counts = Counter(partition_of(f"key{i}", 16) for i in range(1600))
    assert set(counts) == set(range(16))
    assert min(counts.values()) > 50  # about 100 each


def test_preference_list_is_first_n_distinct_peers_clockwise() -> None:
    peers = ["A", "B", "C", "D", "E"]
    ring = Ring(peers, n=3, partitions=32, vnodes=8)
    tokens = sorted((token_of(f"{p}/{i}"), p) for p in peers for i in range(8))
    for part in range(32):
        point = part * RING_SIZE // 32
        clockwise = [p for t, p in tokens if t >= point] + [p for t, p in tokens if t < point]
        expected: list[str] = []
        for p in clockwise:
            if p not in expected:
                expected.append(p)
        assert ring.walk(part) == tuple(expected)
        assert ring.preference_list(part) == tuple(expected[:3])


def test_ring_is_independent_of_peer_order_and_deterministic() -> None:
    a = Ring(["A", "B", "C", "D"], n=2, partitions=16, vnodes=4)
    b = Ring(["D", "C", "B", "A"], n=2, partitions=16, vnodes=4)
    assert [a.preference_list(p) for p in range(16)] == [b.preference_list(p) for p in range(16)]


def test_n_at_least_group_size_means_everyone_is_home_everywhere() -> None:
    ring = Ring(["A", "B", "C"], n=5, partitions=16, vnodes=4)
    for p in range(16):
        assert sorted(ring.preference_list(p)) == ["A", "B", "C"]
        assert all(ring.is_home(x, p) for x in "ABC")


def test_homes_are_balanced_with_virtual_nodes() -> None:
    peers = [f"p{i}" for i in range(10)]
    ring = Ring(peers, n=3, partitions=256, vnodes=16)
    load = Counter(h for p in range(256) for h in ring.preference_list(p))
    assert set(load) == set(peers)
    assert max(load.values()) < 3 * min(load.values())


def test_adding_a_peer_moves_only_some_partitions() -> None:
    peers = [f"p{i}" for i in range(8)]
    before = Ring(peers, n=1, partitions=256, vnodes=16)
    after = Ring([*peers, "new"], n=1, partitions=256, vnodes=16)
    moved = [p for p in range(256) if before.preference_list(p) != after.preference_list(p)]
    assert moved, "the new peer owns nothing"
    assert all(after.preference_list(p) == ("new",) for p in moved)
    assert len(moved) < 256 // 2


def test_homes_of_uses_the_key_partition() -> None:
    ring = Ring(["A", "B", "C", "D"], n=2, partitions=8, vnodes=4)
    assert ring.homes_of("cart") == ring.preference_list(partition_of("cart", 8))


def test_empty_ring_and_bad_arguments() -> None:
    assert Ring([], n=3, partitions=4, vnodes=2).preference_list(0) == ()
    with pytest.raises(ValueError):
        Ring(["A"], n=0, partitions=4, vnodes=2)
    with pytest.raises(ValueError):
        Ring([""], n=1, partitions=4, vnodes=2)
    with pytest.raises(ValueError, match="out of range"):
        Ring(["A"], n=1, partitions=4, vnodes=2).walk(4)


def test_partition_memo_agrees_with_partition_of_and_stays_bounded() -> None:
    memo = PartitionMemo(16, limit=8)
    keys = [f"k{i}" for i in range(50)]
    assert [memo(k) for k in keys] == [partition_of(k, 16) for k in keys]
    assert len(memo._memo) <= 8  # forgotten all at once when full, never over the limit
    assert [memo(k) for k in keys] == [partition_of(k, 16) for k in keys]
    with pytest.raises(ValueError, match="partitions must be"):
        PartitionMemo(0)


def test_a_replica_takes_only_a_memo_of_its_own_partition_count() -> None:
    from sync.config import ReplicaConfig
    from sync.replica import Replica

    memo = PartitionMemo(8)
    r = Replica(ReplicaConfig(n=1, partitions=8), "A", partition_of=memo)
    r.local_update(1, "cart", "orset", lambda s: s.add("A", "milk"), now=0.0)
    assert memo._memo == {"cart": partition_of("cart", 8)}  # the engine asked the shared memo
    for wrong in (PartitionMemo(16), lambda key: 0):
        with pytest.raises(ValueError, match=r"PartitionMemo of config\.partitions"):
            Replica(ReplicaConfig(n=1, partitions=8), "A", partition_of=wrong)  # type: ignore[arg-type]
