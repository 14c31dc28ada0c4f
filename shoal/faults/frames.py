"""Split one direction of a websocket TCP stream into units: the HTTP head, then whole frames.

The fault proxy (:mod:`shoal.faults.proxy`) drops, duplicates, reorders and corrupts *whole
frames*, so it must know where each frame ends. A websocket stream (RFC 6455 section 5.2)
starts with an HTTP upgrade request or response, ending at the first empty line; after it,
every frame is::

    byte 0: FIN, RSV1-3, opcode          byte 1: MASK, 7-bit length
    length 126: 16-bit length follows; 127: 64-bit length follows
    MASK set: 4-byte masking key; then the payload

:class:`FrameSplitter` is fed bytes as they arrive and returns the complete units; a partial
frame waits for more bytes. It never changes a byte: joining the units gives the stream back.
A stream that is not a websocket (no HTTP head within :data:`HEAD_LIMIT` bytes, for instance
TLS) is passed on in *raw* units, on which no frame fault is applied.

>>> s = FrameSplitter()
>>> [u.kind for u in s.feed(b"GET / HTTP/1.1\\r\\n\\r\\n" + bytes([0x82, 2]) + b"hi")]
['head', 'frame']
>>> s.feed(bytes([0x89, 0]))[0].opcode   # a ping: a control frame
9
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CONTROL_OPCODES", "DATA_OPCODES", "HEAD_LIMIT", "FrameSplitter", "Unit", "corrupt"]

#: Continuation, text and binary frames carry messages; the others are control frames.
DATA_OPCODES = frozenset({0x0, 0x1, 0x2})
CONTROL_OPCODES = frozenset({0x8, 0x9, 0xA})
#: An HTTP head longer than this is not a websocket handshake: the stream is passed on raw.
HEAD_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Unit:
    """A piece of the stream: the HTTP ``head``, one websocket ``frame``, or ``raw`` bytes."""

    kind: Literal["head", "frame", "raw"]
    data: bytes
    opcode: int = -1
    payload_at: int = 0  # offset of the payload in ``data`` (frames only)

    @property
    def is_data(self) -> bool:
        """A data frame (text, binary or continuation): what frame faults apply to."""
        return self.kind == "frame" and self.opcode in DATA_OPCODES


class FrameSplitter:
    """Incremental splitter of one direction of a websocket stream (see the module doc)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._phase: Literal["head", "frames", "raw"] = "head"

    def feed(self, data: bytes) -> list[Unit]:
        """The units completed by ``data`` (possibly none)."""
        if self._phase == "raw":
            return [Unit("raw", bytes(data))] if data else []
        self._buf += data
        units: list[Unit] = []
        if self._phase == "head":
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > HEAD_LIMIT:
                    return self._go_raw()
                return units
            units.append(Unit("head", bytes(self._buf[: end + 4])))
            del self._buf[: end + 4]
            self._phase = "frames"
        while True:
            unit = self._next_frame()
            if unit is None:
                return units
            units.append(unit)

    def flush(self) -> list[Unit]:
        """What is left at the end of the stream (an incomplete frame), as raw bytes."""
        rest = bytes(self._buf)
        self._buf.clear()
        return [Unit("raw", rest)] if rest else []

    def _go_raw(self) -> list[Unit]:
        self._phase = "raw"
        return self.flush()

    def _next_frame(self) -> Unit | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        opcode = buf[0] & 0x0F
        masked = bool(buf[1] & 0x80)
        length = buf[1] & 0x7F
        at = 2
        if length == 126:
            if len(buf) < 4:
                return None
            length = int.from_bytes(buf[2:4], "big")
            at = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length = int.from_bytes(buf[2:10], "big")
            at = 10
        if masked:
            at += 4
        end = at + length
        if len(buf) < end:
            return None
        unit = Unit("frame", bytes(buf[:end]), opcode, at)
        del buf[:end]
        return unit


def corrupt(unit: Unit, position: int) -> Unit:
    """``unit`` with one bit of its payload flipped (byte ``position`` modulo the payload
    length, its lowest bit); a frame with an empty payload is returned unchanged."""
    size = len(unit.data) - unit.payload_at
    if unit.kind != "frame" or size <= 0:
        return unit
    data = bytearray(unit.data)
    data[unit.payload_at + position % size] ^= 0x01
    return Unit(unit.kind, bytes(data), unit.opcode, unit.payload_at)
