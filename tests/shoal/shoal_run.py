"""Run a real process of this checkout and collect its output: ``python -m shoal ARGS``, or
any command (an example, the console script, a store test's child process)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

__all__ = ["ROOT", "checkout_env", "run_process", "run_shoal"]

ROOT = Path(__file__).resolve().parents[2]


def checkout_env() -> dict[str, str]:
    """This process's environment with this checkout first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH", ""))))
    return env


async def run_process(
    *argv: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> tuple[int, str, str]:
    """``argv`` run with stdout and stderr pipes (``env``: :func:`checkout_env` if None): its
    exit status, stdout and stderr. It must end within ``timeout`` seconds, else it is
    killed and the timeout raised."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=checkout_env() if env is None else env,
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def run_shoal(
    *args: str, prefix: list[str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    """``shoal ARGS`` (``python -m shoal``; ``prefix``: a command it runs under): see
    :func:`run_process`."""
    return await run_process(*(prefix or []), sys.executable, "-m", "shoal", *args, cwd=cwd)
