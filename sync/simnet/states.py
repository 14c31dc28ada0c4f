"""What a replica holds, read as a test reads it: the kinds of a key, the state of an object
and one canonical text per key (to compare replicas), from the replica's memory or, for an
object it evicted, from its simulated disk (whose stored row is complete: the engine's
invariant).

Knows the engine's API, the CRDT codec and the simulated disk.
"""

from __future__ import annotations

from crdt import CRDT, KINDS, from_dict
from sync.errors import KindClash
from sync.simnet.disk import SimDisk, canonical
from sync.simnet.ops import SimReplica

__all__ = ["canonical_held", "kinds_held", "state_held"]


def kinds_held(replica: SimReplica, disk: SimDisk, key: str) -> tuple[str, ...]:
    """The kinds ``key`` holds (two or more: a clash), in memory or on the disk."""
    return _in_memory(replica, key) or _on_disk(disk, key)


def state_held(replica: SimReplica, disk: SimDisk, key: str, kind: str | None) -> CRDT | None:
    """The state of the object ``(key, kind)`` (``kind=None``: the key's one kind)."""
    in_memory = _in_memory(replica, key)
    on_disk = () if in_memory else _on_disk(disk, key)
    if not on_disk:
        return replica.value(key, kind)
    if kind is None:
        if len(on_disk) > 1:
            raise KindClash(key, on_disk)
        kind = on_disk[0]
    row = disk.objects.get((key, kind))
    return None if row is None else from_dict(row.state)


def canonical_held(replica: SimReplica, disk: SimDisk, key: str) -> str | None:
    """Every object of ``key`` as one text (None if the replica holds none)."""
    kinds = kinds_held(replica, disk, key)
    if len(kinds) <= 1:
        return canonical(state_held(replica, disk, key, kinds[0])) if kinds else None
    return " ".join(f"{kind}={canonical(state_held(replica, disk, key, kind))}" for kind in kinds)


def _in_memory(replica: SimReplica, key: str) -> tuple[str, ...]:
    """The kinds of the objects of ``key`` in the replica's memory, deleted (not live) ones
    included: memory is newer than the disk's row, which an object deleted since its last
    checkpoint still holds live (``Replica.kinds_of`` names the live kinds only)."""
    return tuple(sorted(k for k in KINDS if getattr(replica.value(key, k), "kind", None) == k))


def _on_disk(disk: SimDisk, key: str) -> tuple[str, ...]:
    return tuple(k for (name, k) in sorted(disk.objects) if name == key)
