"""Child process of the crash test: writes batches through a Store and prints each ack.

``python crash_child.py zygote`` imports everything once, then for each ``RUN DB SEED`` line
on stdin forks a writer (so a round costs a fork, not a Python start-up), prints
``PID <pid>``, waits for it to die (the parent SIGKILLs it) and prints ``DEAD <pid>``: every
line the writer printed comes before that. ``python crash_child.py DB SEED`` runs one writer
in the foreground.

A writer resumes from what the database holds (counters and the
next log seq per partition, from ``load()``), then forever (bounded): builds a batch of
increments -- one log entry per key, the key's checkpoint, the summaries of the touched
partitions -- from several concurrent writers (so group commit is exercised), awaits
``apply`` and only then prints ``ACK <json>`` with the log dots of the batch. The parent
kills it with SIGKILL at a random moment.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import random
import signal
import sys

import crdt
from store import Batch, LogRow, ObjectRow, Store, default_partition_of

ORIGIN = "W"
KEYS = [f"key{i}" for i in range(40)]
WRITERS = 4


async def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    async with await Store.open(path) as store:
        loaded = await store.load()
        counters = {o.key: crdt.from_dict(o.state) for o in loaded.objects.values()}
        next_seq = {p: ctx["vv"].get(ORIGIN, 0) + 1 for p, ctx in loaded.summaries.items()}

        def make_batch() -> tuple[Batch, list[list[int]]]:
            keys = rng.sample(KEYS, rng.randint(1, 8))
            entries, rows, dots = [], [], []
            for key in keys:
                part = default_partition_of(key)
                seq = next_seq.get(part, 1)
                next_seq[part] = seq + 1
                counter = counters.setdefault(key, crdt.GCounter())
                delta = counter.increment(ORIGIN, 1)
                entries.append(LogRow(ORIGIN, part, seq, key, "gcounter", delta.to_dict()))
                rows.append(ObjectRow(key, "gcounter", counter.to_dict()))
                dots.append([part, seq])
            parts = {p for p, _ in dots}
            summaries = tuple(
                (p, {"vv": {ORIGIN: next_seq[p] - 1}, "cloud": []}) for p in sorted(parts)
            )
            return Batch(objects=tuple(rows), log=tuple(entries), summaries=summaries), dots

        async def writer() -> None:
            for _ in range(100_000):
                batch, dots = make_batch()  # built and queued in order: no await in between
                await store.apply(batch)
                sys.stdout.write("ACK " + json.dumps(dots) + "\n")
                sys.stdout.flush()

        sys.stdout.write("READY\n")
        sys.stdout.flush()
        await asyncio.gather(*(writer() for _ in range(WRITERS)))


def zygote() -> None:
    faulthandler.register(signal.SIGUSR1)  # the test asks for stacks if we go silent
    for _ in range(10_000):
        line = sys.stdin.readline()
        if not line:
            return
        _, path, seed = line.split()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                # A writer is killed within a second; if one hangs, say where (stderr).
                faulthandler.dump_traceback_later(20, exit=True)
                asyncio.run(main(path, int(seed)))
            finally:
                os._exit(0)
        sys.stdout.write(f"PID {pid}\n")
        sys.stdout.flush()
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"DEAD {pid} {status}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["zygote"]:
        zygote()
    else:
        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
