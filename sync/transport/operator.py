"""The operator's membership actions on a running peer: forget a replica, take it back.

Forgetting is an operator's decision on *this* peer only: no peer is told, and no member can
ask another to forget anyone (there is no such message). The operator forgets a replica on
each peer (``shoal forget URL ID`` per peer, or ``peer.forget(id)`` in an embedding app);
each peer logs it at WARNING with who asked. It can be undone (``unforget``,
``shoal forget --undo``).

:func:`admin_reply` answers an :class:`~sync.transport.auth.AdminRequest` that an
authenticated admin link made (``shoal forget``): it refuses an id this peer does not know,
says what forgetting would do (``dry_run``, which ``shoal forget`` asks before its
confirmation), or does it. It reaches the peer through :class:`Forgetter` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .auth import AdminReply, AdminRequest

__all__ = ["Forgetter", "admin_reply", "describe"]


class Forgetter(Protocol):
    """What :func:`admin_reply` needs of a peer."""

    @property
    def replica_id(self) -> str: ...

    def status_now(self) -> dict[str, Any]: ...

    async def forget(self, replica_id: str, *, by: str = ...) -> None: ...

    async def unforget(self, replica_id: str, *, by: str = ...) -> None: ...


def describe(status: Mapping[str, Any], me: str, op: str, replica: str) -> tuple[bool, str]:
    """Whether ``op`` (``"forget"``/``"unforget"``) of ``replica`` can be done on the peer
    whose engine status is ``status``, and what it would do (or why not)."""
    known = list(status.get("peers_known") or [])
    forgotten = list(status.get("forgotten") or [])
    if replica == me:
        return False, f"{replica} is this peer itself"
    if op == "unforget":
        if replica not in forgotten:
            return False, f"{replica} is not forgotten here"
        return True, (
            f"{replica} becomes a member of this peer again: back on its ring if it is a home, "
            "and its links are accepted"
        )
    if replica in forgotten:
        return False, f"{replica} is forgotten here already (shoal forget --undo takes it back)"
    if replica not in known:
        shown = ", ".join(known) or "none"
        return False, f"unknown replica id {replica} (the peers known here: {shown})"
    up = replica in (status.get("peers_up") or [])
    home = replica not in (status.get("non_homes") or [])
    return True, (
        f"{replica} ({'a home' if home else 'not a home'}, "
        f"{'connected' if up else 'not connected'}) leaves this peer's ring for good: "
        "its hints here are dropped, compaction here no longer waits for it and its links "
        "are refused. Other peers keep it until it is forgotten on each of them."
    )


async def admin_reply(peer: Forgetter, request: AdminRequest) -> AdminReply:
    """Answer one admin request (see the module docstring)."""
    engine = peer.status_now().get("engine") or {}
    ok, detail = describe(engine, peer.replica_id, request.op, request.replica)
    if not ok or request.dry_run:
        return AdminReply(ok=ok, detail=detail[:1000])
    by = f"operator {request.operator or '(unnamed)'} over an admin link"
    try:
        if request.op == "forget":
            await peer.forget(request.replica, by=by)
        else:
            await peer.unforget(request.replica, by=by)
    except (ValueError, TypeError) as exc:
        return AdminReply(ok=False, detail=str(exc)[:1000])
    done = "forgot" if request.op == "forget" else "took back"
    return AdminReply(ok=True, detail=f"{done} {request.replica}: {detail}"[:1000])
