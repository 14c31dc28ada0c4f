"""Unit tests for crdt/lww.py: timestamps, ties, the skew bound and the on_skew hook."""

from __future__ import annotations

from typing import Any

import pytest

from crdt import ClockSkewError, DecodeError, LWWRegister, ORMap, Timestamp


def test_the_later_timestamp_wins_whatever_the_merge_order() -> None:
    a, b = LWWRegister(), LWWRegister()
    d1 = a.set("A", "first", now_ms=1_000)
    d2 = b.set("B", "second", now_ms=2_000)
    a.merge(d2)
    b.merge(d1)
    assert a.value == b.value == "second" and a == b


def test_same_millisecond_ties_are_broken_by_replica_id() -> None:
    a, b = LWWRegister(), LWWRegister()
    d1 = a.set("B", "from B", now_ms=5)
    d2 = b.set("A", "from A", now_ms=5)
    a.merge(d2)
    b.merge(d1)
    assert a.value == b.value == "from B"


def test_local_sets_advance_the_clock_even_if_physical_time_goes_back() -> None:
    r = LWWRegister()
    r.set("A", 1, now_ms=1_000)
    r.set("A", 2, now_ms=500)
    assert r.value == 2
    assert r.timestamp == Timestamp(1_000, 1, "A")


def test_without_now_ms_the_register_takes_a_logical_step_and_never_reads_the_clock() -> None:
    r = LWWRegister()
    r.set("A", "x")
    assert r.timestamp == Timestamp(0, 0, "A")
    r.set("A", "y")
    assert r.timestamp == Timestamp(0, 1, "A") and r.value == "y"


def test_a_set_with_an_older_explicit_timestamp_loses() -> None:
    r = LWWRegister()
    r.set("A", "new", timestamp=Timestamp(10, 0, "A"))
    d = r.set("A", "old", timestamp=Timestamp(5, 0, "A"))
    assert r.value == "new"
    assert d.value == "old"  # the delta is harmless: joining it changes nothing
    before = r.to_dict()
    r.merge(d)
    assert r.to_dict() == before


def test_a_timestamp_beyond_the_clock_bound_raises_on_a_local_set_and_changes_nothing() -> None:
    r = LWWRegister(clock_bound_ms=1_000)
    r.set("A", "ok", now_ms=100)
    before = r.to_dict()
    with pytest.raises(ClockSkewError) as e:
        r.set("A", "future", timestamp=Timestamp(10_000, 0, "A"), now_ms=100)
    assert e.value.bound_ms == 1_000
    assert r.to_dict() == before


DAY_MS = 86_400_000
NOW_MS = 1_700_000_000_000


def test_a_local_set_over_a_timestamp_a_day_ahead_never_raises_and_wins() -> None:
    """A peer whose clock is a day ahead wrote once: the register holds its timestamp. A
    correct-clock writer keeps writing: the next tick keeps the held wall time and counts
    the logical part (a hybrid logical clock), so its write wins over the one it saw."""
    fast = LWWRegister()
    seen = fast.set("B", "from the future", now_ms=NOW_MS + DAY_MS)
    r = LWWRegister()
    r.merge(seen)
    for i in range(3):
        delta = r.set("A", f"write {i}", now_ms=NOW_MS + i)
        assert r.value == f"write {i}"
        assert r.timestamp == delta.timestamp == Timestamp(NOW_MS + DAY_MS, i + 1, "A")
    fast.merge(delta)
    assert fast.value == "write 2" and fast == r


def test_the_fast_writer_itself_keeps_writing_once_its_clock_is_set_right() -> None:
    r = LWWRegister()
    r.set("B", "stamped a day ahead", now_ms=NOW_MS + DAY_MS)
    r.set("B", "clock fixed", now_ms=NOW_MS)  # used to raise ClockSkewError for ever
    assert r.value == "clock fixed" and r.timestamp == Timestamp(NOW_MS + DAY_MS, 1, "B")


def test_an_embedded_register_over_a_timestamp_a_day_ahead_is_writable_too() -> None:
    fast, mine = ORMap(), ORMap()
    mine.merge(
        fast.update("B", "title", "lww", lambda v: v.set("B", "ahead", now_ms=NOW_MS + DAY_MS))
    )
    mine.update("A", "title", "lww", lambda v: v.set("A", "now", now_ms=NOW_MS))
    assert mine.value == {"title": "now"}
    with pytest.raises(ClockSkewError):  # a timestamp the caller gives is still checked
        mine.update(
            "A",
            "title",
            "lww",
            lambda v: v.set("A", "x", timestamp=Timestamp(NOW_MS + DAY_MS, 9, "A"), now_ms=NOW_MS),
        )
    assert mine.value == {"title": "now"}


def test_merge_of_a_far_future_winner_calls_on_skew_and_still_merges() -> None:
    seen: list[tuple[Timestamp, int]] = []
    r = LWWRegister(clock_bound_ms=1_000, on_skew=lambda ts, now: seen.append((ts, now)))
    r.set("A", "local", now_ms=100)
    far = LWWRegister()
    far.set("B", "future", timestamp=Timestamp(50_000, 0, "B"))
    r.merge(far)
    assert r.value == "future"  # a join must not refuse: replicas would diverge
    assert seen == [(Timestamp(50_000, 0, "B"), 100)]
    r2 = LWWRegister(clock_bound_ms=1_000, on_skew=lambda ts, now: seen.append((ts, now)))
    r2.merge(far, now_ms=49_500)
    assert len(seen) == 1  # within the bound of the now_ms passed to merge


def test_merge_after_the_clock_was_set_back_judges_by_the_clock_as_it_reads_now() -> None:
    """The local time merge falls back on is the last ``now_ms`` given, not the greatest:
    after a step of the wall clock an hour back, a winner an hour ahead of it is reported."""
    hour = 3_600_000
    seen: list[tuple[Timestamp, int]] = []
    r = LWWRegister(clock_bound_ms=1_000, on_skew=lambda ts, now: seen.append((ts, now)))
    r.set("A", "before the step", now_ms=NOW_MS)
    r.set("A", "after the step", now_ms=NOW_MS - hour)  # wins: ticks past the first
    assert r.value == "after the step"
    ahead = LWWRegister()
    ahead.set("B", "an hour ahead", timestamp=Timestamp(NOW_MS + 500, 0, "B"))
    r.merge(ahead)
    assert r.value == "an hour ahead"
    assert seen == [(Timestamp(NOW_MS + 500, 0, "B"), NOW_MS - hour)]


def test_merge_without_a_known_local_time_does_not_report() -> None:
    calls: list[Any] = []
    r = LWWRegister(on_skew=lambda ts, now: calls.append(ts))
    far = LWWRegister()
    far.set("B", "x", timestamp=Timestamp(10**12, 0, "B"))
    r.merge(far)
    assert r.value == "x" and calls == []


def test_non_json_values_are_refused_naming_the_type_and_change_nothing() -> None:
    r = LWWRegister()
    r.set("A", "kept", now_ms=1)
    before = r.to_dict()
    for bad in (object(), {1, 2}, b"x", float("nan"), {1: "a"}):
        with pytest.raises(TypeError):
            r.set("A", bad, now_ms=2)
    assert r.to_dict() == before


def test_values_are_copied_in_and_out() -> None:
    r = LWWRegister()
    v = ["milk"]
    r.set("A", v)
    v.append("eggs")
    r.value.append("ham")
    assert r.value == ["milk"]


def test_tuples_are_stored_as_lists_so_the_codec_round_trips() -> None:
    r = LWWRegister()
    r.set("A", ("a", 1))
    assert r.value == ["a", 1]
    assert LWWRegister.from_dict(r.to_dict()) == r


def test_equal_timestamps_with_different_values_join_deterministically() -> None:
    ts = Timestamp(1, 0, "A")
    x, y = LWWRegister(), LWWRegister()
    x.set("A", "a", timestamp=ts)
    y.set("A", "b", timestamp=ts)
    x2, y2 = x.copy(), y.copy()
    x.merge(y)
    y2.merge(x2)
    assert x == y2 and x.value == "b"


def test_codec_round_trip_bottom_and_refusals() -> None:
    assert LWWRegister().to_dict() == {"type": "lww", "v": 1, "value": None, "ts": None}
    assert LWWRegister.from_dict(LWWRegister().to_dict()).is_bottom()
    r = LWWRegister()
    r.set("A", {"k": [1, 2]}, now_ms=7)
    assert r.to_dict()["ts"] == [7, 0, "A"]
    assert LWWRegister.from_dict(r.to_dict()) == r
    for bad, path in [
        ({"type": "lww", "v": 1, "value": None}, "ts"),
        ({"type": "lww", "v": 1, "value": 1, "ts": None}, "ts"),
        ({"type": "lww", "v": 1, "value": 1, "ts": [1, 0]}, "ts"),
    ]:
        with pytest.raises(DecodeError) as e:
            LWWRegister.from_dict(bad)
        assert e.value.path == path


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        LWWRegister(clock_bound_ms=-1)
