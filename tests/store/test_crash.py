"""Crash safety, for real: a child process writes acknowledged batches; we SIGKILL it at
seeded random moments and reopen the database each time.

After every kill: ``PRAGMA integrity_check`` is ok, every acknowledged log dot is present,
each partition's summary covers exactly the log dots stored for it (1..n, no gap), and each
object's checkpoint equals the number of its log entries (every entry is an increment of 1
written in the same transaction as the checkpoint and the summary).

The writers are forked from one pre-imported "zygote" process (``crash_child.py``), so the
kills cost milliseconds, not a Python start-up each.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import crdt
from store import Store

CHILD = Path(__file__).with_name("crash_child.py")
ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
SEED = 20261126


class Zygote:
    """The pre-imported parent of the writers, driven line by line with timeouts."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), "zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.writer = 0
        # A thread feeds lines to a queue: select() on a buffered pipe would miss lines that
        # are already in Python's buffer.
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # ends at EOF
            self.lines.put(line)
        self.lines.put("")

    def readline(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        if not line:
            for pid in (self.proc.pid, self.writer):
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGUSR1)
            time.sleep(1)
            raise AssertionError(f"crash child silent or gone: {self._stderr()}")
        return line.rstrip("\n")

    def start_writer(self, path: Path, seed: int) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"RUN {path} {seed}\n")
        self.proc.stdin.flush()
        first = self.readline(60)
        assert first.startswith("PID "), first
        pid = self.writer = int(first.split()[1])
        ready = self.readline(60)
        assert ready == "READY", f"writer did not get ready: {ready}"
        return pid

    def lines_until_dead(self, pid: int) -> list[str]:
        lines = []
        for _ in range(1_000_000):
            line = self.readline(60)
            if line.startswith(f"DEAD {pid} "):
                if os.WIFEXITED(int(line.split()[2])):
                    raise AssertionError(f"writer {pid} exited by itself: {self._stderr()}")
                status = int(line.split()[2])
                assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
                    f"the writer ended otherwise than by our SIGKILL: {status}"
                )
                return lines
            lines.append(line)
        raise AssertionError("no end")  # pragma: no cover

    def _stderr(self) -> str:
        self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        return str(err[-4000:])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


async def _check(path: Path, acked: set[tuple[int, int]]) -> int:
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    raw.close()
    async with await Store.open(path) as store:
        loaded = await store.load()
    dots = {(e.partition, e.seq) for e in loaded.log}
    assert len(dots) == len(loaded.log)
    missing = acked - dots
    assert not missing, f"acknowledged writes lost: {sorted(missing)[:10]}"
    per_part: dict[int, list[int]] = {}
    for entry in loaded.log:
        per_part.setdefault(entry.partition, []).append(entry.seq)
    assert set(per_part) == set(loaded.summaries)
    for part, seqs in per_part.items():
        assert loaded.summaries[part] == {"vv": {"W": max(seqs)}, "cloud": []}
        assert sorted(seqs) == list(range(1, max(seqs) + 1))
    per_key = Counter(e.key for e in loaded.log)
    assert {o.key: crdt.from_dict(o.state).value for o in loaded.objects.values()} == dict(per_key)
    return len(loaded.log)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite"
    rng = random.Random(SEED)
    acked: set[tuple[int, int]] = set()
    killed_with_acks = 0
    zygote = Zygote()
    try:
        for _ in range(KILLS):
            pid = zygote.start_writer(path, rng.randrange(1 << 30))
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(pid, signal.SIGKILL)
            lines = zygote.lines_until_dead(pid)
            acks = [json.loads(line[4:]) for line in lines if line.startswith("ACK ")]
            killed_with_acks += bool(acks)
            for dots in acks:
                acked.update((p, s) for p, s in dots)
            stored = await _check(path, acked)
            assert stored >= len(acked)
    finally:
        zygote.close()
    # The kills must land mid-stream, not only before the first write.
    assert killed_with_acks >= KILLS // 2
