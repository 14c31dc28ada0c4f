"""sync.transport: the asyncio + websockets adapter around the sans-I/O engine.

Modules, each knowing only those above it in this list (no import cycles):
:mod:`.addresses` (listen addresses and peer URLs, checked), :mod:`.auth` (handshake
frames), :mod:`.codec` (the engine's messages as frames), :mod:`.dialstate` (why a dialled
URL is or is not linked: its state and last error), :mod:`.diallers` (the dialler task of
each dialled URL, and stopping one), :mod:`.connection` (links, backoff,
flow control), :mod:`.storage` (what passes between the node and the store),
:mod:`.executor` (runs each drain's effects, commit first), :mod:`.node` (drives one
:class:`sync.Replica` against a :class:`store.Store`), :mod:`.handles` (the typed handles),
:mod:`.changefeed` (subscriptions and their warnings), :mod:`.dialling` (whom the peer
dials), :mod:`.keyops` (listing and deleting keys), :mod:`.opening` (``Peer.open``'s checks
and configuration),
:mod:`.subscription` (a key's new values), :mod:`.status` (the health snapshot, read through
a small protocol), :mod:`.metrics` (its Prometheus text, ``prometheus_client`` loaded only
then), :mod:`.http` (``/status`` and ``/metrics`` on the websocket port, given functions that
make the bodies), :mod:`.operator` (the operator's forget and unforget, for ``shoal
forget``), and :mod:`.peer` (``Peer.open``, which wires them together). The command
line and the demo are the application's: :mod:`shoal.cli`, :mod:`shoal.demo`.
"""

from __future__ import annotations

from .addresses import check_peer_url, parse_listen
from .auth import HandshakeError, Identity, PeerInfo
from .codec import WireCodec
from .connection import Backoff, LinkState, Transport, TransportConfig
from .dialstate import Connectivity, DialState, PeerLink
from .handles import (
    GCounterHandle,
    HandleOwner,
    LWWHandle,
    MVRegisterHandle,
    ORMapHandle,
    ORSetHandle,
    PNCounterHandle,
)
from .http import make_http_hook
from .metrics import MetricsUnavailable, render_metrics
from .node import Node, merge_persists
from .peer import Peer
from .status import StatusSource, public_status, status_snapshot
from .subscription import Subscription

__all__ = [
    "Backoff",
    "Connectivity",
    "DialState",
    "GCounterHandle",
    "HandleOwner",
    "HandshakeError",
    "Identity",
    "LWWHandle",
    "LinkState",
    "MVRegisterHandle",
    "MetricsUnavailable",
    "Node",
    "ORMapHandle",
    "ORSetHandle",
    "PNCounterHandle",
    "Peer",
    "PeerInfo",
    "PeerLink",
    "StatusSource",
    "Subscription",
    "Transport",
    "TransportConfig",
    "WireCodec",
    "check_peer_url",
    "make_http_hook",
    "merge_persists",
    "parse_listen",
    "public_status",
    "render_metrics",
    "status_snapshot",
]
