"""A writer in its own process: open an embedded peer, make one write, print how it went.

The clock-skew workload needs a writer whose clock is wrong, and libfaketime skews a whole
process, so that writer cannot be one of the harness's in-process clients. This module is
that writer::

    python -m shoal.faults.oneshot --db PATH --peer URL [--peer URL ...] --secret-file PATH
        --group G --n N --w W --key KEY --lww VALUE [--site NAME] [--timeout S]

It opens a peer on ``--db`` dialling every ``--peer``, waits (bounded) until each is linked,
sets the LWW register ``KEY`` to the JSON value ``VALUE`` at level ``--w``, and prints one JSON
line: ``{"acked": bool, "error": str | null, "acked_by": [...], "hinted": [...]}``. Exit code
0 when it could write (acknowledged or not: the line says), 1 when the peer could not link up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .clients import record
from .commands import Peer, TransportConfig

__all__ = ["main", "oneshot"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m shoal.faults.oneshot", description=__doc__)
    p.add_argument("--db", required=True)
    p.add_argument("--peer", action="append", default=[], required=True)
    p.add_argument("--secret-file", required=True)
    p.add_argument("--group", default="default")
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--w", default="1")
    p.add_argument("--site")
    p.add_argument("--key", required=True)
    p.add_argument("--lww", required=True, help="the value to set, as JSON")
    p.add_argument("--timeout", type=float, default=5.0)
    return p


def _level(text: str) -> int | str:
    return int(text) if text.isdigit() else text


async def oneshot(args: argparse.Namespace) -> dict[str, Any] | None:
    """Make the write; its outcome, or None if the peer did not link up in time."""
    secret = Path(args.secret_file).read_bytes().rstrip(b"\r\n")
    peer = await Peer.open(
        args.db,
        peers=args.peer,
        n=args.n,
        secret=secret,
        group=args.group,
        site=args.site,
        transport=TransportConfig(backoff_base=0.05, backoff_cap=0.5, seed=1),
        write_timeout=args.timeout,
    )
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.timeout
        while len(peer.replica.status()["peers_up"]) < len(args.peer):
            if loop.time() > deadline:
                return None
            await asyncio.sleep(0.02)
        value = json.loads(args.lww)
        handle = peer.lww(args.key)
        level = _level(args.w)
        attempt = await record(
            "oneshot",
            args.key,
            "set",
            value,
            lambda: handle.set(value, w=level, timeout=args.timeout),
        )
        return {
            "acked": attempt.acked,
            "error": attempt.error,
            "acked_by": list(attempt.acked_by),
            "hinted": list(attempt.hinted),
        }
    finally:
        await peer.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    outcome = asyncio.run(oneshot(args))
    if outcome is None:
        print(json.dumps({"error": "did not link up with every --peer in time"}))
        return 1
    print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
