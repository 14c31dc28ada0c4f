"""A structure-aware fuzzer of hostile peers: valid-shaped messages from a member that holds
the group secret (so after authentication), fed to the sans-I/O engine.

A peer that can make the store refuse a commit stops its victim (fail-stop is for local disk
failures). So, for every generated message, through the real decoder and then
``Replica.receive``:

* nothing but :class:`~sync.errors.RemoteProtocolError` escapes (no crash of the input);
* a refused message changes nothing: no effect queued, and the replica's status, summaries,
  values and next deadline are as before;
* every ``Persist`` the engine emits, then and afterwards (a local write in every partition,
  a tick an hour later that fires every timer, a peer going down and up), is one the store
  accepts: :func:`store.sql.prepare` (the store's own validation, without a database) for
  every case, and a real SQLite store (commit, then a reopen whose load rebuilds the same
  values) for a smaller number of cases.

Messages are JSON built by hand in the shapes of :mod:`sync.messages` (so the decoder sees
what a hostile peer would send, and refuses some of it itself), with hostile contents: log
dots of the receiver's own origin, counters near the 63-bit limit, empty keys and ids, NUL
characters, keys in the wrong partition, CRDT states of the wrong kind or malformed, huge
counts, timestamps far ahead, read replies for pending reads, acks of pending pushes,
members and summaries made up, digests and digest-read messages well formed and spoilt.
Seeded (``derandomize``): the same cases every run.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crdt
from crdt import Timestamp
from store import Store
from store.sql import prepare
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import Loaded, PeerRecord, Persist, Send
from sync.errors import RemoteProtocolError
from sync.member_cards import Cards
from sync.replica import Replica
from sync.ring import partition_of
from sync.signing import Signer
from sync.simnet.disk import SimDisk
from sync.transport.node import loaded_from_store

__all__: list[str] = []

ME = "R"
PEERS = ("P", "Q", "S")  # P and Q are up, S is known and down
PARTS = 8
CONFIG = ReplicaConfig(
    n=3, partitions=PARTS, vnodes=4, write_timeout=1.0, anti_entropy_interval=2.0, seed=7
)
NOW = 1_000.0
MAX_INT = 2**63 - 1

# Keys the base state holds (one per kind), fresh keys, and keys no store should hold.
HELD = {"g": "gcounter", "pn": "pncounter", "l": "lww", "mv": "mvregister", "s": "orset"}
HELD["m"] = "ormap"
FRESH = ["new0", "new1", "é", "k" * 300]
ODD_KEYS = ["", "a\x00b", "\x00"]
# Local writes after the hostile messages, one key per partition (never in a message).
AFTER = {partition_of(f"after{i}", PARTS): f"after{i}" for i in range(200)}
assert len(AFTER) == PARTS

IDS = [ME, *PEERS, "Z9", "relay.eu-1", "", "a b", "x\x00", "é", "i" * 129]
SEQS = [1, 2, 3, 4, 7, 100, 2**31, 2**62 - 1, 2**62, 2**62 + 1, MAX_INT - 1, MAX_INT]


def _partition(key: str) -> int:
    return partition_of(key, PARTS)


# -- the base state ------------------------------------------------------------------------------


def _incr(replica: str, n: int = 1) -> Callable[[Any], Any]:
    return lambda c: c.increment(replica, n)


_LOCAL: dict[str, Callable[[Any], Any]] = {
    "g": _incr(ME),
    "pn": lambda c: c.decrement(ME, 2),
    "l": lambda r: r.set(ME, "title", now_ms=int(NOW * 1000)),
    "mv": lambda r: r.set(ME, ["milk"]),
    "s": lambda s: s.add(ME, "milk"),
    "m": lambda mm: mm.update(ME, "theme", "lww", lambda r: r.set(ME, "dark")),
}


def _base() -> tuple[bytes, list[Persist], list[int], list[int]]:
    """A replica with data of every kind, peers up and down, a pending read and pending
    writes: pickled, what it persisted, and the request ids of its read and its pushes."""
    loaded = Loaded(peers={p: PeerRecord(p) for p in PEERS})
    r = Replica(CONFIG, ME, loaded, now=NOW)
    r.peer_up("P", NOW)
    r.peer_up("Q", NOW)
    for peer in ("P", "Q"):  # our summaries asked them for state transfers of every partition
        r.receive(peer, m.Summary(parts=dict.fromkeys(range(PARTS), m.Ctx()), reply=True), NOW)
    for op, (key, fn) in enumerate(_LOCAL.items()):
        r.local_update(op, key, HELD[key], fn, NOW, w=2)
    # Entries of P for keys we hold, and a state transfer's worth of Q's.
    src = crdt.new("gcounter")
    entries = [m.Entry.of("P", _partition("g"), 1, "g", "gcounter", src.increment("P").to_dict())]
    r.receive("P", m.Push(push_id=1, entries=entries), NOW)
    r.local_read(100, "s", NOW, r=2)
    req_ids: list[int] = []
    push_ids: list[int] = []
    effects = r.effects()
    persists = [fx for fx in effects if isinstance(fx, Persist)]
    for fx in effects:
        if isinstance(fx, Send) and isinstance(fx.message, m.ReadReq | m.ReadDigest):
            req_ids.append(fx.message.req_id)
        if isinstance(fx, Send) and isinstance(fx.message, m.Push):
            push_ids.append(fx.message.push_id)
    return pickle.dumps(r), persists, req_ids, push_ids


BASE, BASE_PERSISTS, REQ_IDS, PUSH_IDS = _base()


# -- what messages are made of ---------------------------------------------------------------------
#
# Hypothesis draws each message's parts from pools made once, here, from a seeded generator
# (drawing from a pool is cheap; building CRDTs inside strategies is not, and 10,000 cases
# must run in seconds): CRDT states and deltas of every kind, each also spoilt, spelled
# otherwise, or not JSON at all.

_POOL_RNG = random.Random(20_261_204)
_VALUES: list[Any] = [None, True, 0, -1, MAX_INT, 1.5, "", "milk", "é\x00", [1, 2], {"a": 1}]
_WALLS = [0, 5, int(NOW * 1000), int(NOW * 1000) + 86_400_000, MAX_INT]
_COUNTS = [1, 2, 2**62, MAX_INT]
_DOT_REPLICAS = [ME, "P", "Q", "Z9", "é"]


def _mutate(kind: str, obj: Any, rep: str, rng: random.Random, depth: int = 0) -> Any:
    """One random mutator of ``kind`` on ``obj`` as ``rep``; returns its delta."""
    pick = rng.choice
    if kind in ("gcounter", "pncounter"):
        if kind == "pncounter" and rng.random() < 0.5:
            return obj.decrement(rep, pick(_COUNTS))
        return obj.increment(rep, pick(_COUNTS))
    if kind == "lww":
        return obj.set(rep, pick(_VALUES), Timestamp(pick(_WALLS), rng.randrange(3), rep))
    if kind == "mvregister":
        return obj.set(rep, pick(_VALUES))
    if kind == "orset":
        if rng.random() < 0.3:
            return obj.remove(pick(["milk", 1, None]))
        return obj.add(rep, pick(["milk", 1, None, "é", 2**62]))
    if rng.random() < 0.3 or depth > 1:
        return obj.remove(pick(["theme", "x"]))
    inner = pick(["gcounter", "lww", "orset", "mvregister", "ormap"])
    return obj.update(
        rep, pick(["theme", "x", 3]), inner, lambda v: _mutate(inner, v, rep, rng, depth + 1)
    )


_JUNK = [None, True, -1, 0, 2**70, 1.5, "", "x", [], {}, [1], ["x", 0], {"a": 1}]


def _spoil_within(d: Any, rng: random.Random) -> None:
    """Replace one node somewhere inside ``d`` (a field, an element, a timestamp, a dot...)
    with junk: a state spoilt within, not only at its top."""
    node = d
    while True:
        at = rng.choice(list(node) if isinstance(node, dict) else list(range(len(node))))
        child = node[at]
        if isinstance(child, dict | list) and child and rng.random() < 0.85:
            node = child
            continue
        node[at] = rng.choice(_JUNK)
        return


def _crdt_dicts(kind: str, count: int) -> list[dict[str, Any]]:
    """``count`` states or deltas of ``kind`` (``to_dict()`` forms), some spoilt."""
    rng = _POOL_RNG
    out = []
    for _ in range(count):
        obj: Any = crdt.new(kind)
        last: Any = obj
        for _ in range(rng.randint(1, 3)):
            try:
                last = _mutate(kind, obj, rng.choice(_DOT_REPLICAS), rng)
            except (TypeError, ValueError, crdt.CRDTError):
                pass  # a value the type refuses: nothing changed
        d = (obj if rng.random() < 0.5 else last).to_dict()
        spoil = rng.choice(["none"] * 6 + ["type", "v", "drop", "extra"] + ["deep"] * 4)
        if spoil == "deep":
            _spoil_within(d, rng)
        elif spoil == "type":
            d["type"] = rng.choice([*crdt.KINDS, "teleport"])
        elif spoil == "v":
            d["v"] = 2
        elif spoil == "drop":
            d.pop(sorted(d)[-1])
        elif spoil == "extra":
            d["junk"] = [1]
        out.append(d)
    return out


def _spelled(d: dict[str, Any], rng: random.Random) -> str:
    how = rng.choice(["compact"] * 6 + ["spaced", "trailing", "list", "cut"])
    if how == "compact":
        return json.dumps(d, separators=(",", ":"), ensure_ascii=False)
    if how == "spaced":
        return json.dumps(d, indent=1)
    if how == "trailing":
        return json.dumps(d, separators=(",", ":")) + " "
    if how == "list":
        return "[1, 2]"
    return json.dumps(d)[:-3]


STATES = {kind: _crdt_dicts(kind, 60) for kind in crdt.KINDS}
TEXTS = {kind: [_spelled(d, _POOL_RNG) for d in STATES[kind]] for kind in crdt.KINDS}


class Choices:
    """Hypothesis's bytes as a stream of choices (as a libFuzzer ``FuzzedDataProvider``): each
    choice reads one byte (a zero once they run out), so shrinking the bytes towards zeros
    shrinks the messages towards the first item of every pool."""

    __slots__ = ("_data", "_i")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._i = 0

    def byte(self) -> int:
        i = self._i
        self._i = i + 1
        return self._data[i] if i < len(self._data) else 0

    def pick(self, items: list[Any] | tuple[Any, ...]) -> Any:
        return items[self.byte() % len(items)]

    def upto(self, n: int) -> int:
        """An int in 0..n."""
        return self.byte() % (n + 1)

    def chance(self, eighths: int) -> bool:
        """True ``eighths`` times in 8."""
        return self.byte() % 8 < eighths


KEYS = [*HELD, *FRESH, *ODD_KEYS]
KIND_NAMES = [*crdt.KINDS, "x", ""]
GOOD_IDS = [ME, *PEERS, "Z9"]
SEQ_CHOICES = [*SEQS, *range(1, 12)]
SENDERS = ["P", "P", "P", "Q", "S", "Z9"]
REQ_IDS_OR_NOT = [*REQ_IDS, *PUSH_IDS, 0, -1]
TYPES = ["push"] * 4 + ["deltas"] * 3 + ["snapshot"] * 2 + ["summary"] * 2
TYPES += ["repair", "read_resp", "read", "ack", "forget", "ping", "hello"]
TYPES += ["digest", "part_digests", "read_digest", "read_digest_resp", "read_digest_resp"]
TYPES += ["read_fetch", "ack_except"]
# Digests as sync.digest spells them, and spoilt ones.
DIGESTS = ["0123456789abcdef", "ffffffffffffffff", "", "0123456789ABCDEF", "x" * 16, "00" * 9]


def _entry(c: Choices, partition: int | None = None) -> list[Any]:
    """An entry ``[origin, partition, seq, key, kind, delta_json]``."""
    key = c.pick(KEYS)
    kind = HELD[key] if key in HELD and c.chance(4) else c.pick(crdt.KINDS)
    text = c.pick(TEXTS[kind])
    declared = kind if c.chance(7) else c.pick([*crdt.KINDS, "x"])
    part = _partition(key)
    if partition is not None:
        part = partition
    elif c.chance(1):
        part = c.upto(PARTS + 1)
    origin = c.pick(GOOD_IDS) if c.chance(6) else c.pick(IDS)
    return [origin, part, c.pick(SEQ_CHOICES), key, declared, text]


def _crdt(c: Choices, key: str) -> dict[str, Any]:
    return c.pick(STATES[HELD.get(key) or c.pick(crdt.KINDS)])


def _ctx(c: Choices) -> dict[str, Any]:
    vv = {c.pick(IDS): c.pick([0, *SEQ_CHOICES]) for _ in range(c.upto(3))}
    return {"vv": vv, "cloud": [[c.pick(IDS), c.pick(SEQ_CHOICES)] for _ in range(c.upto(2))]}


def _cards() -> list[dict[str, Any]]:
    """Member cards (``sync.member_cards``) as a member could list them: valid ones of a
    replica with a key of its own (two, in order), and spoilt ones of each sort."""
    signer = Signer(bytes(range(32)))
    made = []
    for at, address in ((5, "ws://127.0.0.1:1"), (9, "ws://127.0.0.1:2")):
        cards = Cards(signer.replica_id, signer, "eu", True, at)
        cards.announce(address)
        made.append(cards.own().model_dump())
    good = made[0]
    other = Signer(bytes(range(1, 33)))
    return [
        *made,
        {**good, "address": "ws://127.0.0.1:9"},  # altered on the way
        {**good, "home": False},
        {**good, "at": good["at"] + 1},
        {**good, "key": other.public_key_text},  # a key that is not the id's
        {**good, "replica_id": other.replica_id},
        {**good, "sig": "not base64!"},
        {**good, "sig": "QUJD"},  # base64, not a signature
        {**good, "sig": "A" * 200},  # longer than the wire takes
        {**good, "key": None},
        {**good, "at": 0},
        {**good, "at": -1},
        {**good, "at": 2**63},
        {**good, "key": "x" * 80},
    ]


CARDS = _cards()


def _peer_info(c: Choices) -> dict[str, Any]:
    if c.chance(2):
        return dict(c.pick(CARDS))
    info: dict[str, Any] = {"replica_id": c.pick(IDS)}
    if c.chance(2):
        info["address"] = c.pick(["ws://127.0.0.1:1", "", "x\x00", "w" * 600])
    if c.chance(2):
        info["site"] = c.pick(["eu", "", "\x00"])
    return info


# A state transfer's flags and progress, well-formed or not.
PIECES = [True, False, True, 1, "yes", None]
REMAINING = [[0, 0], [3, 120], [2**62, 2**62], [-1, 0], [0, 2**62 + 1], [1], [1, 2, 3], "x"]


def _remaining(c: Choices, msg: dict[str, Any]) -> dict[str, Any]:
    """``msg`` with a ``remaining`` (half the time)."""
    return {**msg, "remaining": c.pick(REMAINING)} if c.chance(4) else msg


def message(c: Choices) -> dict[str, Any]:
    """One message as JSON (a dict), in the shape of its :mod:`sync.messages` model."""
    t = c.pick(TYPES)
    if t == "push":
        entries = [_entry(c) for _ in range(c.upto(4))]
        hint = None if c.chance(5) else c.pick(IDS)
        return {"t": t, "push_id": c.upto(5), "entries": entries, "hint_for": hint}
    if t == "deltas":
        part = c.upto(PARTS)
        entries = [_entry(c, part) for _ in range(c.upto(4))]
        msg = {"t": t, "batch_id": c.upto(5), "partition": part, "entries": entries}
        return _remaining(c, msg)
    if t == "snapshot":
        part = c.upto(PARTS)
        objects = []
        for _ in range(c.upto(3)):
            key = c.pick(KEYS)
            state = _crdt(c, key)
            kind = state.get("type") if c.chance(7) else "orset"
            # The stored text, else a spelling of any kind (some not JSON, some not objects).
            text = json.dumps(state) if c.chance(6) else c.pick(TEXTS[c.pick(crdt.KINDS)])
            obj = {"key": key, "kind": kind, "state_json": text}
            if c.chance(3):
                obj["piece"] = c.pick(PIECES)
            objects.append(obj)
            part = _partition(key) if c.chance(7) else part
        summary = _ctx(c) if c.chance(5) else None
        msg = {
            "t": t,
            "batch_id": c.upto(5),
            "partition": part,
            "objects": objects,
            "summary": summary,
            "last": c.chance(4),
        }
        return _remaining(c, msg)
    if t == "summary":
        parts = {str(c.upto(PARTS)): _ctx(c) for _ in range(c.upto(3))}
        known = [_peer_info(c) for _ in range(c.upto(3))]
        msg = {"t": t, "parts": parts, "known_peers": known, "reply": c.chance(4)}
        return {**msg, "offer": c.chance(4)} if c.chance(2) else msg
    if t == "repair":
        key = c.pick(KEYS)
        state = _crdt(c, key)
        kind = state.get("type") if c.chance(7) else "orset"
        return {"t": t, "key": key, "kind": kind, "state": state}
    if t == "read_resp":
        key = c.pick(["s", "s", *FRESH, *ODD_KEYS])
        state = _crdt(c, key) if c.chance(6) else None
        kind = state.get("type") if state is not None and c.chance(6) else c.pick(KIND_NAMES)
        msg = {"t": t, "req_id": c.pick(REQ_IDS_OR_NOT), "key": key, "kind": kind}
        return {**msg, "state": state}
    if t == "read":
        return {"t": t, "req_id": c.upto(3), "key": c.pick(KEYS), "kind": c.pick(KIND_NAMES)}
    if t == "digest":
        return {"t": t, "root": c.pick(DIGESTS), "members": c.pick(DIGESTS), "reply": c.chance(4)}
    if t == "part_digests":
        return {"t": t, "parts": {str(c.upto(PARTS)): c.pick(DIGESTS) for _ in range(c.upto(3))}}
    if t == "read_digest":
        digest = c.pick(DIGESTS) if c.chance(4) else None
        msg = {"t": t, "req_id": c.upto(3), "key": c.pick(KEYS), "kind": c.pick(KIND_NAMES)}
        return {**msg, "digest": digest}
    if t == "read_digest_resp":
        key = c.pick(["s", "s", *FRESH, *ODD_KEYS])
        body = c.upto(3)  # the same; a context; a state; nothing (holds none)
        ctx = _ctx(c) if body == 1 or c.chance(1) else None
        state = _crdt(c, key) if body == 2 or c.chance(1) else None
        kind = "orset" if c.chance(5) else c.pick(KIND_NAMES)
        if state is not None and c.chance(6):
            kind = state.get("type")
        msg = {"t": t, "req_id": c.pick(REQ_IDS_OR_NOT), "key": key, "kind": kind}
        return {**msg, "same": body == 0, "ctx": ctx, "state": state}
    if t == "read_fetch":
        msg = {"t": t, "req_id": c.upto(3), "key": c.pick(KEYS), "kind": c.pick(KIND_NAMES)}
        return {**msg, "seen": _ctx(c)}
    if t == "ack":
        return {"t": t, "ids": [c.pick(REQ_IDS_OR_NOT) for _ in range(c.upto(3))]}
    if t == "ack_except":
        skipped = [c.pick([0, 1, 2, 7, -1, 2**31]) for _ in range(c.upto(3))]
        return {"t": t, "push_id": c.pick(REQ_IDS_OR_NOT), "skipped": skipped}
    if t == "forget":
        return {"t": t, "replica_id": c.pick(IDS)}
    if t == "ping":
        return {"t": t, "nonce": 1}
    return {"t": t, "group": "g", "replica_id": "P", "nonce": "n"}


def cases(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """One to three messages, each with the peer that sends it."""
    c = Choices(data)
    return [(c.pick(SENDERS), message(c)) for _ in range(1 + c.upto(2))]


_bytes = st.binary(min_size=160, max_size=160)


# -- the checks ---------------------------------------------------------------------------------


def _snapshot(r: Replica) -> tuple[Any, ...]:
    """Everything a refused message must leave as it was."""
    return (
        json.dumps(r.status(), sort_keys=True),
        [r.summary(p).to_dict() for p in range(PARTS)],
        _values(r),
        r.next_deadline(),
        r.peers_up,
        sorted(r._membership.cards._held.items()),  # the peers' cards held
    )


def _values(r: Replica) -> dict[tuple[str, str], Any]:
    """Every object's value and state, by (key, kind)."""
    keys = r.keys()
    return {
        (k, kind): (r.current_value(k, kind), r.value(k, kind))
        for k in keys
        for kind in r.kinds_of(k)
    }


def _prepare(persist: Persist) -> None:
    """The store's own validation of a batch (raises InvalidInput / KindMismatch), then what
    the databases refuse of its rows: an integer past a signed 64-bit column (SQLite and
    PostgreSQL), a NUL character in a text column (PostgreSQL)."""
    prepared = prepare(persist, PARTS, _partition)
    rows: list[tuple[Any, ...]] = [
        *prepared.objects.values(),
        *prepared.log_rows(),
        *prepared.hints_add.values(),
        *prepared.peers.values(),
        *prepared.hints_drop,
        *prepared.summaries.items(),
        *((part, *wm.items()) for part, wm in prepared.compact),
    ]
    for row in rows:
        for value in row:
            for v in value if isinstance(value, tuple) else (value,):
                if isinstance(v, int) and not isinstance(v, bool):
                    assert -(2**63) <= v <= MAX_INT, f"{v} does not fit a column: {row}"
                elif isinstance(v, str):
                    assert "\x00" not in v, f"a NUL in a text column: {row}"


class Outcomes(Counter[str]):
    """What the cases did (the test asserts that each kind of outcome happened)."""


def _run(cases: list[tuple[str, dict[str, Any]]], sink: Callable[[Persist], None]) -> Replica:
    """Feed ``cases`` to a fresh copy of the base replica, then the follow-up inputs if it
    took any of them; every Persist goes to ``sink`` after the store's validation."""
    r: Replica = pickle.loads(BASE)
    # What the replica's store would hold, to load what it wants before an input (a state
    # transfer's objects leave its cache: it no longer holds every object).
    disk = SimDisk()
    for p in BASE_PERSISTS:
        disk.apply(p)

    def sink_too(persist: Persist) -> None:
        disk.apply(persist)
        sink(persist)

    def load(keys: list[str]) -> None:
        if keys:
            disk.fold_log()
            r.admit(keys, disk.get_objects(keys))

    now = NOW
    touched = {0}
    accepted = False
    for sender, raw in cases:
        now += 0.5
        data = json.dumps({"proto": 1, **raw}).encode()
        try:
            msg = m.decode(data)
        except RemoteProtocolError:
            OUTCOMES["refused by the decoder"] += 1
            continue
        load(r.wants_message(sender, msg)[0])
        before = _snapshot(r)
        try:
            r.receive(sender, msg, now)
        except RemoteProtocolError as exc:
            assert exc.peer == sender
            assert r.effects() == [], "a refused message queued effects"
            assert _snapshot(r) == before, f"a refused {raw['t']} changed the replica"
            OUTCOMES["refused by the engine"] += 1
            continue
        OUTCOMES["accepted"] += 1
        accepted = True
        touched |= _partitions(raw)
        _drain(r, sink_too)
    if not accepted:
        return r  # as the base, which went through all of this once
    for p in sorted(touched & set(AFTER)):
        load(r.wants_keys([AFTER[p]]))
        r.local_update(1000 + p, AFTER[p], "gcounter", _incr(ME), now)
    _drain(r, sink_too)
    r.peer_down("P", now)
    r.peer_up("P", now)
    r.tick(now + 3600.0)
    _drain(r, sink_too)
    # Hold every stored object again (a transfer's objects left the cache) so that the
    # replica can be compared with one reopened from the store.
    r.admit(*_not_held(r, disk))
    return r


def _not_held(r: Replica, disk: SimDisk) -> tuple[list[str], list[Any]]:
    wanted = r.wants_keys(sorted({key for key, _kind in disk.objects}))
    disk.fold_log()
    return wanted, disk.get_objects(wanted)


def _partitions(raw: dict[str, Any]) -> set[int]:
    """The partitions a message names (where a local write must still be possible)."""
    found = {e[1] for e in raw.get("entries", ())}
    found.update(int(p) for p in raw.get("parts", {}))
    if "partition" in raw:
        found.add(raw["partition"])
    return found


def _drain(r: Replica, sink: Callable[[Persist], None]) -> None:
    for fx in r.effects():
        if isinstance(fx, Persist):
            _prepare(fx)
            sink(fx)


OUTCOMES = Outcomes()
_FUZZ = settings(
    max_examples=10_000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_FUZZ
@given(data=_bytes)
def _fuzz_engine(data: bytes) -> None:
    _run(cases(data), lambda p: None)


@pytest.mark.timeout(600)  # about 20 s of CPU; more on a machine shared with other work
def test_10000_hostile_message_sequences_never_stop_the_engine() -> None:
    OUTCOMES.clear()
    _fuzz_engine()
    print(dict(OUTCOMES))
    # The cases reach every outcome, and the engine itself (not only the decoder) refuses
    # and accepts a good share of them.
    assert OUTCOMES["accepted"] >= 3000, OUTCOMES
    assert OUTCOMES["refused by the engine"] >= 1000, OUTCOMES
    assert OUTCOMES["refused by the decoder"] >= 1000, OUTCOMES


# -- through a real store ------------------------------------------------------------------------


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.mark.timeout(600)
def test_hostile_messages_through_a_real_store(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    """Fewer cases, each against its own SQLite database: every Persist commits, and the
    database reopens into a replica with the same objects and summaries."""
    counter = iter(range(10**6))

    @settings(
        max_examples=150,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(data=_bytes)
    def case(data: bytes) -> None:
        path = tmp_path / f"db{next(counter)}.sqlite"
        store = loop.run_until_complete(
            Store.open(path, synchronous="NORMAL", partitions=PARTS, partition_of=_partition)
        )
        try:
            persists: list[Persist] = list(BASE_PERSISTS)
            r = _run(cases(data), persists.append)
            for p in persists:
                loop.run_until_complete(store.apply(p))
            stored = loop.run_until_complete(store.load())
        finally:
            loop.run_until_complete(store.aclose())
        again = Replica(CONFIG, ME, loaded_from_store(stored), now=NOW)
        # The same objects and the same log-dot summaries. (Not always the same values: a
        # member holding the secret can forge a CRDT's own dots, say an element of ours
        # tagged with a dot we gave another one, and joins of such states depend on their
        # order; only signed writes, one key pair per incarnation, rule that out.)
        assert set(_values(again)) == set(_values(r))
        assert [again.summary(p) for p in range(PARTS)] == [r.summary(p) for p in range(PARTS)]

    case()
