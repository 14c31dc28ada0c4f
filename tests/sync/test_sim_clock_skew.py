"""A peer whose clock is a day ahead, in the simulator (the engine's ``now`` is its fake clock).

It used to win everywhere with one write, after which every write to that register by the
correct-clock peers failed with ``ClockSkewError``, and so did its own once its clock was set
right; nothing was logged or shown. Now its write is set aside by the others until their
clocks come within the bound of it, they keep writing, an alarm names it with its skew,
``status()`` counts what was set aside, and once the clocks pass its timestamp every replica
converges (on the write with the greatest timestamp, as LWW says).
"""

from __future__ import annotations

import re
from typing import Any

from sync.effects import Alarm, ReadDone
from sync.simnet import SimCluster, SimOp

__all__: list[str] = []

DAY = 86_400.0


def _set(cluster: SimCluster, rid: str, value: str, *, ahead: float = 0.0) -> SimOp:
    """An LWW write of ``rid`` stamped by its clock: the simulator's, ``ahead`` seconds fast."""
    now_ms = int((cluster.now + ahead) * 1000)
    return cluster.update(rid, "title", "lww", lambda r: r.set(rid, value, now_ms=now_ms))


def _alarms(cluster: SimCluster) -> list[tuple[str, Alarm]]:
    return [(rid, fx) for rid, fx in cluster.other_effects if isinstance(fx, Alarm)]


def test_a_peer_a_day_ahead_never_stops_correct_peers_and_converges_later(kit: Any) -> None:
    cluster = kit.cluster(["A", "B", "C"], n=3, w=1, anti_entropy_interval=300.0, seed=3)
    cluster.run_for(10.0)
    fast = _set(cluster, "C", "from the future", ahead=DAY)
    assert cluster.run_until_quiet()
    assert fast.ok
    # Set aside by the correct peers: not applied, so not in their state.
    assert cluster.values("title") == {"A": None, "B": None, "C": "from the future"}
    for rid in ("A", "B"):
        skew = cluster.replica(rid).status()["clock_skew"]["C"]
        assert skew["set_aside"] >= 1 and 86_300_000 < skew["ahead_ms"] <= 86_400_000
    alarms = _alarms(cluster)
    assert {(rid, a.peer) for rid, a in alarms} == {("A", "C"), ("B", "C")}
    assert all(
        a.kind == "clock_skew" and "ahead of this replica's clock" in a.message for _, a in alarms
    )
    assert all(re.search(r"stamped 86(399\.9|400\.0) s ahead", a.message) for _, a in alarms)

    # The correct peers keep writing the register, and replicate among themselves.
    for i, rid in enumerate("ABAB"):
        op = _set(cluster, rid, f"write {i}")
        assert cluster.run_until_quiet() and op.ok
        assert cluster.values("title", ["A", "B"]) == {"A": f"write {i}", "B": f"write {i}"}

    # The fast peer's clock is set right: it keeps writing too (its register holds its own
    # timestamp of a day ahead; the next one keeps that wall time, the logical part counts).
    fixed = _set(cluster, "C", "clock fixed")
    assert cluster.run_until_quiet() and fixed.ok
    state = cluster.value("C", "title")
    assert state is not None and state.value == "clock fixed"
    assert state.timestamp[0] == int((10.0 + DAY) * 1000)  # type: ignore[attr-defined]

    # Anti-entropy offers the write again every round (300 s), set aside each time; alarms
    # repeat while the skew lasts, at most every ten minutes.
    before = len(_alarms(cluster))
    counted = cluster.replica("A").status()["clock_skew"]["C"]["set_aside"]
    cluster.run_for(3600.0)
    hour = [rid for rid, _ in _alarms(cluster)[before:]]
    assert 3 <= hour.count("A") <= 7 and 3 <= hour.count("B") <= 7
    assert cluster.replica("A").status()["clock_skew"]["C"]["set_aside"] >= counted + 10

    # Once the clocks reach the timestamp (within the bound), anti-entropy delivers it.
    cluster.run_for(DAY)
    kit.settle(cluster)
    assert cluster.values("title") == {"A": "clock fixed", "B": "clock fixed", "C": "clock fixed"}


def test_a_read_counts_the_fast_peers_reply_without_its_state(kit: Any) -> None:
    cluster = kit.cluster(["A", "B", "C"], n=3, w=1, anti_entropy_interval=60.0, seed=4)
    _set(cluster, "A", "now")
    assert cluster.run_until_quiet()
    cluster.partition([["A", "B"], ["C"]])
    cluster.run_for(5.0)
    _set(cluster, "C", "ahead", ahead=DAY)
    cluster.heal()
    cluster.run_for(5.0)
    read = cluster.read("A", "title", r=3)
    assert cluster.run_until(lambda: read.done)
    assert read.ok and isinstance(read.outcome, ReadDone) and read.outcome.replies == 3
    assert read.state is not None and read.state.value == "now"
    assert cluster.values("title") == {"A": "now", "B": "now", "C": "ahead"}
