"""shoal's public API: the names an app needs to embed a peer, in one import.

::

    from shoal import Peer, QuorumNotReached

    async with Peer.open("phone.db", listen="127.0.0.1:0", secret=b"group secret") as peer:
        cart = peer.orset("cart:alice")
        await cart.add("milk")                      # durable here, replicates in the background
        try:
            await cart.add("eggs", w=2, timeout=2.0)
        except QuorumNotReached as exc:             # durable here anyway; syncs later
            print(exc.result)

The names come from the layers below (``crdt`` for the data types, ``sync`` for the
replication errors, results and consistency levels, ``sync.transport`` for the peer, its
handles and its subscriptions, ``store`` for the store's errors); this package adds only the
command line (:mod:`shoal.cli`, the ``shoal`` console script and ``python -m shoal``) and
the demo (:mod:`shoal.demo`). The layers never import it.

Loading is lazy (PEP 562): ``import shoal`` reads the version and nothing else, and the
first use of a name imports the module that defines it (``shoal.Peer`` brings in asyncio,
websockets and SQLAlchemy; ``shoal.ORSet`` only ``crdt``). The same names are imported under
``TYPE_CHECKING``, so that type checkers see each name's real type.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crdt import (
        CRDT,
        ClockSkewError,
        CRDTError,
        DecodeError,
        GCounter,
        LWWRegister,
        MVRegister,
        ORMap,
        ORSet,
        PNCounter,
        VersionVector,
    )
    from store.errors import DatabaseLocked, SchemaVersionMismatch, StoreError
    from sync.config import ReplicaConfig
    from sync.consistency import ALL, LOCAL_QUORUM, ONE, QUORUM, Level
    from sync.effects import LogDot, WriteResult
    from sync.errors import (
        KeyNotFound,
        KindClash,
        PeerFailed,
        QuorumNotReached,
        ReadQuorumNotReached,
        SubscriptionOverflow,
        SyncError,
        ValueTooLarge,
    )
    from sync.replica.propagation import Whereabouts
    from sync.transport.connection import TransportConfig
    from sync.transport.dialstate import Connectivity, DialState, PeerLink
    from sync.transport.handles import (
        GCounterHandle,
        LWWHandle,
        MVRegisterHandle,
        ORMapHandle,
        ORSetHandle,
        PNCounterHandle,
    )
    from sync.transport.peer import Peer
    from sync.transport.subscription import Subscription

__all__ = [
    "ALL",
    "CRDT",
    "LOCAL_QUORUM",
    "ONE",
    "QUORUM",
    "CRDTError",
    "ClockSkewError",
    "Connectivity",
    "DatabaseLocked",
    "DecodeError",
    "DialState",
    "GCounter",
    "GCounterHandle",
    "KeyNotFound",
    "KindClash",
    "LWWHandle",
    "LWWRegister",
    "Level",
    "LogDot",
    "MVRegister",
    "MVRegisterHandle",
    "ORMap",
    "ORMapHandle",
    "ORSet",
    "ORSetHandle",
    "PNCounter",
    "PNCounterHandle",
    "Peer",
    "PeerFailed",
    "PeerLink",
    "QuorumNotReached",
    "ReadQuorumNotReached",
    "ReplicaConfig",
    "SchemaVersionMismatch",
    "StoreError",
    "Subscription",
    "SubscriptionOverflow",
    "SyncError",
    "TransportConfig",
    "ValueTooLarge",
    "VersionVector",
    "Whereabouts",
    "WriteResult",
    "__version__",
]

# Where each lazily loaded name lives (the TYPE_CHECKING block above imports the same).
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        [
            "CRDT",
            "CRDTError",
            "ClockSkewError",
            "DecodeError",
            "GCounter",
            "LWWRegister",
            "MVRegister",
            "ORMap",
            "ORSet",
            "PNCounter",
            "VersionVector",
        ],
        "crdt",
    ),
    "DatabaseLocked": "store.errors",
    "SchemaVersionMismatch": "store.errors",
    "StoreError": "store.errors",
    "ReplicaConfig": "sync.config",
    **dict.fromkeys(["ALL", "LOCAL_QUORUM", "ONE", "QUORUM", "Level"], "sync.consistency"),
    "LogDot": "sync.effects",
    "WriteResult": "sync.effects",
    **dict.fromkeys(
        [
            "KeyNotFound",
            "KindClash",
            "PeerFailed",
            "QuorumNotReached",
            "ReadQuorumNotReached",
            "SubscriptionOverflow",
            "SyncError",
            "ValueTooLarge",
        ],
        "sync.errors",
    ),
    "Whereabouts": "sync.replica.propagation",
    "TransportConfig": "sync.transport.connection",
    **dict.fromkeys(["Connectivity", "DialState", "PeerLink"], "sync.transport.dialstate"),
    **dict.fromkeys(
        [
            "GCounterHandle",
            "LWWHandle",
            "MVRegisterHandle",
            "ORMapHandle",
            "ORSetHandle",
            "PNCounterHandle",
        ],
        "sync.transport.handles",
    ),
    "Peer": "sync.transport.peer",
    "Subscription": "sync.transport.subscription",
}

try:
    __version__: str = version("shoal")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
