"""Reminders at the handler level (ported from the end-to-end suite, same assertions): on
time, moved out of quiet hours, escalated, merged per group; one-to-one to each decider
when there is no admin group; due before quiet hours, sent at their end. What survives a
stop, a restart and a crash, and ``baton schedule``, keep their runs in
tests/e2e/test_reminders.py."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from storage.models import DueWork, OutboxMessage
from tests.handlers.conftest import GROUP, T0, Harness, MakeHarness, replies

POLICY: dict[str, Any] = {
    "quiet_hours": "22:00-08:00", "timezone": "Asia/Shanghai", "remind_every": "4h",
    "remind_max": "24h", "escalate_after": "12h", "approval_ttl": "72h"}
IDS = re.compile(r"R-(\d+)")


@pytest.fixture
async def app(make_harness: MakeHarness) -> Harness:
    return await make_harness(policy=POLICY)


async def reminders(h: Harness, to: str = f"group:{GROUP}") -> list[str]:
    return [t for t in replies(await h.sent_after(0), to) if t.startswith(("提醒", "Reminder"))]


async def say(h: Harness, user: str, text: str, at: tuple[str, ...], expect: str) -> None:
    await h.ask(user, text, expect, at)


async def pending_reminders(h: Harness) -> list[tuple[datetime, dict[str, Any]]]:
    async with h.db.uow() as uow:
        rows = (await uow.session.execute(select(DueWork).where(
            DueWork.kind == "request_remind", DueWork.status == "pending")
            .order_by(DueWork.due_at, DueWork.id))).scalars()
        return [(r.due_at, dict(r.payload)) for r in rows]


async def reminder_at(h: Harness) -> list[list[str]]:
    """The at lists of the reminder replies Baton queued, oldest first."""
    async with h.db.uow() as uow:
        rows = (await uow.session.execute(select(OutboxMessage).where(
            OutboxMessage.kind == "reply").order_by(OutboxMessage.id))).scalars()
        return [list(r.payload.get("at", [])) for r in rows
                if str(r.payload.get("text", "")).startswith("提醒：")]


async def test_reminders_on_time_quiet_hours_escalation_and_merging(app: Harness) -> None:
    h, clock = app, app.clock
    # Two requests by the owner, both waiting (among others) for 李四, in one group.
    await say(h, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await say(h, "zhangsan", "授权 @钱七 crm.export", ("qianqi",), "R-2")
    assert [d for d, _ in await pending_reminders(h)] == [T0 + timedelta(hours=4)] * 2

    clock.advance(timedelta(hours=4) - timedelta(seconds=1))
    assert await h.due.run_once() == 0                  # not before its time
    clock.advance(timedelta(seconds=2))
    assert await h.due.run_once() == 2                  # 14:00 local: on time
    first = await reminders(h)
    assert len(first) == 1                                 # merged: one message ...
    assert set(IDS.findall(first[0])) == {"1", "2"}        # ... naming both requests
    # The mention is in the text and in what Baton asks DingTalk for.
    assert "@李四 (lisi)" in first[0] and "@王五 (wangwu)" in first[0]
    assert (await reminder_at(h))[0] == ["lisi", "wangwu"]
    assert "张三" not in first[0]                          # not yet escalated
    assert "升级" not in first[0]

    # The next ones (8h later) would fall at 22:00 local: moved to 08:00 the next day.
    nxt = T0 + timedelta(hours=22)
    assert [d for d, _ in await pending_reminders(h)] == [nxt, nxt]
    clock.advance(timedelta(hours=8))                      # 22:00 local
    assert await h.due.run_once() == 0
    clock.advance(nxt - clock.now())
    assert await h.due.run_once() >= 1
    msgs = await reminders(h)
    assert len(msgs) == 2, "the second reminder"
    second = msgs[1]
    assert set(IDS.findall(second.split("升级")[0])) == {"1", "2"}
    # Open 22h > escalate_after: the owner (no decider of either) is @-mentioned.
    assert (await reminder_at(h))[1] == ["lisi", "wangwu", "zhangsan"]
    assert "升级提醒" in second and "@张三 (zhangsan)" in second
    assert await h.due.run_once() == 0
    assert len(await reminders(h)) == 2                    # each went out once
    # Backoff continues per request: 16h later is 00:00 local -> 08:00 the day after.
    assert [d for d, _ in await pending_reminders(h)] == [T0 + timedelta(hours=46)] * 2


async def test_a_request_asked_one_to_one_reminds_each_decider_one_to_one(app: Harness) -> None:
    """No admin group: the card went to each approver one-to-one, and so does the reminder
    (not to the requester's own chat, where no decider would see it)."""
    h = app
    await h.ask("lisi", "授权 uid:qianqi crm.export", "已发起审批", conversation="")
    n = len(await reminders(h, "user:lisi"))
    h.clock.advance(timedelta(hours=4, seconds=1))
    assert await h.due.run_once() == 1
    for user in ("wangwu", "zhangsan"):
        got = await reminders(h, f"user:{user}")
        assert len(got) == 1 and "R-1" in got[0], f"{user} reminded"
    assert len(await reminders(h, "user:lisi")) == n == 0


async def test_a_reminder_due_before_quiet_hours_waits_for_their_end(app: Harness) -> None:
    """Due at 14:00 local but Baton was down until 23:30: not sent then, but at 08:00."""
    h, clock = app, app.clock
    await say(h, "zhangsan", "授权 @钱七 crm.export", ("qianqi",), "R-1")
    clock.advance(timedelta(hours=13, minutes=30))            # 23:30 local
    await h.due.run_once()
    morning = T0 + timedelta(hours=22)                         # 08:00 local, next day
    assert [d for d, _ in await pending_reminders(h)] == [morning]
    assert await reminder_at(h) == []                          # nothing queued to send
    clock.advance(morning - clock.now())
    assert await h.due.run_once() >= 1
    got = await reminders(h)
    assert len(got) == 1 and "R-1" in got[0], "the reminder at 08:00"
    assert len(await reminder_at(h)) == 1
