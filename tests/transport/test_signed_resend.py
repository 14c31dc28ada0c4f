"""Stored seals re-sent after a restart: B's own entries, sealed in the drain that wrote them
(B was linked to A then) and stored with their seals in B's log segments, reach a third peer
C that never had them, from B's store, and verify there.

Real peers on real SQLite files, on ports the OS picked. B writes while linked to A and
stops (a clean close, or SIGKILL of a child process running B); A closes too; B reopens
linked only to a new peer C, so anti-entropy must read B's entries, seals included, back
from its store and send them. C refuses any entry of B not covered by a valid seal of B's
(it counts a remote error and closes the link), so C's remote-error counter staying 0 while
C's value becomes all of B's writes means every entry arrived signed and verified; B
reading no page (no state transfer) and C storing, for each entry, the very seal B's file
holds for it, mean they went as entries with their stored seals.

B writes in two bursts (200 then 50), each in one drain: the first is stored as one segment
holding two seals (so each entry's index into its segment's seals matters), and the stored
seals group the entries (128, 72, 50) otherwise than a re-seal of the backlog would (128,
122). Ed25519 is deterministic, a re-seal of the same group gives the same seal: so equal
seals at C cannot come from B re-sealing its entries on the way.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sync.signing import SEAL_MAX
from sync.transport.peer import Peer
from tests.transport.conftest import WAIT, eventually, linked, local_value, open_peer

ROOT = Path(__file__).resolve().parents[2]
BURSTS = (200, 50)  # each written at once: one drain seals it, in seals of SEAL_MAX (128)
WRITES = sum(BURSTS)
QUIET = 600.0  # anti-entropy interval while B writes: no summary, so B compacts nothing

# B as a child process (``python -c CHILD DB PEER_URL QUIET BURST...``): says ``ID <id>``
# once linked to the peer, then per line read on stdin writes the next burst and says
# ``WROTE <count>`` once it is committed; waits for the parent's SIGKILL.
CHILD = """
import asyncio, sys
from tests.transport.conftest import WAIT, open_peer

async def main(path, url, quiet, bursts):
    peer = await open_peer(path, listen=None, peers=[url], anti_entropy_interval=quiet)
    async def linked():
        while not (peer.transport.links and peer.replica.status()["peers_up"]):
            await asyncio.sleep(0.02)
    await asyncio.wait_for(linked(), WAIT)
    print("ID", peer.replica_id, flush=True)
    cart, done = peer.orset("cart"), 0
    for burst in bursts:
        await asyncio.to_thread(sys.stdin.readline)
        await asyncio.gather(*(cart.add(f"b{i}") for i in range(done, done + burst)))
        done += burst
        print("WROTE", done, flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), [int(a) for a in sys.argv[4:]]))
"""


def _own_seals(db: Path, origin: str) -> tuple[dict[int, Any], int]:
    """The seal of each entry of ``origin`` in the log segments of ``db``, by seq (None for
    an unsealed one: a sealed entry has a fifth element, the index of its seal in its
    segment's ``seals``), and how many segments hold more than one seal."""
    out: dict[int, Any] = {}
    mixed = 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT entries, seals FROM log_segments WHERE origin = ? ORDER BY id", (origin,)
        )
        for entries, seals in rows:
            listed = json.loads(seals)
            mixed += len(listed) > 1
            for e in json.loads(entries):
                out.setdefault(e[0], listed[e[4]] if len(e) == 5 else None)
    return out, mixed


def _groups(seals: dict[int, Any]) -> list[list[int]]:
    """The seqs each distinct seal covers, in seq order."""
    by_seal: dict[str, list[int]] = {}
    for seq in sorted(seals):
        by_seal.setdefault(json.dumps(seals[seq]), []).append(seq)
    return sorted(by_seal.values())


def _errors(*peers: Peer) -> list[int]:
    return [p.node.counters.remote_errors for p in peers]


def _upto(count: int) -> frozenset[str]:
    return frozenset(f"b{i}" for i in range(count))


def _has(peer: Peer, count: int) -> Callable[[], bool]:
    """A check: ``peer``'s cart is B's first ``count`` writes."""
    return lambda: local_value(peer, "cart") == _upto(count)


async def _write_then_close(a: Peer, b_db: Path) -> str:
    """B, in this process, writes the bursts linked to A (each until A has it), closes."""
    assert a.url is not None
    b = await open_peer(b_db, listen=None, peers=[a.url], anti_entropy_interval=QUIET)
    try:
        await linked(a, b)
        cart, done = b.orset("cart"), 0
        for burst in BURSTS:
            await asyncio.gather(*(cart.add(f"b{i}") for i in range(done, done + burst)))
            done += burst
            await eventually(_has(a, done), "A has the burst")
        assert _errors(a, b) == [0, 0]
        return b.replica_id
    finally:
        await b.aclose()


async def _write_then_sigkill(tmp_path: Path, a: Peer, b_db: Path) -> str:
    """B, a child process, writes the bursts linked to A (each until A has it), and is
    SIGKILLed at once."""
    assert a.url is not None
    args = [b_db, a.url, QUIET, *BURSTS]
    log = tmp_path / "child.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert proc.stdin is not None and proc.stdout is not None
        said: list[str] = []

        async def hear() -> str:
            assert proc.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            said.append(line.strip())
            assert line, (said, log.read_text())
            return line.split()[1]

        try:
            me = await hear()
            done = 0
            for burst in BURSTS:
                proc.stdin.write("go\n")
                proc.stdin.flush()
                done += burst
                assert await hear() == str(done)
                await eventually(_has(a, done), "A has the burst")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            proc.stdin.close()
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    assert _errors(a) == [0]
    return me


@pytest.mark.parametrize("stop", ["close", "sigkill"])
async def test_stored_seals_reach_a_third_peer_after_restart(tmp_path: Path, stop: str) -> None:
    a_db, b_db, c_db = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    want = _upto(WRITES)

    # B writes while linked to A (each drain pushes its entries, so seals them), then both
    # stop before any anti-entropy round could tell B that A has them all.
    a = await open_peer(a_db, anti_entropy_interval=QUIET)
    try:
        if stop == "close":
            me = await _write_then_close(a, b_db)
        else:
            me = await _write_then_sigkill(tmp_path, a, b_db)
    finally:
        await a.aclose()

    stored, mixed = _own_seals(b_db, me)
    assert sorted(stored) == list(range(1, WRITES + 1))
    assert all(seal is not None for seal in stored.values())  # every entry stored sealed
    assert mixed >= 1  # a segment whose entries name different seals: the indices matter
    seqs = sorted(stored)
    resealed = [seqs[i : i + SEAL_MAX] for i in range(0, len(seqs), SEAL_MAX)]
    assert len(_groups(stored)) > 2
    assert _groups(stored) != resealed

    # C never had B's writes; B, reopened, links to C only (A is down).
    c = await open_peer(c_db)
    try:
        assert c.url is not None
        b = await open_peer(b_db, listen=None, peers=[c.url])
        try:
            assert b.replica_id == me
            await linked(b, c)
            await eventually(
                lambda: local_value(c, "cart") == want or _errors(c) != [0],
                "C has B's writes (or refused one)",
                2 * WAIT,
            )
            assert _errors(b, c) == [0, 0]
            assert local_value(c, "cart") == want == local_value(b, "cart")
            # As entries (each verified), not as a state transfer (unsigned: no page read).
            assert b.node.counters.pages_read == 0
        finally:
            await b.aclose()
    finally:
        await c.aclose()

    # C stored each entry with the seal B stored for it: read back and sent as it was.
    assert _own_seals(c_db, me)[0] == stored
    assert _own_seals(b_db, me)[0] == stored
