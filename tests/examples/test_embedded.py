"""examples/embedded.py, run for real in a subprocess: two peers, every handle type, and the
laptop's subscription sees the phone's cart."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.shoal.shoal_run import ROOT, run_process

__all__: list[str] = []

EXAMPLE = ROOT / "examples" / "embedded.py"
RUN_TIMEOUT = 60.0


async def test_the_tour_runs_and_the_laptop_ends_with_the_phones_cart(tmp_path: Path) -> None:
    keep = tmp_path / "dbs"
    code, text, err = await run_process(
        sys.executable, str(EXAMPLE), "--keep", str(keep), timeout=RUN_TIMEOUT
    )
    assert code == 0, f"{text}\n{err}"
    assert "eggs acknowledged by 2 peers" in text
    assert "phone reads cart (r=2) = ['eggs']" in text
    assert "phone  visits = 2" in text
    assert "phone  prefs = {'theme': 'dark'}" in text
    assert "laptop: cart = ['eggs'], connected to 1 peer(s)" in text
    assert sorted(p.name for p in keep.glob("*.db")) == ["laptop.db", "phone.db"]


def test_keep_refuses_a_folder_that_holds_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("embedded_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    (tmp_path / "mine.txt").write_text("mine")
    with pytest.raises(SystemExit) as exited:
        example.main(["--keep", str(tmp_path)])
    assert exited.value.code == 2
    assert "must be an empty or new folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
