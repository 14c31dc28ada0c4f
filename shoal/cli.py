"""``shoal``: the operator's command line (serve, inspect, status, forget, demo, --version).

* ``shoal serve --db PATH --listen HOST:PORT [--peer URL ...] [--n N --w W --r R]
  [--site NAME] [--relay] [--secret-file PATH] [--tls-cert PATH --tls-key PATH]`` runs a
  peer until SIGTERM or SIGINT, then stops cleanly (pending batches committed, links closed
  with 1001, store closed) and exits 0. On start it prints one line to stdout: the URL peers
  dial (``ws://HOST:PORT`` or ``wss://``); logs go to stderr.
* ``shoal inspect --db PATH [KEY] [--json]`` prints keys, types, values, siblings and
  version vectors straight from the database (no peer is started, nothing is written: SQLite
  is opened read-only). The report is :func:`store.report.report_database`'s; this module
  only formats it. A progress bar shows on a terminal for large databases.
* ``shoal status URL [--json]`` reads a running peer's ``/status``.
* ``shoal forget URL REPLICA_ID --secret-file PATH`` authenticates like a peer (the group
  secret is needed) and asks the peer to forget a replica for good.
* ``shoal demo ...`` runs :func:`shoal.demo.main`.
* ``shoal --version`` prints the installed distribution's version.

Colours, tables and progress bars need ``rich`` (the ``cli`` extra); without it every
command prints the same content as plain text.

Exit codes: 0 success, 1 the operation failed (peer unreachable, key not found, refused),
2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import secrets
import signal
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal import __version__
from sync.consistency import LEVELS

if TYPE_CHECKING:
    from store.report import DatabaseReport

__all__ = ["build_parser", "main"]

log = logging.getLogger("shoal.cli")

PROGRESS_THRESHOLD = 2000


def _level(text: str) -> int | str:
    if text.upper() in LEVELS:
        return text.upper()
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a level: use a number or one of {', '.join(LEVELS)}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a level must be >= 1, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal",
        description="shoal: CRDT-first sync for offline-capable apps (SQLite, websockets).",
        epilog="Run 'shoal COMMAND --help' for the options of a command.",
    )
    parser.add_argument(
        "--version", action="version", version=f"shoal {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="run a peer until SIGTERM/SIGINT",
        description="Run a peer: accept peers on --listen, dial every --peer, replicate. "
        "Prints the URL to dial on stdout, then logs to stderr. SIGTERM or SIGINT stops "
        "it cleanly: pending writes are committed and connections closed.",
    )
    serve.add_argument("--db", required=True, help="SQLite file, or a SQLAlchemy URL")
    serve.add_argument(
        "--listen",
        required=True,
        metavar="HOST:PORT",
        help="address to accept peers on "
        "(port 0: the OS picks; the URL printed on start tells which)",
    )
    serve.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="URL",
        help="ws:// or wss:// URL of a peer to dial and keep dialling (repeatable)",
    )
    serve.add_argument("--n", type=_positive, default=3, help="home replicas per key (default 3)")
    serve.add_argument(
        "--w",
        type=_level,
        default=1,
        help="default write level: a number or ONE, QUORUM, ALL, LOCAL_QUORUM (default 1)",
    )
    serve.add_argument("--r", type=_level, default=1, help="default read level (default 1)")
    serve.add_argument("--site", help="this peer's site (for LOCAL_QUORUM)")
    serve.add_argument(
        "--relay",
        action="store_true",
        help="run as a relay: hold hints for offline devices and forward between them",
    )
    serve.add_argument(
        "--secret-file",
        metavar="PATH",
        help="file holding the group secret (required; trailing newline ignored)",
    )
    serve.add_argument("--group", default="default", help="sync group id (default 'default')")
    serve.add_argument(
        "--advertise",
        metavar="URL",
        help="URL other peers should dial to reach this one (default: the listening URL)",
    )
    serve.add_argument(
        "--dial-learned",
        action="store_true",
        help="also dial the addresses of peers learned from other peers",
    )
    serve.add_argument("--tls-cert", metavar="PATH", help="certificate (PEM) to serve wss://")
    serve.add_argument("--tls-key", metavar="PATH", help="private key (PEM) of --tls-cert")
    serve.add_argument("--tls-ca", metavar="PATH", help="CA file to trust when dialling wss://")
    serve.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity on stderr (default INFO)",
    )

    inspect = sub.add_parser(
        "inspect",
        help="print a database's keys, types, values, siblings, version vectors",
        description="Read a database without starting a peer (SQLite is opened read-only).",
    )
    inspect.add_argument("--db", required=True, help="SQLite file, or a SQLAlchemy URL")
    inspect.add_argument("key", nargs="?", help="show only this key (with --keys: a prefix)")
    inspect.add_argument(
        "--keys", action="store_true", help="list the keys only, sorted (paged: any number)"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")

    status = sub.add_parser(
        "status",
        help="ask a running peer for its health",
        description="Connected peers, lag per peer, pending hints, log size of a running peer "
        "(reads its /status endpoint on the websocket port).",
    )
    status.add_argument("url", help="the peer's URL (ws://, wss://, http:// or https://)")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.add_argument("--tls-ca", metavar="PATH", help="CA file to trust for wss:// / https://")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")

    forget = sub.add_parser(
        "forget",
        help="tell a running peer to forget a replica for good",
        description="Authenticate with the group secret and ask the peer at URL to forget "
        "REPLICA_ID: it leaves the ring and compaction stops waiting for it.",
    )
    forget.add_argument("url", help="the peer's ws:// or wss:// URL")
    forget.add_argument("replica_id", help="the replica id to forget")
    forget.add_argument(
        "--secret-file", metavar="PATH", required=True, help="file holding the group secret"
    )
    forget.add_argument("--group", default="default", help="sync group id (default 'default')")
    forget.add_argument("--tls-ca", metavar="PATH", help="CA file to trust for wss://")
    forget.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")

    sub.add_parser(
        "demo",
        help="the shopping-list demo on loopback (see 'shoal demo --help')",
        add_help=False,
    )
    return parser


def _fail(message: str, code: int = 1) -> int:
    print(f"shoal: {message}", file=sys.stderr)
    return code


def _read_secret(path: str | None) -> bytes:
    if not path:
        raise ValueError("a group secret is required: --secret-file PATH")
    try:
        data = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ValueError(f"cannot read --secret-file {path}: {exc.strerror}") from exc
    if not data:
        raise ValueError(f"--secret-file {path} is empty")
    return data


# -- serve -----------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace, secret: bytes) -> int:
    from sync.transport.peer import Peer

    peer = await Peer.open(
        args.db,
        listen=args.listen,
        peers=args.peer,
        n=args.n,
        w=args.w,
        r=args.r,
        secret=secret,
        site=args.site,
        relay=args.relay,
        group=args.group,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        dial_learned=args.dial_learned,
        advertise=args.advertise,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        print(peer.url, flush=True)
        log.info("serving %s as %s (db %s)", peer.url, peer.replica_id, args.db)
        await stop.wait()
        log.info("stopping: committing pending writes, closing connections")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await peer.aclose()
    log.info("stopped cleanly")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        secret = _read_secret(args.secret_file)
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        return asyncio.run(_serve(args, secret))
    except (ValueError, TypeError, OSError, ssl.SSLError) as exc:
        return _fail(f"serve: {exc}")


# -- inspect ---------------------------------------------------------------------------------


def _report_json(report: DatabaseReport) -> dict[str, Any]:
    """The report as ``shoal inspect --json`` prints it."""
    objects = []
    for obj in report.objects:
        entry: dict[str, Any] = {"key": obj.key, "type": obj.kind, "value": obj.value}
        if obj.siblings is not None:
            entry["siblings"] = obj.siblings
        entry["version_vector"] = obj.version_vector
        objects.append(entry)
    return {
        "db": report.db,
        "replica_id": report.replica_id,
        "schema_version": report.schema_version,
        "keys": report.keys,
        "log_size": report.log_size,
        "pending_hints": report.pending_hints,
        "applied": report.applied,
        "peers": [
            {
                "replica_id": p.replica_id,
                "address": p.address,
                "site": p.site,
                "forgotten": p.forgotten,
            }
            for p in report.peers
        ],
        "objects": objects,
    }


def _have_rich() -> bool:
    return importlib.util.find_spec("rich") is not None


class _ProgressBar:
    """A rich progress bar that appears only once the work is large (>= threshold rows).
    Made only when rich is installed (without it, inspect shows no progress)."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_THRESHOLD:
            return
        if self._progress is None:
            from rich.progress import Progress

            self._progress = Progress(transient=True)
            self._progress.start()
            self._task = self._progress.add_task("reading the database", total=total)
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _cmd_inspect(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from store.errors import StoreError
    from store.report import report_database

    if args.keys:
        return _inspect_keys(args)
    tty = sys.stdout.isatty() and not args.json and _have_rich()
    bar = _ProgressBar() if tty else None
    try:
        data = _report_json(report_database(args.db, args.key, bar))
    except (ValueError, SQLAlchemyError, StoreError) as exc:
        return _fail(f"inspect: {exc}")
    finally:
        if bar is not None:
            bar.close()
    if args.key is not None and not data["objects"]:
        return _fail(f"inspect: no key {args.key!r} in {args.db}")
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    if tty:
        _print_inspect_rich(data)
    else:
        _print_inspect_plain(data)
    return 0


def _inspect_keys(args: argparse.Namespace) -> int:
    """``shoal inspect --db DB --keys [PREFIX]``: one key per line (JSON: a list)."""
    from sqlalchemy.exc import SQLAlchemyError

    from store.errors import StoreError
    from store.report import report_keys

    found: list[str] = []

    def emit(page: list[str]) -> None:
        if args.json:
            found.extend(page)
        else:
            sys.stdout.write("".join(f"{k}\n" for k in page))

    try:
        report_keys(args.db, args.key, emit)
    except (ValueError, SQLAlchemyError, StoreError) as exc:
        return _fail(f"inspect: {exc}")
    if args.json:
        print(json.dumps(found))
    return 0


def _short(value: Any, width: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_inspect_plain(data: dict[str, Any]) -> None:
    print(f"database {data['db']}  replica {data['replica_id']}  schema v{data['schema_version']}")
    print(
        f"keys {data['keys']}  log {data['log_size']}  hints {data['pending_hints']}  "
        f"writes held per origin {_short(data['applied'], 200)}"
    )
    for obj in data["objects"]:
        sib = f"  siblings={obj['siblings']}" if obj.get("siblings", 0) > 1 else ""
        print(
            f"{obj['key']}\t{obj['type']}\t{_short(obj['value'])}{sib}\t"
            f"vv={_short(obj['version_vector'], 120)}"
        )


def _print_inspect_rich(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{data['db']}[/]  replica [cyan]{data['replica_id']}[/]  "
        f"schema v{data['schema_version']}  keys {data['keys']}  log {data['log_size']}  "
        f"hints {data['pending_hints']}"
    )
    table = Table("key", "type", "value", "siblings", "version vector")
    for obj in data["objects"]:
        sib = obj.get("siblings")
        table.add_row(
            obj["key"],
            obj["type"],
            _short(obj["value"]),
            f"[yellow]{sib}[/]" if sib and sib > 1 else "",
            _short(obj["version_vector"], 60),
        )
    console.print(table)


# -- status ----------------------------------------------------------------------------------


def _http_base(url: str) -> str:
    for ws, http in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(ws):
            return http + url[len(ws) :].rstrip("/")
    if url.startswith(("http://", "https://")):
        return url.rstrip("/")
    raise ValueError(f"not a peer URL: {url!r} (ws://, wss://, http:// or https://)")


def _cmd_status(args: argparse.Namespace) -> int:
    try:
        base = _http_base(args.url)
    except ValueError as exc:
        return _fail(str(exc), 2)
    context = ssl.create_default_context(cafile=args.tls_ca) if base.startswith("https") else None
    try:
        with urllib.request.urlopen(base + "/status", timeout=args.timeout, context=context) as r:
            body = r.read().decode()
        data = json.loads(body)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return _fail(f"status: cannot read {base}/status: {exc}")
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print(
        f"peer {data.get('replica_id')} at {data.get('url')}  group {data.get('group')}  "
        f"site {data.get('site')}  relay {data.get('relay')}"
    )
    print(
        f"log size {data.get('log_size')}  keys {data.get('keys')}  "
        f"pending hints {data.get('pending_hints')}  connected {len(data.get('connected', []))}"
    )
    for rid, p in sorted(data.get("peers", {}).items()):
        state = "up" if p.get("connected") else "down"
        print(
            f"  {rid}  {state:4}  lag {p.get('lag')}  hints {p.get('pending_hints')}  "
            f"in {p.get('bytes_in')} B  out {p.get('bytes_out')} B  {p.get('address') or ''}"
        )
    return 0


# -- forget ----------------------------------------------------------------------------------


async def _forget(args: argparse.Namespace, secret: bytes) -> tuple[bool, str]:
    from websockets.asyncio.client import connect

    from sync.transport.auth import (
        AdminReply,
        AdminRequest,
        Identity,
        client_handshake,
        decode_frame,
    )
    from sync.transport.auth import encode_frame as encode

    context = ssl.create_default_context(cafile=args.tls_ca) if args.url.startswith("wss") else None
    me = Identity(f"admin-{secrets.token_hex(6)}", args.group, secret)
    async with connect(args.url, ssl=context, open_timeout=args.timeout) as ws:
        await client_handshake(ws, me, role="admin", timeout=args.timeout)
        await ws.send(encode(AdminRequest(op="forget", replica=args.replica_id)))
        reply = decode_frame(await asyncio.wait_for(ws.recv(), args.timeout))
    if not isinstance(reply, AdminReply):
        return False, f"unexpected answer {reply.t!r}"
    return reply.ok, reply.detail


def _cmd_forget(args: argparse.Namespace) -> int:
    from websockets.exceptions import InvalidURI, WebSocketException

    from sync.transport.auth import HandshakeError

    try:
        secret = _read_secret(args.secret_file)
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        ok, detail = asyncio.run(_forget(args, secret))
    except InvalidURI:
        return _fail(f"forget: not a ws:// or wss:// URL: {args.url!r}", 2)
    except (HandshakeError, WebSocketException, OSError, TimeoutError) as exc:
        return _fail(f"forget: {exc}")
    print(detail)
    return 0 if ok else 1


# -- demo ------------------------------------------------------------------------------------


def _cmd_demo(argv: list[str]) -> int:
    try:
        from shoal import demo
    except ImportError as exc:
        return _fail(f"demo is not available in this installation ({exc})", 2)
    result = demo.main(argv)
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shoal`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "demo":
        return _cmd_demo(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _cmd_serve,
        "inspect": _cmd_inspect,
        "status": _cmd_status,
        "forget": _cmd_forget,
    }
    with contextlib.suppress(BrokenPipeError):
        return handlers[args.command](args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
