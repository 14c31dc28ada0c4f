"""The simulated failure detector (:class:`FailureDetector`): which peers each replica has
been told are up, and when to look again at a link whose state changed.

A replica should believe a peer is up when the two can talk (both alive, on the same side of
every partition). When that stops matching what it believes, the detector looks again
``delay`` seconds later (a :class:`~sync.simnet.events.Detect` event); if it still does not
match then, the cluster tells the replica ``peer_up`` or ``peer_down`` and records the new
belief here. What "can talk" means is the cluster's to say.

Knows the simulator's events and their queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sync.simnet.events import Detect, EventQueue

__all__ = ["FailureDetector"]


class FailureDetector:
    """The beliefs of every replica about its peers, and the looks scheduled on ``queue``."""

    def __init__(self, queue: EventQueue) -> None:
        self._queue = queue
        self._up: dict[str, set[str]] = {}  # observer -> the peers it believes up

    def believes_up(self, observer: str, peer: str) -> bool:
        """Whether ``observer`` has been told that ``peer`` is up (and not down since)."""
        believed = self._up.get(observer)
        return believed is not None and peer in believed

    def believe(self, observer: str, peer: str, up: bool) -> None:
        """``observer`` is being told that ``peer`` is up (or down)."""
        if up:
            self._up.setdefault(observer, set()).add(peer)
        else:
            self._up.get(observer, set()).discard(peer)

    def forget(self, observer: str) -> None:
        """``observer`` crashed: it believes nothing any more."""
        self._up.pop(observer, None)

    def look_again(
        self,
        pairs: Iterable[tuple[str, str]],
        at: float,
        can_talk: Callable[[str, str], bool],
        alive: Callable[[str], bool],
    ) -> None:
        """Schedule a look at ``at`` for each pair ``(observer, peer)`` whose live observer
        believes otherwise than ``can_talk(observer, peer)``."""
        for a, b in pairs:
            if alive(a) and can_talk(a, b) != self.believes_up(a, b):
                self._queue.push(at, Detect(a, b))
