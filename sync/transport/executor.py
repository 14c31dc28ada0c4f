"""The node's effect executor: each batch of engine rounds committed once, then run in order.

Theory of operation (the second of the node's two tasks; see :mod:`sync.transport.node`).
The engine task hands over the effects of every round it ran (:meth:`Executor.hand`). The
executor task (:meth:`Executor.run`) takes every round queued since it last ran, folds
their ``Persist`` effects into one batch (:func:`~sync.transport.storage.merge_persists`),
awaits one ``store.apply`` for it, and only then runs the other effects in their original
order: sends, the results of writes and reads (their futures), change notifications, the
owner's ``on_effect``, ``ReadPage`` (handed to the node, which reads the page), ``CatchUp``
(logged at INFO) and ``Alarm`` (logged at WARNING and counted). So nothing that depends on a
change leaves the process before the change is durable (persist before acknowledge). A
relay's forwards (``Send.early``: other origins' entries, which depend on nothing durable
here) are the exception: they leave before the commit.

A failed commit is the node's business: the executor hands that batch's effects to the
node's fail-stop and ends; the fail-stop fails them, and every round still queued, with
:meth:`Executor.fail` (nothing is acknowledged that is not durable).

:class:`NodeCounters` (the node's counts for status and metrics) lives here, below the node,
since both of its tasks count.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sync.effects import (
    Alarm,
    CatchUp,
    Changed,
    IdentityConflict,
    KindClashFound,
    Persist,
    ReadDone,
    ReadFailed,
    ReadPage,
    Send,
    WriteDone,
    WriteFailed,
    WriteResult,
)
from sync.errors import QuorumNotReached, ReadQuorumNotReached

from .storage import StoreLike, merge_persists

__all__ = ["Barrier", "Executor", "NodeCounters", "settle"]

log = logging.getLogger("shoal.node")


@dataclass(slots=True)
class NodeCounters:
    """Cumulative counts, for status and metrics."""

    rounds: int = 0
    inputs: int = 0
    commits: int = 0
    sends: int = 0
    sends_dropped: int = 0
    remote_errors: int = 0
    store_errors: int = 0
    input_errors: int = 0
    loads: int = 0  # rounds that loaded objects from the store first
    objects_loaded: int = 0
    pages_read: int = 0  # pages of objects read for state transfers
    objects_streamed: int = 0  # objects those pages held
    alarms: int = 0


@dataclass(frozen=True, slots=True)
class Barrier:
    """Node-internal marker: resolve ``futures`` when the effects before it have run."""

    futures: list[asyncio.Future[None]]


def settle(
    table: dict[int, Any],
    op_id: int,
    *,
    result: Any = None,
    error: BaseException | None = None,
) -> None:
    """Resolve the future of operation ``op_id`` in ``table`` (once: a done one is left)."""
    fut = table.pop(op_id, None)
    if fut is None or fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class Executor:
    """Runs the rounds of effects the engine task hands over; see the module docstring.

    ``writes`` and ``reads`` are the node's futures of operations in flight, by op id (the
    executor resolves them); ``idle`` is the node's event "no round is queued or running".
    ``read_page(effect)`` starts the read a ``ReadPage`` asks for; ``fail_stop(effects,
    exc)`` is called (and the executor ends) when a commit fails; ``inputs_waiting()``: are
    inputs queued for the engine (else a commit whose rounds forward nothing early is lone,
    see :meth:`store.Store.apply`)?
    """

    def __init__(
        self,
        store: StoreLike,
        send: Callable[[str, Any], bool],
        counters: NodeCounters,
        writes: dict[int, asyncio.Future[WriteResult]],
        reads: dict[int, asyncio.Future[ReadDone]],
        idle: asyncio.Event,
        *,
        read_page: Callable[[ReadPage], None],
        fail_stop: Callable[[list[Any], Exception], None],
        inputs_waiting: Callable[[], bool] = lambda: False,
        on_changed: Callable[[str, Any], None] | None = None,
        on_effect: Callable[[Any], None] | None = None,
    ) -> None:
        self.store = store
        self.counters = counters
        self._send = send
        self._writes = writes
        self._reads = reads
        self._idle = idle
        self._read_page = read_page
        self._fail_stop = fail_stop
        self._inputs_waiting = inputs_waiting
        self._on_changed = on_changed
        self._on_effect = on_effect
        # Rounds handed over and not run yet, each with its number (1, 2, ... in order);
        # ``_running``: those the executor took and is committing now.
        self._rounds: deque[tuple[int, list[Any]]] = deque()
        self._running: list[tuple[int, list[Any]]] = []
        self._rounds_ready = asyncio.Event()
        self._handed = 0  # rounds handed over
        self._executed = 0  # rounds run (their Persist committed)
        self._executed_event = asyncio.Event()

    @property
    def queued(self) -> bool:
        """Whether rounds are waiting for the executor task."""
        return bool(self._rounds)

    def hand(self, effects: list[Any]) -> None:
        """Queue the effects of one engine round."""
        self._handed += 1
        self._rounds.append((self._handed, effects))
        self._rounds_ready.set()

    async def caught_up(self, keys: Collection[str] | None = None) -> None:
        """Wait until every round handed so far ran (its Persist committed); with ``keys``,
        only the rounds up to the last one whose ``Persist`` writes an object or a log
        entry of one of ``keys`` (what loading those keys from the store must see)."""
        rounds = self._handed if keys is None else self._last_writing(set(keys))
        while self._executed < rounds:
            self._executed_event.clear()
            await self._executed_event.wait()

    def _last_writing(self, keys: set[str]) -> int:
        """The number of the last round not yet run whose Persist writes one of ``keys``
        (0: none does)."""
        if not keys:
            return 0
        pending: list[tuple[int, list[Any]]] = [*self._running, *self._rounds]
        for i in range(len(pending) - 1, -1, -1):
            number, effects = pending[i]
            if any(isinstance(e, Persist) and _writes_any(e, keys) for e in effects):
                return number
        return 0

    def fail(self, effects: list[Any], exc: Exception) -> None:
        """Fail the operations of ``effects`` and of every round still queued with ``exc``."""
        self._fail_batch(effects, exc)
        while self._rounds:
            self._fail_batch(self._rounds.popleft()[1], exc)

    async def run(self) -> None:
        """The executor task."""
        while True:
            if not self._rounds:
                self._idle.set()
                self._rounds_ready.clear()
                await self._rounds_ready.wait()
                continue
            self._idle.clear()
            effects: list[Any] = []
            early: list[Any] = []
            taken = 0
            running = self._running = list(self._rounds)
            self._rounds.clear()
            for _, round_effects in running:
                # A relay's forwards (Send.early, which the engine puts first in its round)
                # depend on nothing this commit holds: they leave before it, so that the next
                # hop does not wait for this disk.
                lead = 0
                while lead < len(round_effects) and _is_early(round_effects[lead]):
                    lead += 1
                if lead:
                    early.extend(round_effects[:lead])
                    effects.extend(round_effects[lead:])
                else:
                    effects.extend(round_effects)
                taken += 1
            if early:
                self._run_effects(early)
            persists = [e for e in effects if isinstance(e, Persist)]
            if persists:
                batch = persists[0] if len(persists) == 1 else merge_persists(persists)
                if not batch.is_empty():
                    try:
                        # One transaction for the whole batch, compactions included (the
                        # rounds are grouped here: the store need not wait for others). Lone:
                        # no forward leaving before it and no input waiting for the engine
                        # (every round queued was taken above): one write in flight, so the
                        # loop has nothing to do during its sync.
                        lone = not early and not self._inputs_waiting()
                        await self.store.apply(batch, grouped=False, lone=lone)
                        self.counters.commits += 1
                    except Exception as exc:  # disk full, database gone: fail, do not ack
                        self.counters.store_errors += 1
                        self._fail_stop(effects, exc)
                        return
            self._running = []
            self._run_effects(effects)
            self._executed += taken
            self._executed_event.set()

    def _run_effects(self, effects: list[Any]) -> None:
        changed: dict[str, Any] = {}
        writes, on_effect = self._writes, self._on_effect
        for e in effects:
            t = type(e)
            if t is Changed:
                changed[e.key] = e.objects  # the latest round's: the key's newest objects
                continue
            if t is WriteDone:
                # The bulk of a busy round (one per local write): resolved inline.
                fut = writes.pop(e.op_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(e.result)
                continue
            try:
                self._run_one(e)
                if on_effect is not None and (
                    t is Persist or t is IdentityConflict or t is KindClashFound
                ):
                    on_effect(e)
            except Exception:  # a bug (or a callback's); the other effects still run
                log.exception("running effect %s failed", type(e).__name__)
        if self._on_changed is not None:
            for key, objects in changed.items():
                try:
                    self._on_changed(key, objects)
                except Exception:
                    log.exception("change callback for %r failed", key)

    def _run_one(self, e: Any) -> None:
        if isinstance(e, Persist | IdentityConflict | KindClashFound):
            return  # committed already / the peer's on_effect handles it
        if isinstance(e, Alarm):
            self.counters.alarms += 1
            log.warning("%s (alarm %s about %s)", e.message, e.kind, e.peer)
            return
        if isinstance(e, Send):
            if self._send(e.peer, e.message):
                self.counters.sends += 1
            else:
                self.counters.sends_dropped += 1
        elif isinstance(e, WriteFailed):  # (WriteDone: resolved in _run_effects)
            exc = QuorumNotReached(e.result, f"write to {e.result.key!r}: {e.reason}")
            settle(self._writes, e.op_id, error=exc)
        elif isinstance(e, ReadDone):
            settle(self._reads, e.op_id, result=e)
        elif isinstance(e, ReadFailed):
            rexc = ReadQuorumNotReached(
                e, f"read of {e.key!r} got {e.replies} of {e.required} replies: {e.reason}"
            )
            settle(self._reads, e.op_id, error=rexc)
        elif isinstance(e, Barrier):
            for fut in e.futures:
                if not fut.done():
                    fut.set_result(None)
        elif isinstance(e, ReadPage):
            self._read_page(e)
        elif isinstance(e, CatchUp):
            _log_catch_up(e)
        else:
            log.warning("effect %r not handled by the node", e)

    def _fail_batch(self, effects: list[Any], exc: Exception) -> None:
        for e in effects:
            if isinstance(e, WriteDone | WriteFailed):
                settle(self._writes, e.op_id, error=exc)
            elif isinstance(e, ReadDone | ReadFailed):
                settle(self._reads, e.op_id, error=exc)
            elif isinstance(e, Barrier):
                for fut in e.futures:
                    if not fut.done():
                        fut.set_exception(exc)


def _is_early(effect: Any) -> bool:
    return type(effect) is Send and effect.early


def _writes_any(persist: Persist, keys: set[str]) -> bool:
    """Whether ``persist`` writes an object or a log entry of one of ``keys``."""
    return any(o.key in keys for o in persist.objects) or any(e.key in keys for e in persist.log)


def _log_catch_up(e: CatchUp) -> None:
    """An operator's view of a catch-up: a line at its start and at its end."""
    if e.phase == "started":
        log.info(
            "catching up from %s: ~%s entries, ~%.1f MB", e.peer, f"{e.entries:,}", e.bytes / 1e6
        )
    elif e.phase == "done":
        log.info(
            "caught up with %s in %.1f s (%s entries, %.1f MB)",
            e.peer,
            e.seconds,
            f"{e.entries:,}",
            e.bytes / 1e6,
        )
    else:
        log.info(
            "catch-up from %s interrupted after %.1f s: ~%s entries, ~%.1f MB left",
            e.peer,
            e.seconds,
            f"{e.entries:,}",
            e.bytes / 1e6,
        )
