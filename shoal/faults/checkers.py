"""Checkers in the style of Maelstrom: pure functions from a run's history to a verdict.

The history is the writers' :class:`~shoal.faults.clients.Attempt` records; the final state is
what ``shoal inspect`` read from every served peer's database after the faults healed. Each
checker states its property in its docstring, returns a :class:`Verdict` listing every
violation it found (empty: the property held) and the figures that go in the report.

* :func:`check_set` (g-set): no acknowledged add is missing from any peer, every peer holds the
  same set, and no peer holds an element nobody attempted.
* :func:`check_counter` (pn-counter): every peer holds the same value, and it lies between what
  the acknowledged writes add up to and what the attempted writes could add up to.
* :func:`check_register` (LWW under clock skew): the correct-clock writes were acknowledged and
  the correct-clock peers hold the last of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .clients import Attempt

__all__ = ["Verdict", "check_counter", "check_register", "check_set", "errors_of"]

_SHOWN = 5  # examples listed per kind of violation


@dataclass(slots=True)
class Verdict:
    """The outcome of a check: ``problems`` (empty when every property held) and figures."""

    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def merge(self, other: Verdict) -> Verdict:
        """Both verdicts' problems and figures (``other``'s figures win on a clash)."""
        return Verdict([*self.problems, *other.problems], {**self.figures, **other.figures})


def _some(items: Iterable[Any]) -> str:
    listed = sorted(items, key=repr)
    shown = ", ".join(repr(i) for i in listed[:_SHOWN])
    return shown + (f", ... ({len(listed)} in all)" if len(listed) > _SHOWN else "")


def errors_of(history: Iterable[Attempt]) -> dict[str, int]:
    """How many writes ended in each kind of error (not counting quorum misses)."""
    counts: dict[str, int] = {}
    for a in history:
        if a.error is not None:
            kind = a.error.split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def check_set(history: Iterable[Attempt], finals: Mapping[str, Iterable[Any] | None]) -> Verdict:
    """G-set. ``history``: ``add`` attempts (``arg`` the element); ``finals``: each peer's set
    (None: the peer does not hold the key).

    Properties: 0 acknowledged adds lost (on every peer), all peers equal, nothing that was
    never attempted appears. Each element must be added once in the history (else the
    history cannot tell which add a peer holds, and that is reported too)."""
    adds = [a for a in history if a.op == "add"]
    attempted = {a.arg for a in adds}
    acked = {a.arg for a in adds if a.acked}
    v = Verdict()
    if len(attempted) != len(adds):
        v.problems.append(
            f"the history adds {len(adds) - len(attempted)} elements more than once: a g-set "
            "check needs unique elements"
        )
    sets = {peer: frozenset(s) if s is not None else frozenset() for peer, s in finals.items()}
    for peer, held in sorted(sets.items()):
        lost = acked - held
        if lost:
            v.problems.append(f"{peer}: {len(lost)} acknowledged adds lost: {_some(lost)}")
        phantom = held - attempted
        if phantom:
            v.problems.append(f"{peer}: {len(phantom)} elements never added: {_some(phantom)}")
    distinct = set(sets.values())
    if len(distinct) > 1:
        sizes = {peer: len(s) for peer, s in sorted(sets.items())}
        v.problems.append(f"peers differ after heal: sizes {sizes}")
    union = frozenset().union(*sets.values()) if sets else frozenset()
    v.figures.update(
        attempted=len(attempted),
        acknowledged=len(acked),
        lost=sum(1 for x in acked if any(x not in s for s in sets.values())),
        unacknowledged_present=len((attempted - acked) & union),
        errors=errors_of(adds),
    )
    return v


def check_counter(history: Iterable[Attempt], finals: Mapping[str, int | None]) -> Verdict:
    """PN-counter. ``history``: ``add`` attempts whose ``arg`` is the signed amount;
    ``finals``: each peer's value.

    Property: all peers equal, and each value within ``[acked + sum of unacknowledged
    negative amounts, acked + sum of unacknowledged positive amounts]`` (an acknowledged write
    must count; one that was not may or may not)."""
    ops = [a for a in history if a.op == "add"]
    acked = sum(a.arg for a in ops if a.acked)
    maybe_up = sum(a.arg for a in ops if not a.acked and a.arg > 0)
    maybe_down = sum(a.arg for a in ops if not a.acked and a.arg < 0)
    low, high = acked + maybe_down, acked + maybe_up
    v = Verdict()
    for peer, value in sorted(finals.items()):
        got = 0 if value is None else value
        if not low <= got <= high:
            v.problems.append(f"{peer}: value {got} outside [{low}, {high}]")
    if len(set(finals.values())) > 1:
        v.problems.append(f"peers differ after heal: {dict(sorted(finals.items()))}")
    v.figures.update(
        attempted=len(ops),
        acknowledged=sum(1 for a in ops if a.acked),
        acknowledged_sum=acked,
        bounds=[low, high],
        final=sorted(set(finals.values()), key=repr),
        errors=errors_of(ops),
    )
    return v


def check_register(
    correct: Iterable[Attempt], finals: Mapping[str, Any], skewed: Iterable[Attempt] = ()
) -> Verdict:
    """LWW register under clock skew. ``correct``: the ``set`` attempts of correct-clock
    writers, in the order they were made, each made after the previous one was acknowledged
    everywhere it was going to be; ``finals``: the value at each correct-clock peer.

    Properties: every correct-clock write was acknowledged (a peer whose clock is right can
    always write), and every correct-clock peer holds the value of the last of them (a later
    write from a correct clock supersedes whatever a skewed clock wrote)."""
    writes = [a for a in correct if a.op == "set"]
    v = Verdict()
    for a in writes:
        if not a.acked:
            why = a.error or f"quorum not reached (acked by {list(a.acked_by)})"
            v.problems.append(f"{a.writer}: set {a.arg!r} was not acknowledged: {why}")
    if writes:
        last = writes[-1].arg
        for peer, value in sorted(finals.items()):
            if value != last:
                v.problems.append(f"{peer}: holds {value!r}, not the last correct write {last!r}")
    v.figures.update(
        correct_writes=len(writes),
        correct_acknowledged=sum(1 for a in writes if a.acked),
        skewed_writes=[(a.arg, a.acked, a.error) for a in skewed],
        finals=dict(sorted(finals.items())),
        errors=errors_of(writes),
    )
    return v
