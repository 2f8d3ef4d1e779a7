"""Latency of ``whoami`` (and ``who-has``) over a large permission store, in process.

    python -m bench.perm_bench [--db sqlite|postgresql|both] [--n 2000] [--warmup 100]
                               [--members 10000] [--templates 50] [--grants 100000]
                               [--who-has-runs 20] [--who-has-budget 60] [--explain]
                               [--analyze postgresql|all|none] [--seed 1]
                               [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]

The target (from the issue): ``whoami`` with 10,000 members, 50 templates and 100,000
grants in the store answers in under 20 ms p99 on SQLite.

Each database gets a fresh schema (``storage.migrate.upgrade``; SQLite in a temporary
directory, WAL, exactly as ``open_database`` sets it up) and is bulk-loaded in one
transaction with core ``insert(Model)`` executemany, in chunks:

* members: one owner, a few admins, the rest plain members; ~40% have a catalog role;
* templates: 3 to 8 items each (permissions, wildcards and roles);
* template assignments: 0 to 4 distinct templates per member (~2 on average);
* grants: a skewed number per member (unique per member and name), names drawn from the
  catalog's permissions and roles; ~30% time-bound, about a third of those already expired
  (rows the expiry scheduler has not reached yet: the query must skip them).

The catalog is generated: 40 permissions over 8 modules and 10 roles, most of them wildcards.

Then, for ``--n`` members drawn at random (after ``--warmup`` unmeasured calls on other draws),
timed with ``time.perf_counter`` around the whole ``async with`` block:

* ``holdings``: one ``db.uow()`` transaction doing ``uow.perms.holdings(...)`` and
  ``bot.core.domain.permissions.sources_of(...)`` (read only, rolled back on exit);
* ``whoami``: one ``db.uow()`` transaction loading the sender (``uow.members.get``), running
  ``handlers.info.whoami`` with a real ``Context`` (rendering and the outbox insert) and
  ``uow.commit()``, i.e. what the router does for the command minus parsing and the
  redelivery claim.

On SQLite every ``uow()`` starts with ``BEGIN IMMEDIATE`` (as in production), so both paths
are write transactions. ``who-has`` of one permission is timed separately (it stops starting
new runs after ``--who-has-budget`` seconds, so the bench stays near two minutes).

Planner statistics: SQLite is measured as migrated, without ANALYZE, because nothing in a
Baton deployment ever runs it. PostgreSQL is ANALYZEd after the bulk load, as autovacuum
would do within a minute or so in production (``--analyze`` changes both). ``--explain``
prints the plans and per-statement times of ``holdings`` (one member, as whoami) and
``holdings_many`` (500 members, as who-has).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import re
import resource
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import Any

from sqlalchemy import event, func, insert, select

from bench.common import pg_reachable, postgres_url, print_rows, sqlite_url
from bot.config import Settings
from bot.core.commands import WhoAmI
from bot.core.domain.permissions import Catalog, sources_of
from bot.dispatch.context import Context
from bot.logs import setup_logging
from bot.transport.inbound import IncomingMessage
from handlers.info import whoami
from handlers.permissions import catalog_of
from storage import migrate
from storage.db import Database, open_database
from storage.index import keeper
from storage.models import (
    ADMIN,
    MEMBER,
    OWNER,
    Grant,
    Member,
    OutboxMessage,
    Template,
    TemplateAssignment,
)

CORP = "bench-corp"
GROUP = "cid-bench-group"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TARGET_P99_MS = 20.0
CHUNK = 5000
ADMINS = 20
ROLE_SHARE = 0.4
TIMEBOUND_SHARE = 0.3
EXPIRED_SHARE_OF_TIMEBOUND = 1 / 3
MAX_ASSIGNMENTS = 4  # uniform 0..4 distinct templates per member: 2 on average


# --- the catalog ----------------------------------------------------------------------------

MODULES = ("crm", "finance", "hr", "ops", "sales", "support", "legal", "it")
ACTIONS = (("record.view", "查看记录", "View records"), ("record.edit", "编辑记录", "Edit records"),
           ("report.view", "查看报表", "View reports"), ("export", "导出数据", "Export data"),
           ("approve", "审批", "Approve"))


def build_catalog() -> dict[str, Any]:
    """40 permissions (8 modules x 5), 10 roles (8 of them wildcards), a few sensitive names."""
    perms = {f"{m}.{a}": {"zh": f"{m} {zh}", "en": f"{m}: {en}"}
             for m in MODULES for a, zh, en in ACTIONS}
    roles: dict[str, list[str]] = {}
    for m in MODULES[:4]:
        roles[f"{m}_viewer"] = [f"{m}.*.view"]
    for m in MODULES[4:7]:
        roles[f"{m}_admin"] = [f"{m}.*"]
    roles["auditor"] = ["*.report.view", "finance.record.view"]
    roles["exporter"] = ["*.export"]
    roles["approver"] = [f"{m}.approve" for m in MODULES]
    sensitive = ["finance.export", "hr.export", "legal.approve", "exporter"]
    return {"permissions": perms, "roles": roles, "sensitive": sensitive}


def bench_settings(db_url: str) -> Settings:
    return Settings.model_validate({
        "database": {"url": db_url},
        "org": {"corp_id": CORP, "bootstrap_from_dingtalk": False},
        "catalog": build_catalog(),
    })


# --- the data set ---------------------------------------------------------------------------


@dataclass
class DataSet:
    members: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    assignments: list[tuple[str, str]] = field(default_factory=list)  # (template name, user)
    grants: list[dict[str, Any]] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    live_grants: dict[str, int] = field(default_factory=dict)  # user -> grants not expired
    expired: int = 0
    timebound: int = 0
    most_grants: int = 0

    def summary(self) -> str:
        return (f"{len(self.members):,} members, {len(self.templates)} templates, "
                f"{len(self.assignments):,} assignments, {len(self.grants):,} grants "
                f"(time-bound {self.timebound:,}, already expired {self.expired:,}; "
                f"at most {self.most_grants} for one member)")

    def release(self) -> None:
        """Drop the loaded rows: the bot's process does not hold the data set, and ~130k
        dicts would make every full garbage collection during the measurement slower."""
        self.members, self.templates, self.assignments, self.grants = [], [], [], []


def _grant_counts(rng: random.Random, members: int, total: int, cap: int) -> list[int]:
    """A skewed number of grants per member (lognormal), capped, summing to ``total``."""
    if total > members * cap:
        raise SystemExit(f"--grants {total} cannot fit: at most {cap} distinct names per member")
    raw = [rng.lognormvariate(0, 0.9) for _ in range(members)]
    scale = total / sum(raw)
    counts = [min(cap, round(r * scale)) for r in raw]
    diff = total - sum(counts)
    while diff:
        i = rng.randrange(members)
        if diff > 0 and counts[i] < cap:
            counts[i] += 1
            diff -= 1
        elif diff < 0 and counts[i] > 0:
            counts[i] -= 1
            diff += 1
    return counts


def generate(args: argparse.Namespace, catalog: dict[str, Any], now: datetime) -> DataSet:
    rng = random.Random(args.seed)
    perms = sorted(catalog["permissions"])
    roles = sorted(catalog["roles"])
    names = perms + roles
    wildcards = [f"{m}.*" for m in MODULES] + ["*.view", "*.report.view", "*.export"]
    ds = DataSet()
    created = now - timedelta(days=400)

    users = ds.users = [f"u{i:05d}" for i in range(args.members)]
    for i, uid in enumerate(users):
        level = OWNER if i == 0 else ADMIN if i <= ADMINS else MEMBER
        ds.members.append({
            "corp_id": CORP, "user_id": uid, "name": f"成员{i:05d}", "level": level,
            "role": rng.choice(roles) if rng.random() < ROLE_SHARE else None,
            "active": rng.random() > 0.02, "created_at": created, "updated_at": created,
        })

    for i in range(args.templates):
        want = rng.randint(3, 8)
        items: list[str] = []
        while len(items) < want:  # mostly plain permissions, some wildcards and roles
            item = rng.choice(wildcards if rng.random() < 0.15 else roles if rng.random() < 0.15
                              else perms)
            if item not in items:
                items.append(item)
        ds.templates.append({
            "corp_id": CORP, "name": f"tpl-{i:02d}", "permissions": items,
            "created_by": users[0], "created_at": created, "updated_at": created,
        })

    tpl_names = [t["name"] for t in ds.templates]
    for uid in users:
        for name in rng.sample(tpl_names, min(len(tpl_names), rng.randint(0, MAX_ASSIGNMENTS))):
            ds.assignments.append((name, uid))

    granters = users[: ADMINS + 1]
    for uid, k in zip(users, _grant_counts(rng, args.members, args.grants, len(names)),
                      strict=True):
        live = 0
        for name in rng.sample(names, k):
            expires: datetime | None = None
            if rng.random() < TIMEBOUND_SHARE:
                ds.timebound += 1
                if rng.random() < EXPIRED_SHARE_OF_TIMEBOUND:
                    expires = now - timedelta(seconds=rng.randint(60, 30 * 86400))
                    ds.expired += 1
                else:
                    expires = now + timedelta(seconds=rng.randint(3600, 180 * 86400))
            live += expires is None or expires > now
            ds.grants.append({
                "corp_id": CORP, "user_id": uid, "name": name, "granted_by": rng.choice(granters),
                "created_at": created + timedelta(seconds=rng.randint(0, 390 * 86400)),
                "expires_at": expires,
            })
        ds.live_grants[uid] = live
        ds.most_grants = max(ds.most_grants, k)
    rng.shuffle(ds.grants)  # rows of one member are not adjacent in the table, as in real life
    return ds


def _chunks(rows: Sequence[Any], n: int = CHUNK) -> Sequence[Sequence[Any]]:
    return [rows[i:i + n] for i in range(0, len(rows), n)]


async def load(db: Database, ds: DataSet, *, analyze: bool) -> float:
    """Bulk-load ``ds`` in one transaction; return the seconds it took."""
    started = time.perf_counter()
    async with db.engine.begin() as conn:
        for chunk in _chunks(ds.members):
            await conn.execute(insert(Member), list(chunk))
        await conn.execute(insert(Template), ds.templates)
        ids = dict((await conn.execute(
            select(Template.name, Template.id).where(Template.corp_id == CORP))).all())
        assignments = [{"template_id": ids[name], "user_id": uid, "via_dept": None,
                        "assigned_by": "u00000", "created_at": ds.members[0]["created_at"]}
                       for name, uid in ds.assignments]
        for chunk in _chunks(assignments):
            await conn.execute(insert(TemplateAssignment), list(chunk))
        for chunk in _chunks(ds.grants):
            await conn.execute(insert(Grant), list(chunk))
    if analyze:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


# --- measuring ------------------------------------------------------------------------------


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of the samples at or below it."""
    return sorted_ms[min(len(sorted_ms) - 1, max(0, ceil(q * len(sorted_ms)) - 1))]


@dataclass(frozen=True)
class Stats:
    n: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, ms: Sequence[float]) -> Stats:
        s = sorted(ms)
        return cls(len(s), percentile(s, 0.50), percentile(s, 0.95), percentile(s, 0.99),
                   s[-1], sum(s) / len(s))


@dataclass
class Result:
    db: str
    load_s: float
    holdings: Stats
    whoami: Stats
    who_has: Stats
    who_has_name: str
    who_has_count: int
    checks: list[str]


def incoming(uid: str, now: datetime, seq: int) -> IncomingMessage:
    return IncomingMessage(
        message_id=f"bench-{seq}", msg_id=f"bench-msg-{seq}", conversation_id=GROUP, is_group=True,
        conversation_title="bench", sender_id=uid, sender_nick=uid, sender_corp_id=CORP,
        text="whoami", mentions=(), msgtype="text", file=None,
        session_webhook=f"https://oapi.dingtalk.com/robot/sendBySession?session=s{seq}",
        webhook_expires_at=now + timedelta(hours=1), from_robot=False,
    )


async def time_holdings(db: Database, cat: Catalog, uid: str) -> tuple[float, int, int]:
    """ms of one holdings+sources_of transaction; also the live grants seen and perms held."""
    t0 = time.perf_counter()
    async with db.uow() as uow:
        now = datetime.now(UTC)
        held = await uow.perms.holdings(CORP, uid, now)
        srcs = sources_of(held, cat, now)
    return (time.perf_counter() - t0) * 1000, len(held.grants), len(srcs)


async def time_whoami(db: Database, settings: Settings, uid: str, seq: int) -> float:
    msg = incoming(uid, datetime.now(UTC), seq)
    t0 = time.perf_counter()
    async with db.uow() as uow:
        now = datetime.now(UTC)
        sender = await uow.members.sender(CORP, uid)
        assert sender is not None, uid
        ctx = Context.for_message(uow, settings, now, settings.locale.lang, msg, sender)
        await whoami(WhoAmI(), ctx)
        await uow.commit()
    return (time.perf_counter() - t0) * 1000


async def measure(db: Database, settings: Settings, ds: DataSet, args: argparse.Namespace,
                  db_name: str, load_s: float) -> Result:
    cat = catalog_of(settings)
    rng = random.Random(args.seed + 1)
    users = ds.users
    warm = rng.sample(users, min(args.warmup, len(users)))
    picks = [rng.choice(users) for _ in range(args.n)]
    checks: list[str] = []

    # (a) storage + compute
    for uid in warm:
        await time_holdings(db, cat, uid)
    gc.collect()
    ms, bad = [], 0
    perms_held = 0
    for uid in picks:
        t, n_grants, n_perms = await time_holdings(db, cat, uid)
        ms.append(t)
        perms_held += n_perms
        bad += n_grants != ds.live_grants[uid]
    holdings = Stats.of(ms)
    if bad:
        raise SystemExit(f"{db_name}: holdings returned the wrong live grants for {bad} members")
    checks.append(f"holdings: live grants match the generated data for all {len(picks)} members "
                  f"(avg {perms_held / len(picks):.1f} effective permissions each)")

    # (b) the handler, with the outbox write and the commit
    async with db.uow() as uow:
        outbox_before = (await uow.session.execute(
            select(func.count()).select_from(OutboxMessage))).scalar_one()
    seq = 0
    for uid in warm:
        seq += 1
        await time_whoami(db, settings, uid, seq)
    gc.collect()
    ms = []
    for uid in picks:
        seq += 1
        ms.append(await time_whoami(db, settings, uid, seq))
    whoami_stats = Stats.of(ms)
    async with db.uow() as uow:
        rows = (await uow.session.execute(
            select(OutboxMessage.payload).where(OutboxMessage.id > outbox_before)
            .order_by(OutboxMessage.id))).scalars().all()
    named = sum(1 for uid, p in zip(warm + picks, rows, strict=False) if uid in str(p))
    if len(rows) != seq or named != seq:
        raise SystemExit(f"{db_name}: expected {seq} outbox replies naming their sender, "
                         f"found {len(rows)} rows, {named} naming the sender")
    checks.append(f"whoami: {seq} outbox rows written, each naming its sender")

    # who-has of one permission
    name = args.who_has
    runs: list[float] = []
    count = 0
    async with db.uow() as uow:  # warm-up, unmeasured
        await uow.perms.who_has(CORP, name, cat, datetime.now(UTC))
    budget_end = time.perf_counter() + args.who_has_budget
    for _ in range(args.who_has_runs):
        if runs and time.perf_counter() > budget_end:
            break  # the run count is in the table; the note under it says why it is short
        t0 = time.perf_counter()
        async with db.uow() as uow:
            got = await uow.perms.who_has(CORP, name, cat, datetime.now(UTC))
        runs.append((time.perf_counter() - t0) * 1000)
        count = len(got)
    # The same through the permission index, as the who-has command now reads it: one
    # transaction, the index caught up in it (one freshness read), then the holders.
    index = keeper(db, cat)
    t0 = time.perf_counter()
    await index.sync()
    loaded = (time.perf_counter() - t0) * 1000
    fast: list[float] = []
    for _ in range(args.who_has_runs):
        t0 = time.perf_counter()
        async with db.uow() as uow:
            await index.sync_in(uow)
            via = index.corp(CORP).holders(name, datetime.now(UTC))
        fast.append((time.perf_counter() - t0) * 1000)
    assert via == got, "the index and the store disagree on who-has"
    st = Stats.of(fast)
    checks.append(f"who-has {name} via the index: {len(via)} holders, p50 {st.p50:.1f} ms, "
                  f"p99 {st.p99:.1f} ms over {len(fast)} runs (index loaded in "
                  f"{loaded:.0f} ms); the same answer as the store's")
    return Result(db_name, load_s, holdings, whoami_stats, Stats.of(runs), name, count, checks)


# --- explain --------------------------------------------------------------------------------


def _shape(sql: str) -> str:
    """A statement's text with its expanded IN lists folded, to group executions."""
    one = " ".join(sql.split())
    return re.sub(r"\((?:\?|\$\d+(?:::\w+)?)(?:, (?:\?|\$\d+(?:::\w+)?))+\)", "(...)", one)


def _fold_plan(line: str, width: int = 150) -> str:
    """A plan line with long literal arrays (PostgreSQL's = ANY('{...}')) folded."""
    line = re.sub(r"'\{[^}]{40,}\}'", "'{...}'", line)
    return line if len(line) <= width else line[:width - 3] + "..."


async def explain(db: Database, users: Sequence[str], runs: int = 300, batch: int = 500) -> None:
    """Plans of the statements ``holdings`` runs (one member, as whoami does) and
    ``holdings_many`` runs (a batch, as who-has does), with each statement's time."""
    seen: dict[str, tuple[str, Any]] = {}
    timings: dict[str, list[float]] = {}
    state: dict[str, Any] = {"t": 0.0, "label": ""}

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        state["t"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        if not statement.lstrip().upper().startswith("SELECT"):
            return
        key = f"{state['label']}: {_shape(statement)}"
        seen.setdefault(key, (statement, parameters))
        timings.setdefault(key, []).append((time.perf_counter() - state["t"]) * 1000)

    rng = random.Random(7)
    sync = db.engine.sync_engine
    event.listen(sync, "before_cursor_execute", before)
    event.listen(sync, "after_cursor_execute", after)
    try:
        state["label"] = "holdings (1 member)"
        for _ in range(runs):
            async with db.uow() as uow:
                await uow.perms.holdings(CORP, rng.choice(users), datetime.now(UTC))
        state["label"] = f"holdings_many ({batch} members)"
        for _ in range(5):
            async with db.uow() as uow:
                await uow.perms.holdings_many(CORP, rng.sample(users, batch), datetime.now(UTC))
    finally:
        event.remove(sync, "before_cursor_execute", before)
        event.remove(sync, "after_cursor_execute", after)

    print("\nEXPLAIN of PermissionRepo's holdings queries (time = execute + fetch in the driver):")
    prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
    async with db.engine.connect() as conn:
        for key, (sql, params) in seen.items():
            s = sorted(timings[key])
            print(f"\n{key}\n  mean {sum(s) / len(s):.3f} ms, p99 {percentile(s, 0.99):.3f} ms "
                  f"over {len(s)} executions")
            for row in (await conn.exec_driver_sql(prefix + sql, params)).all():
                print("  -> " + _fold_plan(" | ".join(str(c) for c in row)))


# --- databases ------------------------------------------------------------------------------




async def bench_one(db_name: str, url: str, args: argparse.Namespace) -> Result:
    settings = bench_settings(url)
    ds = generate(args, build_catalog(), datetime.now(UTC))
    db = open_database(url)
    try:
        await migrate.upgrade(db)
        analyze = args.analyze == "all" or args.analyze == db_name
        load_s = await load(db, ds, analyze=analyze)
        print(f"{db_name}: loaded {ds.summary()} in {load_s:.1f}s"
              f"{', ANALYZE included' if analyze else ', no ANALYZE'}", flush=True)
        ds.release()
        gc.collect()
        result = await measure(db, settings, ds, args, db_name, load_s)
        if args.explain:
            await explain(db, ds.users)
        return result
    finally:
        await db.dispose()


async def bench_all(args: argparse.Namespace) -> list[Result]:
    results = []
    if args.db in ("sqlite", "both"):
        async with sqlite_url() as url:
            results.append(await bench_one("sqlite", url, args))
    if args.db in ("postgresql", "both") and await pg_reachable(args.pg_url):
        async with postgres_url(args.pg_url) as url:
            results.append(await bench_one("postgresql", url, args))
    return results


# --- report ---------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """The process's peak resident set so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(results: Sequence[Result], args: argparse.Namespace) -> None:
    header = ["db", "path", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms"]
    rows = [header]
    for r in results:
        for path, s in (("holdings+sources_of", r.holdings), ("whoami handler+commit", r.whoami),
                        (f"who-has {r.who_has_name}", r.who_has)):
            rows.append([r.db, path, str(s.n), f"{s.p50:.2f}", f"{s.p95:.2f}", f"{s.p99:.2f}",
                         f"{s.max:.2f}", f"{s.mean:.2f}"])
    print_rows(rows, left=(0, 1))
    for r in results:
        verdict = "MEETS" if r.whoami.p99 < TARGET_P99_MS else "MISSES"
        print(f"{r.db}: whoami p99 {r.whoami.p99:.2f} ms {verdict} the {TARGET_P99_MS:.0f} ms target; "
              f"who-has {r.who_has_name} found {r.who_has_count:,} holders; load {r.load_s:.1f}s")
        for c in r.checks:
            print(f"  check: {c}")
    print(f"Peak RSS {peak_rss_mb():.0f} MB (ru_maxrss, whole process, data set generation included).")
    print("Percentiles: nearest rank over single sequential calls (no concurrency), timed with")
    print("time.perf_counter around the whole unit of work; the n members are drawn at random with")
    print(f"replacement; {args.warmup} unmeasured calls first. who-has: up to {args.who_has_runs} "
          f"runs after one unmeasured, none started after {args.who_has_budget:.0f}s")
    for r in results:
        if r.who_has.n < args.who_has_runs:
            print(f"  {r.db}: who-has stopped at {r.who_has.n} runs (budget spent): its p99 is the "
                  "max of those runs; pass --who-has-budget 1000 for all of them")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.perm_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get("BATON_TEST_PG", DEFAULT_PG),
                   help="an existing database on the server; a fresh one is created beside it")
    p.add_argument("--n", type=int, default=2000, help="measured calls per path")
    p.add_argument("--warmup", type=int, default=100, help="unmeasured calls per path first")
    p.add_argument("--members", type=int, default=10_000)
    p.add_argument("--templates", type=int, default=50)
    p.add_argument("--grants", type=int, default=100_000)
    p.add_argument("--who-has", default="crm.record.view", help="the permission for who-has")
    p.add_argument("--who-has-runs", type=int, default=20)
    p.add_argument("--who-has-budget", type=float, default=60.0,
                   help="seconds after which who-has stops starting new runs (keeps the "
                        "whole bench near two minutes when who-has is slow)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--analyze", choices=("postgresql", "all", "none"), default="postgresql",
                   help="where to run ANALYZE after loading (default: PostgreSQL only, where "
                        "autovacuum would soon do it; on SQLite nothing ever does, Baton included)")
    p.add_argument("--explain", action="store_true",
                   help="print the plans and per-statement times of the holdings queries")
    args = p.parse_args(argv)
    if min(args.n, args.members, args.templates, args.who_has_runs) < 1 or args.warmup < 0:
        p.error("--n, --members, --templates and --who-has-runs must be at least 1")
    if args.who_has not in build_catalog()["permissions"]:
        p.error(f"--who-has {args.who_has!r} is not a permission of the generated catalog")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
    setup_logging("WARNING")
    started = time.perf_counter()
    catalog = build_catalog()
    print(f"perm bench: db={args.db} members={args.members:,} templates={args.templates} "
          f"grants={args.grants:,} catalog={len(catalog['permissions'])} permissions/"
          f"{len(catalog['roles'])} roles n={args.n} warmup={args.warmup} seed={args.seed} "
          f"cpus={os.cpu_count()} sqlite {sqlite3.sqlite_version}", flush=True)
    results = asyncio.run(bench_all(args))
    if not results:
        print("nothing measured")
        return 1
    print_table(results, args)
    print(f"total wall time {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
