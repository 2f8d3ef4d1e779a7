"""Admin drift and offboarding at the handler level (issue 17 §4): DingTalk's org events
handed to the dispatcher as the Stream adapter hands them, the daily sweep through due work,
the adopt / ignore card through the request engine. Both databases."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.ports import ServerError
from bot.transport.inbound import OrgEvent
from handlers import review
from handlers.drift import LOOKUPS_AT_ONCE, schedule_sweep
from storage.models import AuditEntry, Request, ReviewItem, TemplateAssignment
from tests.handlers.conftest import CARD, GROUP, Harness, MakeHarness, Sent, replies
from tests.support import Overlap, audit_actions, grants, member, verify_chain

ALERTS = "cidALERTS"
_ids = itertools.count(1)


async def event(h: Harness, event_type: str, *users: str, event_id: str | None = None,
                corp: str | None = None) -> list[Sent]:
    """DingTalk pushes an org event about ``users``; what Baton queued because of it."""
    before = await h._last_id()
    await h.dispatcher.handle_event(OrgEvent(
        event_id or f"ev{next(_ids)}", event_type, corp or h.settings.org.corp_id, None, users))
    return h._fold(await h.sent_after(before))


@dataclass(frozen=True)
class Entry:
    actor_id: str
    after: dict[str, Any] | None


@dataclass(frozen=True)
class Drift:
    state: str
    target_id: str | None
    payload: dict[str, Any]
    card_out_track_id: str | None


async def audit_after(h: Harness, action: str) -> list[Entry]:
    async with h.db.uow() as uow:
        return [Entry(e.actor_id, e.after) for e in (await uow.session.execute(
            select(AuditEntry).where(AuditEntry.action == action)
            .order_by(AuditEntry.seq))).scalars()]


async def drift_cards(h: Harness) -> list[Drift]:
    async with h.db.uow() as uow:
        return [Drift(r.state, r.target_id, dict(r.payload), r.card_out_track_id)
                for r in (await uow.session.execute(select(Request).where(
                    Request.kind == "admin_drift").order_by(Request.id))).scalars()]


@pytest.fixture
async def ha(make_harness: MakeHarness) -> Harness:
    """With an alert conversation (the drift cards go there) and the admin group."""
    return await make_harness(org={"alert_conversation": ALERTS, "admin_conversations": [GROUP]})


async def _give_zhaoliu_everything(h: Harness) -> None:
    await h.ask("lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    await h.ask("wangwu", "授权 @赵六 crm.report.view 7天", "已授予", ("zhaoliu",))
    await h.ask("lisi", "模板 创建 报表 crm.report.view", "已创建")
    await h.ask("lisi", "模板 应用 报表 @赵六", "报表", ("zhaoliu",))


# ---- offboarding ----------------------------------------------------------------------------

async def test_a_member_who_leaves_loses_everything_once(h: Harness) -> None:
    await _give_zhaoliu_everything(h)
    sent = await event(h, "user_leave_org", "zhaoliu", event_id="leave-1")
    m = await member(h, "zhaoliu")
    assert m.role is None and not m.active
    assert await grants(h, "zhaoliu") == {}
    async with h.db.uow() as uow:
        assert (await uow.session.execute(select(TemplateAssignment).where(
            TemplateAssignment.user_id == "zhaoliu"))).first() is None
    actions = await audit_actions(h)
    for action in ("role_clear.apply", "grant.revoke", "template.unassign", "member.offboard"):
        assert (action, "applied", "zhaoliu") in actions, action
    for action in ("role_clear.apply", "grant.revoke", "template.unassign"):
        entry = (await audit_after(h, action))[-1]
        assert (entry.after or {}).get("via") == "offboarding"
    # The owner hears of it, one-to-one, with what ended.
    told = replies(sent, "user:zhangsan")
    assert told and "赵六" in told[0] and "角色 sales" in told[0] and "模板 报表" in told[0]
    # DingTalk redelivers the event: nothing changes twice.
    n = len(await audit_actions(h))
    assert await event(h, "user_leave_org", "zhaoliu", event_id="leave-1") == []
    assert len(await audit_actions(h)) == n
    # And whoami of a member who left shows nothing but the level.
    await verify_chain(h)


async def test_an_admin_who_leaves_hands_decisions_to_the_owner(h: Harness) -> None:
    # wangwu asks for a sensitive grant (R-1, now theirs); lisi asks for one wangwu may decide.
    await h.ask("wangwu", "授权 @赵六 crm.export", "R-1", ("zhaoliu",))
    await h.ask("lisi", "授权 @钱七 crm.export", "R-2", ("qianqi",))
    assert "王五" in h.card(CARD.format(2))["markdown"]
    sent = await event(h, "user_leave_org", "wangwu")
    assert (await member(h, "wangwu")).level == "member"
    assert ("admin_remove.apply", "applied", "wangwu") in await audit_actions(h)
    # Their own request is cancelled, its card updated.
    await h.card_status(CARD.format(1), "cancelled")
    # The one they could decide now waits for the owner alone; its card says so.
    card = await h.card_status(CARD.format(2), "pending")
    assert "王五" not in card["markdown"] and "张三" in card["markdown"]
    told = h.reply_with(sent, "R-2", "user:zhangsan")
    assert "R-1" in told          # and what was cancelled
    # wangwu's click no longer counts; the owner's does.
    notice = await h.press("wangwu", CARD.format(2), "approve")
    assert "张三" in notice
    await h.press("zhangsan", CARD.format(2), "approve")
    assert "crm.export" in await grants(h, "qianqi")


async def test_review_items_of_an_admin_who_leaves_pass_to_the_owner(h: Harness) -> None:
    await h.ask("wangwu", "授权 @赵六 crm.report.view", "已授予", ("zhaoliu",))
    await h.ask("zhangsan", "权限审核 开始", "R-1")
    before = set(h.cards)           # wangwu's card: their one item
    await event(h, "user_leave_org", "wangwu")
    new = set(h.cards) - before
    assert len(new) == 1, "the owner gets a review card with the items"
    owner_card = h.card(next(iter(new)))
    assert "赵六" in owner_card["markdown"]
    assert ("review.handed_over", "applied", "wangwu") in await audit_actions(h)
    # The owner's click on the item counts.
    track = next(iter(set(h.cards) - before))
    notice, _ = await h.click("zhangsan", track, "remove", {"item": "1"})
    assert "crm.report.view" not in await grants(h, "zhaoliu"), notice


async def test_grants_an_admin_gave_stay_when_they_leave(h: Harness) -> None:
    await h.ask("wangwu", "授权 @赵六 crm.report.view", "已授予", ("zhaoliu",))
    await event(h, "user_leave_org", "wangwu")
    assert "crm.report.view" in await grants(h, "zhaoliu")


async def test_the_owner_leaving_is_alerted_loudly(ha: Harness) -> None:
    h = ha
    sent = await event(h, "user_leave_org", "zhangsan")
    assert (await member(h, "zhangsan")).level == "owner"       # one owner, always
    assert not (await member(h, "zhangsan")).active
    loud = h.reply_with(sent, "transfer-owner", f"group:{GROUP}")
    assert "张三" in loud and "转让主管理员" in loud
    assert h.reply_with(sent, "transfer-owner", f"group:{ALERTS}")
    assert h.reply_with(sent, "transfer-owner", "user:lisi")
    assert h.reply_with(sent, "transfer-owner", "user:wangwu")


async def test_user_modify_org_offboards_only_an_inactive_member(h: Harness) -> None:
    await h.ask("lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    await event(h, "user_modify_org", "zhaoliu")
    assert (await member(h, "zhaoliu")).role == "sales"         # still active: nothing
    h.dingtalk.set_user("zhaoliu", active=False)
    await event(h, "user_modify_org", "zhaoliu")
    assert (await member(h, "zhaoliu")).role is None


async def test_events_of_another_corp_or_kind_change_nothing(h: Harness) -> None:
    await h.ask("lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    await event(h, "user_leave_org", "zhaoliu", corp="dingOTHERCORP")
    await event(h, "user_add_org", "zhaoliu")
    assert (await member(h, "zhaoliu")).role == "sales"


async def test_the_sweep_finds_a_leave_whose_event_was_missed(h: Harness) -> None:
    await _give_zhaoliu_everything(h)
    h.dingtalk.set_user("zhaoliu", active=False)               # no event arrives
    await schedule_sweep(h.db, h.settings, h.clock.now())
    h.clock.advance(timedelta(days=1))
    await h.run_due()                                          # the sweep: queues the lookups
    await h.run_due()                                          # the lookups: queue the offboard
    await h.run_due()                                          # the offboard, on its own
    m = await member(h, "zhaoliu")
    assert m.role is None and not m.active
    entry = (await audit_after(h, "member.offboard"))[-1]
    assert (entry.after or {}).get("via") == "sweep"
    # The next day's sweep finds nothing more to do.
    n = len(await audit_actions(h))
    h.clock.advance(timedelta(days=1))
    for _ in range(3):
        await h.run_due()
    assert len(await audit_actions(h)) == n


# ---- drift --------------------------------------------------------------------------------

async def test_an_admin_added_in_the_console_is_adopted_by_the_owner_only(ha: Harness) -> None:
    h = ha
    h.dingtalk.set_user("qianqi", admin_level=2)
    sent = await event(h, "org_admin_add", "qianqi")
    (req,) = await drift_cards(h)
    assert req.payload["change"] == "admin_add" and req.target_id == "qianqi"
    track = req.card_out_track_id
    assert track and h.spaces[track] == [f"dtv1.card//IM_GROUP.{ALERTS}"]
    card = await h.card_status(track, "pending")
    assert "钱七" in card["markdown"] and "采纳" in card["markdown"]
    assert ("admin_drift.requested", "pending", "qianqi") in await audit_actions(h)
    assert sent
    # An admin's click is refused, privately, and audited.
    notice = await h.press("lisi", track, "adopt")
    assert "张三" in notice
    assert ("admin_drift.click_refused", "refused", "qianqi") in await audit_actions(h)
    assert (await member(h, "qianqi")).level == "member"
    await h.press("zhangsan", track, "adopt")
    assert (await member(h, "qianqi")).level == "admin"
    entry = (await audit_after(h, "admin_add.apply"))[-1]
    assert (entry.after or {}).get("via") == "drift" and entry.actor_id == "zhangsan"
    await h.card_status(track, "applied")
    # The same event again (another id), or a sweep: nothing new is alerted.
    await event(h, "org_admin_add", "qianqi")
    assert len(await drift_cards(h)) == 1


async def test_an_ignored_drift_is_alerted_again_daily(ha: Harness) -> None:
    h = ha
    h.dingtalk.set_user("lisi", admin_level=0)                 # removed in the console
    await event(h, "org_admin_remove", "lisi")
    (req,) = await drift_cards(h)
    assert req.payload["change"] == "admin_remove"
    await h.press("zhangsan", req.card_out_track_id or "", "ignore")
    assert (await member(h, "lisi")).level == "admin"
    await h.card_status(req.card_out_track_id or "", "rejected")
    await schedule_sweep(h.db, h.settings, h.clock.now())
    h.clock.advance(timedelta(days=1))
    await h.run_due()
    cards = await drift_cards(h)
    assert len(cards) == 2 and cards[1].state == "pending"
    # Baton catches up (the owner removes lisi in Baton): the open alert is withdrawn.
    await h.ask("zhangsan", "移除管理员 @李四", "李四", ("lisi",))
    h.clock.advance(timedelta(days=1))
    await h.run_due()
    cards = await drift_cards(h)
    assert len(cards) == 2 and cards[1].state == "cancelled"


async def test_an_owner_change_in_the_console_is_adopted(ha: Harness) -> None:
    h = ha
    h.dingtalk.console_transfer_main_admin("zhangsan", "lisi")
    await event(h, "org_admin_add", "lisi")
    (req,) = await drift_cards(h)
    assert req.payload["change"] == "owner"
    await h.press("zhangsan", req.card_out_track_id or "", "adopt")
    assert (await member(h, "lisi")).level == "owner"
    assert (await member(h, "zhangsan")).level == "admin"
    entry = (await audit_after(h, "owner_transfer.apply"))[-1]
    assert (entry.after or {}).get("via") == "drift"


async def test_a_baton_made_admin_is_no_drift(ha: Harness) -> None:
    """An admin added in Baton need not be one in DingTalk's console: no alert."""
    h = ha
    await h.ask("zhangsan", "添加管理员 @赵六", "赵六", ("zhaoliu",))
    await schedule_sweep(h.db, h.settings, h.clock.now())
    h.clock.advance(timedelta(days=1))
    await h.run_due()
    assert await drift_cards(h) == []


async def test_a_failed_directory_lookup_offboards_no_one(h: Harness) -> None:
    await h.ask("lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    h.dingtalk.fail_next("user_get", ServerError("/topapi/v2/user/get", 503, "503", "down"),
                         times=100)
    h.dingtalk.fail_next("list_admins", ServerError("/topapi/user/listadmin", 503, "503",
                                                    "down"))
    await schedule_sweep(h.db, h.settings, h.clock.now())
    h.clock.advance(timedelta(days=1))
    for _ in range(3):
        await h.run_due()
    m = await member(h, "zhaoliu")
    assert m.role == "sales" and m.active
    assert await drift_cards(h) == []
    # Looked up, not guessed: the sweep asked the directory about every holder.
    assert {"zhaoliu", "zhangsan", "lisi", "wangwu"} <= {
        args[0] for args in h.dingtalk.called("user_get")}


async def test_the_sweep_finds_a_console_change_whose_event_was_missed(ha: Harness) -> None:
    h = ha
    await schedule_sweep(h.db, h.settings, h.clock.now())
    h.clock.advance(timedelta(days=1))
    await h.run_due()                        # the first sweep records DingTalk's list
    assert await drift_cards(h) == []
    h.dingtalk.set_user("qianqi", admin_level=2)       # no event arrives
    h.dingtalk.set_user("wangwu", admin_level=0)
    h.clock.advance(timedelta(days=1))
    await h.run_due()
    got = {(d.target_id, d.payload["change"]) for d in await drift_cards(h)}
    assert got == {("qianqi", "admin_add"), ("wangwu", "admin_remove")}


async def test_an_event_about_two_members_offboards_each_in_its_own_transaction(
        h: Harness) -> None:
    await h.ask("lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    await h.ask("lisi", "设置角色 @钱七 sales", "业务角色设为 sales", ("qianqi",))
    # The first member was done before a crash (its claim committed), the event comes again.
    await event(h, "user_leave_org", "zhaoliu", event_id="both")
    n = len(await audit_actions(h))
    await event(h, "user_leave_org", "zhaoliu", "qianqi", event_id="both")
    assert (await member(h, "qianqi")).role is None
    after = await audit_actions(h)
    assert [a for a in after[n:] if a[2] == "zhaoliu"] == []       # not twice
    assert ("member.offboard", "applied", "qianqi") in after[n:]


async def test_the_first_sweep_records_a_baseline_with_one_summary(ha: Harness) -> None:
    """Upgrading with drift on: DingTalk's admins and Baton's already differ (a sub-admin
    made in the console long ago, a Baton admin who is none in DingTalk). The first sweep
    records DingTalk's list as the baseline and says so once, listing the differences; it
    opens no card, and the next sweeps stay quiet until DingTalk changes."""
    h = ha
    h.dingtalk.set_user("qianqi", admin_level=2)
    h.dingtalk.set_user("wangwu", admin_level=0)
    await schedule_sweep(h.db, h.settings, h.clock.now())
    h.clock.advance(timedelta(days=1))
    await h.run_due()
    assert await drift_cards(h) == []
    [summary] = [s.text for s in await h.sent_after(0) if "基准" in s.text]
    assert "钱七" in summary and "王五" in summary
    for _ in range(2):
        h.clock.advance(timedelta(days=1))
        await h.run_due()
    assert await drift_cards(h) == []
    assert len([s for s in await h.sent_after(0) if "基准" in s.text]) == 1
    # A change after the baseline is a drift as before.
    h.dingtalk.set_user("zhaoliu", admin_level=2)
    h.clock.advance(timedelta(days=1))
    await h.run_due()
    assert {(d.target_id, d.payload["change"]) for d in await drift_cards(h)} == {
        ("zhaoliu", "admin_add")}


async def test_an_older_admin_list_never_overwrites_a_newer_one(ha: Harness) -> None:
    """Two admin events handled at once (two replicas): the one that read DingTalk's list
    first commits last. Its older list is not recorded over the newer one."""
    h = ha
    await event(h, "org_admin_add", "lisi")              # something recorded: no baseline
    real = h.dingtalk.list_admins
    calls = 0

    async def slow_read() -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        found = await real()
        if calls == 1:                  # while this answer travels, qianqi is made an admin
            h.clock.advance(timedelta(seconds=5))
            h.dingtalk.set_user("qianqi", admin_level=2)
            await event(h, "org_admin_add", "qianqi")
        return found

    h.dingtalk.list_admins = slow_read               # type: ignore[method-assign]
    await event(h, "org_admin_add", "wangwu")
    async with h.db.uow() as uow:
        recorded = await uow.drift.admin_list(h.settings.org.corp_id)
    assert recorded is not None and recorded.get("qianqi") == 2
    assert {(d.target_id, d.payload["change"]) for d in await drift_cards(h)} == {
        ("qianqi", "admin_add")}


async def test_the_directory_lookups_of_a_sweep_overlap_a_few_at_a_time(h: Harness) -> None:
    """A job's 100 lookups go a few at a time (not one after another), so the job ends well
    inside its lease; a member gone is still found."""
    async with h.db.uow() as uow:
        for i in range(30):
            await uow.members.upsert(h.settings.org.corp_id, f"u{i:02}", h.clock.now(),
                                     name=f"u{i:02}")
            m = await uow.members.sender(h.settings.org.corp_id, f"u{i:02}")
            assert m is not None
            await uow.members.set_role(m, "sales", h.clock.now())
        await uow.commit()
    lookups = Overlap(h.dingtalk.user_get)
    h.dingtalk.user_get = lookups                       # type: ignore[method-assign]
    await schedule_sweep(h.db, h.settings, h.clock.now())
    h.clock.advance(timedelta(days=1))
    for _ in range(3):
        await h.run_due()
    assert 1 < lookups.most <= LOOKUPS_AT_ONCE
    assert not (await member(h, "u07")).active             # unknown to the directory: gone


async def test_review_items_stay_put_when_the_owner_can_have_no_card(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every review card number is taken (MAX_CARDS reviewers): the owner could not be given
    a card to decide the leaver's items on, so the items are not moved to them (the deadline's
    policy decides them, as for reviewers beyond the cap), and nobody is told otherwise."""
    monkeypatch.setattr(review, "MAX_CARDS", 1)
    await h.ask("wangwu", "授权 @赵六 crm.report.view", "已授予", ("zhaoliu",))
    await h.ask("zhangsan", "权限审核 开始", "R-1")
    before = set(h.cards)
    await event(h, "user_leave_org", "wangwu")
    assert set(h.cards) == before
    assert ("review.handed_over", "applied", "wangwu") not in await audit_actions(h)
    async with h.db.uow() as uow:
        admins = set((await uow.session.execute(select(ReviewItem.admin_id))).scalars())
    assert admins == {"wangwu"}
