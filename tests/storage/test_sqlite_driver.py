"""The SQLite dialect (storage/sqlite_driver.py): one trip to aiosqlite's thread per statement,
BEGIN IMMEDIATE riding with a transaction's first statement, errors and locks surfacing as
SQLAlchemy's own exceptions, and ``open_database`` really using it for aiosqlite URLs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from storage import migrate
from storage.db import Database, UnitOfWork, open_database, store_unavailable
from storage.sqlite_driver import BatonSQLiteDialect, OneTripConnection, OneTripCursor

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

meta = MetaData()
items = Table(
    "items", meta,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False, unique=True),
    Column("qty", Integer, nullable=False),
)

DDL = ("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
       "qty INTEGER NOT NULL)")


class Trips:
    """Every call of ``aiosqlite.Connection._execute`` (one trip to the worker thread),
    named by what it ran: ``statement`` (the one-trip cursor's function), else the
    function's own name (``commit``, ``rollback``, ``close``...). ``probe``, when set, is
    called at each trip and its answers kept in ``probed``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.probe: Callable[[], Any] | None = None
        self.probed: list[tuple[str, Any]] = []

    def mark(self) -> int:
        return len(self.calls)

    def since(self, mark: int) -> list[str]:
        return self.calls[mark:]


def _kind(fn: Any) -> str:
    name = str(getattr(fn, "__qualname__", None) or repr(fn))
    return "statement" if "OneTripCursor._trip" in name else name.rsplit(".", 1)[-1]


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Trips:
    seen = Trips()
    original: Callable[..., Awaitable[Any]] = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Callable[..., Any], *args: Any,
                       **kwargs: Any) -> Any:
        kind = _kind(fn)
        seen.calls.append(kind)
        if seen.probe is not None:
            seen.probed.append((kind, seen.probe()))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return seen


def url_for(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/driver.db"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = open_database(url_for(tmp_path))
    async with database.engine.begin() as conn:
        await conn.exec_driver_sql(DDL)
    # Warm the pool: the connection (and its PRAGMAs) exists before any trip is counted.
    async with database.uow() as uow:
        await uow.session.execute(select(1))
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def other(tmp_path: Path, db: Database) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the same file that never waits for a lock."""
    conn = sqlite3.connect(tmp_path / "driver.db", timeout=0, isolation_level=None)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def try_begin_immediate(conn: sqlite3.Connection) -> str | None:
    """Take SQLite's write lock and give it back at once; the error text if it is held."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        return str(e)
    conn.execute("ROLLBACK")
    return None


async def count_rows(db: Database) -> int:
    async with db.uow() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(items)))
                   .scalar_one())


# --- the dialect is the one in use --------------------------------------------------------


async def test_open_database_uses_the_one_trip_dialect_under_the_usual_url(
        tmp_path: Path) -> None:
    database = open_database(url_for(tmp_path))
    try:
        assert isinstance(database.engine.dialect, BatonSQLiteDialect)
        assert database.dialect == "sqlite" and database.is_sqlite
        assert database.engine.url.get_backend_name() == "sqlite"
        assert database.engine.url.drivername == "sqlite+baton_aiosqlite"
        async with database.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert isinstance(raw.dbapi_connection, OneTripConnection)
            cursor = raw.dbapi_connection.cursor()
            assert isinstance(cursor, OneTripCursor)
            cursor.close()
            # The connect hook ran through it: WAL and the busy timeout are set.
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one() == 5000
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        await database.dispose()


# --- one trip per statement ----------------------------------------------------------------


async def test_a_select_returning_rows_is_one_trip(db: Database, trips: Trips) -> None:
    async with db.uow() as uow:
        await uow.session.execute(insert(items), [
            {"name": f"n{i}", "qty": i} for i in range(5)])
        await uow.commit()
    async with db.uow() as uow:
        mark = trips.mark()
        rows = (await uow.session.execute(
            select(items.c.name, items.c.qty).order_by(items.c.qty.desc()))).all()
        assert trips.since(mark) == ["statement"]
        assert [tuple(r) for r in rows] == [(f"n{i}", i) for i in reversed(range(5))]
        # A SELECT of no rows: still one trip, and an empty result with its columns.
        mark = trips.mark()
        res = await uow.session.execute(select(items.c.name).where(items.c.qty > 99))
        assert res.all() == [] and list(res.keys()) == ["name"]
        assert trips.since(mark) == ["statement"]


async def test_insert_returning_is_one_trip_with_its_row(db: Database, trips: Trips) -> None:
    async with db.uow() as uow:
        mark = trips.mark()
        row = (await uow.session.execute(
            insert(items).values(name="a", qty=3).returning(items.c.id, items.c.name))).one()
        assert trips.since(mark) == ["statement"]
        assert tuple(row) == (1, "a")
        mark = trips.mark()
        res = await uow.session.execute(text("INSERT INTO items (name, qty) VALUES ('b', 4)"))
        assert trips.since(mark) == ["statement"]
        assert res.rowcount == 1  # type: ignore[attr-defined]
        assert res.lastrowid == 2  # type: ignore[attr-defined]
        await uow.commit()
    assert await count_rows(db) == 2


async def test_executemany_is_one_trip_and_counts_every_row(db: Database, trips: Trips) -> None:
    async with db.uow() as uow:
        mark = trips.mark()
        res = await uow.session.execute(insert(items), [
            {"name": f"m{i}", "qty": i} for i in range(7)])
        assert trips.since(mark) == ["statement"]
        assert res.rowcount == 7  # type: ignore[attr-defined]
        # An UPDATE touching several rows reports how many.
        mark = trips.mark()
        res = await uow.session.execute(
            text("UPDATE items SET qty = qty + 10 WHERE qty >= :q"), {"q": 4})
        assert trips.since(mark) == ["statement"]
        assert res.rowcount == 3  # type: ignore[attr-defined]
        await uow.commit()
    async with db.uow() as uow:
        assert (await uow.session.execute(select(func.sum(items.c.qty)))).scalar_one() == \
            sum(range(7)) + 30


async def test_a_multi_row_insert_returning_is_one_trip(tmp_path: Path, trips: Trips) -> None:
    """The dispatcher's claim_many: many parameter sets with RETURNING, one trip, the new
    keys back (the project's own schema, through its migrations)."""
    database = open_database(url_for(tmp_path))
    try:
        await migrate.upgrade(database)
        async with database.uow() as uow:
            assert await uow.processed.claim_many(["k1", "k2"], "robot", NOW) == {"k1", "k2"}
            await uow.commit()
        async with database.uow() as uow:
            mark = trips.mark()
            fresh = await uow.processed.claim_many(["k2", "k3", "k4", "k3"], "robot", NOW)
            assert trips.since(mark) == ["statement"]
            assert fresh == {"k3", "k4"}
            await uow.commit()
    finally:
        await database.dispose()


# --- BEGIN IMMEDIATE rides with the first statement ----------------------------------------


async def test_begin_immediate_rides_with_the_first_statement(
        db: Database, trips: Trips, other: sqlite3.Connection) -> None:
    mark = trips.mark()
    async with db.uow() as uow:
        assert trips.since(mark) == []   # session and transaction opened: no trip yet
        await uow.session.execute(insert(items).values(name="x", qty=1))
        # One trip, and it took the write lock: BEGIN IMMEDIATE went with the statement.
        assert trips.since(mark) == ["statement"]
        assert "locked" in (try_begin_immediate(other) or "")
        await uow.commit()
        assert trips.since(mark)[:2] == ["statement", "commit"]
        assert try_begin_immediate(other) is None
    assert await count_rows(db) == 1


@pytest.mark.parametrize("end", ["commit", "rollback"])
async def test_a_one_statement_transaction_is_two_trips(db: Database, trips: Trips,
                                                        end: str) -> None:
    """Statement (with its BEGIN) and COMMIT (or ROLLBACK): two trips, and the writer's turn
    (``db.write_lock``) ends with the second.

    Fails today: when the session hands its connection back to the pool after COMMIT or
    ROLLBACK, the pool's reset-on-return calls ``rollback()`` again; ``OneTripConnection``
    only skips that when a BEGIN is still pending, so it makes a third trip (a no-op
    ROLLBACK of an idle connection), inside ``session.commit()``/``rollback()`` and so
    still holding the write lock that ``UnitOfWork._unlock`` means to release at COMMIT."""
    assert db.write_lock is not None
    lock = db.write_lock
    trips.probe = lock.locked
    mark = trips.mark()
    async with db.uow() as uow:
        await uow.session.execute(insert(items).values(name="x", qty=1))
        if end == "commit":
            await uow.commit()
    assert not lock.locked()
    assert [kind for kind, _ in trips.probed] == trips.since(mark)
    held = [kind for kind, locked in trips.probed if locked]
    assert trips.since(mark) == ["statement", end], (
        f"trips {trips.since(mark)}; made while holding the write lock: {held}")
    assert await count_rows(db) == (1 if end == "commit" else 0)


async def test_the_write_lock_is_taken_with_the_first_statement_not_before(
        db: Database, other: sqlite3.Connection) -> None:
    async with db.uow() as uow:
        # Nothing begun yet: another writer can take SQLite's write lock...
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO items (name, qty) VALUES ('theirs', 1)")
        other.execute("COMMIT")   # ...and give it back before we go on.
        # The first statement begins the transaction: a read still sees the fresh commit,
        # and from now on the write lock is ours.
        n = (await uow.session.execute(select(func.count()).select_from(items))).scalar_one()
        assert n == 1
        assert "locked" in (try_begin_immediate(other) or "")
        await uow.session.execute(insert(items).values(name="ours", qty=2))
        assert "locked" in (try_begin_immediate(other) or "")
        await uow.commit()
        assert try_begin_immediate(other) is None
    names = {r[0] for r in other.execute("SELECT name FROM items")}
    assert names == {"theirs", "ours"}


async def test_a_read_only_transaction_holds_the_write_lock_until_it_ends(
        db: Database, other: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, even for a SELECT: the writer never upgrades a read lock halfway."""
    async with db.uow() as uow:
        await uow.session.execute(select(items.c.id))
        assert "locked" in (try_begin_immediate(other) or "")
    assert try_begin_immediate(other) is None   # the rollback on exit released it


@pytest.mark.parametrize("end", ["commit", "rollback"])
async def test_a_transaction_with_no_statement_makes_no_trip(db: Database, trips: Trips,
                                                             end: str) -> None:
    mark = trips.mark()
    async with db.uow() as uow:
        if end == "commit":
            await uow.commit()
        else:
            await uow.session.rollback()
    assert trips.since(mark) == []
    # The same, at the connection level where the dialect's pending BEGIN is dropped.
    async with db.engine.connect() as conn:
        mark = trips.mark()
        await conn.begin()
        if end == "commit":
            await conn.commit()
        else:
            await conn.rollback()
        assert trips.since(mark) == []
        # The next transaction on that connection still begins with its first statement.
        await conn.begin()
        await conn.execute(insert(items).values(name=f"after-{end}", qty=1))
        await conn.commit()
        assert trips.since(mark) == ["statement", "commit"]
    assert await count_rows(db) == 1


async def test_a_rollback_after_a_statement_undoes_it_and_frees_the_lock(
        db: Database, trips: Trips, other: sqlite3.Connection) -> None:
    mark = trips.mark()
    async with db.uow() as uow:
        await uow.session.execute(insert(items).values(name="gone", qty=1))
        assert "locked" in (try_begin_immediate(other) or "")
    assert trips.since(mark)[:2] == ["statement", "rollback"]
    assert set(trips.since(mark)[2:]) <= {"rollback"}   # at most the pool's reset
    assert try_begin_immediate(other) is None
    assert await count_rows(db) == 0


async def test_a_savepoint_as_first_statement_begins_the_transaction(
        db: Database, trips: Trips, other: sqlite3.Connection) -> None:
    """Handlers run inside ``begin_nested()``: the SAVEPOINT (emitted with the first
    statement inside it) is then the transaction's first statement, and the BEGIN IMMEDIATE
    rides with it; releasing or rolling back to a savepoint keeps the rest."""
    async with db.uow() as uow:
        mark = trips.mark()
        async with uow.session.begin_nested():
            assert trips.since(mark) == []     # SQLAlchemy defers the SAVEPOINT too
            assert try_begin_immediate(other) is None
            await uow.session.execute(insert(items).values(name="kept", qty=1))
            assert trips.since(mark) == ["statement", "statement"]   # SAVEPOINT, INSERT
            assert "locked" in (try_begin_immediate(other) or "")
        nested = await uow.session.begin_nested()
        await uow.session.execute(insert(items).values(name="undone", qty=2))
        await nested.rollback()
        await uow.commit()
    assert try_begin_immediate(other) is None
    names = {r[0] for r in other.execute("SELECT name FROM items")}
    assert names == {"kept"}


async def test_a_streamed_first_statement_begins_the_transaction(
        db: Database, other: sqlite3.Connection) -> None:
    """``session.stream`` uses the adapter's server-side cursor class, which this dialect does
    not replace: it never takes the pending BEGIN. So a streamed SELECT as a transaction's
    first statement runs outside any transaction (autocommit), without the write lock.

    Fails today (latent: nothing in Baton streams results yet)."""
    async with db.uow() as uow:
        await uow.session.execute(insert(items).values(name="a", qty=1))
        await uow.commit()
    async with db.uow() as uow:
        res = await uow.session.stream(select(items.c.name))
        assert [tuple(r) async for r in res] == [("a",)]
        assert "locked" in (try_begin_immediate(other) or ""), (
            "another connection took the write lock after the transaction's first statement")


# --- errors -------------------------------------------------------------------------------


async def test_a_unique_violation_is_an_integrity_error_and_the_pool_goes_on(
        db: Database, other: sqlite3.Connection) -> None:
    async with db.uow() as uow:
        await uow.session.execute(insert(items).values(name="dup", qty=1))
        await uow.commit()
    with pytest.raises(IntegrityError) as info:
        async with db.uow() as uow:
            await uow.session.execute(insert(items).values(name="solo", qty=2))
            await uow.session.execute(insert(items).values(name="dup", qty=3))
            await uow.commit()
    assert isinstance(info.value.orig, sqlite3.IntegrityError)
    assert "UNIQUE" in str(info.value)
    assert not store_unavailable(info.value)   # a constraint, not the store failing
    # The rolled-back transaction left nothing (not even its first row) and no lock.
    assert try_begin_immediate(other) is None
    async with db.uow() as uow:
        names = (await uow.session.execute(select(items.c.name))).scalars().all()
        assert names == ["dup"]
    # The same pool keeps working: a write, a commit, a read.
    async with db.uow() as uow:
        await uow.session.execute(insert(items).values(name="solo", qty=2))
        await uow.commit()
    assert await count_rows(db) == 2


async def test_an_executemany_violation_rolls_back_the_whole_batch(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.uow() as uow:
            await uow.session.execute(insert(items), [
                {"name": "p", "qty": 1}, {"name": "q", "qty": 2}, {"name": "p", "qty": 3}])
            await uow.commit()
    assert await count_rows(db) == 0
    async with db.uow() as uow:
        await uow.session.execute(insert(items), [{"name": "p", "qty": 1}, {"name": "q", "qty": 2}])
        await uow.commit()
    assert await count_rows(db) == 2


async def test_an_error_in_the_first_statement_leaves_no_transaction_open(
        db: Database, other: sqlite3.Connection) -> None:
    """The BEGIN went with a failing statement: the rollback must still end it."""
    with pytest.raises(IntegrityError):
        async with db.uow() as uow:
            await uow.session.execute(text("INSERT INTO items (name, qty) VALUES (NULL, 1)"))
    assert try_begin_immediate(other) is None
    async with db.uow() as uow:
        await uow.session.execute(insert(items).values(name="fine", qty=1))
        await uow.commit()
    assert await count_rows(db) == 1


async def test_a_lock_held_past_busy_timeout_is_store_unavailable(tmp_path: Path) -> None:
    database = open_database(url_for(tmp_path), busy_timeout_ms=100)
    holder = sqlite3.connect(tmp_path / "driver.db", timeout=0, isolation_level=None)
    try:
        async with database.engine.begin() as conn:
            await conn.exec_driver_sql(DDL)
        holder.execute("BEGIN IMMEDIATE")
        # While the statement waits in SQLite's busy handler (on aiosqlite's thread), the
        # event loop stays free: a task keeps turning.
        turns = 0
        done = asyncio.Event()

        async def spin() -> None:
            nonlocal turns
            while not done.is_set():
                turns += 1
                await asyncio.sleep(0)

        spinner = asyncio.create_task(spin())
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Exception) as info:
            async with database.uow() as uow:
                await uow.session.execute(insert(items).values(name="blocked", qty=1))
                await uow.commit()
        waited = loop.time() - started
        done.set()
        await spinner
        assert store_unavailable(info.value), repr(info.value)
        assert "locked" in str(info.value)
        assert waited >= 0.09          # it did wait for the busy timeout...
        assert turns > 10              # ...without blocking the loop
        holder.execute("ROLLBACK")
        # Once the lock is free the same database works again.
        async with database.uow() as uow:
            await uow.session.execute(insert(items).values(name="later", qty=1))
            await uow.commit()
        assert await count_rows(database) == 1
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        await database.dispose()


async def test_a_writer_queued_behind_another_uow_sees_its_commit(db: Database) -> None:
    """Two units of work at once: the in-process write lock orders them, each commits."""
    entered = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with db.uow() as uow:
            await uow.session.execute(insert(items).values(name="first", qty=1))
            entered.set()
            await release.wait()
            await uow.commit()

    async def second() -> list[str]:
        await entered.wait()
        async with db.uow() as uow:
            await uow.session.execute(insert(items).values(name="second", qty=2))
            names = (await uow.session.execute(select(items.c.name).order_by(items.c.id))
                     ).scalars().all()
            await uow.commit()
            return list(names)

    t1 = asyncio.create_task(first())
    t2 = asyncio.create_task(second())
    await entered.wait()
    assert not t2.done()
    release.set()
    await asyncio.wait_for(t1, 5)
    assert await asyncio.wait_for(t2, 5) == ["first", "second"]


async def _in_uow(db: Database, fn: Callable[[UnitOfWork], Awaitable[Any]]) -> Any:
    async with db.uow() as uow:
        return await fn(uow)


async def test_concurrent_reads_each_get_their_own_rows(db: Database) -> None:
    """Many statements in flight on the pool: each cursor's rows are its own."""
    async with db.uow() as uow:
        await uow.session.execute(insert(items), [{"name": f"r{i}", "qty": i} for i in range(20)])
        await uow.commit()

    async def read(i: int) -> list[Any]:
        async def q(uow: UnitOfWork) -> list[Any]:
            return list((await uow.session.execute(
                select(items.c.name).where(items.c.qty == i))).scalars())
        return await _in_uow(db, q)  # type: ignore[no-any-return]

    results = await asyncio.wait_for(asyncio.gather(*(read(i) for i in range(20))), 10)
    assert results == [[f"r{i}"] for i in range(20)]


async def test_a_begin_that_failed_is_sent_again_with_the_next_statement(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE busy past busy_timeout: the transaction SQLAlchemy thinks it opened
    must still begin before its next statement, or that statement would run in autocommit
    and survive the rollback."""
    path = tmp_path / "busy.db"
    db = open_database(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=100)
    try:
        async with db.engine.begin() as c:
            await c.execute(text("create table t (x int)"))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        async with db.sessions() as s:
            await s.begin()
            with pytest.raises(Exception, match="locked") as first:
                await s.execute(text("insert into t values (1)"))
            assert store_unavailable(first.value)
            other.execute("COMMIT")
            await s.execute(text("insert into t values (2)"))   # retried in the same transaction
            await s.rollback()
        assert other.execute("select x from t").fetchall() == []
        other.close()
    finally:
        await db.dispose()
