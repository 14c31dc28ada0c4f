"""Consistency levels: how many acknowledgements (writes) or replies (reads) an operation needs.

A level is a positive ``int`` or one of the names below (Cassandra's vocabulary):

* ``ONE`` — 1.
* ``QUORUM`` — a majority of the ``n`` home replicas: ``n // 2 + 1``.
* ``ALL`` — all ``n`` home replicas.
* ``LOCAL_QUORUM`` — a majority of the home replicas that are in the coordinator's site
  (``config.site``): ``local_homes // 2 + 1``. Only acknowledgements from peers of that site
  count; the other sites are still sent to and replicate asynchronously. With no home in the
  site at all, one same-site acknowledgement is needed (the coordinator's own, when it counts).

An integer level must satisfy ``1 <= level <= n``: asking for more acknowledgements than
there are home replicas could never succeed, so it is refused at the call.

>>> required_acks("QUORUM", 3), required_acks(2, 3), required_acks("LOCAL_QUORUM", 5, local_homes=3)
(2, 2, 2)
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALL",
    "LEVELS",
    "LOCAL_QUORUM",
    "ONE",
    "QUORUM",
    "Level",
    "check_level",
    "required_acks",
]

Level = int | str

ONE: Final = "ONE"
QUORUM: Final = "QUORUM"
ALL: Final = "ALL"
LOCAL_QUORUM: Final = "LOCAL_QUORUM"
LEVELS: Final = (ONE, QUORUM, ALL, LOCAL_QUORUM)


def check_level(level: object, n: int, *, name: str = "level") -> Level:
    """Return ``level`` if it is valid for ``n`` home replicas; raise otherwise.

    ``TypeError`` for a value that is neither an int nor a str (``bool`` is refused too),
    ``ValueError`` for an unknown name or an int outside ``1..n``.
    """
    if isinstance(level, bool) or not isinstance(level, int | str):
        raise TypeError(f"{name} must be an int or one of {', '.join(LEVELS)}, got {level!r}")
    if isinstance(level, str):
        if level not in LEVELS:
            raise ValueError(f"{name} must be an int or one of {', '.join(LEVELS)}, got {level!r}")
        return level
    if not 1 <= level <= n:
        raise ValueError(f"{name}={level} is impossible with n={n}: it must be in 1..{n}")
    return level


def required_acks(level: Level, n: int, *, local_homes: int | None = None) -> int:
    """The number of acknowledgements ``level`` needs among ``n`` home replicas.

    ``local_homes`` (the number of homes in the coordinator's site) is required for
    ``LOCAL_QUORUM``; ``ValueError`` without it.
    """
    level = check_level(level, n)
    if isinstance(level, int):
        return level
    if level == ONE:
        return 1
    if level == QUORUM:
        return n // 2 + 1
    if level == ALL:
        return n
    if local_homes is None:
        raise ValueError("LOCAL_QUORUM needs the number of home replicas in the local site")
    return local_homes // 2 + 1
