"""``shoal inspect`` and ``shoal status`` for the checkers, in one long-lived helper process.

A checker reads every served peer's database with ``shoal inspect --db PATH --json`` (SQLite
read-only: it works while the peer runs) and asks running peers ``shoal status URL --json``.
Starting the command line costs about a second of CPU each time, too much to poll a cluster
while it converges, so :class:`Inspector` starts ``python -m shoal.faults.inspect_helper``
once and sends it one command line per request; the helper runs the command line's own entry point
(:func:`shoal.faults.commands.cli_main`) and answers with its exit code and output.

Protocol (one JSON document per line): request ``["inspect", "--db", PATH, "--json"]``, answer
``{"code": 0, "out": "...", "err": "..."}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CLIError", "CLIResult", "Inspector", "child_env"]

_ROOT = Path(__file__).resolve().parents[2]  # the directory that holds the shoal package
_LINE_LIMIT = 256 * 2**20


def child_env() -> dict[str, str]:
    """This process's environment, with the directory holding ``shoal`` first on PYTHONPATH
    (so that ``python -m shoal.faults...`` works in a child from any working directory)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


class CLIError(RuntimeError):
    """A ``shoal`` command the checker needed failed (its exit code and error output)."""

    def __init__(self, argv: list[str], code: int, err: str) -> None:
        super().__init__(f"shoal {' '.join(argv)} exited {code}: {err.strip()}")
        self.argv = argv
        self.code = code
        self.err = err


@dataclass(frozen=True, slots=True)
class CLIResult:
    """What one ``shoal`` command printed, and its exit code."""

    code: int
    out: str
    err: str


class Inspector:
    """The helper process (``async with Inspector() as ins: await ins.inspect(path)``)."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Inspector:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shoal.faults.inspect_helper",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=_LINE_LIMIT,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def run(self, argv: list[str]) -> CLIResult:
        """Run ``shoal ARGV`` in the helper; its result (whatever the exit code)."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RuntimeError("the inspector is not running (use it as 'async with')")
        async with self._lock:
            proc.stdin.write(json.dumps(argv).encode() + b"\n")
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), self.timeout)
        if not line:
            raise RuntimeError(f"the inspector exited (code {proc.returncode})")
        answer = json.loads(line)
        return CLIResult(int(answer["code"]), str(answer["out"]), str(answer["err"]))

    async def json(self, argv: list[str]) -> Any:
        """Run ``shoal ARGV`` (a ``--json`` command) and decode what it printed; CLIError if
        it failed."""
        result = await self.run(argv)
        if result.code != 0:
            raise CLIError(argv, result.code, result.err)
        return json.loads(result.out)

    async def inspect(self, db: str | Path, key: str | None = None) -> dict[str, Any]:
        """``shoal inspect --db DB [KEY] --json``."""
        argv = ["inspect", "--db", str(db), "--json"]
        if key is not None:
            argv.insert(3, key)
        data = await self.json(argv)
        assert isinstance(data, dict)
        return data

    async def status(self, url: str, timeout: float = 5.0) -> dict[str, Any]:
        """``shoal status URL --json``."""
        data = await self.json(["status", url, "--json", "--timeout", str(timeout)])
        assert isinstance(data, dict)
        return data
