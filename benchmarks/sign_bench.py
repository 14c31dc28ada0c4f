"""The cost of signed origins (``sync.signing``), per entry and per seal.

Run: ``.venv/bin/python benchmarks/sign_bench.py`` (about 10 s; ``--quick`` for a smoke run).

Measures, as CPU time of this process (``time.process_time``, median of ``--runs``), on log
entries shaped like the ones ``benchmarks/e2e_bench.py`` writes (an ``orset`` add of a new
element, with a 20-character replica id):

* **seal**: what an origin does per drain: the digests of 128 entries and one Ed25519
  signature over them (``Signer.seal``), per seal and per entry;
* **verify a seal**: what a receiver does once per seal it has not seen (key check, base64,
  one Ed25519 verification: ``check_seal``);
* **check an entry**: what a receiver does per entry once its seal is known valid (one
  BLAKE2b digest and a set lookup: ``Verifier.covers``);
* **per entry, all told**: seal share + verify share + check, for one origin and one
  receiver;
* the same for a **group**: what a busy drain does since link protocol 7, ``GROUP_MAX``
  seals of ``SEAL_MAX`` entries under one signature (``Signer.seal_all``), and a receiver
  checking each of the group's seals with a fresh ``Verifier`` (one verification, then one
  hash per seal).

No figure is asserted by a test; they go into ``benchmarks/README.md`` ("Signed origins").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import crdt
from sync.effects import LogEntry
from sync.signing import GROUP_MAX, SEAL_MAX, Signer, Verifier, check_seal

__all__ = ["main"]


def _entries(signer: Signer, n: int) -> list[LogEntry]:
    me = signer.replica_id
    return [
        LogEntry(me, i % 64, i + 1, "bench:set", "orset", crdt.ORSet().add(me, f"e{i}").to_json())
        for i in range(n)
    ]


def _cpu(fn: Callable[[], object], repeat: int, runs: int) -> float:
    """Median CPU seconds of one call of ``fn`` over ``runs`` runs of ``repeat`` calls."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        for _ in range(repeat):
            fn()
        times.append((time.process_time() - start) / repeat)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measure (median)")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args(argv)
    runs, scale = (1, 0.1) if args.quick else (args.runs, 1.0)
    signer = Signer(bytes(range(32)))
    entries = _entries(signer, SEAL_MAX)
    seal = signer.seal(entries)
    seal_s = _cpu(lambda: signer.seal(entries), max(1, int(200 * scale)), runs)
    verify_s = _cpu(lambda: check_seal(seal), max(1, int(200 * scale)), runs)
    verifier = Verifier()
    assert verifier.covers(seal, entries[0]) is None
    check_s = _cpu(
        lambda: [verifier.covers(seal, e) for e in entries], max(1, int(200 * scale)), runs
    )
    per_entry = seal_s / SEAL_MAX + verify_s / SEAL_MAX + check_s / SEAL_MAX
    print(f"seal of {SEAL_MAX} entries (origin, once per drain):  {seal_s * 1e6:8.1f} us")
    print(f"  per entry:                                 {seal_s / SEAL_MAX * 1e6:8.2f} us")
    print(f"verify a seal (receiver, once per seal):      {verify_s * 1e6:8.1f} us")
    print(f"  per entry:                                 {verify_s / SEAL_MAX * 1e6:8.2f} us")
    print(f"check an entry against a verified seal:       {check_s / SEAL_MAX * 1e6:8.2f} us")
    print(f"per entry, one origin and one receiver:       {per_entry * 1e6:8.2f} us")
    many = _entries(signer, SEAL_MAX * GROUP_MAX)
    group = signer.seal_all(many)
    group_s = _cpu(lambda: signer.seal_all(many), max(1, int(25 * scale)), runs)

    def verify_group() -> None:
        fresh = Verifier()
        for one in group:
            fresh.digests(one)

    verify_group_s = _cpu(verify_group, max(1, int(25 * scale)), runs)
    n = SEAL_MAX * GROUP_MAX
    grouped = group_s / n + verify_group_s / n + check_s / SEAL_MAX
    print(f"a group of {GROUP_MAX} seals, {n} entries (origin):  {group_s * 1e6:8.1f} us")
    print(f"  per entry:                                 {group_s / n * 1e6:8.2f} us")
    print(f"verify a group's seals (receiver, once):      {verify_group_s * 1e6:8.1f} us")
    print(f"  per entry:                                 {verify_group_s / n * 1e6:8.2f} us")
    print(f"per entry in a group, one origin and one receiver: {grouped * 1e6:3.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
