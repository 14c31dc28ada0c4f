"""What the unauthenticated /status endpoint may show: figures, never key names."""

from __future__ import annotations

import json

from sync.transport.status import public_status


def test_public_status_counts_sibling_keys_instead_of_naming_them() -> None:
    snapshot = {
        "replica_id": "r1",
        "log_size": 3,
        "siblings": {"max": 2, "keys": {"note:alice-diary": 2, "note:bob": 2}},
        "engine": {"log_size": 3, "siblings": {"note:alice-diary": 2, "note:bob": 2}},
    }
    public = public_status(snapshot)
    assert public["siblings"] == {"max": 2, "keys": 2}
    assert public["engine"]["siblings"] == 2
    assert public["log_size"] == 3 and public["engine"]["log_size"] == 3
    assert "alice-diary" not in json.dumps(public)
    # The in-process snapshot is left as it was.
    assert snapshot["siblings"]["keys"] == {"note:alice-diary": 2, "note:bob": 2}
