"""``shoal``: the operator's command line (serve, inspect, status, forget, demo, --version).

* ``shoal serve --db PATH --listen HOST:PORT [--peer URL ...] [--n N --w W --r R]
  [--site NAME] [--relay] --secret-file PATH [--tls-cert PATH --tls-key PATH]
  [--status on|off|token --http-token-file PATH] [--client-api HOST:PORT
  --client-token-file PATH]`` runs a peer until SIGTERM or SIGINT (on a terminal, stderr
  keeps a progress line of catch-ups under way: :mod:`shoal.progress`),
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
  is opened read-only). The report is :func:`store.report.report_database`'s;
  :mod:`shoal.commands.inspect` only formats it. A progress bar shows on a terminal for large
  databases. Deleted objects are left out and counted (``deleted N``; JSON ``"deleted"``); a
  ``KEY`` that was deleted exits 1 saying so. Keys holding live objects of several types are
  named on a ``kind clashes`` line (JSON ``"kind_clashes"``). ``--keys [PREFIX]`` lists the
  keys only, one a line (JSON: a list), and says on stderr how many deleted keys it left out.
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

This module holds the parser, the exit statuses' contract and the entry point; each
command's implementation is a module of :mod:`shoal.commands` (``serve``, ``inspect``,
``status``, ``forget``).

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
import contextlib
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from shoal import __version__
from shoal.commands.common import EXIT_USAGE, describe, fail
from shoal.commands.forget import cmd_forget
from shoal.commands.inspect import cmd_inspect
from shoal.commands.serve import cmd_serve
from shoal.commands.status import cmd_status
from sync.consistency import LEVELS

__all__ = ["build_parser", "main"]

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


def _seconds(text: str) -> float:
    """A time limit: a finite number of seconds above 0 (``inf`` would overflow the clock,
    ``nan`` compares false with every deadline)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds above 0")
    return value


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: an option it does not know is its own usage error. (argparse
    hands a command's unknown options up to the top-level parser, whose error printed
    ``usage: shoal [-h] [--version] [--debug] COMMAND ...`` for ``shoal serve --lissten``.)
    The exit status is argparse's, 2, as for every usage error. (The ignore: typeshed
    overloads ``parse_known_args``.)"""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


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
    common = _CommandParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print tracebacks too"
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser
    )

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
        required=True,  # (the only way to give a peer the group secret)
        help="file holding the group secret (trailing newline ignored)",
    )
    serve.add_argument("--group", default="default", help="sync group id (default 'default')")
    serve.add_argument(
        "--advertise",
        metavar="URL",
        help="URL other peers should dial to reach this one (default: the listening URL)",
    )
    serve.add_argument(
        "--max-connections",
        type=_positive,
        default=None,
        metavar="N",
        help="inbound connections accepted at once, authenticated or not (default 512); a "
        "relay holds one per connected device, so raise it for more devices",
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
    status.add_argument("--timeout", type=_seconds, default=5.0, help="seconds (default 5)")
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
    forget.add_argument("--timeout", type=_seconds, default=10.0, help="seconds (default 10)")

    sub.add_parser(
        "demo",
        help="the shopping-list demo on loopback (see 'shoal demo --help')",
        add_help=False,
    )
    return parser


# -- demo ------------------------------------------------------------------------------------


def _cmd_demo(argv: list[str]) -> int:
    try:
        from shoal import demo
    except ImportError as exc:
        return fail(f"demo is not available in this installation ({exc})", EXIT_USAGE)
    keep = demo.parse_args(argv).keep  # (--help and bad options exit here, as in demo.main)
    if keep is not None:
        why = _keep_folder_problem(keep)
        if why is not None:
            return fail(f"demo: --keep {keep}: {why}", EXIT_USAGE)
    result = demo.main(argv)
    return int(result or 0)


def _keep_folder_problem(folder: Path) -> str | None:
    """Why ``demo --keep FOLDER`` cannot be had: a new folder that cannot be made (under a
    file, on a read-only disk), one that cannot be listed; None otherwise. The demo makes
    the folder and refuses one that is not empty or not a folder itself."""
    try:
        if folder.is_dir():
            next(folder.iterdir(), None)
        elif not folder.exists() and not folder.is_symlink():
            folder.mkdir(parents=True)
    except OSError as exc:
        return f"cannot make the folder: {exc.strerror or describe(exc)}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shoal`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = next((i for i, a in enumerate(args_list) if a != "--debug"), len(args_list))
    if first < len(args_list) and args_list[first] == "demo":
        # The demo parses its own options; --debug, before or after it, as for the others.
        return _cmd_demo([a for a in args_list[first + 1 :] if a != "--debug"])
    parser = build_parser()
    args = parser.parse_args(args_list)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": cmd_serve,
        "inspect": cmd_inspect,
        "status": cmd_status,
        "forget": cmd_forget,
    }
    with contextlib.suppress(BrokenPipeError):
        return handlers[args.command](args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
