"""``shoal forget``: authenticate like a peer and ask a running peer to forget a replica for
good (or take it back with ``--undo``), after saying what that would do and asking for
confirmation (the options, output and exit statuses are in :mod:`shoal.cli`).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import ssl
import sys

from shoal.commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    dialled_once,
    fail,
    read_secret,
)

__all__ = ["cmd_forget"]


async def _admin(
    args: argparse.Namespace, secret: bytes, context: ssl.SSLContext | None, *, dry_run: bool
) -> tuple[bool, str]:
    from websockets.asyncio.client import connect

    from sync.transport.auth import AdminRequest, Identity, admin_call

    me = Identity(f"admin-{secrets.token_hex(6)}", args.group, secret)
    request = AdminRequest(
        op="unforget" if args.undo else "forget",
        replica=args.replica_id,
        dry_run=dry_run,
        operator=_operator(),
    )
    wss = args.url.startswith("wss://")
    async with connect(args.url, ssl=context if wss else None, open_timeout=args.timeout) as ws:
        reply = await admin_call(ws, me, request, timeout=args.timeout)
    return reply.ok, reply.detail


def _cause(exc: BaseException) -> str:
    """Why dialling the peer failed, in the words a peer's dialler logs (``wrong secret: the
    listener refused us: ... (close code 1008)``), not websockets' close text."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    from sync.transport.auth import HandshakeError
    from sync.transport.dialstate import classify_dial_error, classify_refusal

    if isinstance(exc, HandshakeError):  # we refused the peer
        state, text = classify_refusal(exc.code, exc.reason, by_us=True)
    elif isinstance(exc, ConnectionClosed):  # the peer refused us
        code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
        state, text = classify_refusal(code, reason, by_us=False)
    elif isinstance(exc, OSError | InvalidHandshake | TimeoutError):
        state, text = classify_dial_error(exc)
    else:
        return str(exc) or type(exc).__name__
    return f"{state.label}: {text}"


def _operator() -> str:
    """Who runs this command (for the peer's log): user@host."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:256]


def _confirmed(args: argparse.Namespace, what: str) -> bool | None:
    """The operator's answer to ``what`` (True with --yes); None: no terminal to ask on."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        return None
    answer = input(f"{what}\n{'Take it back' if args.undo else 'Forget it'}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def cmd_forget(args: argparse.Namespace) -> int:
    from websockets.exceptions import WebSocketException

    from sync.messages import REPLICA_ID_PATTERN, is_replica_id
    from sync.transport.auth import HandshakeError

    refused, context = dialled_once(args, "forget")
    if refused is not None:
        return refused
    if not is_replica_id(args.replica_id):
        return fail(
            f"forget: not a replica id: {args.replica_id[:80]!r} (one is {REPLICA_ID_PATTERN})",
            EXIT_USAGE,
        )
    try:
        secret = read_secret(args.secret_file)
    except ValueError as exc:
        return fail(f"forget: {exc}", EXIT_USAGE)
    try:
        ok, detail = asyncio.run(_admin(args, secret, context, dry_run=True))
        if not ok:
            return fail(f"forget: {args.url}: {detail}")
        answer = _confirmed(args, f"{args.url}: {detail}")
        if answer is None:
            return fail(
                f"forget: {args.url}: {detail.rstrip('.')}. Not a terminal: pass --yes to confirm",
                EXIT_USAGE,
            )
        if not answer:
            print("nothing done")
            return EXIT_FAILED
        ok, detail = asyncio.run(_admin(args, secret, context, dry_run=False))
    except (HandshakeError, WebSocketException, OSError, TimeoutError) as exc:
        return fail(f"forget: {args.url}: {_cause(exc)}")
    if not ok:
        return fail(f"forget: {args.url}: {detail}")
    print(detail)
    return EXIT_OK
