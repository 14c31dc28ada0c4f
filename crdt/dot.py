"""Dots: unique event identifiers ``(replica, counter)``.

A dot names one event: the ``counter``-th event created by ``replica`` (counters start at 1).
Causal CRDTs tag every value they hold with the dot of the event that wrote it, and a
causal context records every dot a replica has seen (Almeida, Shoker, Baquero, "Delta State
Replicated Data Types", 2018, section 5).

A dot is a *plain* ``tuple`` ``(replica, counter)`` at run time: ``Dot("A", 3)`` returns
``("A", 3)``, read by index or unpacking (``r, c = dot``), never by attribute. Dots are
hashed and compared in the hot loops of every merge, and a tuple is the cheapest hashable
value in CPython; more importantly, an exact tuple of a str and an int is untracked by the
cyclic garbage collector at its first collection, whereas a ``NamedTuple`` (a subclass)
stays tracked for ever, so a state holding many dots would make every full collection walk
all of them. ``Dot`` exists as a class for the constructor call, the docs and mypy only.
Tuples order the same way the ``NamedTuple`` did: by replica id, then counter.
Encoded as the JSON array ``[replica, counter]``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any, NewType

from crdt.errors import DecodeError, shown

__all__ = ["REPLICA_KEY_BYTES", "Dot", "ReplicaId", "replica_id_for"]

ReplicaId = NewType("ReplicaId", str)

#: Bytes of a replica's public key (Ed25519, raw).
REPLICA_KEY_BYTES = 32


def replica_id_for(public_key: bytes) -> ReplicaId:
    """The replica id of the replica whose Ed25519 public key is ``public_key`` (32 raw bytes):
    the first 100 bits of its SHA-256, as 20 lowercase base32 characters.

    Ids are *self-certifying*: anyone given an id and a key can check that they belong
    together, so a replica proves what it originates by signing with the key behind its id
    (``sync.signing``). 100 bits keep a collision negligible and make finding a key for a
    given id (a second preimage) cost about 2**100 hashes; 20 characters keep dots short,
    since an id is in every dot of every state.

    >>> replica_id_for(bytes(32))
    'mzuhvlpymk6xo3epygfy'
    """
    if type(public_key) is not bytes or len(public_key) != REPLICA_KEY_BYTES:
        raise ValueError(f"a public key is {REPLICA_KEY_BYTES} bytes, got {public_key!r:.80}")
    digest = hashlib.sha256(public_key).digest()
    return ReplicaId(base64.b32encode(digest[:13]).decode("ascii")[:20].lower())


class Dot(tuple[str, int]):
    """The ``counter``-th event of ``replica``; instances are plain tuples.

    ``Dot(replica, counter)`` returns the exact tuple ``(replica, counter)`` (not an instance
    of this class), so the garbage collector can untrack it; read the fields by index
    (``dot[0]``, ``dot[1]``) or by unpacking. The constructor does not check its arguments
    (it is on hot paths): the decoders and mutators check what they are given.

    >>> Dot("A", 3)
    ('A', 3)
    >>> type(Dot("A", 3)) is tuple
    True
    """

    __slots__ = ()

    def __new__(cls, replica: str, counter: int) -> Dot:
        return (replica, counter)  # type: ignore[return-value]


# The largest counter, count, amount or time a CRDT takes (a signed 64-bit integer, as in
# Riak, Cassandra and SQLite): arithmetic on bounded numbers cannot outgrow their JSON text.
MAX_INT = 2**63 - 1


def next_counter(replica: str, n: int) -> int:
    """The counter after ``n`` for ``replica``'s next dot; ``ValueError`` past 2**63-1 (a
    dot no decoder takes). A replica's counter only grows by its own events, one at a time,
    and receivers refuse a message that raises ours (``sync.replica.inbound``), so this is
    a guard, not a path."""
    if n >= MAX_INT:
        raise ValueError(f"{replica!r} has used every dot counter up to 2**63-1 here")
    return n + 1


def check_replica(replica: object) -> str:
    """Return ``replica`` if it is a non-empty str; raise TypeError/ValueError otherwise."""
    if type(replica) is not str:
        raise TypeError(f"replica id must be a str, got {type(replica).__name__}")
    if not replica:
        raise ValueError("replica id must not be empty")
    if not replica.isascii():
        try:
            replica.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("replica id has a lone surrogate: it has no UTF-8 text") from None
    return replica


def check_counts(counts: Mapping[str, int] | None) -> dict[str, int]:
    """Per-replica counts (a version vector's, a G-counter's) checked, zeros left out."""
    out: dict[str, int] = {}
    if counts:
        for r, n in counts.items():
            check_replica(r)
            if type(n) is not int or not 0 <= n <= MAX_INT:
                raise ValueError(f"count for {r!r} must be an int in 0..2**63-1, got {shown(n)}")
            if n:
                out[r] = n
    return out


def dot_to_json(dot: Dot) -> list[Any]:
    """``Dot("A", 3)`` -> ``["A", 3]``."""
    return [dot[0], dot[1]]


def dot_from_json(x: object, path: str) -> Dot:
    """Decode ``[replica, counter]``; DecodeError naming ``path`` when malformed."""
    if type(x) is not list or len(x) != 2:
        raise DecodeError(path, f"a dot must be a [replica, counter] array, got {shown(x)}")
    replica, counter = x
    if type(replica) is str and replica and type(counter) is int and 1 <= counter <= MAX_INT:
        return (replica, counter)  # type: ignore[return-value]  # the decoders' hot path
    if type(replica) is not str or not replica:
        raise DecodeError(f"{path}[0]", f"replica must be a non-empty string, got {shown(replica)}")
    raise DecodeError(
        f"{path}[1]", f"counter must be an integer in 1..2**63-1, got {shown(counter)}"
    )


def dot_or_none(x: object) -> Dot | None:
    """The dot ``[replica, counter]`` encodes if well-formed, else None: for the decoders
    that format the path of the error (for ``dot_from_json``) only when there is one."""
    if type(x) is list and len(x) == 2:
        r, c = x
        if type(r) is str and r and type(c) is int and 1 <= c <= MAX_INT:
            return (r, c)  # type: ignore[return-value]
    return None
