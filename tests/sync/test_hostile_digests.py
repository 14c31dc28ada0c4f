"""The messages of digest anti-entropy and digest reads from a hostile member: each one
malformed is refused with a reason naming what is wrong, and changes nothing (no effect, the
same status, summaries and values); the same messages well formed are taken.

Sent through the real decoder (what a peer puts on the wire), then ``Replica.receive``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import crdt
from sync import messages as m
from sync.config import ReplicaConfig
from sync.effects import Loaded, PeerRecord, Send
from sync.errors import RemoteProtocolError
from sync.replica import Replica

__all__: list[str] = []

PARTS = 8
CONFIG = ReplicaConfig(n=2, partitions=PARTS, vnodes=4, anti_entropy_interval=2.0)
ME = "A"
GOOD = "0123456789abcdef"  # a digest as sync.digest spells them
BIG = 2**63 - 1


def _replica() -> tuple[Replica, int]:
    """A replica holding a set, with a read of it at r=2 waiting for B's digest."""
    r = Replica(CONFIG, ME, Loaded(peers={"B": PeerRecord("B")}), now=10.0)
    r.peer_up("B", 10.0)
    r.local_update(1, "s", "orset", lambda s: s.add(ME, "milk"), 10.0)
    r.local_read(2, "s", 10.0, r=2)
    (ask,) = [
        fx.message
        for fx in r.effects()
        if isinstance(fx, Send) and isinstance(fx.message, m.ReadDigest)
    ]
    return r, ask.req_id


def _view(r: Replica) -> tuple[Any, ...]:
    keys = r.keys()
    return (
        json.dumps(r.status(), sort_keys=True, default=str),
        [r.summary(p).to_dict() for p in range(PARTS)],
        {(k, kind): r.value(k, kind) for k in keys for kind in r.kinds_of(k)},
        r.next_deadline(),
    )


def _wire(raw: dict[str, Any]) -> bytes:
    return json.dumps({"proto": 1, **raw}).encode()


def _orset() -> dict[str, Any]:
    return crdt.new("orset").add("B", "eggs").to_dict()


_CTX = {"vv": {"B": 1}, "cloud": []}


def _cases(req: int) -> list[tuple[dict[str, Any], str]]:
    read = {"key": "s", "kind": "orset"}
    return [
        ({"t": "digest", "root": "nothex", "members": GOOD}, "root digest"),
        ({"t": "digest", "root": GOOD, "members": GOOD.upper()}, "members digest"),
        ({"t": "digest", "root": GOOD + "00", "members": GOOD}, "root digest"),
        ({"t": "part_digests", "parts": {str(PARTS): GOOD}}, "out of range"),
        ({"t": "part_digests", "parts": {"1": "x"}}, "partition 1 is malformed"),
        ({"t": "read_digest", "req_id": 9, "key": "", "kind": "orset"}, "not a key"),
        ({"t": "read_digest", "req_id": 9, "key": "a\x00b", "kind": "orset"}, "not a key"),
        ({"t": "read_digest", "req_id": 9, "key": "s", "kind": "bogus"}, "no kind"),
        ({"t": "read_digest", "req_id": 9, **read, "digest": "zz"}, "malformed digest"),
        (
            {"t": "read_digest_resp", "req_id": req, "key": "s", "kind": "lww", "same": True},
            "asked",
        ),
        ({"t": "read_digest_resp", "req_id": req, "key": "", "kind": "orset", "same": True}, "key"),
        (
            {"t": "read_digest_resp", "req_id": req, **read, "same": True, "ctx": _CTX},
            "the same, with a body",
        ),
        (
            {
                "t": "read_digest_resp",
                "req_id": req,
                **read,
                "same": False,
                "ctx": _CTX,
                "state": _orset(),
            },
            "a context and a state",
        ),
        (
            {
                "t": "read_digest_resp",
                "req_id": 77,
                "key": "g",
                "kind": "gcounter",
                "same": False,
                "ctx": _CTX,
            },
            "which has none",
        ),
        (
            {
                "t": "read_digest_resp",
                "req_id": req,
                **read,
                "same": False,
                "ctx": {"vv": {"": 1}, "cloud": []},
            },
            "ctx",
        ),
        (
            {
                "t": "read_digest_resp",
                "req_id": req,
                **read,
                "same": False,
                "state": crdt.new("gcounter").increment("B").to_dict(),
            },
            "carries a gcounter",
        ),
        ({"t": "read_fetch", "req_id": 9, "key": "", "kind": "orset", "seen": _CTX}, "not a key"),
        ({"t": "read_fetch", "req_id": 9, "key": "s", "kind": "nope", "seen": _CTX}, "no kind"),
        (
            {"t": "read_fetch", "req_id": 9, **read, "seen": {"vv": {"B": BIG}, "cloud": []}},
            "seen",
        ),
    ]


@pytest.mark.parametrize("index", range(len(_cases(0))))
def test_a_malformed_digest_message_is_refused_and_changes_nothing(index: int) -> None:
    r, req = _replica()
    raw, reason = _cases(req)[index]
    before = _view(r)
    with pytest.raises((RemoteProtocolError, ValueError), match=reason):
        r.receive("B", m.decode(_wire(raw)), 11.0)
    assert r.effects() == [] and _view(r) == before


def test_the_engine_refuses_them_when_built_without_the_decoder() -> None:
    r, _ = _replica()
    before = _view(r)
    bad = [
        m.Digest.model_construct(t="digest", root="", members=GOOD, reply=True),
        m.PartDigests.model_construct(t="part_digests", parts={-1: GOOD}),
        m.ReadDigest.model_construct(t="read_digest", req_id=1, key="", kind="orset", digest=None),
        m.ReadFetch.model_construct(
            t="read_fetch",
            req_id=1,
            key="s",
            kind="orset",
            seen=m.Ctx.model_construct(vv={"B": 2**62 + 1}, cloud=[]),
        ),
    ]
    for msg in bad:
        with pytest.raises(RemoteProtocolError):
            r.receive("B", msg, 11.0)
        assert r.effects() == [] and _view(r) == before


def test_well_formed_ones_are_taken() -> None:
    r, req = _replica()
    reply = {"t": "read_digest_resp", "req_id": req, "key": "s", "kind": "orset", "same": False}
    r.receive("B", m.decode(_wire({**reply, "ctx": _CTX})), 11.0)
    (fetch,) = [fx.message for fx in r.effects() if isinstance(fx, Send)]
    assert isinstance(fetch, m.ReadFetch)  # B saw a dot we lack: fetch the part we lack
    r.receive("B", m.decode(_wire({"t": "digest", "root": GOOD, "members": GOOD})), 11.0)
    assert any(isinstance(fx, Send) for fx in r.effects())  # answered (digests differ)
