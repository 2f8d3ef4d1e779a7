"""Shared fixtures: every storage test runs on SQLite, and on PostgreSQL where it answers.

PostgreSQL: ``BATON_TEST_PG`` (default postgresql+asyncpg://postgres@127.0.0.1:5432/test).
Each test session gets its own throw-away database; without a server those tests skip and
say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import hypothesis
import pytest

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

PG_BASE = os.environ.get("BATON_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_dsn(PG_BASE), timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


_pg_state: dict[str, str | None] = {}


def _pg_database() -> str | None:
    """Create this session's PostgreSQL database once; None (with a reason) if unreachable."""
    if "url" in _pg_state:
        return _pg_state["url"]
    name = f"baton_t_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # no server, no rights: skip those tests, saying why
        _pg_state["url"] = None
        _pg_state["why"] = f"PostgreSQL not reachable at {PG_BASE}: {type(e).__name__}: {e}"
        return None
    base, _, _ = PG_BASE.rpartition("/")
    _pg_state["url"] = f"{base}/{name}"
    _pg_state["name"] = name
    return _pg_state["url"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    name = _pg_state.get("name")
    if name:
        with contextlib.suppress(Exception):
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _reset_pg(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_dsn(url), timeout=3)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


# CI runs the property tests derandomized: the same examples every run, so a red build is
# reproducible and never a roll of the dice; local runs keep exploring new examples.
hypothesis.settings.register_profile("ci", derandomize=True, deadline=None)
hypothesis.settings.register_profile("dev", deadline=None)
hypothesis.settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/baton.db"
        return
    url = _pg_database()
    if url is None:
        pytest.skip(str(_pg_state.get("why")))
    asyncio.run(_reset_pg(url))
    yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[object]:
    from storage import migrate
    from storage.db import open_database

    database = open_database(db_url)
    await migrate.upgrade(database)
    try:
        yield database
    finally:
        await database.dispose()
