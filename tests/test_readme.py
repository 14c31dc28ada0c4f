"""The README's CRDT example runs as printed (its asserts are the test)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_crdt_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README.md has no python example"
    code = blocks[0]
    assert "assert" in code
    exec(compile(code, "README.md", "exec"), {})
