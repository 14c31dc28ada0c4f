"""docs/api.md's "Client API" section documents every route of the client API: each
``METHOD /path`` the application serves (``{key}`` for the key's placeholder) appears in it,
and so does every error code the API can answer."""

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
