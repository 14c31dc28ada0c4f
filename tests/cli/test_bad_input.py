"""An operator's mistake in a file, a URL or a number ends a ``shoal`` command with one line
on stderr naming the option and the value, the documented exit status (2 for bad usage, 1
for a TLS file that cannot be loaded, as ``serve`` documents), no traceback, and nothing
made on disk: ``--tls-ca``/``--tls-cert``/``--tls-key`` files that are missing, not PEM or
a directory; ``--timeout`` values that are not a finite number of seconds above 0; peer URLs
with a port out of range, a broken IPv6 host or (for ``--peer`` and ``--advertise``) no
port; a ``demo --keep`` folder that cannot be made. An option a command does not know is that
command's usage error (its usage, then the error; exit status 2), and so is a ``serve``
without its ``--secret-file``, which its usage line shows as required.

These call :func:`shoal.cli.main` in the test process (no server is reached: each mistake
is caught before anything is dialled or opened); ``tests/shoal/test_operator_errors.py``
runs real processes for the mistakes of databases and ports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shoal import cli
from tests.transport.conftest import SECRET

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[2]
PYTHONPATH = os.environ.get("PYTHONPATH", "")

# Nothing listens on port 1 of loopback: a mistake the command misses fails later, and
# differently (connection refused), instead of reaching a peer.
NOWHERE = "127.0.0.1:1"


def one_line(err: str) -> str:
    """The whole of stderr, asserted to be exactly one line ``shoal: ...``."""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("shoal: ") and "Traceback" not in err, err
    return err.rstrip("\n")


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "missing.pem"


def _not_pem(tmp: Path) -> Path:
    path = tmp / "notes.txt"
    path.write_text("milk\neggs\n")
    return path


def _directory(tmp: Path) -> Path:
    path = tmp / "certs"
    path.mkdir()
    return path


BAD_FILES = [_missing, _not_pem, _directory]


def _forget(url: str, secret_file: Path, *more: str) -> list[str]:
    return ["forget", url, "gone-peer", "--secret-file", str(secret_file), "--yes", *more]


# -- --tls-ca of status and forget ----------------------------------------------------------


@pytest.mark.parametrize("make", BAD_FILES, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("scheme", ["wss", "https"])
def test_status_names_a_bad_tls_ca_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], Path], scheme: str
) -> None:
    ca = make(tmp_path)
    assert cli.main(["status", f"{scheme}://{NOWHERE}", "--tls-ca", str(ca)]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"shoal: status: cannot load --tls-ca {ca}: "), line


@pytest.mark.parametrize("make", BAD_FILES, ids=lambda f: f.__name__.strip("_"))
def test_forget_names_a_bad_tls_ca_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    secret_file: Path,
    make: Callable[[Path], Path],
) -> None:
    ca = make(tmp_path)
    assert cli.main(_forget(f"wss://{NOWHERE}", secret_file, "--tls-ca", str(ca))) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"shoal: forget: cannot load --tls-ca {ca}: "), line


# -- --timeout ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-1", "0", "soon"])
@pytest.mark.parametrize("command", ["status", "forget"])
def test_a_timeout_must_be_a_finite_number_of_seconds_above_0(
    capsys: pytest.CaptureFixture[str], secret_file: Path, command: str, value: str
) -> None:
    url = f"ws://{NOWHERE}"
    args = ["status", url] if command == "status" else _forget(url, secret_file)
    with pytest.raises(SystemExit) as done:
        cli.main([*args, f"--timeout={value}"])  # (argparse reads "-inf" as an option)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"argument --timeout: {value!r} is not" in err.splitlines()[-1], err


def test_a_fractional_timeout_is_taken(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", f"ws://{NOWHERE}", "--timeout", "0.5"]) == 1
    assert "cannot read" in one_line(capsys.readouterr().err)


# -- URLs of status and forget --------------------------------------------------------------


BAD_URLS = [
    ("ws://127.0.0.1:99999", "the port is not a number in 1..65535"),
    ("ws://127.0.0.1:0", "port 0 cannot be dialled"),
    ("ws://[::1", "is not a valid URL"),
    ("ws://h:x", "the port is not a number in 1..65535"),
    ("ws://:8765", "has no host"),
]


@pytest.mark.parametrize(("url", "why"), BAD_URLS)
def test_forget_refuses_a_bad_url_as_bad_usage(
    capsys: pytest.CaptureFixture[str], secret_file: Path, url: str, why: str
) -> None:
    assert cli.main(_forget(url, secret_file)) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"shoal: forget: URL {url!r}") and why in line, line


@pytest.mark.parametrize(("url", "why"), BAD_URLS)
def test_status_refuses_a_bad_url_as_bad_usage(
    capsys: pytest.CaptureFixture[str], url: str, why: str
) -> None:
    for shown in (url, url.replace("ws://", "http://")):
        assert cli.main(["status", shown]) == 2
        line = one_line(capsys.readouterr().err)
        assert line.startswith(f"shoal: status: URL {shown!r}") and why in line, line


def test_forget_refuses_an_http_url(capsys: pytest.CaptureFixture[str], secret_file: Path) -> None:
    assert cli.main(_forget(f"http://{NOWHERE}", secret_file)) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("shoal: forget: URL 'http://127.0.0.1:1' must start with ws://"), line


def test_status_and_forget_take_a_url_without_a_port(
    capsys: pytest.CaptureFixture[str], secret_file: Path
) -> None:
    # A one-shot command dials once and says why it failed: the scheme's default port (80,
    # 443) is a reasonable thing to ask for (a peer behind a TLS proxy); nothing listens on
    # port 80 of 127.0.0.2 here.
    assert cli.main(["status", "ws://127.0.0.2", "--timeout", "2"]) == 1
    assert "http://127.0.0.2/status" in one_line(capsys.readouterr().err)
    assert cli.main(_forget("ws://127.0.0.2", secret_file, "--timeout", "2")) == 1
    assert one_line(capsys.readouterr().err).startswith("shoal: forget: ")


# -- serve: TLS files, and peer URLs without a port -----------------------------------------


def _serve(tmp: Path, secret_file: Path, *more: str) -> list[str]:
    db = tmp / "never.db"
    base = ["serve", "--db", str(db), "--listen", "127.0.0.1:0"]
    return [*base, "--secret-file", str(secret_file), *more]


@pytest.fixture
def pem_pair(tmp_path: Path) -> tuple[Path, Path]:
    import trustme

    cert = trustme.CA().issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


@pytest.mark.parametrize("make", BAD_FILES, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("option", ["--tls-cert", "--tls-key", "--tls-ca"])
def test_serve_names_a_bad_tls_file_and_makes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    secret_file: Path,
    pem_pair: tuple[Path, Path],
    make: Callable[[Path], Path],
    option: str,
) -> None:
    bad = make(tmp_path)
    files = {"--tls-cert": str(pem_pair[0]), "--tls-key": str(pem_pair[1]), option: str(bad)}
    before = sorted(tmp_path.iterdir())
    args = _serve(tmp_path, secret_file, *(a for kv in files.items() for a in kv))
    assert cli.main(args) == 1  # documented: "could not start: ... an unreadable TLS file"
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"shoal: serve: cannot load {option} {bad}: "), line
    assert sorted(tmp_path.iterdir()) == before


def test_serve_names_a_key_that_is_not_the_certificates(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    secret_file: Path,
    pem_pair: tuple[Path, Path],
) -> None:
    import trustme

    other = tmp_path / "other-key.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other))
    args = _serve(tmp_path, secret_file, "--tls-cert", str(pem_pair[0]), "--tls-key", str(other))
    assert cli.main(args) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(
        f"shoal: serve: cannot load --tls-cert {pem_pair[0]} with --tls-key {other}: "
    ), line
    assert "key values mismatch" in line, line


@pytest.mark.parametrize("option", ["--tls-cert", "--tls-key"])
def test_serve_refuses_a_certificate_without_its_key_as_bad_usage(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    secret_file: Path,
    pem_pair: tuple[Path, Path],
    option: str,
) -> None:
    given = pem_pair[0] if option == "--tls-cert" else pem_pair[1]
    assert cli.main(_serve(tmp_path, secret_file, option, str(given))) == 2
    line = one_line(capsys.readouterr().err)
    assert line == "shoal: serve: TLS needs both a certificate and a key (--tls-cert and --tls-key)"
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize(
    ("option", "url"),
    [
        ("--peer", "ws://127.0.0.1"),
        ("--peer", "wss://relay.example.org/"),
        ("--advertise", "ws://host"),
    ],
)
def test_serve_refuses_a_peer_url_without_a_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], secret_file: Path, option: str, url: str
) -> None:
    # docs/operations.md: "a --peer or --advertise that is not a ws:// or wss:// URL with a
    # host and a port in 1..65535" is bad usage (exit 2).
    assert cli.main(_serve(tmp_path, secret_file, option, url)) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"shoal: serve: {option} {url!r} has no port"), line
    assert not (tmp_path / "never.db").exists()


# -- options a command does not know, and the one serve requires ------------------------


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[str, str]:
    """Run ``shoal ARGV``, a usage error: (its usage, its last line: the error)."""
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    assert done.value.code == 2  # bad usage (docs/operations.md, shoal --help)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    usage, _, last = err.rstrip("\n").rpartition("\n")
    return usage, last


def _mistyped(tmp: Path, secret_file: Path, command: str) -> tuple[list[str], str]:
    """``command`` with all it requires and a mistyped option; the words argparse refuses."""
    url = f"ws://{NOWHERE}"
    argv, bad = {
        "serve": (_serve(tmp, secret_file), ["--lissten", "127.0.0.1:0"]),
        "inspect": (["inspect", "--db", str(tmp / "never.db")], ["--bogus"]),
        "status": (["status", url], ["--jsn"]),
        "forget": (_forget(url, secret_file), ["--undoo"]),
    }[command]
    return [*argv, *bad], " ".join(bad)


@pytest.mark.parametrize("command", ["serve", "inspect", "status", "forget"])
def test_an_option_a_command_does_not_know_prints_that_commands_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], secret_file: Path, command: str
) -> None:
    # Before, argparse left a command's unknown options to the top-level parser, which
    # printed "usage: shoal [-h] [--version] [--debug] COMMAND ..." and "shoal: error: ...".
    argv, bad = _mistyped(tmp_path, secret_file, command)
    before = sorted(tmp_path.iterdir())
    usage, error = _usage_error(capsys, argv)
    assert usage.startswith(f"usage: shoal {command} [-h] [--debug] "), usage
    assert error == f"shoal {command}: error: unrecognized arguments: {bad}", error
    assert sorted(tmp_path.iterdir()) == before


def test_an_option_before_the_command_is_the_top_level_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    usage, error = _usage_error(capsys, ["--bogus", "status", f"ws://{NOWHERE}"])
    assert usage.startswith("usage: shoal [-h] [--version] [--debug] COMMAND"), usage
    assert error == "shoal: error: unrecognized arguments: --bogus"


def test_serve_usage_shows_the_secret_file_as_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # serve cannot run without the group secret (it is the only way to give it): the usage
    # line says so, as forget's does, and leaving it out is refused before anything opens.
    for command in ("serve", "forget"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        usage = " ".join(capsys.readouterr().out.split("\n\n")[0].split())
        assert " --secret-file PATH" in usage and "[--secret-file PATH]" not in usage, usage
    argv = ["serve", "--db", str(tmp_path / "never.db"), "--listen", "127.0.0.1:0"]
    usage, error = _usage_error(capsys, argv)
    assert usage.startswith("usage: shoal serve "), usage
    assert error == "shoal serve: error: the following arguments are required: --secret-file"
    assert list(tmp_path.iterdir()) == []


# -- demo --keep ----------------------------------------------------------------------------


def test_demo_names_a_keep_folder_it_cannot_make(tmp_path: Path) -> None:
    # A real process: importing shoal.demo here would hide it from the test that runs
    # ``shoal demo`` without it (tests/shoal/test_cli.py).
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    keep = a_file / "x"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), PYTHONPATH)))}
    done = subprocess.run(
        [sys.executable, "-m", "shoal", "demo", "--keep", str(keep)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line == f"shoal: demo: --keep {keep}: cannot make the folder: Not a directory", line
    assert done.stdout == ""
    assert sorted(tmp_path.iterdir()) == [a_file] and a_file.read_text() == "x"
