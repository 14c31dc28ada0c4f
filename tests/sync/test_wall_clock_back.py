"""A replica reopened with the wall clock set back (NTP stepped it, or the device's clock
was ahead in the run before): the times its last run persisted (a hint's ``stored_at``, a
peer's ``last_seen``) read as in the future of the new run's clock.

The engine's clock is monotonic within a run only (``sync.transport.node``: it starts at
the wall time of the open). A time persisted ahead of it counts as *now* at the open, so a
step back makes no window (the hint window, ``home_down_window``) longer than it is.
"""

from __future__ import annotations

from sync.config import ReplicaConfig
from sync.effects import Alarm, HintRecord, Loaded, LogEntry, PeerRecord
from sync.replica import Replica

__all__: list[str] = []

NOW = 1_700_000_000.0  # the wall time at the reopen
DAY = 86_400.0
HINT_WINDOW = 3_600.0
HOME_WINDOW = 600.0


def _entry(seq: int) -> LogEntry:
    delta = {"type": "gcounter", "v": 1, "n": {"B": seq}}
    return LogEntry.of("B", 0, seq, f"k{seq}", "gcounter", delta)


def _run_until(r: Replica, until: float) -> list[object]:
    """Tick ``r`` at each of its deadlines up to ``until``; the effects."""
    out: list[object] = []
    while (deadline := r.next_deadline()) is not None and deadline <= until:
        r.tick(deadline)
        out.extend(r.effects())
    r.tick(until)
    out.extend(r.effects())
    return out


def test_a_hint_stored_a_day_ahead_of_the_reopened_clock_expires_within_the_window() -> None:
    cfg = ReplicaConfig(n=3, hint_window=HINT_WINDOW)
    # Held for C (a home B could not reach, A was the fallback), stored by the last run at
    # what its clock read: a day ahead of this one's.
    loaded = Loaded(
        peers={"B": PeerRecord("B"), "C": PeerRecord("C")},
        hints=[HintRecord("C", _entry(1), NOW + DAY), HintRecord("C", _entry(2), NOW + DAY)],
    )
    r = Replica(cfg, "A", loaded, now=NOW)
    r.effects()
    assert r.status()["hints"] == {"C": 2}
    _run_until(r, NOW + HINT_WINDOW + 1.0)
    assert r.status()["hints"] == {}


def test_a_home_last_seen_a_day_ahead_of_the_reopened_clock_is_reported_past_the_window() -> None:
    cfg = ReplicaConfig(n=3, home_down_window=HOME_WINDOW)
    loaded = Loaded(
        peers={"B": PeerRecord("B", last_seen=NOW + DAY), "C": PeerRecord("C", last_seen=NOW)}
    )
    r = Replica(cfg, "A", loaded, now=NOW)
    r.effects()
    effects = _run_until(r, NOW + HOME_WINDOW + 3_600.0)
    reported = sorted(e.peer for e in effects if isinstance(e, Alarm) and e.kind == "home_down")
    assert reported == ["B", "C"]
    assert sorted(r.status()["homes_down"]) == ["B", "C"]
    assert all(0 < away <= HOME_WINDOW + 3_600.0 for away in r.status()["homes_down"].values())
