"""Unit tests for crdt/pncounter.py."""

from __future__ import annotations

import pytest

from crdt import DecodeError, PNCounter


def test_value_is_increments_minus_decrements_across_replicas() -> None:
    a, b = PNCounter(), PNCounter()
    a.increment("A", 5)
    b.decrement("B", 2)
    b.increment("B")
    a.merge(b)
    assert a.value == 4


def test_deltas_touch_only_their_half() -> None:
    c = PNCounter()
    c.increment("A", 2)
    d = c.decrement("A", 3)
    assert d.to_dict() == {"type": "pncounter", "v": 1, "p": {}, "n": {"A": 3}}
    assert c.value == -1
    old = PNCounter()
    old.increment("A", 2)
    old.merge(d)
    assert old == c


def test_bad_amounts_change_nothing() -> None:
    c = PNCounter()
    c.increment("A", 1)
    with pytest.raises(ValueError):
        c.decrement("A", 0)
    with pytest.raises(TypeError):
        c.decrement("A", 1.5)  # type: ignore[arg-type]
    assert c.value == 1 and c.to_dict()["n"] == {}


def test_codec_round_trip_and_refusals() -> None:
    c = PNCounter()
    c.increment("A")
    c.decrement("B", 2)
    assert PNCounter.from_dict(c.to_dict()) == c
    with pytest.raises(DecodeError) as e:
        PNCounter.from_dict({"type": "pncounter", "v": 1, "p": {}})
    assert e.value.path == "n"
    with pytest.raises(DecodeError) as e:
        PNCounter.from_dict({"type": "pncounter", "v": 1, "p": {"A": -1}, "n": {}})
    assert e.value.path == "p.A"


def test_copy_and_bottom() -> None:
    c = PNCounter()
    assert c.is_bottom()
    c.decrement("A")
    d = c.copy()
    d.decrement("A")
    assert c.value == -1 and d.value == -2 and not c.is_bottom()
