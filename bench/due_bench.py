"""Due-work claiming: rows per second with 1 and 4 workers, and no row done twice or missed.

    python -m bench.due_bench [--n 2000] [--workers 1,4] [--db sqlite|postgresql|both]
                              [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
                              [--no-processes]

For each database and each worker count, a fresh store gets ``--n`` pending ``due_work``
rows of a benchmark kind, all already due. Then that many :class:`bot.scheduling.due.DueRunner`
instances call ``run_once`` concurrently, as the alarm of each replica would; each runner
has its own ``Database`` (its own engine and pool, as separate replicas have), so on SQLite
they meet only in the file's lock (``BEGIN IMMEDIATE`` + busy timeout) and on PostgreSQL in
``FOR UPDATE SKIP LOCKED``. On SQLite the several-workers case is also run with one shared
``Database`` (one process running several runners: they queue on its asyncio write lock).
Workers in one process share one event loop and one CPU, so the several-workers case is
also run with one process per worker (``engines = procs``: this module re-run with
``--child``, each started together once all are connected), as real replicas are.

The handler is trivial and does what a real one does around its work: it counts the call
(per row id, shared by every worker), then opens ``ctx.transaction()``, which marks the row
done in the same transaction. Figures:

* rows/s = n / (last ``run_once`` returned - first started), claims included (processes:
  from the wall clocks the children report);
* double = rows whose handler ran more than once (must be 0);
* missed = rows whose handler never ran, or that are not ``done`` in the store (must be 0);
* failed = handler calls that raised (e.g. "database is locked"); such a row is put back
  for a later retry, so it also shows as missed here;
* split = rows done by each worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from bench.common import BenchError, pg_reachable, postgres_url, print_rows, run_bench, sqlite_url
from bot.app import prepare_database
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.core.faults import Faults
from bot.dispatch.context import Context
from bot.logs import setup_logging
from bot.scheduling.due import DueRunner
from storage.db import Database, open_database
from storage.models import DueWork

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
KIND = "bench_noop"


@dataclass(frozen=True)
class Result:
    db: str
    workers: int
    engines: str           # "own" (a Database per worker), "shared" or "procs"
    n: int
    seconds: float
    double: int
    missed: int
    failed: int
    split: tuple[int, ...]

    @property
    def per_s(self) -> float:
        return self.n / self.seconds

    @property
    def ok(self) -> bool:
        return not (self.double or self.missed or self.failed)


async def seed(url: str, n: int) -> set[int]:
    """Queue ``n`` due rows; return their ids."""
    db = open_database(url)
    try:
        await prepare_database(db)
        now = datetime.now(UTC)
        due = now - timedelta(seconds=1)
        async with db.uow() as uow:
            await uow.session.execute(insert(DueWork), [
                {"kind": KIND, "due_at": due, "payload": {"i": i}, "status": "pending",
                 "attempts": 0, "created_at": now} for i in range(n)])
            await uow.commit()
        async with db.uow() as uow:
            ids = set((await uow.session.execute(
                select(DueWork.id).where(DueWork.kind == KIND))).scalars())
    finally:
        await db.dispose()
    if len(ids) != n:
        raise BenchError(f"seeded {len(ids)} rows, meant {n}")
    return ids


async def store_state(db: Database) -> Counter[str]:
    async with db.uow() as uow:
        rows = (await uow.session.execute(
            select(DueWork.status, func.count()).where(DueWork.kind == KIND)
            .group_by(DueWork.status))).all()
    return Counter({str(s): int(c) for s, c in rows})


async def run_one(db_name: str, url: str, n: int, workers: int, shared: bool) -> Result:
    ids = await seed(url, n)
    settings = Settings.model_validate({"database": {"url": url}})
    ran: Counter[int] = Counter()

    async def noop(payload: dict[str, Any], ctx: Context) -> None:
        ran[ctx.row_id] += 1
        async with ctx.transaction():
            pass

    dbs = [open_database(url)] if shared else [open_database(url) for _ in range(workers)]
    try:
        runners = [DueRunner(dbs[0 if shared else w], settings, SystemClock(), None, Faults(),
                             {KIND: noop}) for w in range(workers)]
        # Open each engine's first connection outside the timed part (pragmas, pool).
        for db in dbs:
            await store_state(db)
        t0 = time.perf_counter()
        await asyncio.gather(*(r.run_once() for r in runners))
        seconds = time.perf_counter() - t0
        state = await store_state(dbs[0])
    finally:
        for db in dbs:
            await db.dispose()
    never = sum(1 for i in ids if ran[i] == 0)
    if set(ran) - ids:
        raise BenchError(f"{db_name}: the handler ran for rows that were not seeded")
    return Result(
        db=db_name, workers=workers, engines="shared" if shared else "own", n=n, seconds=seconds,
        double=sum(1 for c in ran.values() if c > 1),
        missed=max(never, n - state["done"]),
        failed=sum(r.failures for r in runners),
        split=tuple(r.done for r in runners),
    )


async def child(url: str) -> None:
    """One worker process: connect, say ready, wait for "go", run, report what ran."""
    settings = Settings.model_validate({"database": {"url": url}})
    ran: list[int] = []

    async def noop(payload: dict[str, Any], ctx: Context) -> None:
        ran.append(ctx.row_id)
        async with ctx.transaction():
            pass

    db = open_database(url)
    try:
        runner = DueRunner(db, settings, SystemClock(), None, Faults(), {KIND: noop})
        await store_state(db)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        t0 = time.time()
        await runner.run_once()
        t1 = time.time()
    finally:
        await db.dispose()
    print(json.dumps({"t0": t0, "t1": t1, "ran": ran, "done": runner.done,
                      "failures": runner.failures}), flush=True)


async def run_processes(db_name: str, url: str, n: int, workers: int) -> Result:
    ids = await seed(url, n)
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.due_bench", "--child", url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE) for _ in range(workers)]
    try:
        for p in procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise BenchError(f"{db_name}: a worker process did not start: {line!r}")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        outs = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
    reports = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outs]
    ran: Counter[int] = Counter(i for r in reports for i in r["ran"])
    db = open_database(url)
    try:
        state = await store_state(db)
    finally:
        await db.dispose()
    if set(ran) - ids:
        raise BenchError(f"{db_name}: the handler ran for rows that were not seeded")
    return Result(
        db=db_name, workers=workers, engines="procs", n=n,
        seconds=max(r["t1"] for r in reports) - min(r["t0"] for r in reports),
        double=sum(1 for c in ran.values() if c > 1),
        missed=max(sum(1 for i in ids if ran[i] == 0), n - state["done"]),
        failed=sum(int(r["failures"]) for r in reports),
        split=tuple(int(r["done"]) for r in reports),
    )


async def run_db(db_name: str, args: argparse.Namespace) -> list[Result]:
    configs = [(w, "own") for w in args.workers]
    if db_name == "sqlite":
        configs += [(w, "shared") for w in args.workers if w > 1]
    if args.processes:
        configs += [(w, "procs") for w in args.workers if w > 1]
    out = []
    for workers, engines in configs:
        fresh = (sqlite_url("baton-due-bench-") if db_name == "sqlite"
                 else postgres_url(args.pg_url))
        async with fresh as url:
            if engines == "procs":
                out.append(await run_processes(db_name, url, args.n, workers))
            else:
                out.append(await run_one(db_name, url, args.n, workers, engines == "shared"))
        print(f"  {db_name}, {workers} worker(s), {out[-1].engines} engine(s): "
              f"{out[-1].seconds:.2f} s", flush=True)
    return out


async def run_all(args: argparse.Namespace) -> list[Result]:
    results = []
    if args.db in ("sqlite", "both"):
        results += await run_db("sqlite", args)
    if args.db in ("postgresql", "both") and await pg_reachable(args.pg_url):
        results += await run_db("postgresql", args)
    return results


def print_table(results: Sequence[Result]) -> None:
    head = ["db", "workers", "engines", "n", "seconds", "rows/s", "double", "missed", "failed",
            "split"]
    rows = [head] + [[r.db, str(r.workers), r.engines, str(r.n), f"{r.seconds:.2f}",
                      f"{r.per_s:.0f}", str(r.double), str(r.missed), str(r.failed),
                      "/".join(map(str, r.split))] for r in results]
    print_rows(rows, left=(0, 2, 9))
    print("rows/s = n / wall time of the concurrent run_once calls; double = rows whose handler")
    print("ran more than once; missed = rows never run or not 'done' in the store; split = rows")
    print("done by each worker. engines: own = one Database (engine, pool) per worker, all in")
    print("this process; shared = one Database for all; procs = one process per worker.")
    bad = [r for r in results if not r.ok]
    print("PASS: no double claim, no missed row, no failure" if not bad else
          f"FAIL: {len(bad)} run(s) with double claims, missed rows or failures")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.due_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="due rows per run")
    p.add_argument("--workers", default="1,4", help="worker counts, comma separated")
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--pg-url", default=os.environ.get("BATON_TEST_PG", DEFAULT_PG))
    p.add_argument("--no-processes", dest="processes", action="store_false",
                   help="skip the one-process-per-worker runs")
    p.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        p.error("--workers: comma-separated integers, e.g. 1,4")
    if args.n < 1 or not args.workers or min(args.workers) < 1:
        p.error("--n and every worker count must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("WARNING")
    if args.child:
        asyncio.run(child(args.child))
        return 0
    print(f"due bench: n={args.n} workers={','.join(map(str, args.workers))} db={args.db} "
          f"cpus={os.cpu_count()}", flush=True)
    return run_bench(run_all(args), print_table)


if __name__ == "__main__":
    sys.exit(main())
