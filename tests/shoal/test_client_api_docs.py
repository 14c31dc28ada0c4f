"""docs/api.md's "Client API" section documents every route of the client API: each
``METHOD /path`` the application serves (``{key}`` for the key's placeholder) appears in it,
and so does every error code the API can answer; and the limits docs/api.md and
docs/operations.md state (body size, subscriptions, sockets waiting, the token's wait and
length, a page of keys) are the constants of shoal.web.app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from shoal import Peer
from shoal.web import make_client_app

API = Path(__file__).resolve().parents[2] / "docs" / "api.md"
_PLACEHOLDER = re.compile(r"\{(\w+):[^}]*\}")
WEB = Path(__file__).resolve().parents[2] / "shoal" / "web"


def client_api_section(markdown: str) -> str:
    found = re.search(r"^## Client API\n(.*?)(?=^## )", markdown, re.S | re.M)
    assert found, "docs/api.md has no '## Client API' section"
    return found[1]


def routes(app: web.Application) -> set[str]:
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if route.method in ("HEAD", "*") or path is None:
            continue
        plain = _PLACEHOLDER.sub(r"{\1}", path)  # {key:.+} -> {key}
        out.add(f"{route.method} {plain}")
    return out


def undocumented(app: web.Application, markdown: str) -> set[str]:
    section = client_api_section(markdown)
    return {r for r in routes(app) if r not in section}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[web.Application]:
    async with Peer.open(tmp_path / "docs.db") as peer:
        yield make_client_app(peer, "a token of sixteen characters")


async def test_every_route_is_documented(app: web.Application) -> None:
    assert "POST /v1/keys/{key}" in routes(app) and "GET /v1/subscribe" in routes(app)
    assert len(routes(app)) == 6
    missing = undocumented(app, API.read_text())
    assert not missing, f"docs/api.md's Client API section does not document {missing}"


async def test_a_route_left_out_is_caught(app: web.Application) -> None:
    text = API.read_text().replace("DELETE /v1/keys/{key}", "DELETE a key")
    assert undocumented(app, text) == {"DELETE /v1/keys/{key}"}


def test_every_error_code_is_documented() -> None:
    source = "\n".join(p.read_text() for p in sorted(WEB.glob("*.py")))
    codes = set(re.findall(r'ApiError\(\s*\d{3},\s*"(\w+)"', source))
    codes |= set(re.findall(r'_error\(\s*\d{3},\s*"(\w+)"', source))
    codes |= set(re.findall(r'^\s+\d{3}: "(\w+)",$', source, re.M))
    assert {"bad_request", "version_mismatch", "kind_clash", "peer_failed"} <= codes
    section = client_api_section(API.read_text())
    missing = {c for c in codes if f"`{c}`" not in section}
    assert not missing, f"docs/api.md's Client API section does not name {missing}"


def client_api_limits() -> list[tuple[str, str]]:
    """(page, phrase) for each limit of the client API the docs state, made from the
    constant the code uses."""
    from shoal.web import app

    assert app.MAX_BODY % 2**20 == 0
    body = f"{app.MAX_BODY // 2**20} MiB"
    return [
        ("api.md", f"the token file holds at least {app.MIN_TOKEN} characters"),
        ("api.md", f"within {app.AUTH_TIMEOUT:g} seconds in all"),
        ("api.md", f"`limit` 1 to {app.MAX_LIMIT}, default {app.DEFAULT_LIMIT}"),
        ("api.md", f"At most {app.MAX_SUBSCRIPTIONS} subscriptions are open at once"),
        ("api.md", f"At most {app.MAX_WAITING} sockets wait for their token"),
        ("api.md", f"| `too_large` | a body over {body} |"),
        ("operations.md", f"The token file holds at least {app.MIN_TOKEN} characters"),
        ("operations.md", f"Request bodies are limited to {body} and open subscriptions to "),
        ("operations.md", f"{body} and open subscriptions to {app.MAX_SUBSCRIPTIONS}."),
    ]


def misstated(pages: dict[str, str]) -> list[str]:
    flat = {page: " ".join(text.split()) for page, text in pages.items()}
    return [
        f"{page}: {phrase!r}" for page, phrase in client_api_limits() if phrase not in flat[page]
    ]


def test_the_limits_the_docs_state_are_the_codes() -> None:
    pages = {p: (API.parent / p).read_text() for p in ("api.md", "operations.md")}
    missing = misstated(pages)
    assert not missing, f"the docs do not state these limits as the code has them: {missing}"
    pages["api.md"] = pages["api.md"].replace(
        "At most 256 subscriptions", "At most 100 subscriptions"
    )
    assert misstated(pages) == ["api.md: 'At most 256 subscriptions are open at once'"]
