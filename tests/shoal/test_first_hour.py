"""The first hour with shoal: the Python it needs is stated, ``.venv`` follows the Python
that makes it, the licence is there and built without a deprecation warning of ours, and
the README, docs and examples point at nothing outside the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_states_the_python_it_needs() -> None:
    readme = (ROOT / "README.md").read_text()
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == ">=3.11"
    assert "Python 3.11 or newer" in readme


def test_the_license_is_the_apache_license_the_metadata_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"  # an SPDX expression, not a table
    assert project["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def _documents() -> list[Path]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    return (
        docs
        + sorted((ROOT / "examples").glob("**/*.md"))
        + sorted((ROOT / "examples").glob("**/*.py"))
    )


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_link_nothing_outside_the_repository(path: Path) -> None:
    text = path.read_text()
    for url in re.findall(r"\bhttps?://[^\s)>\]`'\"]+", text):
        host = re.sub(r"^https?://", "", url).split("/")[0].split(":")[0]
        assert host in {"127.0.0.1", "localhost", "HOST"}, f"{path.name} links to {url}"
    for target in re.findall(r"\]\(([^)]+)\)", text):
        if re.match(r"^[a-z]+://", target):
            continue  # checked above
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{path.name} links outside: {target}"
        assert resolved.exists(), f"{path.name} links to a missing file: {target}"
    assert "../shared" not in text and "/work/" not in text


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_building_the_wheel_warns_of_nothing_deprecated(tmp_path: Path) -> None:
    """pip builds the wheel as a user's ``pip install .`` does (isolated build, the
    setuptools that pyproject.toml asks for) and says nothing deprecated about our
    metadata; the wheel carries the licence."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".*")
    shutil.copytree(ROOT, src, ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=500,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    deprecated = [line for line in output.splitlines() if "Deprecat" in line]
    assert deprecated == [], deprecated
    (wheel,) = tmp_path.glob("shoal-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert b"License-Expression: Apache-2.0" in metadata


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_make_remakes_the_venv_when_another_python_made_it(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    venv = tmp_path / ".venv"
    venv.mkdir()
    (venv / ".made-by").write_text("/opt/python3.10/bin/python3.10 3.10.0\n")
    (venv / "left-by-the-old-python").write_text("")
    outer = ("PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")  # when run by make test
    env = {k: v for k, v in os.environ.items() if k not in outer}

    def make() -> str:
        done = subprocess.run(
            ["make", "--no-print-directory", f"PY={sys.executable}", ".venv/.made-by"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    made_by = f"{os.path.realpath(sys.executable)} {sys.version.split()[0]}"
    assert make().startswith(f"making .venv with {made_by}")
    assert (venv / ".made-by").read_text() == made_by + "\n"
    assert not (venv / "left-by-the-old-python").exists()
    assert (venv / "bin" / "python").exists()
    assert make() == ""  # the same Python: nothing to do
