"""The amount of a counter's increment or decrement (``crdt.gcounter.check_amount``): a bad
one is refused with an error that says what is wrong, however large the number."""

from __future__ import annotations

import pytest

from crdt import GCounter, PNCounter
from crdt.gcounter import check_amount


@pytest.mark.parametrize("n", [0, -1, 2**63, 2**64])
def test_an_amount_out_of_range_is_shown(n: int) -> None:
    with pytest.raises(ValueError, match=rf"amount must be in 1\.\.2\*\*63-1, got {n}$"):
        check_amount(n)


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (10**5000, "got an int of 16610 bits"),
        (-(10**5000), "got a negative int of 16610 bits"),
        (2**100_000, "got an int of 100001 bits"),
    ],
    ids=["10**5000", "-10**5000", "2**100000"],  # (pytest cannot print them either)
)
def test_a_huge_amount_is_described_by_its_size_not_printed(n: int, shown: str) -> None:
    # Printing it would fail past Python's int-to-str limit (4300 digits), and would drown
    # the message below that.
    with pytest.raises(ValueError, match=r"amount must be in 1\.\.2") as err:
        check_amount(n)
    assert str(err.value).endswith(shown) and len(str(err.value)) < 100


def test_counters_refuse_a_huge_amount_and_change_nothing() -> None:
    g, pn = GCounter(), PNCounter()
    for mutate in (
        lambda: g.increment("A", 10**5000),
        lambda: pn.increment("A", 10**5000),
        lambda: pn.decrement("A", 10**5000),
    ):
        with pytest.raises(ValueError, match="bits"):
            mutate()
    assert g.value == pn.value == 0 and not g.is_live() and not pn.is_live()


@pytest.mark.parametrize(
    "state",
    [
        {"type": "gcounter", "v": 1, "counts": {"A": 10**5000}},
        {"type": "orset", "v": 1, "entries": [], "ctx": {"vv": {"A": 10**5000}, "cloud": []}},
        {"type": "lww", "v": 1, "ts": [10**5000, 0, "A"], "value": 1},
        {"type": "lww", "v": 1, "ts": [1, 0, "A"], "value": 1, "deleted": [10**5000]},
    ],
    ids=["count", "context", "timestamp", "in-a-list"],
)
def test_a_huge_int_in_a_state_is_a_decode_error_that_says_its_size(state: object) -> None:
    """A state with an int past Python's int-to-text limit: from_dict raised that limit's
    own ValueError while it wrote its message, not the DecodeError naming the field."""
    import crdt

    with pytest.raises(crdt.DecodeError) as refused:
        crdt.from_dict(state)  # type: ignore[arg-type]
    assert len(str(refused.value)) < 300
