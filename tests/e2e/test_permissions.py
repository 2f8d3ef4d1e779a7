"""Business permissions end to end: role set, grant, revoke, admin add/remove, who-has,
whoami, templates; approvals on cards; time-bound grants expiring through due work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import BatonApp
from bot.cli.sandbox import sim_settings
from bot.config import Settings
from bot.core.clock import FakeClock
from dingtalk_sim import Simulator
from storage.models import AuditEntry, Request, TemplateAssignment
from tests.e2e.conftest import CARD, GROUP, card_status, click, reply_to
from tests.e2e.helpers import say
from tests.support import audit_actions, grants, member, verify_chain

pytestmark = pytest.mark.e2e


# ---- role set, grant, revoke, whoami, who-has ---------------------------------------------

async def test_role_grant_revoke_whoami_in_chinese(sim: Simulator, bot: BatonApp) -> None:
    text = await say(sim, "lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    assert "赵六" in text and "原为：无" in text
    assert (await member(bot, "zhaoliu")).role == "sales"
    text = await say(sim, "lisi", "授权 @赵六 crm.report.view 7天", "已授予", ("zhaoliu",))
    assert "查看报表" in text and "至 " in text
    g = await grants(bot, "zhaoliu")
    assert set(g) == {"crm.report.view"} and g["crm.report.view"] is not None
    text = await say(sim, "zhaoliu", "我的权限", "我的权限")
    assert "crm.customer.view 查看客户（来源：角色 sales）" in text
    assert "crm.report.view 查看报表（来源：授权，" in text and "到期" in text
    # The same grant again, shorter: merged, nothing changes.
    text = await say(sim, "lisi", "授权 @赵六 crm.report.view 1天", "未做更改", ("zhaoliu",))
    assert len(await grants(bot, "zhaoliu")) == 1
    text = await say(sim, "wangwu", "谁有 crm.customer.view", "拥有")
    assert "赵六" in text and "角色 sales" in text
    text = await say(sim, "lisi", "撤销 @赵六 crm.report.view", "已撤销", ("zhaoliu",))
    assert await grants(bot, "zhaoliu") == {}
    # A permission from the role cannot be revoked as a grant: the reply names the source.
    text = await say(sim, "lisi", "撤销 @赵六 crm.customer.view", "不是直接授权", ("zhaoliu",))
    assert "角色 sales" in text
    # ... and which command would change it: the role's, not another revoke.
    assert "业务角色 sales" in text and "`设置角色 uid:zhaoliu <角色>`" in text
    assert "`清除角色 uid:zhaoliu`" in text and "`撤销" not in text
    actions = await audit_actions(bot)
    assert ("role_set.apply", "applied", "zhaoliu") in actions
    assert ("grant.apply", "applied", "zhaoliu") in actions
    assert ("grant.revoke", "applied", "zhaoliu") in actions
    assert ("revoke.refused", "refused", "zhaoliu") in actions
    await verify_chain(bot)


async def test_english_forms_and_overlapping_sources(sim: Simulator, bot: BatonApp) -> None:
    await say(sim, "lisi", "role set @qianqi analyst", "role is now analyst", ("qianqi",))
    await say(sim, "lisi", "grant @qianqi crm.customer.view for 2h", "Granted", ("qianqi",))
    text = await say(sim, "qianqi", "whoami", "My permissions")
    assert "crm.customer.view View customers (from role analyst, a grant, expires" in text
    # Revoking the grant keeps what the role still justifies, and says so.
    text = await say(sim, "lisi", "revoke @qianqi crm.customer.view", "Revoked", ("qianqi",))
    assert "still holds it through: role analyst" in text
    assert "business role analyst" in text and "`role clear uid:qianqi`" in text
    assert "`role set uid:qianqi <role>`" in text
    # Held through a granted role, the grant of that role is what to revoke.
    await say(sim, "lisi", "grant @zhaoliu sales", "Granted", ("zhaoliu",))
    text = await say(sim, "lisi", "revoke @zhaoliu crm.customer.edit", "not through a grant",
                     ("zhaoliu",))
    assert "`revoke uid:zhaoliu sales` removes that grant" in text and "role clear" not in text
    text = await say(sim, "qianqi", "whoami", "My permissions")
    assert "crm.customer.view View customers (from role analyst)" in text
    text = await say(sim, "wangwu", "who-has analyst", "Members holding")
    assert "钱七" in text


async def test_roles_lists_the_catalog_for_anyone(sim: Simulator, bot: BatonApp) -> None:
    text = await say(sim, "zhaoliu", "roles", "Roles (3)")
    assert "- **sales**: crm.customer.edit Edit customers, crm.customer.view View customers" in text
    assert "- **crm_admin** (has sensitive permissions): " in text
    assert "crm.export Export data" in text
    text = await say(sim, "zhaoliu", "角色列表", "角色（3 个）")
    assert "- **analyst**：crm.customer.view 查看客户、crm.report.view 查看报表" in text
    for ask, expect in (("help", "`role clear @user`"), ("帮助", "`清除角色 @用户`")):
        text = await say(sim, "zhaoliu", ask, expect)
        assert "`roles`" in text or "`角色列表`" in text


async def test_role_clear_is_audited_needs_no_approval_and_says_when_there_is_none(
        sim: Simulator, bot: BatonApp) -> None:
    await say(sim, "lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    text = await say(sim, "lisi", "清除角色 @赵六", "已清除", ("zhaoliu",))
    assert "赵六 (zhaoliu)" in text and "原为：sales" in text
    assert (await member(bot, "zhaoliu")).role is None
    text = await say(sim, "lisi", "清除角色 @赵六", "没有业务角色", ("zhaoliu",))
    # A member may not clear roles; the refusal is audited.
    await say(sim, "zhaoliu", "role clear @qianqi", "Only the owner or an admin", ("qianqi",))
    # A role with a sensitive permission needed approval to be set, but not to be cleared.
    await say(sim, "lisi", "role set @qianqi crm_admin", "Request **R-1** is open", ("qianqi",))
    await click(sim, "zhangsan", CARD.format(1), "approve")
    await card_status(sim, CARD.format(1), "applied")
    assert (await member(bot, "qianqi")).role == "crm_admin"
    text = await say(sim, "lisi", "role clear @qianqi", "no longer has a business role",
                     ("qianqi",))
    assert "(was: crm" in text
    assert (await member(bot, "qianqi")).role is None
    async with bot.db.uow() as uow:          # the clear opened no request
        assert len((await uow.session.execute(select(Request))).scalars().all()) == 1
    actions = await audit_actions(bot)
    assert ("role_clear.apply", "applied", "zhaoliu") in actions
    assert ("role_clear.apply", "applied", "qianqi") in actions
    assert ("role clear.refused", "refused", None) in actions
    await verify_chain(bot)


async def test_refusals_authority_unknown_names_and_users(sim: Simulator, bot: BatonApp) -> None:
    text = await say(sim, "zhaoliu", "grant @qianqi crm.report.view", "Only the owner or an admin",
                     ("qianqi",))
    assert "you are: member" in text
    text = await say(sim, "zhaoliu", "授权 @钱七 crm.report.view", "只有主管理员或子管理员",
                     ("qianqi",))
    text = await say(sim, "lisi", "grant @qianqi crm.exprot", "Did you mean", ("qianqi",))
    assert "`crm.export`" in text
    text = await say(sim, "lisi", "设置角色 @钱七 sale", "没有名为「sale」的角色", ("qianqi",))
    assert "`sales`" in text
    text = await say(sim, "lisi", "role set @qianqi crm.export", "is a permission, not a role",
                     ("qianqi",))
    text = await say(sim, "lisi", "grant uid:nobody42 crm.report.view", "directory has no member")
    text = await say(sim, "lisi", "grant @sunba crm.report.view", "is inactive", ("sunba",))
    text = await say(sim, "lisi", "role set @qianqi admin", "built in", ("qianqi",))
    assert await grants(bot, "qianqi") == {}
    async with bot.db.uow() as uow:
        stored = await uow.members.get(bot.settings.org.corp_id, "qianqi")
        assert stored is None or stored.role is None
    refused = [a for a in await audit_actions(bot) if a[1] == "refused"]
    assert ("grant.refused", "refused", None) in refused          # not an admin
    assert len(refused) >= 6


# ---- approvals ----------------------------------------------------------------------------

async def test_no_one_approves_a_change_about_themselves(sim: Simulator, bot: BatonApp) -> None:
    """product.md §4: no one approves their own request. wangwu, an admin, may not approve
    a sensitive grant to himself, nor a sensitive template applied to him; the owner may."""
    await say(sim, "lisi", "授权 @王五 crm.export", "已发起审批", ("wangwu",))
    card = CARD.format(1)
    await card_status(sim, card, "pending")
    notice = await click(sim, "wangwu", card, "approve")
    assert "张三" in notice and "王五" not in notice        # who may decide: not him
    assert (await card_status(sim, card, "pending"))["progress"].startswith("0/1")
    assert await grants(bot, "wangwu") == {}
    await click(sim, "zhangsan", card, "approve")
    await card_status(sim, card, "applied")
    assert set(await grants(bot, "wangwu")) == {"crm.export"}
    assert ("grant.click_refused", "refused", "wangwu") in await audit_actions(bot)

    await say(sim, "lisi", "模板 创建 exporters crm.export", "已创建")
    await say(sim, "lisi", "模板 应用 exporters @王五 @赵六", "已发起审批", ("wangwu", "zhaoliu"))
    card = CARD.format(2)
    await card_status(sim, card, "pending")
    notice = await click(sim, "wangwu", card, "approve")
    assert "张三" in notice
    assert (await card_status(sim, card, "pending"))["progress"].startswith("0/1")
    await click(sim, "zhangsan", card, "approve")
    await card_status(sim, card, "applied")
    # Editing a template wangwu holds changes his permissions: he may not approve that either.
    await say(sim, "lisi", "模板 修改 exporters crm.export,crm.customer.edit", "已发起审批")
    card = CARD.format(3)
    await card_status(sim, card, "pending")
    assert "张三" in await click(sim, "wangwu", card, "approve")
    assert (await card_status(sim, card, "pending"))["progress"].startswith("0/1")


async def test_the_same_request_asked_again_is_not_opened_twice(sim: Simulator,
                                                                bot: BatonApp) -> None:
    """A resend (no answer seen) of a change that needs approval points at the open request
    instead of opening a second one that would fail once the first applied."""
    await say(sim, "lisi", "添加管理员 @赵六", "已发起审批", ("zhaoliu",))
    text = await say(sim, "lisi", "添加管理员 @赵六", "已在等待审批", ("zhaoliu",))
    assert "R-1" in text
    await say(sim, "lisi", "授权 @钱七 crm.export", "R-2", ("qianqi",))  # another change: opens
    async with bot.db.uow() as uow:
        kinds = [r.kind for r in (await uow.session.execute(
            select(Request).order_by(Request.id))).scalars()]
    assert kinds == ["admin_add", "grant"]


async def test_sensitive_grant_needs_another_admin_and_no_self_approval(
        sim: Simulator, bot: BatonApp) -> None:
    text = await say(sim, "lisi", "授权 @钱七 crm.export 3天", "已发起审批", ("qianqi",))
    assert "R-1" in text and "导出数据" in text
    card = CARD.format(1)
    params = await card_status(sim, card, "pending")
    assert "0/1" in params["progress"] and "导出数据" in params["markdown"]
    assert await grants(bot, "qianqi") == {}
    notice = await click(sim, "lisi", card, "approve")          # the requester: refused
    assert "自己" in notice
    notice = await click(sim, "qianqi", card, "approve")        # not an approver
    assert notice
    await click(sim, "wangwu", card, "approve")
    params = await card_status(sim, card, "applied")
    g = await grants(bot, "qianqi")
    assert set(g) == {"crm.export"} and g["crm.export"] is not None
    await reply_to(sim, GROUP, "R-1** 已生效")
    actions = await audit_actions(bot)
    assert ("grant.click_refused", "refused", "qianqi") in actions
    assert ("grant.apply", "applied", "qianqi") in actions
    await verify_chain(bot)


@pytest.fixture
def two_of_m(sim: Simulator, db_url: str) -> Settings:
    return sim_settings(sim, db_url, policy={"approvals_required": 2})


@pytest.fixture
async def bot2(two_of_m: Settings) -> AsyncIterator[BatonApp]:
    async with BatonApp(two_of_m) as app:
        await app.wait_connected()
        yield app


async def test_two_of_m_admin_add_by_an_admin(sim: Simulator, bot2: BatonApp) -> None:
    # Approvers for lisi's request: zhangsan (owner) and wangwu; both must agree.
    text = await say(sim, "lisi", "admin add @qianqi", "Request **R-1** is open", ("qianqi",))
    assert "once 2 of" in text
    card = CARD.format(1)
    await click(sim, "zhangsan", card, "approve")
    params = await card_status(sim, card, "pending")
    assert params["progress"].startswith("1/2")
    assert (await member(bot2, "qianqi")).level == "member"
    await click(sim, "wangwu", card, "approve")
    await card_status(sim, card, "applied")
    assert (await member(bot2, "qianqi")).level == "admin"
    # The owner removes an admin at once, without a card.
    await say(sim, "zhangsan", "移除管理员 @钱七", "已移除", ("qianqi",))
    assert (await member(bot2, "qianqi")).level == "member"


async def test_two_of_m_refused_when_too_few_approvers(sim: Simulator, bot2: BatonApp) -> None:
    # For an admin change about wangwu asked by lisi, only zhangsan may approve: 1 < 2.
    text = await say(sim, "lisi", "admin remove @wangwu", "needs 2 approvers", ("wangwu",))
    assert "only 1 can approve" in text
    async with bot2.db.uow() as uow:
        assert (await uow.session.execute(select(Request))).first() is None


async def test_owner_adds_admin_at_once_and_rejected_request_changes_nothing(
        sim: Simulator, bot: BatonApp) -> None:
    await say(sim, "zhangsan", "添加管理员 @赵六", "已将", ("zhaoliu",))
    assert (await member(bot, "zhaoliu")).level == "admin"
    await say(sim, "zhaoliu", "设置角色 @钱七 crm_admin", "已发起审批", ("qianqi",))
    card = CARD.format(1)
    await click(sim, "wangwu", card, "reject")
    await card_status(sim, card, "rejected")
    await reply_to(sim, GROUP, "被驳回")
    assert (await member(bot, "qianqi")).role is None


# ---- templates ----------------------------------------------------------------------------

async def test_templates_create_apply_dept_edit_with_impact_and_delete(
        sim: Simulator, bot: BatonApp) -> None:
    text = await say(sim, "lisi", "模板 创建 销售基础 crm.customer.view,crm.report.view", "已创建模板")
    assert "查看客户" in text
    # dept:销售部 takes its members and its sub-team's (赵六 in 销售部, 钱七 in 华东销售组).
    text = await say(sim, "lisi", "模板 应用 销售基础 dept:销售部", "应用到 2 人")
    assert "qianqi" in text and "zhaoliu" in text     # named (by userId when not yet seen)
    async with bot.db.uow() as uow:
        rows = (await uow.session.execute(select(TemplateAssignment))).scalars().all()
        assert {(r.user_id, r.via_dept) for r in rows} == {("zhaoliu", "2"), ("qianqi", "2")}
    text = await say(sim, "zhaoliu", "我的权限", "我的权限")
    assert "crm.report.view 查看报表（来源：模板 销售基础）" in text
    text = await say(sim, "lisi", "模板 列表", "权限模板")
    assert "**销售基础**（2 人）" in text
    # Editing shows the impact and needs approval; holders change only once approved.
    text = await say(sim, "lisi", "模板 修改 销售基础 crm.customer.view,crm.customer.edit",
                     "已发起审批")
    assert "2 人将新增 crm.customer.edit" in text and "2 人将失去 crm.report.view" in text
    # The preview names the members concerned, not only their number.
    assert "将新增 crm.customer.edit 编辑客户：qianqi、赵六 (zhaoliu)" in text
    card = CARD.format(1)
    params = await card_status(sim, card, "pending")
    assert "2 人将新增 crm.customer.edit" in params["markdown"]
    n = len(sim.messages(GROUP))
    await click(sim, "zhangsan", card, "approve")
    params = await card_status(sim, card, "applied")
    # Once applied, the change is told in the past tense, on the card and in the reply.
    done = await reply_to(sim, GROUP, "已生效", after=n)
    assert "2 人新增了 crm.customer.edit 编辑客户：qianqi、赵六 (zhaoliu)" in done
    assert "将新增" not in done and "将失去" not in done
    assert "将新增" not in params["markdown"] and "2 人失去了 crm.report.view" in params["markdown"]
    text = await say(sim, "qianqi", "whoami", "My permissions")
    assert "crm.customer.edit Edit customers (from template 销售基础)" in text
    assert "crm.report.view" not in text
    text = await say(sim, "lisi", "template show 销售基础", "Template")
    assert "Holders: 2" in text
    # Deleting a template people hold is a request too.
    await say(sim, "lisi", "template delete 销售基础", "Request **R-2** is open")
    await click(sim, "wangwu", CARD.format(2), "approve")
    await card_status(sim, CARD.format(2), "applied")
    text = await say(sim, "qianqi", "whoami", "My permissions")
    assert "No business permissions" in text
    await verify_chain(bot)


async def test_template_refusals(sim: Simulator, bot: BatonApp) -> None:
    await say(sim, "lisi", "template create base crm.customer.view", "created")
    await say(sim, "lisi", "template create base crm.report.view", "already exists")
    await say(sim, "lisi", "template show bsae", "Did you mean `base`")
    await say(sim, "lisi", "template create other crm.nope", "no “crm.nope”")
    await say(sim, "lisi", "template apply base dept:Nowhere", "no department “Nowhere”")
    await say(sim, "zhaoliu", "template list", "Only the owner or an admin")
    # A template with a sensitive permission needs approval to be applied.
    await say(sim, "lisi", "template create exporters crm.export", "created")
    await say(sim, "lisi", "template apply exporters @qianqi", "Request **R-1** is open",
              ("qianqi",))


async def test_a_member_who_left_is_called_inactive_not_unknown(
        sim: Simulator, bot: BatonApp) -> None:
    await say(sim, "lisi", "template create base crm.customer.view", "created")
    sim.set_user("qianqi", active=False)
    text = await say(sim, "lisi", "template apply base @qianqi", "qianqi", ("qianqi",))
    assert "inactive" in text and "no member" not in text
    text = await say(sim, "lisi", "授权 @钱七 crm.report.view", "钱七", ("qianqi",))
    assert "未激活" in text and "找不到" not in text
    assert await grants(bot, "qianqi") == {}


# ---- time-bound grants ----------------------------------------------------------------------

@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))


@pytest.fixture
async def clocked(settings: Settings, clock: FakeClock) -> AsyncIterator[BatonApp]:
    async with BatonApp(settings, clock=clock) as app:
        await app.wait_connected()
        yield app


async def test_time_bound_grant_expires_with_notices(sim: Simulator, clocked: BatonApp,
                                                     clock: FakeClock) -> None:
    await say(sim, "lisi", "grant @qianqi crm.report.view for 2h", "Granted", ("qianqi",))
    # Extending it (a longer overlapping grant) merges into one row with the later expiry.
    await say(sim, "lisi", "grant @qianqi crm.report.view for 3h", "Granted", ("qianqi",))
    g = await grants(clocked, "qianqi")
    assert g == {"crm.report.view": clock.now() + timedelta(hours=3)}
    clock.advance(timedelta(hours=2, minutes=1))
    assert await clocked.due.run_once() >= 1
    assert await grants(clocked, "qianqi") != {}          # the 2h expiry was superseded
    clock.advance(timedelta(hours=1))
    assert await clocked.due.run_once() >= 1
    assert await grants(clocked, "qianqi") == {}

    def notices() -> Any:
        # Scheduled notices speak the configured default language (zh-CN).
        holder = [m for m in sim.messages() if m.user_ids == ["qianqi"] and "已到期" in m.text]
        granter = [m for m in sim.messages() if m.user_ids == ["lisi"] and "已到期" in m.text]
        return holder and granter and (holder, granter)
    holder, granter = await sim.until(notices, what="expiry notices to holder and granter")
    assert "crm.report.view" in holder[0].text and "钱七" in granter[0].text
    assert ("grant.expired", "applied", "qianqi") in await audit_actions(clocked)


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_template_commands_in_both_languages(sim: Simulator, bot: BatonApp,
                                                   lang: str) -> None:
    w = {
        "zh": ("模板 创建 t1 crm.customer.view", "已创建模板", "模板 查看 t1", "使用人数：0",
               "模板 修改 t1 crm.customer.view,crm.report.view", "已发起审批",
               "模板 删除 t1", "已删除模板", "谁有 sales", "目前没有成员拥有"),
        "en": ("template create t1 crm.customer.view", "created", "template show t1", "Holders: 0",
               "template set t1 crm.customer.view,crm.report.view", "Request **R-1** is open",
               "template delete t1", "deleted (nobody held it)", "who-has sales", "Nobody holds"),
    }[lang]
    await say(sim, "lisi", w[0], w[1])
    await say(sim, "lisi", w[2], w[3])
    text = await say(sim, "lisi", w[4], w[5])
    assert ("0 位使用者" if lang == "zh" else "its 0 holders") in text
    await click(sim, "zhangsan", CARD.format(1), "approve")
    await card_status(sim, CARD.format(1), "applied")
    async with bot.db.uow() as uow:
        tpl = await uow.perms.template(bot.settings.org.corp_id, "t1")
        assert tpl is not None and tpl.permissions == ["crm.customer.view", "crm.report.view"]
    await say(sim, "lisi", w[6], w[7])
    await say(sim, "lisi", w[8], w[9])


@pytest.fixture
def admin_group(sim: Simulator, db_url: str) -> Settings:
    return sim_settings(sim, db_url, org={"admin_conversations": [GROUP]})


@pytest.fixture
async def bot_ag(admin_group: Settings) -> AsyncIterator[BatonApp]:
    async with BatonApp(admin_group) as app:
        await app.wait_connected()
        yield app


async def test_a_request_asked_one_to_one_without_an_admin_group_reaches_each_approver(
        sim: Simulator, bot: BatonApp) -> None:
    """No admin group to put the card in: each approver gets it one-to-one, any copy
    takes the decision, and every copy shows the outcome."""
    assert not bot.settings.org.admin_conversations
    n = len(sim.messages("cidOTOlisi"))
    sim.say("lisi", "grant uid:qianqi crm.export")                    # one-to-one with Baton
    await reply_to(sim, "cidOTOlisi", "Request **R-1** is open", after=n)
    card = CARD.format(1)
    await card_status(sim, card, "pending")                           # in lisi's chat
    copies = {f"{card}-dma": "wangwu", f"{card}-dmb": "zhangsan"}     # the approvers, sorted
    for track, user in copies.items():
        params = await card_status(sim, track, "pending")
        assert "crm.export" in params["markdown"]
        assert sim.cards()[track].spaces == [f"dtv1.card//IM_ROBOT.{user}"]
    assert "own request" in await click(sim, "lisi", card, "approve")
    await click(sim, "wangwu", f"{card}-dma", "approve")
    for track in (card, *copies):
        await card_status(sim, track, "applied")
    assert set(await grants(bot, "qianqi")) == {"crm.export"}


async def test_outside_the_admin_groups_a_member_is_refused_for_authority_and_audited(
        sim: Simulator, bot_ag: BatonApp) -> None:
    """product.md §2: a command a sender may not run gets a refusal naming the missing
    authority, audited and alerted, wherever it is sent; an admin outside the admin groups
    is told where to go, and that refusal is audited too."""
    from dingtalk_sim import SimGroup

    other = "cidOTHERGROUP"
    sim.add_group(SimGroup(other, "销售群"))
    text = await say(sim, "zhaoliu", "授权 @钱七 crm.export", "「授权」只有主管理员或子管理员",
                     ("qianqi",), conversation=other)
    assert "管理群" not in text
    text = await say(sim, "lisi", "授权 @钱七 crm.export", "指定的管理群", ("qianqi",),
                     conversation=other)
    assert await grants(bot_ag, "qianqi") == {}
    async with bot_ag.db.uow() as uow:
        refused = (await uow.session.execute(select(AuditEntry).where(
            AuditEntry.action == "grant.refused").order_by(AuditEntry.seq))).scalars().all()
        assert [(a.actor_id, a.after["reason"]) for a in refused] == [
            ("zhaoliu", "need_admin"), ("lisi", "admin_conversation_only")]


async def test_a_request_asked_one_to_one_reaches_the_admin_group(
        sim: Simulator, bot_ag: BatonApp) -> None:
    n = len(sim.messages("cidOTOlisi"))
    sim.say("lisi", "grant uid:qianqi crm.export")                    # one-to-one with Baton
    await reply_to(sim, "cidOTOlisi", "Request **R-1** is open", after=n)
    await card_status(sim, CARD.format(1), "pending")                 # in lisi's chat
    twin = await card_status(sim, CARD.format(1) + "-group", "pending")
    assert "crm.export" in twin["markdown"]
    assert sim.cards()[CARD.format(1) + "-group"].spaces == [f"dtv1.card//IM_GROUP.{GROUP}"]
    await click(sim, "wangwu", CARD.format(1) + "-group", "approve")
    await card_status(sim, CARD.format(1), "applied")                  # both update together
    await card_status(sim, CARD.format(1) + "-group", "applied")
    assert set(await grants(bot_ag, "qianqi")) == {"crm.export"}
