"""Shared hypothesis profile, strategies and the operation interpreter for the CRDT law tests.

Operations are plain JSON lists so that the same form drives hypothesis histories and the
golden vectors (``tests/crdt/golden/*.jsonl``):

* a *mutation* ``[replica, mutator, *args]`` runs ``mutator`` on that replica's state, e.g.
  ``["A", "increment", 2]``, ``["B", "add", "milk"]``, ``["A", "remove", "milk"]``,
  ``["A", "set", "x", 1000]`` (LWW: value, then the local clock ``now_ms``),
  ``["A", "update", "k", "orset", ["add", "milk"]]`` (ORMap: key, kind, inner operation without
  the replica — the replica of the step is used), ``["A", "remove", "k"]`` (ORMap),
  ``["A", "clear"]`` (the observed reset of a delete; LWW: ``["A", "clear", 1000]``, a
  tombstone at the local clock ``now_ms``);
* a *merge* ``["merge", dst, src]`` joins the full state of ``src`` into ``dst``;
* a *delivery* ``["deliver", dst, i]`` joins the ``i``-th delta made so far (0-based, in
  creation order) into ``dst``.

:func:`run_history` executes a list of steps on replicas ``A``, ``B``, ``C`` and records every
delta and every intermediate state, so the law tests draw states that belong to one causal
history (states built independently with the same replica ids would reuse dots and are not
legal CRDT states).

Test modules import these names with ``from tests.crdt.conftest import ...`` (the repository
root is on ``sys.path`` through pytest's ``pythonpath``).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import crdt

__all__ = [
    "KINDS",
    "REPLICAS",
    "History",
    "apply_op",
    "biased_op",
    "canonical_bytes",
    "crdt_settings",
    "elements",
    "history_steps",
    "json_values",
    "new",
    "ops_for",
    "run_history",
]

# The profile of these tests, applied per test (``@crdt_settings``) rather than loaded, so that
# it does not change the defaults of other packages' hypothesis tests in the same session.
# Derandomized (a fixed seed) by default; SHOAL_HYPOTHESIS_RANDOM=1 explores new examples and
# SHOAL_HYPOTHESIS_EXAMPLES=N runs more of them.
settings.register_profile(
    "shoal-crdt",
    max_examples=int(os.environ.get("SHOAL_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("SHOAL_HYPOTHESIS_RANDOM", "") != "1",
    print_blob=True,
)
crdt_settings = settings.get_profile("shoal-crdt")

REPLICAS = ("A", "B", "C")
KINDS = ("gcounter", "pncounter", "lww", "mvregister", "orset", "ormap")


def new(kind: str) -> Any:
    """A bottom (fresh) state of ``kind``."""
    return crdt.new(kind)


def canonical(value: Any) -> str:
    """Canonical JSON text of a JSON value (a stable sort key)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def canonical_bytes(x: Any) -> bytes:
    """The canonical encoding of a CRDT state as bytes (what the store and the wire keep)."""
    return json.dumps(x.to_dict(), sort_keys=True, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- JSON values

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(alphabet='abcxyzé€ "\\', max_size=6)
)

# Any JSON value (registers hold these).
json_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet="abk", max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)

# Hashable JSON values (set elements, map keys). Mostly a few hot elements, so that removes
# and re-adds meet often, with near-collisions among them (1, 1.0 and True are three
# different elements), and now and then anything from a wider pool.
_hot = st.sampled_from(["milk", "eggs", 1, True])
_element_pool = ["milk", "eggs", "ham", 1, 1.0, True, 0, False, None, "", ["milk", 1], []]
elements: st.SearchStrategy[Any] = st.one_of(
    _hot,
    _hot,
    _hot,
    st.sampled_from(_element_pool),
    st.lists(st.integers(0, 3) | st.sampled_from(["a", "b"]), max_size=2),
)

# ORMap keys are bound to one kind each, so that two replicas never create one key with two
# different kinds (a conflict the map's contract does not define).
MAP_KEYS: dict[str, tuple[Any, ...]] = {
    "gcounter": ("hits",),
    "pncounter": ("stock", 7),
    "lww": ("title",),
    "mvregister": ("note",),
    "orset": ("cart", ["tags", 1]),
    "ormap": ("child",),
}

MAX_MAP_DEPTH = 2


def _now_ms() -> st.SearchStrategy[int]:
    # A narrow band of wall-clock times so that timestamps tie often (ties broken by replica).
    return st.integers(min_value=1_000, max_value=1_004)


# The kinds whose view inside an ORMap has ``clear`` too (the embedded counters and LWW
# register are cleared by removing their key).
_CLEARED_IN_MAPS = ("mvregister", "orset", "ormap")


@functools.cache
def ops_for(kind: str, depth: int = 0) -> st.SearchStrategy[list[Any]]:
    """Operations (without the replica) for a state of ``kind`` (cached: building is slow).

    About one operation in eight is a ``clear`` (at the top level for every kind, and inside
    maps for the kinds whose view has one)."""
    ops = _updates_for(kind, depth)
    if depth and kind not in _CLEARED_IN_MAPS:
        return ops
    clear: st.SearchStrategy[list[Any]] = st.just(["clear"])
    if kind == "lww":  # a tombstone at a local clock, as set takes one
        clear = st.tuples(st.just("clear"), _now_ms()).map(list)
    return st.one_of(*[ops] * 7, clear)


def _updates_for(kind: str, depth: int) -> st.SearchStrategy[list[Any]]:
    n = st.integers(min_value=1, max_value=5)
    if kind == "gcounter":
        return st.tuples(st.just("increment"), n).map(list)
    if kind == "pncounter":
        return st.tuples(st.sampled_from(["increment", "decrement"]), n).map(list)
    if kind == "lww":
        return st.tuples(st.just("set"), json_values, _now_ms()).map(list)
    if kind == "mvregister":
        return st.tuples(st.just("set"), json_values).map(list)
    if kind == "orset":
        return st.tuples(st.sampled_from(["add", "remove"]), elements).map(list)
    if kind == "ormap":
        kinds = [k for k in KINDS if k != "ormap" or depth + 1 < MAX_MAP_DEPTH]

        def update(k: str) -> st.SearchStrategy[list[Any]]:
            return st.tuples(
                st.just("update"),
                st.sampled_from(MAP_KEYS[k]),
                st.just(k),
                ops_for(k, depth + 1),
            ).map(list)

        all_keys = [key for k in kinds for key in MAP_KEYS[k]]
        removes = st.tuples(st.just("remove"), st.sampled_from(all_keys)).map(list)
        return st.one_of(*[update(k) for k in kinds]) | removes
    raise ValueError(f"unknown kind {kind!r}")


def apply_op(state: Any, replica: str, op: list[Any]) -> Any:
    """Run one operation on ``state`` as ``replica`` and return the mutator's delta."""
    name, *args = op
    if name in ("increment", "decrement"):
        return getattr(state, name)(replica, *args)
    if name == "set":
        if len(args) == 2:  # LWW: value, now_ms
            value, now_ms = args
            return state.set(replica, value, now_ms=now_ms)
        return state.set(replica, args[0])
    if name == "add":
        return state.add(replica, args[0])
    if name == "remove":
        return state.remove(args[0])
    if name == "update":
        key, kind, inner = args
        return state.update(replica, key, kind, lambda c: apply_op(c, replica, inner))
    if name == "clear":
        if args:  # LWW: a tombstone at the local clock now_ms
            return state.clear(replica, now_ms=args[0])
        return state.clear()
    raise ValueError(f"unknown operation {op!r}")


# --------------------------------------------------------------------------- histories


def _json_form(x: Any) -> Any:
    """An element or key as ``value`` shows it, back in JSON form (tuples as lists)."""
    if type(x) is tuple:
        return [_json_form(i) for i in x]
    return x


def _held(state: Any) -> list[Any]:
    """The elements (ORSet) or keys (ORMap) ``state`` holds now, in a stable order."""
    held = state.value if isinstance(state.value, frozenset) else list(state.value)
    return sorted((_json_form(x) for x in held), key=canonical)


def _retarget(draw: Any, state: Any, op: list[Any]) -> list[Any]:
    """Point half of the removes at something the state holds (blind removes rarely hit)."""
    if op[0] == "remove" and draw(st.booleans()):
        held = _held(state)
        if held:
            return ["remove", draw(st.sampled_from(held))]
    if op[0] == "update" and op[3][0] in ("remove", "update"):
        _, key, kind, inner = op
        inner_state = _embedded(state, key, kind)
        if inner_state is not None:
            return ["update", key, kind, _retarget(draw, inner_state, inner)]
    return op


def _embedded(state: Any, key: Any, kind: str) -> Any:
    """A stand-in for the value of an ORSet/ORMap under ``key`` (just ``value`` is needed)."""
    v = state.value.get(key if type(key) is not list else tuple(key))
    if v is None:
        return None

    class _View:
        value = v

    return _View()


def biased_op(draw: Any, kind: str, state: Any) -> list[Any]:
    """An operation for ``state`` (of ``kind``), removes often aimed at what it holds."""
    return _retarget(draw, state, draw(ops_for(kind)))


@st.composite
def history_steps(draw: Any, kind: str, min_size: int = 3, max_size: int = 16) -> list[list[Any]]:
    """Random steps on replicas A, B, C: mutations, with full-state merges mixed in.

    The steps are drawn against a shadow run so that removes hit present elements and keys.
    """
    n = draw(st.integers(min_size, max_size))
    shadow = {r: new(kind) for r in REPLICAS}
    steps: list[list[Any]] = []
    for _ in range(n):
        if draw(st.integers(0, 3)) == 0:
            dst, src = draw(st.sampled_from(REPLICAS)), draw(st.sampled_from(REPLICAS))
            shadow[dst].merge(shadow[src].copy())
            steps.append(["merge", dst, src])
            continue
        replica = draw(st.sampled_from(REPLICAS))
        op = biased_op(draw, kind, shadow[replica])
        apply_op(shadow[replica], replica, op)
        steps.append([replica, *op])
    return steps


@dataclass
class History:
    """What :func:`run_history` did: final states, deltas in creation order, every state seen."""

    kind: str
    states: dict[str, Any]
    deltas: list[tuple[str, Any]] = field(default_factory=list)  # (origin replica, delta)
    snapshots: list[Any] = field(default_factory=list)  # copies of every intermediate state


def run_history(kind: str, steps: list[list[Any]]) -> History:
    """Execute ``steps`` (see the module docstring) on fresh replicas A, B, C of ``kind``."""
    h = History(kind, {r: new(kind) for r in REPLICAS})
    h.snapshots.append(new(kind))
    for step in steps:
        if step[0] == "merge":
            _, dst, src = step
            h.states[dst].merge(h.states[src].copy())
            h.snapshots.append(h.states[dst].copy())
            continue
        if step[0] == "deliver":
            _, dst, i = step
            h.states[dst].merge(h.deltas[i][1])
            h.snapshots.append(h.states[dst].copy())
            continue
        replica, *op = step
        delta = apply_op(h.states[replica], replica, op)
        h.deltas.append((replica, delta))
        h.snapshots.append(h.states[replica].copy())
    return h
