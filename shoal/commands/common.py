"""What every ``shoal`` command shares: the exit statuses, the one-line error report (with
the traceback under ``--debug``), one line for an exception, and reading a secret file.

When each exit status is used: :mod:`shoal.cli`.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import traceback
from pathlib import Path

__all__ = [
    "EXIT_FAILED",
    "EXIT_FAIL_STOP",
    "EXIT_OK",
    "EXIT_USAGE",
    "about_db",
    "describe",
    "error",
    "fail",
    "read_secret",
]

#: Exit statuses (the docstring of :mod:`shoal.cli` says when).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FAIL_STOP = 0, 1, 2, 3


def fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"shoal: {' '.join(message.split())}", file=sys.stderr)  # one line, always
    return code


def error(args: argparse.Namespace, exc: BaseException, message: str) -> int:
    """Report ``exc`` as one line (after its traceback with ``--debug``); exit status 1."""
    if getattr(args, "debug", False):
        traceback.print_exception(exc, file=sys.stderr)
    return fail(message)


def read_secret(path: str | None, option: str = "--secret-file") -> bytes:
    if not path:
        raise ValueError(f"a group secret is required: {option} PATH")
    try:
        data = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ValueError(f"cannot read {option} {path}: {exc.strerror}") from exc
    if not data:
        raise ValueError(f"{option} {path} is empty")
    return data


def describe(exc: BaseException) -> str:
    """One line for an error: the database driver's own words, an OSError without its
    ``[Errno N]``."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig)
    if isinstance(exc, OSError) and exc.strerror:
        name = exc.filename
        return f"{exc.strerror}: {name}" if name and str(name) not in exc.strerror else exc.strerror
    return str(exc) or type(exc).__name__


def about_db(exc: BaseException, db: str) -> str:
    """``exc`` as one line that names the database ``db``."""
    from store import describe_database

    text, name = describe(exc), describe_database(db)
    return text if name in text or db in text else f"database {name}: {text}"


def dialled_once(
    args: argparse.Namespace, command: str, schemes: tuple[str, ...] | None = None
) -> tuple[int | None, ssl.SSLContext | None]:
    """The checks of a command that dials ``args.url`` once (``status``, ``forget``): (the
    exit status, its line printed, if the URL or ``--tls-ca`` is refused, else None; the
    TLS context to dial with). A URL without a port is taken (the scheme's default, a TLS
    proxy's 443): such a command tries once and says why it failed, unlike a peer that
    keeps dialling."""
    from sync.transport.addresses import check_peer_url
    from sync.transport.opening import client_ssl_context

    try:
        if schemes is None:
            check_peer_url(args.url, "URL", port_required=False)
        else:
            check_peer_url(args.url, "URL", schemes=schemes, port_required=False)
    except ValueError as exc:
        return fail(f"{command}: {exc}", EXIT_USAGE), None
    try:
        return None, client_ssl_context(args.tls_ca, "--tls-ca")
    except OSError as exc:  # a file that cannot be loaded (ssl.SSLError is an OSError)
        return error(args, exc, f"{command}: {describe(exc)}"), None
