"""Owner transfer (主管理员转让) end to end: the real bot, the SDK, the simulator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import BatonApp
from bot.cli.sandbox import sim_settings
from bot.config import Settings
from bot.core.clock import FakeClock
from dingtalk_sim import Simulator
from storage.models import AuditEntry, DueWork, Grant, Request, Snapshot, Vote
from tests.e2e.conftest import CARD, GROUP, card_status, click, reply_to

pytestmark = pytest.mark.e2e

async def start(sim: Simulator, user: str, text: str, at: tuple[str, ...], expect: str,
                conversation: str = GROUP) -> str:
    n = len(sim.messages(conversation))
    sim.say(user, f" {text}", conversation_id=conversation, at=at)
    return await reply_to(sim, conversation, expect, after=n)


async def owner_of(app: BatonApp) -> str:
    async with app.db.uow() as uow:
        o = await uow.members.owner_of(app.settings.org.corp_id)
        return o.user_id if o else ""


async def count(app: BatonApp, q: Any) -> int:
    async with app.db.uow() as uow:
        return int((await uow.session.execute(q)).scalar_one())


async def test_owner_starts_target_accepts_applied_with_snapshot_and_duties(
        sim: Simulator, bot: BatonApp) -> None:
    text = await start(sim, "zhangsan", "转让主管理员 @李四 工作交接", ("lisi",), "R-1")
    assert "李四" in text
    card = CARD.format(1)
    params = await card_status(sim, card, "pending")
    assert params["progress"].startswith("1/2") and "张三" in params["progress"]
    assert params["request_id"] == "R-1" and "工作交接" in params["markdown"]
    assert sim.cards()[card].spaces == [f"dtv1.card//IM_GROUP.{GROUP}"]
    notice = await click(sim, "lisi", card, "accept")
    assert "接受" in notice
    params = await card_status(sim, card, "applied")
    assert params["progress"].startswith("2/2") and "李四" in params["decided"]
    assert await owner_of(bot) == "lisi"
    async with bot.db.uow() as uow:
        prev = await uow.members.get(bot.settings.org.corp_id, "zhangsan")
        assert prev is not None and prev.level == "admin"
        assert await uow.audit.verify(bot.settings.org.corp_id) is None
    assert await count(bot, select(func.count()).select_from(Snapshot)) == 1
    await reply_to(sim, GROUP, "R-1 已完成")
    await sim.until(lambda: [m for m in sim.messages() if "lisi" in m.user_ids
                             and "你现在是主管理员" in m.text], what="duties to lisi 1:1")
    assert not [m for m in sim.messages(GROUP) if "AppSecret" in m.text]
    # The previous owner gets the console steps with a Done button on a one-to-one card.
    console = await sim.until(lambda: sim.cards().get(card + "-console"), what="console card")
    assert console.spaces == ["dtv1.card//IM_ROBOT.zhangsan"]


async def test_admin_with_owner_transfer_starts_owner_approves_target_accepts(
        sim: Simulator, bot: BatonApp) -> None:
    now = datetime.now(UTC)
    async with bot.db.uow() as uow:
        uow.session.add(Grant(corp_id=bot.settings.org.corp_id, user_id="wangwu",
                              name="owner.transfer", granted_by="zhangsan", created_at=now))
        await uow.commit()
    await start(sim, "wangwu", "transfer-owner @Li handover", ("lisi",), "R-1")
    card = CARD.format(1)
    await card_status(sim, card, "pending")
    # The requester may not approve their own request.
    assert "own request" in await click(sim, "wangwu", card, "approve")
    assert "you accepted" in await click(sim, "lisi", card, "accept")
    params = await card_status(sim, card, "pending")
    assert params["progress"].startswith("1/2")
    assert await owner_of(bot) == "zhangsan"
    await click(sim, "zhangsan", card, "approve")
    await card_status(sim, card, "applied")
    assert await owner_of(bot) == "lisi"


@pytest.mark.parametrize(("user", "text", "at", "expect"), [
    ("zhaoliu", "转让主管理员 @李四", ("lisi",), "只有主管理员"),           # no authority
    ("lisi", "转让主管理员 @王五", ("wangwu",), "只有主管理员"),            # admin without owner.transfer
    ("zhangsan", "转让主管理员 uid:nobody", (), "通讯录里没有"),            # not in the directory
    ("zhangsan", "转让主管理员 @孙八", ("sunba",), "孙八 (sunba) 尚未激活"),   # inactive
    ("zhangsan", "转让主管理员 @张三", ("zhangsan",), "张三 (zhangsan) 已经是主管理员"),
    ("zhangsan", "转让主管理员 @赵六", ("zhaoliu",), "赵六 (zhaoliu) 不是管理员"),  # not eligible
    ("zhangsan", "transfer-owner @Zhao", ("zhaoliu",), "only a current admin"),
])
async def test_each_prerequisite_has_its_own_message(sim: Simulator, bot: BatonApp, user: str,
                                                     text: str, at: tuple[str, ...],
                                                     expect: str) -> None:
    await start(sim, user, text, at, expect)
    assert await count(bot, select(func.count()).select_from(Request)) == 0
    async with bot.db.uow() as uow:
        refused = await uow.audit.recent(bot.settings.org.corp_id, 5)
        assert refused[0].action == "owner_transfer.refused" and refused[0].result == "refused"


async def test_second_open_transfer_refused(sim: Simulator, bot: BatonApp) -> None:
    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await start(sim, "zhangsan", "转让主管理员 @王五", ("wangwu",), "进行中的主管理员转让 R-1")
    assert await count(bot, select(func.count()).select_from(Request)) == 1


async def test_forged_click_refused_and_audited(sim: Simulator, bot: BatonApp) -> None:
    await start(sim, "wangwu", "转让主管理员 @李四", ("lisi",), "只有主管理员")  # refused: no grant
    await start(sim, "zhangsan", "transfer-owner @Li", ("lisi",), "R-1")
    card = CARD.format(1)
    forged = {"request_id": "R-1", "userId": "lisi", "user": "lisi", "action": "accept"}
    notice = await click(sim, "zhaoliu", card, "accept", forged)
    assert "Only 李四 (lisi)" in notice or "只有 李四 (lisi)" in notice
    await card_status(sim, card, "pending")
    assert await owner_of(bot) == "zhangsan"
    async with bot.db.uow() as uow:
        e = (await uow.audit.recent(bot.settings.org.corp_id, 3))[0]
        assert (e.action, e.actor_id, e.result) == (
            "owner_transfer.click_refused", "zhaoliu", "refused")
        assert e.after is not None and e.after["claimed_params"]["userId"] == "lisi"


async def test_twenty_concurrent_clicks_apply_once(sim: Simulator, bot: BatonApp) -> None:
    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    card = CARD.format(1)
    await card_status(sim, card, "pending")
    deliveries = [sim.click("lisi", card, "accept", {"request_id": "R-1"}) for _ in range(20)]
    await sim.until(lambda: all(sim.acks(d.message_id) for d in deliveries), timeout=20,
                    what="all 20 acks")
    await card_status(sim, card, "applied")
    assert await count(bot, select(func.count()).select_from(Vote)) == 1
    assert await count(bot, select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "owner_transfer.applied")) == 1
    assert await owner_of(bot) == "lisi"
    notices = {sim.cards()[card].private["lisi"]["notice"]}
    assert notices  # the last one a repeat click got: already decided / voted


async def test_click_after_restart_still_works(sim: Simulator, settings: Settings) -> None:
    async with BatonApp(settings) as app:
        await app.wait_connected()
        await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    async with BatonApp(settings) as app:
        await app.wait_connected()
        await click(sim, "lisi", CARD.format(1), "accept")
        await card_status(sim, CARD.format(1), "applied")
        assert await owner_of(app) == "lisi"


async def test_redelivered_command_creates_one_request(sim: Simulator, bot: BatonApp) -> None:
    d = sim.say("zhangsan", " 转让主管理员 @李四", conversation_id=GROUP, at=("lisi",))
    sim.redeliver(d)
    sim.redeliver(d, new_message_id=True)
    await sim.until(lambda: len([a for a in sim.acks() if a.message_id == d.message_id]) >= 2,
                    what="acks")
    await reply_to(sim, GROUP, "R-1")
    await start(sim, "zhaoliu", "help", (), "transfer-owner")  # barrier
    assert await count(bot, select(func.count()).select_from(Request)) == 1
    assert len([m for m in sim.messages(GROUP) if "R-1" in m.text and "创建" in m.text]) == 1


async def test_cancel_by_requester_and_refused_for_others(sim: Simulator, bot: BatonApp) -> None:
    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await start(sim, "zhaoliu", "取消 R-1", (), "只有申请人或主管理员")
    await start(sim, "zhangsan", "cancel R-1", (), "R-1 已取消，未做任何更改")
    await card_status(sim, CARD.format(1), "cancelled")
    assert "已取消" in await click(sim, "lisi", CARD.format(1), "accept")
    assert await owner_of(bot) == "zhangsan"
    await start(sim, "zhangsan", "cancel R-1", (), "already closed")


async def test_late_click_names_who_decided_and_when(sim: Simulator, bot: BatonApp) -> None:
    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await click(sim, "lisi", CARD.format(1), "decline")
    await card_status(sim, CARD.format(1), "rejected")
    notice = await click(sim, "zhangsan", CARD.format(1), "approve")
    assert "已由 李四 (lisi) 于" in notice
    assert await owner_of(bot) == "zhangsan"
    await reply_to(sim, GROUP, "被拒绝")


async def test_failure_while_applying_leaves_old_owner(sim: Simulator, bot: BatonApp) -> None:
    bot.faults.arm("owner_transfer.apply")
    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await click(sim, "lisi", CARD.format(1), "accept")
    await card_status(sim, CARD.format(1), "failed")
    assert await owner_of(bot) == "zhangsan"
    async with bot.db.uow() as uow:
        lisi = await uow.members.get(bot.settings.org.corp_id, "lisi")
        assert lisi is not None and lisi.level == "admin"
    assert await count(bot, select(func.count()).select_from(Snapshot)) == 0
    await reply_to(sim, GROUP, "执行失败")
    await sim.until(lambda: [m for m in sim.messages() if "zhangsan" in m.user_ids
                             and "执行失败" in m.text], what="the owner told 1:1")


async def test_asked_one_to_one_the_target_gets_the_card_one_to_one(
        sim: Simulator, bot: BatonApp) -> None:
    """No admin group: the owner's transfer asked in the robot chat reaches the target in
    theirs; the target accepts there; both cards show the outcome."""
    n = len(sim.messages("cidOTOzhangsan"))
    sim.say("zhangsan", "转让主管理员 uid:lisi")                    # one-to-one with Baton
    await reply_to(sim, "cidOTOzhangsan", "R-1", after=n)
    card, copy = CARD.format(1), CARD.format(1) + "-dma"
    await card_status(sim, copy, "pending")
    assert sim.cards()[copy].spaces == ["dtv1.card//IM_ROBOT.lisi"]
    await click(sim, "lisi", copy, "accept")
    await card_status(sim, card, "applied")
    await card_status(sim, copy, "applied")
    assert await owner_of(bot) == "lisi"


async def test_target_no_longer_eligible_when_it_applies(sim: Simulator, bot: BatonApp) -> None:
    """Prerequisites are checked again when the request applies: lisi, no longer an admin
    by the time she accepts, does not become owner, and everyone is told why."""
    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await start(sim, "zhangsan", "移除管理员 @李四", ("lisi",), "已移除")
    await click(sim, "lisi", CARD.format(1), "accept")
    await card_status(sim, CARD.format(1), "failed")
    assert await owner_of(bot) == "zhangsan"
    async with bot.db.uow() as uow:
        lisi = await uow.members.get(bot.settings.org.corp_id, "lisi")
        assert lisi is not None and lisi.level == "member"
        req = await uow.requests.find(1)
        assert req is not None and req.payload["error"] == "target_not_eligible"
    assert await count(bot, select(func.count()).select_from(Snapshot)) == 0
    text = await reply_to(sim, GROUP, "未执行")
    assert "只有现任子管理员可以成为主管理员" in text and "李四" in text


async def test_expiry_with_an_injected_clock(sim: Simulator, db_url: str) -> None:
    clock = FakeClock(datetime.now(UTC))
    # The wall clock starts this test: no quiet hours, so the 4h reminder is never moved.
    settings = sim_settings(sim, db_url, policy={"approval_ttl": timedelta(hours=24),
                                                 "quiet_hours": None})
    async with BatonApp(settings, clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
        await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
        params = await card_status(sim, CARD.format(1), "pending")
        assert params["expires"]
        clock.advance(timedelta(hours=4, seconds=1))
        await app.due.run_once()   # the reminder to the missing decider
        await reply_to(sim, GROUP, "@李四 (lisi)")
        clock.advance(timedelta(hours=20))
        await app.due.run_once()
        await card_status(sim, CARD.format(1), "expired")
        notice = await click(sim, "lisi", CARD.format(1), "accept")
        assert "过期" in notice
        from bot.core.clock import local
        assert f"已于 {local(clock.now(), 'Asia/Shanghai', '%m-%d %H:%M')} 结束" in notice
        assert await owner_of(app) == "zhangsan"


async def test_dingtalk_verification_after_console_step(sim: Simulator, bot: BatonApp) -> None:
    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await click(sim, "lisi", CARD.format(1), "accept")
    console = CARD.format(1) + "-console"
    await sim.until(lambda: sim.cards().get(console), what="console card")
    assert "只有" in await click(sim, "lisi", console, "done")
    sim.console_transfer_main_admin("zhangsan", "lisi")
    await click(sim, "zhangsan", console, "done")
    await reply_to(sim, GROUP, "钉钉已显示")


async def test_done_pressed_too_early_leaves_the_button_to_press_again(
        sim: Simulator, bot: BatonApp) -> None:
    """The previous owner presses Done before finishing the console step: DingTalk does not
    agree yet, so the card keeps its button (it showed 'done' with no button left, and only
    the backoff's next check could end it). Pressed again after the change, it settles."""
    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await click(sim, "lisi", CARD.format(1), "accept")
    console = CARD.format(1) + "-console"
    await card_status(sim, console, "pending")
    assert "核实" in await click(sim, "zhangsan", console, "done")
    await sim.until(lambda: any("钉钉仍未显示" in m.text
                                for m in sim.messages("cidOTOzhangsan")),
                    what="DingTalk does not show it yet")
    assert sim.cards()[console].params["status"] == "pending"
    sim.console_transfer_main_admin("zhangsan", "lisi")
    await click(sim, "zhangsan", console, "done")
    await card_status(sim, console, "done")
    await reply_to(sim, GROUP, "钉钉已显示")


@contextlib.asynccontextmanager
async def applied_transfer(sim: Simulator, db_url: str, **sections: dict[str, Any],
                           ) -> AsyncIterator[tuple[BatonApp, FakeClock]]:
    """Baton on a FakeClock (no quiet hours), zhangsan's transfer to lisi accepted: APPLIED."""
    clock = FakeClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    settings = sim_settings(sim, db_url, policy={"quiet_hours": None}, **sections)
    async with BatonApp(settings, clock=clock, run_scheduler=False) as app:
        await app.wait_connected()
        await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
        await click(sim, "lisi", CARD.format(1), "accept")
        await card_status(sim, CARD.format(1), "applied")
        yield app, clock


async def test_verification_outlives_a_failed_read_and_closes_the_console_card(
        sim: Simulator, db_url: str) -> None:
    """DingTalk's admin list unreadable for a while (503): verification is tried again at the
    next backoff step, without reminding anyone of a step they may have done. Once DingTalk
    agrees, the console card's button is retired, though nobody clicked it."""
    async with applied_transfer(sim, db_url) as (app, clock):
        console = CARD.format(1) + "-console"
        await card_status(sim, console, "pending")

        async def verify_rows() -> list[tuple[str, int]]:
            async with app.db.uow() as uow:
                rows = (await uow.session.execute(select(DueWork).where(
                    DueWork.kind == "transfer_verify").order_by(DueWork.id))).scalars().all()
                return [(r.status, int(r.payload["n"])) for r in rows]

        sim.fail_next("/topapi/user/listadmin", 503, count=100)
        clock.advance(timedelta(minutes=10, seconds=1))
        await app.due.run_once()
        assert await verify_rows() == [("done", 0), ("pending", 1)]
        assert not [m for m in sim.messages("cidOTOzhangsan") if "仍未显示" in m.text]
        sim.clear_failures()
        sim.console_transfer_main_admin("zhangsan", "lisi")
        clock.advance(timedelta(minutes=30))
        await app.due.run_once()
        await reply_to(sim, GROUP, "钉钉已显示")
        await card_status(sim, console, "done")
        assert await verify_rows() == [("done", 0), ("done", 1)]


async def test_verification_ends_audited_where_the_admin_list_is_forbidden(
        sim: Simulator, db_url: str) -> None:
    async with applied_transfer(sim, db_url) as (app, clock):
        sim.fail_next("/topapi/user/listadmin", 403, code="60011", count=5)
        clock.advance(timedelta(minutes=10, seconds=1))
        await app.due.run_once()
        async with app.db.uow() as uow:
            pending = (await uow.session.execute(select(func.count()).select_from(DueWork).where(
                DueWork.kind == "transfer_verify", DueWork.status == "pending"))).scalar_one()
            assert pending == 0
            entry = (await uow.session.execute(select(AuditEntry).where(
                AuditEntry.action == "owner_transfer.dingtalk_unverifiable"))).scalar_one()
            assert "PermissionDenied" in entry.after["why"]


@pytest.mark.parametrize("api_allowed", [True, False])
async def test_exclusive_accounts_change_through_the_api_or_fall_back_to_the_console(
        db_url: str, api_allowed: bool) -> None:
    """dingtalk.exclusive_accounts: Baton changes DingTalk's main administrator itself; where
    DingTalk refuses (the app lacks the permission: 403), the previous owner gets the
    console steps instead, and the refusal is audited."""
    from bot.cli.sandbox import demo_simulator

    sim = demo_simulator(exclusive_accounts=api_allowed)
    sim.start()
    try:
        async with applied_transfer(sim, db_url, dingtalk={"exclusive_accounts": True}) \
                as (app, _clock):
            await app.due.run_once()              # the change
            await app.due.run_once()              # the check it schedules at once
            console = CARD.format(1) + "-console"
            async with app.db.uow() as uow:
                actions = [a.action for a in (await uow.session.execute(
                    select(AuditEntry).order_by(AuditEntry.seq))).scalars()]
            if api_allowed:
                assert sim.user("lisi").admin_level == 1
                assert "owner_transfer.dingtalk_changed" in actions
                await reply_to(sim, GROUP, "钉钉已显示")
                assert console not in sim.cards()
            else:
                assert sim.user("zhangsan").admin_level == 1      # DingTalk unchanged
                assert "owner_transfer.dingtalk_change_refused" in actions
                await card_status(sim, console, "pending")
                assert sim.cards()[console].spaces == ["dtv1.card//IM_ROBOT.zhangsan"]
    finally:
        sim.stop()


async def test_pending_lists_what_i_decide_and_what_i_asked(sim: Simulator, bot: BatonApp) -> None:
    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    text = await start(sim, "lisi", "待审批", (), "R-1")
    assert "待你处理" in text
    text = await start(sim, "zhangsan", "pending", (), "R-1")
    assert "you asked" in text
    await start(sim, "zhaoliu", "pending", (), "There are no open requests")


async def test_backup_list_and_show_after_a_transfer(sim: Simulator, bot: BatonApp,
                                                     db_url: str) -> None:
    import asyncio
    import json
    import os
    import sys

    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await click(sim, "lisi", CARD.format(1), "accept")
    await card_status(sim, CARD.format(1), "applied")
    env = {**os.environ, "BATON_DATABASE__URL": db_url, "BATON_ORG__CORP_ID": sim.corp_id}

    async def baton(*args: str) -> tuple[int, str]:
        # Async, so the bot on this loop keeps running while the CLI reads the store.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli.main", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode()

    rc, listed = await baton("backup", "list")
    assert rc == 0 and "owner_transfer" in listed
    assert "R-1" in listed and "owner=zhangsan" in listed
    snap_id = listed.split("\t", 1)[0].strip()
    shown = json.loads((await baton("backup", "show", snap_id))[1])
    levels = {m["user_id"]: m["level"] for m in shown["members"]}
    assert levels["zhangsan"] == "owner" and levels["lisi"] == "admin"
    assert (await baton("backup", "show", "999"))[0] == 1
