"""Owner transfer (主管理员转让) at the handler level (ported from the end-to-end suite, same
assertions): who may start it, each prerequisite's message, forged and late clicks,
cancelling, failing while applying, expiry on the injected clock, DingTalk's verification
after the console step and the exclusive-account API. The wire path keeps its runs in
tests/e2e/test_transfer.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.core.clock import local
from bot.transport.openapi import PermissionDenied, ServerError
from storage.models import AuditEntry, DueWork, Grant, Request, Snapshot
from tests.handlers.conftest import CARD, GROUP, FakeDingTalk, Harness, MakeHarness, replies
from tests.support import HasStore


async def start(h: Harness, user: str, text: str, at: tuple[str, ...], expect: str,
                conversation: str = GROUP) -> str:
    return await h.ask(user, text, expect, at, conversation=conversation)


async def owner_of(app: HasStore) -> str:
    async with app.db.uow() as uow:
        o = await uow.members.owner_of(app.settings.org.corp_id)
        return o.user_id if o else ""


async def count(app: HasStore, q: Any) -> int:
    async with app.db.uow() as uow:
        return int((await uow.session.execute(q)).scalar_one())


async def applied_transfer(make_harness: MakeHarness, fake: FakeDingTalk | None = None,
                           **sections: dict[str, Any]) -> Harness:
    """Baton on a FakeClock (no quiet hours), zhangsan's transfer to lisi accepted: APPLIED."""
    h = await make_harness(fake=fake, **sections)
    await start(h, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await h.press("lisi", CARD.format(1), "accept")
    await h.card_status(CARD.format(1), "applied")
    return h


async def test_admin_with_owner_transfer_starts_owner_approves_target_accepts(
        h: Harness) -> None:
    now = datetime.now(UTC)
    async with h.db.uow() as uow:
        uow.session.add(Grant(corp_id=h.settings.org.corp_id, user_id="wangwu",
                              name="owner.transfer", granted_by="zhangsan", created_at=now))
        await uow.commit()
    await start(h, "wangwu", "transfer-owner @Li handover", ("lisi",), "R-1")
    card = CARD.format(1)
    await h.card_status(card, "pending")
    # The requester may not approve their own request.
    assert "own request" in await h.press("wangwu", card, "approve")
    assert "you accepted" in await h.press("lisi", card, "accept")
    params = await h.card_status(card, "pending")
    assert params["progress"].startswith("1/2")
    assert await owner_of(h) == "zhangsan"
    await h.press("zhangsan", card, "approve")
    await h.card_status(card, "applied")
    assert await owner_of(h) == "lisi"


@pytest.mark.parametrize(("user", "text", "at", "expect"), [
    ("zhaoliu", "转让主管理员 @李四", ("lisi",), "只有主管理员"),           # no authority
    ("lisi", "转让主管理员 @王五", ("wangwu",), "只有主管理员"),            # admin without owner.transfer
    ("zhangsan", "转让主管理员 uid:nobody", (), "通讯录里没有"),            # not in the directory
    ("zhangsan", "转让主管理员 @孙八", ("sunba",), "孙八 (sunba) 尚未激活"),   # inactive
    ("zhangsan", "转让主管理员 @张三", ("zhangsan",), "张三 (zhangsan) 已经是主管理员"),
    ("zhangsan", "转让主管理员 @赵六", ("zhaoliu",), "赵六 (zhaoliu) 不是管理员"),  # not eligible
    ("zhangsan", "transfer-owner @Zhao", ("zhaoliu",), "only a current admin"),
])
async def test_each_prerequisite_has_its_own_message(h: Harness, user: str,
                                                     text: str, at: tuple[str, ...],
                                                     expect: str) -> None:
    await start(h, user, text, at, expect)
    assert await count(h, select(func.count()).select_from(Request)) == 0
    async with h.db.uow() as uow:
        refused = await uow.audit.recent(h.settings.org.corp_id, 5)
        assert refused[0].action == "owner_transfer.refused" and refused[0].result == "refused"


async def test_second_open_transfer_refused(h: Harness) -> None:
    await start(h, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await start(h, "zhangsan", "转让主管理员 @王五", ("wangwu",), "进行中的主管理员转让 R-1")
    assert await count(h, select(func.count()).select_from(Request)) == 1


async def test_forged_click_refused_and_audited(h: Harness) -> None:
    await start(h, "wangwu", "转让主管理员 @李四", ("lisi",), "只有主管理员")  # refused: no grant
    await start(h, "zhangsan", "transfer-owner @Li", ("lisi",), "R-1")
    card = CARD.format(1)
    forged = {"request_id": "R-1", "userId": "lisi", "user": "lisi", "action": "accept"}
    notice = await h.press("zhaoliu", card, "accept", forged)
    assert "Only 李四 (lisi)" in notice or "只有 李四 (lisi)" in notice
    await h.card_status(card, "pending")
    assert await owner_of(h) == "zhangsan"
    async with h.db.uow() as uow:
        e = (await uow.audit.recent(h.settings.org.corp_id, 3))[0]
        assert (e.action, e.actor_id, e.result) == (
            "owner_transfer.click_refused", "zhaoliu", "refused")
        assert e.after is not None and e.after["claimed_params"]["userId"] == "lisi"


async def test_cancel_by_requester_and_refused_for_others(h: Harness) -> None:
    await start(h, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await start(h, "zhaoliu", "取消 R-1", (), "只有申请人或主管理员")
    await start(h, "zhangsan", "cancel R-1", (), "R-1 已取消，未做任何更改")
    await h.card_status(CARD.format(1), "cancelled")
    assert "已取消" in await h.press("lisi", CARD.format(1), "accept")
    assert await owner_of(h) == "zhangsan"
    await start(h, "zhangsan", "cancel R-1", (), "already closed")


async def test_late_click_names_who_decided_and_when(h: Harness) -> None:
    await start(h, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await h.press("lisi", CARD.format(1), "decline")
    await h.card_status(CARD.format(1), "rejected")
    notice = await h.press("zhangsan", CARD.format(1), "approve")
    assert "已由 李四 (lisi) 于" in notice
    assert await owner_of(h) == "zhangsan"
    await h.told("被拒绝")


async def test_failure_while_applying_leaves_old_owner(h: Harness) -> None:
    h.faults.arm("owner_transfer.apply")
    await start(h, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await h.press("lisi", CARD.format(1), "accept")
    await h.card_status(CARD.format(1), "failed")
    assert await owner_of(h) == "zhangsan"
    async with h.db.uow() as uow:
        lisi = await uow.members.get(h.settings.org.corp_id, "lisi")
        assert lisi is not None and lisi.level == "admin"
    assert await count(h, select(func.count()).select_from(Snapshot)) == 0
    await h.told("执行失败")
    await h.told("执行失败", "user:zhangsan")          # the owner told 1:1


async def test_target_no_longer_eligible_when_it_applies(h: Harness) -> None:
    """Prerequisites are checked again when the request applies: lisi, no longer an admin
    by the time she accepts, does not become owner, and everyone is told why."""
    await start(h, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await start(h, "zhangsan", "移除管理员 @李四", ("lisi",), "已移除")
    await h.press("lisi", CARD.format(1), "accept")
    await h.card_status(CARD.format(1), "failed")
    assert await owner_of(h) == "zhangsan"
    async with h.db.uow() as uow:
        lisi = await uow.members.get(h.settings.org.corp_id, "lisi")
        assert lisi is not None and lisi.level == "member"
        req = await uow.requests.find(1)
        assert req is not None and req.payload["error"] == "target_not_eligible"
    assert await count(h, select(func.count()).select_from(Snapshot)) == 0
    text = await h.told("未执行")
    assert "只有现任子管理员可以成为主管理员" in text and "李四" in text


async def test_expiry_with_an_injected_clock(make_harness: MakeHarness) -> None:
    # No quiet hours, so the 4h reminder is never moved.
    h = await make_harness(policy={"approval_ttl": timedelta(hours=24), "quiet_hours": None})
    clock = h.clock
    await start(h, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    params = await h.card_status(CARD.format(1), "pending")
    assert params["expires"]
    clock.advance(timedelta(hours=4, seconds=1))
    await h.run_due()   # the reminder to the missing decider
    await h.told("@李四 (lisi)")
    clock.advance(timedelta(hours=20))
    await h.run_due()
    await h.card_status(CARD.format(1), "expired")
    notice = await h.press("lisi", CARD.format(1), "accept")
    assert "过期" in notice
    assert f"已于 {local(clock.now(), 'Asia/Shanghai', '%m-%d %H:%M')} 结束" in notice
    assert await owner_of(h) == "zhangsan"


async def test_dingtalk_verification_after_console_step(h: Harness) -> None:
    await start(h, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await h.press("lisi", CARD.format(1), "accept")
    console = CARD.format(1) + "-console"
    assert h.card(console), "console card"
    assert "只有" in await h.press("lisi", console, "done")
    h.dingtalk.console_transfer_main_admin("zhangsan", "lisi")
    await h.press("zhangsan", console, "done")
    await h.run_due()                    # the check the click schedules (the alarm's run)
    await h.told("钉钉已显示")


async def test_done_pressed_too_early_leaves_the_button_to_press_again(
        h: Harness) -> None:
    """The previous owner presses Done before finishing the console step: DingTalk does not
    agree yet, so the card keeps its button (it showed 'done' with no button left, and only
    the backoff's next check could end it). Pressed again after the change, it settles."""
    await start(h, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await h.press("lisi", CARD.format(1), "accept")
    console = CARD.format(1) + "-console"
    await h.card_status(console, "pending")
    assert "核实" in await h.press("zhangsan", console, "done")
    await h.run_due()                    # the check the click schedules (the alarm's run)
    await h.told("钉钉仍未显示", "user:zhangsan")     # DingTalk does not show it yet
    assert h.card(console)["status"] == "pending"
    h.dingtalk.console_transfer_main_admin("zhangsan", "lisi")
    await h.press("zhangsan", console, "done")
    await h.run_due()
    await h.card_status(console, "done")
    await h.told("钉钉已显示")


async def test_verification_outlives_a_failed_read_and_closes_the_console_card(
        make_harness: MakeHarness) -> None:
    """DingTalk's admin list unreadable for a while (503): verification is tried again at the
    next backoff step, without reminding anyone of a step they may have done. Once DingTalk
    agrees, the console card's button is retired, though nobody clicked it."""
    h = await applied_transfer(make_harness)
    clock = h.clock
    console = CARD.format(1) + "-console"
    await h.card_status(console, "pending")

    async def verify_rows() -> list[tuple[str, int]]:
        async with h.db.uow() as uow:
            rows = (await uow.session.execute(select(DueWork).where(
                DueWork.kind == "transfer_verify").order_by(DueWork.id))).scalars().all()
            return [(r.status, int(r.payload["n"])) for r in rows]

    h.dingtalk.fail_next("list_admins", ServerError(
        "/topapi/user/listadmin", 503, "503", "unavailable"), times=100)
    clock.advance(timedelta(minutes=10, seconds=1))
    await h.run_due()
    assert await verify_rows() == [("done", 0), ("pending", 1)]
    assert not [m for m in replies(await h.sent_after(0), "user:zhangsan") if "仍未显示" in m]
    h.dingtalk.clear_failures()
    h.dingtalk.console_transfer_main_admin("zhangsan", "lisi")
    clock.advance(timedelta(minutes=30))
    await h.run_due()
    await h.told("钉钉已显示")
    await h.card_status(console, "done")
    assert await verify_rows() == [("done", 0), ("done", 1)]


async def test_verification_ends_audited_where_the_admin_list_is_forbidden(
        make_harness: MakeHarness) -> None:
    h = await applied_transfer(make_harness)
    h.dingtalk.fail_next("list_admins", PermissionDenied(
        "/topapi/user/listadmin", 403, "60011", "forbidden"), times=5)
    h.clock.advance(timedelta(minutes=10, seconds=1))
    await h.run_due()
    async with h.db.uow() as uow:
        pending = (await uow.session.execute(select(func.count()).select_from(DueWork).where(
            DueWork.kind == "transfer_verify", DueWork.status == "pending"))).scalar_one()
        assert pending == 0
        entry = (await uow.session.execute(select(AuditEntry).where(
            AuditEntry.action == "owner_transfer.dingtalk_unverifiable"))).scalar_one()
        assert "PermissionDenied" in entry.after["why"]


@pytest.mark.parametrize("api_allowed", [True, False])
async def test_exclusive_accounts_change_through_the_api_or_fall_back_to_the_console(
        make_harness: MakeHarness, api_allowed: bool) -> None:
    """dingtalk.exclusive_accounts: Baton changes DingTalk's main administrator itself; where
    DingTalk refuses (the app lacks the permission: 403), the previous owner gets the
    console steps instead, and the refusal is audited."""
    dingtalk = FakeDingTalk(exclusive_accounts=api_allowed)
    h = await applied_transfer(make_harness, dingtalk, dingtalk={"exclusive_accounts": True})
    await h.run_due()              # the change
    await h.run_due()              # the check it schedules at once
    console = CARD.format(1) + "-console"
    async with h.db.uow() as uow:
        actions = [a.action for a in (await uow.session.execute(
            select(AuditEntry).order_by(AuditEntry.seq))).scalars()]
    if api_allowed:
        assert dingtalk.users["lisi"].admin_level == 1
        assert "owner_transfer.dingtalk_changed" in actions
        await h.told("钉钉已显示")
        assert console not in h.cards
    else:
        assert dingtalk.users["zhangsan"].admin_level == 1      # DingTalk unchanged
        assert "owner_transfer.dingtalk_change_refused" in actions
        await h.card_status(console, "pending")
        assert h.spaces[console] == ["dtv1.card//IM_ROBOT.zhangsan"]


async def test_pending_lists_what_i_decide_and_what_i_asked(h: Harness) -> None:
    await start(h, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    text = await start(h, "lisi", "待审批", (), "R-1")
    assert "待你处理" in text
    text = await start(h, "zhangsan", "pending", (), "R-1")
    assert "you asked" in text
    await start(h, "zhaoliu", "pending", (), "There are no open requests")
