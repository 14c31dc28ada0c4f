"""Property: after any run, every home holds exactly the join of every state any replica held.

Hypothesis drives three or four replicas (n=3) through ORSet adds and removes, ORMap key
updates, removes and clears, multi-value register sets and deletes, reads at r=2 and r=3
(read repair), partitions, lost messages, crashes and restarts, forgets and unforgets, and
long waits past a short ``home_down_window`` (so the others compact without a home that is
away). After every step the state of each key on every live replica is joined into a
running *model*: the join of everything any replica ever held, which is every write made
and every remove made, as seen where it was made. At the end everyone is unforgotten,
restarted (a re-dial's handshake), the network healed and the cluster run to quiescence;
then every home of a key must hold exactly the model:

* a remove or delete anyone made stays made (nothing removed comes back: an element, a map
  key, an overwritten value), whatever compacted, transferred or repaired meanwhile;
* a write anyone made survives (an add concurrent with a remove wins: it is in the model).

No crash here interrupts a drain (``test_sim_stateful`` does: a write lost that way was
never made), and no disk is restored from a backup (writes made since the backup are lost
with it, by design).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crdt
from sync.config import ReplicaConfig
from sync.ring import Ring
from sync.simnet import SimCluster

__all__: list[str] = []

KEYS = {"cart": "orset", "prefs": "ormap", "note": "mvregister"}
ITEMS = ("milk", "eggs", "ham")


def _mutator(key: str, who: str, item: str, how: int) -> Any:
    if key == "cart":
        return (lambda s: s.add(who, item)) if how < 6 else (lambda s: s.remove(item))
    if key == "prefs":
        if how < 4:
            return lambda m: m.update(who, item, "orset", lambda s: s.add(who, "x"))
        if how < 6:
            return lambda m: m.update(who, item, "orset", lambda s: s.remove("x"))
        return (lambda m: m.remove(item)) if how < 9 else (lambda m: m.clear())
    return (lambda r: r.set(who, item)) if how < 8 else (lambda r: r.clear())


STEP = st.one_of(
    st.tuples(
        st.just("write"),
        st.integers(0, 3),
        st.sampled_from(sorted(KEYS)),
        st.sampled_from(ITEMS),
        st.integers(0, 9),
        st.integers(1, 2),
    ),
    st.tuples(st.just("read"), st.integers(0, 3), st.sampled_from(sorted(KEYS)), st.integers(2, 3)),
    st.tuples(st.just("partition"), st.sets(st.integers(0, 3))),
    st.tuples(st.just("heal")),
    st.tuples(st.just("drop"), st.sampled_from([0.2, 0.5])),
    st.tuples(st.just("crash"), st.integers(0, 3)),
    st.tuples(st.just("restart"), st.integers(0, 3)),
    st.tuples(st.just("forget"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("wait"), st.sampled_from([0.3, 1.0, 5.0, 25.0])),
)


def _step(cluster: SimCluster, ids: list[str], forgotten: set[tuple[str, str]], s: Any) -> None:
    op = s[0]
    live = [r for r in ids if cluster.alive(r)]
    if op == "write" and cluster.alive(who := ids[s[1] % len(ids)]):
        _, _, key, item, how, w = s
        cluster.update(who, key, KEYS[key], _mutator(key, who, item, how), w=w)
    elif op == "read" and cluster.alive(who := ids[s[1] % len(ids)]):
        cluster.read(who, s[2], kind=KEYS[s[2]], r=s[3])
    elif op == "partition":
        side = [r for i, r in enumerate(ids) if i in s[1]]
        cluster.partition([g for g in (side, [r for r in ids if r not in side]) if g])
    elif op == "heal":
        cluster.heal()
    elif op == "drop":
        cluster.drop(None, None, s[1])
    elif op == "crash" and len(live) > 1 and cluster.alive(who := ids[s[1] % len(ids)]):
        cluster.crash(who)
    elif op == "restart" and not cluster.alive(who := ids[s[1] % len(ids)]):
        cluster.restart(who)
    elif op == "forget":
        a, b = ids[s[1] % len(ids)], ids[s[2] % len(ids)]
        if a != b and cluster.alive(a):
            if (a, b) in forgotten:
                cluster.unforget(a, b)
                forgotten.discard((a, b))
            else:
                cluster.forget(a, b)
                forgotten.add((a, b))
    elif op == "wait":
        cluster.run_for(s[1])


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    peers=st.integers(3, 4), steps=st.lists(STEP, min_size=5, max_size=40), seed=st.integers(0, 9)
)
def test_every_home_ends_with_the_join_of_every_state_ever_held(
    peers: int, steps: list[Any], seed: int
) -> None:
    ids = [f"p{i}" for i in range(peers)]
    config = ReplicaConfig(
        n=3, anti_entropy_interval=2.0, write_timeout=1.0, read_timeout=1.0, home_down_window=20.0
    )
    cluster = SimCluster(ids, config, seed=seed, detect_delay=0.5)
    model = {key: crdt.new(kind) for key, kind in KEYS.items()}
    forgotten: set[tuple[str, str]] = set()

    def observe() -> None:
        for rid in ids:
            if cluster.alive(rid):
                for key in KEYS:
                    state = cluster.value(rid, key)
                    if state is not None:
                        model[key].merge(state)

    cluster.run_for(1.0)
    for s in steps:
        _step(cluster, ids, forgotten, s)
        observe()
    for rid in ids:
        if not cluster.alive(rid):
            cluster.restart(rid)
    for a, b in sorted(forgotten):
        cluster.unforget(a, b)
    for rid in ids:  # an unforget re-dials: a handshake with everyone
        cluster.crash(rid)
        cluster.restart(rid)
    cluster.heal()
    for _ in range(10):
        assert cluster.run_until_quiet(200_000)
        cluster.run_for(2.0)
    observe()
    ring = Ring(ids, n=3, partitions=config.partitions, vnodes=config.vnodes)
    for key in KEYS:
        for rid in ring.homes_of(key):
            state = cluster.value(rid, key)
            if state is None:  # never written
                state = crdt.new(KEYS[key])
            assert state == model[key], (key, rid, state, model[key])
