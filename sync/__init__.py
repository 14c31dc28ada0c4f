"""shoal's replication: wire messages and the sans-I/O engine (``sync.Replica``).

Re-exports the public names of the engine modules (see docs/architecture.md section 3). The
asyncio/websocket adapter lives in ``sync.transport``; its ``Peer`` and ``Subscription`` are
re-exported lazily below, in the marked section. Applications import the public API from
``shoal``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sync.config import MAX_MESSAGE_BYTES, ReplicaConfig
from sync.consistency import ALL, LOCAL_QUORUM, ONE, QUORUM, Level, required_acks
from sync.effects import (
    Changed,
    Effect,
    HintId,
    HintRecord,
    IdentityConflict,
    Loaded,
    LogEntry,
    ObjectState,
    PeerRecord,
    Persist,
    ReadDone,
    ReadFailed,
    Send,
    WriteDone,
    WriteFailed,
    WriteResult,
)
from sync.errors import (
    LocalProtocolError,
    PeerFailed,
    QuorumNotReached,
    ReadQuorumNotReached,
    RemoteProtocolError,
    SyncError,
)
from sync.messages import Message, decode, encode
from sync.replica import Replica
from sync.ring import Ring, partition_of
from sync.simnet import SimCluster, SimDisk, SimOp, SimulationError

# --- transport re-exports (owned by the transport engineer) ---------------------------------
# Lazy (PEP 562): ``from sync import Peer`` works, while ``import sync`` alone (the sans-I/O
# engine, the simulator) does not pull in asyncio, websockets and SQLAlchemy. The same names
# are imported under TYPE_CHECKING, so that type checkers see their real types. (Apps import
# them from ``shoal``, the application package.)
if TYPE_CHECKING:
    from sync.transport.peer import Peer
    from sync.transport.subscription import Subscription

_TRANSPORT_NAMES = {"Peer": "sync.transport.peer", "Subscription": "sync.transport.subscription"}


def __getattr__(name: str) -> object:
    module = _TRANSPORT_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'sync' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


# --- end of transport re-exports -------------------------------------------------------------

__all__ = [
    "ALL",
    "LOCAL_QUORUM",
    "MAX_MESSAGE_BYTES",
    "ONE",
    "QUORUM",
    "Changed",
    "Effect",
    "HintId",
    "HintRecord",
    "IdentityConflict",
    "Level",
    "Loaded",
    "LocalProtocolError",
    "LogEntry",
    "Message",
    "ObjectState",
    "Peer",  # transport (lazy)
    "PeerFailed",
    "PeerRecord",
    "Persist",
    "QuorumNotReached",
    "ReadDone",
    "ReadFailed",
    "ReadQuorumNotReached",
    "RemoteProtocolError",
    "Replica",
    "ReplicaConfig",
    "Ring",
    "Send",
    "SimCluster",
    "SimDisk",
    "SimOp",
    "SimulationError",
    "Subscription",  # transport (lazy)
    "SyncError",
    "WriteDone",
    "WriteFailed",
    "WriteResult",
    "decode",
    "encode",
    "partition_of",
    "required_acks",
]
