"""shoal.faults: test a shoal deployment under faults, in the style of Maelstrom.

* :mod:`.proxy`: a seeded asyncio proxy per directed link that cuts, stalls, delays, drops,
  duplicates, reorders and corrupts whole websocket frames.
* :mod:`.harness`: a :class:`Cluster` of ``shoal serve`` subprocesses behind those proxies,
  killed with SIGKILL and restarted, plus embedded client peers.
* :mod:`.clients` and :mod:`.checkers`: writers that record every write's acknowledgement,
  and the properties a run's history and final states must satisfy.
* :mod:`.workloads`: g-set, pn-counter, kill -9, relay handoff, two sites, clock skew.
* ``python -m shoal.faults run [NAME ...] --scale long --report docs/reliability.md`` runs
  them and writes their figures (see :mod:`shoal.faults.__main__`).

>>> from shoal.faults import WORKLOADS
>>> sorted(WORKLOADS)[:2]
['clock-skew', 'g-set']
"""

from __future__ import annotations

from .checkers import Verdict, check_counter, check_register, check_set
from .clients import Attempt, drive, record
from .harness import Cluster, ClusterConfig, HarnessError, PeerSpec, ServedPeer
from .proxy import LinkFaults, LinkState, Proxy, ProxyStats
from .workloads import WORKLOADS, Result, Workload

__all__ = [
    "WORKLOADS",
    "Attempt",
    "Cluster",
    "ClusterConfig",
    "HarnessError",
    "LinkFaults",
    "LinkState",
    "PeerSpec",
    "Proxy",
    "ProxyStats",
    "Result",
    "ServedPeer",
    "Verdict",
    "Workload",
    "check_counter",
    "check_register",
    "check_set",
    "drive",
    "record",
]
