"""A ``Store.open`` that fails lets go of everything it took: threads, connections, the lock.

The open's own refusals (a newer schema, another application's file, a partition count that
differs...) come before it starts the writer's and the reader's threads; what can fail after
them is the system refusing a thread, or the store's construction. Here the OS refuses it
for real, in a child process whose address space has room for only so many thread stacks.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

CHILD = Path(__file__).with_name("threads_child.py")
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0


async def _child_reports(path: Path) -> list[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


@pytest.mark.skipif(sys.platform != "linux", reason="limits the address space (Linux)")
async def test_an_open_cut_short_after_its_threads_started_stops_them_and_frees_the_lock(
    tmp_path: Path,
) -> None:
    *refused, last = await _child_reports(tmp_path / "a.sqlite")
    assert last["opened"] is not None, refused  # with room for every thread, it opens
    # Each open the OS cut short got one thread further; the last had started the writer's
    # thread when the reader's was refused.
    assert refused and "shoal-store-writer" in refused[-1]["started"], refused
    for report in refused:
        assert report["error"] == "can't start new thread"
        assert report["left"] == [], report  # no store thread outlives the failed open
        assert report["reopened"], report  # and the next open in the process is not locked out
