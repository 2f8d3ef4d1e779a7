"""Schema migrations through Alembic, driven from Baton (``baton db upgrade``)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_lock key held while the schema is created or upgraded ("baton-mg").
MIGRATION_LOCK_KEY = 0x6261746F6E2D6D67


def alembic_config(connection: Any | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


@contextlib.asynccontextmanager
async def migration_lock(db: Database) -> AsyncIterator[None]:
    """One migrating process at a time, across processes and hosts (replicas that start
    together on an empty database would otherwise all create the schema, and all but one
    die). PostgreSQL: a session advisory lock on a dedicated connection, released when it
    ends (or by the server when the process dies). SQLite: an exclusive ``flock`` on the
    sidecar file ``<database>.migrate.lock``, released by the kernel on exit; waiting on it
    does not depend on the busy timeout, however long the migration takes."""
    if db.is_sqlite:
        path = f"{db.engine.url.database}.migrate.lock"
        fd = await asyncio.to_thread(os.open, path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock
        return
    if db.dialect != "postgresql":
        yield
        return
    async with db.engine.connect() as conn:
        await conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
        await conn.commit()
        try:
            yield
        finally:
            try:
                await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
                await conn.commit()
            except Exception:
                # Never hand a connection that may still hold the lock back to the pool;
                # closing it releases the lock on the server.
                await conn.invalidate()
                raise


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent; safe to run from many processes at once)."""
    async with migration_lock(db):
        await _upgrade(db, revision)


async def upgrade_if_empty(db: Database) -> str | None:
    """Create the schema when the database has none; the revision found before (None when
    this call created the schema). Under :func:`migration_lock`, so of replicas that start
    together on an empty database one creates the schema and the others find it there."""
    async with migration_lock(db):
        current = await current_revision(db)
        if current is None:
            await _upgrade(db, "head")
        return current


async def _upgrade(db: Database, revision: str) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), revision))


async def is_current(db: Database) -> bool:
    return await current_revision(db) == head_revision()
