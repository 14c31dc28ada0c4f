"""Python's cyclic garbage collector while nodes run in this process.

Two measures, both process-wide (the collector is), both undone as they were found:

* **Paused for a round** (:func:`paused`): a round of the engine never awaits and the engine
  holds no reference cycles, so the engine task turns the collector off for it and back on
  after, if it was on. A round makes and drops many containers (a piece of a big map's
  state transfer parses to hundreds of thousands); with the collector on, every 700 alive
  at once started a collection, and the full ones walk every object of the process.
* **A higher young threshold while a node is open** (:func:`hold`, :func:`release`): the
  youngest generation is collected once ``YOUNG_THRESHOLD`` containers more are alive than
  at its last collection, not 700 (CPython's default). A window of concurrent writes keeps
  a few objects per write alive until its commit (the caller's future, the write's result),
  and between rounds the links decode and encode messages; at 700 the young collections
  found most of them alive and moved them to the older generations, whose growth brought
  full collections, each walking every object of the process: the imports alone
  (SQLAlchemy, pydantic, asyncio...) are about 75,000 objects, 40 to 60 ms a walk on the
  machines of ``benchmarks/README.md``. At 50,000 a window's objects are gone before the
  young collection that would have moved them, and the young collections themselves come
  a third as often as at 20,000 for less of the collector's time in all (measured with
  ``benchmarks/profile_e2e.py --gc --young N``). Garbage without cycles is freed at once
  whatever the threshold; what waits longer is garbage in cycles, at most that many
  containers' worth. The older generations keep their thresholds.

  The first node opened raises the threshold if it is lower (0, the collector's automatic
  runs off, is left alone), the last one closed puts back what it found, unless the
  threshold was changed meanwhile: an application that sets its own, before or after
  opening a peer, keeps it.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["YOUNG_THRESHOLD", "hold", "paused", "release"]

#: The young generation's threshold while a node is open (net new containers).
YOUNG_THRESHOLD = 50_000

_lock = threading.Lock()
_holders = 0
# The thresholds found when the first node opened and raised them (None: left alone), and
# the ones it set, to tell whether someone changed them since.
_found: tuple[int, ...] | None = None
_set: tuple[int, ...] | None = None


def hold() -> None:
    """A node opens: raise the young threshold to ``YOUNG_THRESHOLD`` if it is the first."""
    global _holders, _found, _set
    with _lock:
        _holders += 1
        if _holders > 1:
            return
        found = gc.get_threshold()
        if 0 < found[0] < YOUNG_THRESHOLD:
            _found, _set = found, (YOUNG_THRESHOLD, *found[1:])
            gc.set_threshold(*_set)
        else:
            _found = _set = None


def release() -> None:
    """A node closes: the last one puts back the thresholds it found, if still its own."""
    global _holders, _found, _set
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0:
            if _found is not None and gc.get_threshold() == _set:
                gc.set_threshold(*_found)
            _found = _set = None


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The collector off for the block (a round), back on after if it was on."""
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
