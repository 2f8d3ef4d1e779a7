"""Access review campaigns at the handler level (ported from the end-to-end suite, same
assertions): reminders waiting out quiet hours (also when run late), status without a
campaign and in English. The campaign through its deadline, and the cron plan made when
Baton starts, keep their runs in tests/e2e/test_review.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.core.clock import FakeClock
from storage.models import DueWork, OutboxMessage
from tests.handlers.conftest import Harness, MakeHarness, replies


async def one_to_one(h: Harness, user: str, contains: str) -> list[str]:
    return [t for t in replies(await h.sent_after(0), f"user:{user}") if contains in t]


async def setup_grants(h: Harness) -> None:
    # Items, by holder and name: 1 qianqi/analyst (wangwu), 2 qianqi/crm.customer.edit (lisi),
    # 3 zhaoliu/crm.report.view (lisi). Cards: lisi rva, wangwu rvb.
    await h.ask("lisi", "授权 @赵六 crm.report.view", "已授予", ("zhaoliu",))
    await h.ask("wangwu", "授权 @钱七 analyst", "已授予", ("qianqi",))
    await h.ask("lisi", "授权 @钱七 crm.customer.edit", "已授予", ("qianqi",))


async def review_started_at(make_harness: MakeHarness, start: datetime) -> Harness:
    """Baton on a FakeClock at ``start`` (quiet hours 22:00-08:00 Asia/Shanghai), the three
    grants of :func:`setup_grants`, and access review R-1 started by the owner."""
    h = await make_harness(clock=FakeClock(start),
                           policy={"quiet_hours": "22:00-08:00", "timezone": "Asia/Shanghai"})
    await setup_grants(h)
    await h.ask("zhangsan", "权限审核 开始", "R-1")
    return h


async def test_review_reminders_wait_out_quiet_hours(make_harness: MakeHarness) -> None:
    # Started at 23:00 in Asia/Shanghai: three days on falls in quiet hours (22:00-08:00).
    h = await review_started_at(make_harness, datetime(2026, 11, 2, 15, 0, tzinfo=UTC))
    clock = h.clock

    async def reminders() -> list[tuple[str, datetime]]:
        async with h.db.uow() as uow:
            rows = (await uow.session.execute(select(DueWork).where(
                DueWork.kind == "review_remind").order_by(DueWork.due_at))).scalars().all()
            return [(r.status, r.due_at) for r in rows]

    morning = datetime(2026, 11, 6, 0, 0, tzinfo=UTC)  # 08:00 local, the quiet hours' end
    assert await reminders() == [("pending", morning)]
    # Three days on, 23:00 local: nothing goes out.
    clock.advance(timedelta(days=3, seconds=1))
    await h.run_due()
    assert not await one_to_one(h, "lisi", "还有") and not await one_to_one(h, "wangwu", "还有")
    # At the end of the quiet hours it does, and the next one is three days on (08:00).
    clock.advance(morning + timedelta(seconds=1) - clock.now())
    await h.run_due()
    assert await one_to_one(h, "lisi", "还有 2 项"), "reminder to lisi"
    assert await one_to_one(h, "wangwu", "还有 1 项"), "reminder to wangwu"
    assert await reminders() == [("done", morning),
                                 ("pending", morning + timedelta(days=3, seconds=1))]


async def test_a_review_reminder_run_late_waits_out_quiet_hours(
        make_harness: MakeHarness) -> None:
    # Started at 10:00 local; the first reminder falls at 10:00 three days on, but Baton only
    # looks at 23:30 local (down, or behind): it goes at 08:00 the next morning.
    h = await review_started_at(make_harness, datetime(2026, 11, 2, 2, 0, tzinfo=UTC))
    clock = h.clock
    clock.advance(timedelta(days=3, hours=13, minutes=30))
    await h.run_due()
    async with h.db.uow() as uow:
        rows = (await uow.session.execute(select(DueWork).where(
            DueWork.kind == "review_remind", DueWork.status == "pending"))).scalars().all()
        assert [r.due_at for r in rows] == [datetime(2026, 11, 6, 0, 0, tzinfo=UTC)]
        queued = (await uow.session.execute(select(OutboxMessage))).scalars().all()
        assert not [m for m in queued if "还有" in str(m.payload.get("text", ""))]
    clock.advance(datetime(2026, 11, 6, 0, 0, 1, tzinfo=UTC) - clock.now())
    await h.run_due()
    assert await one_to_one(h, "lisi", "还有 2 项"), "reminder to lisi"


async def test_status_without_campaign_and_english(h: Harness) -> None:
    await h.ask("zhangsan", "review status", "No access review")
    await h.ask("zhangsan", "review start", "no live grants")
    await h.ask("wangwu", "review start", "Only the owner")
    await h.ask("zhangsan", "grant @Zhao crm.report.view", "", ("zhaoliu",))
    text = await h.ask("zhangsan", "review start", "Access review R-1 started")
    assert "1 grants" in text
    params = await h.card_status("baton-dingsandboxcorp-R1-rva", "pending")
    assert h.spaces["baton-dingsandboxcorp-R1-rva"] == ["dtv1.card//IM_ROBOT.zhangsan"]
    assert "Keep or remove" in params["markdown"]
