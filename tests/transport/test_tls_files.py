"""``Peer.open`` refuses a TLS file it cannot load naming the argument and the path, with
the exception types it raised before (an ``OSError``: ``FileNotFoundError``,
``IsADirectoryError``, ``ssl.SSLError`` for a file that is not PEM), before anything is
opened; a peer URL without a port is refused as docs/operations.md says."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from sync.transport.peer import Peer
from tests.transport.conftest import FAST_TRANSPORT

__all__: list[str] = []


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, Path]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = {"cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem", "ca": tmp_path / "ca.pem"}
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    other = tmp_path / "other-key.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other))
    files["other key"] = other
    notes = tmp_path / "notes.txt"
    notes.write_text("milk\n")
    files["not pem"] = notes
    (tmp_path / "a-dir").mkdir()
    files["dir"] = tmp_path / "a-dir"
    files["missing"] = tmp_path / "missing.pem"
    return files


CASES = [
    ("tls_cert", "missing", FileNotFoundError, "No such file or directory"),
    ("tls_key", "missing", FileNotFoundError, "No such file or directory"),
    ("tls_ca", "missing", FileNotFoundError, "No such file or directory"),
    ("tls_cert", "dir", IsADirectoryError, "Is a directory"),
    ("tls_ca", "dir", IsADirectoryError, "Is a directory"),
    ("tls_cert", "not pem", ssl.SSLError, "not a PEM certificate"),
    ("tls_key", "not pem", ssl.SSLError, "not a PEM private key"),
    ("tls_ca", "not pem", ssl.SSLError, "no certificate or crl found"),
]


@pytest.mark.parametrize(("arg", "bad", "kind", "why"), CASES)
async def test_a_tls_file_that_cannot_be_loaded_is_named(
    tmp_path: Path, pem: dict[str, Path], arg: str, bad: str, kind: type[OSError], why: str
) -> None:
    given: dict[str, Any] = {"tls_cert": str(pem["cert"]), "tls_key": str(pem["key"])}
    given[arg] = str(pem[bad])
    before = sorted(tmp_path.iterdir())
    with pytest.raises(kind) as raised:
        await Peer.open(str(tmp_path / "never.db"), transport=FAST_TRANSPORT, **given)
    # (An OSError of a file shows its number first, as OSErrors do: "[Errno 2] cannot...")
    assert raised.value.strerror == f"cannot load {arg} {pem[bad]}: {why}"
    assert str(raised.value).endswith(raised.value.strerror)
    assert sorted(tmp_path.iterdir()) == before


async def test_a_key_of_another_certificate_names_both(
    tmp_path: Path, pem: dict[str, Path]
) -> None:
    with pytest.raises(ssl.SSLError) as raised:
        await Peer.open(
            str(tmp_path / "never.db"), tls_cert=str(pem["cert"]), tls_key=str(pem["other key"])
        )
    assert str(raised.value) == (
        f"cannot load tls_cert {pem['cert']} with tls_key {pem['other key']}: key values mismatch"
    )
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize(
    "opts",
    [
        {"peers": ["ws://127.0.0.1"]},
        {"peers": ["wss://relay.example.org/sync"]},
        {"advertise": "ws://host"},
    ],
)
async def test_a_peer_url_without_a_port_is_refused(tmp_path: Path, opts: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="has no port"):
        await Peer.open(str(tmp_path / "never.db"), listen="127.0.0.1:0", secret=b"s", **opts)
    assert list(tmp_path.iterdir()) == []


async def test_good_tls_files_serve_wss(tmp_path: Path, pem: dict[str, Path]) -> None:
    async with Peer.open(
        str(tmp_path / "a.db"),
        listen="127.0.0.1:0",
        secret=b"s",
        tls_cert=str(pem["cert"]),
        tls_key=str(pem["key"]),
        tls_ca=str(pem["ca"]),
        transport=FAST_TRANSPORT,
    ) as peer:
        assert peer.url is not None and peer.url.startswith("wss://127.0.0.1:")
