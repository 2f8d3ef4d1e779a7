"""One command's storage cost versus a raw single-row commit.

    python -m bench.storage_bench [--n 1000] [--command whoami|help] [--members 10]
                                  [--db sqlite|postgresql|both]
                                  [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]

Every variant does ``--n`` operations one after the other (no concurrency), each timed on
its own with ``perf_counter``, after an untimed warm-up. On SQLite each variant gets its own
file in one temporary directory, in WAL mode with the pragmas ``storage/db.py`` sets
(``journal_mode=WAL``, ``busy_timeout=5000``, ``foreign_keys=ON``, ``synchronous=NORMAL``,
driver transaction control off, ``BEGIN IMMEDIATE``):

* raw sqlite3: ``BEGIN IMMEDIATE; INSERT`` one small row ``; COMMIT`` with the stdlib,
  synchronously (the floor);
* aiosqlite: the same three statements through aiosqlite (one thread hop per call);
* Baton uow insert: the same one-row insert the way Baton writes anything: ``db.uow()``
  (the SQLite write lock, an ``AsyncSession``, ``BEGIN IMMEDIATE``), ``processed.claim``
  (an ``INSERT .. ON CONFLICT DO NOTHING`` into ``processed_messages``), commit;
* Baton command: ``Dispatcher.handle_robot_message`` for one ``--command`` from a known
  member in a group, built as ``bot.app`` builds the dispatcher (``build_router()``), with
  an ``IncomingMessage`` made directly (no transport, no outbox sender running): the whole
  transaction (dedupe row, member upsert, the handler in a savepoint, the reply in the
  outbox, commit), parsing and the handler included.

Statements per operation are counted with SQLAlchemy's ``before_cursor_execute`` (by first
word) plus its ``commit`` event; the raw variants run a known 3. With ``--db postgresql``
(or both) the same is done on a fresh PostgreSQL database: raw asyncpg (``INSERT`` in a
transaction), the Baton uow insert and the Baton command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event

from bench.common import pg_reachable, postgres_url, print_rows, sqlite_url
from bot.app import prepare_database
from bot.cli.sandbox import DEMO_CATALOG
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.dispatch.dispatcher import Dispatcher
from bot.logs import setup_logging
from bot.transport.inbound import IncomingMessage
from handlers import build_router
from storage.db import Database, open_database

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CORP = "dingbenchcorp"
GROUP = "cidBENCHSTORAGE"
WARMUP = 100
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA busy_timeout=5000", "PRAGMA foreign_keys=ON",
           "PRAGMA synchronous=NORMAL")
RAW_TABLE = "CREATE TABLE bench (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v TEXT, at TEXT)"
RAW_INSERT = "INSERT INTO bench (k, v, at) VALUES (?, ?, ?)"


@dataclass
class Result:
    db: str
    variant: str
    times_ms: list[float]
    statements: Counter[str] = field(default_factory=Counter)  # over the timed ops

    def pct(self, q: float) -> float:
        s = sorted(self.times_ms)
        return s[min(len(s) - 1, max(0, round(q * len(s)) - 1))]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times_ms)

    @property
    def per_op(self) -> float:
        return sum(self.statements.values()) / len(self.times_ms)


Op = Callable[[int], Awaitable[None]]


async def timed(n: int, op: Op) -> list[float]:
    for i in range(WARMUP):
        await op(-1 - i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await op(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def now_text() -> str:
    return datetime.now(UTC).isoformat()


# --- raw -----------------------------------------------------------------------------------------


def raw_sqlite3(path: str, n: int) -> Result:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for p in PRAGMAS:
            conn.execute(p)
        conn.execute(RAW_TABLE)

        def op(i: int) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(RAW_INSERT, (f"k{i}", "a small row", now_text()))
            conn.execute("COMMIT")

        for i in range(WARMUP):
            op(-1 - i)
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            op(i)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    return Result("sqlite", "raw sqlite3", times, Counter({"BEGIN": n, "INSERT": n, "COMMIT": n}))


async def raw_aiosqlite(path: str, n: int) -> Result:
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        for p in PRAGMAS:
            await conn.execute(p)
        await conn.execute(RAW_TABLE)

        async def op(i: int) -> None:
            await conn.execute("BEGIN IMMEDIATE")
            await conn.execute(RAW_INSERT, (f"k{i}", "a small row", now_text()))
            await conn.execute("COMMIT")

        times = await timed(n, op)
    return Result("sqlite", "aiosqlite", times, Counter({"BEGIN": n, "INSERT": n, "COMMIT": n}))


async def raw_asyncpg(url: str, n: int) -> Result:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("CREATE TABLE bench (id bigserial PRIMARY KEY, k text NOT NULL, "
                           "v text, at timestamptz)")

        async def op(i: int) -> None:
            async with conn.transaction():
                await conn.execute("INSERT INTO bench (k, v, at) VALUES ($1, $2, $3)",
                                   f"k{i}", "a small row", datetime.now(UTC))

        times = await timed(n, op)
    finally:
        await conn.close()
    return Result("postgresql", "raw asyncpg", times,
                  Counter({"BEGIN": n, "INSERT": n, "COMMIT": n}))


# --- Baton ---------------------------------------------------------------------------------------


def count_statements(db: Database) -> tuple[Counter[str], Callable[[], None]]:
    """Count statements (by first word) and commits on ``db``; returns the counter and an
    ``off`` that stops counting."""
    seen: Counter[str] = Counter()
    engine = db.engine.sync_engine

    def on_execute(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen[statement.lstrip().split(None, 1)[0].upper()] += 1

    def on_commit(_conn: Any) -> None:
        seen["COMMIT"] += 1

    def on_begin(_conn: Any) -> None:
        seen["BEGIN"] += 1

    # Baton's BEGIN is not a statement SQLAlchemy sees on either database (SQLite: it rides
    # in the first statement's trip, storage/sqlite_driver.py; asyncpg: the driver begins),
    # so count the "begin" event.
    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", on_execute), ("commit", on_commit), ("begin", on_begin)]
    for name, fn in listeners:
        event.listen(engine, name, fn)

    def off() -> None:
        for name, fn in listeners:
            event.remove(engine, name, fn)

    return seen, off


async def measure_baton(db_name: str, variant: str, db: Database, n: int, op: Op) -> Result:
    for i in range(WARMUP):
        await op(-1 - i)
    seen, off = count_statements(db)
    try:
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            await op(i)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        off()
    return Result(db_name, variant, times, seen)


async def baton_uow_insert(db_name: str, url: str, n: int) -> Result:
    db = open_database(url)
    try:
        await prepare_database(db)
        clock = SystemClock()

        async def op(i: int) -> None:
            async with db.uow() as uow:
                if not await uow.processed.claim(f"bench:{i}", "bench", clock.now()):
                    raise RuntimeError(f"key bench:{i} was already there")
                await uow.commit()

        return await measure_baton(db_name, "Baton uow insert", db, n, op)
    finally:
        await db.dispose()


def settings_for(url: str) -> Settings:
    return Settings.model_validate({
        "database": {"url": url}, "catalog": DEMO_CATALOG,
        "org": {"corp_id": CORP, "bootstrap_from_dingtalk": False},
        "limits": {"user_per_minute": 1_000_000_000, "conversation_per_minute": 1_000_000_000},
    })


def message(i: int, user: str, text: str) -> IncomingMessage:
    expires = datetime.now(UTC) + timedelta(hours=1)
    return IncomingMessage(
        message_id=f"bench-hdr-{i}", msg_id=f"bench-msg-{i}", conversation_id=GROUP,
        is_group=True, conversation_title="storage bench", sender_id=user,
        sender_nick=f"成员{user}", sender_corp_id=CORP, text=text, mentions=(), msgtype="text",
        file=None, session_webhook=f"http://127.0.0.1:9/robot/sendBySession?session=s{i}",
        webhook_expires_at=expires, from_robot=False,
    )


async def baton_command(db_name: str, url: str, n: int, command: str, members: int) -> Result:
    settings = settings_for(url)
    db = open_database(url)
    try:
        await prepare_database(db)
        dispatcher = Dispatcher(db, settings, SystemClock(), build_router())
        users = [f"user{k:03d}" for k in range(members)]
        # First contacts, untimed: the timed commands come from members Baton knows.
        for k, u in enumerate(users):
            await dispatcher.handle_robot_message(message(-10_000 - k, u, command))

        async def op(i: int) -> None:
            await dispatcher.handle_robot_message(message(i, users[i % members], command))

        result = await measure_baton(db_name, f"Baton {command}", db, n, op)
        errors = {k: v for k, v in dispatcher.metrics.commands.items() if k[1] != "ok"}
        if errors:
            raise RuntimeError(f"the command did not run cleanly: {errors}")
        async with db.uow() as uow:
            depth = await uow.outbox.depth()
        expected = n + WARMUP + members
        if depth != expected:
            raise RuntimeError(f"{depth} replies in the outbox for {expected} commands")
        return result
    finally:
        await db.dispose()


# --- runs ----------------------------------------------------------------------------------------


async def run_sqlite(args: argparse.Namespace) -> list[Result]:
    async with sqlite_url("baton-storage-bench-") as url:
        tmp = Path(url.removeprefix("sqlite+aiosqlite:///")).parent
        out = [await asyncio.to_thread(raw_sqlite3, str(tmp / "raw.db"), args.n),
               await raw_aiosqlite(str(tmp / "aiosqlite.db"), args.n),
               await baton_uow_insert("sqlite", f"sqlite+aiosqlite:///{tmp}/uow.db", args.n),
               await baton_command("sqlite", f"sqlite+aiosqlite:///{tmp}/cmd.db", args.n,
                                   args.command, args.members)]
    return out


async def run_postgres(args: argparse.Namespace) -> list[Result]:
    out = []
    async with postgres_url(args.pg_url, "baton_storage_bench_") as url:
        out.append(await raw_asyncpg(url, args.n))
        out.append(await baton_uow_insert("postgresql", url, args.n))
        out.append(await baton_command("postgresql", url, args.n, args.command, args.members))
    return out


async def run_all(args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    if args.db in ("sqlite", "both"):
        results += await run_sqlite(args)
    if args.db in ("postgresql", "both") and await pg_reachable(args.pg_url):
        results += await run_postgres(args)
    return results


def print_table(results: Sequence[Result]) -> None:
    base = {r.db: r for r in results if r.variant.startswith("raw")}
    head = ["db", "variant", "p50 ms", "p99 ms", "mean ms", "ops/s", "stmts/op",
            "x raw (p50)", "x raw (mean)"]
    rows = [head]
    for r in results:
        b = base.get(r.db)
        rows.append([r.db, r.variant, f"{r.pct(0.50):.3f}", f"{r.pct(0.99):.3f}",
                     f"{r.mean:.3f}", f"{1000 / r.mean:.0f}", f"{r.per_op:.1f}",
                     f"{r.pct(0.50) / b.pct(0.50):.1f}x" if b else "-",
                     f"{r.mean / b.mean:.1f}x" if b else "-"])
    print_rows(rows, left=(0, 1))
    print("Statements per operation, by first word (SQLAlchemy before_cursor_execute, and its"
          " begin and commit events):")
    for r in results:
        n = len(r.times_ms)
        parts = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(r.statements.items()))
        print(f"  {r.db:10} {r.variant:18} {parts}")
    print("ops/s = 1000 / mean (one operation at a time). x raw = this variant / the raw driver")
    print("commit on the same database (sqlite3 stdlib on SQLite, asyncpg on PostgreSQL).")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.storage_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="timed operations per variant")
    p.add_argument("--command", choices=("whoami", "help"), default="whoami")
    p.add_argument("--members", type=int, default=10, help="members the commands rotate over")
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--pg-url", default=os.environ.get("BATON_TEST_PG", DEFAULT_PG))
    args = p.parse_args(argv)
    if args.n < 1 or args.members < 1:
        p.error("--n and --members must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("WARNING")
    print(f"storage bench: n={args.n} command={args.command} members={args.members} "
          f"db={args.db} sqlite {sqlite3.sqlite_version} cpus={os.cpu_count()}", flush=True)
    started = time.monotonic()
    results = asyncio.run(run_all(args))
    print_table(results)
    print(f"total wall time {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
