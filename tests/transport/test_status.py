"""What the unauthenticated /status endpoint may show: figures, never key names."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from shoal import Peer
from sync.transport.status import public_status


def test_public_status_counts_sibling_keys_instead_of_naming_them() -> None:
    snapshot = {
        "replica_id": "r1",
        "log_size": 3,
        "siblings": {"max": 2, "keys": {"note:alice-diary": 2, "note:bob": 2}},
        "engine": {"log_size": 3, "siblings": {"note:alice-diary": 2, "note:bob": 2}},
    }
    public = public_status(snapshot)
    assert public["siblings"] == {"max": 2, "keys": 2}
    assert public["engine"]["siblings"] == 2
    assert public["log_size"] == 3 and public["engine"]["log_size"] == 3
    assert "alice-diary" not in json.dumps(public)
    # The in-process snapshot is left as it was.
    assert snapshot["siblings"]["keys"] == {"note:alice-diary": 2, "note:bob": 2}


async def test_uptime_counts_on_when_the_wall_clock_is_stepped_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An NTP step of the wall clock an hour back (the machine's clock set right) does not
    make the uptime negative: it is measured on the monotonic clock."""
    async with Peer.open(tmp_path / "p.db") as peer:
        wall = time.time
        monkeypatch.setattr(time, "time", lambda: wall() - 3600.0)
        uptime = (await peer.status())["uptime_s"]
        monkeypatch.undo()
    assert 0 <= uptime < 600
