"""The fault proxy and its frame splitter, against a real websocket server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage

from shoal.faults.frames import FrameSplitter
from shoal.faults.proxy import LinkFaults, LinkState, Proxy

WAIT = 10.0


@dataclass
class Sink:
    """A websocket server that records, per connection, every binary message it receives."""

    port: int = 0
    connections: list[list[bytes]] = field(default_factory=list)
    ended: asyncio.Queue[list[bytes]] = field(default_factory=asyncio.Queue)

    async def handler(self, ws: ServerConnection) -> None:
        got: list[bytes] = []
        self.connections.append(got)
        try:
            async for message in ws:
                assert isinstance(message, bytes)
                got.append(message)
        except ConnectionClosed:
            pass
        await self.ended.put(got)


@asynccontextmanager
async def sink_and_proxy(seed: int = 7, **faults: float) -> AsyncIterator[tuple[Sink, Proxy]]:
    sink = Sink()
    async with serve(sink.handler, "127.0.0.1", 0, compression=None) as server:
        sink.port = server.sockets[0].getsockname()[1]
        proxy = Proxy("a->b", seed, ("127.0.0.1", sink.port), LinkFaults(**faults))  # type: ignore[arg-type]
        await proxy.start()
        try:
            yield sink, proxy
        finally:
            await proxy.aclose()


def messages(n: int) -> list[bytes]:
    return [f"m{i}".encode() for i in range(n)]


async def eventually(check: Callable[[], bool]) -> None:
    """Poll ``check`` every 10 ms until it holds; fail after WAIT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def send_all(url: str, items: list[bytes]) -> None:
    async with connect(url, compression=None, open_timeout=WAIT) as ws:
        for item in items:
            await ws.send(item)


async def delivered(url: str, sink: Sink, items: list[bytes]) -> list[bytes]:
    await send_all(url, items)
    return await asyncio.wait_for(sink.ended.get(), WAIT)


async def test_without_faults_every_frame_arrives_in_order() -> None:
    async with sink_and_proxy() as (sink, proxy):
        assert await delivered(proxy.url, sink, messages(50)) == messages(50)
        assert proxy.stats.connections == 1
        assert proxy.stats.data_frames == 50 and proxy.stats.dropped == 0


async def test_drop_everything_but_the_spared_frames() -> None:
    async with sink_and_proxy(drop=1.0, spare_frames=2) as (sink, proxy):
        assert await delivered(proxy.url, sink, messages(10)) == messages(2)
        assert proxy.stats.dropped == 8


async def test_duplicate_sends_each_frame_twice() -> None:
    async with sink_and_proxy(duplicate=1.0, spare_frames=0) as (sink, proxy):
        got = await delivered(proxy.url, sink, messages(4))
        assert got == [m for m in messages(4) for _ in range(2)]


async def test_reorder_swaps_each_pair() -> None:
    async with sink_and_proxy(reorder=1.0, reorder_hold=WAIT, spare_frames=0) as (sink, proxy):
        got = await delivered(proxy.url, sink, messages(6))
        assert got == [b"m1", b"m0", b"m3", b"m2", b"m5", b"m4"]


async def test_corrupt_flips_one_bit_of_each_payload() -> None:
    async with sink_and_proxy(corrupt=1.0, spare_frames=0) as (sink, proxy):
        sent = [b"abcdefgh" * 4] * 5
        got = await delivered(proxy.url, sink, sent)
        assert len(got) == 5
        for before, after in zip(sent, got, strict=True):
            flipped = sum(bin(x ^ y).count("1") for x, y in zip(before, after, strict=True))
            assert flipped == 1


async def test_the_same_seed_makes_the_same_faults() -> None:
    faults = {"drop": 0.3, "duplicate": 0.2, "reorder": 0.2, "reorder_hold": WAIT}

    async def once(seed: int) -> list[bytes]:
        async with sink_and_proxy(seed, spare_frames=0, **faults) as (sink, proxy):
            return await delivered(proxy.url, sink, messages(60))

    first, again, other = await once(3), await once(3), await once(4)
    assert first == again
    assert first != other
    assert first != messages(60)


async def test_cut_closes_links_and_refuses_new_ones_until_heal() -> None:
    async with sink_and_proxy() as (sink, proxy):
        async with connect(proxy.url, compression=None, open_timeout=WAIT) as ws:
            await ws.send(b"before")
            await eventually(lambda: sink.connections[0] == [b"before"])
            proxy.cut()
            assert proxy.state is LinkState.CUT
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT)
        assert await asyncio.wait_for(sink.ended.get(), WAIT) == [b"before"]
        with pytest.raises((InvalidHandshake, InvalidMessage, OSError, EOFError)):
            await send_all(proxy.url, [b"refused"])
        assert proxy.stats.refused == 1
        proxy.heal()
        assert await delivered(proxy.url, sink, [b"after"]) == [b"after"]


async def test_stall_holds_bytes_and_loses_none() -> None:
    async with sink_and_proxy() as (sink, proxy):
        async with connect(proxy.url, compression=None, open_timeout=WAIT) as ws:
            await ws.send(b"first")
            await eventually(lambda: sink.connections[0] == [b"first"])
            proxy.stall()
            read_before = proxy.stats.bytes_received
            for item in messages(3):
                await ws.send(item)
            await eventually(lambda: proxy.stats.bytes_received > read_before)  # read them
            assert sink.connections[0] == [b"first"]  # read, but not forwarded
            proxy.heal()
        got = await asyncio.wait_for(sink.ended.get(), WAIT)
        assert got == [b"first", *messages(3)]


async def test_a_proxy_without_target_refuses() -> None:
    async with sink_and_proxy() as (sink, proxy):
        proxy.retarget(None)
        with pytest.raises((InvalidHandshake, InvalidMessage, OSError, EOFError)):
            await send_all(proxy.url, [b"x"])
        proxy.retarget(("127.0.0.1", sink.port))
        assert await delivered(proxy.url, sink, [b"y"]) == [b"y"]


@pytest.mark.parametrize(
    "bad",
    [{"drop": 1.5}, {"duplicate": -0.1}, {"delay": -1.0}, {"spare_frames": -1}],
)
def test_bad_faults_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LinkFaults(**bad)  # type: ignore[arg-type]


def _frame(opcode: int, payload: bytes, mask: bool) -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 2**16:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    return head + (b"\x01\x02\x03\x04" if mask else b"") + payload


def test_splitter_gives_the_stream_back_in_whole_frames_however_it_is_chunked() -> None:
    rng = random.Random(5)
    frames = [
        _frame(rng.choice([0x1, 0x2, 0x9]), rng.randbytes(rng.choice([0, 5, 200, 70_000])), m)
        for m in (True, False) * 20
    ]
    stream = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"".join(frames)
    for _ in range(20):
        splitter = FrameSplitter()
        units = []
        at = 0
        while at < len(stream):
            step = rng.randint(1, 3000)
            units += splitter.feed(stream[at : at + step])
            at += step
        assert b"".join(u.data for u in units) == stream
        assert [u.data for u in units[1:]] == frames
        assert splitter.flush() == []
