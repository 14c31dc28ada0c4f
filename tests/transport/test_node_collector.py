"""The engine's round runs with the cyclic garbage collector paused, and leaves it as it was;
while a node is open the young generation's threshold is raised, and put back at close.

A round (a batch of inputs, a tick, the effects) builds and drops many containers: a
state-transfer piece of a big map parses to hundreds of thousands. With the collector on,
each 700 of them alive at once started a collection, and the full ones walked every object
the process holds (the imports', the map's): about a quarter of a new peer's CPU to take a
map of 100k entries (``benchmarks/README.md``). The engine holds no reference cycles, and a
round never awaits, so the node pauses the collector for the round and the next allocation
after it collects what is due.

The young threshold (``sync.transport.collector``): at CPython's 700, a window of concurrent
writes had its objects moved to the older generations, whose growth brought full
collections walking every object of the process, each 40 to 60 ms of imports alone.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from sync.config import ReplicaConfig
from sync.replica import Replica
from sync.transport import collector
from sync.transport.node import Node
from tests.transport.test_node import GatedStore

__all__: list[str] = []


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[tuple[int, ...]]:
    """CPython's default thresholds and no node holding them, for the test (a node another
    test left open must not decide what these see); what was there before, put back."""
    was = gc.get_threshold()
    state = (collector._holders, collector._found, collector._set)
    collector._holders, collector._found, collector._set = 0, None, None
    gc.set_threshold(700, 10, 10)
    try:
        yield gc.get_threshold()
    finally:
        collector._holders, collector._found, collector._set = state
        gc.set_threshold(*was)


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not was:
            gc.disable()


def _node() -> Node:
    replica = Replica(ReplicaConfig(n=1, anti_entropy_interval=None), "A")
    node = Node(replica, GatedStore(), lambda peer, msg: True)
    node.start()
    return node


def _noting(seen: list[bool]) -> Any:
    def fn(counter: Any) -> Any:
        seen.append(gc.isenabled())
        return counter.increment("A", 1)

    return fn


@pytest.mark.usefixtures("collector_on")
async def test_a_round_runs_with_the_collector_paused_and_turns_it_back_on() -> None:
    node = _node()
    try:
        seen: list[bool] = []
        await node.write("k", "gcounter", _noting(seen))
        assert seen == [False]  # the mutator ran inside the engine's round
        assert gc.isenabled()
    finally:
        await node.aclose()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
async def test_a_failing_input_still_turns_it_back_on() -> None:
    node = _node()
    try:

        def boom(counter: Any) -> Any:
            raise ValueError("the caller's mutator failed")

        with pytest.raises(ValueError, match="mutator failed"):
            await node.write("k", "gcounter", boom)
        assert gc.isenabled()
        seen: list[bool] = []
        await node.write("k", "gcounter", _noting(seen))
        assert seen == [False] and gc.isenabled()
    finally:
        await node.aclose()


async def test_an_app_that_turned_the_collector_off_finds_it_off() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        node = _node()
        try:
            seen: list[bool] = []
            await node.write("k", "gcounter", _noting(seen))
            assert seen == [False]
            assert not gc.isenabled()  # not turned on behind the app's back
        finally:
            await node.aclose()
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()


async def test_an_open_node_raises_the_young_threshold_and_its_close_puts_it_back() -> None:
    node = _node()
    try:
        assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)
        await node.write("k", "gcounter", lambda c: c.increment("A", 1))
    finally:
        await node.aclose()
    assert gc.get_threshold() == (700, 10, 10)
    await node.aclose()  # a second close releases nothing more
    assert gc.get_threshold() == (700, 10, 10)


async def test_the_last_node_closed_puts_it_back() -> None:
    first, second = _node(), _node()
    await first.aclose()
    assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD  # the second is still open
    await second.aclose()
    assert gc.get_threshold() == (700, 10, 10)


async def test_a_threshold_the_app_set_is_kept() -> None:
    gc.set_threshold(50_000, 20, 20)  # higher than ours: left alone
    node = _node()
    await node.aclose()
    assert gc.get_threshold() == (50_000, 20, 20)

    gc.set_threshold(0, 10, 10)  # automatic collection off: left alone
    node = _node()
    assert gc.get_threshold() == (0, 10, 10)
    await node.aclose()
    assert gc.get_threshold() == (0, 10, 10)

    gc.set_threshold(700, 10, 10)
    node = _node()
    gc.set_threshold(1000, 5, 5)  # the app's own, set while the node is open
    await node.aclose()
    assert gc.get_threshold() == (1000, 5, 5)  # not overwritten at close


async def test_a_close_cancelled_halfway_still_puts_it_back() -> None:
    store = GatedStore()
    replica = Replica(ReplicaConfig(n=1, anti_entropy_interval=None), "A")
    node = Node(replica, store, lambda peer, msg: True)
    node.start()
    assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD
    store.gate.clear()  # the write's commit waits, and the close's drain waits for it
    write = node.write("k", "gcounter", lambda c: c.increment("A", 1))
    closing = asyncio.ensure_future(node.aclose())
    await asyncio.sleep(0.05)
    assert not closing.done()
    closing.cancel()  # (an app's shutdown that gave the close too little time)
    with pytest.raises(asyncio.CancelledError):
        await closing
    try:
        assert gc.get_threshold() == (700, 10, 10)
        await node.aclose()  # closed already: nothing more to give back
        assert gc.get_threshold() == (700, 10, 10)
    finally:  # the cancelled close left the node's tasks running: stop them
        tasks = [t for t in (node._engine_task, node._exec_task) if t is not None]
        for task in tasks:
            task.cancel()
        write.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
