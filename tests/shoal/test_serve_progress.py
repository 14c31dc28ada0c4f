"""Catch-up progress (issue 10 item 7): ``shoal serve`` on a terminal keeps a progress line of
the catch-up under way on stderr and says when it is done; ``/metrics`` has the amounts left
per source peer. The line's text is :class:`shoal.progress.CatchUpDisplay`'s."""

from __future__ import annotations

import asyncio
import os
import pty
import sys
from pathlib import Path
from typing import Any

import pytest

import crdt
from shoal.progress import CatchUpDisplay
from store import Batch, ObjectRow, Store
from store import default_partition_of as partition_of
from sync.transport.metrics import render_metrics
from sync.transport.status import status_snapshot
from tests.transport.conftest import SECRET, open_peer

ROOT = Path(__file__).resolve().parents[2]
N = 12_000
PARTITIONS = 64


async def _build(path: Path, n: int) -> None:
    """``n`` counters written once by the database's own replica, compacted (objects and
    summaries, no log): a peer that joins gets them by state transfer."""
    async with await Store.open(path, partitions=PARTITIONS) as st:
        origin = st.replica_id
        seqs: dict[int, int] = {}
        for start in range(0, n, 4000):
            rows, touched = [], set()
            for i in range(start, min(n, start + 4000)):
                key = f"c{i:06d}"
                obj = crdt.new("gcounter")
                obj.increment(origin, i + 1)
                rows.append(ObjectRow(key, "gcounter", obj.to_dict()))
                p = partition_of(key, PARTITIONS)
                seqs[p] = seqs.get(p, 0) + 1
                touched.add(p)
            summaries = tuple((p, {"vv": {origin: seqs[p]}, "cloud": []}) for p in sorted(touched))
            await st.apply(Batch(objects=tuple(rows), summaries=summaries))


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_serve_on_a_terminal_shows_its_catch_up_and_when_it_is_done(tmp_path: Path) -> None:
    await _build(tmp_path / "a.db", N)
    a = await open_peer(tmp_path / "a.db")
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET + b"\n")
    env: dict[str, Any] = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    master, slave = pty.openpty()  # stderr of the served peer is a terminal
    assert a.url is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shoal", "serve", "--db", str(tmp_path / "b.db"),
        "--listen", "127.0.0.1:0", "--peer", a.url, "--secret-file", str(secret),
        stdout=asyncio.subprocess.DEVNULL, stderr=slave, stdin=asyncio.subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    os.close(slave)
    seen = bytearray()
    loop = asyncio.get_running_loop()
    got = asyncio.Event()

    def readable() -> None:
        try:
            seen.extend(os.read(master, 65536))
        except OSError:  # the other side closed
            loop.remove_reader(master)
        got.set()

    loop.add_reader(master, readable)
    try:
        deadline = loop.time() + 240
        while b"\rcaught up with" not in seen:  # the line ends (not the INFO log line)
            assert loop.time() < deadline, f"no end of the catch-up shown: {bytes(seen)[-2000:]!r}"
            got.clear()
            with_timeout = asyncio.wait_for(got.wait(), 5)
            try:
                await with_timeout
            except TimeoutError:
                assert proc.returncode is None, f"serve exited: {bytes(seen)[-2000:]!r}"
    finally:
        loop.remove_reader(master)
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        os.close(master)
        await a.aclose()
    text = bytes(seen).decode(errors="replace")
    assert f"catching up from {a.replica_id[:8]}: [" in text, text[-2000:]
    assert "% (" in text and " left, " in text, text[-2000:]
    assert f"\rcaught up with {a.replica_id[:8]}" in text
    async with await Store.open(tmp_path / "b.db", partitions=PARTITIONS) as st:
        held = [await st.get_object(f"c{i:06d}") for i in (0, N // 2, N - 1)]
    assert [crdt.from_dict(row.state).value for row in held if row] == [1, N // 2 + 1, N]


def test_the_display_rewrites_one_line_and_ends_it_once() -> None:
    display = CatchUpDisplay()
    assert display.update({}) == ""  # nothing to catch up: nothing written
    first = display.update(
        {
            "peerAAAAAAAA": {
                "entries": 1000,
                "bytes": 10**6,
                "entries_left": 750,
                "bytes_left": 7.5e5,
            }
        }
    )
    assert first.startswith("\rcatching up from peerAAAA: [#####...............]  25% (750 of")
    assert "0.8 MB" in first and "\n" not in first
    same = {
        "peerAAAAAAAA": {"entries": 1000, "bytes": 10**6, "entries_left": 750, "bytes_left": 7.5e5}
    }
    assert display.update(same) == ""  # unchanged: not written again
    done = display.update({})
    assert done.startswith("\rcaught up with peerAAAA") and done.endswith("\n")
    assert len(done) - 1 >= len(first)  # the longer line before it is blanked out
    assert display.update({}) == ""


async def test_metrics_report_what_is_left_of_each_catch_up(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    try:
        snapshot = status_snapshot(a)
    finally:
        await a.aclose()
    assert snapshot["catching_up"] == {}
    text, _ = render_metrics(snapshot)
    assert "shoal_catchup_entries_left{" not in text
    snapshot["catching_up"] = {
        "src": {
            "entries": 900,
            "bytes": 5000,
            "entries_left": 400,
            "bytes_left": 2000,
            "since": 1.0,
        }
    }
    text, _ = render_metrics(snapshot)
    assert 'shoal_catchup_entries_left{peer="src"} 400.0' in text
    assert 'shoal_catchup_bytes_left{peer="src"} 2000.0' in text
