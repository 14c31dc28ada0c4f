"""The exception tree of the ``crdt`` package.

::

    Exception
     └── CRDTError                   every error raised on purpose by crdt/
          ├── DecodeError            (also a ValueError) a dict that from_dict cannot accept;
          │                          ``path`` names the bad field, e.g. ``"entries[3][1]"``
          └── ClockSkewError         a LWW timestamp further ahead of the local clock than the
                                     configured bound (raised by a local set only)

    TypeError                        (builtin) a value or element that is not JSON, or an
                                     argument of the wrong kind; nothing changes
    ValueError                       (builtin) a bad argument value, e.g. ``increment(r, 0)``

Merging two states of the same kind never raises.
"""

from __future__ import annotations

__all__ = ["CRDTError", "ClockSkewError", "DecodeError"]


class CRDTError(Exception):
    """Base class of the errors that crdt/ raises on purpose."""


class DecodeError(CRDTError, ValueError):
    """``from_dict`` refused its input.

    ``path`` is where the problem is (``"type"``, ``"ctx.vv.A"``, ``"entries[2][1][0]"``),
    ``reason`` says what is wrong with it.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ClockSkewError(CRDTError):
    """A timestamp is more than ``bound_ms`` ahead of the local clock ``now_ms``."""

    def __init__(self, wall_ms: int, now_ms: int, bound_ms: int) -> None:
        super().__init__(
            f"timestamp wall_ms={wall_ms} is {wall_ms - now_ms} ms ahead of the local clock "
            f"(now_ms={now_ms}); the bound is {bound_ms} ms"
        )
        self.wall_ms = wall_ms
        self.now_ms = now_ms
        self.bound_ms = bound_ms


def shown(value: object) -> str:
    """``repr(value)`` for an error message, of bounded length: a huge int is described, not
    printed (its text could run to megabytes, and past Python's int-to-str limit, 4300
    digits, printing it raises a ValueError of its own in place of the error meant), and
    any other repr is cut at 200 characters."""
    if type(value) is int and value.bit_length() > 128:
        return f"{'a negative' if value < 0 else 'an'} int of {value.bit_length()} bits"
    try:
        text = repr(value)
    except ValueError:  # (an int inside a container, past the limit)
        return f"a {type(value).__name__} holding a huge int"
    return text if len(text) <= 200 else text[:197] + "..."
