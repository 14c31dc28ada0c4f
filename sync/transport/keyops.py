"""A peer's operations on keys of any kind: listing the live ones, deleting what one holds.

* :func:`live_keys` (behind ``Peer.keys``) lists the keys holding a live object, sorted,
  from the store ``page`` at a time, merged with what the engine changed that the store
  does not hold yet: a key written before the call (even if its write was not awaited) is
  listed, a key deleted before the call is not, even while the store still holds it live.
  Each page asks the engine task for its unsaved keys first; the answer comes once
  everything before it is committed, so the store's page that follows holds at least that.
* :func:`delete_key` (behind ``Peer.delete``) deletes the object a key holds through the
  typed handle of its kind (:mod:`sync.transport.handles`), the kind looked up in the
  engine when not named: ``KeyError`` if the key holds nothing live here,
  :class:`~sync.errors.KindClash` if it holds two kinds.

Both reach the peer through :class:`KeyOwner` (a handle's owner, and the store).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from store import Store
from sync.effects import WriteResult
from sync.errors import KindClash

from .handles import (
    GCounterHandle,
    HandleOwner,
    LWWHandle,
    MVRegisterHandle,
    ORMapHandle,
    ORSetHandle,
    PNCounterHandle,
)

__all__ = ["KeyOwner", "delete_key", "live_keys"]


class KeyOwner(HandleOwner, Protocol):
    """What listing and deleting need of a peer: a handle's owner, and its store."""

    @property
    def store(self) -> Store: ...


class _Deletable(Protocol):
    def delete(
        self, *, w: Any = ..., timeout: float | None = ..., strict: bool | None = ...
    ) -> Awaitable[WriteResult]: ...


# The handle of each kind, by its name (the engine's kind names).
_HANDLES: dict[str, Callable[[KeyOwner, str], _Deletable]] = {
    "gcounter": GCounterHandle,
    "pncounter": PNCounterHandle,
    "lww": LWWHandle,
    "mvregister": MVRegisterHandle,
    "orset": ORSetHandle,
    "ormap": ORMapHandle,
}


async def live_keys(
    owner: KeyOwner, prefix: str | None, after: str | None, page: int
) -> AsyncIterator[str]:
    """The live keys (see the module docstring); arguments checked at the first step."""
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str or None, got {type(prefix).__name__}")
    if after is not None and not isinstance(after, str):
        raise TypeError(f"after must be a str or None, got {type(after).__name__}")
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValueError(f"page must be a positive int, got {page!r}")
    while True:  # ends: every page lists keys above the last one
        # Taken on the engine task, returned once everything before it is committed:
        # the keys in memory not yet in the store, then the store's.
        # (key -> live here: a deleted one is left out even if the store lists it.)
        unsaved: dict[str, bool] = await owner.node.call(lambda r, now: r.unsaved_keys())
        stored = await owner.store.keys(prefix, after, page)
        extra = [
            k
            for k, live in unsaved.items()
            if live and (prefix is None or k.startswith(prefix)) and (after is None or k > after)
        ]
        merged = sorted({k for k in stored if unsaved.get(k, True)} | set(extra))
        if len(stored) == page:  # more in the store: list only up to its last key
            merged = [k for k in merged if k <= stored[-1]]
        for key in merged:
            yield key
        if len(stored) < page:
            return
        after = stored[-1]  # (every key up to it is listed or left out by now)


async def delete_key(
    owner: KeyOwner,
    key: str,
    kind: str | None,
    *,
    w: Any,
    timeout: float | None,
    strict: bool | None,
) -> WriteResult:
    """Delete the object at ``key`` (see the module docstring and ``Peer.delete``)."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    if kind is None:
        held = await owner.node.kinds(key)
        if not held:
            raise KeyError(f"nothing to delete: {key!r} is not held here")
        if len(held) > 1:
            raise KindClash(key, held)
        kind = held[0]
    make = _HANDLES.get(kind) if isinstance(kind, str) else None
    if make is None:
        raise ValueError(f"unknown CRDT kind {kind!r}; known: {', '.join(_HANDLES)}")
    return await make(owner, key).delete(w=w, timeout=timeout, strict=strict)
