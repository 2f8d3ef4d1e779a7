"""Webhook delivery: how fast the feed reaches a subscriber, and what a hanging one costs.

    python -m bench.webhook_bench [--events 2000] [--commits 200] [--db sqlite|postgresql|both]
                                  [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]

Two measurements per database, each beside its comparator, in the same run:

1. **Throughput.** ``--events`` change events are written to the feed; then the real
   :class:`bot.delivery.webhooks.WebhookSender` (as ``bot.app`` builds it) delivers them to
   a loopback aiohttp receiver that answers 204. The comparator is the floor for in-order,
   one-at-a-time delivery: the same events POSTed one after another, signed, through the
   same client (:class:`bot.transport.webhooks.HttpWebhooks`) with no store at all. The
   ratio says what leases, feed reads and cursor writes cost. Checked: every event arrives
   exactly once, in seq order.
2. **A hanging subscriber.** ``--commits`` changes are committed one by one (one
   transaction each, as a command does) and timed three times: with no webhook sender;
   beside a sender delivering each change to one healthy subscriber; beside a sender with a
   healthy subscriber and one whose POST never answers (it hangs until its timeout). The
   hanging URL should cost nothing over the healthy case: a command's transaction never
   waits for a webhook. (p50/p99 only: on a shared machine the tail is noisy.) Checked:
   the healthy subscriber receives every change while the other one hangs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from bench.common import BenchError, pg_reachable, postgres_url, print_rows, run_bench, sqlite_url
from bot.app import prepare_database
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.delivery.webhooks import WebhookSender
from bot.logs import setup_logging
from bot.transport.webhooks import HttpWebhooks
from storage.db import Database, open_database

CORP = "dingbenchcorp"
SECRET = "whsec-bench"


@dataclass
class Result:
    db: str
    events: int
    baton_rate: float
    floor_rate: float
    commits: int
    p50_alone: float
    p99_alone: float
    p50_healthy: float
    p99_healthy: float
    p50_hanging: float
    p99_hanging: float
    exact: bool

    @property
    def ok(self) -> bool:
        return self.exact


class Sink:
    """The receiver: records seqs per path; ``/hang`` never answers (until stopped)."""

    def __init__(self) -> None:
        self.seqs: dict[str, list[int]] = {}
        self.stop = asyncio.Event()
        self.base = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{name}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.json()
        self.seqs.setdefault(name, []).append(int(body["seq"]))
        if name == "hang":
            await self.stop.wait()
        return web.Response(status=204)

    async def close(self) -> None:
        self.stop.set()
        if self._runner is not None:
            await self._runner.cleanup()


def settings(url: str, sink: Sink, *names: str) -> Settings:
    os.environ["BENCH_WEBHOOK_SECRET"] = SECRET
    return Settings.model_validate({"database": {"url": url}, "org": {"corp_id": CORP},
                                    "integrations": {
        "webhooks": [{"name": n, "url": f"{sink.base}/{n}", "secret": "${BENCH_WEBHOOK_SECRET}",
                      "timeout": 25} for n in names]}})


async def write_events(db: Database, n: int) -> None:
    clock = SystemClock()
    for start in range(0, n, 500):
        async with db.uow() as uow:
            await uow.audit.append_many(CORP, clock.now(), [
                {"actor_id": "lisi", "action": "grant.apply", "result": "applied",
                 "target_id": f"u{i}", "after": {"name": "crm.export", "expires_at": None}}
                for i in range(start, min(n, start + 500))])
            await uow.commit()


async def commit_one(db: Database, i: int) -> float:
    t0 = time.perf_counter()
    async with db.uow() as uow:
        await uow.audit.append(CORP, SystemClock().now(), actor_id="lisi", action="grant.apply",
                               result="applied", target_id=f"c{i}", after={"name": "x"})
        await uow.commit()
    return (time.perf_counter() - t0) * 1000


async def commits_beside(db: Database, poster: HttpWebhooks, s: Settings, sink: Sink,
                         healthy: str, n: int, offset: int) -> list[float]:
    """Commit latencies (ms) of ``n`` changes while a sender delivers to ``s``'s webhooks;
    raises unless ``healthy`` received every one of them."""
    hooks = WebhookSender(db, poster, s, SystemClock())
    await hooks.register()
    db.feed_listeners.append(hooks.wake)
    task = asyncio.create_task(hooks.run())
    try:
        took = [await commit_one(db, offset + i) for i in range(n)]
        for _ in range(400):   # the healthy one catches up (10 s at most)
            if len(set(sink.seqs.get(healthy, []))) >= n:
                break
            await asyncio.sleep(0.025)
        else:
            raise BenchError(f"{healthy} received {len(sink.seqs.get(healthy, []))} of {n}")
    finally:
        db.feed_listeners.remove(hooks.wake)
        hooks.stop()
        await asyncio.wait_for(task, 10)
    return took


def pct(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def one(label: str, url: str, n_events: int, n_commits: int) -> Result:
    db = open_database(url)
    sink = Sink()
    await sink.start()
    try:
        await prepare_database(db)
        async with aiohttp.ClientSession(trust_env=False,
                                         connector=aiohttp.TCPConnector(limit=64)) as http:
            poster = HttpWebhooks(http)
            # 1. throughput
            await write_events(db, n_events)
            async with db.uow() as uow:
                events = await uow.feed.after(0, n_events + 1)
                await uow.webhooks.register(["crm"], 0, SystemClock().now())
                await uow.commit()
            sender = WebhookSender(db, poster, settings(url, sink, "crm"), SystemClock())
            t0 = time.perf_counter()
            await sender.drain()
            baton = time.perf_counter() - t0
            exact = sink.seqs.get("crm") == [e.seq for e in events]
            t0 = time.perf_counter()
            for e in events:
                await poster.post_event(f"{sink.base}/floor", SECRET, e.as_json(),
                                        sent_at=int(time.time()), timeout=25)
            floor = time.perf_counter() - t0
            # 2. commits: alone, beside a healthy subscriber, beside a healthy and a hanging one
            alone = [await commit_one(db, i) for i in range(n_commits)]
            healthy = await commits_beside(db, poster, settings(url, sink, "ok"), sink, "ok",
                                           n_commits, n_commits)
            hanging = await commits_beside(db, poster, settings(url, sink, "hang", "ok2"), sink,
                                           "ok2", n_commits, 2 * n_commits)
            exact = exact and len(sink.seqs.get("hang", [])) == 1
    finally:
        await sink.close()
        await db.dispose()
    return Result(label, n_events, n_events / baton, n_events / floor, n_commits,
                  statistics.median(alone), pct(alone, 0.99), statistics.median(healthy),
                  pct(healthy, 0.99), statistics.median(hanging),
                  pct(hanging, 0.99), exact)


async def run_all(args: argparse.Namespace) -> list[Result]:
    out = []
    if args.db in ("sqlite", "both"):
        async with sqlite_url() as url:
            out.append(await one("sqlite", url, args.events, args.commits))
    if args.db in ("postgresql", "both"):
        if await pg_reachable(args.pg_url):
            async with postgres_url(args.pg_url) as url:
                out.append(await one("postgresql", url, args.events, args.commits))
        elif args.db == "postgresql":
            raise BenchError("PostgreSQL not reachable")
    return out


def print_table(results: Sequence[Result]) -> None:
    rows = [["db", "events", "Baton ev/s", "floor ev/s", "ratio", "exact"]]
    for r in results:
        rows.append([r.db, str(r.events), f"{r.baton_rate:.0f}", f"{r.floor_rate:.0f}",
                     f"{r.baton_rate / r.floor_rate:.2f}", "yes" if r.exact else "NO"])
    print_rows(rows, left=(0,))
    rows = [["db", "commits", "beside", "p50 ms", "p99 ms"]]
    for r in results:
        rows += [[r.db, str(r.commits), "no webhooks", f"{r.p50_alone:.2f}",
                  f"{r.p99_alone:.2f}"],
                 [r.db, str(r.commits), "1 healthy", f"{r.p50_healthy:.2f}",
                  f"{r.p99_healthy:.2f}"],
                 [r.db, str(r.commits), "1 healthy + 1 hanging", f"{r.p50_hanging:.2f}",
                  f"{r.p99_hanging:.2f}"]]
    print_rows(rows, left=(0, 2))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--commits", type=int, default=200)
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = p.parse_args(argv)
    if args.events < 1 or args.commits < 10:
        p.error("--events at least 1, --commits at least 10")
    setup_logging("WARNING")
    print(f"webhook bench: events={args.events} commits={args.commits} db={args.db} "
          f"cpus={os.cpu_count()}", flush=True)
    return run_bench(run_all(args), print_table)


if __name__ == "__main__":
    sys.exit(main())
