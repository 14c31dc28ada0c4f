"""Crash safety, for real: a child process writes acknowledged batches; we SIGKILL it at
seeded random moments and reopen the database each time.

After every kill: ``PRAGMA integrity_check`` is ok, every acknowledged log dot is present,
each partition's summary covers exactly the log dots stored for it (1..n, no gap), and each
object's checkpoint equals the number of its log entries (every entry is an increment of 1
written in the same transaction as the checkpoint and the summary).
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
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


def _start(path: Path, seed: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_ready(proc: subprocess.Popen[str], timeout: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            line = proc.stdout.readline()
            if line.strip() == "READY":
                return
            if not line:
                break
    proc.kill()
    _, err = proc.communicate(timeout=10)
    raise AssertionError(f"the child did not get ready: {err[-2000:]}")


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
    assert {k: crdt.from_dict(o.state).value for k, o in loaded.objects.items()} == dict(per_key)
    return len(loaded.log)


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite"
    rng = random.Random(SEED)
    acked: set[tuple[int, int]] = set()
    killed_with_acks = 0
    for round_ in range(KILLS):
        proc = _start(path, rng.randrange(1 << 30))
        try:
            _wait_ready(proc, timeout=30)
            time.sleep(rng.uniform(0.0, 0.25))
            os.kill(proc.pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL, f"round {round_}: child died early: {err}"
        acks = [json.loads(line[4:]) for line in out.splitlines() if line.startswith("ACK ")]
        killed_with_acks += bool(acks)
        for dots in acks:
            acked.update((p, s) for p, s in dots)
        stored = await _check(path, acked)
        assert stored >= len(acked)
    # The kills must land mid-stream, not only before the first write.
    assert killed_with_acks >= KILLS // 2
    assert len(acked) > 0
