"""A running peer's health as one JSON-ready snapshot, read through :class:`StatusSource`.

:func:`status_snapshot` is the one source: ``peer.status()``, ``GET /status``, ``shoal
status`` and ``GET /metrics`` all read it, computed on demand (nothing is sampled in the
background). It reads a peer through the small protocol :class:`StatusSource` (identity,
configuration, the transport's links and traffic, the node's counters and the engine's
``status()``), so this module knows nothing of :class:`~sync.transport.peer.Peer`. Shape
(all JSON)::

    {"replica_id", "url", "group", "site", "relay", "n", "uptime_s",
     "connected": [replica ids with an open link],
     "links": {url: {"state", "error", "replica_id", "since", "failures"}},
     "peers": {replica_id: {"connected", "state", "error", "address", "site", "relay",
                            "lag", "pending_hints", "bytes_in", "bytes_out",
                            "messages_in", "messages_out", "dropped", "clock_ahead_ms",
                            "clock_skew_set_aside", "home", "forgotten", "down_for_s"}},
     "pending_hints": total held for others, "log_size": entries in the delta log,
     "pending_propagation": our own log entries not yet known to be at every home,
     "keys": objects held, "siblings": {"max": most siblings of a register,
     "keys": {key: siblings} for registers with more than one},
     "kind_clashes": {"count": keys holding objects of several types,
                      "keys": {key: [types]}},
     "catching_up": {replica_id: {"entries", "bytes", "entries_left", "bytes_left",
                                  "since"}} for each catch-up under way from a peer,
     "rejected_handshakes": count,
     "transport": {"rejected_handshakes", "refused_busy", "accept_errors",
                   "frame_failures", "dial_failures": {state: failed attempts},
                   "departed_non_homes": {"non_homes", "bytes_in", "bytes_out",
                                          "messages_in", "messages_out", "dropped"}},
     "node": {counters of the node}, "failed": the fail-stop error or None,
     "engine": {what Replica.status() reports}}

``links`` has one entry per URL this peer dials (the configured ``peers`` first), with its
:class:`~sync.transport.dialstate.DialState` value (``connected``, ``connecting``,
``unreachable``, ``tls_failed``, ``wrong_secret``, ``wrong_group``, ``version_mismatch``,
``forgotten``, ``refused``, ``failed``) and last error. A known peer's ``state`` is
``connected`` while a link to it is open, else the state of the URL it was last reached at
(if this peer dials it), else ``disconnected``; ``error`` is that URL's last error.

:func:`public_status` is what ``GET /status`` serves to anyone who can reach the port: the
same figures without key names (sibling keys and clashed keys become counts), since that
endpoint is not authenticated; :func:`public_status_json` is that body.

``lag`` is the number of log entries this replica has that the peer's last known summary
lacks (``None`` until the peer reported one), as the engine computes it.
``home`` is False for a peer that is not a home (off the ring), ``forgotten`` True for one
an operator forgot here, ``down_for_s`` the seconds a home has not been seen once past
``home_down_window`` (None otherwise): compaction no longer waits for it.
``clock_ahead_ms`` is how far ahead of this replica's clock the last write of that peer set
aside for clock skew was stamped (``None``: none was), ``clock_skew_set_aside`` how many
were (see ``sync.replica.theory``: "Clock skew"). Traffic counts are
cumulative per peer over all its links since this process started. A non-home (a
short-lived session) is listed while it is linked: once its last link ends, the engine
forgets it and its traffic joins ``transport.departed_non_homes``, the totals of every
non-home that left (``non_homes``: how many), so neither list grows with the sessions
served.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

from sync.config import ReplicaConfig

from .dialstate import PeerLink

__all__ = [
    "DialFigures",
    "EngineFigures",
    "LinkFigures",
    "NodeFigures",
    "StatusSource",
    "TransportFigures",
    "engine_status",
    "public_status",
    "public_status_json",
    "status_snapshot",
]


class _RemoteFacts(Protocol):
    @property
    def address(self) -> str | None: ...

    @property
    def site(self) -> str | None: ...

    @property
    def relay(self) -> bool: ...


class LinkFigures(Protocol):
    """An open link: what the remote side said about itself."""

    @property
    def info(self) -> _RemoteFacts: ...


class DialFigures(Protocol):
    """The state of every dialled URL, and failed dial attempts by state."""

    @property
    def failures(self) -> Mapping[str, int]: ...

    def snapshot(self) -> Mapping[str, PeerLink]: ...


class TransportFigures(Protocol):
    """The transport's open links, per-peer traffic, dialled URLs and counters."""

    @property
    def links(self) -> Mapping[str, LinkFigures]: ...

    @property
    def dials(self) -> DialFigures: ...

    @property
    def rejected(self) -> int: ...

    @property
    def refused_busy(self) -> int: ...

    @property
    def accept_errors(self) -> int: ...

    @property
    def frame_failures(self) -> int: ...

    @property
    def departed(self) -> Mapping[str, int]: ...

    def traffic(self) -> Mapping[str, Mapping[str, int]]: ...


class EngineFigures(Protocol):
    """The engine's own health report (``Replica.status()``)."""

    def status(self) -> dict[str, Any]: ...


class NodeFigures(Protocol):
    """The node's counters (a dataclass) and the engine it drives."""

    @property
    def replica(self) -> EngineFigures: ...

    @property
    def counters(self) -> Any: ...


class StatusSource(Protocol):
    """Everything :func:`status_snapshot` reads of a running peer."""

    @property
    def replica_id(self) -> str: ...

    @property
    def url(self) -> str | None: ...

    @property
    def group(self) -> str: ...

    @property
    def started(self) -> float:
        """When it started, on ``time.monotonic()``'s clock."""
        ...

    @property
    def config(self) -> ReplicaConfig: ...

    @property
    def transport(self) -> TransportFigures: ...

    @property
    def node(self) -> NodeFigures: ...

    @property
    def failure(self) -> Exception | None: ...


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def engine_status(engine: EngineFigures) -> dict[str, Any]:
    """``engine.status()`` as a JSON-ready dict."""
    out = _jsonable(engine.status())
    return out if isinstance(out, dict) else {"status": out}


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, Mapping):
        return sum(_int(v) for v in value.values())
    if isinstance(value, list | tuple):
        return len(value)
    return default


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def status_snapshot(source: StatusSource) -> dict[str, Any]:
    """The health snapshot described in the module docstring."""
    eng = engine_status(source.node.replica)
    traffic = source.transport.traffic()
    links = source.transport.links
    lag = _mapping(eng.get("lag"))
    hints = _mapping(eng.get("hints"))
    known = eng.get("peers_known")
    known = known if isinstance(known, list) else []
    skews = _mapping(eng.get("clock_skew"))
    non_homes = set(eng.get("non_homes") or ())
    forgotten = set(eng.get("forgotten") or ())
    down = _mapping(eng.get("homes_down"))
    dials = source.transport.dials.snapshot()
    by_replica = {d.replica_id: d for d in dials.values() if d.replica_id is not None}
    peers: dict[str, dict[str, Any]] = {}
    everyone = set(traffic) | set(links) | set(known) | set(hints) | set(lag) | set(skews)
    for rid in sorted(everyone | forgotten):
        link = links.get(rid)
        t = traffic.get(rid, {})
        peer_lag = lag.get(rid)
        dial = by_replica.get(rid)
        state = "connected" if link else dial.state.value if dial else "disconnected"
        peers[rid] = {
            "connected": link is not None,
            "state": state,
            "error": dial.error if dial and not link else None,
            "address": link.info.address if link else None,
            "site": link.info.site if link else None,
            "relay": bool(link.info.relay) if link else None,
            "lag": peer_lag if isinstance(peer_lag, int) else None,
            "pending_hints": _int(hints.get(rid, 0)),
            "bytes_in": t.get("bytes_in", 0),
            "bytes_out": t.get("bytes_out", 0),
            "messages_in": t.get("messages_in", 0),
            "messages_out": t.get("messages_out", 0),
            "dropped": t.get("dropped", 0),
            "clock_ahead_ms": _mapping(skews.get(rid)).get("ahead_ms"),
            "clock_skew_set_aside": _int(_mapping(skews.get(rid)).get("set_aside", 0)),
            "home": rid not in non_homes,
            "forgotten": rid in forgotten,
            "down_for_s": down.get(rid),
        }
    siblings = _mapping(eng.get("siblings"))
    clashes = _mapping(eng.get("kind_clashes"))
    config = source.config
    transport = source.transport
    return {
        "replica_id": source.replica_id,
        "url": source.url,
        "group": source.group,
        "site": config.site,
        "relay": config.relay,
        "n": config.n,
        "uptime_s": round(time.monotonic() - source.started, 3),
        "connected": sorted(links),
        "links": {url: d.to_dict() for url, d in dials.items()},
        "peers": peers,
        "pending_hints": sum(_int(v) for v in hints.values()),
        "pending_propagation": _int(eng.get("pending_propagation", 0)),
        "log_size": _int(eng.get("log_size", 0)),
        "keys": _int(eng.get("objects", 0)),
        "siblings": {
            "max": max((_int(v) for v in siblings.values()), default=0),
            "keys": dict(siblings),
        },
        "kind_clashes": {"count": len(clashes), "keys": dict(clashes)},
        "catching_up": {
            str(rid): dict(_mapping(c)) for rid, c in _mapping(eng.get("catching_up")).items()
        },
        "rejected_handshakes": transport.rejected,
        "transport": {
            "rejected_handshakes": transport.rejected,
            "refused_busy": transport.refused_busy,
            "accept_errors": transport.accept_errors,
            "frame_failures": transport.frame_failures,
            "dial_failures": dict(sorted(transport.dials.failures.items())),
            "departed_non_homes": dict(transport.departed),
        },
        "node": _jsonable(source.node.counters),
        "failed": None if source.failure is None else str(source.failure),
        "engine": eng,
    }


def public_status(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """``snapshot`` without key names: what an unauthenticated reader may see."""
    out = dict(snapshot)
    sib = snapshot.get("siblings")
    if isinstance(sib, Mapping):
        keys = sib.get("keys")
        out["siblings"] = {
            "max": sib.get("max", 0),
            "keys": len(keys) if isinstance(keys, Mapping) else 0,
        }
    clashes = snapshot.get("kind_clashes")
    if isinstance(clashes, Mapping):
        out["kind_clashes"] = {"count": clashes.get("count", 0)}
    eng = snapshot.get("engine")
    if isinstance(eng, Mapping):
        eng = dict(eng)
        for name in ("siblings", "kind_clashes"):
            if isinstance(eng.get(name), Mapping):
                eng[name] = len(eng[name])
        out["engine"] = eng
    return out


def public_status_json(source: StatusSource) -> str:
    """The body of ``GET /status``: :func:`public_status` of a fresh snapshot, as JSON."""
    body = json.dumps(public_status(status_snapshot(source)), sort_keys=True, default=str)
    return body + "\n"
