"""The Prometheus text export of a status snapshot (``GET /metrics``), made on demand.

:func:`render_metrics` turns one snapshot of :func:`~sync.transport.status.status_snapshot`
into the Prometheus text exposition format with ``prometheus_client``, families prefixed
``shoal_``: gauges for connected peers, log size, keys, pending hints and their bytes,
pending propagation (our own writes not yet known to be at every home) and siblings;
counters for refused handshakes, commits, errors and hints dropped past their bounds;
per-peer families labelled ``peer``; the transport's counters (connections refused busy,
failed ``accept()`` calls, links closed for a frame that failed its check, failed dials by
``state``); per dialled URL, ``shoal_link_state`` (labels ``url`` and ``state``: 1 for the
URL's current state, 0 for the others); and ``shoal_fail_stopped`` (1 once the store refused
a commit and the peer stopped). A fresh registry per call, so several peers in one process
never collide and nothing is sampled in the background.

``prometheus_client`` belongs to the ``cli`` extra (``pip install '.[cli]'`` from a checkout)
and is imported only here, when a page is rendered: a peer runs without it, and then
:func:`render_metrics` raises :class:`MetricsUnavailable`, whose message says how to get it
(``GET /metrics`` answers 501 with that text).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .dialstate import DialState

__all__ = ["DIAL_STATES", "METRICS_EXTRA", "MetricsUnavailable", "render_metrics"]

#: What to install for ``GET /metrics``.
METRICS_EXTRA = "pip install '.[cli]' from a checkout"


class MetricsUnavailable(RuntimeError):
    """``prometheus_client`` is not installed: the metrics page cannot be rendered here."""

    def __init__(self) -> None:
        super().__init__(
            "the Prometheus export needs the prometheus-client package, which this "
            f"installation lacks: the 'cli' extra installs it ({METRICS_EXTRA})"
        )


#: Every value of :class:`~sync.transport.dialstate.DialState`, the ``state`` label values.
DIAL_STATES = tuple(state.value for state in DialState)

# (snapshot field, family name, gauge?, help) of the per-peer families.
_PER_PEER: tuple[tuple[str, str, bool, str], ...] = (
    ("connected", "shoal_peer_connected", True, "1 if a link to the peer is open"),
    ("lag", "shoal_peer_lag", True, "Log entries the peer is known to lack"),
    ("pending_hints", "shoal_peer_pending_hints", True, "Hints held for the peer"),
    ("bytes_in", "shoal_peer_bytes_in", False, "Bytes received from the peer"),
    ("bytes_out", "shoal_peer_bytes_out", False, "Bytes sent to the peer"),
    ("messages_in", "shoal_peer_messages_in", False, "Messages received from the peer"),
    ("messages_out", "shoal_peer_messages_out", False, "Messages sent to the peer"),
    ("dropped", "shoal_peer_dropped", False, "Messages dropped by flow control"),
    (
        "clock_ahead_ms",
        "shoal_peer_clock_ahead_ms",
        True,
        "How far ahead of our clock the peer's last write set aside for clock skew was",
    ),
    (
        "down_for_s",
        "shoal_peer_home_down_seconds",
        True,
        "Seconds a home has not been seen, once past home_down_window",
    ),
    (
        "clock_skew_set_aside",
        "shoal_peer_clock_skew_set_aside",
        False,
        "Writes of the peer set aside, stamped too far ahead of our clock",
    ),
)


#: Figures of the snapshot exported as they are: (where in the snapshot, field, metric name,
#: gauge (else counter), help).
_FIGURES: tuple[tuple[tuple[str, ...], str, str, bool, str], ...] = (
    (
        ("engine",),
        "hint_bytes",
        "shoal_hint_bytes",
        True,
        "Bytes of the hints held for other peers' writes (at most hint_max_bytes)",
    ),
    (
        ("engine",),
        "own_hint_bytes",
        "shoal_own_hint_bytes",
        True,
        "Bytes of the hints of this peer's own writes (never dropped by a bound)",
    ),
    (
        ("engine",),
        "hints_dropped",
        "shoal_hints_dropped",
        False,
        "Hints for other peers dropped past hint_max_per_target or hint_max_bytes",
    ),
    (
        ("transport",),
        "refused_busy",
        "shoal_connections_refused_busy",
        False,
        "Inbound connections refused with HTTP 503 (over a connection cap)",
    ),
    (
        ("transport",),
        "accept_errors",
        "shoal_accept_errors",
        False,
        "accept() calls that failed for lack of file descriptors or memory",
    ),
    (
        ("transport",),
        "frame_failures",
        "shoal_frame_failures",
        False,
        "Links closed for a frame that failed its authentication check",
    ),
    (
        ("transport", "departed_non_homes"),
        "non_homes",
        "shoal_non_homes_departed",
        False,
        "Non-home replicas (short-lived sessions) whose last link ended; their per-peer "
        "series end with it",
    ),
    (
        ("transport", "departed_non_homes"),
        "bytes_in",
        "shoal_non_homes_departed_bytes_in",
        False,
        "Bytes received from non-home replicas that left, in all",
    ),
    (
        ("transport", "departed_non_homes"),
        "bytes_out",
        "shoal_non_homes_departed_bytes_out",
        False,
        "Bytes sent to non-home replicas that left, in all",
    ),
)


def _families(s: Mapping[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily as C
    from prometheus_client.core import GaugeMetricFamily as G

    yield G("shoal_peers_connected", "Peers with an open link", value=len(s["connected"]))
    yield G("shoal_log_size", "Entries in the delta log", value=s["log_size"])
    yield G("shoal_keys", "Objects held", value=s["keys"])
    yield G("shoal_pending_hints", "Hints held for other peers", value=s["pending_hints"])
    yield G(
        "shoal_pending_propagation",
        "Own log entries not yet known to be at every home",
        value=s["pending_propagation"],
    )
    sib = s["siblings"]
    most = sib.get("max", 0) if isinstance(sib, Mapping) else 0
    yield G("shoal_siblings_max", "Most concurrent siblings of any register", value=most)
    yield C(
        "shoal_handshakes_rejected",
        "Handshakes refused (wrong secret, group, version, garbage)",
        value=s["rejected_handshakes"],
    )
    node = s["node"]
    yield C("shoal_commits", "Store transactions committed", value=node["commits"])
    yield C("shoal_store_errors", "Failed store transactions", value=node["store_errors"])
    yield C("shoal_remote_errors", "Bad messages received", value=node["remote_errors"])
    yield C("shoal_alarms", "Alarms raised (logged at WARNING)", value=node.get("alarms", 0))
    for path, field, name, gauge, doc in _FIGURES:
        section: Any = s
        for part in path:
            section = section.get(part, {})
        yield (G if gauge else C)(name, doc, value=section.get(field, 0))
    transport = s.get("transport", {})
    dial = C("shoal_dial_failures", "Failed dial attempts, by resulting state", labels=["state"])
    for state, count in transport.get("dial_failures", {}).items():
        dial.add_metric([state], count)
    yield dial
    links = G(
        "shoal_link_state",
        "1 for the current state of each dialled URL, 0 for the other states",
        labels=["url", "state"],
    )
    for url, link in s.get("links", {}).items():
        for state in DIAL_STATES:
            links.add_metric([url, state], 1.0 if link["state"] == state else 0.0)
    yield links
    yield G(
        "shoal_fail_stopped",
        "1 once the store refused a commit and this peer stopped serving",
        value=0 if s.get("failed") is None else 1,
    )
    left = G(
        "shoal_catchup_entries_left",
        "Log entries and objects still to come in a catch-up under way, per source peer",
        labels=["peer"],
    )
    left_bytes = G(
        "shoal_catchup_bytes_left",
        "Bytes still to come in a catch-up under way, per source peer",
        labels=["peer"],
    )
    for rid, c in s.get("catching_up", {}).items():
        left.add_metric([rid], float(c["entries_left"]))
        left_bytes.add_metric([rid], float(c["bytes_left"]))
    yield left
    yield left_bytes
    for field, name, gauge, doc in _PER_PEER:
        metric = (G if gauge else C)(name, doc, labels=["peer"])
        for rid, p in s["peers"].items():
            value = p[field]
            if value is not None:
                metric.add_metric([rid], float(value))
        yield metric


class _Snapshot:
    """A collector that yields the families of one snapshot."""

    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        return _families(self.snapshot)


def render_metrics(snapshot: Mapping[str, Any]) -> tuple[str, str]:
    """(body, content type) of ``snapshot`` in the Prometheus text format.

    Raises :class:`MetricsUnavailable` when ``prometheus_client`` is not installed.
    """
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    except ImportError as exc:
        raise MetricsUnavailable() from exc
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snapshot))
    return generate_latest(registry).decode(), CONTENT_TYPE_LATEST
