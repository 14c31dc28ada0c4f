"""The reported case end to end: two copies of examples/shopping_list.py on one ``.db``.

A shell copy holds the database; a second copy on the same file must exit with the one-line
error naming the first one's PID and save nothing, so that every item the shell saved is
still there afterwards (before the lock, both said "saved here" and, sharing one replica id,
reused each other's dots: one side's items were gone after a reopen).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "shopping_list.py"
TIMEOUT = 30.0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


async def _run(db: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--db",
        str(db),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _expect(proc: asyncio.subprocess.Process, text: str) -> str:
    async def find() -> str:
        assert proc.stdout is not None
        seen = []
        while raw := await proc.stdout.readline():
            seen.append(raw.decode())
            if text in seen[-1]:
                return seen[-1]
        raise AssertionError(f"the shell exited before printing {text!r}: {''.join(seen)}")

    return await asyncio.wait_for(find(), TIMEOUT)


async def _say(proc: asyncio.subprocess.Process, line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line.encode() + b"\n")
    await proc.stdin.drain()


async def test_a_second_copy_on_the_same_db_is_refused_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    db = tmp_path / "groceries.db"
    code, out, err = await _run(db, "add", "milk")
    assert code == 0, err
    shell = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--db",
        str(db),
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "0.5",
        "shell",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=_env(),
    )
    try:
        await _expect(shell, "commands:")
        code, out, err = await _run(db, "add", "eggs")
        assert code != 0 and "saved" not in out
        assert f"database {db} is in use by process {shell.pid} (" in err.strip().splitlines()[-1]
        await _say(shell, "add bread")
        await _expect(shell, "add bread: saved here")
        await _say(shell, "quit")
        await _expect(shell, "stopping")
        assert await asyncio.wait_for(shell.wait(), TIMEOUT) == 0
    finally:
        if shell.returncode is None:
            shell.kill()
            await shell.wait()
    code, out, err = await _run(db, "list")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "bread, milk"
