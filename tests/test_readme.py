"""The README's examples run as printed (their asserts are the test): the CRDT library in
one process, and two peers syncing over 127.0.0.1 in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_crdt_example_runs() -> None:
    blocks = _python_blocks()
    assert blocks, "README.md has no python example"
    code = blocks[0]
    assert "assert" in code
    exec(compile(code, "README.md", "exec"), {})


def test_the_readme_peer_example_runs(tmp_path: Path) -> None:
    (code,) = [block for block in _python_blocks() if "from shoal import" in block]
    assert "assert" in code
    script = tmp_path / "readme_peers.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the laptop has ['eggs', 'milk']\n"
