"""Offboarding and admin drift end to end (issue 17 §4): the simulator pushes DingTalk's org
events as EVENT frames over the real Stream socket to the real SDK; Baton acks each after
its commit, and a redelivered event changes nothing. The rest of the behaviour is tested at
the handler level, tests/handlers/test_drift.py."""

from __future__ import annotations

import pytest

from bot.app import BatonApp
from dingtalk_sim import Simulator
from tests.e2e.conftest import CARD, card_status, click, reply_to
from tests.e2e.helpers import say
from tests.support import audit_actions, grants, member, verify_chain

pytestmark = pytest.mark.e2e

OWNER_DM = "cidOTOzhangsan"


async def test_a_leave_pushed_over_stream_offboards_once(sim: Simulator, bot: BatonApp) -> None:
    await say(sim, "lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    await say(sim, "lisi", "授权 @赵六 crm.report.view 7天", "已授予", ("zhaoliu",))
    n = len(sim.messages(OWNER_DM))
    d = sim.member_leaves("zhaoliu")
    (ack,) = await sim.until(lambda: sim.acks(d.message_id), what="the event's ack")
    assert ack.code == 200 and ack.data == {"status": "SUCCESS"}
    text = await reply_to(sim, OWNER_DM, "已离职", after=n)
    assert "赵六" in text and "角色 sales" in text
    m = await member(bot, "zhaoliu")
    assert m.role is None and not m.active
    assert await grants(bot, "zhaoliu") == {}
    before = await audit_actions(bot)
    assert ("member.offboard", "applied", "zhaoliu") in before
    # DingTalk pushes the same event again (its ack was lost, say): acked, nothing twice.
    again = sim.redeliver(d)
    await sim.until(lambda: sim.acks(again.message_id), what="the redelivery's ack")
    assert await audit_actions(bot) == before
    await verify_chain(bot)


async def test_an_admin_added_in_the_console_is_alerted_and_adopted(
        sim: Simulator, bot: BatonApp) -> None:
    d = sim.console_add_admin("qianqi")
    assert d is not None
    card = CARD.format(1)
    params = await card_status(sim, card, "pending")
    assert "钱七" in params["markdown"]
    assert "只有" in await click(sim, "lisi", card, "adopt")      # only the owner decides
    assert (await member(bot, "qianqi")).level == "member"
    await click(sim, "zhangsan", card, "adopt")
    await card_status(sim, card, "applied")
    assert (await member(bot, "qianqi")).level == "admin"
    actions = await audit_actions(bot)
    assert ("admin_drift.click_refused", "refused", "qianqi") in actions
    assert ("admin_add.apply", "applied", "qianqi") in actions


async def test_an_admin_who_leaves_with_an_open_request_has_it_cancelled(
        sim: Simulator, bot: BatonApp) -> None:
    await say(sim, "wangwu", "授权 @钱七 crm.export", "R-1", ("qianqi",))
    await card_status(sim, CARD.format(1), "pending")
    sim.member_leaves("wangwu")
    await card_status(sim, CARD.format(1), "cancelled")
    assert (await member(bot, "wangwu")).level == "member"
