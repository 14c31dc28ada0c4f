"""Unit tests for crdt/hlc.py: the hybrid logical clock with time passed in."""

from __future__ import annotations

import pytest

from crdt import ClockSkewError, DecodeError, HybridLogicalClock, Timestamp
from crdt.hlc import timestamp_from_json, timestamp_to_json, write_timestamp


def test_local_events_are_strictly_increasing_even_when_physical_time_stalls() -> None:
    clock = HybridLogicalClock("A")
    stamps = [clock.now(t) for t in (100, 100, 100, 99, 101)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert stamps[-1] == Timestamp(101, 0, "A")
    assert stamps[3] == Timestamp(100, 3, "A")  # the clock went back: logical part counts


def test_observe_moves_past_a_remote_timestamp() -> None:
    clock = HybridLogicalClock("A")
    clock.now(100)
    got = clock.observe(Timestamp(200, 7, "B"), now_ms=150)
    assert got == Timestamp(200, 8, "A")
    assert clock.now(150) > got


def test_observe_of_an_older_timestamp_uses_local_time() -> None:
    clock = HybridLogicalClock("A")
    assert clock.observe(Timestamp(50, 3, "B"), now_ms=300) == Timestamp(300, 0, "A")


def test_observe_with_equal_walls_takes_the_max_logical_plus_one() -> None:
    clock = HybridLogicalClock("A", last=Timestamp(500, 2, "A"))
    assert clock.observe(Timestamp(500, 9, "B"), now_ms=400) == Timestamp(500, 10, "A")


def test_a_remote_timestamp_beyond_the_skew_bound_raises_and_changes_nothing() -> None:
    clock = HybridLogicalClock("A", max_skew_ms=1_000)
    before = clock.now(100)
    with pytest.raises(ClockSkewError) as e:
        clock.observe(Timestamp(5_000, 0, "B"), now_ms=100)
    assert (e.value.wall_ms, e.value.now_ms, e.value.bound_ms) == (5_000, 100, 1_000)
    assert clock.last == before
    clock.observe(Timestamp(1_100, 0, "B"), now_ms=100)  # exactly at the bound: accepted


def test_ties_are_broken_by_replica_id() -> None:
    assert Timestamp(1, 0, "A") < Timestamp(1, 0, "B")


def test_timestamp_json_round_trip_and_refusals() -> None:
    ts = Timestamp(10, 2, "A")
    assert ts == (10, 2, "A") and type(ts) is tuple  # a plain tuple: the GC can untrack it
    assert timestamp_to_json(ts) == [10, 2, "A"]
    assert timestamp_from_json(timestamp_to_json(ts), "ts") == ts
    for bad, path in [
        ([10, 2], "ts"),
        ([-1, 0, "A"], "ts[0]"),
        ([1, -1, "A"], "ts[1]"),
        ([1, 0, ""], "ts[2]"),
    ]:
        with pytest.raises(DecodeError) as e:
            timestamp_from_json(bad, "ts")
        assert e.value.path == path


def test_time_must_be_a_non_negative_int() -> None:
    clock = HybridLogicalClock("A")
    with pytest.raises(TypeError):
        clock.now(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        clock.now(-1)
    assert clock.last is None


def test_a_write_over_a_timestamp_far_ahead_takes_its_wall_time_and_never_raises() -> None:
    ahead = Timestamp(10**12, 5, "B")
    assert write_timestamp(ahead, "A", 1_000, None, 60_000) == Timestamp(10**12, 6, "A")
    assert write_timestamp(None, "A", 1_000, None, 60_000) == Timestamp(1_000, 0, "A")
    assert write_timestamp(Timestamp(900, 2, "B"), "A", 1_000, None, 0) == Timestamp(1_000, 0, "A")


def test_a_given_timestamp_beyond_the_bound_raises() -> None:
    given = Timestamp(70_000, 0, "A")
    with pytest.raises(ClockSkewError):
        write_timestamp(None, "A", 1_000, given, 60_000)
    assert write_timestamp(None, "A", 10_000, given, 60_000) == given
    assert write_timestamp(None, "A", None, given, 0) == given  # no clock to check against
