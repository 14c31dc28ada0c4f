"""A delete, then SIGKILL: the listings after it (``shoal inspect`` of the crashed database,
``Peer.keys`` once reopened) agree with what was acknowledged.

A child process (``live_child.py``) opens a database holding ``a``, ``b``, ``c`` (all
checkpointed live) and deletes ``b``; it is killed before the delete commits, after it
commits only to the log (the store's row of ``b`` still says live: the fold at the next open
corrects it, and ``inspect`` folds the tail in memory), or after ``b`` was evicted with a
checkpoint that says deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shoal import cli
from store import database_url
from tests.transport.conftest import open_peer
from tests.transport.test_keys_live import NewDatabase, listed, new_db

__all__ = ["new_db"]

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("live_child.py")
FILLERS = [f"f{i:02d}" for i in range(40)]


async def _live_flag(url: str, key: str) -> bool | None:
    engine = create_async_engine(database_url(url))
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(text("SELECT live FROM objects WHERE key = :k"), {"k": key})
            ).all()
    finally:
        await engine.dispose()
    return None if not rows else any(bool(r[0]) for r in rows)


def _cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


async def _run_child(url: str, mode: str) -> str:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), url, mode],
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


@pytest.mark.parametrize(
    ("mode", "said", "flag_at_kill"),
    [("uncommitted", "COMMITTING", True), ("logged", "ACK", True), ("evicted", "ACK", False)],
)
async def test_a_delete_then_sigkill_then_the_listings(
    new_db: NewDatabase, mode: str, said: str, flag_at_kill: bool
) -> None:
    url = await new_db("x")
    peer = await open_peer(url, listen=None)
    try:
        for key in ("a", "b", "c"):
            await peer.orset(key).add("x")
    finally:
        await peer.aclose()
    assert await _run_child(url, mode) == said
    deleted = mode != "uncommitted"  # acknowledged (or further): it must hold
    want = ["a", "c"] if deleted else ["a", "b", "c"]
    if mode == "evicted":
        want += FILLERS
    assert await _live_flag(url, "b") is flag_at_kill  # where the child was killed

    # inspect reads the crashed database as it is (nothing folded, nothing written).
    code, out, err = await asyncio.to_thread(_cli, ["inspect", "--db", url, "--keys"])
    assert code == 0, err
    assert out.split() == want
    assert f"deleted keys (not listed): {int(deleted)}" in err
    code, out, err = await asyncio.to_thread(_cli, ["inspect", "--db", url, "--json"])
    assert code == 0, err
    report = json.loads(out)
    assert [o["key"] for o in report["objects"]] == want
    assert report["deleted"] == int(deleted)
    assert await _live_flag(url, "b") is flag_at_kill

    peer = await open_peer(url, listen=None)
    try:
        assert await listed(peer) == want
        assert await peer.orset("b").value() == (frozenset() if deleted else frozenset({"x"}))
    finally:
        await peer.aclose()
    assert await _live_flag(url, "b") is not deleted  # the fold (or the checkpoint) set it
