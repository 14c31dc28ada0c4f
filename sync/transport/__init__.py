"""sync.transport: the asyncio + websockets adapter around the sans-I/O engine.

Modules: :mod:`.auth` (handshake), :mod:`.connection` (links, backoff, flow control),
:mod:`.node` (drives one :class:`sync.Replica` against a :class:`store.Store`),
:mod:`.peer` (``Peer.open`` and the typed handles apps embed), :mod:`.http` and
:mod:`.metrics` (``/status`` and ``/metrics`` on the websocket port), :mod:`.cli` (``shoal``).
"""

from __future__ import annotations

__all__: list[str] = []
