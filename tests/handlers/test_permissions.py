"""Business permissions at the handler level (ported from the end-to-end suite, same
assertions): role set, grant, revoke, admin add/remove, who-has, whoami, refusals, who may
approve, 2-of-m, template refusals, time-bound grants expiring through due work. The wire
path keeps its runs in tests/e2e/test_permissions.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.models import AuditEntry, Request
from tests.handlers.conftest import CARD, GROUP, Harness, MakeHarness, replies
from tests.support import audit_actions, grants, member, verify_chain


@pytest.fixture
async def h2(make_harness: MakeHarness) -> Harness:
    return await make_harness(policy={"approvals_required": 2})


@pytest.fixture
async def h_ag(make_harness: MakeHarness) -> Harness:
    return await make_harness(org={"admin_conversations": [GROUP]})


async def test_role_grant_revoke_whoami_in_chinese(h: Harness) -> None:
    text = await h.ask("lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    assert "赵六" in text and "原为：无" in text
    assert (await member(h, "zhaoliu")).role == "sales"
    text = await h.ask("lisi", "授权 @赵六 crm.report.view 7天", "已授予", ("zhaoliu",))
    assert "查看报表" in text and "至 " in text
    g = await grants(h, "zhaoliu")
    assert set(g) == {"crm.report.view"} and g["crm.report.view"] is not None
    text = await h.ask("zhaoliu", "我的权限", "我的权限")
    assert "crm.customer.view 查看客户（来源：角色 sales）" in text
    assert "crm.report.view 查看报表（来源：授权，" in text and "到期" in text
    # The same grant again, shorter: merged, nothing changes.
    text = await h.ask("lisi", "授权 @赵六 crm.report.view 1天", "未做更改", ("zhaoliu",))
    assert len(await grants(h, "zhaoliu")) == 1
    text = await h.ask("wangwu", "谁有 crm.customer.view", "拥有")
    assert "赵六" in text and "角色 sales" in text
    text = await h.ask("lisi", "撤销 @赵六 crm.report.view", "已撤销", ("zhaoliu",))
    assert await grants(h, "zhaoliu") == {}
    # A permission from the role cannot be revoked as a grant: the reply names the source.
    text = await h.ask("lisi", "撤销 @赵六 crm.customer.view", "不是直接授权", ("zhaoliu",))
    assert "角色 sales" in text
    # ... and which command would change it: the role's, not another revoke.
    assert "业务角色 sales" in text and "`设置角色 uid:zhaoliu <角色>`" in text
    assert "`清除角色 uid:zhaoliu`" in text and "`撤销" not in text
    actions = await audit_actions(h)
    assert ("role_set.apply", "applied", "zhaoliu") in actions
    assert ("grant.apply", "applied", "zhaoliu") in actions
    assert ("grant.revoke", "applied", "zhaoliu") in actions
    assert ("revoke.refused", "refused", "zhaoliu") in actions
    await verify_chain(h)


async def test_english_forms_and_overlapping_sources(h: Harness) -> None:
    await h.ask("lisi", "role set @qianqi analyst", "role is now analyst", ("qianqi",))
    await h.ask("lisi", "grant @qianqi crm.customer.view for 2h", "Granted", ("qianqi",))
    text = await h.ask("qianqi", "whoami", "My permissions")
    assert "crm.customer.view View customers (from role analyst, a grant, expires" in text
    # Revoking the grant keeps what the role still justifies, and says so.
    text = await h.ask("lisi", "revoke @qianqi crm.customer.view", "Revoked", ("qianqi",))
    assert "still holds it through: role analyst" in text
    assert "business role analyst" in text and "`role clear uid:qianqi`" in text
    assert "`role set uid:qianqi <role>`" in text
    # Held through a granted role, the grant of that role is what to revoke.
    await h.ask("lisi", "grant @zhaoliu sales", "Granted", ("zhaoliu",))
    text = await h.ask("lisi", "revoke @zhaoliu crm.customer.edit", "not through a grant",
                     ("zhaoliu",))
    assert "`revoke uid:zhaoliu sales` removes that grant" in text and "role clear" not in text
    text = await h.ask("qianqi", "whoami", "My permissions")
    assert "crm.customer.view View customers (from role analyst)" in text
    text = await h.ask("wangwu", "who-has analyst", "Members holding")
    assert "钱七" in text


async def test_roles_lists_the_catalog_for_anyone(h: Harness) -> None:
    text = await h.ask("zhaoliu", "roles", "Roles (3)")
    assert "- **sales**: crm.customer.edit Edit customers, crm.customer.view View customers" in text
    assert "- **crm_admin** (has sensitive permissions): " in text
    assert "crm.export Export data" in text
    text = await h.ask("zhaoliu", "角色列表", "角色（3 个）")
    assert "- **analyst**：crm.customer.view 查看客户、crm.report.view 查看报表" in text
    for ask, expect in (("help", "`role clear @user`"), ("帮助", "`清除角色 @用户`")):
        text = await h.ask("zhaoliu", ask, expect)
        assert "`roles`" in text or "`角色列表`" in text


async def test_role_clear_is_audited_needs_no_approval_and_says_when_there_is_none(
        h: Harness) -> None:
    await h.ask("lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    text = await h.ask("lisi", "清除角色 @赵六", "已清除", ("zhaoliu",))
    assert "赵六 (zhaoliu)" in text and "原为：sales" in text
    assert (await member(h, "zhaoliu")).role is None
    text = await h.ask("lisi", "清除角色 @赵六", "没有业务角色", ("zhaoliu",))
    # A member may not clear roles; the refusal is audited.
    await h.ask("zhaoliu", "role clear @qianqi", "Only the owner or an admin", ("qianqi",))
    # A role with a sensitive permission needed approval to be set, but not to be cleared.
    await h.ask("lisi", "role set @qianqi crm_admin", "Request **R-1** is open", ("qianqi",))
    await h.press("zhangsan", CARD.format(1), "approve")
    await h.card_status(CARD.format(1), "applied")
    assert (await member(h, "qianqi")).role == "crm_admin"
    text = await h.ask("lisi", "role clear @qianqi", "no longer has a business role",
                     ("qianqi",))
    assert "(was: crm" in text
    assert (await member(h, "qianqi")).role is None
    async with h.db.uow() as uow:          # the clear opened no request
        assert len((await uow.session.execute(select(Request))).scalars().all()) == 1
    actions = await audit_actions(h)
    assert ("role_clear.apply", "applied", "zhaoliu") in actions
    assert ("role_clear.apply", "applied", "qianqi") in actions
    assert ("role clear.refused", "refused", None) in actions
    await verify_chain(h)


async def test_refusals_authority_unknown_names_and_users(h: Harness) -> None:
    text = await h.ask("zhaoliu", "grant @qianqi crm.report.view", "Only the owner or an admin",
                     ("qianqi",))
    assert "you are: member" in text
    text = await h.ask("zhaoliu", "授权 @钱七 crm.report.view", "只有主管理员或子管理员",
                     ("qianqi",))
    text = await h.ask("lisi", "grant @qianqi crm.exprot", "Did you mean", ("qianqi",))
    assert "`crm.export`" in text
    text = await h.ask("lisi", "设置角色 @钱七 sale", "没有名为「sale」的角色", ("qianqi",))
    assert "`sales`" in text
    text = await h.ask("lisi", "role set @qianqi crm.export", "is a permission, not a role",
                     ("qianqi",))
    text = await h.ask("lisi", "grant uid:nobody42 crm.report.view", "directory has no member")
    text = await h.ask("lisi", "grant @sunba crm.report.view", "is inactive", ("sunba",))
    text = await h.ask("lisi", "role set @qianqi admin", "built in", ("qianqi",))
    assert await grants(h, "qianqi") == {}
    async with h.db.uow() as uow:
        stored = await uow.members.get(h.settings.org.corp_id, "qianqi")
        assert stored is None or stored.role is None
    refused = [a for a in await audit_actions(h) if a[1] == "refused"]
    assert ("grant.refused", "refused", None) in refused          # not an admin
    assert len(refused) >= 6


async def test_no_one_approves_a_change_about_themselves(h: Harness) -> None:
    """product.md §4: no one approves their own request. wangwu, an admin, may not approve
    a sensitive grant to himself, nor a sensitive template applied to him; the owner may."""
    await h.ask("lisi", "授权 @王五 crm.export", "已发起审批", ("wangwu",))
    card = CARD.format(1)
    await h.card_status(card, "pending")
    notice = await h.press("wangwu", card, "approve")
    assert "张三" in notice and "王五" not in notice        # who may decide: not him
    assert (await h.card_status(card, "pending"))["progress"].startswith("0/1")
    assert await grants(h, "wangwu") == {}
    await h.press("zhangsan", card, "approve")
    await h.card_status(card, "applied")
    assert set(await grants(h, "wangwu")) == {"crm.export"}
    assert ("grant.click_refused", "refused", "wangwu") in await audit_actions(h)

    await h.ask("lisi", "模板 创建 exporters crm.export", "已创建")
    await h.ask("lisi", "模板 应用 exporters @王五 @赵六", "已发起审批", ("wangwu", "zhaoliu"))
    card = CARD.format(2)
    await h.card_status(card, "pending")
    notice = await h.press("wangwu", card, "approve")
    assert "张三" in notice
    assert (await h.card_status(card, "pending"))["progress"].startswith("0/1")
    await h.press("zhangsan", card, "approve")
    await h.card_status(card, "applied")
    # Editing a template wangwu holds changes his permissions: he may not approve that either.
    await h.ask("lisi", "模板 修改 exporters crm.export,crm.customer.edit", "已发起审批")
    card = CARD.format(3)
    await h.card_status(card, "pending")
    assert "张三" in await h.press("wangwu", card, "approve")
    assert (await h.card_status(card, "pending"))["progress"].startswith("0/1")


async def test_the_same_request_asked_again_is_not_opened_twice(h: Harness) -> None:
    """A resend (no answer seen) of a change that needs approval points at the open request
    instead of opening a second one that would fail once the first applied."""
    await h.ask("lisi", "添加管理员 @赵六", "已发起审批", ("zhaoliu",))
    text = await h.ask("lisi", "添加管理员 @赵六", "已在等待审批", ("zhaoliu",))
    assert "R-1" in text
    await h.ask("lisi", "授权 @钱七 crm.export", "R-2", ("qianqi",))  # another change: opens
    async with h.db.uow() as uow:
        kinds = [r.kind for r in (await uow.session.execute(
            select(Request).order_by(Request.id))).scalars()]
    assert kinds == ["admin_add", "grant"]


async def test_two_of_m_admin_add_by_an_admin(h2: Harness) -> None:
    h = h2
    # Approvers for lisi's request: zhangsan (owner) and wangwu; both must agree.
    text = await h.ask("lisi", "admin add @qianqi", "Request **R-1** is open", ("qianqi",))
    assert "once 2 of" in text
    card = CARD.format(1)
    await h.press("zhangsan", card, "approve")
    params = await h.card_status(card, "pending")
    assert params["progress"].startswith("1/2")
    assert (await member(h, "qianqi")).level == "member"
    await h.press("wangwu", card, "approve")
    await h.card_status(card, "applied")
    assert (await member(h, "qianqi")).level == "admin"
    # The owner removes an admin at once, without a card.
    await h.ask("zhangsan", "移除管理员 @钱七", "已移除", ("qianqi",))
    assert (await member(h, "qianqi")).level == "member"


async def test_two_of_m_refused_when_too_few_approvers(h2: Harness) -> None:
    h = h2
    # For an admin change about wangwu asked by lisi, only zhangsan may approve: 1 < 2.
    text = await h.ask("lisi", "admin remove @wangwu", "needs 2 approvers", ("wangwu",))
    assert "only 1 can approve" in text
    async with h.db.uow() as uow:
        assert (await uow.session.execute(select(Request))).first() is None


async def test_owner_adds_admin_at_once_and_rejected_request_changes_nothing(
        h: Harness) -> None:
    await h.ask("zhangsan", "添加管理员 @赵六", "已将", ("zhaoliu",))
    assert (await member(h, "zhaoliu")).level == "admin"
    await h.ask("zhaoliu", "设置角色 @钱七 crm_admin", "已发起审批", ("qianqi",))
    card = CARD.format(1)
    _, sent = await h.click("wangwu", card, "reject", {"request_id": "1"})
    await h.card_status(card, "rejected")
    h.reply_with(sent, "被驳回", f"group:{GROUP}")
    assert (await member(h, "qianqi")).role is None


async def test_template_refusals(h: Harness) -> None:
    await h.ask("lisi", "template create base crm.customer.view", "created")
    await h.ask("lisi", "template create base crm.report.view", "already exists")
    await h.ask("lisi", "template show bsae", "Did you mean `base`")
    await h.ask("lisi", "template create other crm.nope", "no “crm.nope”")
    await h.ask("lisi", "template apply base dept:Nowhere", "no department “Nowhere”")
    await h.ask("zhaoliu", "template list", "Only the owner or an admin")
    # A template with a sensitive permission needs approval to be applied.
    await h.ask("lisi", "template create exporters crm.export", "created")
    await h.ask("lisi", "template apply exporters @qianqi", "Request **R-1** is open",
              ("qianqi",))


async def test_a_member_who_left_is_called_inactive_not_unknown(
        h: Harness) -> None:
    await h.ask("lisi", "template create base crm.customer.view", "created")
    h.dingtalk.set_user("qianqi", active=False)
    text = await h.ask("lisi", "template apply base @qianqi", "qianqi", ("qianqi",))
    assert "inactive" in text and "no member" not in text
    text = await h.ask("lisi", "授权 @钱七 crm.report.view", "钱七", ("qianqi",))
    assert "未激活" in text and "找不到" not in text
    assert await grants(h, "qianqi") == {}


async def test_time_bound_grant_expires_with_notices(h: Harness) -> None:
    clock = h.clock
    await h.ask("lisi", "grant @qianqi crm.report.view for 2h", "Granted", ("qianqi",))
    # Extending it (a longer overlapping grant) merges into one row with the later expiry.
    await h.ask("lisi", "grant @qianqi crm.report.view for 3h", "Granted", ("qianqi",))
    g = await grants(h, "qianqi")
    assert g == {"crm.report.view": clock.now() + timedelta(hours=3)}
    clock.advance(timedelta(hours=2, minutes=1))
    assert await h.due.run_once() >= 1
    assert await grants(h, "qianqi") != {}          # the 2h expiry was superseded
    clock.advance(timedelta(hours=1))
    assert await h.due.run_once() >= 1
    assert await grants(h, "qianqi") == {}

    # Scheduled notices speak the configured default language (zh-CN).
    queued = await h.sent_after(0)
    holder = [m for m in replies(queued, "user:qianqi") if "已到期" in m]
    granter = [m for m in replies(queued, "user:lisi") if "已到期" in m]
    assert holder and granter, "expiry notices to holder and granter"
    assert "crm.report.view" in holder[0] and "钱七" in granter[0]
    assert ("grant.expired", "applied", "qianqi") in await audit_actions(h)


async def test_outside_the_admin_groups_a_member_is_refused_for_authority_and_audited(
        h_ag: Harness) -> None:
    """product.md §2: a command a sender may not run gets a refusal naming the missing
    authority, audited and alerted, wherever it is sent; an admin outside the admin groups
    is told where to go, and that refusal is audited too."""
    h = h_ag
    other = "cidOTHERGROUP"     # 销售群: a group Baton is in, not an admin group
    text = await h.ask("zhaoliu", "授权 @钱七 crm.export", "「授权」只有主管理员或子管理员",
                     ("qianqi",), conversation=other)
    assert "管理群" not in text
    text = await h.ask("lisi", "授权 @钱七 crm.export", "指定的管理群", ("qianqi",),
                     conversation=other)
    assert await grants(h, "qianqi") == {}
    async with h.db.uow() as uow:
        refused = (await uow.session.execute(select(AuditEntry).where(
            AuditEntry.action == "grant.refused").order_by(AuditEntry.seq))).scalars().all()
        assert [(a.actor_id, a.after["reason"]) for a in refused] == [
            ("zhaoliu", "need_admin"), ("lisi", "admin_conversation_only")]
