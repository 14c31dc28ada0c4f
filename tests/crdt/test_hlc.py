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


MAX = 2**63 - 1


def test_past_the_logical_limit_the_wall_part_moves_on_instead() -> None:
    """A timestamp we took (within the skew bound) may carry any logical part up to 2**63-1;
    the next tick must still be a timestamp every peer accepts, and later than it."""
    held = Timestamp(5_000, MAX, "H")
    nxt = write_timestamp(held, "A", 1_000, None, 60_000)
    assert nxt == Timestamp(5_001, 0, "A") and nxt > held
    assert timestamp_from_json(timestamp_to_json(nxt), "ts") == nxt
    clock = HybridLogicalClock("A")
    got = clock.observe(Timestamp(5_000, MAX, "H"), now_ms=4_000)
    assert got == Timestamp(5_001, 0, "A")
    assert clock.now(4_000) == Timestamp(5_001, 1, "A")
    with pytest.raises(ValueError, match="exhausted"):
        write_timestamp(Timestamp(MAX, MAX, "H"), "A", 1_000, None, 60_000)


@pytest.mark.parametrize("kind", ["lww", "ormap"])
def test_a_register_holding_the_last_logical_value_stays_writable_with_a_valid_stamp(
    kind: str,
) -> None:
    """A peer's register stamped (wall, 2**63-1) within the skew bound: our next write wins
    and encodes a state that decodes again (before: logical 2**63, refused by every peer's
    decoder and by our own store once reopened)."""
    from crdt import LWWRegister, ORMap, from_dict

    theirs: LWWRegister | ORMap
    if kind == "lww":
        theirs = LWWRegister()
        theirs.set("H", "theirs", timestamp=Timestamp(5_000, MAX, "H"), now_ms=4_990)
        ours = LWWRegister()
        ours.merge(theirs)
        delta = ours.set("A", "ours", now_ms=4_000)
    else:
        theirs = ORMap()
        theirs.update(
            "H", "k", "lww", lambda r: r.set("H", "theirs", Timestamp(5_000, MAX, "H"), 4_990)
        )
        ours = ORMap()
        ours.merge(theirs)
        delta = ours.update("A", "k", "lww", lambda r: r.set("A", "ours", now_ms=4_000))
    for state in (ours, delta):
        again = from_dict(state.to_dict())
        assert again.to_dict() == state.to_dict()
    assert (ours.value if kind == "lww" else ours.value["k"]) == "ours"
