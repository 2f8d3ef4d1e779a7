"""The decision API's ``check`` against two comparators, in one run.

    python -m bench.api_bench [--db sqlite|postgresql] [--members 10000] [--templates 50]
                              [--grants 100000] [--seconds 5] [--conns 32,4]

One store: ``--members`` members (1 owner, some admins, a third with a role), ``--templates``
templates of three items each, assigned to half the members, and ``--grants`` grants (a
fifth of them time-bound, some already expired), over a catalog of 60 permissions and 6
wildcard roles. Three HTTP servers, each in this process, one after the other, on port 0:

* ``constant``: a bare aiohttp handler returning a constant JSON body (the floor);
* ``baton``: Baton's decision API as ``baton run`` serves it (``bot.api.decisions``: the
  freshness read, a bearer token, the rate limit lifted, the in-memory index);
* ``sqlalchemy``: the same question through SQLAlchemy with no cache: per request one
  transaction reading the member's holdings (``PermissionRepo.holdings_many``) and
  ``sources_of`` (no token check: it only makes this comparator faster).

The load comes from a separate process (``--load``: an aiohttp client, K connections, each
sending GET /v1/check?user=<random member>&permission=<random permission> back to back for
``--seconds`` after a one-second warm-up), so the server has a core to itself on a 2-core
machine. Figures: requests/s at the first ``--conns`` value, p50/p99 latency at the second.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import insert

from bench.common import pg_reachable, postgres_url, print_rows, sqlite_url
from bot.api.decisions import DecisionApi
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.core.domain.permissions import Catalog, sources_of
from bot.core.domain.tokens import token_hash
from storage import migrate
from storage.db import Database, open_database
from storage.models import Grant, Member, Template, TemplateAssignment

CORP = "benchcorp"
TOKEN = "baton_" + "b" * 43
PERMS = [f"app{a}.res{r}.{v}" for a in range(5) for r in range(4) for v in ("view", "edit", "export")]
ROLES = {f"role{i}": [f"app{i % 5}.*", f"app{(i + 1) % 5}.res0.view"] for i in range(6)}


def catalog() -> dict[str, Any]:
    return {"permissions": {p: {"zh": p, "en": p} for p in PERMS}, "roles": ROLES,
            "sensitive": []}


def settings(url: str) -> Settings:
    data = Settings().model_dump()
    data["database"]["url"] = url
    data["org"]["corp_id"] = CORP
    data["catalog"] = catalog()
    data["api"].update(port=0, rate_per_second=1e9, burst=1_000_000_000)
    return Settings.model_validate(data)


async def build_store(db: Database, members: int, templates: int, grants: int,
                      rng: random.Random) -> None:
    now = datetime.now(UTC)
    users = [f"u{i:05d}" for i in range(members)]
    mrows = [{"corp_id": CORP, "user_id": u, "name": u,
              "level": "owner" if i == 0 else "admin" if i < 5 else "member",
              "role": rng.choice(list(ROLES)) if i % 3 == 0 else None, "active": True,
              "created_at": now, "updated_at": now} for i, u in enumerate(users)]
    names = PERMS + list(ROLES) + ["app1.*", "app2.res1.*"]
    per = max(1, grants // members)
    grows = []
    for u in users:
        for n in rng.sample(names, per):
            r = rng.random()
            exp = None if r < 0.8 else now + timedelta(days=rng.randint(1, 30)) if r < 0.95 \
                else now - timedelta(days=1)
            grows.append({"corp_id": CORP, "user_id": u, "name": n, "granted_by": "u00000",
                          "created_at": now, "expires_at": exp})
    trows = [{"id": i + 1, "corp_id": CORP, "name": f"tpl{i}",
              "permissions": rng.sample(names, 3), "created_by": "u00000",
              "created_at": now, "updated_at": now} for i in range(templates)]
    arows = [{"template_id": rng.randint(1, templates), "user_id": u, "assigned_by": "u00000",
              "created_at": now} for u in users[::2]]
    async with db.uow() as uow:
        s = uow.session
        for rows, model in ((mrows, Member), (trows, Template), (arows, TemplateAssignment)):
            await s.execute(insert(model), rows)
        for i in range(0, len(grows), 5000):
            await s.execute(insert(Grant), grows[i:i + 5000])
        await uow.tokens.create(CORP, "bench", "read", token_hash(TOKEN), by="bench", now=now)
        await uow.commit()


# ---- the three servers -------------------------------------------------------------------

async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port


def constant_app() -> web.Application:
    body = json.dumps({"user": "u00001", "permission": PERMS[0], "allowed": True,
                       "sources": [{"kind": "role", "name": "role0", "expires_at": None}],
                       "expires_at": None, "as_of": 0})

    async def check(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/check", check)
    return app


def sqlalchemy_app(db: Database, cat: Catalog) -> web.Application:
    async def check(request: web.Request) -> web.Response:
        user, perm = request.query["user"], request.query["permission"]
        now = datetime.now(UTC)
        async with db.uow() as uow:
            held = (await uow.perms.holdings_many(CORP, [user], now))[user]
        srcs = sources_of(held, cat, now).get(perm, ())
        return web.json_response({
            "user": user, "permission": perm, "allowed": bool(srcs),
            "sources": [{"kind": s.kind, "name": s.name,
                         "expires_at": s.expires_at.isoformat() if s.expires_at else None}
                        for s in srcs]})

    app = web.Application()
    app.router.add_get("/v1/check", check)
    return app


# ---- the load generator (a child process) ------------------------------------------------

async def load(url: str, conns: int, seconds: float, members: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    lat: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    stop_warm = time.perf_counter() + 1.0
    end = stop_warm + seconds
    connector = aiohttp.TCPConnector(limit=conns)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def worker() -> None:
            nonlocal errors
            while True:
                params = {"user": f"u{rng.randrange(members):05d}",
                          "permission": rng.choice(PERMS)}
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                async with http.get(url, params=params, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                t1 = time.perf_counter()
                if t0 >= stop_warm:
                    lat.append(t1 - t0)

        await asyncio.gather(*(worker() for _ in range(conns)))
    lat.sort()
    return {"n": len(lat), "rps": len(lat) / seconds, "errors": errors,
            "p50_ms": 1000 * statistics.median(lat) if lat else 0.0,
            "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))] if lat else 0.0}


def run_load(url: str, conns: int, seconds: float, members: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.api_bench", "--load", url, "--conns", str(conns),
         "--seconds", str(seconds), "--members", str(members)],
        capture_output=True, text=True, check=True)
    got: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return got


async def measure(name: str, app_or_start: Callable[[], Awaitable[tuple[Any, int]]],
                  args: argparse.Namespace) -> list[dict[str, Any]]:
    stopper, port = await app_or_start()
    url = f"http://127.0.0.1:{port}/v1/check"
    out = []
    try:
        for conns in args.conns:
            got = await asyncio.to_thread(run_load, url, conns, args.seconds, args.members)
            got.update(system=name, conns=conns)
            out.append(got)
            print(f"  {name:<10} {conns:>3} conns: {got['rps']:8.0f} req/s  "
                  f"p50 {got['p50_ms']:.2f} ms  p99 {got['p99_ms']:.2f} ms  "
                  f"errors {got['errors']}", flush=True)
    finally:
        await stopper()
    return out


async def bench(args: argparse.Namespace) -> int:
    rng = random.Random(17)
    if args.db == "postgresql":
        if not await pg_reachable(args.pg_url):
            print("PostgreSQL does not answer", file=sys.stderr)
            return 1
        ctx: Any = postgres_url(args.pg_url)
    else:
        ctx = sqlite_url()
    async with ctx as url:
        db = open_database(url)
        try:
            await migrate.upgrade(db)
            t0 = time.perf_counter()
            await build_store(db, args.members, args.templates, args.grants, rng)
            print(f"store ({args.db}): {args.members} members, {args.templates} templates, "
                  f"{args.grants} grants in {time.perf_counter() - t0:.1f}s", flush=True)
            s = settings(url)
            api = DecisionApi(db, s, SystemClock())
            t0 = time.perf_counter()
            await api.keeper.sync()
            await api.keeper.warmed()
            print(f"index loaded and resolved in {time.perf_counter() - t0:.2f}s", flush=True)
            # As `baton run` does once started: what lives as long as the process is moved
            # out of the collector's sight (a full collection over the index is a stall).
            gc.collect()
            gc.freeze()

            async def start_constant() -> tuple[Any, int]:
                runner, port = await serve(constant_app())
                return runner.cleanup, port

            async def start_baton() -> tuple[Any, int]:
                runner, port = await serve(api.web_app())
                return runner.cleanup, port

            async def start_sqla() -> tuple[Any, int]:
                runner, port = await serve(sqlalchemy_app(db, api.catalog))
                return runner.cleanup, port

            results = []
            for name, start in (("constant", start_constant), ("baton", start_baton),
                                ("sqlalchemy", start_sqla)):
                results += await measure(name, start, args)
            print(f"baton: {api.keeper.reads} freshness reads for "
                  f"{sum(r['n'] for r in results if r['system'] == 'baton')} measured requests")
        finally:
            await db.dispose()
    by = {(r["system"], r["conns"]): r for r in results}
    hi, lo = args.conns[0], args.conns[-1]
    rows = [["system", f"req/s @{hi}", "x constant", f"p50 ms @{lo}", f"p99 ms @{lo}"]]
    for name in ("constant", "baton", "sqlalchemy"):
        r_hi, r_lo = by[(name, hi)], by[(name, lo)]
        rows.append([name, f"{r_hi['rps']:.0f}",
                     f"{r_hi['rps'] / by[('constant', hi)]['rps']:.2f}",
                     f"{r_lo['p50_ms']:.2f}", f"{r_lo['p99_ms']:.2f}"])
    print_rows(rows)
    b = by[("baton", hi)]["rps"] / by[("constant", hi)]["rps"]
    p99 = by[("baton", lo)]["p99_ms"]
    ok = b >= 0.5 and p99 < 5.0
    print(f"targets: >= 0.5x constant at {hi} ({b:.2f}x), p99 < 5 ms at {lo} ({p99:.2f} ms): "
          f"{'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.api_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    p.add_argument("--members", type=int, default=10_000)
    p.add_argument("--templates", type=int, default=50)
    p.add_argument("--grants", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--conns", type=lambda v: [int(x) for x in v.split(",")], default=[32, 4])
    p.add_argument("--load", help=argparse.SUPPRESS)     # the child: load this URL
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load:
        print(json.dumps(asyncio.run(load(args.load, args.conns[0], args.seconds,
                                          args.members, seed=1))))
        return 0
    return asyncio.run(bench(args))


if __name__ == "__main__":
    raise SystemExit(main())
