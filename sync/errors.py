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
          ├── PeerFailed              the peer stopped serving because its store failed to
          │                           commit (disk full, database gone): its memory may be
          │                           ahead of its disk, so it must be closed and reopened.
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
    "LocalProtocolError",
    "PeerFailed",
    "QuorumNotReached",
    "ReadQuorumNotReached",
    "RemoteProtocolError",
    "SyncError",
    "ValueTooLarge",
]


class SyncError(Exception):
    """Base class of every error raised on purpose by ``sync``."""


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
