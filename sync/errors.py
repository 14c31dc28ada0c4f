"""The exception tree of the ``sync`` package.

::

    Exception
     └── SyncError                    every error raised on purpose by sync/
          ├── LocalProtocolError      our own misuse of the engine or the protocol (a bug in
          │                           the caller: wrong argument, a message the engine does
          │                           not handle, a consistency level that cannot be met)
          ├── RemoteProtocolError     a peer sent something malformed, oversized, of an
          │                           unknown version or semantically wrong; ``reason`` says
          │                           what, ``peer`` who (when known). Raised only where
          │                           input is received; the engine state is unchanged.
          ├── QuorumNotReached        a write missed its ``w`` acknowledgements by its
          │                           deadline; ``result`` holds the acks that came. The
          │                           write is durable locally and will replicate later.
          ├── ReadQuorumNotReached    a read got fewer than ``r`` replies by its deadline;
          │                           ``failed`` holds what came (the joined state, if any).
          ├── KindClash (TypeError)   a local write to a key that holds live objects of two
          │                           kinds (two peers wrote it concurrently as different
          │                           types), or a read of it naming no kind; ``key`` and
          │                           ``kinds`` say which; nothing changed.
          ├── KeyNotFound (LookupError, ValueError)
          │                           a read naming no kind of a key that holds nothing here
          ├── PeerFailed              the peer stopped serving because its store failed to
          │                           commit (disk full, database gone): its memory may be
          │                           ahead of its disk, so it must be closed and reopened.
          ├── SubscriptionOverflow (RuntimeError)
          │                           a prefix subscription fell more keys behind than it
          │                           holds and ended: subscribe again, then read the keys
          └── ValueTooLarge           (also a ``ValueError``) a write whose value could not
                                      travel in one message was refused before anything
                                      changed; ``size`` and ``limit`` say by how much.

The engine itself reports quorum outcomes as effects (``WriteFailed``, ``ReadFailed``);
the embedding API (``sync.Peer``) turns those into the two ``...NotReached`` exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sync.effects import ReadFailed, WriteResult

__all__ = [
    "KeyNotFound",
    "KindClash",
    "LocalProtocolError",
    "PeerFailed",
    "QuorumNotReached",
    "ReadQuorumNotReached",
    "RemoteProtocolError",
    "SubscriptionOverflow",
    "SyncError",
    "ValueTooLarge",
    "named_kinds",
]


class SyncError(Exception):
    """Base class of every error raised on purpose by ``sync``."""


class KindClash(SyncError, TypeError):
    """``key`` holds objects of several ``kinds``: two peers wrote it concurrently as
    different types, and both objects were kept (an object is named by its key *and* kind).
    A local write to it is refused until one of them is deleted; reads of each kind work.

    >>> str(KindClash("k", ("orset", "pncounter"))).split(" (")[0]
    "key 'k' holds an orset and a pncounter"
    """

    def __init__(self, key: str, kinds: tuple[str, ...]) -> None:
        named = named_kinds(kinds)
        super().__init__(
            f"key {key!r} holds {named} (written concurrently by two peers); delete one "
            f"of them with peer.delete({key!r}, kind=...)"
        )
        self.key = key
        self.kinds = kinds


class KeyNotFound(SyncError, LookupError, ValueError):
    """A read that names no kind found no object under ``key`` here (with a kind, a read of
    a key held nowhere returns no state instead)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} holds no object here")
        self.key = key


def named_kinds(kinds: tuple[str, ...] | list[str]) -> str:
    """``"an orset and a pncounter"``: CRDT kinds as a sentence names them."""
    return " and ".join(f"{'an' if k[:1] in 'aeiou' else 'a'} {k}" for k in kinds)


class LocalProtocolError(SyncError):
    """The caller misused the engine (a programming error on our side)."""


class RemoteProtocolError(SyncError):
    """A peer sent bad input; nothing was changed.

    >>> str(RemoteProtocolError("unknown message type 'x'", peer="B"))
    "from peer 'B': unknown message type 'x'"
    """

    def __init__(self, reason: str, peer: str | None = None) -> None:
        self.reason = reason
        self.peer = peer
        super().__init__(reason if peer is None else f"from peer {peer!r}: {reason}")


class QuorumNotReached(SyncError):
    """A write did not get ``w`` acknowledgements in time (it is durable locally)."""

    def __init__(self, result: WriteResult | None, message: str) -> None:
        self.result = result
        self.message = message
        super().__init__(message)


class ReadQuorumNotReached(SyncError):
    """A read did not get ``r`` replies in time; ``failed`` carries what came."""

    def __init__(self, failed: ReadFailed | None, message: str) -> None:
        self.failed = failed
        self.message = message
        super().__init__(message)


class PeerFailed(SyncError):
    """The peer stopped serving after a failed commit; close it and open it again.

    The engine had already applied the batch in memory when the store refused it, so going
    on would serve (and replicate) state that is not on disk, and reuse log dots after a
    restart. Every operation in flight and every later one raises this; ``__cause__`` is the
    store's error. Reopening rebuilds the replica from what is durable.
    """


class ValueTooLarge(SyncError, ValueError):
    """A write was refused because what it writes could not travel in one message.

    ``size`` is what it would take in a message (bytes of UTF-8, JSON escapes included),
    ``limit`` what is allowed (``ReplicaConfig.max_value_bytes`` for a value checked at the
    call, what one message carries for a whole delta checked by the engine). Nothing was
    written, here or anywhere.

    >>> str(ValueTooLarge("the value", 5_000_000, 2_097_152))
    'the value takes 5000000 bytes, over the limit of 2097152: refused, nothing was written'
    """

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.what = what
        self.size = size
        self.limit = limit
        super().__init__(
            f"{what} takes {size} bytes, over the limit of {limit}: refused, nothing was written"
        )


class SubscriptionOverflow(SyncError, RuntimeError):
    """More than ``maxsize`` distinct keys under ``prefix`` changed while the reader was
    behind: the subscription dropped them and ended. Subscribe again, then read the keys
    (``peer.keys(prefix)``). Also a ``RuntimeError``, as a closed peer's refusal: this
    subscription serves no more.

    >>> str(SubscriptionOverflow("cart:", 100)).split(" and ")[0]
    "the subscription to prefix 'cart:' fell more than 100 keys behind"
    """

    def __init__(self, prefix: str, maxsize: int) -> None:
        super().__init__(
            f"the subscription to prefix {prefix!r} fell more than {maxsize} keys behind and "
            "ended: subscribe again, then read the keys under the prefix"
        )
        self.prefix = prefix
        self.maxsize = maxsize
