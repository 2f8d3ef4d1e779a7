"""Business permissions end to end, through the SDK: a sensitive grant approved on its card,
templates (create, apply, edit with impact, delete; both languages), and requests asked
one-to-one reaching approvers and the admin group. The rest of this family's behaviour is
tested at the handler level, tests/handlers/test_permissions.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from bot.app import BatonApp
from bot.cli.sandbox import sim_settings
from bot.config import Settings
from dingtalk_sim import Simulator
from storage.models import Member, TemplateAssignment
from tests.e2e.conftest import CARD, GROUP, card_status, click, reply_to
from tests.e2e.helpers import say
from tests.support import audit_actions, grants, verify_chain

pytestmark = pytest.mark.e2e


# ---- approvals ----------------------------------------------------------------------------

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
        assert tpl is not None and tpl.permissions == ("crm.customer.view", "crm.report.view")
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


# ---- a long answer in pages -------------------------------------------------------------------

async def test_who_has_over_thousands_of_holders_pages_over_the_wire(
        sim: Simulator, bot: BatonApp) -> None:
    """Each page goes through the simulator's 15,000-byte msgParam check; next continues."""
    corp, now = bot.settings.org.corp_id, datetime.now(UTC)
    async with bot.db.uow() as uow:
        await uow.session.execute(insert(Member), [
            {"corp_id": corp, "user_id": f"m{i:05d}", "name": "名" * 60, "level": "member",
             "role": "analyst", "active": True, "created_at": now, "updated_at": now}
            for i in range(3000)])
        await uow.commit()
    bot.index.invalidate()      # seeded behind the change feed's back: load afresh
    text = await say(sim, "lisi", "who-has crm.report.view", "Page 1 of 61")
    assert "Members holding crm.report.view View reports (3001)" in text
    assert text.count("\n- ") == 50 and "(m00049): role analyst" in text
    text = await say(sim, "lisi", "下一页", "第 2/61 页")
    assert "(m00050)" in text and "(m00099)" in text
