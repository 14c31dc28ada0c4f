"""The checkers find the violations they are for, on histories made by hand."""

from __future__ import annotations

from shoal.faults.checkers import check_counter, check_register, check_set
from shoal.faults.clients import Attempt


def _add(arg: object, acked: bool = True, writer: str = "w") -> Attempt:
    return Attempt(writer, "k", "add", arg, acked)


def test_set_passes_when_every_acknowledged_add_is_everywhere() -> None:
    history = [_add("a"), _add("b"), _add("c", acked=False)]
    v = check_set(history, {"p0": {"a", "b"}, "p1": {"a", "b"}})
    assert v.ok, v.problems
    assert v.figures["attempted"] == 3 and v.figures["acknowledged"] == 2
    assert v.figures["lost"] == 0 and v.figures["unacknowledged_present"] == 0


def test_set_reports_a_lost_acknowledged_add_per_peer() -> None:
    v = check_set([_add("a"), _add("b")], {"p0": {"a", "b"}, "p1": {"a"}})
    assert not v.ok
    assert any("p1: 1 acknowledged adds lost: 'b'" in p for p in v.problems)
    assert any("peers differ" in p for p in v.problems)
    assert v.figures["lost"] == 1


def test_set_counts_a_peer_without_the_key_as_empty() -> None:
    v = check_set([_add("a")], {"p0": {"a"}, "p1": None})
    assert v.figures["lost"] == 1 and not v.ok


def test_set_reports_an_element_nobody_added() -> None:
    v = check_set([_add("a")], {"p0": {"a", "ghost"}})
    assert v.problems == ["p0: 1 elements never added: 'ghost'"]


def test_counter_bounds_take_unacknowledged_writes_either_way() -> None:
    history = [_add(5), _add(-2), _add(3, acked=False), _add(-4, acked=False)]
    # acknowledged: 3; the unacknowledged +3 and -4 may or may not count: [-1, 6].
    assert check_counter(history, {"p0": -1, "p1": -1}).ok
    assert check_counter(history, {"p0": 6, "p1": 6}).ok
    v = check_counter(history, {"p0": 7, "p1": 7})
    assert v.problems == ["p0: value 7 outside [-1, 6]", "p1: value 7 outside [-1, 6]"]
    assert v.figures["bounds"] == [-1, 6]


def test_counter_reports_a_double_counted_write_and_divergence() -> None:
    history = [_add(2), _add(2)]
    v = check_counter(history, {"p0": 4, "p1": 6})
    assert "p1: value 6 outside [4, 4]" in v.problems
    assert any("peers differ" in p for p in v.problems)


def test_register_wants_every_correct_write_acknowledged_and_the_last_everywhere() -> None:
    ok = [Attempt("c", "r", "set", "x", True), Attempt("c", "r", "set", "y", True)]
    assert check_register(ok, {"p0": "y", "p1": "y"}).ok
    failed = [
        Attempt("c", "r", "set", "x", False, "ClockSkewError: ahead"),
        Attempt("c", "r", "set", "y", True),
    ]
    v = check_register(failed, {"p0": "future", "p1": "y"})
    assert v.problems == [
        "c: set 'x' was not acknowledged: ClockSkewError: ahead",
        "p0: holds 'future', not the last correct write 'y'",
    ]
    assert v.figures["errors"] == {"ClockSkewError": 1}


def test_set_refuses_a_history_that_adds_an_element_twice() -> None:
    v = check_set([_add("a"), _add("a", acked=False)], {"p0": {"a"}})
    assert v.problems == [
        "the history adds 1 elements more than once: a g-set check needs unique elements"
    ]
