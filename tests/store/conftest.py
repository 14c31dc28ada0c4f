"""Store test fixtures: a ``backend`` parametrized over SQLite and PostgreSQL.

PostgreSQL tests need a server: ``SHOAL_TEST_PG_URL`` (``scripts/run-tests.sh`` starts one with
``scripts/test-postgres.sh start`` and exports it). Each PostgreSQL test gets a fresh database,
dropped afterwards, so tests are independent.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from store import Store

PG_ENV = "SHOAL_TEST_PG_URL"
PG_HOWTO = (
    f"PostgreSQL store tests need {PG_ENV}: run `bash scripts/test-postgres.sh start` and "
    f"export {PG_ENV}=<the URL it prints> (scripts/run-tests.sh does both)"
)


@dataclass
class Backend:
    """Where a test's database lives, and how to open a store on it."""

    name: str
    url: str
    path: Path | None

    async def open(self, **kwargs: Any) -> Store:
        return await Store.open(self.url, **kwargs)


async def _admin(url: str, sql: str) -> None:
    engine = create_async_engine(make_url(url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def fresh_pg_database(
    base_url: str, template: str = "template0"
) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Create a database next to ``base_url``'s (empty, or a copy of ``template``); return its
    URL and a coroutine function that drops it."""
    name = f"shoal_t_{uuid.uuid4().hex[:12]}"
    await _admin(base_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)

    async def drop() -> None:
        await _admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


def pg_url_or_skip() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(PG_HOWTO)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "shoal.sqlite"
        yield Backend("sqlite", f"sqlite+aiosqlite:///{path}", path)
        return
    url, drop = await fresh_pg_database(pg_url_or_skip())
    try:
        yield Backend("postgres", url, None)
    finally:
        await drop()


@pytest.fixture
async def pg_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    url, drop = await fresh_pg_database(pg_url_or_skip())
    try:
        yield Backend("postgres", url, None)
    finally:
        await drop()


async def assert_reopens_as(path: Path, replica_id: str) -> None:
    """Opening ``path`` again finds the same replica, ``replica_id``, not a copy to rename."""
    store = await Store.open(path)
    try:
        assert not store.identity_rotated
        assert store.replica_id == replica_id
    finally:
        await store.aclose()
