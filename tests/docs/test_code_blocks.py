"""Every code block of the README and the docs runs, or says why it does not.

The rules are in :mod:`tests.docs.blocks`. ``python`` blocks run as programs (their asserts
are the test), ``console`` blocks run command by command and compare what they print; a
block that must not run carries ``<!-- not run: REASON -->``; an unmarked block that is
neither run nor ``text`` fails here. The first tests check the checker itself on small
pages, so that a rule that stopped biting would show.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from store.lock import LOCK_SUFFIX
from tests.docs.blocks import (
    EXEMPT,
    ROOT,
    Block,
    BlockError,
    check_rules,
    pages,
    parse,
    run_block,
    run_page,
)

CHECKED = [page for page in pages() if page not in EXEMPT]


def _only_block(text: str) -> Block:
    (block,) = parse("README.md", text)
    return block


# -- the checker, on small pages --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("```\nmake test\n```\n", "no language"),
        ("```bash\nshoal --version\n```\n", "'bash'"),
        ("<!-- not run: -->\n```python\nprint()\n```\n", "needs a reason"),
        ("<!-- not run: why -->\n```text\nhi\n```\n", "drop the marker"),
        ("```text\n$ shoal serve --db x.db\n```\n", "make it console"),
        ("```console\nshoal --version\n```\n", "starts with a '$ ' command"),
    ],
)
def test_a_block_that_breaks_a_rule_is_refused(text: str, error: str) -> None:
    block = _only_block(text)
    with pytest.raises(BlockError, match=re.escape(error)):
        check_rules(block)


def test_an_unclosed_block_is_refused() -> None:
    with pytest.raises(BlockError, match="never closed"):
        parse("README.md", "```python\nprint()\n")


def test_the_marker_belongs_to_the_next_block_only() -> None:
    text = "<!-- not run: a server -->\n\n```console\n$ sleep 1\n```\n\n```console\n$ true\n```\n"
    first, second = parse("README.md", text)
    assert first.not_run == "a server"
    assert second.not_run is None


def test_a_failing_python_block_fails(tmp_path: Path) -> None:
    block = _only_block("```python\nassert 1 + 1 == 3\n```\n")
    with pytest.raises(BlockError, match=re.escape("README.md:1: exited 1")):
        run_block(block, tmp_path)


def test_console_output_is_compared_with_ellipsis(tmp_path: Path) -> None:
    ok = _only_block("```console\n$ echo replica abc123 ready\nreplica ... ready\n```\n")
    run_block(ok, tmp_path)
    wrong = _only_block("```console\n$ echo replica abc123 ready\nreplica ... gone\n```\n")
    with pytest.raises(BlockError, match="expected"):
        run_block(wrong, tmp_path)


def test_a_failing_command_fails(tmp_path: Path) -> None:
    block = _only_block("```console\n$ shoal inspect --db missing.db\n```\n")
    with pytest.raises(BlockError, match="exited 1"):
        run_block(block, tmp_path)


def test_blocks_of_a_page_share_one_folder(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nopen('made.txt', 'w').write('here')\n```\n\n"
        "```console\n$ cat made.txt\nhere\n```\n"
    )
    folder = tmp_path / "run"
    folder.mkdir()
    assert run_page(str(page), folder) == 2  # an absolute path is read as it is


# -- the pages ----------------------------------------------------------------------------------


def test_the_exempt_pages_exist() -> None:
    for page in EXEMPT:
        assert (ROOT / page).is_file(), f"{page} is exempt but gone: drop it from EXEMPT"


@pytest.mark.parametrize("page", CHECKED)
def test_every_block_follows_the_rules(page: str) -> None:
    for block in parse(page):
        check_rules(block)


@pytest.mark.timeout(600)  # a page's blocks in turn, each bounded by blocks.TIMEOUT
@pytest.mark.parametrize("page", CHECKED)
def test_the_blocks_of_the_page_run(page: str, tmp_path: Path) -> None:
    runnable = [b for b in parse(page) if b.lang != "text" and b.not_run is None]
    assert run_page(page, tmp_path) == len(runnable)
    # What a reader who runs them is left with: no lock file of a database that is gone (a
    # lock file stays after a clean close, by design: docs/operations.md).
    strays = [
        str(lock.relative_to(tmp_path))
        for lock in tmp_path.rglob(f"*{LOCK_SUFFIX}")
        if not lock.with_name(lock.name.removesuffix(LOCK_SUFFIX)).exists()
    ]
    assert strays == [], f"{page} leaves lock files without their database: {strays}"


def test_the_inspect_transcript_lines_up_as_inspect_prints_it(tmp_path: Path) -> None:
    # The pages' output is compared with whitespace normalized, which let docs/operations.md
    # show columns lined up with spaces where inspect printed tabs: here spaces count.
    blocks = parse("docs/operations.md")
    made = next(b for b in blocks if b.lang == "python" and 'Peer.open("shop.db")' in b.code)
    shown = next(b for b in blocks if b.code.startswith("$ shoal inspect --db shop.db\n"))
    run_block(made, tmp_path)
    run_block(shown, tmp_path, exact_spaces=True)


@pytest.mark.parametrize("page", pages())
def test_no_page_mentions_the_shared_folder(page: str) -> None:
    text = (ROOT / page).read_text()
    assert "../shared" not in text and "/shared/" not in text, page
