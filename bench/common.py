"""Throw-away databases for the benchmarks (SQLite in a temp dir, or a fresh PostgreSQL one)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Container, Coroutine, Sequence
from typing import Any, Protocol


def print_rows(rows: Sequence[Sequence[str]], left: Container[int] = (0,)) -> None:
    """A text table: the first row is the header (underlined); the columns in ``left`` are
    left-aligned, the others right-aligned. Blank lines before and after."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) if j in left else c.rjust(w)
                        for j, (c, w) in enumerate(zip(row, widths, strict=True))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()


class BenchError(Exception):
    """The run could not be measured, or measured something wrong; the message says why."""


class Checked(Protocol):
    @property
    def ok(self) -> bool: ...


def run_bench(runs: Coroutine[Any, Any, Sequence[Checked]],
              print_table: Callable[[Sequence[Any]], None]) -> int:
    """Run ``runs``, print its table and the wall time; 1 if aborted or any result not ok."""
    started = time.monotonic()
    try:
        results = asyncio.run(runs)
    except BenchError as e:
        print(f"ABORTED: {e}", file=sys.stderr)
        return 1
    print_table(results)
    print(f"total wall time {time.monotonic() - started:.1f}s")
    return 0 if all(r.ok for r in results) else 1


@contextlib.asynccontextmanager
async def sqlite_url(prefix: str = "baton-bench-") -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield f"sqlite+aiosqlite:///{tmp}/baton.db"


async def pg_admin(pg_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"), timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def postgres_url(pg_url: str, prefix: str = "baton_bench_") -> AsyncIterator[str]:
    """A fresh database on the server of ``pg_url``, dropped afterwards."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    await pg_admin(pg_url, f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_url.rpartition('/')[0]}/{name}"
    finally:
        await pg_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def pg_reachable(pg_url: str) -> bool:
    """True when the server of ``pg_url`` answers; otherwise say why (the benchmark then
    measures the rest without PostgreSQL)."""
    try:
        await pg_admin(pg_url, "SELECT 1")
    except Exception as e:  # no server or no rights
        print(f"PostgreSQL skipped: not reachable at {pg_url}: {type(e).__name__}: {e}")
        return False
    return True
