"""Writers: embedded peers that issue writes and record, for each one, whether it was
acknowledged.

A write is *acknowledged* when its :class:`~shoal.faults.commands.WriteResult` reaches the
level asked (the handle's future resolves); ``QuorumNotReached`` means *attempted, not
acknowledged* (durable at the writer, may replicate later); any other error is recorded with
its type and message (a write the peer refused). The checkers (:mod:`shoal.faults.checkers`)
take these :class:`Attempt` records as the history of the run.

:func:`drive` keeps at most ``window`` writes in flight from one writer until its operations
run out or ``stop`` is set, so a writer never floods its peer and every run is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .commands import QuorumNotReached, WriteResult

__all__ = ["Attempt", "Op", "drive", "record"]

#: One write to make: (key, operation name, argument, a call that starts it).
Op = tuple[str, str, Any, Callable[[], "asyncio.Future[WriteResult]"]]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One write and how it ended. ``started``/``ended`` are ``time.monotonic()`` seconds."""

    writer: str
    key: str
    op: str
    arg: Any
    acked: bool
    error: str | None = None
    acked_by: tuple[str, ...] = ()
    hinted: tuple[str, ...] = ()
    started: float = 0.0
    ended: float = 0.0


async def record(writer: str, key: str, op: str, arg: Any, start: Callable[[], Any]) -> Attempt:
    """Make one write (``start()`` returns its future) and record how it ended."""
    began = time.monotonic()
    try:
        result = await start()
    except QuorumNotReached as exc:
        got = exc.result
        return Attempt(
            writer,
            key,
            op,
            arg,
            False,
            None,
            got.acked_by if got else (),
            got.hinted if got else (),
            began,
            time.monotonic(),
        )
    except Exception as exc:  # any refusal is part of the history the checker judges
        message = f"{type(exc).__name__}: {exc}"
        return Attempt(writer, key, op, arg, False, message, (), (), began, time.monotonic())
    assert isinstance(result, WriteResult)
    return Attempt(
        writer,
        key,
        op,
        arg,
        result.acks >= result.required,
        None,
        result.acked_by,
        result.hinted,
        began,
        time.monotonic(),
    )


async def drive(
    writer: str,
    ops: Iterator[Op],
    out: list[Attempt],
    *,
    window: int = 8,
    stop: asyncio.Event | None = None,
    pace: float = 0.0,
) -> None:
    """Issue ``ops`` with at most ``window`` in flight, appending each outcome to ``out``,
    until ``ops`` runs out or ``stop`` is set (writes in flight then finish and are recorded).
    ``pace``: seconds between two submissions (0: as fast as the window allows)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    pending: set[asyncio.Task[Attempt]] = set()

    def harvest(done: set[asyncio.Task[Attempt]]) -> None:
        for task in done:
            out.append(task.result())

    for key, op, arg, start in ops:
        if stop is not None and stop.is_set():
            break
        while len(pending) >= window:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            harvest(done)
        pending.add(asyncio.ensure_future(record(writer, key, op, arg, start)))
        if pace > 0:
            await asyncio.sleep(pace)
    if pending:
        done, _ = await asyncio.wait(pending)
        harvest(done)
