"""The wire codec: :mod:`sync.messages` as the :class:`~sync.transport.connection.Codec` of
the transport (frames are the engine's messages, encoded and size-checked there)."""

from __future__ import annotations

from typing import Any

from sync import messages

__all__ = ["WireCodec"]


class WireCodec:
    """:func:`sync.messages.encode` and :func:`sync.messages.decode` behind the transport's
    ``Codec`` protocol. ``decode`` raises :class:`~sync.errors.RemoteProtocolError` for a
    frame that is oversized, malformed or of an unknown type or version."""

    def encode(self, message: Any) -> bytes:
        return messages.encode(message)

    def decode(self, data: bytes, max_size: int) -> Any:
        return messages.decode(data, max_size=max_size)
