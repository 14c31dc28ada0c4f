"""Without the ``web`` extra (aiohttp), examples/web/run.py, ``import shoal.web`` and ``shoal
serve --client-api`` each end with one line naming the extra, not a traceback ending in
``ModuleNotFoundError: No module named 'aiohttp'``.

aiohttp is made unimportable in a child process by a finder placed first on
``sys.meta_path``, which refuses it as a missing module is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTRA = (
    "shoal.web needs the web extra (pip install '.[web]' from a checkout): "
    "No module named 'aiohttp'"
)

WITHOUT_AIOHTTP = """
import runpy, sys

class NoAiohttp:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "aiohttp":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoAiohttp())
sys.path.insert(0, ROOT)
sys.argv = sys.argv[1:]  # [what, its arguments...]
what = sys.argv[0]
if what == "import":
    import shoal.web
elif what == "shoal":
    runpy.run_module("shoal", run_name="__main__", alter_sys=True)
else:
    runpy.run_path(what, run_name="__main__")
"""


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_AIOHTTP.replace("ROOT", repr(str(ROOT))), *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, check=False,
    )  # fmt: skip


def test_run_py_names_the_extra_in_one_line(tmp_path: Path) -> None:
    for args in (["--help"], ["--dir", str(tmp_path / "kept")]):
        done = _run(str(ROOT / "examples" / "web" / "run.py"), *args, cwd=tmp_path)
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr == f"run.py: {EXTRA}\n"
    assert list(tmp_path.iterdir()) == []


def test_importing_shoal_web_names_the_extra(tmp_path: Path) -> None:
    done = _run("import", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == f"ImportError: {EXTRA}"


def test_serve_client_api_names_the_extra_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    (tmp_path / "token").write_text("a client token long enough to be taken\n")
    done = _run(
        "shoal", "serve", "--db", str(tmp_path / "a.db"), "--listen", "127.0.0.1:0",
        "--secret-file", str(tmp_path / "secret"), "--client-api", "127.0.0.1:0",
        "--client-token-file", str(tmp_path / "token"), cwd=tmp_path,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"shoal: serve: --client-api: {EXTRA}\n"
    assert not (tmp_path / "a.db").exists()
