"""The contract every CRDT meets, the registry of kinds, and the pure ``join``.

Every CRDT type (``GCounter``, ``PNCounter``, ``LWWRegister``, ``MVRegister``, ``ORSet``,
``ORMap``) is a join-semilattice state with (Shapiro et al. 2011; Almeida et al. 2018):

- ``merge(other)``: the join, in place; commutative, associative, idempotent; never raises
  for an argument of the same kind (another kind: ``TypeError``);
- mutators taking the replica id first that apply themselves and return their *delta*, a
  state of the same class whose join into the old state gives the new one;
- ``value``, ``copy()``, ``is_bottom()`` (equal to a fresh instance), ``==`` independent of
  internal ordering (instances are mutable, so unhashable);
- ``clear(...)``: the observed reset that deleting an object writes, a mutator returning
  its delta like the others: it removes everything this replica has seen, and an update
  concurrent with it survives the join (the causal types, and the counters through a reset
  vector); ``LWWRegister.clear(replica, ...)`` writes a timestamped tombstone instead (a
  later write wins, as in Cassandra). ``is_live()``: the state holds a live contribution (a
  value, an element, a key, an increment not reset); a cleared state, or a bottom, is not
  live, and then ``value`` is the bottom's;
- ``split(max_bytes)``: the state as deltas of at most ``max_bytes`` each when encoded,
  whose join is the state, any subset of which in any order is a valid delta (how an object
  bigger than one message travels: ``crdt/_split.py``); ``[copy]`` when it fits;
- a canonical codec: ``to_dict()`` returns ``{"type": kind, "v": 1, ...}`` such that equal
  states give byte-equal ``json.dumps(d, sort_keys=True)``; ``from_dict`` refuses anything
  else with a :class:`~crdt.errors.DecodeError` naming the bad field; ``to_json()`` is the
  text ``json.dumps(to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)``
  gives, byte for byte, and raises what it raises (ValueError for an int too long for
  ``str``; no state holds a non-finite float: the mutators and decoders refuse them).

The package imports the standard library only (``tests/test_layering.py`` checks it).

``new(kind)`` makes a bottom, ``from_dict(d)`` dispatches on ``d["type"]``, ``KINDS`` lists
the kinds, and ``check_json(value)`` is the JSON-value check used by every mutator.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, TypeVar

from crdt._json import check_json
from crdt.errors import DecodeError
from crdt.gcounter import GCounter
from crdt.lww import LWWRegister
from crdt.mvregister import MVRegister
from crdt.ormap import ORMap
from crdt.orset import ORSet
from crdt.pncounter import PNCounter

__all__ = ["CRDT", "KINDS", "check_json", "from_dict", "join", "merge_dict", "new"]

T = TypeVar("T", bound="CRDT")


class CRDT(Protocol):
    """What the store and the replication engine rely on (docs/architecture.md section 1)."""

    kind: ClassVar[str]

    def merge(self, other: Any) -> None: ...

    @property
    def value(self) -> Any: ...

    def copy(self) -> Any: ...

    def is_bottom(self) -> bool: ...

    def is_live(self) -> bool: ...

    def max_counter(self, replica: str) -> int:
        """The largest counter of ``replica`` the state holds (a dot's, or a counter's
        count): only ``replica``'s own events raise it."""
        ...

    def split(self, max_bytes: int) -> list[Any]: ...

    def to_dict(self) -> dict[str, Any]: ...

    def to_json(self) -> str:
        """Exactly ``json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"),
        allow_nan=False)`` (the compact form: it begins ``{"type":"<kind>"``), possibly built
        without the dict (ORSet, ORMap: no tracked object per element, see their ``to_json``).
        """
        ...

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any: ...


_TYPES: dict[str, type[Any]] = {
    "gcounter": GCounter,
    "pncounter": PNCounter,
    "lww": LWWRegister,
    "mvregister": MVRegister,
    "orset": ORSet,
    "ormap": ORMap,
}

KINDS: tuple[str, ...] = tuple(_TYPES)


def new(kind: str) -> Any:
    """A bottom (fresh, empty) CRDT of ``kind``; ValueError for an unknown kind."""
    try:
        cls = _TYPES[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown CRDT kind {kind!r}; known: {', '.join(KINDS)}") from None
    return cls()


def from_dict(d: dict[str, Any]) -> Any:
    """Decode any kind from its ``to_dict()`` form; DecodeError naming the bad field."""
    if type(d) is not dict:
        raise DecodeError("$", f"expected a JSON object, got {type(d).__name__}")
    if "type" not in d:
        raise DecodeError("type", "missing")
    kind = d["type"]
    cls = _TYPES.get(kind) if type(kind) is str else None
    if cls is None:
        raise DecodeError("type", f"unknown CRDT type {kind!r}; known: {', '.join(KINDS)}")
    return cls.from_dict(d)


def merge_dict(state: Any, d: object, skip: str = "") -> bool:
    """Join into ``state``, in place, the state of its kind that ``d`` encodes, if ``d`` is a
    delta the kind joins without decoding it first, and True; False, nothing changed, for
    any other ``d``, valid or not: then ``state.merge(from_dict(d))`` (which raises what it
    raises for a bad ``d``). Taken: an ORSet add or ORMap update of one new dot, not of the
    replica ``skip``, to an element or key ``state`` does not hold (how every delta of a
    busy peer's writes comes in). What is taken, ``from_dict`` accepts, and the join is
    the same (``tests/crdt/test_merge_dict.py``)."""
    fast = getattr(state, "merge_dict", None)
    return fast is not None and fast(d, skip) is True


def join(a: T, b: T) -> T:
    """The join of two states of the same kind, as a new state (neither input changes)."""
    out: T = a.copy()
    out.merge(b)
    return out
