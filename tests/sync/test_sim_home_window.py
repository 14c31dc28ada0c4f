"""A home down longer than ``home_down_window``: reported, no longer holding compaction back,
and back by state transfer without bringing back anything removed while it was away.

Cassandra's, Riak's and Ditto's grace periods let deleted data return when a replica that
missed the delete comes back after the tombstones were collected. Here compaction drops log
entries, never causal knowledge (see ``sync/replica/compaction.py``), so the returning home's
stale state, with its old dots, joins to the removes it missed.
"""

from __future__ import annotations

from typing import Any

from sync.effects import Alarm
from sync.simnet import SimCluster

__all__: list[str] = []

WINDOW = 600.0


def _cluster(kit: Any, window: float = WINDOW) -> SimCluster:
    return kit.cluster(  # type: ignore[no-any-return]
        ["A", "B", "C"], n=3, w=1, anti_entropy_interval=5.0, home_down_window=window, seed=5
    )


def _lww(rid: str, value: str, now: float) -> Any:
    return lambda reg: reg.set(rid, value, now_ms=int(now * 1000))


def _populate(cluster: SimCluster, kit: Any) -> None:
    """An ORSet and an ORMap every replica holds, then C goes down with that state."""
    for item in ("milk", "eggs"):
        cluster.update("A", "cart", "orset", kit.add("A", item))
    for field in ("theme", "font"):
        cluster.update(
            "A", "prefs", "ormap", lambda m, f=field: m.update("A", f, "lww", _lww("A", f, 1.0))
        )
    kit.settle(cluster)
    assert cluster.values("cart") == {r: frozenset({"milk", "eggs"}) for r in "ABC"}
    cluster.crash("C")
    cluster.run_for(5.0)


def _remove_while_c_is_away(cluster: SimCluster, kit: Any) -> None:
    cluster.update("A", "cart", "orset", kit.remove("milk"))
    cluster.update("B", "prefs", "ormap", lambda m: m.remove("theme"))
    cluster.update("B", "cart", "orset", kit.add("B", "bread"))
    assert cluster.run_until_quiet()


def _log_entries(cluster: SimCluster, rid: str) -> int:
    return int(cluster.replica(rid).status()["log_size"])


def test_removes_made_while_a_home_was_away_past_the_window_stay_removed(kit: Any) -> None:
    cluster = _cluster(kit)
    _populate(cluster, kit)
    _remove_while_c_is_away(cluster, kit)
    assert _log_entries(cluster, "A") > 0  # C has not seen them: nothing is stable yet
    cluster.run_for(WINDOW + 60.0)

    # Past the window: C is reported, and compaction no longer waits for it.
    for rid in "AB":
        status = cluster.replica(rid).status()
        assert list(status["homes_down"]) == ["C"] and status["homes_down"]["C"] > WINDOW
        assert _log_entries(cluster, rid) == 0, "the log was not compacted without C"
    alarms = [(rid, fx) for rid, fx in cluster.other_effects if isinstance(fx, Alarm)]
    assert sorted((rid, a.kind, a.peer) for rid, a in alarms) == [
        ("A", "home_down", "C"),
        ("B", "home_down", "C"),
    ]
    assert "catches up by state transfer" in alarms[0][1].message

    # C comes back with the state it had: milk in the cart, theme in the map, old dots.
    cluster.reset_stats()
    cluster.restart("C")
    assert cluster.values("cart", ["C"]) == {"C": frozenset({"milk", "eggs"})}
    kit.settle(cluster)
    assert cluster.stats.sent["SnapshotChunk"] > 0, "C did not get a state transfer"
    assert cluster.values("cart") == {r: frozenset({"eggs", "bread"}) for r in "ABC"}
    assert cluster.values("prefs") == {r: {"font": "font"} for r in "ABC"}
    # Its old state is no longer offered as news: anti-entropy falls quiet (summaries only).
    cluster.reset_stats()
    cluster.run_for(30.0)
    assert cluster.stats.sent["Deltas"] == cluster.stats.sent["SnapshotChunk"] == 0
    assert all(cluster.replica(r).status()["homes_down"] == {} for r in "ABC")


def test_a_write_the_others_never_saw_survives_the_return(kit: Any) -> None:
    """Add-wins: what the returning home wrote before it went away, unseen by the others,
    is not a resurrection; it joins like any concurrent add."""
    cluster = _cluster(kit)
    _populate(cluster, kit)
    cluster.restart("C")
    kit.settle(cluster)
    cluster.partition([["A", "B"], ["C"]])
    cluster.run_for(2.0)
    cluster.update("C", "cart", "orset", kit.add("C", "ham"))
    assert cluster.run_until_quiet()
    cluster.crash("C")
    cluster.heal()
    _remove_while_c_is_away(cluster, kit)
    cluster.run_for(WINDOW + 60.0)
    assert _log_entries(cluster, "A") == 0
    cluster.restart("C")
    kit.settle(cluster)
    assert cluster.values("cart") == {r: frozenset({"eggs", "bread", "ham"}) for r in "ABC"}


def test_before_the_window_a_home_down_still_holds_compaction_back(kit: Any) -> None:
    cluster = _cluster(kit, window=7 * 86_400.0)
    _populate(cluster, kit)
    _remove_while_c_is_away(cluster, kit)
    cluster.run_for(WINDOW + 60.0)
    for rid in "AB":
        assert _log_entries(cluster, rid) > 0
        assert cluster.replica(rid).status()["homes_down"] == {}
    assert not [fx for _, fx in cluster.other_effects if isinstance(fx, Alarm)]
    cluster.restart("C")
    kit.settle(cluster)
    assert cluster.values("cart") == {r: frozenset({"eggs", "bread"}) for r in "ABC"}
