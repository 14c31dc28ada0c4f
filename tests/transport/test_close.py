"""Closing a peer as an app does: from two tasks at once, cancelled midway, with calls in
flight. Once an ``aclose()`` returns (or raises ``CancelledError``), the peer is closed for
good: its tasks have ended, its database is let go (this process may open it again at
once) and what it acknowledged is on disk; every call that was in flight has its answer or
a clear error, none waits for ever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from pathlib import Path

import pytest

from sync.errors import PeerFailed, QuorumNotReached, ReadQuorumNotReached
from sync.transport.peer import Peer

from .conftest import FAST_TRANSPORT, open_peer

WAIT = 5.0
# (A dial stuck in its handshake is given close_timeout to end before it is cancelled.)
QUICK_CLOSE = dataclasses.replace(FAST_TRANSPORT, close_timeout=0.1)


def _others() -> set[asyncio.Task[object]]:
    """The tasks still running beside the test's own."""
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


async def _resume(path: Path, count: int) -> None:
    """Open ``path`` again at once: it holds the ``count`` elements written before."""
    again = await open_peer(path, listen=None)
    try:
        assert await again.orset("cart").value() == frozenset(range(count))
    finally:
        await again.aclose()


async def test_a_second_aclose_returns_once_the_peer_is_closed(tmp_path: Path) -> None:
    peer = await open_peer(tmp_path / "a.db")
    cart = peer.orset("cart")
    writes = [cart.add(i) for i in range(50)]
    first = asyncio.ensure_future(peer.aclose())
    await asyncio.sleep(0)  # the first close has begun
    await asyncio.wait_for(peer.aclose(), WAIT)  # (it returned at once, the peer half open)
    assert _others() <= {first}
    await asyncio.wait_for(first, WAIT)
    await asyncio.wait_for(asyncio.gather(*writes), WAIT)
    await _resume(tmp_path / "a.db", 50)


async def test_an_aclose_cancelled_midway_still_closes_the_peer(tmp_path: Path) -> None:
    # Cancelled at each step of the close in turn (the links, the engine's last round, the
    # database): the cancelled caller returns once the close is over, and a later aclose()
    # has nothing left to do.
    for turns in range(1, 12, 2):
        path = tmp_path / f"{turns}.db"
        peer = await open_peer(path)
        cart = peer.orset("cart")
        writes = [cart.add(i) for i in range(20)]
        closing = asyncio.ensure_future(peer.aclose())
        for _ in range(turns):
            await asyncio.sleep(0)
        closing.cancel()
        await asyncio.wait({closing}, timeout=WAIT)
        assert closing.done()
        assert _others() == set(), f"tasks left running after a close cancelled at {turns}"
        await asyncio.wait_for(peer.aclose(), WAIT)
        await asyncio.wait_for(asyncio.gather(*writes), WAIT)
        await _resume(path, 20)


async def _keys(peer: Peer) -> list[str]:
    return [k async for k in peer.keys(None)]


async def _outcome(call: asyncio.Future[object]) -> object:
    """What ``call`` came to: its result or its error; it must not wait for ever."""
    try:
        return await asyncio.wait_for(call, WAIT)
    except TimeoutError:
        raise AssertionError(f"{call!r} still waits after the peer closed") from None
    except Exception as exc:  # the clear error a closed peer gives
        return exc


async def test_calls_made_while_the_peer_closes_end_and_writes_stay_consistent(
    tmp_path: Path,
) -> None:
    # Listing keys, deleting, forgetting, writing, made at each step of a close: each ends,
    # with its answer or RuntimeError, and a write is on disk iff it returned its result.
    for turns in range(0, 16, 3):
        path = tmp_path / f"{turns}.db"
        peer = await open_peer(path)
        await peer.orset("gone").add("x")
        closing = asyncio.ensure_future(peer.aclose())
        for _ in range(turns):
            await asyncio.sleep(0)
        calls = [
            asyncio.ensure_future(_keys(peer)),
            asyncio.ensure_future(peer.delete("gone")),
            asyncio.ensure_future(peer.unforget("nobody")),
        ]
        writes: list[asyncio.Future[object]] = []
        for i in range(5):
            try:
                writes.append(asyncio.ensure_future(peer.orset("cart").add(i)))
            except RuntimeError:
                break  # closed: refused at the call, as every later one
        await asyncio.wait_for(closing, WAIT)
        outcomes = [await _outcome(c) for c in calls]
        assert isinstance(outcomes[0], list | RuntimeError), outcomes
        assert not isinstance(outcomes[1], Exception) or isinstance(outcomes[1], RuntimeError)
        assert isinstance(outcomes[2], ValueError | RuntimeError), outcomes
        written = {i for i, w in enumerate(writes) if not isinstance(await _outcome(w), Exception)}
        again = await open_peer(path, listen=None)
        try:
            assert await again.orset("cart").value() == frozenset(written), turns
        finally:
            await again.aclose()


async def test_a_cancelled_call_is_no_engine_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An app gives up on a delete or a forget (its own timeout): the engine still runs it or
    # refuses it, with nobody left to tell; that is no failure of the engine.
    peer = await open_peer(tmp_path / "c.db")
    try:
        await peer.orset("cart").add("milk")
        with caplog.at_level(logging.ERROR, logger="shoal"):
            for call in (peer.delete("cart"), peer.forget("nobody"), peer.unforget("nobody")):
                task = asyncio.ensure_future(call)
                await asyncio.sleep(0)  # queued for the engine
                task.cancel()
                await asyncio.wait({task}, timeout=WAIT)
            await asyncio.wait_for(peer.node.drain(), WAIT)
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert peer.node.counters.input_errors == 0
        # (the delete was cancelled while it looked up the key's kind: it wrote nothing)
        assert await peer.orset("cart").value() == frozenset({"milk"})
    finally:
        await peer.aclose()


async def test_a_write_waiting_for_acks_when_the_peer_closes_says_it_is_durable(
    tmp_path: Path,
) -> None:
    # A w=2 increment waits for the peer being dialled (a port that takes the connection and
    # never answers): closing the peer ends it with QuorumNotReached, which says the write
    # is durable here, not a RuntimeError an app would retry (counting it twice).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}"
        peer = await open_peer(tmp_path / "d.db", listen=None, peers=[url], transport=QUICK_CLOSE)
        visits = peer.pncounter("visits")
        write = visits.increment(1, w=2, timeout=30)
        read = asyncio.ensure_future(visits.value(r=2, timeout=30))
        await asyncio.wait_for(peer.aclose(), WAIT)
        with pytest.raises(QuorumNotReached) as info:
            await asyncio.wait_for(write, WAIT)
        assert (info.value.result.acks, info.value.result.required) == (1, 2)
        assert "durable here" in str(info.value)
        with pytest.raises(ReadQuorumNotReached):
            await asyncio.wait_for(read, WAIT)
    again = await open_peer(tmp_path / "d.db", listen=None)
    try:
        assert await again.pncounter("visits").value() == 1
    finally:
        await again.aclose()


async def test_waiting_for_links_or_a_failure_ends_when_the_peer_closes(tmp_path: Path) -> None:
    # A supervisor waits for the peer to fail, a task for its links, with no timeout: the
    # peer closed (the app's own shutdown), both end with RuntimeError, and so do calls
    # made later, as every call of a closed peer does.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}"
        peer = await open_peer(tmp_path / "e.db", listen=None, peers=[url], transport=QUICK_CLOSE)
        failed = asyncio.ensure_future(peer.wait_failed())
        linked = asyncio.ensure_future(peer.connected(timeout=None, until="all"))
        await asyncio.sleep(0)
        await asyncio.wait_for(peer.aclose(), WAIT)
        for waiter in (failed, linked):
            with pytest.raises(RuntimeError, match="the peer is closed"):
                await asyncio.wait_for(waiter, WAIT)
        for call in (peer.wait_failed(), peer.connected(timeout=None)):
            with pytest.raises(RuntimeError, match="the peer is closed"):
                await asyncio.wait_for(call, WAIT)


async def test_waiting_for_links_ends_with_the_failure_of_a_commit(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}"
        peer = await open_peer(tmp_path / "f.db", listen=None, peers=[url], transport=QUICK_CLOSE)
        try:
            linked = asyncio.ensure_future(peer.connected(timeout=None, until="all"))

            async def broken(batch: object, *, grouped: bool = True, lone: bool = False) -> None:
                raise OSError("disk full")

            peer.store.apply = broken  # type: ignore[method-assign]
            with pytest.raises(PeerFailed):
                await asyncio.wait_for(peer.orset("cart").add("milk"), WAIT)
            with pytest.raises(PeerFailed, match="disk full"):
                await asyncio.wait_for(linked, WAIT)
            assert await asyncio.wait_for(peer.wait_failed(), WAIT) is peer.failure
        finally:
            await peer.aclose()


async def test_a_peer_waiting_to_redial_closes_at_once(tmp_path: Path) -> None:
    # The configured peer is down (connection refused) and the next dial is a long backoff
    # away: the close does not wait for it (it waited close_timeout, here 30 s, for a
    # dialler that had nothing to close).
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{free.getsockname()[1]}"  # (bound, not listening: refused)
        patient = dataclasses.replace(
            FAST_TRANSPORT, backoff_base=30.0, backoff_cap=60.0, close_timeout=30.0
        )
        peer = await open_peer(tmp_path / "g.db", listen=None, peers=[url], transport=patient)
        links = await peer.connected(timeout=WAIT)
        assert url in links.down  # its first dial failed: the dialler sleeps
        await asyncio.wait_for(peer.aclose(), WAIT)
    assert _others() == set()
