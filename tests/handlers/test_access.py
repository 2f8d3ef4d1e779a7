"""Members asking for access themselves (product.md section 13) at the handler level, on
SQLite and PostgreSQL: request, requests, cancel, the card, caps, duplicates, per-permission
policy (manager, department head, users, role, N of M, auto-approval, not requestable),
policy show, release, the expiry warning and extend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.cli.sandbox import DEMO_CATALOG
from bot.core.clock import FakeClock
from bot.delivery.todos import send_todo
from bot.ports import NotFound
from storage.bulk import entries as export_entries
from storage.models import AuditEntry
from tests.handlers.conftest import CARD, Harness, MakeHarness, replies
from tests.support import grants, verify_chain


def catalog(**policies: dict[str, Any]) -> dict[str, Any]:
    """The demo catalog with a policy on some permissions (``crm__export`` for crm.export)."""
    perms = {k: dict(v) for k, v in DEMO_CATALOG["permissions"].items()}
    for pid, pol in policies.items():
        perms[pid.replace("__", ".")]["policy"] = pol
    return {**DEMO_CATALOG, "permissions": perms}


@dataclass(frozen=True)
class Entry:
    result: str
    target_id: str | None
    request_id: int | None
    before: Any
    after: Any


async def entries(h: Harness, action: str) -> list[Entry]:
    async with h.db.uow() as uow:
        return [Entry(e.result, e.target_id, e.request_id, e.before, e.after)
                for e in (await uow.session.execute(
                    select(AuditEntry).where(AuditEntry.action == action)
                    .order_by(AuditEntry.seq))).scalars()]


async def test_a_member_asks_an_admin_approves(h: Harness) -> None:
    text = await h.ask("zhaoliu", "申请 crm.export 8小时 导出月度销售报表", "已发起申请 **R-1**")
    assert "导出数据" in text and "需要 1 位同意" in text
    assert "张三" in text and "李四" in text and "王五" in text
    card = await h.card_status(CARD.format(1), "pending")
    body = card["markdown"]
    assert "赵六" in body and "导出月度销售报表" in body            # who asks, and why
    assert "目前没有任何业务权限" in body                             # what they hold now
    assert "crm.export" in body and "8小时" in body and "至 " in body  # the gain, until when
    assert card["progress"] == "0/1 已同意" and "前有效" in card["expires"]
    # No one approves their own request.
    assert "不能审批自己" in await h.press("zhaoliu", CARD.format(1), "approve")
    assert await grants(h, "zhaoliu") == {}
    await h.press("lisi", CARD.format(1), "approve")
    card = await h.card_status(CARD.format(1), "applied")
    assert "目前" not in card["markdown"]
    assert (await grants(h, "zhaoliu"))["crm.export"] == h.clock.now() + timedelta(hours=8)
    [row] = await entries(h, "grant.apply")
    assert row.result == "applied" and row.after["via"] == "self_service"
    assert row.target_id == "zhaoliu" and row.request_id == 1
    await h.told("R-1** 已生效")
    await verify_chain(h)


async def test_bad_input_is_answered_and_changes_nothing(h: Harness) -> None:
    text = await h.ask("zhaoliu", "申请 crm.export 8小时", "缺少理由")
    assert "申请 <权限或角色> [<时长>] <理由>" in text
    text = await h.ask("zhaoliu", "request crm.exprt for 2h month report", "crm.exprt")
    assert "`crm.export`" in text                                   # did you mean
    await h.ask("zhaoliu", "request owner for 2h please", "built-in")
    await h.ask("zhaoliu", "request crm.export for 3x please", "not a duration")
    assert await grants(h, "zhaoliu") == {}
    assert len(await entries(h, "access.refused")) == 2
    async with h.db.uow() as uow:
        assert await uow.requests.open_for(h.settings.org.corp_id) == []


async def test_caps_duplicates_and_what_one_holds(make_harness: MakeHarness) -> None:
    h = await make_harness(catalog=catalog(crm__export={"max_duration": "8h"}))
    text = await h.ask("zhaoliu", "request crm.export for 3d monthly report", "Request **R-1**")
    assert "cap of 8h" in text and "for 8h" in text
    # The same again: one request is enough.
    text = await h.ask("zhaoliu", "request crm.export for 1h again", "already asking")
    assert "R-1" in text
    await h.press("wangwu", CARD.format(1), "approve")
    # Held now: asking opens nothing.
    text = await h.ask("zhaoliu", "request crm.export for 1h more", "already hold")
    assert "a grant" in text
    # Held through a role too.
    await h.ask("lisi", "role set @zhaoliu sales", "role is now sales", ("zhaoliu",))
    await h.ask("zhaoliu", "request crm.customer.view for 1h x", "role sales")
    async with h.db.uow() as uow:
        reqs = await uow.requests.by_kind(h.settings.org.corp_id, "access")
    assert [r.public_id for r in reqs] == ["R-1"]
    # No policy cap: the default (policy.max_duration, 7d) caps and fills in a missing one.
    text = await h.ask("qianqi", "request crm.customer.edit fix records", "R-2")
    assert "for 1w" in text and "cap" not in text


async def test_requests_lists_mine_and_cancel_works(h: Harness) -> None:
    text = await h.ask("qianqi", "我的申请", "还没有发起过申请")
    await h.ask("qianqi", "申请 crm.export 2小时 对账", "R-1")
    await h.ask("qianqi", "申请 finance.invoice 1天 开票", "R-2")
    text = await h.ask("qianqi", "我的申请", "我的申请")
    assert "R-1" in text and "R-2" in text and "待审批" in text
    assert text.index("R-2") < text.index("R-1")                      # newest first
    await h.ask("qianqi", "取消 R-1", "已取消")
    await h.card_status(CARD.format(1), "cancelled")
    text = await h.ask("qianqi", "requests", "My requests")
    assert "Cancelled" in text
    # Someone else's list is their own.
    await h.ask("zhaoliu", "requests", "You have made no requests")


async def test_manager_and_department_head_approve(make_harness: MakeHarness) -> None:
    # 钱七's manager is 赵六, who also heads 华东销售组 (钱七's department).
    h = await make_harness(catalog=catalog(
        crm__report__view={"approvers": ["manager"]},
        crm__customer__edit={"approvers": ["dept_leader"]},
        finance__invoice={"approvers": ["manager", {"users": ["wangwu"]}],
                          "approvals_required": 2}))
    text = await h.ask("qianqi", "request crm.report.view for 2h weekly numbers", "R-1",
                       conversation="")
    assert "赵六" in text and "李四" not in text
    # Asked one-to-one: the approver gets the card one-to-one.
    assert "user:zhaoliu" in str(h.spaces) or any(
        "zhaoliu" in s for spaces in h.spaces.values() for s in spaces)
    assert "Only 赵六" in await h.press("lisi", CARD.format(1), "approve")
    await h.press("zhaoliu", CARD.format(1), "approve")
    assert "crm.report.view" in await grants(h, "qianqi")
    await h.ask("qianqi", "request crm.customer.edit for 2h fix a record", "R-2")
    await h.press("zhaoliu", CARD.format(2), "approve")
    await h.card_status(CARD.format(2), "applied")
    # 2 of {manager, 王五}: one yes is progress, two apply.
    await h.ask("qianqi", "request finance.invoice for 1h month end", "2 must agree")
    await h.press("wangwu", CARD.format(3), "approve")
    assert (await h.card_status(CARD.format(3), "pending"))["progress"].startswith("1/2")
    await h.press("zhaoliu", CARD.format(3), "approve")
    await h.card_status(CARD.format(3), "applied")
    # 赵六 has no manager: a manager-only policy has no one to ask, and says so at once.
    text = await h.ask("zhaoliu", "request crm.report.view for 2h x", "only 0 can approve")
    async with h.db.uow() as uow:
        assert len(await uow.requests.by_kind(h.settings.org.corp_id, "access")) == 3


async def test_no_one_approves_a_change_about_themselves(make_harness: MakeHarness) -> None:
    # An admin asking: the admins' pool leaves them out.
    h = await make_harness(catalog=catalog(crm__export={"approvers": [{"users": ["lisi"]}]}))
    text = await h.ask("lisi", "request crm.export for 1h x", "only 0 can approve")
    assert "needs 1 approvers" in text


async def test_role_approvers_auto_approve_and_not_requestable(
        make_harness: MakeHarness) -> None:
    h = await make_harness(catalog=catalog(
        crm__report__view={"auto_approve": {"max_duration": "2h"}},
        crm__customer__view={"auto_approve": {"departments": ["销售部"]}},
        finance__invoice={"requestable": False},
        crm__customer__edit={"approvers": [{"role": "analyst"}]}))
    text = await h.ask("qianqi", "request crm.report.view for 2h quick look", "approved by policy")
    assert (await grants(h, "qianqi"))["crm.report.view"] == h.clock.now() + timedelta(hours=2)
    [row] = await entries(h, "grant.apply")
    assert row.after["via"] == "auto_approve" and row.result == "applied"
    # Over the auto limit: an ordinary request.
    await h.ask("qianqi", "release crm.report.view", "given back")
    await h.ask("qianqi", "request crm.report.view for 3h longer look", "R-1")
    # By department: 赵六 is in 销售部, 钱七 is not.
    await h.ask("zhaoliu", "request crm.customer.view for 1d visit", "approved by policy")
    await h.ask("qianqi", "request crm.customer.view for 1d visit", "R-2")
    text = await h.ask("qianqi", "request finance.invoice for 1h x", "cannot be requested")
    # Approvers by role: the members holding analyst.
    await h.ask("lisi", "role set @zhaoliu analyst", "analyst", ("zhaoliu",))
    text = await h.ask("qianqi", "request crm.customer.edit for 1h fix", "R-3")
    assert "赵六" in text and "李四" not in text


async def test_policy_show(make_harness: MakeHarness) -> None:
    h = await make_harness(
        catalog=catalog(crm__export={"approvers": ["manager", "admins"], "max_duration": "8h",
                                     "approvals_required": 2},
                        crm__report__view={"auto_approve": {"max_duration": "2h",
                                                            "departments": ["销售部"]}},
                        finance__invoice={"requestable": False}),
        policy={"break_glass": {"users": ["zhaoliu"], "permissions": ["crm.export"]}})
    text = await h.ask("zhaoliu", "策略 crm.export", "申请策略")
    assert "直属主管" in text and "子管理员" in text and "2" in text and "8小时" in text
    assert "紧急授权" in text
    text = await h.ask("qianqi", "policy show crm.report.view", "Request policy")
    assert "the owner" in text and "at most 2h" in text and "销售部" in text
    assert "break-glass" not in text
    await h.ask("qianqi", "policy show finance.invoice", "Not requestable")
    await h.ask("qianqi", "policy show crm.exprt", "`crm.export`")


async def test_release(h: Harness) -> None:
    await h.ask("lisi", "grant @zhaoliu crm.report.view for 7d", "Granted", ("zhaoliu",))
    text = await h.ask("zhaoliu", "我用完了 crm.report.view", "已交还")
    assert await grants(h, "zhaoliu") == {}
    [row] = await entries(h, "grant.revoke")
    assert row.result == "applied" and row.before["via"] == "release" and row.after is None
    # Nothing (left) to release, or held otherwise: a clear answer, nothing changed.
    await h.ask("zhaoliu", "release crm.report.view", "You hold no grant")
    await h.ask("lisi", "role set @zhaoliu sales", "sales", ("zhaoliu",))
    text = await h.ask("zhaoliu", "release crm.customer.view", "not from a grant")
    assert "role sales" in text
    assert len(await entries(h, "release.refused")) == 2
    # The expiry of the released grant finds nothing to do.
    h.clock.advance(timedelta(days=8))
    sent = await h.run_due()
    assert not [s for s in replies(sent) if "到期" in s or "ended" in s]


async def test_expiry_warning_once_then_extend(h: Harness) -> None:
    await h.ask("zhaoliu", "request crm.export for 10h month end", "R-1")
    await h.press("lisi", CARD.format(1), "approve")
    ends = h.clock.now() + timedelta(hours=10)
    # Warned at 20% of the life left (2h) or policy.expiry_warning (1h): the later, 1h before.
    h.clock.advance(timedelta(hours=8, minutes=30))
    assert not [s for s in replies(await h.run_due()) if "将于" in s]
    h.clock.advance(timedelta(minutes=31))
    warned = [s for s in replies(await h.run_due(), "user:zhaoliu") if "将于" in s]
    assert len(warned) == 1 and "`续期 crm.export <时长> <理由>`" in warned[0]
    assert not [s for s in replies(await h.run_due()) if "将于" in s]       # once
    # extend is a new request, approved as usual; it adds to the current end.
    text = await h.ask("zhaoliu", "续期 crm.export 2小时 还没做完", "R-2")
    assert "再延长 2小时" in text
    assert (await grants(h, "zhaoliu"))["crm.export"] == ends
    await h.press("wangwu", CARD.format(2), "approve")
    assert (await grants(h, "zhaoliu"))["crm.export"] == ends + timedelta(hours=2)
    vias = [r.after["via"] for r in await entries(h, "grant.apply")]
    assert vias == ["self_service", "extend"]
    # Nothing to extend: a clear answer.
    await h.ask("qianqi", "extend crm.export for 1h x", "no crm.export")
    assert len(await entries(h, "extend.refused")) == 1


async def test_help_lists_the_new_commands(h: Harness) -> None:
    text = await h.ask("qianqi", "帮助", "Baton 命令")
    for word in ("申请 <权限或角色>", "我的申请", "我用完了", "续期", "策略", "紧急授权"):
        assert word in text
    text = await h.ask("qianqi", "help", "Baton commands")
    for word in ("request <permission-or-role>", "requests", "release", "extend",
                 "policy show", "break-glass"):
        assert word in text


# ---- break-glass -----------------------------------------------------------------------------

BG = "baton-dingsandboxcorp-R{}-bg"


@pytest.fixture
async def hb(make_harness: MakeHarness) -> Harness:
    return await make_harness(
        catalog=catalog(crm__export={"approvers": ["manager", "admins"]}),
        policy={"break_glass": {"users": ["qianqi"], "permissions": ["crm.export"],
                                "max": "1h"}},
        org={"alert_conversation": "cidALERTS"})


async def test_break_glass_applies_at_once_and_is_announced(hb: Harness) -> None:
    h = hb
    text = await h.ask("qianqi", "紧急授权 crm.export 客户系统故障，需要立即导出名单", "已生效")
    assert "R-1" in text and "赵六" in text and "张三" in text and "李四" in text
    assert (await grants(h, "qianqi"))["crm.export"] == h.clock.now() + timedelta(hours=1)
    [row] = await entries(h, "grant.apply")
    assert row.after["via"] == "break_glass" and row.result == "applied"
    [used] = await entries(h, "break_glass.used")
    assert used.after["reason"] == "客户系统故障，需要立即导出名单"
    # One card, one-to-one to the owner and every approver (the manager included).
    card = await h.card_status(BG.format(1), "active")
    assert "钱七" in card["markdown"] and "客户系统故障" in card["markdown"]
    [space] = h.spaces[BG.format(1)]
    for uid in ("zhangsan", "lisi", "wangwu", "zhaoliu"):
        assert f"IM_ROBOT.{uid}" in space
    assert "IM_ROBOT.qianqi" not in space
    # Only those told may withdraw; the holder may not.
    assert "只有被通知的" in await h.press("qianqi", BG.format(1), "withdraw")
    assert "crm.export" in await grants(h, "qianqi")
    notice = await h.press("zhaoliu", BG.format(1), "withdraw")
    assert "Withdrawn" in notice or "已撤回" in notice
    assert await grants(h, "qianqi") == {}
    card = await h.card_status(BG.format(1), "withdrawn")
    assert "赵六" in card["decided"]
    [rev] = await entries(h, "grant.revoke")
    assert rev.before["via"] == "withdraw" and rev.result == "applied"
    await h.told("已被", to="user:qianqi")
    # The owner's review item: a card of its own, one-to-one, to decide.
    review = await h.card_status(CARD.format(2), "pending")
    assert review["title"] == "紧急授权复核 R-2" and "R-1" in review["markdown"]
    assert "已由 赵六" in review["markdown"] and "客户系统故障" in review["markdown"]
    assert h.spaces[CARD.format(2)] == ["dtv1.card//IM_ROBOT.zhangsan"]
    # A second press: already over.
    assert "已结束" in await h.press("lisi", BG.format(1), "withdraw")
    await verify_chain(h)


async def test_break_glass_is_tagged_in_the_export(hb: Harness) -> None:
    h = hb
    await h.ask("lisi", "grant @zhaoliu crm.report.view", "Granted", ("zhaoliu",))
    await h.ask("qianqi", "break-glass crm.export outage", "applies now")
    async with h.db.uow() as uow:
        _, source = await export_entries(uow, h.settings.org.corp_id, h.clock.now())
    notes = {k[0]: v for k, v in source.items() if k[1] == "grant"}
    assert notes["qianqi"].endswith("break_glass=R-1")
    assert "break_glass" not in notes["zhaoliu"]


async def test_break_glass_ends_on_time_with_a_review(hb: Harness) -> None:
    h = hb
    await h.ask("qianqi", "break-glass crm.export outage", "applies now")
    h.clock.advance(timedelta(hours=1, minutes=1))
    await h.run_due()
    assert await grants(h, "qianqi") == {}
    await h.card_status(BG.format(1), "ended")
    card = await h.card_status(CARD.format(2), "pending")
    assert card["title"] == "Break-glass review R-2" and "ended on time" in card["markdown"]
    assert "R-1" in card["markdown"] and "outage" in card["markdown"]
    assert len(await entries(h, "break_glass.review")) == 1
    assert "over" in await h.press("lisi", BG.format(1), "withdraw")
    # Only the owner decides it: an approver's click, or the holder's, changes nothing.
    assert "Only" in await h.press("lisi", CARD.format(2), "justified")
    assert "Only" in await h.press("qianqi", CARD.format(2), "justified")
    assert "approve" not in await h.press("zhangsan", CARD.format(2), "approve")
    await h.card_status(CARD.format(2), "pending")
    assert await entries(h, "break_glass.reviewed") == []
    assert "justified" in await h.press("zhangsan", CARD.format(2), "justified")
    card = await h.card_status(CARD.format(2), "applied")
    assert card["status_text"] == "Justified" and "Verdict: justified" in card["markdown"]
    [verdict] = await entries(h, "break_glass.reviewed")
    assert verdict.after == {"verdict": "justified", "origin": 1, "name": "crm.export"}
    assert verdict.target_id == "qianqi" and verdict.result == "applied"
    # Once: a second click is answered and changes nothing; no alert for a justified use.
    assert "already" in await h.press("zhangsan", CARD.format(2), "unjustified")
    assert len(await entries(h, "break_glass.reviewed")) == 1
    assert not [s for s in await h.sent_after(0)
                if s.to == "group:cidALERTS" and "not justified" in str(s.payload)]
    await h.ask("zhangsan", "pending", "no open requests")          # decided: not listed
    await verify_chain(h)


async def test_a_break_glass_review_nobody_decides_expires_and_is_alerted(hb: Harness) -> None:
    h = hb
    await h.ask("qianqi", "break-glass crm.export outage", "applies now")
    await h.ask("qianqi", "release crm.export", "given back")
    await h.run_due()
    text = await h.ask("zhangsan", "pending", "R-2", conversation="")
    assert "Break-glass review" in text or "紧急授权复核" in text
    h.clock.advance(h.settings.policy.approval_ttl + timedelta(minutes=1))
    await h.run_due()
    await h.card_status(CARD.format(2), "expired")
    assert await entries(h, "break_glass.reviewed") == []
    assert len(await entries(h, "break_glass_review.expired")) == 1
    alerts = [str(s.payload) for s in await h.sent_after(0) if s.to == "group:cidALERTS"]
    assert any("R-1" in a and "无人复核" in a for a in alerts)
    assert "Expired" in await h.press("zhangsan", CARD.format(2), "justified")


async def test_break_glass_judged_not_justified_is_alerted(hb: Harness) -> None:
    h = hb
    await h.ask("qianqi", "紧急授权 crm.export 故障", "已生效")
    await h.press("lisi", BG.format(1), "withdraw")
    # Undecided, it is reminded to the owner like any request.
    h.clock.advance(h.settings.policy.remind_every + timedelta(minutes=1))
    await h.run_due()
    text = await h.told("R-2", to="user:zhangsan")
    assert "张三" in text
    await h.press("zhangsan", CARD.format(2), "unjustified")
    card = await h.card_status(CARD.format(2), "rejected")
    assert card["status_text"] == "不合理，需跟进" and "结论：不合理" in card["markdown"]
    [verdict] = await entries(h, "break_glass.reviewed")
    assert verdict.after["verdict"] == "unjustified"
    alerts = [str(s.payload) for s in await h.sent_after(0) if s.to == "group:cidALERTS"]
    assert any("R-1" in a and "不合理" in a for a in alerts)
    # Decided: no more reminders.
    h.clock.advance(timedelta(days=2))
    before = len([x for x in replies(await h.sent_after(0), "user:zhangsan") if "R-2" in x])
    await h.run_due()
    after = len([x for x in replies(await h.sent_after(0), "user:zhangsan") if "R-2" in x])
    assert after == before


async def test_break_glass_grants_are_tagged_in_the_access_review(hb: Harness) -> None:
    h = hb
    await h.ask("lisi", "grant @qianqi crm.report.view", "Granted", ("qianqi",))
    await h.ask("lisi", "break-glass crm.export x", "not on the break-glass list")
    await h.ask("qianqi", "紧急授权 crm.export 故障", "R-1")
    await h.ask("zhangsan", "权限审核 开始", "R-2")
    # The break-glass grant is the owner's to review (lisi's ordinary grant stays lisi's),
    # and its item says where it came from.
    owner = await h.card_status("baton-dingsandboxcorp-R2-rva", "pending")
    assert h.spaces["baton-dingsandboxcorp-R2-rva"] == ["dtv1.card//IM_ROBOT.zhangsan"]
    [item] = [x for x in owner["markdown"].split("\n\n") if "导出" in x or "export" in x]
    assert "紧急授权 R-1" in item
    admin = await h.card_status("baton-dingsandboxcorp-R2-rvb", "pending")
    assert h.spaces["baton-dingsandboxcorp-R2-rvb"] == ["dtv1.card//IM_ROBOT.lisi"]
    assert "紧急授权" not in admin["markdown"]
    # The tag stays on the item once the grant is gone (removed here).
    await h.press("zhangsan", "baton-dingsandboxcorp-R2-rva", "remove", {"item": "1"})
    assert list(await grants(h, "qianqi")) == ["crm.report.view"]
    assert "紧急授权 R-1" in h.card("baton-dingsandboxcorp-R2-rva")["markdown"]


async def test_the_break_glass_tag_in_english(hb: Harness) -> None:
    h = hb
    await h.ask("qianqi", "break-glass crm.export outage", "applies now")
    await h.ask("zhangsan", "review start", "R-2")
    card = await h.card_status("baton-dingsandboxcorp-R2-rva", "pending")
    assert "break-glass R-1" in card["markdown"]
    # Left undecided to the deadline, it is listed to the owner with its tag.
    h.clock.advance(h.settings.review.deadline + timedelta(minutes=1))
    await h.run_due()
    text = await h.told("not reviewed", to="user:zhangsan")
    assert "break-glass R-1" in text


async def test_break_glass_given_back_early_ends_its_card(hb: Harness) -> None:
    h = hb
    await h.ask("qianqi", "break-glass crm.export outage", "applies now")
    h.clock.advance(timedelta(minutes=10))
    await h.ask("qianqi", "release crm.export", "given back")
    await h.run_due()
    await h.card_status(BG.format(1), "ended")
    card = await h.card_status(CARD.format(2), "pending")
    assert "given back early" in card["markdown"]
    h.clock.advance(timedelta(hours=1))
    await h.run_due()                                   # the end at 1h finds it over
    assert len(await entries(h, "break_glass.review")) == 1
    assert len(await entries(h, "break_glass_review.requested")) == 1


async def test_break_glass_refused_for_anyone_not_listed(hb: Harness) -> None:
    h = hb
    await h.ask("zhaoliu", "紧急授权 crm.export 我也想要", "不在紧急授权名单")
    await h.ask("qianqi", "break-glass finance.invoice need it", "not on the break-glass list")
    await h.ask("qianqi", "break-glass crm.exprt x", "`crm.export`")
    await h.ask("qianqi", "break-glass crm.export", "a reason")
    assert await grants(h, "zhaoliu") == {} and await grants(h, "qianqi") == {}
    refused = await entries(h, "break_glass.refused")
    assert len(refused) == 3
    alerts = [s for s in await h.sent_after(0) if s.to == "group:cidALERTS"]
    assert alerts and "我也想要" in str(alerts[0].payload)


# ---- escalation and working days ------------------------------------------------------------

async def due_at(h: Harness, kind: str) -> list[datetime]:
    async with h.db.uow() as uow:
        return [d.due_at for d in await uow.due.upcoming(50) if d.kind == kind]


async def test_an_undecided_request_escalates_to_the_owner(make_harness: MakeHarness) -> None:
    h = await make_harness(catalog=catalog(crm__report__view={"approvers": ["manager"]}),
                           policy={"escalate_after": "8h"})
    await h.ask("qianqi", "申请 crm.report.view 1天 周报", "R-1")
    assert "只有 赵六" in await h.press("zhangsan", CARD.format(1), "approve")  # not yet theirs
    h.clock.advance(timedelta(hours=8, minutes=1))
    sent = await h.run_due()
    assert [s for s in replies(sent) if "已升级至" in s and "张三" in s]
    card = h.card(CARD.format(1))
    assert "已升级至：张三" in card["markdown"] and "张三" in card["markdown"]
    # The owner got the card one-to-one, and may now decide.
    assert any("IM_ROBOT.zhangsan" in sp for sps in h.spaces.values() for sp in sps)
    await h.press("zhangsan", CARD.format(1), "approve")
    await h.card_status(CARD.format(1), "applied")
    assert len(await entries(h, "access.escalated")) == 1
    # Once only: nothing more is due for it.
    assert await due_at(h, "access_escalate") == []


async def test_a_decided_request_does_not_escalate(h: Harness) -> None:
    await h.ask("qianqi", "request crm.export for 1d x", "R-1")
    [at] = await due_at(h, "access_escalate")
    assert at == h.clock.now() + h.settings.policy.escalate_after
    await h.press("lisi", CARD.format(1), "approve")
    h.clock.advance(timedelta(days=1))
    await h.run_due()
    assert await entries(h, "access.escalated") == []


NATIONAL_DAY_EVE = datetime(2026, 9, 30, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai, before 国庆


async def test_working_days_count_holidays_and_make_up_days(make_harness: MakeHarness) -> None:
    plain = await make_harness(clock=FakeClock(NATIONAL_DAY_EVE), policy={"escalate_after": "8h",
                                                                         "approval_ttl": "14d"})
    await plain.ask("qianqi", "request crm.export for 1d x", "R-1")
    assert await due_at(plain, "access_escalate") == [NATIONAL_DAY_EVE + timedelta(hours=8)]


async def test_working_days_with_the_cn_calendar(make_harness: MakeHarness) -> None:
    h = await make_harness(clock=FakeClock(NATIONAL_DAY_EVE),
                           policy={"escalate_after": "8h", "approval_ttl": "14d",
                                   "calendar": "cn"})
    await h.ask("qianqi", "request crm.export for 1d x", "R-1")
    # 6h of 30 September, then 1 to 7 October are the National Day holiday: the last 2h fall
    # on the first working day after it.
    [at] = await due_at(h, "access_escalate")
    assert at.astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None) == datetime(
        2026, 10, 8, 2, 0)
    # The first reminder counts working days too (4h of 30 September: 22:00 that day).
    [remind] = await due_at(h, "request_remind")
    assert remind == NATIONAL_DAY_EVE + timedelta(hours=4)


# ---- DingTalk to-dos --------------------------------------------------------------------------

async def deliver_todos(h: Harness, delivered: list[dict[str, Any]]) -> None:
    """What the outbox would do with the to-do rows queued since (once each, in order)."""
    for s in await h.sent_after(0):
        if s.kind == "todo" and s.payload not in delivered:
            delivered.append(s.payload)
            await send_todo(h.db, h.dingtalk, h.settings.org.corp_id, s.payload)


@pytest.fixture
async def ht(make_harness: MakeHarness) -> Harness:
    return await make_harness(integrations={"dingtalk_todo": True})


async def test_each_approver_gets_a_todo_closed_when_decided(ht: Harness) -> None:
    h = ht
    await h.ask("qianqi", "申请 crm.export 1天 月底对账", "R-1")
    rows = [s for s in await h.sent_after(0) if s.kind == "todo"]
    assert sorted(r.payload["user_id"] for r in rows) == ["lisi", "wangwu", "zhangsan"]
    assert {r.to for r in rows} == {"todo:lisi", "todo:wangwu", "todo:zhangsan"}
    delivered: list[dict[str, Any]] = []
    await deliver_todos(h, delivered)
    assert len(h.dingtalk.todos) == 3 and not any(t["done"] for t in h.dingtalk.todos.values())
    assert all("R-1" in t["subject"] and "钱七" in t["subject"] for t in h.dingtalk.todos.values())
    # unionIds are looked up once and kept.
    lookups = len(h.dingtalk.called("user_get"))
    await h.press("wangwu", CARD.format(1), "approve")
    await deliver_todos(h, delivered)
    assert all(t["done"] for t in h.dingtalk.todos.values())
    assert len(h.dingtalk.called("user_get")) == lookups


async def test_a_todo_for_a_request_that_ended_first_is_never_made(ht: Harness) -> None:
    h = ht
    await h.ask("qianqi", "request crm.export for 1d x", "R-1")
    await h.ask("qianqi", "cancel R-1", "cancelled")
    creates = [s.payload for s in await h.sent_after(0)
               if s.kind == "todo" and s.payload["op"] == "create"]
    dones = [s.payload for s in await h.sent_after(0)
             if s.kind == "todo" and s.payload["op"] == "done"]
    for p in dones + creates:           # the done goes out first (the create was retrying)
        await send_todo(h.db, h.dingtalk, h.settings.org.corp_id, p)
    assert h.dingtalk.todos == {}


async def test_a_failed_todo_call_never_blocks_the_card(ht: Harness) -> None:
    h = ht
    h.dingtalk.fail_next("create_todo", NotFound("/v1.0/todo", 403, "forbidden", "no"))
    await h.ask("qianqi", "request crm.export for 1d x", "R-1")
    await h.card_status(CARD.format(1), "pending")
    creates = [s.payload for s in await h.sent_after(0)
               if s.kind == "todo" and s.payload["op"] == "create"]
    with pytest.raises(NotFound):       # the outbox retries it later
        await send_todo(h.db, h.dingtalk, h.settings.org.corp_id, creates[0])
    await send_todo(h.db, h.dingtalk, h.settings.org.corp_id, creates[0])
    assert len(h.dingtalk.todos) == 1
    await h.press("lisi", CARD.format(1), "approve")
    await h.card_status(CARD.format(1), "applied")


async def test_no_todos_unless_turned_on(h: Harness) -> None:
    await h.ask("qianqi", "request crm.export for 1d x", "R-1")
    assert not [s for s in await h.sent_after(0) if s.kind == "todo"]
