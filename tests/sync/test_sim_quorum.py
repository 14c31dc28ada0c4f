"""The quorum matrix: every w/r in 1..3, every set of down peers, sloppy and strict.

For n=3 on a cluster of exactly 3 replicas (no fallbacks exist) and on a cluster of 5 (two
fallbacks exist), coordinator ``p000`` (always a home of the key used), every subset of the
other replicas crashed and detected as down: each write and read must succeed or fail exactly
as a small independent model predicts, and a failure must report every ack that could come.

The model (Dynamo's sloppy quorum, Riak's pw/pr for strict):
``acks = 1 (the coordinator) + reachable homes + (strict ? 0 : min(unreachable homes,
reachable non-homes))``; the operation succeeds iff ``acks >= level``. Reads count replies the
same way.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest

from sync.config import ReplicaConfig
from sync.effects import ReadFailed, WriteFailed
from sync.simnet import SimCluster, SimOp

__all__: list[str] = []

N = 3
TIMEOUT = 2.0


def _subsets(others: list[str]) -> list[tuple[str, ...]]:
    return [c for size in range(len(others) + 1) for c in combinations(others, size)]


CASES = [
    (size, down) for size in (3, 5) for down in _subsets([f"p{i:03d}" for i in range(1, size)])
]


def predicted_acks(
    everyone: list[str], homes: tuple[str, ...], coordinator: str, down: set[str], strict: bool
) -> int:
    """The independent model: acks (or replies) that can reach the coordinator."""
    up_homes = [h for h in homes if h != coordinator and h not in down]
    down_homes = [h for h in homes if h != coordinator and h in down]
    up_fallbacks = [p for p in everyone if p not in homes and p not in down and p != coordinator]
    sloppy = 0 if strict else min(len(down_homes), len(up_fallbacks))
    return 1 + len(up_homes) + sloppy


def _run(cluster: SimCluster, op: SimOp) -> None:
    assert cluster.run_until(lambda: op.done, max_steps=20_000), f"op {op} never completed"


@pytest.mark.parametrize(
    ("size", "down"), CASES, ids=[f"{s}peers-down={'+'.join(d) or 'none'}" for s, d in CASES]
)
def test_quorum_matrix(kit: Any, size: int, down: tuple[str, ...]) -> None:
    cluster = kit.cluster(
        kit.ids(size),
        n=N,
        anti_entropy_interval=0,
        write_timeout=TIMEOUT,
        read_timeout=TIMEOUT,
    )
    coordinator = "p000"
    key = kit.key_where(cluster, lambda homes: coordinator in homes)
    homes = kit.homes(cluster, key)
    seed_write = cluster.update(coordinator, key, "gcounter", kit.incr(coordinator), w=N)
    _run(cluster, seed_write)
    assert seed_write.ok, f"with everyone up a w={N} write must succeed: {seed_write}"

    for rid in down:
        cluster.crash(rid)
    cluster.run_for(cluster.detect_delay + 0.5)
    assert all(not cluster.believes_up(coordinator, rid) for rid in down)

    mismatches: list[str] = []
    for strict in (False, True):
        can = predicted_acks(cluster.ids, homes, coordinator, set(down), strict)
        for level in range(1, N + 1):
            label = f"strict={strict} level={level} homes={homes} down={down} predicted={can}"
            write = cluster.update(
                coordinator, key, "gcounter", kit.incr(coordinator), w=level, strict=strict
            )
            _run(cluster, write)
            mismatches += _check_write(write, level, can, homes, strict, label)
            read = cluster.read(coordinator, key, r=level, strict=strict)
            _run(cluster, read)
            mismatches += _check_read(read, level, can, label)
    assert not mismatches, "\n".join(mismatches)
    assert cluster.anomalies == []


def _check_write(
    op: SimOp, level: int, can: int, homes: tuple[str, ...], strict: bool, label: str
) -> list[str]:
    result = op.result
    if result is None:
        return [f"write {label}: no result ({op.status})"]
    if op.ok != (can >= level):
        return [f"write {label}: {op.status} with {result}"]
    problems = []
    if result.required != level:
        problems.append(f"write {label}: required={result.required}")
    if op.ok and not level <= result.acks <= can:
        problems.append(f"write {label}: done with acks={result.acks}")
    if not op.ok:
        assert isinstance(op.outcome, WriteFailed)
        if result.acks != can:
            problems.append(f"write {label}: failed with acks={result.acks}, {can} could come")
    if strict and result.hinted:
        problems.append(f"write {label}: strict write counted hints {result.hinted}")
    if any(h in homes for h in result.hinted):
        problems.append(f"write {label}: a home counted as a hint: {result.hinted}")
    return problems


def _check_read(op: SimOp, level: int, can: int, label: str) -> list[str]:
    outcome = op.outcome
    if op.ok != (can >= level):
        return [f"read {label}: {op.status} with {outcome}"]
    if op.ok:
        replies = getattr(outcome, "replies", None)
        if replies is None or not level <= replies <= can or op.state is None:
            return [f"read {label}: done with {outcome}"]
        return []
    assert isinstance(outcome, ReadFailed)
    if outcome.replies != can or outcome.required != level:
        return [f"read {label}: failed with {outcome.replies}/{outcome.required}, {can} could come"]
    return []


SITES = {"p000": "eu", "p001": "eu", "p002": "us", "p003": "us"}


@pytest.mark.parametrize(
    ("down", "local_ok", "quorum_ok"),
    [
        ((), True, True),
        (("p002", "p003"), True, False),  # the other site is away: LOCAL_QUORUM does not care
        (("p001",), False, True),  # a local home is away: 1 of 2 local acks
    ],
)
def test_local_quorum_counts_only_the_coordinators_site(
    down: tuple[str, ...], local_ok: bool, quorum_ok: bool
) -> None:
    # n=4 on four replicas: everyone is a home; 2 in "eu", 2 in "us". LOCAL_QUORUM at p000
    # needs 2 of the 2 eu homes; QUORUM needs 3 of all 4.
    cluster = SimCluster(
        list(SITES),
        ReplicaConfig(n=4, anti_entropy_interval=0, write_timeout=TIMEOUT),
        sites=SITES,
        seed=3,
    )
    for rid in down:
        cluster.crash(rid)
    cluster.run_for(cluster.detect_delay + 0.5)
    one = lambda c: c.increment("p000", 1)  # noqa: E731
    local = cluster.update("p000", "k", "gcounter", one, w="LOCAL_QUORUM")
    quorum = cluster.update("p000", "j", "gcounter", one, w="QUORUM")
    assert cluster.run_until(lambda: local.done and quorum.done, max_steps=20_000)
    assert (local.ok, quorum.ok) == (local_ok, quorum_ok), (local.outcome, quorum.outcome)
    assert local.result is not None and local.result.required == 2
    assert set(local.result.acked_by) <= {"p000", "p001"}, "an ack from another site counted"
    assert cluster.run_until_quiet(20_000)
    # The other site is sent to even though it is not waited for.
    for rid in sorted(set(SITES) - set(down)):
        assert cluster.values("k", [rid]) == {rid: 1}, f"{rid} never got the LOCAL_QUORUM write"
