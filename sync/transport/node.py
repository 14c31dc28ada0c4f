"""The node: one asyncio task drives one sans-I/O :class:`sync.Replica` against a store.

Theory of operation.

* **Inputs are serialized.** Every input to the engine (a local write or read, a received
  message, a peer going up or down, a forget, a timer tick) is a closure put on one queue.
  The *engine task* is the only code that touches the replica: it wakes on new input or at
  ``next_deadline()``, drains **every** queued input (up to ``max_inputs`` at once), ticks
  the replica if a deadline passed, and hands the effects of that round to the executor.
* **The collector pauses for a round**, and its young generation is collected less often
  while a node is open (:mod:`sync.transport.collector`, which says why and what it leaves
  as it was): a round (the inputs, the tick, ``effects()``) never awaits, and the engine
  holds no reference cycles.
* **Effects run in order, persist before acknowledge.** The *executor task*
  (:mod:`sync.transport.executor`) takes every round of effects queued since it last ran,
  folds their ``Persist`` effects into one batch (:func:`merge_persists`, which keeps the
  store's per-batch semantics; it and the other conversions between the store's rows and
  the engine's values are in :mod:`sync.transport.storage`), awaits one ``store.apply`` for
  it, and only then runs the other effects (sends, acks, write and read results, change
  notifications) in their original order. So nothing that depends on a change leaves the
  process before the change is durable, and while one transaction commits the engine keeps
  consuming input: the next batch grows meanwhile. Many concurrent writers therefore share
  one transaction (group commit) without the engine ever waiting for the disk.
* **Objects on demand.** The engine holds a bounded cache of objects. Before running a
  round of inputs, the engine task asks the replica what they need that is not in memory
  (``wants_keys`` for local writes and reads, ``wants_message`` for received messages),
  waits until every ``Persist`` handed to the executor so far that writes one of those
  objects has committed (so a row of an object the engine evicted is complete; unrelated
  commits are not waited for, so a state transfer's next chunk is loaded while the last
  one commits), loads those objects from the store in one
  batched read (and, for a state transfer, whole partitions), hands them over with
  ``admit`` and then runs the inputs. With every object in memory the replica wants
  nothing and a round costs no read. :meth:`Node.aclose` ends with ``checkpoint_all``: every
  changed object is checkpointed and the store records its log as folded, so the next open
  folds nothing.
* **State transfers read the store in pages.** A ``ReadPage`` effect runs, like every
  effect, once the ``Persist`` before it committed: a task reads the page (and, for the
  first of a round, the counts it asks for) and hands it back as the input
  ``snapshot_page``; the engine sends it as chunks and asks for the next page as the
  receiver acks them, so serving a bootstrap holds a page of objects, not a partition.
  ``CatchUp`` effects (a catch-up from a peer started, ended, was interrupted) are logged
  at INFO.
* **Clock.** The engine's ``now`` is this node's :meth:`Node.now`: ``time.monotonic()`` plus
  an offset fixed at start so that it reads as Unix seconds. It never goes backwards
  within a process. Values persisted by one run (when a hint was stored, when a peer was
  last seen) stay meaningful in the next: they are stored on the wall clock as it reads
  when they are committed (:func:`~sync.transport.storage.on_wall_clock`, once the wall
  clock was stepped since the start), and one ahead of the new run's clock (the wall clock
  set back since) counts as the time of the open. Wall time for LWW timestamps is separate
  (``time.time()`` in the handles, passed as ``now_ms``), and so is the clock received
  timestamps are judged by for skew: each round sets the engine's ``wall_offset`` from
  ``time.time()``, so that a step of the wall clock (NTP setting it right) moves that
  horizon too.
* **Errors.** A :class:`~sync.errors.RemoteProtocolError` from ``receive`` closes that peer's
  link with 1002 and its reason; the engine state is unchanged by contract. An exception
  from a local operation is raised to its caller. A failed ``store.apply`` is fatal
  (fail-stop): the engine had applied that batch in memory, so the node drops the batch's
  sends and acks (nothing is acknowledged that is not durable), fails every operation in
  flight and every later one with :class:`~sync.errors.PeerFailed`, stops, and calls
  ``on_fatal`` so the owner closes its links; reopening rebuilds from the store. An
  :class:`~sync.effects.Alarm` (a peer's clock far ahead...) is logged at WARNING and
  counted (``counters.alarms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from sync.effects import ObjectState, Persist, ReadDone, ReadPage, WriteResult
from sync.errors import LocalProtocolError, PeerFailed, RemoteProtocolError
from sync.replica import ReplicaAPI

from . import collector
from .executor import Barrier, Executor, NodeCounters, settle
from .storage import StoreLike, loaded_from_store, merge_persists, object_states, on_wall_clock

__all__ = [
    "Node",
    "ReplicaLike",
    "StoreLike",
    "loaded_from_store",
    "merge_persists",
]

log = logging.getLogger("shoal.node")


# The engine API the node drives (one definition, shared with the simulator).
ReplicaLike = ReplicaAPI


Input = Callable[[ReplicaLike, float], object]
# A local write waiting for the engine: (op_id, key, kind, fn, w, strict, timeout, checked).
_WriteInput = tuple[int, str, str, Callable[[Any], Any], Any, "bool | None", "float | None", bool]


class Node:
    """Owns one replica; see the module docstring. Use :meth:`start` and :meth:`aclose`.

    Callbacks: ``on_changed(key, objects)`` once per changed key per round (``objects``: the
    key's objects by kind, which the engine may have evicted since); ``on_effect(effect)`` for
    each ``Persist`` (after its commit), ``IdentityConflict`` and ``KindClashFound`` (the
    effects the node has no work of its own for); ``on_fatal`` when the node stops serving;
    ``on_round()`` after each round of inputs the engine ran (in the engine task: it must only
    note that something may have changed, e.g. set an event).
    """

    def __init__(
        self,
        replica: ReplicaLike,
        store: StoreLike,
        send: Callable[[str, Any], bool],
        *,
        close_peer: Callable[[str, int, str], None] | None = None,
        on_changed: Callable[[str, Any], None] | None = None,
        on_effect: Callable[[Any], None] | None = None,
        on_fatal: Callable[[PeerFailed], None] | None = None,
        on_round: Callable[[], None] | None = None,
        max_inputs: int = 10_000,
        max_pending: int = 50_000,
    ) -> None:
        self.replica = replica
        self.store = store
        self._close_peer = close_peer
        self._on_fatal = on_fatal
        self._on_round = on_round
        self.failed: PeerFailed | None = None
        self.max_inputs = max_inputs
        self.max_pending = max_pending
        self._room = asyncio.Event()
        self.counters = NodeCounters()
        self._offset = time.time() - time.monotonic()
        self._inputs: deque[Input | _WriteInput] = deque()
        self._input_ready = _Signal()
        self._idle = asyncio.Event()
        self._idle.set()
        self._ops = itertools.count(1)
        self._writes: dict[int, asyncio.Future[WriteResult]] = {}
        self._reads: dict[int, asyncio.Future[ReadDone]] = {}
        self._engine_task: asyncio.Task[None] | None = None
        self._exec_task: asyncio.Task[None] | None = None
        self._barrier: list[asyncio.Future[None]] = []
        # The futures of call() and kinds(), failed at close and fail-stop as writes and
        # reads are (their inputs may be dropped then).
        self._calls: set[asyncio.Future[Any]] = set()
        self._closing = False  # refusing input: closing, or failed
        self._closed = False  # aclose() began
        self._holding = False  # holds the collector's young threshold (start until aclose)
        self._page_reads: set[asyncio.Task[None]] = set()
        self._executor = Executor(
            store,
            send,
            self.counters,
            self._writes,
            self._reads,
            self._idle,
            read_page=self._start_page_read,
            fail_stop=self._fail_stop,
            inputs_waiting=lambda: bool(self._inputs),
            on_changed=on_changed,
            on_effect=on_effect,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def now(self) -> float:
        """The engine's clock: monotonic, in seconds, offset to read as Unix time."""
        return time.monotonic() + self._offset

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._holding:
            collector.hold()
            self._holding = True
        self._engine_task = loop.create_task(self._engine_loop(), name="shoal-engine")
        self._exec_task = loop.create_task(self._executor.run(), name="shoal-effects")

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued input ran and every effect so far was executed."""

        async def settled() -> None:
            for _ in range(1_000_000):
                if not self._inputs and not self._executor.queued and self._idle.is_set():
                    return
                self._input_ready.set()
                await asyncio.sleep(0.001)

        await asyncio.wait_for(settled(), timeout)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Refuse new input, run what is queued (so pending batches commit), checkpoint
        every changed object (the store records its log as folded), then stop both tasks.

        Input is refused first (``RuntimeError``, at the call): an input taken while the
        close drains could be left behind, its caller waiting for ever (a ``call``) or told
        that a write it could not know the fate of had failed."""
        if self._closed:
            return
        self._closed = True
        self._closing = True
        try:
            await self._close(timeout)
        finally:  # (a close cancelled halfway still gives the collector's threshold back)
            if self._holding:
                self._holding = False
                collector.release()

    async def _close(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await self.drain(timeout)
        if self.failed is None:
            # (a store that fails here fail-stops the node, as any commit would)
            with contextlib.suppress(TimeoutError, RuntimeError, PeerFailed):
                checkpoint = self._call(lambda r, now: r.checkpoint_all(now))
                await asyncio.wait_for(checkpoint, timeout)
        self._room.set()
        tasks = [self._engine_task, self._exec_task, *self._page_reads]
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._fail_pending(RuntimeError("peer closed before the operation finished"))

    # -- inputs ------------------------------------------------------------------------------

    async def room(self) -> None:
        """Wait while more than ``max_pending`` inputs are queued (backpressure for links:
        a reader that awaits this stops reading its socket, so a fast sender fills its own
        bounded queue instead of this process's memory)."""
        while len(self._inputs) > self.max_pending and not self._closing:
            self._room.clear()
            await self._room.wait()

    def _check_open(self) -> None:
        if self.failed is not None:
            raise self.failed
        if self._closing:
            raise RuntimeError("the peer is closed")

    def submit(self, fn: Input) -> None:
        """Queue one input for the engine task."""
        self._check_open()
        self._inputs.append(fn)
        self._input_ready.set()

    def write(
        self,
        key: str,
        kind: str,
        fn: Callable[[Any], Any],
        *,
        w: Any = None,
        strict: bool | None = None,
        timeout: float | None = None,
        checked: bool = False,
    ) -> asyncio.Future[WriteResult]:
        """Queue ``fn`` for ``key`` now; the future resolves when ``w`` acks came.

        The write is queued by this call, not by awaiting: a window of many concurrent
        writes costs one future each, no task. The future raises :class:`QuorumNotReached`
        (durable here, replicates later) or the engine's error for bad input (nothing
        changed); a closed or failed node raises here, at once. ``checked``: see
        ``Replica.local_update`` (the handles check their values and pass True).
        """
        self._check_open()
        op_id = next(self._ops)
        fut: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._writes[op_id] = fut
        # A plain tuple, not a closure: a window of many concurrent writes queues one small
        # object each (see _run_write).
        self._inputs.append((op_id, key, kind, fn, w, strict, timeout, checked))
        self._input_ready.set()
        return fut

    async def read(
        self,
        key: str,
        *,
        kind: str | None = None,
        r: Any = None,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> ReadDone:
        """Read the object ``(key, kind)`` from ``r`` replicas (read repair on the way)."""
        self._check_open()  # before the future exists: a refused read leaves nothing behind
        op_id = next(self._ops)
        fut: asyncio.Future[ReadDone] = asyncio.get_running_loop().create_future()
        self._reads[op_id] = fut

        def run(rep: ReplicaLike, now: float) -> None:
            try:
                rep.local_read(op_id, key, now, kind=kind, r=r, strict=strict, timeout=timeout)
            except Exception as exc:  # the caller's error: hand it back, do not crash the node
                settle(self._reads, op_id, error=exc)

        self.submit(_Call(run, lambda rep: (rep.wants_keys((key,)), [])))
        return await fut

    def receive(self, peer_id: str, message: Any) -> None:
        def run(r: ReplicaLike, now: float) -> None:
            try:
                r.receive(peer_id, message, now)
            except (RemoteProtocolError, LocalProtocolError) as exc:
                # The engine refuses every bad remote input with RemoteProtocolError (a
                # handshake or heartbeat message after the handshake included); either way
                # the link goes, never the node.
                reason = exc.reason if isinstance(exc, RemoteProtocolError) else str(exc)
                self.counters.remote_errors += 1
                log.warning("bad message from %s: %s; closing its link", peer_id, reason)
                if self._close_peer is not None:
                    self._close_peer(peer_id, 1002, reason)

        self.submit(_Call(run, lambda rep: rep.wants_message(peer_id, message)))

    def peer_up(
        self,
        peer_id: str,
        address: str | None,
        site: str | None,
        relay: bool = False,
        home: bool = True,
    ) -> None:
        self.submit(
            lambda r, now: r.peer_up(
                peer_id, now, address=address, site=site, relay=relay, home=home
            )
        )

    def peer_down(self, peer_id: str) -> None:
        self.submit(lambda r, now: r.peer_down(peer_id, now))

    def announce(self, address: str | None) -> None:
        """This replica listens at ``address``: its card says so (``Replica.announce``)."""
        self.submit(lambda r, now: r.announce(address, now))

    async def call(self, fn: Callable[[ReplicaLike, float], Any]) -> Any:
        """Run ``fn(replica, now)`` as an input; return its result once the effects of its
        round ran (every ``Persist`` up to it is committed). Cancelled, ``fn`` still runs
        (or already ran): only the answer is dropped."""
        self._check_open()
        return await self._call(fn)

    async def _call(self, fn: Callable[[ReplicaLike, float], Any]) -> Any:
        """:meth:`call`, taken even while the node closes (its last checkpoint)."""
        done = self._future()
        box: list[Any] = []

        def run(r: ReplicaLike, now: float) -> None:
            try:
                box.append(fn(r, now))
            except Exception as exc:
                if not done.done():  # (its caller may have stopped waiting)
                    done.set_exception(exc)
                return
            self._barrier.append(done)

        self._inputs.append(run)
        self._input_ready.set()
        await done
        return box[0] if box else None

    def _future(self) -> asyncio.Future[Any]:
        """The future of a call, failed if the node closes before it is answered."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls.add(done)
        done.add_done_callback(self._calls.discard)
        return done

    async def kinds(self, key: str) -> tuple[str, ...]:
        """The kinds of the live objects ``key`` holds here, sorted (loaded from the store
        first if the engine does not hold them in memory)."""

        def run(rep: ReplicaLike, now: float) -> tuple[str, ...]:
            return tuple(rep.kinds_of(key))

        self._check_open()
        done = self._future()

        def answer(rep: ReplicaLike, now: float) -> None:
            if done.done():  # its caller stopped waiting
                return
            try:
                result = run(rep, now)
            except Exception as exc:  # the caller's error: hand it back
                done.set_exception(exc)
                return
            done.set_result(result)

        self.submit(_Call(answer, lambda rep: (rep.wants_keys((key,)), [])))
        result: tuple[str, ...] = await done
        return result

    def links_connecting(self, count: int, failures: Mapping[str, str]) -> None:
        """The transport's dial state, for the engine (``Replica.links_connecting``):
        ``count`` links still being dialled, and the dialled URLs known down with why."""
        down = dict(failures)
        self.submit(lambda r, now: r.links_connecting(count, now, failures=down))

    async def forget(self, peer_id: str, *, by: str = "an operator") -> None:
        """Forget ``peer_id`` for good (``by``: who asked); returns once that is durable.
        The engine's ``ValueError`` (an unknown id, one forgotten already) is raised here."""
        await self.call(lambda r, now: r.forget(peer_id, now, by=by))

    async def unforget(self, peer_id: str, *, by: str = "an operator") -> None:
        """Undo :meth:`forget`; returns once that is durable."""
        await self.call(lambda r, now: r.unforget(peer_id, now, by=by))

    # -- the two tasks -----------------------------------------------------------------------

    async def _engine_loop(self) -> None:
        r = self.replica
        while True:
            if not self._inputs:
                deadline = r.next_deadline()
                delay = None if deadline is None else max(0.0, deadline - self.now())
                if delay is None or delay > 0:
                    await self._input_ready.wait(delay)
                else:
                    await asyncio.sleep(0)  # a deadline is due: let the others run first
            self._input_ready.clear()
            self._idle.clear()
            n = min(len(self._inputs), self.max_inputs)
            batch = [self._inputs.popleft() for _ in range(n)]
            if n:
                try:
                    await self._prefetch(r, batch)
                except Exception as exc:  # the store failed to read: stop, as for a commit
                    self.counters.store_errors += 1
                    self._fail_stop([], exc)
                    return
            now = self.now()
            # The wall clock may have been stepped since we started (our now cannot follow).
            r.wall_offset = time.time() - now
            with collector.paused():  # (see the module docstring); no await in it
                effects = self._round(r, batch, now)
            self.counters.inputs += n
            if len(self._inputs) <= self.max_pending:
                self._room.set()
            offset = r.wall_offset
            if not -1.0 < offset < 1.0:  # the wall clock was stepped since we started
                effects = [on_wall_clock(e, offset) if type(e) is Persist else e for e in effects]
            if self._on_round is not None:
                try:
                    self._on_round()
                except Exception:  # the owner's bug; the engine goes on
                    log.exception("round callback failed")
            if self._barrier:
                effects = [*effects, Barrier(list(self._barrier))]
                self._barrier.clear()
            if effects:
                self.counters.rounds += 1
                self._executor.hand(effects)
            elif not self._executor.queued:
                self._idle.set()
            if self._inputs:
                self._input_ready.set()
                await asyncio.sleep(0)  # (else the wait above lets the others run)

    def _round(self, r: ReplicaLike, batch: list[Input | _WriteInput], now: float) -> list[Any]:
        """The engine's round: ``batch``'s inputs, a tick if a deadline passed, the effects."""
        for fn in batch:
            try:
                if isinstance(fn, tuple):
                    self._run_write(r, now, fn)
                else:
                    fn(r, now)
            except Exception:  # a bug: log it loudly, but keep the node serving others
                self.counters.input_errors += 1
                log.exception("engine input failed; the replica is unchanged by contract")
        deadline = r.next_deadline()
        if deadline is not None and deadline <= now:
            try:
                r.tick(now)
            except Exception:  # a bug; keep serving (the next tick retries)
                self.counters.input_errors += 1
                log.exception("engine tick failed")
        return r.effects()

    async def _prefetch(self, r: ReplicaLike, batch: list[Input | _WriteInput]) -> None:
        """Load what the round's inputs need that the engine does not hold (see the module
        docstring): one batched read of keys, and whole partitions for state transfers."""
        keys: list[str] = []
        parts: set[int] = set()
        for item in batch:
            if isinstance(item, tuple):
                keys.extend(r.wants_keys((item[1],)))
            else:
                want = getattr(item, "wants", None)
                if want is not None:
                    more, ps = want(r)
                    keys.extend(more)
                    parts.update(ps)
        # A key that is not a non-empty str is the caller's error, which the engine reports
        # to that caller: nothing to load for it.
        keys = [k for k in keys if isinstance(k, str) and k]
        if not keys and not parts:
            return
        # The store must hold what the rounds handed so far write of these objects (a whole
        # partition: every round), not more: a load does not wait for unrelated commits.
        await self._executor.caught_up(None if parts else keys)
        rows = await self.store.get_objects(keys) if keys else []
        for p in sorted(parts):
            async for page in self.store.snapshot(p):
                rows.extend(page)
        self.counters.loads += 1
        self.counters.objects_loaded += len(rows)
        r.admit(keys, object_states(rows), sorted(parts))

    def _run_write(self, r: ReplicaLike, now: float, item: _WriteInput) -> None:
        op_id, key, kind, fn, w, strict, timeout, checked = item
        try:
            r.local_update(
                op_id, key, kind, fn, now, w=w, strict=strict, timeout=timeout, checked=checked
            )
        except Exception as exc:  # the caller's error: hand it back, do not crash the node
            fut = self._writes.pop(op_id, None)
            if fut is not None and not fut.done():
                fut.set_exception(exc)

    def _start_page_read(self, read: ReadPage) -> None:
        """The executor met ``read`` (a ``ReadPage``): read it in a task of its own."""
        task = asyncio.get_running_loop().create_task(self._read_page(read))
        self._page_reads.add(task)
        task.add_done_callback(self._page_reads.discard)

    async def _read_page(self, read: ReadPage) -> None:
        """Read the page ``read`` asks for (its Persist committed: the executor runs effects
        after the commit) and hand it to the engine."""
        try:
            rows, end = await self.store.objects_page(
                read.partition, read.after, read.limit, read.max_bytes
            )
            totals = await self.store.count_objects(read.count) if read.count else None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store failed to read: stop, as for a commit
            if self.failed is None and not self._closing:
                self.counters.store_errors += 1
                self._fail_stop([], exc)
            return
        self.counters.pages_read += 1
        self.counters.objects_streamed += len(rows)
        page = [ObjectState(key, kind, text) for key, kind, text in rows]
        if self.failed is None and not self._closing:
            self.submit(lambda r, now: r.snapshot_page(read, page, end, now, totals=totals))

    def _fail_stop(self, effects: list[Any], exc: Exception) -> None:
        """A commit failed: stop serving (memory is ahead of disk), fail every operation.

        Going on would acknowledge and replicate state that is not durable, and after a
        restart the replica would hand out log dots it had already sent. So the node stops
        taking input, fails what is in flight with :class:`PeerFailed`, and tells its owner
        (the Peer closes its links); reopening rebuilds the replica from the store.
        """
        failed = PeerFailed(
            f"the store failed to commit ({exc!r}); this peer stopped serving: close it and "
            "open it again"
        )
        failed.__cause__ = exc
        self.failed = failed
        self._closing = True
        log.critical("store.apply failed; the peer stops serving: %r", exc)
        self._executor.fail(effects, failed)
        self._inputs.clear()
        self._fail_pending(failed)
        if self._engine_task is not None:
            self._engine_task.cancel()
        self._idle.set()
        self._room.set()
        if self._on_fatal is not None:
            try:
                self._on_fatal(failed)
            except Exception:
                log.exception("on_fatal callback failed")

    def _fail_pending(self, error: Exception) -> None:
        """Fail every operation still waiting (writes, reads, calls) with ``error``."""
        pending: list[asyncio.Future[Any]] = [
            *self._writes.values(),
            *self._reads.values(),
            *self._calls,
        ]
        self._writes.clear()
        self._reads.clear()
        self._calls.clear()
        for fut in pending:
            if not fut.done():
                fut.set_exception(error)


class _Signal:
    """A flag one task waits on, with a timeout: what the engine task sleeps on.

    ``asyncio.wait_for(event.wait(), delay)`` wraps the wait in a task of its own, and waking
    it takes two turns of the event loop; the engine waits once per round, so with one write
    in flight that was a visible part of each write's latency (``benchmarks/speed_bench.py
    --goals serial``). Here a wait is one future and, with a timeout, one timer.
    """

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self, timeout: float | None) -> None:
        """Return once set (at once if it is), or after ``timeout`` seconds."""
        if self._flag:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _release, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Call:
    """An input that says what it needs loaded first: ``wants(replica)`` -> (keys,
    partitions)."""

    __slots__ = ("fn", "wants")

    def __init__(
        self,
        fn: Callable[[ReplicaLike, float], object],
        wants: Callable[[ReplicaLike], tuple[list[str], list[int]]],
    ) -> None:
        self.fn, self.wants = fn, wants

    def __call__(self, r: ReplicaLike, now: float) -> object:
        return self.fn(r, now)
