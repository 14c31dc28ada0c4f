"""Golden traces of the engine: every input, effect and encoded message of three seeded
simulations, compared line by line with the files recorded in ``tests/sync/golden/``.

The effects of a replica, and their order, are its contract ("persist before acknowledge",
one ``Persist`` per drain, coalesced pushes...). These traces pin that contract for a
refactoring: a change of the engine's code that is meant to change nothing must leave them
byte-identical. A change that is meant to change behaviour regenerates them on purpose::

    .venv/bin/python tests/sync/test_golden_trace.py --write

Each line is one event on one replica, at the simulated time of its input: the input
(``in local_update ...``, ``in receive <peer> <Message>``, ``in tick`` ...), then each effect
it drained (a ``Send`` shows the message as :func:`sync.messages.encode` put it on the wire),
and ``deadline`` when :meth:`Replica.next_deadline` moved. A line longer than
:data:`HEAD` characters keeps its head and ends with its length and a hash of the whole line,
so a difference anywhere shows while the files stay small.

The scenarios:

* ``quorum``: writes of every kind (counters, registers with multi-value siblings, sets and
  maps of embedded values) at w=2, QUORUM and ALL from home and non-home coordinators;
  reads at r=2, QUORUM and ALL; read repair of replicas that missed writes.
* ``partition``: a partition and its heal with anti-entropy in small batches, compaction, a
  new replica that gets a state transfer, a relay forwarding between two devices, and
  LOCAL_QUORUM across two sites.
* ``crash``: sloppy quorum with a home down, hinted hand-off, hints bounded and expired, crashes
  between effects, a restore from a backup (identity conflict) and forgetting a peer.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crdt import CRDT
from sync import messages
from sync.config import ReplicaConfig
from sync.effects import (
    Alarm,
    CatchUp,
    Changed,
    IdentityConflict,
    Loaded,
    Persist,
    ReadDone,
    ReadFailed,
    ReadPage,
    Send,
    WriteDone,
    WriteFailed,
)
from sync.replica import Replica
from sync.ring import Ring
from sync.simnet import SimCluster

__all__: list[str] = []

GOLDEN = Path(__file__).resolve().parent / "golden"
HEAD = 200  # characters of a long line kept as they are
FIELD_HEAD = 100  # the same for each field of a Persist


def _short(text: str, head: int = HEAD) -> str:
    if len(text) <= head + 40:
        return text
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{text[:head]} ...[{len(text)} chars #{digest}]"


def _state(state: CRDT | None) -> str:
    return "None" if state is None else state.to_json()


def _describe(effect: object) -> str:
    """One effect as deterministic text (no set or object-identity reprs)."""
    if isinstance(effect, Send):
        wire = messages.encode(effect.message).decode("utf-8", "surrogatepass")
        return f"Send {effect.peer} {wire}"
    if isinstance(effect, Persist):
        fields = {
            "objects": [f"{o.key}:{o.kind}:{o.state_json}" for o in effect.objects],
            "log": [
                f"{e.origin}/{e.partition}/{e.seq}:{e.key}:{e.kind}:{e.delta_json}"
                for e in effect.log
            ],
            "summaries": [f"{p}:{ctx!r}" for p, ctx in effect.summaries],
            "hints_add": [
                f"{h.target}<{h.entry.origin}/{h.entry.partition}/{h.entry.seq}@{h.stored_at!r}"
                for h in effect.hints_add
            ],
            "hints_drop": [
                f"{h.target}<{h.origin}/{h.partition}/{h.seq}" for h in effect.hints_drop
            ],
            "peers": [
                f"{p.replica_id}({p.address},{p.site},{p.last_seen!r},{p.forgotten},{p.summary!r})"
                for p in effect.peers
            ],
            "compact": [f"{p}:{vv!r}" for p, vv in effect.compact],
        }
        # Each field is shortened on its own, so that every field shows its beginning.
        return "Persist " + " | ".join(
            _short(f"{name}={' '.join(items)}", FIELD_HEAD)
            for name, items in fields.items()
            if items
        )
    if isinstance(effect, WriteDone | WriteFailed):
        r = effect.result
        tail = f" {effect.reason!r}" if isinstance(effect, WriteFailed) else ""
        return (
            f"{type(effect).__name__} op={effect.op_id} key={r.key} acks={r.acks}/{r.required}"
            f" by={','.join(r.acked_by)} hinted={','.join(r.hinted)}{tail}"
        )
    if isinstance(effect, ReadDone):
        return (
            f"ReadDone op={effect.op_id} key={effect.key} replies={effect.replies}"
            f" repaired={','.join(effect.repaired)} state={_state(effect.state)}"
        )
    if isinstance(effect, ReadFailed):
        return (
            f"ReadFailed op={effect.op_id} key={effect.key} replies={effect.replies}"
            f"/{effect.required} state={_state(effect.state)} {effect.reason!r}"
        )
    if isinstance(effect, Changed | IdentityConflict | ReadPage | CatchUp):
        return repr(effect)
    if isinstance(effect, Alarm):
        return f"Alarm {effect.kind} {effect.peer}"
    raise AssertionError(f"an effect the trace does not know: {effect!r}")


class Trace:
    """The lines of one scenario, written by every :class:`Recorder` of its cluster."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.now = 0.0

    def add(self, rid: str, text: str) -> None:
        self.lines.append(
            _short(f"{self.now!r} {rid} {text}", 2 * HEAD if "Persist" in text else HEAD)
        )

    def section(self, title: str) -> None:
        self.lines.append(f"## {title}")

    def factory(self) -> Callable[[ReplicaConfig, str, Loaded | None, float], Recorder]:
        def build(config: ReplicaConfig, rid: str, loaded: Loaded | None, now: float) -> Recorder:
            self.now = now
            self.add(rid, f"start loaded={loaded is not None}")
            return Recorder(self, Replica(config, rid, loaded, now=now), rid)

        return build


class Recorder:
    """A :class:`Replica` that writes its inputs and effects into a :class:`Trace`."""

    def __init__(self, trace: Trace, replica: Replica, rid: str) -> None:
        self._trace = trace
        self._replica = replica
        self._rid = rid
        self._deadline: float | None = None

    def _input(self, now: float, text: str) -> None:
        self._trace.now = now
        self._trace.add(self._rid, f"in {text}")

    def local_update(self, op_id: int, key: str, kind: str, fn: Any, now: float, **kw: Any) -> None:
        self._input(now, f"local_update op={op_id} key={key} kind={kind} {kw}")
        self._replica.local_update(op_id, key, kind, fn, now, **kw)

    def local_read(self, op_id: int, key: str, now: float, **kw: Any) -> None:
        self._input(now, f"local_read op={op_id} key={key} {kw}")
        self._replica.local_read(op_id, key, now, **kw)

    def receive(self, peer_id: str, message: Any, now: float) -> None:
        self._input(now, f"receive {peer_id} {type(message).__name__}")
        self._replica.receive(peer_id, message, now)

    def peer_up(self, peer_id: str, now: float, **kw: Any) -> None:
        self._input(now, f"peer_up {peer_id} {kw}")
        self._replica.peer_up(peer_id, now, **kw)

    def peer_down(self, peer_id: str, now: float) -> None:
        self._input(now, f"peer_down {peer_id}")
        self._replica.peer_down(peer_id, now)

    def forget(self, peer_id: str, now: float) -> None:
        self._input(now, f"forget {peer_id}")
        self._replica.forget(peer_id, now)

    def tick(self, now: float) -> None:
        self._input(now, "tick")
        self._replica.tick(now)

    def snapshot_page(self, read: Any, rows: Any, end: bool, now: float, **kw: Any) -> None:
        self._input(now, f"snapshot_page {read.read_id} rows={[r.key for r in rows]} end={end}")
        self._replica.snapshot_page(read, rows, end, now, **kw)

    def effects(self) -> list[Any]:
        out = self._replica.effects()
        for effect in out:
            self._trace.add(self._rid, _describe(effect))
        return out

    def next_deadline(self) -> float | None:
        deadline = self._replica.next_deadline()
        if deadline != self._deadline:
            self._deadline = deadline
            self._trace.add(self._rid, f"deadline {deadline!r}")
        return deadline

    def value(self, key: str, kind: str | None = None) -> CRDT | None:
        return self._replica.value(key, kind)

    def kinds_of(self, key: str) -> tuple[str, ...]:
        return self._replica.kinds_of(key)

    def current_value(self, key: str, kind: str | None = None) -> Any:
        return self._replica.current_value(key, kind)

    def status(self) -> dict[str, Any]:
        return self._replica.status()

    def wants_keys(self, keys: Any) -> list[str]:
        return self._replica.wants_keys(keys)

    def wants_message(self, peer_id: str, message: Any) -> tuple[list[str], list[int]]:
        return self._replica.wants_message(peer_id, message)

    def admit(self, keys: Any, rows: Any, partitions: Any = ()) -> None:
        self._trace.add(self._rid, f"admit {sorted(keys)} {sorted(partitions)}")
        self._replica.admit(keys, rows, partitions)

    def checkpoint_all(self, now: float) -> None:
        self._replica.checkpoint_all(now)

    def unsaved_keys(self) -> set[str]:
        return self._replica.unsaved_keys()


# -------------------------------------------------------------------------------- scenarios


def _cluster(trace: Trace, ids: list[str], config: Any, *, seed: int, **kw: Any) -> SimCluster:
    return SimCluster(ids, config, seed=seed, factory=trace.factory(), **kw)


def _keys(
    config: ReplicaConfig,
    ids: list[str],
    pred: Callable[[tuple[str, ...]], bool],
    count: int,
    prefix: str,
) -> list[str]:
    ring = Ring(ids, n=config.n, partitions=config.partitions, vnodes=config.vnodes)
    found = [k for k in (f"{prefix}{i}" for i in range(10_000)) if pred(ring.homes_of(k))]
    assert len(found) >= count, f"not enough keys {prefix}*"
    return found[:count]


def _settle(cluster: SimCluster, steps: int = 100_000) -> None:
    assert cluster.run_until_quiet(steps), "the scenario never went quiet"


def _run_for(cluster: SimCluster, seconds: float) -> None:
    cluster.run_for(seconds, max_steps=200_000)


def _homes(cluster: SimCluster) -> Callable[[str], tuple[str, ...]]:
    """``holders`` for :meth:`SimCluster.converged`: each key's homes among every replica."""
    config = cluster.config(cluster.ids[0])
    ring = Ring(cluster.ids, n=config.n, partitions=config.partitions, vnodes=config.vnodes)
    return ring.homes_of


def _checked(cluster: SimCluster) -> None:
    assert cluster.anomalies == [] and cluster.protocol_errors == []


def scenario_quorum() -> list[str]:
    trace = Trace()
    ids = [f"p{i:03d}" for i in range(5)]
    config = ReplicaConfig(
        n=3, anti_entropy_interval=0, write_timeout=2.0, read_timeout=2.0, seed=11
    )
    cluster = _cluster(trace, ids, config, seed=11)
    trace.section("writes of every kind at w=2, QUORUM and ALL")
    home = _keys(config, ids, lambda h: "p000" in h, 8, "h")
    away = _keys(config, ids, lambda h: "p000" not in h, 4, "x")
    levels: list[Any] = [2, "QUORUM", "ALL"]
    for i, key in enumerate(home[:3]):
        cluster.update("p000", key, "gcounter", lambda c: c.increment("p000", 3), w=levels[i])
    cluster.update("p001", home[3], "pncounter", lambda c: c.decrement("p001", 2), w="QUORUM")
    cluster.update("p000", home[4], "lww", lambda r: r.set("p000", {"a": 1}, now_ms=5), w=2)
    cluster.update("p000", home[5], "orset", lambda s: s.add("p000", "milk"), w="ALL")
    for j, kind in enumerate(["orset", "gcounter", "lww", "mvregister", "pncounter"]):
        fns: dict[str, Callable[[Any], Any]] = {
            "orset": lambda v: v.add("p002", "x"),
            "gcounter": lambda v: v.increment("p002", 4),
            "lww": lambda v: v.set("p002", [1, 2], now_ms=7),
            "mvregister": lambda v: v.set("p002", "m"),
            "pncounter": lambda v: v.decrement("p002", 1),
        }
        fn = fns[kind]
        cluster.update(
            "p002",
            home[6],
            "ormap",
            lambda mp, k=kind, f=fn: mp.update("p002", f"f{k}", k, f),
            w=levels[j % 3],
        )
    for key in away:  # a coordinator that is not a home keeps its own hints
        cluster.update("p000", key, "orset", lambda s, k=key: s.add("p000", k), w=2)
    _settle(cluster)
    cluster.update("p002", home[6], "ormap", lambda mp: mp.remove("fgcounter"), w=2)
    cluster.update("p000", home[5], "orset", lambda s: s.remove("milk"), w=2)
    _settle(cluster)

    trace.section("multi-value siblings: concurrent writes from two coordinators")
    reg = home[7]
    cluster.update("p000", reg, "mvregister", lambda r: r.set("p000", "tea"), w=1)
    cluster.update("p001", reg, "mvregister", lambda r: r.set("p001", "coffee"), w=1)
    _settle(cluster)

    trace.section("reads at r=2, QUORUM and ALL")
    read_kinds = ["gcounter"] * 3 + ["mvregister", "ormap", "orset"]
    for i, key in enumerate([*home[:3], reg, home[6], "nowhere"]):
        cluster.read(ids[i % 5], key, kind=read_kinds[i], r=levels[i % 3])
    cluster.read("p003", away[0], kind="orset", r=2, strict=True)
    _settle(cluster)

    trace.section("read repair of replicas that missed writes")
    cluster.drop("p002", None, 1.0)
    cart = _keys(config, ids, lambda h: "p002" in h and "p000" in h, 2, "cart")
    cluster.update("p000", cart[0], "orset", lambda s: s.add("p000", "milk"), w=2)
    cluster.update("p002", cart[0], "orset", lambda s: s.add("p002", "eggs"), w=1)
    cluster.update(
        "p000",
        cart[1],
        "ormap",
        lambda mp: mp.update("p000", "n", "gcounter", lambda c: c.increment("p000")),
    )
    _settle(cluster)
    cluster.heal()
    _settle(cluster)
    cluster.read("p001", cart[0], kind="orset", r="ALL")
    cluster.read("p002", cart[1], kind="ormap", r="QUORUM")
    _settle(cluster)
    _run_for(cluster, 40.0)  # compaction passes and the sweep
    _checked(cluster)
    return trace.lines


def scenario_partition() -> list[str]:
    trace = Trace()
    ids = [f"p{i:03d}" for i in range(4)]
    config = ReplicaConfig(
        n=3,
        anti_entropy_interval=1.0,
        checkpoint_every=10,
        ae_batch=8,
        ae_max_inflight=2,
        snapshot_chunk=4,
        write_timeout=2.0,
        seed=5,
    )
    cluster = _cluster(trace, ids, config, seed=5)
    trace.section("writes on both sides of a partition")
    cluster.partition([["p000", "p001"], ["p002", "p003"]])
    _run_for(cluster, 1.5)
    for i in range(24):
        writer = ids[i % 4]
        cluster.update(writer, f"k{i % 10}", "orset", lambda s, w=writer, i=i: s.add(w, i))
    for i in range(6):
        writer = ids[(i * 3) % 4]
        cluster.update(writer, f"c{i}", "gcounter", lambda c, w=writer: c.increment(w, 2), w=2)
    cluster.update(
        "p001", "m", "ormap", lambda mp: mp.update("p001", "a", "orset", lambda s: s.add("p001", 1))
    )
    cluster.update(
        "p003", "m", "ormap", lambda mp: mp.update("p003", "a", "orset", lambda s: s.add("p003", 2))
    )
    _run_for(cluster, 3.0)

    trace.section("heal: anti-entropy in batches, then compaction")
    cluster.heal()
    _run_for(cluster, 12.0)
    assert cluster.converged(holders=_homes(cluster)), cluster.divergent(holders=_homes(cluster))
    assert sum(cluster.disk(rid).compacted for rid in ids) > 0, "nothing compacted"

    trace.section("a new replica gets a state transfer")
    cluster.add_replica("p004")
    _run_for(cluster, 10.0)
    assert cluster.stats.sent["SnapshotChunk"] > 0, dict(cluster.stats.sent)
    _checked(cluster)

    trace.section("a relay forwards between two devices that cannot talk")
    relay_cfg = ReplicaConfig(n=3, anti_entropy_interval=30.0, seed=6, relay=True)
    device_cfg = ReplicaConfig(n=3, anti_entropy_interval=30.0, seed=6)
    configs = {"dev-a": device_cfg, "dev-b": device_cfg, "relay": relay_cfg}
    relay = _cluster(trace, list(configs), configs, seed=6)
    relay.drop("dev-a", "dev-b", 1.0)
    for i in range(4):
        relay.update("dev-a", f"r{i}", "orset", lambda s, i=i: s.add("dev-a", i))
        relay.update("dev-b", "shared", "gcounter", lambda c: c.increment("dev-b", 1))
    _settle(relay)
    _run_for(relay, 5.0)
    _checked(relay)

    trace.section("LOCAL_QUORUM across two sites")
    sites = {"eu1": "eu", "eu2": "eu", "us1": "us", "us2": "us"}
    local_cfg = ReplicaConfig(n=4, anti_entropy_interval=2.0, write_timeout=2.0, seed=8)
    two = _cluster(trace, list(sites), local_cfg, seed=8, sites=sites)
    two.update("eu1", "k", "gcounter", lambda c: c.increment("eu1", 1), w="LOCAL_QUORUM")
    two.update("us1", "j", "orset", lambda s: s.add("us1", "x"), w="LOCAL_QUORUM")
    _settle(two)
    two.partition([["eu1", "eu2"], ["us1", "us2"]])
    _run_for(two, 1.5)
    two.update("eu2", "k", "gcounter", lambda c: c.increment("eu2", 1), w="LOCAL_QUORUM")
    two.update("eu1", "j", "orset", lambda s: s.add("eu1", "y"), w="QUORUM")
    two.read("us2", "k", r="LOCAL_QUORUM")
    _run_for(two, 3.0)
    two.heal()
    _run_for(two, 6.0)
    assert two.converged(), two.divergent()
    _checked(two)
    return trace.lines


def scenario_crash() -> list[str]:
    trace = Trace()
    ids = [f"p{i:03d}" for i in range(5)]
    config = ReplicaConfig(
        n=3,
        anti_entropy_interval=0,
        write_timeout=2.0,
        read_timeout=2.0,
        hint_window=20.0,
        hint_max_per_target=6,
        seed=3,
    )
    cluster = _cluster(trace, ids, config, seed=3)
    home, coord = "p001", "p000"
    keys = _keys(config, ids, lambda h: coord in h and home in h, 10, "hh")
    away = _keys(config, ids, lambda h: coord not in h and home in h, 3, "ha")

    trace.section("a home crashes: sloppy writes with hinted acks")
    cluster.crash(home)
    _run_for(cluster, 1.5)
    for key in keys[:5]:
        cluster.update(coord, key, "orset", lambda s, k=key: s.add(coord, k), w=3)
    for key in away:
        cluster.update(coord, key, "gcounter", lambda c: c.increment(coord, 1), w=2)
    cluster.update(coord, keys[5], "orset", lambda s: s.add(coord, "s"), w=3, strict=True)
    _settle(cluster)
    cluster.read(coord, keys[0], kind="orset", r=3, strict=True)  # fails: a home is down
    cluster.read(coord, keys[1], kind="orset", r=3)  # a fallback answers
    _settle(cluster)

    trace.section("hinted hand-off when the home returns")
    cluster.restart(home)
    _settle(cluster)
    _run_for(cluster, 5.0)

    trace.section("hints bounded per target, then expired")
    cluster.crash(home)
    _run_for(cluster, 1.5)
    for i, key in enumerate(keys):
        cluster.update(coord, key, "orset", lambda s, i=i: s.add(coord, f"e{i}"), w=3)
    _settle(cluster)
    _run_for(cluster, 30.0)  # past the hint window
    cluster.restart(home)
    _settle(cluster)
    _run_for(cluster, 5.0)

    trace.section("crashes between effects")
    cluster.crash_when(coord, lambda e: isinstance(e, Persist))
    cluster.update(coord, keys[0], "orset", lambda s: s.add(coord, "lost?"), w=2)
    cluster.restart(coord)
    _settle(cluster)
    cluster.crash_when(
        "p002", lambda e: isinstance(e, Send) and type(e.message).__name__ == "Ack", before=True
    )
    both = _keys(config, ids, lambda h: coord in h and "p002" in h, 1, "hb")[0]
    cluster.update(coord, both, "orset", lambda s: s.add(coord, "acked?"), w=2)
    _settle(cluster)
    cluster.restart("p002")
    _settle(cluster)
    cluster.crash_when(coord, lambda e: isinstance(e, WriteDone), before=True)
    cluster.update(coord, keys[2], "orset", lambda s: s.add(coord, "done?"), w=1)
    cluster.restart(coord)
    _settle(cluster)
    _run_for(cluster, 5.0)

    trace.section("a restore from a backup, with anti-entropy: identity conflict")
    ae = ReplicaConfig(n=3, anti_entropy_interval=1.0, write_timeout=2.0, seed=4)
    other = _cluster(trace, ids[:3], ae, seed=4)
    first = other.update("p000", "k", "gcounter", lambda c: c.increment("p000", 1), w=3)
    _settle(other)
    assert first.ok
    backup = other.disk("p000").copy()
    for _ in range(3):
        other.update("p000", "k", "gcounter", lambda c: c.increment("p000", 1), w=3)
    _settle(other)
    other.crash("p000")
    other.restart("p000", disk=backup)
    _run_for(other, 4.0)
    assert any(isinstance(e, IdentityConflict) for _, e in other.other_effects)

    trace.section("forgetting a crashed peer")
    other.crash("p002")
    _run_for(other, 1.5)
    other.update("p000", "f", "gcounter", lambda c: c.increment("p000", 1), w=2)
    _settle(other)
    other.forget("p000", "p002")
    _run_for(other, 4.0)
    _checked(cluster)
    _checked(other)
    return trace.lines


SCENARIOS: dict[str, Callable[[], list[str]]] = {
    "quorum": scenario_quorum,
    "partition": scenario_partition,
    "crash": scenario_crash,
}


def _path(name: str) -> Path:
    return GOLDEN / f"trace_{name}.txt"


def _first_difference(expected: list[str], actual: list[str]) -> str | None:
    for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want != got:
            context = "\n".join(f"    {line}" for line in expected[max(0, i - 5) : i])
            return (
                f"first difference at line {i + 1}:\n{context}\n"
                f"  - golden: {want}\n  + now:    {got}"
            )
    if len(expected) != len(actual):
        n = min(len(expected), len(actual))
        extra = (expected if len(expected) > n else actual)[n]
        side = "golden" if len(expected) > n else "now"
        return (
            f"lengths differ ({len(expected)} golden, {len(actual)} now); at line {n + 1} "
            f"only {side} has: {extra}"
        )
    return None


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_trace_matches_the_golden_file(name: str) -> None:
    expected = _path(name).read_text(encoding="utf-8").splitlines()
    actual = SCENARIOS[name]()
    difference = _first_difference(expected, actual)
    if difference is not None:
        print(difference)
    assert difference is None, difference


def test_a_changed_effect_is_reported_at_its_line() -> None:
    expected = ["a", "b", "c"]
    assert _first_difference(expected, ["a", "b", "c"]) is None
    report = _first_difference(expected, ["a", "x", "c"])
    assert report is not None and "line 2" in report and "golden: b" in report
    report = _first_difference(expected, ["a", "b"])
    assert report is not None and "only golden has: c" in report


def main(argv: list[str]) -> int:
    if argv != ["--write"]:
        print(f"usage: {sys.argv[0]} --write   (regenerates {GOLDEN}/trace_*.txt)")
        return 2
    GOLDEN.mkdir(exist_ok=True)
    for name, scenario in sorted(SCENARIOS.items()):
        lines = scenario()
        _path(name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{_path(name)}: {len(lines)} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
