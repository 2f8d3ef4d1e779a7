"""SQLite through aiosqlite, one trip to its thread per statement.

SQLAlchemy's aiosqlite adapter makes up to four trips to aiosqlite's worker thread for each
statement (open a cursor, execute, fetch the rows, close the cursor), each one awaited on
the event loop. Under load every trip waits for a full turn of a busy loop, so a
transaction of six statements took over ten milliseconds of wall time while holding
SQLite's single write turn. This dialect is SQLAlchemy's own aiosqlite dialect with two
changes: a statement is opened, executed, fetched and closed in one function run on
aiosqlite's thread, and the rows come back with it (as the adapter buffers them anyway);
and a transaction's ``BEGIN IMMEDIATE`` goes in the same trip as its first statement, so
a transaction of n statements costs n + 1 trips (its COMMIT), and none if it ran nothing.

Nothing runs on the event loop thread that could block it; connections, transactions,
errors and pooling are SQLAlchemy's and aiosqlite's, unchanged. The URL keeps its usual
``sqlite+aiosqlite://`` form: :func:`storage.db.open_database` picks this dialect for it.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    AsyncAdapt_aiosqlite_ss_cursor,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

NAME = "sqlite+baton_aiosqlite"

_Outcome = tuple[Any, list[Any], int, int | None]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool,
         begin: str | None, state: list[bool]) -> _Outcome:
    """On aiosqlite's thread: the whole life of one cursor (after ``begin``, if given).
    ``state`` gets whether a transaction is open afterwards, even if the statement failed."""
    cur = conn.cursor()
    try:
        if begin is not None:
            cur.execute(begin)
        if many:
            cur.executemany(operation, parameters)
        elif parameters is None:
            cur.execute(operation)
        else:
            cur.execute(operation, parameters)
        description = cur.description
        rows = cur.fetchall() if description else []
        return description, rows, cur.rowcount, cur.lastrowid
    finally:
        cur.close()
        state.append(conn.in_transaction)


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose execute is one trip to the database thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:   # no aiosqlite cursor to open
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None   # nothing is open between trips

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._trip(operation, parameters, False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        try:
            return await_(self._trip(operation, seq_of_parameters, True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _trip(self, operation: Any, parameters: Any, many: bool) -> None:
        aconn = self._connection
        adapt = self._adapt_connection
        state: list[bool] = []
        async with adapt._execute_mutex:
            begin = adapt.take_begin() if isinstance(adapt, OneTripConnection) else None
            try:
                outcome: _Outcome = await aconn._execute(  # aiosqlite's queue to its thread
                    lambda: _run(aconn._conn, operation, parameters, many, begin, state))
            finally:
                if isinstance(adapt, OneTripConnection):
                    if state:
                        adapt.in_transaction = state[0]
                    if begin is not None and not (state and state[0]):
                        # BEGIN itself failed (e.g. busy past busy_timeout): the transaction
                        # SQLAlchemy thinks it opened must still begin before its next
                        # statement, not let that one run outside any transaction.
                        adapt.begin_with_first_statement(begin)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)


class OneTripSSCursor(AsyncAdapt_aiosqlite_ss_cursor):
    """The server-side (streaming) cursor, sending a pending BEGIN before its statement."""

    __slots__ = ()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        adapt = self._adapt_connection
        async with adapt._execute_mutex:
            if isinstance(adapt, OneTripConnection):
                begin = adapt.take_begin()
                if begin is not None:
                    try:
                        await self._cursor.execute(begin)
                    except BaseException:
                        adapt.begin_with_first_statement(begin)
                        raise
                    adapt.in_transaction = True
            if parameters is None:
                return await self._cursor.execute(operation)
            return await self._cursor.execute(operation, parameters)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """A connection whose BEGIN rides with the transaction's first statement, and which
    knows (from SQLite, after each trip) whether a transaction is open, so COMMIT and
    ROLLBACK make a trip only when there is one: the pool's reset of a returned
    connection after COMMIT costs nothing."""

    __slots__ = ("_pending_begin", "in_transaction")
    _cursor_cls = OneTripCursor
    _ss_cursor_cls = OneTripSSCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._pending_begin: str | None = None
        self.in_transaction = False

    def begin_with_first_statement(self, begin: str) -> None:
        """Open the transaction with ``begin`` in the same trip as its first statement
        (one trip fewer per transaction; a transaction with no statement opens nothing)."""
        self._pending_begin = begin

    def take_begin(self) -> str | None:
        begin, self._pending_begin = self._pending_begin, None
        return begin

    def commit(self) -> None:
        # A BEGIN still pending: nothing was begun, nothing to commit.
        if self.take_begin() is None and self.in_transaction:
            super().commit()
            self.in_transaction = False   # a failed COMMIT leaves it open (rolled back next)

    def rollback(self) -> None:
        if self.take_begin() is None and self.in_transaction:
            super().rollback()
            self.in_transaction = False

    def close(self) -> None:
        self.take_begin()
        super().close()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


class BatonSQLiteDialect(SQLiteDialect_aiosqlite):
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> OneTripDBAPI:
        return OneTripDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register("sqlite.baton_aiosqlite", __name__, "BatonSQLiteDialect")
