"""Writes acknowledged after a compaction emptied the delta log, then SIGKILL: the next open
holds every one of them.

Objects are checkpointed now and then, the log holds the rest, and the open folds the log
stored since the last clean close (``meta.log_folded``, a segment id) into the objects. On
SQLite a new segment takes the rowid after the largest one left, so once a compaction had
deleted the segments at the top of the log, the next ones took ids at or below the mark, and
the fold after a crash skipped them (the counter read 10 here, not 15).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.transport.conftest import open_peer

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("compact_child.py")


async def _run_child(path: Path) -> str:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert line, proc.stderr.read() if proc.stderr else "no output"
    return line.strip()


async def test_writes_acknowledged_after_a_compaction_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "lone.db"
    peer = await open_peer(path, listen=None, anti_entropy_interval=0)
    try:
        for _ in range(10):  # ten segments, folded into the objects by the clean close
            await peer.gcounter("c").increment()
        await peer.gcounter("d").increment()
    finally:
        await peer.aclose()
    assert await _run_child(path) == "ACK"
    peer = await open_peer(path, listen=None, cache_bytes=2048, anti_entropy_interval=0)
    try:
        assert await peer.gcounter("c").value() == 15
        assert await peer.gcounter("d").value() == 1
    finally:
        await peer.aclose()
