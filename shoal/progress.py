"""Catch-up progress on a terminal: the line ``shoal serve`` keeps up to date on stderr.

:class:`CatchUpDisplay` is fed the ``catching_up`` part of a status snapshot (per source
peer: ``entries``, ``bytes``, ``entries_left``, ``bytes_left``, ``since``) each time it is
polled, and answers with the text to write: one line rewritten in place (``\\r``) while
catch-ups are under way, ended with a newline and a summary once they are all done. It
writes nothing when nothing changed, so a peer that never catches up prints nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CatchUpDisplay", "describe"]

_BAR = 20


def _bar(done: float) -> str:
    filled = max(0, min(_BAR, round(done * _BAR)))
    return "[" + "#" * filled + "." * (_BAR - filled) + "]"


def describe(peer: str, progress: Mapping[str, Any]) -> str:
    """One source's catch-up, e.g. ``from 3f2a…: [####....] 41% (5,900 of 10,000 left,
    1.2 MB)``."""
    total = max(int(progress.get("entries", 0)), 1)
    left = max(int(progress.get("entries_left", 0)), 0)
    done = min(1.0, max(0.0, 1 - left / total))
    mb = int(progress.get("bytes_left", 0)) / 1e6
    return f"from {peer[:8]}: {_bar(done)} {done:4.0%} ({left:,} of {total:,} left, {mb:.1f} MB)"


class CatchUpDisplay:
    """The state of the progress line between two polls."""

    def __init__(self) -> None:
        self._shown = ""
        self._sources: set[str] = set()

    def update(self, catching_up: Mapping[str, Mapping[str, Any]]) -> str:
        """The text to write for this poll (``""``: nothing)."""
        if catching_up:
            self._sources.update(catching_up)
            line = "catching up " + "; ".join(
                describe(peer, catching_up[peer]) for peer in sorted(catching_up)
            )
            if line == self._shown:
                return ""
            pad = " " * max(0, len(self._shown) - len(line))
            self._shown = line
            return "\r" + line + pad
        if not self._shown:
            return ""
        sources = ", ".join(peer[:8] for peer in sorted(self._sources))
        done = f"caught up with {sources}"
        pad = " " * max(0, len(self._shown) - len(done))
        self._shown = ""
        self._sources.clear()
        return "\r" + done + pad + "\n"
