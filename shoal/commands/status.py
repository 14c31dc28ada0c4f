"""``shoal status``: read a running peer's ``/status`` and print it, with the alarms an
operator must see (the options, output and exit statuses are in :mod:`shoal.cli`).
"""

from __future__ import annotations

import argparse
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from shoal.commands.common import EXIT_OK, describe, dialled_once, error, read_secret

__all__ = ["cmd_status"]


#: The URLs ``shoal status`` reads: a peer's own, or the HTTP(S) URL of its port.
_SCHEMES = ("ws://", "wss://", "http://", "https://")


def _http_base(url: str) -> str:
    """The ``http(s)://`` base of a checked ``URL``."""
    for ws, http in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(ws):
            return http + url[len(ws) :].rstrip("/")
    return url.rstrip("/")


def _read_status(
    args: argparse.Namespace, base: str, context: ssl.SSLContext | None
) -> dict[str, Any]:
    """GET ``base/status`` (with the token of ``--http-token-file``); ValueError or OSError
    with one line saying why not."""
    request = urllib.request.Request(base + "/status")
    if args.http_token_file:
        token = read_secret(args.http_token_file, "--http-token-file").decode()
        request.add_header("Authorization", f"Bearer {token}")
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
        why = describe(exc.reason) if isinstance(exc.reason, BaseException) else exc.reason
        raise ValueError(f"cannot read {base}/status: {why}") from exc
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot read {base}/status: {describe(exc)}") from exc
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"{base}/status is not a shoal peer's status (not JSON)") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{base}/status is not a shoal peer's status")
    return data


def cmd_status(args: argparse.Namespace) -> int:
    refused, context = dialled_once(args, "status", _SCHEMES)
    if refused is not None:
        return refused
    try:
        data = _read_status(args, _http_base(args.url), context)
    except ValueError as exc:
        return error(args, exc, f"status: {exc}")
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return EXIT_OK
    _print_status(data)
    return EXIT_OK


def _shown(value: Any) -> str:
    """A field as ``shoal status`` prints it: ``-`` for one not known (or not set)."""
    return "-" if value is None or value == "" else str(value)


def _print_status(data: dict[str, Any]) -> None:
    print(
        f"peer {_shown(data.get('replica_id'))} at {_shown(data.get('url'))}  "
        f"group {_shown(data.get('group'))}  site {_shown(data.get('site'))}  "
        f"relay {_shown(data.get('relay'))}"
    )
    if data.get("failed"):
        print(f"FAILED: {data['failed']}")
    print(
        f"log size {_shown(data.get('log_size'))}  keys {_shown(data.get('keys'))}  "
        f"pending hints {_shown(data.get('pending_hints'))}  "
        f"connected {len(data.get('connected', []))}"
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
            f"  {rid}  {state}  lag {_shown(p.get('lag'))}  "
            f"hints {_shown(p.get('pending_hints'))}  in {_shown(p.get('bytes_in'))} B  "
            f"out {_shown(p.get('bytes_out'))} B  {_shown(p.get('address'))}"
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
