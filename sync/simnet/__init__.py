"""A deterministic simulated network of :class:`sync.Replica` objects, for tests and users.

Theory of operation
-------------------
:class:`SimCluster` plays the part that the asyncio node and the store play in production,
with no socket, no disk and no real clock:

* **One fake clock** (``cluster.now``, seconds). Nothing happens between events; every event
  (a message delivery, a replica's timer, a failure detector noticing a link change) sits in
  one priority queue ordered by ``(time, insertion order)``.
* **One simulated disk per replica** (:class:`SimDisk`): an in-memory model of the store that
  applies each :class:`~sync.effects.Persist` exactly as the docstring of
  :mod:`sync.effects` says (objects upsert, log append, summaries replace, hints add and drop,
  peers upsert, compact) and hands a :class:`~sync.effects.Loaded` back on restart. Deltas and
  checkpoints are immutable text (checked to be JSON objects, as a real store would refuse
  anything else), and summaries are copied through JSON, so the engine cannot share
  memory with its disk.
* **Effects run in order, right after the input that produced them.** ``Persist`` is applied
  to the disk at once (so it is durable before the next effect), ``Send`` encodes the message
  to bytes with :func:`sync.messages.encode` and puts it in flight, ``WriteDone``/
  ``WriteFailed``/``ReadDone``/``ReadFailed`` complete the matching :class:`SimOp` handle,
  ``Changed`` is counted. A message is decoded with :func:`sync.messages.decode` (the
  receiver's ``max_message_bytes``) when it is delivered, so the codec is exercised.
* **Faults, per directed link**: ``drop`` (probability), ``delay`` (uniform range),
  ``duplicate`` and ``reorder`` (global), ``partition(groups)``, ``heal()``. Without
  ``reorder`` each link is FIFO, like one TCP connection. A message whose link is cut, or
  whose sender or receiver crashed after it was sent, is lost.
* **Crash and restart**: :meth:`SimCluster.crash` throws away the replica object (all memory)
  and any effect not yet executed; :meth:`SimCluster.crash_when` arms a crash *between two
  effects* of one batch (the persist-before-acknowledge test). :meth:`SimCluster.restart`
  builds a new replica from its disk's ``Loaded``.
* **Failure detection, simply**: a replica believes a peer is *up* when the two can talk
  (both alive, same side of every partition). When that changes, each side is told
  ``peer_down``/``peer_up`` after ``detect_delay`` seconds, if it is still true then. A
  restarted peer resets its connections: peers that still believed it up are told
  ``peer_down`` at once, then ``peer_up`` after ``detect_delay``.
* **Membership and operators**: :meth:`SimCluster.add_replica` (an empty replica joins),
  :meth:`SimCluster.forget`, ``restart(rid, disk=backup)`` (a restore from
  :meth:`SimDisk.copy`), ``known_peers=True`` (start as a configured group).
* **What a test inspects**: :class:`SimOp` handles (``cluster.ops``), ``cluster.stats``
  (messages sent/delivered/dropped/duplicated by type, bytes, effects lost to crashes),
  ``values``/``converged``/``divergent``, each replica's :class:`SimDisk`, and three lists
  that a correct engine leaves empty or explains: ``anomalies`` (a completion for no pending
  operation, a send to a non-peer, a timer that does not move on), ``protocol_errors``
  (raised as :class:`SimulationError` unless ``raise_protocol_errors=False``) and
  ``other_effects`` (effects the simulator does not execute, e.g. ``IdentityConflict``).
* **Deterministic**: one ``random.Random(seed)``; every iteration over replicas is in sorted
  order. The same seed and the same calls give the same run, message for message.
* **Bounded**: ``run_until``, ``run_until_quiet`` and ``run_for`` take ``max_steps``;
  ``run_until*`` return whether the condition was reached, ``run_for`` raises
  :class:`SimulationError` if it needs more steps.

Example (three replicas, n=3, writes wait for two acknowledgements):

>>> from sync.config import ReplicaConfig
>>> cluster = SimCluster(["a", "b", "c"], ReplicaConfig(n=3, w=2), seed=7)
>>> op = cluster.update("a", "visits", "gcounter", lambda c: c.increment("a", 1))
>>> cluster.run_until(lambda: op.done, max_steps=1_000), op.ok, op.result.acks
(True, True, 2)
>>> cluster.partition([["a"], ["b", "c"]])
>>> op = cluster.update("b", "visits", "gcounter", lambda c: c.increment("b", 2))
>>> cluster.run_until(lambda: op.done, max_steps=1_000), op.ok, cluster.values("visits")
(True, True, {'a': 1, 'b': 3, 'c': 3})
>>> cluster.heal()
>>> cluster.run_until(lambda: cluster.quiet() and cluster.converged(), max_steps=100_000)
True
>>> cluster.values("visits"), cluster.stats.sent["Push"] > 0
({'a': 3, 'b': 3, 'c': 3}, True)
"""

from __future__ import annotations

from sync.simnet.cluster import SimCluster
from sync.simnet.disk import SimDisk
from sync.simnet.ops import (
    MessageStats,
    ReplicaFactory,
    SimOp,
    SimReplica,
    SimulationError,
)

__all__ = [
    "MessageStats",
    "ReplicaFactory",
    "SimCluster",
    "SimDisk",
    "SimOp",
    "SimReplica",
    "SimulationError",
]
