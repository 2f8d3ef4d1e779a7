"""Engine and unit of work.

SQLite (the embedded default) runs in WAL mode with a busy timeout, and every transaction
starts with ``BEGIN IMMEDIATE`` so a writer never upgrades a read lock halfway (the classic
SQLITE_BUSY deadlock). Inside one process, writers also queue on an asyncio lock instead of
spinning in SQLite's busy handler. PostgreSQL is used as-is, by URL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

import storage.sqlite_driver as one_trip
from storage.drift import DriftRepo
from storage.paging import PagingRepo
from storage.permissions import PermissionRepo
from storage.repositories import (
    AuditRepo,
    DueWorkRepo,
    FeedRepo,
    MemberRepo,
    OutboxRepo,
    ProcessedRepo,
    RequestRepo,
)
from storage.review import ReviewRepo
from storage.rolesync import RoleSyncRepo
from storage.sqlite_driver import OneTripConnection
from storage.todos import TodoRepo
from storage.tokens import TokenRepo
from storage.webhooks import WebhookRepo


class CommitOutcomeUnknown(Exception):
    """COMMIT raised: the transaction may or may not have been applied."""


def store_error(exc: BaseException) -> bool:
    """True for an error the database driver raised (any DBAPI error: the store down, a
    statement refused, a constraint failed), as opposed to a bug in the code around it."""
    return isinstance(exc, sa_exc.DBAPIError)


def store_unavailable(exc: BaseException) -> bool:
    """True for a failure of the store itself (down, unreachable, locked past busy_timeout,
    pool exhausted), as opposed to a statement that is wrong or a constraint that failed."""

    if isinstance(exc, CommitOutcomeUnknown):
        return False
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return bool(exc.connection_invalidated)
    return isinstance(exc, (OSError, TimeoutError))


@dataclass
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    is_sqlite: bool
    write_lock: asyncio.Lock | None
    #: Called with the feed's new head after a commit that wrote change events (in this
    #: process; other replicas learn from the feed_head row).
    feed_listeners: list[Callable[[int], None]] = field(default_factory=list)
    #: The in-memory permission index of this database (``storage.index.keeper``).
    index: object | None = None
    #: Connections handed out by :meth:`reader`, closed with the engine.
    readers: list[AsyncConnection] = field(default_factory=list)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self)

    async def reader(self) -> AsyncConnection:
        """A connection of its own for one-statement reads in autocommit: no transaction
        around them, and on SQLite no ``BEGIN IMMEDIATE`` and no write lock (WAL readers do
        not wait for writers). For the hot freshness read of the index; the caller keeps
        it and closes it."""
        conn = await self.engine.connect()
        self.readers.append(conn)
        return await conn.execution_options(isolation_level="AUTOCOMMIT", baton_reader=True)

    async def dispose(self) -> None:
        closing = getattr(self.index, "aclose", None)
        if closing is not None:
            await closing()
        readers, self.readers = self.readers, []
        for conn in readers:
            with contextlib.suppress(Exception):
                await conn.close()
        await self.engine.dispose()


def _sqlite_setup(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver; we issue BEGIN ourselves.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("baton_reader"):
            return      # Database.reader(): each statement on its own, in autocommit
        dbapi_conn = conn.connection.dbapi_connection
        if isinstance(dbapi_conn, OneTripConnection):
            dbapi_conn.begin_with_first_statement("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_database(url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 5,
                  echo: bool = False) -> Database:
    u = make_url(url)
    is_sqlite = u.get_backend_name() == "sqlite"
    kwargs: dict[str, Any] = {"echo": echo}
    if is_sqlite:
        if u.database in (None, "", ":memory:"):
            raise ValueError("an in-memory SQLite database cannot be shared; give a file path")
        kwargs["poolclass"] = NullPool if u.query.get("nullpool") else None
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
    else:
        kwargs.update(pool_size=pool_size, pool_pre_ping=True)
    if is_sqlite and u.get_driver_name() == "aiosqlite":
        u = u.set(drivername=one_trip.NAME)   # aiosqlite, one thread trip per statement
    engine = create_async_engine(u, **kwargs)
    if is_sqlite:
        _sqlite_setup(engine, busy_timeout_ms)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    return Database(engine, sessions, is_sqlite, asyncio.Lock() if is_sqlite else None)


class UnitOfWork:
    """One transaction. Rolls back unless :meth:`commit` was called.

    ``async with db.uow() as uow: ...; await uow.commit()``
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._stack = contextlib.AsyncExitStack()
        self._after_commit: list[Callable[[], None]] = []
        self.session: AsyncSession
        #: The index this transaction caught up (once per transaction: a batch of reads).
        self.index_synced: object | None = None

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @property
    def database(self) -> Database:
        return self._db

    async def __aenter__(self) -> UnitOfWork:
        self._locked = False
        if self._db.write_lock is not None:
            await self._db.write_lock.acquire()
            self._locked = True
        try:
            self.session = await self._stack.enter_async_context(self._db.sessions())
            await self.session.begin()
        except BaseException:
            self._unlock()
            await self._stack.aclose()
            raise
        self.members = MemberRepo(self.session)
        self.requests = RequestRepo(self.session)
        self.feed = FeedRepo(self.session)
        self.audit = AuditRepo(self.session, self.feed)
        self.outbox = OutboxRepo(self.session)
        self.processed = ProcessedRepo(self.session)
        self.due = DueWorkRepo(self.session)
        self.perms = PermissionRepo(self.session)
        self.reviews = ReviewRepo(self.session)
        self.drift = DriftRepo(self.session)
        self.rolesync = RoleSyncRepo(self.session)
        self.webhooks = WebhookRepo(self.session)
        self.paging = PagingRepo(self.session)
        self.todos = TodoRepo(self.session)
        self.tokens = TokenRepo(self.session)
        return self

    def _unlock(self) -> None:
        # The SQLite writer's turn ends with its COMMIT or ROLLBACK, not when the session has
        # been closed and its connection reset: the next writer need not wait for that.
        if self._locked:
            self._locked = False
            assert self._db.write_lock is not None
            self._db.write_lock.release()

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.session.in_transaction():
                await self.session.rollback()
        finally:
            self._unlock()
            await self._stack.aclose()

    async def serialise(self, name: str) -> None:
        """Hold the lock ``name`` until this transaction ends: a check-then-write that must
        not run twice at once across processes (first-start seeding) takes it first.
        PostgreSQL: a transaction advisory lock. SQLite: nothing to do, every transaction
        already holds the database's write lock from its ``BEGIN IMMEDIATE``."""
        if self.dialect == "postgresql":
            await self.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended("
                                            ":name, 0))"), {"name": name})

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Run the block in a savepoint, flushed at its end: an error in it rolls back only
        the block (and expires every loaded object), the transaction goes on."""
        async with self.session.begin_nested():
            yield
            await self.session.flush()

    async def ping(self) -> None:
        """One round trip to the store (raises when it is down)."""
        await self.session.execute(text("SELECT 1"))

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the transaction has committed (e.g. wake the outbox sender)."""
        self._after_commit.append(fn)

    async def commit(self) -> None:
        await self.session.flush()   # a constraint failing here is not a COMMIT failure
        try:
            await self.session.commit()
            self._unlock()
        except Exception as e:
            # The server may have committed before the connection broke: the outcome is
            # unknown, which callers must not report as "nothing changed".
            raise CommitOutcomeUnknown(f"commit failed: {type(e).__name__}: {e}") from e
        callbacks, self._after_commit = self._after_commit, []
        for fn in callbacks:
            fn()
        if self.feed.written:
            for listener in self._db.feed_listeners:
                listener(self.feed.written)


@contextlib.asynccontextmanager
async def database(url: str, **kw: Any) -> AsyncIterator[Database]:
    db = open_database(url, **kw)
    try:
        yield db
    finally:
        await db.dispose()
