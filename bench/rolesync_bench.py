"""What a full DingTalk role reconcile of a large corp costs, in API calls, against the
simulator's role APIs (the real OpenAPI client over loopback HTTP, a real SQLite store).

    python -m bench.rolesync_bench [--members 10000] [--roles 2]

The store holds ``--members`` members, spread evenly over ``--roles`` mapped catalog roles.
Three runs, each counted at the simulator (calls answered, by path):

* **first sync**: DingTalk has the role group but no one carries a label; the reconcile
  reads every role (``topapi/role/list`` once, ``topapi/role/simplelist`` 100 a page) and
  queues the fixes, which are then delivered (``addrolesforemps``, 20 users a call);
* **in sync**: the reconcile again: reads only, nothing to fix;
* **comparator** (the same run): what the naive way spends on the same two jobs: reading
  with DingTalk's default page (20) and fixing one user per call.

The monthly quota of a standard corp is 10,000 calls; the figures say what share of it one
nightly reconcile takes.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bot.cli.sandbox import DEMO_CATALOG
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.delivery.rolesync import KIND, RoleSync
from bot.transport.openapi import OpenApiClient
from dingtalk_sim import Simulator, SimUser
from dingtalk_sim.roles import ADD_EMPS_PATH, LIST_PATH, MEMBERS_PATH, ROLE_PATHS
from storage import migrate
from storage.db import open_database

NAMES = ["销售", "分析师", "管理员"]


def settings(sim: Simulator, url: str, roles: list[str]) -> Settings:
    data = Settings().model_dump()
    data["dingtalk"].update(client_id=sim.client_id, client_secret=sim.client_secret,
                            openapi_endpoint=sim.base_url, oapi_endpoint=sim.base_url)
    data["database"]["url"] = url
    data["org"]["corp_id"] = sim.corp_id
    data["catalog"] = DEMO_CATALOG
    data["integrations"] = {"dingtalk_roles": {
        "enabled": True, "group": "Baton", "map": {r: NAMES[i] for i, r in enumerate(roles)}}}
    return Settings.model_validate(data)


def counted(sim: Simulator) -> dict[str, int]:
    return {p: sim.role_calls(p) for p in ROLE_PATHS}


def spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {p: after[p] - before[p] for p in after if after[p] != before[p]}


async def run(members: int, n_roles: int) -> None:
    roles = ["sales", "analyst", "crm_admin"][:n_roles]
    users = [f"user{i:05}" for i in range(members)]
    with tempfile.TemporaryDirectory() as tmp, Simulator(
            users=[SimUser(u, u) for u in users]) as sim:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'baton.db'}"
        s = settings(sim, url, roles)
        db = open_database(url)
        await migrate.upgrade(db)
        clock = SystemClock()
        now = clock.now()
        async with db.uow() as uow:
            await uow.members.upsert_many(s.org.corp_id, [(u, u) for u in users], now)
            for i, u in enumerate(users):
                m = await uow.members.sender(s.org.corp_id, u)
                assert m is not None
                await uow.members.set_role(m, roles[i % n_roles], now)
            await uow.commit()
        async with aiohttp.ClientSession(trust_env=False) as http:
            client = OpenApiClient(http, s.dingtalk)
            sync = RoleSync(db, s, client)
            await sync.ensure(now)               # the start: the group and roles made
            sizes = []

            async def reconcile() -> tuple[int, float]:
                t0 = time.perf_counter()
                actual = await sync.read_dingtalk(clock.now())
                async with db.uow() as uow:
                    result = await sync.reconcile(uow, clock.now(), actual, 0)
                    await uow.commit()
                return len(result.differences), time.perf_counter() - t0

            c0 = counted(sim)
            diffs, took = await reconcile()
            c1 = counted(sim)
            async with db.uow() as uow:
                rows = list(await uow.outbox.claim_due(clock.now(), s.outbox.lease, 100_000))
                await uow.commit()
            t0 = time.perf_counter()
            for r in rows:
                if r.kind == KIND:
                    await sync.deliver(r.payload, clock.now())
            fix_took = time.perf_counter() - t0
            async with db.uow() as uow:
                await uow.outbox.mark_sent_each([(r.id, clock.now(), False) for r in rows])
                await uow.commit()
            c2 = counted(sim)
            again, took2 = await reconcile()
            c3 = counted(sim)
            sizes = [len(sim.role_holders("Baton", NAMES[i])) for i in range(n_roles)]
        await db.dispose()

    read1, fix1, read2 = spent(c0, c1), spent(c1, c2), spent(c2, c3)
    per_role = [members // n_roles + (1 if i < members % n_roles else 0)
                for i in range(n_roles)]
    naive_read = 1 + sum(max(1, -(-n // 20)) for n in per_role)
    print(f"members {members} over {n_roles} mapped roles; DingTalk now holds {sizes}")
    print(f"first sync : {diffs} differences; read {sum(read1.values())} calls {read1}, "
          f"fix {sum(fix1.values())} calls {fix1}; total {sum(read1.values()) + sum(fix1.values())}"
          f" ({took:.2f}s read+plan, {fix_took:.2f}s fix)")
    print(f"in sync    : {again} differences; {sum(read2.values())} calls {read2} ({took2:.2f}s)")
    print(f"comparator : naive read (page 20) {naive_read} calls, naive fix (1 user a call) "
          f"{members} calls; first sync {naive_read + members}, in sync {naive_read}")
    quota = 10_000
    print(f"share of a 10,000-call month: nightly in-sync reconcile "
          f"{sum(read2.values()) / quota:.1%} a night, {30 * sum(read2.values()) / quota:.0%} "
          f"a month (naive {30 * naive_read / quota:.0%}); reads are "
          f"{read2.get(LIST_PATH, 0)} role list + {read2.get(MEMBERS_PATH, 0)} simplelist; "
          f"fix calls: {fix1.get(ADD_EMPS_PATH, 0)} addrolesforemps")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=10_000)
    p.add_argument("--roles", type=int, default=2, choices=(1, 2, 3))
    a = p.parse_args()
    asyncio.run(run(a.members, a.roles))


if __name__ == "__main__":
    main()
