"""A state transfer's states are checkpointed as the text they came as, unless they change.

A new peer adopts most states of a bootstrap as they come (it holds nothing of those keys).
Re-encoding each one only to store the text it was just decoded from was a fifth of a new
peer's time; the checkpoint of such a state is now the received text itself. A key that
changes again in the same drain (a push or a local write after the chunk) is checkpointed
from its object, so the text of a state it no longer is can never be stored.
"""

from __future__ import annotations

import json

import pytest

import crdt
from crdt._split_text import split_text
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import Effect, Persist
from sync.replica import Replica
from sync.replica.local_data import WHOLE_TEXT_SHARE
from sync.ring import partition_of
from tests.sync.conftest import ask_transfer, asking_replica

KEY = "list"
PART = partition_of(KEY, 64)


def _checkpoints(effects: list[Effect]) -> dict[tuple[str, str], str]:
    return {
        (o.key, o.kind): o.state_json
        for fx in effects
        if isinstance(fx, Persist)
        for o in fx.objects
    }


def _decoded(text: str) -> crdt.CRDT:
    return crdt.from_dict(json.loads(text))


def _replica() -> Replica:
    return asking_replica(PART)


def _chunk(*states: tuple[str, crdt.CRDT]) -> m.SnapshotChunk:
    objects = [m.SnapObject(key=k, kind=s.kind, state_json=s.to_json()) for k, s in states]
    return m.SnapshotChunk(batch_id=7, partition=PART, objects=objects)


def _milk() -> crdt.CRDT:
    s = crdt.new("orset")
    s.add("C", "milk")
    return s


def test_an_adopted_state_is_checkpointed_as_the_text_it_came_as() -> None:
    r = _replica()
    chunk = _chunk((KEY, _milk()))
    received = chunk.objects[0].state_json
    r.receive("B", chunk, 0.0)
    stored = _checkpoints(r.effects())[(KEY, "orset")]
    assert stored is received  # the same text object: nothing was encoded again


def test_a_state_merged_into_one_held_here_is_encoded_afresh() -> None:
    r = _replica()
    r.local_update(1, KEY, "orset", lambda s: s.add("A", "eggs"), 0.0)
    r.effects()
    chunk = _chunk((KEY, _milk()))
    r.receive("B", chunk, 1.0)
    stored = _checkpoints(r.effects())[(KEY, "orset")]
    assert stored != chunk.objects[0].state_json
    assert _decoded(stored).value == frozenset({"milk", "eggs"})


def _push_eggs(r: Replica) -> None:
    delta = crdt.new("orset").add("B", "eggs")
    entry = m.Entry(
        origin="B", partition=PART, seq=1, key=KEY, kind="orset", delta_json=delta.to_json()
    )
    r.receive("B", m.Push(push_id=1, entries=[entry]), 0.0)


def _write_eggs(r: Replica) -> None:
    r.local_update(1, KEY, "orset", lambda s: s.add("A", "eggs"), 0.0)


@pytest.mark.parametrize("change", [_push_eggs, _write_eggs], ids=["push", "local write"])
def test_a_key_changed_again_in_the_same_drain_is_checkpointed_from_its_object(
    change: object,
) -> None:
    r = _replica()
    chunk = _chunk((KEY, _milk()))
    r.receive("B", chunk, 0.0)
    assert callable(change)
    change(r)  # before the drain: the received text is no longer the key's state
    stored = _checkpoints(r.effects())[(KEY, "orset")]
    assert stored is not chunk.objects[0].state_json
    assert _decoded(stored).value == frozenset({"milk", "eggs"})
    assert stored == _decoded(stored).to_json()  # encoded by this replica: its compact form


def test_a_text_that_could_be_cut_when_served_is_stored_in_our_layout() -> None:
    # A hostile peer's text that decodes to a state but is not in our layout: a duplicated
    # "entries" and "ctx" (JSON parsers keep the last copy). Were it stored as it came and
    # later served in pieces, the cutter, which reads our layout entry by entry, would stop
    # at it and the partition could never be served again.
    limit = 64 * 1024
    r = Replica(ReplicaConfig(n=2, max_message_bytes=limit), "A")
    r.peer_up("B", 0.0)
    r.effects()
    ask_transfer(r, "B", [PART], 0.0)
    state = crdt.new("orset")
    for i in range(200):
        state.add("C", f"element {i:04d}")
    ours = state.to_json()
    assert len(ours) > limit // WHOLE_TEXT_SHARE  # a text the cutter may have to read
    theirs = ours.replace(
        '"entries":[', '"entries":[["zz",[["C",1]]]],"ctx":{"vv":{"C":1}},"entries":[', 1
    )
    assert _decoded(theirs) == state
    chunk = m.SnapshotChunk(
        batch_id=1,
        partition=PART,
        objects=[m.SnapObject(key=KEY, kind="orset", state_json=theirs)],
    )
    r.receive("B", chunk, 0.0)
    stored = _checkpoints(r.effects())[(KEY, "orset")]
    assert stored == ours
    joined = crdt.new("orset")
    for piece in split_text(stored, 1000):  # what serving it in pieces does
        joined.merge(_decoded(piece))
    assert joined == state
