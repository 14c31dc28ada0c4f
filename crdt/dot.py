"""Dots: unique event identifiers ``(replica, counter)``.

A dot names one event: the ``counter``-th event created by ``replica`` (counters start at 1).
Causal CRDTs tag every value they hold with the dot of the event that wrote it, and a
causal context records every dot a replica has seen (Almeida, Shoker, Baquero, "Delta State
Replicated Data Types", 2018, section 5).

``Dot`` is a plain ``NamedTuple`` on purpose: dots are hashed and compared in the hot loops
of every merge, and a tuple is the cheapest hashable value in CPython.
Encoded as the JSON array ``[replica, counter]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, NewType

from crdt.errors import DecodeError

__all__ = ["Dot", "ReplicaId"]

ReplicaId = NewType("ReplicaId", str)


class Dot(NamedTuple):
    """The ``counter``-th event of ``replica``.

    >>> Dot("A", 3)
    Dot(replica='A', counter=3)
    """

    replica: str
    counter: int


def check_replica(replica: object) -> str:
    """Return ``replica`` if it is a non-empty str; raise TypeError/ValueError otherwise."""
    if type(replica) is not str:
        raise TypeError(f"replica id must be a str, got {type(replica).__name__}")
    if not replica:
        raise ValueError("replica id must not be empty")
    return replica


def check_counts(counts: Mapping[str, int] | None) -> dict[str, int]:
    """Per-replica counts (a version vector's, a G-counter's) checked, zeros left out."""
    out: dict[str, int] = {}
    if counts:
        for r, n in counts.items():
            check_replica(r)
            if type(n) is not int or n < 0:
                raise ValueError(f"count for {r!r} must be an int >= 0, got {n!r}")
            if n:
                out[r] = n
    return out


def dot_to_json(dot: Dot) -> list[Any]:
    """``Dot("A", 3)`` -> ``["A", 3]``."""
    return [dot[0], dot[1]]


def dot_from_json(x: object, path: str) -> Dot:
    """Decode ``[replica, counter]``; DecodeError naming ``path`` when malformed."""
    if type(x) is not list or len(x) != 2:
        raise DecodeError(path, f"a dot must be a [replica, counter] array, got {x!r}")
    replica, counter = x
    if type(replica) is not str or not replica:
        raise DecodeError(f"{path}[0]", f"replica must be a non-empty string, got {replica!r}")
    if type(counter) is not int or counter < 1:
        raise DecodeError(f"{path}[1]", f"counter must be an integer >= 1, got {counter!r}")
    return Dot(replica, counter)
