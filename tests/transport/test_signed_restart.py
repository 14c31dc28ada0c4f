"""Signed origins across SIGKILL, with real processes: B's own entries reach A and verify
there, whether B stored them unsealed (written while A was down) or pushed them sealed right
before it was killed.

B runs as a child process (``signed_child.py``) on its SQLite file and is SIGKILLed; it is
reopened in the test process, dialing A (a real peer here, on a port the OS picked). A
refuses any entry of B not covered by a valid seal of B's (it counts a remote error and
closes the link), so A's remote-error counter staying 0 while A's value becomes all of B's
writes means every entry arrived signed and verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from sync.transport.peer import Peer
from tests.transport.conftest import WAIT, eventually, linked, local_value, open_peer

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("signed_child.py")
OFFLINE = 300  # written while A is down: more than two seals' worth (SEAL_MAX is 128)
LINKED = 100  # written while linked, then SIGKILL at once


def _own_log(db: Path, origin: str) -> tuple[int, int]:
    """(entries, sealed entries) of ``origin`` in the log segments of ``db``: a sealed entry
    has a fifth element, the index of its seal in its segment's ``seals``."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT entries FROM log_segments WHERE origin = ?", (origin,))
        entries = [e for (text,) in rows for e in json.loads(text)]
    return len(entries), sum(1 for e in entries if len(e) == 5)


async def _write_then_sigkill(
    tmp_path: Path, db: Path, url: str, count: int, prefix: str, mode: str
) -> str:
    """Run ``signed_child.py`` until it says every write is acknowledged, SIGKILL it at once;
    return the replica id it wrote as."""
    log = tmp_path / f"child-{prefix}.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), url, str(count), prefix, mode],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        said: list[str] = []
        try:
            assert proc.stdout is not None
            for _ in ("ID", "DONE"):
                line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
                said.append(line.strip())
                if not line:
                    break
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    assert [s.split()[0] for s in said if s] == ["ID", "DONE"], (said, log.read_text())
    return said[0].split()[1]


def _errors(*peers: Peer) -> list[int]:
    return [p.node.counters.remote_errors for p in peers]


async def test_own_entries_reach_the_peer_verified_after_sigkill(tmp_path: Path) -> None:
    a_db, b_db = tmp_path / "a.db", tmp_path / "b.db"
    # A and B know each other (A is B's only peer, a home of every key), then both stop.
    a = await open_peer(a_db)
    b = await open_peer(b_db, listen=None, peers=[a.url])
    try:
        await linked(a, b)
        me, gone_url = b.replica_id, a.url
        assert gone_url is not None
    finally:
        await b.aclose()
        await a.aclose()

    # B writes with A down (nothing sent, so nothing sealed), and is killed.
    assert await _write_then_sigkill(tmp_path, b_db, gone_url, OFFLINE, "b", "offline") == me
    assert _own_log(b_db, me) == (OFFLINE, 0)
    want = frozenset(f"b{i}" for i in range(OFFLINE))

    a = await open_peer(a_db)
    try:
        assert a.url is not None
        b = await open_peer(b_db, listen=None, peers=[a.url])
        try:
            assert b.replica_id == me  # the key survived the kill: B can seal its backlog
            await eventually(lambda: local_value(a, "cart") == want, "A has B's backlog", 2 * WAIT)
            assert local_value(b, "cart") == want
            assert _errors(a, b) == [0, 0]
            # As entries (each verified), not as a state transfer (unsigned: no page read).
            assert b.node.counters.pages_read == 0
        finally:
            await b.aclose()

        # B writes while linked to A and is killed as soon as its writes are acknowledged.
        assert await _write_then_sigkill(tmp_path, b_db, a.url, LINKED, "c", "linked") == me
        want |= {f"c{i}" for i in range(LINKED)}
        b = await open_peer(b_db, listen=None, peers=[a.url])
        try:
            assert b.replica_id == me
            await eventually(
                lambda: local_value(a, "cart") == want == local_value(b, "cart"),
                "A and B converged on every write",
                2 * WAIT,
            )
            assert _errors(a, b) == [0, 0]
        finally:
            await b.aclose()
    finally:
        await a.aclose()
