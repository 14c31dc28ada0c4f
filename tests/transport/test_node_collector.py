"""The engine's round runs with the cyclic garbage collector paused, and leaves it as it was.

A round (a batch of inputs, a tick, the effects) builds and drops many containers: a
state-transfer piece of a big map parses to hundreds of thousands. With the collector on,
each 700 of them alive at once started a collection, and the full ones walked every object
the process holds (the imports', the map's): about a quarter of a new peer's CPU to take a
map of 100k entries (``benchmarks/README.md``). The engine holds no reference cycles, and a
round never awaits, so the node pauses the collector for the round and the next allocation
after it collects what is due.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from sync.config import ReplicaConfig
from sync.replica import Replica
from sync.transport.node import Node
from tests.transport.test_node import GatedStore

__all__: list[str] = []


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
