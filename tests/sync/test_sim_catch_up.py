"""Catch-up progress: a replica that receives a large anti-entropy round reports, per source
peer, how much is left (``status()["catching_up"]``), and the amount left only goes down
until the catch-up ends and leaves the report."""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def test_a_new_replica_reports_what_is_left_of_its_catch_up_until_it_ends(kit: Any) -> None:
    cluster = kit.cluster(
        ["p000", "p001"], n=3, anti_entropy_interval=1.0, ae_batch=20, snapshot_chunk=20, seed=4
    )
    ops = [
        cluster.update("p000", f"s{i}", "gcounter", kit.incr("p000", i + 1), w=2)
        for i in range(400)
    ]
    assert cluster.run_until(lambda: all(op.done for op in ops), max_steps=200_000)
    assert all(op.ok for op in ops)

    cluster.add_replica("p002")
    seen: list[tuple[int, int]] = []
    for _ in range(200_000):
        if not cluster.step():
            break
        report = cluster.replica("p002").status()["catching_up"]
        for source, progress in report.items():
            assert source in ("p000", "p001"), report
            assert progress["entries_left"] >= 0 and progress["bytes_left"] >= 0, progress
            assert progress["entries"] > 0, progress
            seen.append((progress["entries_left"], progress["bytes_left"]))
        if (
            seen
            and not report
            and all(cluster.values(f"s{i}").get("p002") == i + 1 for i in range(400))
        ):
            break
    assert len(seen) > 3, "no catch-up was ever reported while 400 keys arrived"
    assert max(left for left, _ in seen) >= 20, seen[:5]  # more than one batch was announced
    assert cluster.replica("p002").status()["catching_up"] == {}
    for i in range(400):
        assert cluster.values(f"s{i}").get("p002") == i + 1
    assert cluster.anomalies == [] and cluster.protocol_errors == []
