"""sync/replica/evicted.py: what the store may hold that the cache does not."""

from __future__ import annotations

from sync.replica.evicted import Evicted
from sync.ring import PartitionMemo

__all__: list[str] = []


def _same_partition(count: int) -> list[str]:
    memo = PartitionMemo(64)
    keys = [k for k in (f"k{i:04d}" for i in range(5000)) if memo(k) == 0]
    return sorted(keys)[:count]


def test_a_key_is_in_the_store_only_within_the_span_evicted_of_its_partition() -> None:
    keys = _same_partition(6)
    other = next(k for k in (f"z{i}" for i in range(999)) if PartitionMemo(64)(k) != 0)
    evicted = Evicted(PartitionMemo(64))
    assert not evicted and not evicted.may_hold(keys[0])
    evicted.add(keys[3])
    evicted.add(keys[1])
    assert evicted
    # Within the span, evicted or not, the store may hold it (the span only grows); past
    # it, or in a partition nothing was evicted from, it does not.
    assert [evicted.may_hold(k) for k in keys] == [False, True, True, True, False, False]
    assert not evicted.may_hold(other)
    evicted.add(keys[5])
    assert [evicted.may_hold(k) for k in keys] == [False, True, True, True, True, True]


def test_a_cache_not_whole_at_the_start_may_lack_anything() -> None:
    evicted = Evicted(PartitionMemo(64))
    evicted.whole = False
    assert evicted and all(evicted.may_hold(k) for k in _same_partition(3))


def test_what_is_not_a_key_is_loaded_as_before_and_breaks_nothing() -> None:
    evicted = Evicted(PartitionMemo(64))
    evicted.add(_same_partition(1)[0])
    assert evicted.may_hold("\ud800")  # (cannot be hashed to a partition: asked of the store)
    assert evicted.may_hold(3)  # type: ignore[arg-type]
    assert evicted.whole
    evicted.add("\ud800")
    assert not evicted.whole and evicted.may_hold(_same_partition(6)[5])
