"""``shoal serve``: run a peer until SIGTERM or SIGINT, then stop it cleanly (the options,
output and exit statuses are in :mod:`shoal.cli`).

Checks the addresses, levels, secret, token files and ``--client-api`` before anything
opens (exit 2) and loads the TLS files (exit 1 for one that cannot be loaded), raises its
soft limit of open files to the hard one (a relay holds a file descriptor per connected
device), prints the URL to dial, keeps a catch-up progress line on a terminal's stderr, and
exits 3 when the store refused a commit (fail-stop).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable
from typing import Any

from shoal.commands.common import (
    EXIT_FAIL_STOP,
    EXIT_OK,
    EXIT_USAGE,
    about_db,
    describe,
    error,
    fail,
    read_secret,
)
from sync.config import ReplicaConfig
from sync.transport.addresses import check_peer_url, parse_listen

__all__ = ["cmd_serve"]

# The logger keeps the name it had when the whole command line was shoal/cli.py: operators'
# log filters and the lines they read name it.
log = logging.getLogger("shoal.cli")


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
    except ImportError as exc:  # it names the extra
        raise ValueError(f"--client-api: {exc}") from exc
    return host.strip("[]"), int(port), read_token_file(args.client_token_file)


async def _serve(
    args: argparse.Namespace,
    secret: bytes,
    http: bool | bytes,
    client_api: tuple[str, int, str] | None = None,
) -> int:
    from sync.transport.addresses import bind_listen

    # The client API's address is had first, as the peer's own: a busy port fails the
    # command before the database is opened (or made).
    api_sockets = None if client_api is None else await bind_listen(*client_api[:2])
    # A stop asked for while the database opens (a supervisor's SIGTERM, Ctrl-C) cancels the
    # open, which gives back what it took (an interrupted first start's empty file is a new
    # database: store.lock), and stops cleanly: before, it killed the process where it stood
    # (exit 143, or a KeyboardInterrupt traceback).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        peer = await _open_unless_stopped(_open_peer(args, secret, http), stop)
    except BaseException:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for sock in api_sockets or ():
            sock.close()
        raise
    if peer is None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for sock in api_sockets or ():
            sock.close()
        log.info("stopped while the database opened: it was not served")
        return EXIT_OK
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(peer.wait_failed())]
    api: Any = None
    progress: asyncio.Future[None] | None = None
    try:
        if client_api is not None:
            from shoal.web import serve_client_api

            api = await serve_client_api(peer, *client_api, sockets=api_sockets)
            api_sockets = None  # the API's now
        _freeze_startup()
        print(peer.url, flush=True)
        log.info("serving %s as %s (db %s)", peer.url, peer.replica_id, args.db)
        if sys.stderr.isatty():
            progress = asyncio.ensure_future(_show_catch_up(peer))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if peer.failure is None:
            log.info("stopping: committing pending writes, closing connections")
    finally:
        for task in waits:
            task.cancel()
        if progress is not None:
            progress.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for sock in api_sockets or ():  # (the API did not start)
            sock.close()
        if api is not None:
            await api.aclose()
        await peer.aclose()
    if peer.failure is not None:
        cause = peer.failure.__cause__ or peer.failure
        return fail(
            f"serve: stopped serving: the store refused a commit to {args.db} "
            f"({describe(cause)}); exit status {EXIT_FAIL_STOP}: fix the disk and restart "
            "it (it resumes from what is on disk)",
            EXIT_FAIL_STOP,
        )
    log.info("stopped cleanly")
    return EXIT_OK


async def _open_unless_stopped(opening: Awaitable[Any], stop: asyncio.Event) -> Any:
    """The peer ``opening`` gives, or None if ``stop`` is set first (the open cancelled and
    what it took given back; a peer it gave meanwhile closed)."""
    task = asyncio.ensure_future(opening)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not stop.is_set():
        return task.result()
    task.cancel()
    try:
        peer = await task
    except asyncio.CancelledError:
        return None
    await peer.aclose()  # (it had opened: the stop came with its last step)
    return None


async def _open_peer(args: argparse.Namespace, secret: bytes, http: bool | bytes) -> Any:
    from sync.transport.connection import TransportConfig
    from sync.transport.peer import Peer

    transport = None
    if args.max_connections is not None:
        transport = TransportConfig(max_connections=args.max_connections)
    return await Peer.open(
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
        transport=transport,
    )


def _freeze_startup() -> None:
    """Move what startup made (modules, classes, the store's metadata: objects this process
    keeps until it exits) out of the garbage collector's sight. Every full collection walks
    all tracked objects, and these are most of them: frozen, they cost a busy peer's full
    collections nothing (about a tenth of its CPU in ``benchmarks/profile_e2e.py
    --collector freeze``). A server ships its collector settings, as Cassandra ships its
    JVM's; the library leaves the collector of an app that embeds a peer alone."""
    gc.collect()
    gc.freeze()
    log.info("%d objects of startup frozen for the garbage collector", gc.get_freeze_count())


async def _show_catch_up(peer: Any, every: float = 0.2) -> None:
    """Keep a progress line of the catch-ups under way on stderr (a terminal), until
    cancelled."""
    from shoal.progress import CatchUpDisplay

    display = CatchUpDisplay()
    while True:
        try:
            status = await peer.status()
        except Exception:  # the peer is stopping or failed: serve says so, not this line
            return
        text = display.update(status.get("catching_up", {}))
        if text:
            sys.stderr.write(text)
            sys.stderr.flush()
        await asyncio.sleep(every)


def _serve_usage(args: argparse.Namespace) -> tuple[bytes, bool | bytes]:
    """The secret and the HTTP access of ``serve``; ``ValueError`` for bad usage."""
    parse_listen(args.listen)
    # The levels as Peer.open will check them (w=5 with --n 3, LOCAL_QUORUM without --site):
    # bad usage, as a level argparse refuses is, not a failure to open.
    ReplicaConfig(n=args.n, w=args.w, r=args.r, site=args.site)
    for url in args.peer:
        check_peer_url(url, "--peer")
    if args.advertise is not None:
        check_peer_url(args.advertise, "--advertise")
    secret = read_secret(args.secret_file)
    mode = args.status or ("token" if args.http_token_file else "on")
    if args.http_token_file and mode != "token":
        raise ValueError(f"--http-token-file goes with --status token, not --status {mode}")
    if mode == "token":
        from sync.transport.opening import http_access

        if not args.http_token_file:  # (read_secret would name the group secret)
            raise ValueError("--status token needs a token: --http-token-file PATH")
        token = read_secret(args.http_token_file, "--http-token-file")
        try:
            http_access(token)
        except ValueError as exc:
            raise ValueError(f"--http-token-file {args.http_token_file}: {exc}") from None
        return secret, token
    return secret, mode == "on"


def _check_tls(args: argparse.Namespace) -> None:
    """Load the TLS files as ``Peer.open`` will, so that a mistake names the option:
    ``ValueError`` for a certificate without its key (bad usage), ``OSError`` for a file
    that cannot be loaded (the command fails: docs/operations.md)."""
    from sync.transport.opening import client_ssl_context, server_ssl_context

    server_ssl_context(args.tls_cert, args.tls_key, ("--tls-cert", "--tls-key"))
    client_ssl_context(args.tls_ca, "--tls-ca")


def _quiet_websockets(level: str) -> None:
    """Keep websockets' INFO lines out of the log below DEBUG: it logs "connection open" and
    "connection closed" for every connection, a peer's refused redials included, which
    buried shoal's own lines (a refused peer, a link's state: ``shoal.*``). Its warnings and
    errors stay; at DEBUG it logs everything, credentials redacted
    (:mod:`sync.transport.wslog`). Set here, where the command sets up logging: the library
    leaves an app's logging alone."""
    if level != "DEBUG":
        chosen = logging.getLevelNamesMapping()[level]
        logging.getLogger("websockets").setLevel(max(chosen, logging.WARNING))


def _raise_open_file_limit() -> None:
    """Raise this process's soft limit of open files to its hard limit, as the JVM and Go's
    runtime do for their servers: a relay holds one file descriptor per connected device,
    and the soft limit is often far below the hard one (1024 under systemd, 256 on macOS),
    which made a relay stop accepting devices past a few hundred. An app that embeds a
    peer keeps the limits it chose; the transport refuses connections with HTTP 503 before
    a listener runs out (:mod:`sync.transport.admission`)."""
    try:
        import resource
    except ImportError:  # (not on Windows)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit (macOS reports it) cannot be the soft one: ask for what a
    # process may hold there at most, or keep the soft limit.
    target = hard if hard != resource.RLIM_INFINITY else max(soft, _OPEN_MAX)
    if soft != resource.RLIM_INFINITY and soft >= target:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.info("open file limit kept at %d (raising it to %d failed: %s)", soft, target, exc)
        return
    log.info("open file limit raised from %d to %d", soft, target)


#: The most descriptors asked for when the hard limit is unlimited (macOS' OPEN_MAX).
_OPEN_MAX = 10240


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        secret, http = _serve_usage(args)
        client_api = _client_api_args(args)
        _check_tls(args)
    except ValueError as exc:
        return fail(f"serve: {exc}", EXIT_USAGE)
    except OSError as exc:  # a TLS file that cannot be loaded (ssl.SSLError is an OSError)
        return error(args, exc, f"serve: {describe(exc)}")
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    _quiet_websockets(args.log_level)
    _raise_open_file_limit()
    from sqlalchemy.exc import SQLAlchemyError

    from store import StoreError

    try:
        return asyncio.run(_serve(args, secret, http, client_api))
    except (StoreError, SQLAlchemyError) as exc:
        return error(args, exc, f"serve: {about_db(exc, args.db)}")
    except (OSError, ValueError, TypeError) as exc:  # ssl.SSLError is an OSError
        return error(args, exc, f"serve: {describe(exc)}")
