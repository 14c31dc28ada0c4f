"""The engine's input/output API as its adapters use it: :class:`ReplicaAPI`.

The asyncio node and the simulator drive a replica only through these methods;
:class:`sync.replica.Replica` implements them, and a test may drive a stand-in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from crdt import CRDT

__all__ = ["ReplicaAPI"]


class ReplicaAPI(Protocol):
    """The engine's input/output API as its adapters use it (the asyncio node, the
    simulator): :class:`Replica` implements it; a test may drive a stand-in through it."""

    def local_update(
        self,
        op_id: int,
        key: str,
        kind: str,
        fn: Callable[[Any], Any],
        now: float,
        *,
        w: Any = None,
        strict: bool | None = None,
        timeout: float | None = None,
        checked: bool = False,
    ) -> object: ...

    def local_read(
        self,
        op_id: int,
        key: str,
        now: float,
        *,
        kind: str | None = None,
        r: Any = None,
        strict: bool | None = None,
        timeout: float | None = None,
    ) -> object: ...

    def receive(self, peer_id: str, message: Any, now: float) -> object: ...

    def peer_up(
        self,
        peer_id: str,
        now: float,
        *,
        address: str | None = None,
        site: str | None = None,
        relay: bool = False,
        home: bool = True,
    ) -> object: ...

    def peer_down(self, peer_id: str, now: float) -> object: ...

    def links_connecting(
        self, count: int, now: float, *, failures: Mapping[str, str] | None = None
    ) -> object: ...

    def announce(self, address: str | None, now: float) -> object: ...

    def forget(self, peer_id: str, now: float, *, by: str = ...) -> object: ...

    def unforget(self, peer_id: str, now: float, *, by: str = ...) -> object: ...

    def tick(self, now: float) -> object: ...

    def effects(self) -> list[Any]: ...

    def next_deadline(self) -> float | None: ...

    wall_offset: float

    def value(self, key: str, kind: str | None = None) -> CRDT | None: ...

    def kinds_of(self, key: str) -> tuple[str, ...]: ...

    def current_value(self, key: str, kind: str | None = None) -> Any: ...

    def status(self) -> dict[str, Any]: ...

    def wants_keys(self, keys: Iterable[str]) -> list[str]: ...

    def wants_message(self, peer_id: str, message: Any) -> tuple[list[str], list[int]]: ...

    def admit(
        self, keys: Iterable[str], rows: Iterable[Any], partitions: Iterable[int] = ()
    ) -> None: ...

    def snapshot_page(
        self,
        read: Any,
        rows: Iterable[Any],
        end: bool,
        now: float,
        *,
        totals: Mapping[int, tuple[int, int]] | None = None,
    ) -> object: ...

    def checkpoint_all(self, now: float) -> None: ...

    def unsaved_keys(self) -> dict[str, bool]: ...

    def keys(self) -> list[str]: ...

    def whereabouts(self, key: str, dot: Any = None) -> Any: ...
