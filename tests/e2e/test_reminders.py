"""Reminders end to end with an injected clock: a restart sends what fell due while stopped,
exactly once (also after a crash); a closed request keeps no reminder; ``baton schedule``
lists the due work. On time, quiet hours, escalation and merging are tested at the handler
level, tests/handlers/test_reminders.py."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.app import BatonApp
from bot.cli.sandbox import DEMO_CATALOG, sim_settings
from bot.cli.schedule import show_schedule
from bot.config import Settings
from bot.core.clock import FakeClock
from dingtalk_sim import Simulator
from dingtalk_sim.model import SentMessage
from storage.db import open_database
from storage.models import DueWork, OutboxMessage, Request
from tests.e2e.conftest import GROUP, reply_to
from tests.e2e.helpers import baton, db_env
from tests.support import baton_config

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)     # 10:00 in Asia/Shanghai
POLICY: dict[str, Any] = {
    "quiet_hours": "22:00-08:00", "timezone": "Asia/Shanghai", "remind_every": "4h",
    "remind_max": "24h", "escalate_after": "12h", "approval_ttl": "72h"}
IDS = re.compile(r"R-(\d+)")
ROOT = Path(__file__).resolve().parents[2]


def reminders(sim: Simulator) -> list[SentMessage]:
    return [m for m in sim.messages(GROUP) if m.text.startswith(("提醒：", "Reminder:"))]


async def say(sim: Simulator, user: str, text: str, at: tuple[str, ...], expect: str) -> None:
    n = len(sim.messages(GROUP))
    sim.say(user, f" {text}", conversation_id=GROUP, at=at)
    await reply_to(sim, GROUP, expect, after=n)


async def pending_reminders(app: BatonApp) -> list[tuple[datetime, dict[str, Any]]]:
    async with app.db.uow() as uow:
        rows = (await uow.session.execute(select(DueWork).where(
            DueWork.kind == "request_remind", DueWork.status == "pending")
            .order_by(DueWork.due_at, DueWork.id))).scalars()
        return [(r.due_at, dict(r.payload)) for r in rows]


async def reminder_at(app: BatonApp) -> list[list[str]]:
    """The at lists of the reminder replies Baton queued, oldest first."""
    async with app.db.uow() as uow:
        rows = (await uow.session.execute(select(OutboxMessage).where(
            OutboxMessage.kind == "reply").order_by(OutboxMessage.id))).scalars()
        return [list(r.payload.get("at", [])) for r in rows
                if str(r.payload.get("text", "")).startswith("提醒：")]


async def test_two_hundred_reminders_due_while_stopped_go_out_once(sim: Simulator,
                                                                   db_url: str) -> None:
    clock = FakeClock(T0)
    settings: Settings = sim_settings(sim, db_url, policy=POLICY)
    async with BatonApp(settings, clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
        await app.due.run_once()                               # start-up work (retention)
        async with app.db.uow() as uow:
            for i in range(200):
                req = Request(corp_id=settings.org.corp_id, kind="grant", state="pending",
                              requester_id="zhangsan", target_id="qianqi",
                              conversation_id=GROUP, reason=f"bulk {i}",
                              payload={"name": "crm.export", "is_group": True, "lang": "zh",
                                       "need": 1},
                              created_at=T0, expires_at=T0 + timedelta(hours=72))
                uow.session.add(req)
                await uow.session.flush()
                await uow.due.schedule("request_remind", T0 + timedelta(hours=4),
                                       {"request_id": req.id}, T0, dedupe_key=f"remind:{req.id}:1")
            await uow.commit()
    # Down for 5 hours; a new process on the same store.
    clock.advance(timedelta(hours=5))
    async with BatonApp(settings, clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
        assert await app.due.run_once() == 200
        assert await app.due.run_once() == 0

        def all_sent() -> list[SentMessage] | None:
            msgs = reminders(sim)
            seen = {i for m in msgs for i in IDS.findall(m.text)}
            return msgs if len(seen) == 200 else None
        await sim.until(all_sent, timeout=60, what="every request in a reminder")
        # Barrier: once no outbox row is pending, nothing more (no duplicate) can arrive.
        while await outbox_pending(app):
            seen = len(sim.messages())
            await sim.until(lambda seen=seen: len(sim.messages()) > seen, timeout=10,
                            what="the outbox to drain")
        msgs = reminders(sim)
        counts = Counter(i for m in msgs for i in IDS.findall(m.text))
        assert len(counts) == 200 and set(counts.values()) == {1}   # each exactly once
        assert len(msgs) == 10                                     # merged, 20 a message
        assert app.due.late == 200 and app.due.max_lag >= 3600
        # Each request keeps its own next reminder (16:00 local + 8h is quiet -> 08:00).
        nxt = await pending_reminders(app)
        assert len(nxt) == 200 and {d for d, _ in nxt} == {T0 + timedelta(hours=22)}
        assert {p["n"] for _, p in nxt} == {2}


async def test_a_restart_over_missed_reminders_sends_one_catch_up_per_request(
        sim: Simulator, db_url: str) -> None:
    """#15.1: three open requests, reminders every 10 s, no quiet hours; Baton is down for more
    than three periods and starts again with its real alarm clock: each request is in exactly
    one catch-up reminder, and keeps exactly one next reminder."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))    # the alarm runs on real time
    settings = sim_settings(sim, db_url, policy={
        "quiet_hours": None, "remind_every": "10s", "remind_max": "1h", "escalate_after": "1h",
        "approval_ttl": "72h"}, outbox={"per_conversation_per_minute": 10000})
    async with BatonApp(settings, clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
        await app.due.run_once()
        await say(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
        await say(sim, "zhangsan", "授权 @钱七 crm.export", ("qianqi",), "R-2")
        await say(sim, "zhangsan", "授权 @钱七 finance.invoice", ("qianqi",), "R-3")
        clock.advance(timedelta(seconds=11))
        assert await app.due.run_once() >= 1                  # the first reminders, then down
        await sim.until(lambda: reminders(sim), what="the first reminder")
        await settled(app, clock)
    before = len(reminders(sim))
    clock.advance(timedelta(seconds=45))                      # down for > 3 periods
    async with BatonApp(settings, clock=clock) as app:
        await app.wait_connected()

        def caught_up() -> list[SentMessage] | None:
            msgs = reminders(sim)[before:]
            return msgs if {i for m in msgs for i in IDS.findall(m.text)} == {"1", "2", "3"} \
                else None
        await sim.until(caught_up, timeout=20, what="a catch-up naming every request")
        # Barrier: no reminder due now and no outbox row pending: nothing more can come.
        await settled(app, clock)
        counts = Counter(i for m in reminders(sim)[before:] for i in IDS.findall(m.text))
        assert counts == {"1": 1, "2": 1, "3": 1}
        nxt = await pending_reminders(app)
        assert sorted(p["request_id"] for _, p in nxt) == [1, 2, 3]
        assert {p["n"] for _, p in nxt} == {3} and all(d > clock.now() for d, _ in nxt)


async def test_a_closed_request_keeps_no_reminder_and_schedule_leaves_it_out(
        sim: Simulator, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """#15.31: cancelling a request cancels its reminder row; ``baton schedule`` lists only
    the open request's reminder, also when an old store still has a stale row."""
    clock = FakeClock(T0)
    settings = sim_settings(sim, db_url, policy=POLICY)
    async with BatonApp(settings, clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
        await app.due.run_once()
        await say(sim, "zhangsan", "授权 @钱七 crm.export", ("qianqi",), "R-1")
        await say(sim, "zhangsan", "授权 @钱七 finance.invoice", ("qianqi",), "R-2")
        await say(sim, "zhangsan", "取消 R-1", (), "已取消，未做更改")
        assert [p["request_id"] for _, p in await pending_reminders(app)] == [2]
        async with app.db.uow() as uow:     # a row a request closed before the fix left behind
            await uow.due.schedule("request_remind", T0 + timedelta(hours=1),
                                   {"request_id": 1, "n": 2}, T0, dedupe_key="stale")
            await uow.commit()
        capsys.readouterr()
        assert await show_schedule(settings, clock=clock) == 0
        out = capsys.readouterr().out
        listed = [ln.split()[3:] for ln in out.splitlines() if "request_remind" in ln]
        # (+ 2 expiries, retention, review, the drift sweep)
        assert listed == [["R-2"]] and "5 pending" in out
        clock.advance(timedelta(hours=4, seconds=1))
        await app.due.run_once()
        got = await sim.until(lambda: reminders(sim), what="R-2's reminder")
        assert IDS.findall(got[0].text) == ["2"]


def test_baton_schedule_lists_due_overdue_and_failures(tmp_path: Path) -> None:
    path = tmp_path / "schedule.db"
    env = db_env(path)
    assert baton("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    now = datetime.now(UTC).replace(microsecond=0)

    async def seed() -> None:
        db = open_database(f"sqlite+aiosqlite:///{path}")
        try:
            async with db.uow() as uow:
                await uow.due.schedule("request_remind", now - timedelta(hours=1),
                                       {"request_id": 3, "n": 2}, now, dedupe_key="a")
                await uow.due.schedule("grant_expire", now + timedelta(hours=2),
                                       {"grant_id": 5}, now, dedupe_key="b")
                await uow.due.schedule("request_expire", now + timedelta(days=1),
                                       {"request_id": 4}, now, dedupe_key="c")
                await uow.session.flush()
                uow.session.add(DueWork(kind="transfer_verify", due_at=now - timedelta(days=1),
                                        payload={"request_id": 9, "last_error": "Boom: no"},
                                        status="failed", attempts=10, created_at=now))
                await uow.commit()
        finally:
            await db.dispose()
    asyncio.run(seed())
    r = baton("schedule", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "3 pending, 1 overdue, 1 failing or failed" in out
    assert "(Asia/Shanghai)" in out
    lines = out.splitlines()
    due = [ln for ln in lines if ln.startswith("  ") and "OVERDUE" in ln]
    assert len(due) == 1 and "request_remind" in due[0] and "R-3 (#2)" in due[0]
    local_due = (now - timedelta(hours=1)).astimezone(
        ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
    assert local_due in due[0]
    assert any("grant_expire" in ln and "grant 5" in ln for ln in lines)
    assert out.index("R-3") < out.index("grant 5") < out.index("R-4")    # soonest first
    fail = out.split("failures:")[1]
    assert "transfer_verify R-9: failed, 10 attempt(s)" in fail and "Boom: no" in fail
    empty_env = db_env(tmp_path / "empty.db")
    assert baton("db", "upgrade", cwd=tmp_path, env=empty_env).returncode == 0
    empty = baton("schedule", cwd=tmp_path, env=empty_env)
    assert empty.returncode == 0 and "0 pending, 0 overdue" in empty.stdout
    assert "nothing scheduled" in empty.stdout and "failures:" not in empty.stdout


async def settled(app: BatonApp, clock: FakeClock, timeout: float = 20) -> None:
    """Wait until no reminder row is due now and the outbox has sent everything."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while await outbox_pending(app) or [
            d for d, _ in await pending_reminders(app) if d <= clock.now()]:
        assert loop.time() < end, "the due work and the outbox did not settle"
        await asyncio.sleep(0.05)


async def outbox_pending(app: BatonApp) -> int:
    async with app.db.uow() as uow:
        return int((await uow.session.execute(
            select(func.count()).select_from(OutboxMessage)
            .where(OutboxMessage.status == "pending"))).scalar_one())


def start_baton(cfg: Path, sim: Simulator, log: Path, **env_extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "DINGTALK_"))}
    env.update(DINGTALK_CLIENT_ID=sim.client_id, DINGTALK_CLIENT_SECRET=sim.client_secret,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               PYTHONPATH=str(ROOT), **env_extra)
    return subprocess.Popen([sys.executable, "-m", "bot.cli.main", "run", "--config", str(cfg)],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def test_a_crash_after_a_reminder_went_and_a_restart_send_one_catch_up_per_request(
        sim: Simulator, tmp_path: Path) -> None:
    """#15.1, as the reporter saw it: the real ``baton run``, three open requests, reminders
    every 2 s, no quiet hours. The process dies (SIGKILL) right after the first reminder went
    out, before the outbox marked it sent; it stays down for more than three periods and
    longer than the outbox lease, and starts again on the same store. Each request is named
    in exactly one reminder after the restart (the one sent before the crash is not sent
    again next to the catch-up)."""
    db = tmp_path / "baton.db"
    cfg = baton_config(tmp_path / "baton.yaml", sim_base_url=sim.base_url, corp_id=sim.corp_id,
                       db_url=f"sqlite+aiosqlite:///{db}", catalog=DEMO_CATALOG, extra={
        "policy": {"remind_every": "2s", "remind_max": "1h", "quiet_hours": None,
                   "approval_ttl": "1h", "escalate_after": "1h"},
        "scheduler": {"poll_interval": "1s"},
        "outbox": {"lease": "3s"}})
    # Each request is a card and a reply (sends 1-6); the 7th send is the first reminder.
    first = start_baton(cfg, sim, tmp_path / "first.log", BATON_TEST_CRASH_AT="send.before_mark:7")
    second: subprocess.Popen[bytes] | None = None
    try:
        sim.wait_for(lambda: [c for c in sim.connections() if c.live], timeout=30,
                     what="baton run connected")
        for n, (who, at) in enumerate([("@钱七 crm.export", "qianqi"),
                                       ("@钱七 finance.invoice", "qianqi"),
                                       ("@赵六 crm.export", "zhaoliu")], 1):
            sim.say("zhangsan", f" 授权 {who}", conversation_id=GROUP, at=(at,))
            sim.wait_for(lambda n=n: [m for m in sim.messages(GROUP) if f"R-{n}" in m.text]
                         and len(sim.cards()) == n, timeout=15, what=f"R-{n} opened")
        assert first.wait(timeout=30) == -signal.SIGKILL
        assert "CRASH POINT send.before_mark" in (tmp_path / "first.log").read_text()
        before = reminders(sim)
        assert before and sim.messages(GROUP)[-1] is before[-1]    # it died right after it
        # Down for more than three reminder periods (6 s) and the outbox lease (3 s): the
        # reminder sent and never marked is due to go again when Baton is back.
        time.sleep(7)
        second = start_baton(cfg, sim, tmp_path / "second.log")

        def caught_up() -> list[SentMessage] | None:
            msgs = reminders(sim)[len(before):]
            named = {i for m in msgs for i in IDS.findall(m.text)}
            return msgs if named == {"1", "2", "3"} else None
        sim.wait_for(caught_up, timeout=30, what="a catch-up naming every request")
        # Barrier: every outbox row sent or failed; no reminder due before the next one.
        deadline = time.monotonic() + 15
        while True:
            with sqlite3.connect(db) as conn:
                pending = conn.execute(
                    "SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
            if not pending:
                break
            assert time.monotonic() < deadline, "the outbox did not drain"
            time.sleep(0.05)
        # What went at the restart (the next reminders are 4 s and more after it).
        after = reminders(sim)[len(before):]
        counts = Counter(i for m in after if m.at < after[0].at + 2 for i in IDS.findall(m.text))
        assert counts == {"1": 1, "2": 1, "3": 1}, [m.text for m in after]
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        for name in ("first.log", "second.log"):
            if (tmp_path / name).exists():
                print(f"--- {name} ---\n" + (tmp_path / name).read_text(errors="replace")[-3000:])
