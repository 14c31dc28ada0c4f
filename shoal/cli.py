"""``shoal``: the operator's command line (serve, inspect, status, forget, demo, --version).

* ``shoal serve --db PATH --listen HOST:PORT [--peer URL ...] [--n N --w W --r R]
  [--site NAME] [--relay] [--secret-file PATH] [--tls-cert PATH --tls-key PATH]
  [--status on|off|token --http-token-file PATH] [--client-api HOST:PORT
  --client-token-file PATH]`` runs a peer until SIGTERM or SIGINT,
  then stops cleanly (pending batches committed, links closed with 1001, store closed) and
  exits 0. On start it prints one line to stdout: the URL peers dial (``ws://HOST:PORT`` or
  ``wss://``); logs go to stderr, with one WARNING each time a ``--peer`` changes state
  (unreachable, wrong secret, TLS failed, ...). If the store refuses a commit (disk full,
  database gone) the peer stops serving (fail-stop) and the process exits at once with
  status 3 and one line saying why, so that a supervisor restarts it once the cause is
  fixed. ``--status`` and ``--http-token-file`` choose who may read ``GET /status`` and
  ``GET /metrics`` on the port (anyone, nobody, holders of the token).
  ``--client-api`` also serves the client API (:mod:`shoal.web`, the ``web`` extra) there,
  logging its URL.
* ``shoal inspect --db PATH [KEY] [--json]`` prints keys, types, values, siblings and
  version vectors straight from the database (no peer is started, nothing is written: SQLite
  is opened read-only). The report is :func:`store.report.report_database`'s; this module
  only formats it. A progress bar shows on a terminal for large databases. Deleted objects
  are left out and counted (``deleted N``; JSON ``"deleted"``); a ``KEY`` that was deleted
  exits 1 saying so. Keys holding live objects of several types are named on a ``kind
  clashes`` line (JSON ``"kind_clashes"``). ``--keys [PREFIX]`` lists the keys only, one a
  line (JSON: a list), and says on stderr how many deleted keys it left out.
* ``shoal status URL [--json] [--http-token-file PATH]`` reads a running peer's
  ``/status``: its peers, and each ``--peer`` it dials with its state and last error.
* ``shoal forget URL REPLICA_ID --secret-file PATH [--undo] [--yes]`` authenticates like a
  peer (the group secret is needed) and asks the peer at URL to forget a replica for good,
  on that peer (run it on each peer: no peer tells another). It first asks the peer what
  that would do, refusing an id it does not know, prints it, and asks for confirmation on a
  terminal (``--yes`` for scripts; without a terminal and without ``--yes`` it refuses,
  exit 2). ``--undo`` takes a forgotten replica back.
* ``shoal serve ... --no-home`` runs a replica that takes no share of the ring (``--home``,
  the default, does).
* ``shoal demo ...`` runs :func:`shoal.demo.main`.
* ``shoal --version`` prints the installed distribution's version.

Every command names a database the same ways (a path, ``sqlite:///PATH``,
``sqlite+aiosqlite:///PATH``, ``postgresql://...``, ``postgresql+asyncpg://...``: see
:func:`store.database_url`). A mistake (a missing or read-only directory, a file that is not
a shoal database, an empty file, a database another process holds, a port in use, a bad URL
or port) prints one line, ``shoal: COMMAND: ...`` naming the path or address and the cause,
and no traceback unless ``--debug`` is given (before or after the command).

Colours, tables and progress bars need ``rich`` (the ``cli`` extra); without it every
command prints the same content as plain text.

Exit codes (also in ``shoal --help``):

* 0: success (``serve``: stopped by SIGTERM or SIGINT, cleanly);
* 1: the operation failed (the database cannot be opened or read, a peer is unreachable, a
  key not found, a refusal);
* 2: bad usage (an unknown option, a bad URL, port or level, no secret);
* 3: ``serve`` stopped serving because the store refused a commit (restart it once the disk
  is fixed: it resumes from what is on disk).
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
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal import __version__
from sync.consistency import LEVELS
from sync.transport.addresses import check_peer_url, parse_listen

if TYPE_CHECKING:
    from store.report import DatabaseReport

__all__ = ["build_parser", "main"]

log = logging.getLogger("shoal.cli")

PROGRESS_THRESHOLD = 2000

#: Exit statuses (the module docstring says when).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FAIL_STOP = 0, 1, 2, 3

EPILOG = """\
exit status: 0 success; 1 the operation failed (database cannot be opened or read, peer
unreachable, key not found, refused); 2 bad usage; 3 serve stopped serving after the store
refused a commit (restart it: it resumes from what is on disk).
A mistake prints one line naming the path or address and the cause; --debug adds the
traceback. Run 'shoal COMMAND --help' for the options of a command."""


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
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"shoal {__version__}", help="print the version"
    )
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error too")
    # --debug is accepted after the command as well (it keeps the value given before).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print tracebacks too"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="run a peer until SIGTERM/SIGINT",
        description="Run a peer: accept peers on --listen, dial every --peer, replicate. "
        "Prints the URL to dial on stdout, then logs to stderr. SIGTERM or SIGINT stops "
        "it cleanly: pending writes are committed and connections closed.",
    )
    serve.add_argument(
        "--db", required=True, help="SQLite file, sqlite:///PATH or postgresql://... URL"
    )
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
        "--home",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="take a share of the ring, as a home of some keys (the default); --no-home for "
        "a short-lived replica that peers leave off the ring",
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
        "--status",
        choices=["on", "off", "token"],
        default=None,
        help="who may read GET /status and /metrics on the port: anyone (on, the default), "
        "nobody (off: 404), or requests with the token of --http-token-file (token)",
    )
    serve.add_argument(
        "--http-token-file",
        metavar="PATH",
        help="file holding the token that GET /status and /metrics require "
        "(Authorization: Bearer TOKEN); implies --status token",
    )
    serve.add_argument(
        "--client-api",
        metavar="HOST:PORT",
        help="also serve the HTTP + websocket client API there (needs --client-token-file "
        "and the 'web' extra; use 127.0.0.1 unless a TLS proxy is in front)",
    )
    serve.add_argument(
        "--client-token-file",
        metavar="PATH",
        help="file holding the client API's token (at least 16 characters)",
    )
    serve.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity on stderr (default INFO)",
    )

    inspect = sub.add_parser(
        "inspect",
        parents=[common],
        help="print a database's keys, types, values, siblings, version vectors",
        description="Read a database without starting a peer (SQLite is opened read-only).",
    )
    inspect.add_argument(
        "--db", required=True, help="SQLite file, sqlite:///PATH or postgresql://... URL"
    )
    inspect.add_argument("key", nargs="?", help="show only this key (with --keys: a prefix)")
    inspect.add_argument(
        "--keys", action="store_true", help="list the keys only, sorted (paged: any number)"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")

    status = sub.add_parser(
        "status",
        parents=[common],
        help="ask a running peer for its health",
        description="Connected peers, lag per peer, pending hints, log size of a running peer "
        "(reads its /status endpoint on the websocket port).",
    )
    status.add_argument("url", help="the peer's URL (ws://, wss://, http:// or https://)")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.add_argument("--tls-ca", metavar="PATH", help="CA file to trust for wss:// / https://")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    status.add_argument(
        "--http-token-file", metavar="PATH", help="file holding the peer's /status token"
    )

    forget = sub.add_parser(
        "forget",
        parents=[common],
        help="tell a running peer to forget a replica for good (or --undo)",
        description="Authenticate with the group secret and ask the peer at URL to forget "
        "REPLICA_ID for good: it leaves that peer's ring, compaction there stops waiting for "
        "it and its links are refused. Only that peer: run it on each peer. It says what it "
        "will do and asks for confirmation on a terminal (--yes for scripts); an id the peer "
        "does not know is refused. --undo takes a forgotten replica back.",
    )
    forget.add_argument("url", help="the peer's ws:// or wss:// URL")
    forget.add_argument("replica_id", help="the replica id to forget")
    forget.add_argument(
        "--undo", action="store_true", help="take REPLICA_ID back (it was forgotten)"
    )
    forget.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (for scripts)"
    )
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


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"shoal: {' '.join(message.split())}", file=sys.stderr)  # one line, always
    return code


def _error(args: argparse.Namespace, exc: BaseException, message: str) -> int:
    """Report ``exc`` as one line (after its traceback with ``--debug``); exit status 1."""
    if getattr(args, "debug", False):
        traceback.print_exception(exc, file=sys.stderr)
    return _fail(message)


def _read_secret(path: str | None, option: str = "--secret-file") -> bytes:
    if not path:
        raise ValueError(f"a group secret is required: {option} PATH")
    try:
        data = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ValueError(f"cannot read {option} {path}: {exc.strerror}") from exc
    if not data:
        raise ValueError(f"{option} {path} is empty")
    return data


def _describe(exc: BaseException) -> str:
    """One line for an error: the database driver's own words, an OSError without its
    ``[Errno N]``."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig)
    if isinstance(exc, OSError) and exc.strerror:
        name = exc.filename
        return f"{exc.strerror}: {name}" if name and str(name) not in exc.strerror else exc.strerror
    return str(exc) or type(exc).__name__


def _about_db(exc: BaseException, db: str) -> str:
    """``exc`` as one line that names the database ``db``."""
    from store import describe_database

    text, name = _describe(exc), describe_database(db)
    return text if name in text or db in text else f"database {name}: {text}"


# -- serve -----------------------------------------------------------------------------------


def _client_api_args(args: argparse.Namespace) -> tuple[str, int, str] | None:
    """``--client-api`` and its token, checked before anything is opened (ValueError)."""
    if args.client_api is None:
        if args.client_token_file is not None:
            raise ValueError("--client-token-file needs --client-api HOST:PORT")
        return None
    host, sep, port = args.client_api.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--client-api must be HOST:PORT, got {args.client_api!r}")
    if args.client_token_file is None:
        raise ValueError("--client-api needs --client-token-file PATH")
    try:
        from shoal.web import read_token_file
    except ImportError as exc:
        raise ValueError(
            f"--client-api needs the web extra (pip install 'shoal[web]'): {exc}"
        ) from exc
    return host.strip("[]"), int(port), read_token_file(args.client_token_file)


async def _serve(
    args: argparse.Namespace,
    secret: bytes,
    http: bool | bytes,
    client_api: tuple[str, int, str] | None = None,
) -> int:
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
        home=args.home,
        group=args.group,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        dial_learned=args.dial_learned,
        advertise=args.advertise,
        http=http,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(peer.wait_failed())]
    api: Any = None
    try:
        if client_api is not None:
            from shoal.web import serve_client_api

            api = await serve_client_api(peer, *client_api)
        print(peer.url, flush=True)
        log.info("serving %s as %s (db %s)", peer.url, peer.replica_id, args.db)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if peer.failure is None:
            log.info("stopping: committing pending writes, closing connections")
    finally:
        for task in waits:
            task.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if api is not None:
            await api.aclose()
        await peer.aclose()
    if peer.failure is not None:
        cause = peer.failure.__cause__ or peer.failure
        return _fail(
            f"serve: stopped serving: the store refused a commit to {args.db} "
            f"({_describe(cause)}); exit status {EXIT_FAIL_STOP}: fix the disk and restart "
            "it (it resumes from what is on disk)",
            EXIT_FAIL_STOP,
        )
    log.info("stopped cleanly")
    return EXIT_OK


def _serve_usage(args: argparse.Namespace) -> tuple[bytes, bool | bytes]:
    """The secret and the HTTP access of ``serve``; ``ValueError`` for bad usage."""
    parse_listen(args.listen)
    for url in args.peer:
        check_peer_url(url, "--peer")
    if args.advertise is not None:
        check_peer_url(args.advertise, "--advertise")
    secret = _read_secret(args.secret_file)
    mode = args.status or ("token" if args.http_token_file else "on")
    if args.http_token_file and mode != "token":
        raise ValueError(f"--http-token-file goes with --status token, not --status {mode}")
    if mode == "token":
        return secret, _read_secret(args.http_token_file, "--http-token-file")
    return secret, mode == "on"


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        secret, http = _serve_usage(args)
        client_api = _client_api_args(args)
    except ValueError as exc:
        return _fail(f"serve: {exc}", EXIT_USAGE)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    from sqlalchemy.exc import SQLAlchemyError

    from store import StoreError

    try:
        return asyncio.run(_serve(args, secret, http, client_api))
    except (StoreError, SQLAlchemyError) as exc:
        return _error(args, exc, f"serve: {_about_db(exc, args.db)}")
    except (OSError, ValueError, TypeError) as exc:  # ssl.SSLError is an OSError
        return _error(args, exc, f"serve: {_describe(exc)}")


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
        "deleted": report.deleted,
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
        "kind_clashes": {key: list(kinds) for key, kinds in report.kind_clashes.items()},
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
    except (ValueError, SQLAlchemyError, StoreError, OSError) as exc:
        return _error(args, exc, f"inspect: {_about_db(exc, args.db)}")
    finally:
        if bar is not None:
            bar.close()
    if args.key is not None and not data["objects"]:
        if data["deleted"]:
            return _fail(f"inspect: key {args.key!r} was deleted (in {args.db})")
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
    """``shoal inspect --db DB --keys [PREFIX]``: one key per line (JSON: a list); the
    count of deleted keys left out goes to stderr, so stdout stays a plain listing."""
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
        listed = report_keys(args.db, args.key, emit)
    except (ValueError, SQLAlchemyError, StoreError) as exc:
        return _fail(f"inspect: {exc}")
    if args.json:
        print(json.dumps(found))
    print(f"deleted keys (not listed): {listed.deleted}", file=sys.stderr)
    return 0


def _short(value: Any, width: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_clashes(data: dict[str, Any], out: Callable[[str], Any]) -> None:
    """One line naming the keys that hold live objects of several types, if any."""
    clashes = data["kind_clashes"]
    if clashes:
        named = ", ".join(f"{key} ({' and '.join(kinds)})" for key, kinds in clashes.items())
        out(f"kind clashes {len(clashes)}: {named}")


def _print_inspect_plain(data: dict[str, Any]) -> None:
    print(f"database {data['db']}  replica {data['replica_id']}  schema v{data['schema_version']}")
    print(
        f"keys {data['keys']}  deleted {data['deleted']}  log {data['log_size']}  "
        f"hints {data['pending_hints']}  writes held per origin {_short(data['applied'], 200)}"
    )
    _print_clashes(data, print)
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
        f"schema v{data['schema_version']}  keys {data['keys']}  deleted {data['deleted']}  "
        f"log {data['log_size']}  hints {data['pending_hints']}"
    )
    _print_clashes(data, console.print)
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


def _read_status(args: argparse.Namespace, base: str) -> dict[str, Any]:
    """GET ``base/status`` (with the token of ``--http-token-file``); ValueError or OSError
    with one line saying why not."""
    request = urllib.request.Request(base + "/status")
    if args.http_token_file:
        token = _read_secret(args.http_token_file, "--http-token-file").decode()
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=args.tls_ca) if base.startswith("https") else None
    try:
        with urllib.request.urlopen(request, timeout=args.timeout, context=context) as r:
            body = r.read().decode()
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise ValueError(
                f"{base}/status needs a token: --http-token-file PATH"
                + (" (the one given was refused)" if args.http_token_file else "")
            ) from exc
        if exc.code == 404:
            raise ValueError(f"{base}/status is turned off on that peer") from exc
        raise ValueError(f"cannot read {base}/status: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        why = _describe(exc.reason) if isinstance(exc.reason, BaseException) else exc.reason
        raise ValueError(f"cannot read {base}/status: {why}") from exc
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot read {base}/status: {_describe(exc)}") from exc
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"{base}/status is not a shoal peer's status (not JSON)") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{base}/status is not a shoal peer's status")
    return data


def _cmd_status(args: argparse.Namespace) -> int:
    try:
        base = _http_base(args.url)
    except ValueError as exc:
        return _fail(f"status: {exc}", EXIT_USAGE)
    try:
        data = _read_status(args, base)
    except ValueError as exc:
        return _error(args, exc, f"status: {exc}")
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return EXIT_OK
    _print_status(data)
    return EXIT_OK


def _print_status(data: dict[str, Any]) -> None:
    print(
        f"peer {data.get('replica_id')} at {data.get('url')}  group {data.get('group')}  "
        f"site {data.get('site')}  relay {data.get('relay')}"
    )
    if data.get("failed"):
        print(f"FAILED: {data['failed']}")
    print(
        f"log size {data.get('log_size')}  keys {data.get('keys')}  "
        f"pending hints {data.get('pending_hints')}  connected {len(data.get('connected', []))}"
    )
    links = data.get("links") or {}
    if links:
        print("dialled peers:")
    for url, link in links.items():
        error = link.get("error") if link.get("state") != "connected" else None
        print(
            f"  {url}  {link.get('state')}"
            + (f"  ({link.get('replica_id')})" if link.get("replica_id") else "")
            + (f"  {error}" if error else "")
        )
    peers = data.get("peers", {})
    if peers:
        print("known peers:")
    for rid, p in sorted(peers.items()):
        state = p.get("state") or ("connected" if p.get("connected") else "disconnected")
        print(
            f"  {rid}  {state}  lag {p.get('lag')}  hints {p.get('pending_hints')}  "
            f"in {p.get('bytes_in')} B  out {p.get('bytes_out')} B  {p.get('address') or ''}"
        )
    for line in _alarm_lines(data):
        print(line)


def _alarm_lines(data: dict[str, Any]) -> list[str]:
    """What ``shoal status`` shows below the peers: the conditions an operator must see."""
    lines = []
    for rid, p in sorted(data.get("peers", {}).items()):
        down = p.get("down_for_s")
        if isinstance(down, int | float):
            lines.append(
                f"WARNING home down: {rid} has not been seen for {down / 86_400:.1f} days; "
                "compaction no longer waits for it. If it is gone for good: shoal forget."
            )
        ahead = p.get("clock_ahead_ms")
        if isinstance(ahead, int | float):
            lines.append(
                f"WARNING clock skew: {rid} stamps its writes {ahead / 1000:.1f} s ahead of this "
                f"peer's clock; {p.get('clock_skew_set_aside')} set aside until this clock "
                f"reaches them. Check {rid}'s clock."
            )
    return lines


# -- forget ----------------------------------------------------------------------------------


async def _admin(args: argparse.Namespace, secret: bytes, *, dry_run: bool) -> tuple[bool, str]:
    from websockets.asyncio.client import connect

    from sync.transport.auth import AdminRequest, Identity, admin_call

    context = ssl.create_default_context(cafile=args.tls_ca) if args.url.startswith("wss") else None
    me = Identity(f"admin-{secrets.token_hex(6)}", args.group, secret)
    request = AdminRequest(
        op="unforget" if args.undo else "forget",
        replica=args.replica_id,
        dry_run=dry_run,
        operator=_operator(),
    )
    async with connect(args.url, ssl=context, open_timeout=args.timeout) as ws:
        reply = await admin_call(ws, me, request, timeout=args.timeout)
    return reply.ok, reply.detail


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


def _cmd_forget(args: argparse.Namespace) -> int:
    from websockets.exceptions import InvalidURI, WebSocketException

    from sync.transport.auth import HandshakeError

    try:
        secret = _read_secret(args.secret_file)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        ok, detail = asyncio.run(_admin(args, secret, dry_run=True))
        if not ok:
            return _fail(f"forget: {args.url}: {detail}")
        answer = _confirmed(args, f"{args.url}: {detail}")
        if answer is None:
            return _fail(
                f"forget: {args.url}: {detail}. Not a terminal: pass --yes to confirm",
                EXIT_USAGE,
            )
        if not answer:
            print("nothing done")
            return EXIT_FAILED
        ok, detail = asyncio.run(_admin(args, secret, dry_run=False))
    except InvalidURI:
        return _fail(f"forget: not a ws:// or wss:// URL: {args.url!r}", EXIT_USAGE)
    except (HandshakeError, WebSocketException, OSError, TimeoutError) as exc:
        return _fail(f"forget: {exc}")
    if not ok:
        return _fail(f"forget: {args.url}: {detail}")
    print(detail)
    return EXIT_OK


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
