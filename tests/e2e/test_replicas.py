"""Two Baton processes (`baton run`) on one PostgreSQL database and one simulator, each with
its own Stream connection: reminders due every second are sent once each, none is missed,
and a card click that lands on the other replica (the first one is stopped) still works.
Three started at the same moment on an empty database all come up: one schema, one owner."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli.sandbox import DEMO_CATALOG, demo_simulator
from bot.transport.inbound import ROBOT_TOPIC
from dingtalk_sim import Simulator
from storage import migrate
from storage.db import open_database
from storage.models import OWNER, AuditEntry, DueWork, Member, OutboxMessage, Request
from tests.e2e.conftest import CARD, GROUP, card_status, click, reply_to, roundtrip
from tests.support import baton_config

pytestmark = [pytest.mark.e2e, pytest.mark.pg]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with demo_simulator() as s:
        yield s


def config(tmp: Path, sim: Simulator, url: str) -> Path:
    return baton_config(tmp / "baton.yaml", sim_base_url=sim.base_url, corp_id=sim.corp_id,
                        db_url=url, catalog=DEMO_CATALOG, extra={
        "policy": {"remind_every": "1s", "remind_max": "1s", "quiet_hours": None,
                   "approval_ttl": "60s", "escalate_after": "1h"},
        "scheduler": {"poll_interval": "1s"},
        # Reminders every second far exceed DingTalk's 20 a minute per group; this test is
        # about the schedule, so lift the outbox's per-group budget.
        "outbox": {"per_conversation_per_minute": 10000},
    })


def start_replica(cfg: Path, sim: Simulator, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "DINGTALK_"))}
    env.update(DINGTALK_CLIENT_ID=sim.client_id, DINGTALK_CLIENT_SECRET=sim.client_secret,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "bot.cli.main", "run", "--config", str(cfg)],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


@pytest.fixture
async def replicas(tmp_path: Path, sim: Simulator,
                   pg_url: str) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    cfg = config(tmp_path, sim, pg_url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # One at a time: the first migrates the empty database, the second finds it ready.
        for i in range(2):
            procs.append(start_replica(cfg, sim, tmp_path / f"replica{i}.log"))
            await sim.until(lambda n=i + 1: len([c for c in sim.connections() if c.live]) >= n,
                            timeout=30, what=f"replica {i} connected")
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for i in range(len(procs)):
            print(f"--- replica {i} log ---\n" + (tmp_path / f"replica{i}.log").read_text(
                errors="replace")[-3000:])


async def test_three_replicas_cold_start_together_on_an_empty_database(
        tmp_path: Path, sim: Simulator, pg_url: str) -> None:
    cfg = config(tmp_path, sim, pg_url)
    procs = [start_replica(cfg, sim, tmp_path / f"cold{i}.log") for i in range(3)]
    try:
        # All three migrate and seed at the same moment; none may die doing it.
        await sim.until(lambda: len([c for c in sim.connections() if c.live]) == 3
                        or any(p.poll() is not None for p in procs),
                        timeout=60, what="three replicas connected (or one exited)")
        assert [p.poll() for p in procs] == [None, None, None]
        # Each serves: commands until every replica's connection has acked one (the simulator
        # pushes each to a connection it picks), each answered; the owner is DingTalk's main
        # administrator, seen the same by whichever replica answers.
        live = {c.connection_id for c in sim.connections() if c.live}
        for _ in range(40):
            await roundtrip(sim, "zhangsan", " 我的权限", "主管理员")
            if live <= {a.connection_id for a in sim.acks() if a.topic == ROBOT_TOPIC}:
                break
        assert live <= {a.connection_id for a in sim.acks() if a.topic == ROBOT_TOPIC}
        assert [p.poll() for p in procs] == [None, None, None]
    finally:
        codes = [stop_replica(p) for p in procs]
        for i in range(3):
            print(f"--- replica {i} log ---\n" + (tmp_path / f"cold{i}.log").read_text(
                errors="replace")[-3000:])
    assert codes == [0, 0, 0]
    db = open_database(pg_url)
    try:
        async with db.engine.connect() as conn:
            versions = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
        async with db.uow() as uow:
            boots = (await uow.session.execute(
                select(AuditEntry).where(AuditEntry.action == "bootstrap"))).scalars().all()
            boots = [(b.corp_id, b.target_id, b.actor_id) for b in boots]
            owners = (await uow.session.execute(
                select(Member.user_id).where(Member.level == OWNER))).scalars().all()
    finally:
        await db.dispose()
    assert versions == [(migrate.head_revision(),)]
    assert boots == [(sim.corp_id, "zhangsan", "system:dingtalk")]
    assert owners == ["zhangsan"]


def stop_replica(p: subprocess.Popen[bytes]) -> int | None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        return None


def reminders_for(sim: Simulator, rid: str) -> int:
    """How many reminder messages named request ``rid`` (a merged one counts once)."""
    return sum(1 for m in sim.messages(GROUP)
               if m.title in ("待审批提醒", "Waiting for your decision")
               and re.search(rf"\b{rid}\b", m.text))


async def test_two_replicas_send_each_reminder_once_and_take_clicks(
        sim: Simulator, replicas: list[subprocess.Popen[bytes]], pg_url: str) -> None:
    for perm in ("crm.export", "finance.invoice", "crm_admin"):
        n = len(sim.messages(GROUP))
        sim.say("lisi", f" grant @钱七 {perm}", conversation_id=GROUP, at=("qianqi",))
        await reply_to(sim, GROUP, "is open", after=n, timeout=20)
    ids = ["R-1", "R-2", "R-3"]
    # Reminders every second for each open request, from whichever replica claims them.
    await sim.until(lambda: all(reminders_for(sim, r) >= 4 for r in ids), timeout=40,
                    what="four reminders for each request")
    # Stop the first replica; the click can only land on the second.
    first = replicas[0]
    first.send_signal(signal.SIGTERM)
    await asyncio.to_thread(first.wait, 30)
    await sim.until(lambda: len([c for c in sim.connections() if c.live]) == 1, timeout=30,
                    what="one live connection")
    await click(sim, "wangwu", CARD.format(1), "approve")
    await card_status(sim, CARD.format(1), "applied")
    # Let the survivor send a few more, then stop it and compare the store with the chat.
    got = {r: reminders_for(sim, r) for r in ids[1:]}
    try:
        await sim.until(lambda: all(reminders_for(sim, r) >= got[r] + 2 for r in ids[1:]),
                        timeout=30, what="reminders from the surviving replica")
    except TimeoutError:
        print("GOT", got, {r: reminders_for(sim, r) for r in ids})
        for m in sim.messages(GROUP)[-8:]:
            print("MSG", m.title, m.text[:160].replace("\n", " | "))
        raise
    second = replicas[1]
    second.send_signal(signal.SIGTERM)
    await asyncio.to_thread(second.wait, 30)
    db = open_database(pg_url)
    try:
        async with db.uow() as uow:
            rows = (await uow.session.execute(
                select(DueWork).where(DueWork.kind == "request_remind"))).scalars().all()
            reqs = {r.id: r.state for r in (await uow.session.execute(select(Request))).scalars()}
            rows = [(r.payload.get("request_id"), r.status, r.attempts, r.dedupe_key)
                    for r in rows]
            # A reminder still unsent when the next one naming its request was queued is
            # superseded by it (#15.1): the request is then named in one message, not two.
            superseded = [int(i) for p in (await uow.session.execute(
                select(OutboxMessage.payload).where(OutboxMessage.status == "superseded")
            )).scalars() for i in p.get("remind", [])]
    finally:
        await db.dispose()
    assert reqs[1] == "applied"
    for rid in (1, 2, 3):
        mine = [r for r in rows if r[0] == rid]
        done = [r for r in mine if r[1] == "done"]
        # None missed: no row failed or had to be retried, and the chain went on each second.
        assert not [r for r in mine if r[1] == "failed" or r[2] > 0]
        # None twice: each done row became exactly one message naming the request (R-1's
        # rows after its approval send nothing: it no longer waits for anyone).
        sent = reminders_for(sim, f"R-{rid}") + superseded.count(rid)
        assert sent == len(done) if rid != 1 else 4 <= sent <= len(done), (rid, sent, len(done))
        assert len({r[3] for r in done}) == len(done)
