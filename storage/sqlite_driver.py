"""SQLite through aiosqlite, one trip to its thread per statement.

SQLAlchemy's aiosqlite adapter makes up to four trips to aiosqlite's worker thread for each
statement (open a cursor, execute, fetch the rows, close the cursor), each one awaited on
the event loop. Under load every trip waits for a full turn of a busy loop, so a
transaction of six statements took over ten milliseconds of wall time while holding
SQLite's single write turn. This dialect is SQLAlchemy's own aiosqlite dialect with two
changes: a statement is opened, executed, fetched and closed in one function run on
aiosqlite's thread, and the rows come back with it (as the adapter buffers them anyway);
and a transaction's ``BEGIN IMMEDIATE`` goes in the same trip as its first statement.

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
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

NAME = "sqlite+baton_aiosqlite"

_Outcome = tuple[Any, list[Any], int, int | None]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool,
         begin: str | None = None) -> _Outcome:
    """On aiosqlite's thread: the whole life of one cursor (after ``begin``, if given)."""
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
        async with adapt._execute_mutex:
            begin = adapt.take_begin() if isinstance(adapt, OneTripConnection) else None
            outcome: _Outcome = await aconn._execute(  # aiosqlite's own queue to its thread
                lambda: _run(aconn._conn, operation, parameters, many, begin))
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """A connection whose BEGIN can ride with the transaction's first statement."""

    __slots__ = ("_pending_begin",)
    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._pending_begin: str | None = None

    def begin_with_first_statement(self, begin: str) -> None:
        """Open the transaction with ``begin`` in the same trip as its first statement
        (one trip fewer per transaction; a transaction with no statement opens nothing)."""
        self._pending_begin = begin

    def take_begin(self) -> str | None:
        begin, self._pending_begin = self._pending_begin, None
        return begin

    def commit(self) -> None:
        if self.take_begin() is None:   # else nothing was begun: nothing to commit
            super().commit()

    def rollback(self) -> None:
        if self.take_begin() is None:
            super().rollback()

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
