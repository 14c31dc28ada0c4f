"""shoal's CRDT library: delta-state CRDTs in pure Python, no I/O.

Re-exports the public names of every module; see docs/architecture.md section 1.
"""

from __future__ import annotations

from crdt._json import MAX_DEPTH
from crdt.base import CRDT, KINDS, check_json, from_dict, join, merge_dict, new
from crdt.causal_context import CausalContext
from crdt.dot import REPLICA_KEY_BYTES, Dot, ReplicaId, replica_id_for
from crdt.dotstores import DotFun, DotMap, DotSet, DotStore
from crdt.embedded import (
    DotTaker,
    Embedded,
    FlatKind,
    FlatStore,
    ViewedKind,
    embedded_kind,
    embedded_kinds,
    register_embedded,
    unregister_embedded,
)
from crdt.emcounter import EmbeddedCounter, EmbeddedPNCounter
from crdt.emlww import EmbeddedLWW
from crdt.errors import ClockSkewError, CRDTError, DecodeError
from crdt.gcounter import GCounter
from crdt.hlc import HybridLogicalClock, Timestamp
from crdt.lww import LWWRegister
from crdt.mvregister import MVRegister
from crdt.ormap import MAX_NESTING, ORMap
from crdt.orset import ORSet
from crdt.pncounter import PNCounter
from crdt.version_vector import Ordering, VersionVector

__all__ = [
    "CRDT",
    "KINDS",
    "MAX_DEPTH",
    "MAX_NESTING",
    "REPLICA_KEY_BYTES",
    "CRDTError",
    "CausalContext",
    "ClockSkewError",
    "DecodeError",
    "Dot",
    "DotFun",
    "DotMap",
    "DotSet",
    "DotStore",
    "DotTaker",
    "Embedded",
    "EmbeddedCounter",
    "EmbeddedLWW",
    "EmbeddedPNCounter",
    "FlatKind",
    "FlatStore",
    "GCounter",
    "HybridLogicalClock",
    "LWWRegister",
    "MVRegister",
    "ORMap",
    "ORSet",
    "Ordering",
    "PNCounter",
    "ReplicaId",
    "Timestamp",
    "VersionVector",
    "ViewedKind",
    "check_json",
    "embedded_kind",
    "embedded_kinds",
    "from_dict",
    "join",
    "merge_dict",
    "new",
    "register_embedded",
    "replica_id_for",
    "unregister_embedded",
]
