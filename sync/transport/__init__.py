"""sync.transport: the asyncio + websockets adapter around the sans-I/O engine.

Modules: :mod:`.auth` (handshake), :mod:`.connection` (links, backoff, flow control),
:mod:`.node` (drives one :class:`sync.Replica` against a :class:`store.Store`),
:mod:`.peer` (``Peer.open`` and the typed handles apps embed), :mod:`.http` and
:mod:`.metrics` (``/status`` and ``/metrics`` on the websocket port), :mod:`.cli` (``shoal``).
"""

from __future__ import annotations

from .auth import HandshakeError, Identity, PeerInfo
from .connection import Backoff, LinkState, Transport, TransportConfig
from .node import Node, merge_persists
from .peer import (
    GCounterHandle,
    LWWHandle,
    MVRegisterHandle,
    ORMapHandle,
    ORSetHandle,
    Peer,
    PNCounterHandle,
    Subscription,
)

__all__ = [
    "Backoff",
    "GCounterHandle",
    "HandshakeError",
    "Identity",
    "LWWHandle",
    "LinkState",
    "MVRegisterHandle",
    "Node",
    "ORMapHandle",
    "ORSetHandle",
    "PNCounterHandle",
    "Peer",
    "PeerInfo",
    "Subscription",
    "Transport",
    "TransportConfig",
    "merge_persists",
]
