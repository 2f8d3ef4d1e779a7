"""Access review campaigns (定期审核) end to end: cards one-to-one, keep / remove, a forged
click, status, reminders and the deadline under both ``review.unreviewed`` policies; the
cron plan made when Baton starts (and restarts). Reminders in quiet hours and status are
tested at the handler level, tests/handlers/test_review.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.app import BatonApp
from bot.cli.sandbox import sim_settings
from bot.core.clock import FakeClock
from dingtalk_sim import Simulator
from storage.models import AuditEntry, DueWork, OutboxMessage
from tests.e2e.conftest import card_status, click
from tests.e2e.helpers import say
from tests.support import audit_actions, grants, verify_chain

pytestmark = pytest.mark.e2e

LISI_CARD = "baton-dingsandboxcorp-R1-rva"
WANGWU_CARD = "baton-dingsandboxcorp-R1-rvb"


def one_to_one(sim: Simulator, user: str, contains: str) -> list[str]:
    return [m.text for m in sim.messages() if user in m.user_ids and contains in m.text]


async def setup_grants(sim: Simulator) -> None:
    # Items, by holder and name: 1 qianqi/analyst (wangwu), 2 qianqi/crm.customer.edit (lisi),
    # 3 zhaoliu/crm.report.view (lisi). Cards: lisi rva, wangwu rvb.
    await say(sim, "lisi", "授权 @赵六 crm.report.view", "已授予", ("zhaoliu",))
    await say(sim, "wangwu", "授权 @钱七 analyst", "已授予", ("qianqi",))
    await say(sim, "lisi", "授权 @钱七 crm.customer.edit", "已授予", ("qianqi",))


@pytest.mark.parametrize("policy", ["keep", "revoke"])
async def test_campaign_through_the_deadline(sim: Simulator, db_url: str, policy: str) -> None:
    # 10:00 in Asia/Shanghai: three days on is outside the default quiet hours.
    clock = FakeClock(datetime(2026, 11, 2, 2, 0, tzinfo=UTC))
    settings = sim_settings(sim, db_url, review={"unreviewed": policy},
                            org={"alert_conversation": "cidALERTS"})
    async with BatonApp(settings, clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
        await setup_grants(sim)
        # Owner only.
        await say(sim, "lisi", "权限审核 开始", "只有主管理员")
        text = await say(sim, "zhangsan", "权限审核 开始", "R-1")
        assert "3 项授权" in text and "2 位管理员" in text
        await say(sim, "zhangsan", "权限审核 开始", "已有进行中的权限审核 R-1")
        # One card per responsible admin, one-to-one.
        params = await card_status(sim, LISI_CARD, "pending")
        assert sim.cards()[LISI_CARD].spaces == ["dtv1.card//IM_ROBOT.lisi"]
        assert "钱七 (qianqi)" in params["markdown"] and "赵六 (zhaoliu)" in params["markdown"]
        assert "analyst" not in params["markdown"] and params["progress"] == "已审核 0/2"
        params = await card_status(sim, WANGWU_CARD, "pending")
        assert sim.cards()[WANGWU_CARD].spaces == ["dtv1.card//IM_ROBOT.wangwu"]
        assert "analyst" in params["markdown"]
        # A forged click: wangwu on lisi's item, on either card; nothing changes.
        notice = await click(sim, "wangwu", LISI_CARD, "keep", {"item": "2"})
        assert "只能由负责的管理员审核" in notice and "李四 (lisi)" in notice
        notice = await click(sim, "wangwu", WANGWU_CARD, "remove", {"item": "3"})
        assert "只能由负责的管理员审核" in notice
        assert "crm.report.view" in await grants(app, "zhaoliu")
        # lisi keeps item 2, wangwu removes item 1 (the grant goes at once).
        assert "已保留 1 项" in await click(sim, "lisi", LISI_CARD, "keep", {"item": "2"})
        params = await card_status(sim, LISI_CARD, "pending")
        assert "已保留（李四 (lisi)" in params["markdown"] and params["progress"] == "已审核 1/2"
        assert "已移除" in await click(sim, "wangwu", WANGWU_CARD, "remove", {"item": "1"})
        params = await card_status(sim, WANGWU_CARD, "done")
        assert "已移除（王五 (wangwu)" in params["markdown"]
        assert set(await grants(app, "qianqi")) == {"crm.customer.edit"}
        await sim.until(lambda: one_to_one(sim, "qianqi", "被移除"), what="holder told")
        # A second decision changes nothing and says who decided.
        notice = await click(sim, "lisi", LISI_CARD, "remove", {"item": "2"})
        assert "第 2 项已处理" in notice and "李四 (lisi)" in notice
        assert "crm.customer.edit" in await grants(app, "qianqi")
        # Progress for the owner.
        text = await say(sim, "zhangsan", "权限审核 状态", "R-1")
        assert "李四 (lisi)：已审核 1/2" in text and "王五 (wangwu)：已审核 1/1" in text
        assert "保留 1 · 移除 1 · 待审核 1" in text and "截止" in text
        # A reminder after 3 days, to lisi only.
        clock.advance(timedelta(days=3, seconds=1))
        await app.due.run_once()
        await sim.until(lambda: one_to_one(sim, "lisi", "还有 1 项"), what="reminder to lisi")
        assert not one_to_one(sim, "wangwu", "还有")
        # The deadline.
        clock.advance(timedelta(days=11))
        await app.due.run_once()
        summary = await sim.until(lambda: one_to_one(sim, "zhangsan", "已结束"),
                                  what="summary to the owner")
        params = await card_status(sim, LISI_CARD, "applied")
        held = await grants(app, "zhaoliu")
        actions = [a for a, _, _ in await audit_actions(app)]
        if policy == "keep":
            assert "crm.report.view" in held
            assert "按策略保留" in params["markdown"]
            assert "未审核保留 1" in summary[0]
            await sim.until(lambda: one_to_one(sim, "zhangsan", "无人审核"),
                            what="unreviewed notice to the owner")
            async with app.db.uow() as uow:
                alerts = (await uow.session.execute(select(OutboxMessage).where(
                    OutboxMessage.conversation_key == "group:cidALERTS"))).scalars().all()
                assert any("权限审核 R-1" in a.payload["text"] for a in alerts)
            assert "review.unreviewed_keep" in actions
        else:
            assert held == {}
            assert "按策略撤销" in params["markdown"]
            assert "未审核撤销 1" in summary[0]
            assert "review.unreviewed_revoke" in actions
        assert {"review.started", "review.keep", "review.remove", "review.click_refused",
                "review.applied"} <= set(actions)
        async with app.db.uow() as uow:
            removed = (await uow.session.execute(select(AuditEntry).where(
                AuditEntry.action == "review.remove"))).scalar_one()
            assert removed.before == {"name": "analyst", "expires_at": None,
                                      "granted_by": "wangwu"}
            assert removed.target_id == "qianqi" and removed.actor_id == "wangwu"
        # Closed: a late click changes nothing.
        assert "已结束" in await click(sim, "lisi", LISI_CARD, "keep", {"item": "3"})
        await say(sim, "zhangsan", "权限审核 状态", "已结束")
        await verify_chain(app)


async def test_keep_all_and_cron_planned_at_start(sim: Simulator, db_url: str) -> None:
    clock = FakeClock(datetime(2026, 3, 31, 0, 0, tzinfo=UTC))
    settings = sim_settings(sim, db_url)
    async with BatonApp(settings, clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
        async with app.db.uow() as uow:
            rows = (await uow.session.execute(select(DueWork).where(
                DueWork.kind == "review_start"))).scalars().all()
            assert [r.due_at for r in rows] == [datetime(2026, 4, 1, 1, 0, tzinfo=UTC)]
        await setup_grants(sim)
        clock.advance(timedelta(days=1, hours=1))
        await app.due.run_once()
        await sim.until(lambda: one_to_one(sim, "zhangsan", "已发起权限审核 R-1"),
                        what="the owner told of the scheduled review")
        await card_status(sim, LISI_CARD, "pending")
        assert "已保留 2 项" in await click(sim, "lisi", LISI_CARD, "keep_all")
        params = await card_status(sim, LISI_CARD, "done")
        assert params["progress"] == "已审核 2/2"
        async with app.db.uow() as uow:
            rows = (await uow.session.execute(select(DueWork).where(
                DueWork.kind == "review_start").order_by(DueWork.due_at))).scalars().all()
            assert [(r.status, r.due_at) for r in rows] == [
                ("done", datetime(2026, 4, 1, 1, 0, tzinfo=UTC)),
                ("pending", datetime(2026, 7, 1, 1, 0, tzinfo=UTC))]


async def test_a_changed_cron_replaces_the_planned_review(sim: Simulator, db_url: str) -> None:
    """An operator moves review.cron: on restart the fire planned by the old one is cancelled,
    not left to start a review nobody asked for."""
    clock = FakeClock(datetime(2026, 3, 31, 0, 0, tzinfo=UTC))
    async with BatonApp(sim_settings(sim, db_url), clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
    settings = sim_settings(sim, db_url, review={"cron": "0 9 1 6 *"})
    async with BatonApp(settings, clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
        async with app.db.uow() as uow:
            rows = (await uow.session.execute(select(DueWork).where(
                DueWork.kind == "review_start").order_by(DueWork.due_at))).scalars().all()
            assert [(r.status, r.due_at) for r in rows] == [
                ("cancelled", datetime(2026, 4, 1, 1, 0, tzinfo=UTC)),
                ("pending", datetime(2026, 6, 1, 1, 0, tzinfo=UTC))]


async def test_a_fire_missed_while_down_still_runs_after_a_restart(sim: Simulator,
                                                                   db_url: str) -> None:
    """Down over the 1 April fire, up at 09:30: the review still starts (it is not taken
    for a fire of an old review.cron)."""
    clock = FakeClock(datetime(2026, 3, 31, 0, 0, tzinfo=UTC))
    async with BatonApp(sim_settings(sim, db_url), clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
        await setup_grants(sim)
    clock.advance(timedelta(days=1, hours=1, minutes=30))      # 1 April 09:30 local
    async with BatonApp(sim_settings(sim, db_url), clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
        await app.due.run_once()
        await sim.until(lambda: one_to_one(sim, "zhangsan", "已发起权限审核 R-1"),
                        what="the missed review started")
