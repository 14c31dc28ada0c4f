"""Child process of the failed-open tests: opens a store while the OS refuses new threads.

``python threads_child.py PATH`` makes a database at ``PATH`` and closes it, then, for n = 1,
2, ..., opens it again with room for only n more threads: every new thread's stack is made
256 MiB and the address space limited to what is mapped now, plus n stacks and half of one.
After each open the OS cut short it prints one JSON line: ``error`` (the open's), ``started``
(the threads that started during it), ``left`` (the store's threads still alive after it),
and ``reopened`` (whether, with the limits lifted, the database opens again at once in this
process: its lock was let go). It stops at the first open that succeeds (printing
``{"opened": n}``) or after a few tries.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

from store import Store

STACK = 256 << 20
TRIES = 12

started: list[str] = []


def _seen(frame: FrameType, event: str, arg: Any) -> None:
    """The profile function each new thread runs first: note it, and stop profiling it."""
    started.append(threading.current_thread().name)
    sys.setprofile(None)


def _mapped() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _store_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("shoal-store")]


async def _warm_executor(workers: int = 8) -> None:
    """Start every thread of the loop's default executor now: an open that needs one then
    starts none, so each try below fails at the same thread whatever the machine's load
    (an executor starts its threads as the work waiting for them asks)."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(workers))
    all_started = threading.Barrier(workers)
    await asyncio.gather(*(loop.run_in_executor(None, all_started.wait) for _ in range(workers)))


async def main(path: str) -> None:
    async with await Store.open(path):  # made, and every module the open needs imported
        pass
    await _warm_executor()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    threading.setprofile(_seen)
    for n in range(1, TRIES + 1):
        started.clear()
        threading.stack_size(STACK)
        resource.setrlimit(resource.RLIMIT_AS, (_mapped() + n * STACK + STACK // 2, hard))
        try:
            store = await Store.open(path)
        except RuntimeError as exc:
            error, during = str(exc), list(started)
        else:
            print(json.dumps({"opened": n}), flush=True)
            await store.aclose()
            return
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
            threading.stack_size(0)
        left = _store_threads()
        try:
            async with await Store.open(path):
                reopened = True
        except Exception as exc:
            reopened = False
            error += f"; then: {exc!r}"
        report = {"error": error, "started": during, "left": left, "reopened": reopened}
        print(json.dumps(report), flush=True)
    print(json.dumps({"opened": None}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
