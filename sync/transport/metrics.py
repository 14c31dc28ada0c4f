"""Health of a peer: the ``status`` snapshot (JSON) and its Prometheus export.

:func:`status_snapshot` is the one source: ``peer.status()``, ``GET /status``, ``shoal
status`` and ``GET /metrics`` all read it, computed on demand (nothing is sampled in the
background). Shape (all JSON)::

    {"replica_id", "url", "group", "site", "relay", "n", "uptime_s",
     "connected": [replica ids with an open link],
     "peers": {replica_id: {"connected", "address", "site", "relay", "lag",
                            "pending_hints", "bytes_in", "bytes_out", "messages_in",
                            "messages_out", "dropped"}},
     "pending_hints": total held for others, "log_size": entries in the delta log,
     "keys": objects held, "siblings": {"max": most siblings of a register,
     "keys": {key: siblings} for registers with more than one},
     "rejected_handshakes": count, "node": {counters of the node},
     "engine": {what Replica.status() reports}}

:func:`public_status` is what ``GET /status`` serves to anyone who can reach the port: the
same figures without key names (sibling keys become a count), since that endpoint is not
authenticated.

``lag`` is the number of log entries this replica has that the peer's last known summary
lacks (``None`` until the peer reported one), as the engine computes it. Traffic counts are
cumulative per peer over all its links since this process started.

:class:`PeerMetrics` exposes the same figures through ``prometheus_client`` with a
per-peer :class:`~prometheus_client.CollectorRegistry` (so several peers in one process do
not collide), families prefixed ``shoal_``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from .peer import Peer

__all__ = ["PeerMetrics", "engine_status", "public_status", "status_snapshot"]


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


def engine_status(replica: Any) -> dict[str, Any]:
    """``replica.status()`` as a JSON-ready dict (empty if the engine has none)."""
    status = getattr(replica, "status", None)
    if status is None:
        return {}
    out = _jsonable(status())
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


def status_snapshot(peer: Peer) -> dict[str, Any]:
    """The health snapshot described in the module docstring."""
    eng = engine_status(peer.node.replica)
    traffic = peer.transport.traffic()
    links = peer.transport.links
    lag = eng.get("lag") if isinstance(eng.get("lag"), Mapping) else {}
    hints = eng.get("hints") if isinstance(eng.get("hints"), Mapping) else {}
    known = eng.get("peers_known") if isinstance(eng.get("peers_known"), list) else []
    assert isinstance(lag, Mapping) and isinstance(hints, Mapping) and isinstance(known, list)
    peers: dict[str, dict[str, Any]] = {}
    for rid in sorted(set(traffic) | set(links) | set(known) | set(hints) | set(lag)):
        link = links.get(rid)
        t = traffic.get(rid, {})
        peer_lag = lag.get(rid)
        peers[rid] = {
            "connected": link is not None,
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
        }
    siblings = eng.get("siblings") if isinstance(eng.get("siblings"), Mapping) else {}
    assert isinstance(siblings, Mapping)
    return {
        "replica_id": peer.replica_id,
        "url": peer.url,
        "group": peer.group,
        "site": peer.config.site,
        "relay": peer.config.relay,
        "n": peer.config.n,
        "uptime_s": round(time.time() - peer.started, 3),
        "connected": sorted(links),
        "peers": peers,
        "pending_hints": sum(_int(v) for v in hints.values()),
        "log_size": _int(eng.get("log_size", 0)),
        "keys": _int(eng.get("objects", 0)),
        "siblings": {
            "max": max((_int(v) for v in siblings.values()), default=0),
            "keys": dict(siblings),
        },
        "rejected_handshakes": peer.transport.rejected,
        "node": dataclasses.asdict(peer.node.counters),
        "engine": eng,
    }


def public_status(snapshot: dict[str, Any]) -> dict[str, Any]:
    """``snapshot`` without key names: what an unauthenticated reader may see."""
    out = dict(snapshot)
    sib = snapshot.get("siblings")
    if isinstance(sib, Mapping):
        keys = sib.get("keys")
        out["siblings"] = {
            "max": sib.get("max", 0),
            "keys": len(keys) if isinstance(keys, Mapping) else 0,
        }
    eng = snapshot.get("engine")
    if isinstance(eng, Mapping) and isinstance(eng.get("siblings"), Mapping):
        out["engine"] = {**eng, "siblings": len(eng["siblings"])}
    return out


class _Collector:
    def __init__(self, peer: Peer) -> None:
        self.peer = peer

    def collect(self) -> Iterator[Metric]:
        s = status_snapshot(self.peer)
        g = GaugeMetricFamily
        c = CounterMetricFamily
        yield g("shoal_peers_connected", "Peers with an open link", value=len(s["connected"]))
        yield g("shoal_log_size", "Entries in the delta log", value=s["log_size"])
        yield g("shoal_keys", "Objects held", value=s["keys"])
        yield g("shoal_pending_hints", "Hints held for other peers", value=s["pending_hints"])
        sib = s["siblings"]
        yield g(
            "shoal_siblings_max",
            "Most concurrent siblings of any register",
            value=_int(sib.get("max", 0)) if isinstance(sib, Mapping) else 0,
        )
        yield c(
            "shoal_handshakes_rejected",
            "Handshakes refused (wrong secret, group, version, garbage)",
            value=s["rejected_handshakes"],
        )
        node = s["node"]
        yield c("shoal_commits", "Store transactions committed", value=node["commits"])
        yield c("shoal_store_errors", "Failed store transactions", value=node["store_errors"])
        yield c("shoal_remote_errors", "Bad messages received", value=node["remote_errors"])
        per_peer: list[tuple[str, str, type[Any], str]] = [
            ("connected", "shoal_peer_connected", g, "1 if a link to the peer is open"),
            ("lag", "shoal_peer_lag", g, "Log entries the peer is known to lack"),
            ("pending_hints", "shoal_peer_pending_hints", g, "Hints held for the peer"),
            ("bytes_in", "shoal_peer_bytes_in", c, "Bytes received from the peer"),
            ("bytes_out", "shoal_peer_bytes_out", c, "Bytes sent to the peer"),
            ("messages_in", "shoal_peer_messages_in", c, "Messages received from the peer"),
            ("messages_out", "shoal_peer_messages_out", c, "Messages sent to the peer"),
            ("dropped", "shoal_peer_dropped", c, "Messages dropped by flow control"),
        ]
        for field, name, family, doc in per_peer:
            metric = family(name, doc, labels=["peer"])
            for rid, p in s["peers"].items():
                value = p[field]
                if value is None:
                    continue
                metric.add_metric([rid], float(value))
            yield metric


class PeerMetrics:
    """One peer's Prometheus registry; :meth:`render` gives the text exposition."""

    def __init__(self, peer: Peer) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(peer))

    def render(self) -> tuple[str, str]:
        """(body, content type) of the Prometheus text format."""
        return generate_latest(self.registry).decode(), CONTENT_TYPE_LATEST
