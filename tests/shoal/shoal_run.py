"""Run ``python -m shoal ARGS`` as a real process with this checkout first on its path."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

__all__ = ["ROOT", "checkout_env", "run_shoal"]

ROOT = Path(__file__).resolve().parents[2]


def checkout_env() -> dict[str, str]:
    """This process's environment with this checkout first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH", ""))))
    return env


async def run_shoal(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``shoal ARGS`` (stdout and stderr pipes): its exit status, stdout and stderr; it must
    end within 60 s (else it is killed, and the timeout raised)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shoal",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=checkout_env() if env is None else env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
