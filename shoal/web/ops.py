"""The client API's JSON: mutations in, objects and errors out. No HTTP here.

A mutation is ``{"kind": K, "op": O, "args": [...]}`` plus the write options ``w``,
``timeout``, ``strict`` and the precondition ``if_version``. :func:`parse_mutation` checks
its shape (the kind, the operation's name and its number of arguments) and
:func:`mutation_fn` turns it into the function the engine applies to the key's CRDT: the
CRDT's own mutator, called with this peer's replica id, so that every value is checked by
the same code as in the Python API (a value that is not JSON, ``n < 1``, a key of another
kind: refused, nothing changed). The operations of each kind:

======================  ============================================================
kind                    op (args)
======================  ============================================================
``gcounter``            ``increment`` (``[]`` or ``[n]``)
``pncounter``           ``increment``, ``decrement`` (``[]`` or ``[n]``)
``lww``                 ``set`` (``[value]``)
``mvregister``          ``set`` (``[value]``)
``orset``               ``add``, ``remove`` (``[element]``)
``ormap``               ``update`` (``[key, {"kind", "op", "args"}]``, nested),
                        ``remove`` (``[key]``)
======================  ============================================================

An object is shown as ``{"key", "kind", "value", "version"}`` (plus ``"siblings"``, their
number, for a multi-value register): the value in JSON (a set as a list sorted by its JSON
text, a register's siblings as a list in the register's stable order, a map as an object)
and the version: the causal context ``{"vv": {replica: n}, "cloud": [[replica, n], ...]}``
of a causal kind and the per-replica totals of a counter as ``vv``, each with the
``digest`` of the state (:func:`sync.digest.state_digest`: the same on every replica that
holds the same state), and the winning ``timestamp`` of an LWW register. The digest is
there for what the rest does not show: an observed remove (a set's element, a map's entry,
a register's value) leaves the context as it was, a counter's reset its totals. An object
with nothing live (never written, emptied, deleted: ``is_live()`` is false) has the empty
version ``{"vv": {}, "cloud": []}``, whatever its kind and however it came to hold nothing:
a reader sees nothing in each case, and a write made against "nothing here" goes through
as long as nothing is. ``if_version`` is compared to the version on the engine's task,
just before the mutator runs: a write made against a version that is no longer current is
refused (:class:`VersionMismatch`) and changes nothing. Clients use it to resolve siblings
they have shown, without silently superseding one that arrived since, nor bringing back
what was removed or deleted since.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crdt import CRDT, KINDS, LWWRegister
from sync.digest import state_digest
from sync.errors import named_kinds

__all__ = [
    "OPS",
    "ApiError",
    "Mutation",
    "Op",
    "VersionMismatch",
    "json_value",
    "mutation_fn",
    "object_view",
    "parse_mutation",
    "version_of",
    "write_view",
]

# kind -> op -> (fewest, most) arguments
OPS: dict[str, dict[str, tuple[int, int]]] = {
    "gcounter": {"increment": (0, 1)},
    "pncounter": {"increment": (0, 1), "decrement": (0, 1)},
    "lww": {"set": (1, 1)},
    "mvregister": {"set": (1, 1)},
    "orset": {"add": (1, 1), "remove": (1, 1)},
    "ormap": {"update": (2, 2), "remove": (1, 2)},  # remove [key] or [key, kind]
}
MAX_DEPTH = 16  # nested map updates


class ApiError(Exception):
    """A request the API refuses: ``status`` (HTTP), ``code`` (stable, for programs) and
    ``message`` (for people); ``extra`` fields join the error object."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class VersionMismatch(Exception):
    """``if_version`` is not the key's current version; ``current`` is."""

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__("the key changed since that version was read")
        self.current = current


@dataclass(frozen=True, slots=True)
class Op:
    """One operation on one kind; ``inner`` is the embedded operation of a map update."""

    kind: str
    name: str
    args: tuple[Any, ...]
    inner: Op | None = None


@dataclass(frozen=True, slots=True)
class Mutation:
    op: Op
    w: Any = None
    timeout: Any = None
    strict: Any = None
    if_version: dict[str, Any] | None = None


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def _parse_op(body: Any, where: str, depth: int = 0) -> Op:
    if depth > MAX_DEPTH:
        raise _bad(f"map updates nest at most {MAX_DEPTH} deep")
    if not isinstance(body, dict):
        raise _bad(f"{where} must be a JSON object")
    kind, name, args = body.get("kind"), body.get("op"), body.get("args", [])
    # (Not a str: a list or an object would not even hash, and must be a 400 all the same.)
    if not isinstance(kind, str) or kind not in OPS:
        raise _bad(f"{where}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(name, str) or name not in OPS[kind]:
        allowed = ", ".join(OPS[kind])
        raise _bad(f"{where}.op of {named_kinds([kind])} must be one of {allowed}, got {name!r}")
    if not isinstance(args, list):
        raise _bad(f"{where}.args must be a JSON array")
    low, high = OPS[kind][name]
    if not low <= len(args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise _bad(f"{where}: {kind} {name} takes {want} argument(s), got {len(args)}")
    inner = None
    if (
        (kind, name) == ("ormap", "remove")
        and len(args) == 2
        and not (isinstance(args[1], str) and args[1] in OPS)
    ):
        raise _bad(f"{where}.args[1]: the kind to remove must be one of {', '.join(KINDS)}")
    if (kind, name) == ("ormap", "update"):
        inner = _parse_op(args[1], f"{where}.args[1]", depth + 1)
        args = args[:1]
    return Op(kind, name, tuple(args), inner)


def parse_mutation(body: Any) -> Mutation:
    """The mutation of a POST body; :class:`ApiError` (400) for a malformed one."""
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    known = {"kind", "op", "args", "w", "timeout", "strict", "if_version"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise _bad(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    op = _parse_op(body, "body")
    if_version = body.get("if_version")
    if if_version is not None and not isinstance(if_version, dict):
        raise _bad("if_version must be a version object, as GET returned it")
    return Mutation(op, body.get("w"), body.get("timeout"), body.get("strict"), if_version)


def _apply(obj: Any, op: Op, rid: str, now_ms: int) -> Any:
    """Run ``op``'s mutator on ``obj`` (a CRDT, or a map's view of an embedded one)."""
    args = op.args
    match op.kind, op.name:
        case ("gcounter" | "pncounter", "increment"):
            return obj.increment(rid, *args)
        case ("pncounter", "decrement"):
            return obj.decrement(rid, *args)
        case ("lww", "set"):
            return obj.set(rid, args[0], now_ms=now_ms)
        case ("mvregister", "set"):
            return obj.set(rid, args[0])
        case ("orset", "add"):
            return obj.add(rid, args[0])
        case ("orset" | "ormap", "remove"):
            return obj.remove(*args)  # (a map's: [key] or [key, kind])
        case ("ormap", "update"):
            inner = op.inner
            assert inner is not None  # set by _parse_op for every map update
            return obj.update(rid, args[0], inner.kind, lambda sub: _apply(sub, inner, rid, now_ms))
    raise AssertionError(f"no mutator for {op.kind} {op.name}")  # OPS and this match agree


def mutation_fn(mutation: Mutation, replica_id: str) -> Callable[[CRDT], Any]:
    """What the engine runs on the key's object: the precondition, then the mutator."""
    now_ms = int(time.time() * 1000)
    expected = mutation.if_version

    def fn(obj: CRDT) -> Any:
        if expected is not None:
            current = version_of(obj)
            if current != expected:
                raise VersionMismatch(current)
        return _apply(obj, mutation.op, replica_id, now_ms)

    return fn


def json_value(value: Any) -> Any:
    """A CRDT value in JSON: a set as a list sorted by JSON text, a tuple as a list, a map
    as an object (a key that is not a string as its JSON text)."""
    if isinstance(value, frozenset | set):
        items = [json_value(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {
            k if isinstance(k, str) else json.dumps(json_value(k), sort_keys=True): json_value(v)
            for k, v in value.items()
        }
    return value


def version_of(state: CRDT) -> dict[str, Any]:
    """The version of a CRDT state, in JSON (see the module docstring)."""
    if not state.is_live():
        return {"vv": {}, "cloud": []}  # nothing here (see the module docstring)
    if isinstance(state, LWWRegister):  # every write has a timestamp of its own
        return {"timestamp": json_value(state.timestamp)}
    ctx = getattr(state, "context", None)
    if ctx is not None:
        encoded = ctx.to_dict()
        version = {"vv": dict(sorted(encoded["vv"].items())), "cloud": json_value(encoded["cloud"])}
    else:
        encoded = state.to_dict()  # counters: per replica, its operations by weight
        totals: dict[str, int] = {}
        for part in ("counts", "p", "n"):
            for replica, n in encoded.get(part, {}).items():
                totals[replica] = totals.get(replica, 0) + n
        version = {"vv": dict(sorted(totals.items())), "cloud": []}
    # An observed remove (or a reset a concurrent update survived) changes the state but
    # not the context or the totals: the digest of the state's canonical text sees it.
    version["digest"] = state_digest(state)
    return version


def object_view(key: str, state: CRDT) -> dict[str, Any]:
    """How the API shows one key's object."""
    view: dict[str, Any] = {"key": key, "kind": state.kind, "value": json_value(state.value)}
    if state.kind == "mvregister":
        view["siblings"] = len(view["value"])
    view["version"] = version_of(state)
    return view


def write_view(result: Any) -> dict[str, Any]:
    """A :class:`~sync.effects.WriteResult` in JSON (``None``: no result came)."""
    if result is None:
        return {"acks": 0, "required": None, "acked_by": [], "hinted": []}
    return {
        "acks": result.acks,
        "required": result.required,
        "acked_by": list(result.acked_by),
        "hinted": list(result.hinted),
    }
