"""Members asking for access themselves (product.md section 13), end to end through the SDK
against the simulator: a request approved by the requester's manager (read from the
simulated directory) with DingTalk to-dos opened and closed, an automatic approval and a
release, and break-glass withdrawn from its card, then judged on the owner's review card.
The rest is tested at the handler level, tests/handlers/test_access.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import BatonApp
from bot.cli.sandbox import sim_settings
from bot.config import Settings
from dingtalk_sim import Simulator
from tests.e2e.conftest import CARD, card_status, click, reply_to
from tests.e2e.helpers import say
from tests.support import audit_actions, grants, verify_chain

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(sim: Simulator, db_url: str) -> Settings:
    return sim_settings(sim, db_url, integrations={"dingtalk_todo": True},
                        policy={"break_glass": {"users": ["qianqi"],
                                                "permissions": ["crm.export"], "max": "1h"}})


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[BatonApp]:
    async with BatonApp(settings) as a:
        await a.wait_connected()
        yield a


async def test_a_member_asks_their_manager_approves_and_the_todos_follow(
        sim: Simulator, app: BatonApp) -> None:
    n = len(sim.messages("cidOTOqianqi"))
    sim.say("qianqi", "申请 finance.invoice 4小时 给客户开月结发票")          # one-to-one
    text = await reply_to(sim, "cidOTOqianqi", "已发起申请 **R-1**", after=n)
    assert "赵六" in text and "4小时" in text                  # the manager, from the directory
    card = CARD.format(1)
    copies = {f"{card}-dma": "lisi", f"{card}-dmb": "wangwu", f"{card}-dmc": "zhaoliu"}
    for track, user in copies.items():
        params = await card_status(sim, track, "pending")
        assert "钱七" in params["markdown"] and "给客户开月结发票" in params["markdown"]
        assert sim.cards()[track].spaces == [f"dtv1.card//IM_ROBOT.{user}"]
    # Each approver has a to-do in DingTalk, in their own list (by unionId).
    todos = await sim.until(lambda: len(sim.todos()) == 3 and sim.todos(), what="3 to-dos")
    assert {t.union_id for t in todos.values()} == {sim.union_id(u) for u in copies.values()}
    assert all("R-1" in t.subject and not t.done for t in todos.values())
    await click(sim, "zhaoliu", f"{card}-dmc", "approve")
    await card_status(sim, card, "applied")
    assert set(await grants(app, "qianqi")) == {"finance.invoice"}
    # Decided by one: every to-do is done.
    await sim.until(lambda: all(t.done for t in sim.todos().values()), what="to-dos done")
    actions = await audit_actions(app)
    assert ("grant.apply", "applied", "qianqi") in actions
    await verify_chain(app)


async def test_auto_approval_then_release(sim: Simulator, app: BatonApp) -> None:
    text = await say(sim, "qianqi", "request crm.report.view for 2h weekly numbers",
                     "approved by policy")
    assert "View reports" in text
    assert set(await grants(app, "qianqi")) == {"crm.report.view"}
    await say(sim, "qianqi", "policy show crm.report.view", "at most 2h")
    await say(sim, "qianqi", "release crm.report.view", "given back")
    assert await grants(app, "qianqi") == {}
    await say(sim, "qianqi", "release crm.report.view", "You hold no grant")


async def test_break_glass_is_announced_and_withdrawn_from_its_card(
        sim: Simulator, app: BatonApp) -> None:
    await say(sim, "zhaoliu", "紧急授权 crm.export 也想试试", "不在紧急授权名单")
    text = await say(sim, "qianqi", "紧急授权 crm.export 客户系统故障", "已生效")
    assert "R-1" in text
    track = CARD.format(1) + "-bg"
    params = await card_status(sim, track, "active")
    assert "客户系统故障" in params["markdown"]
    # One card, delivered one-to-one to the owner and each approver (not the holder).
    assert sorted(sim.cards()[track].spaces) == [
        f"dtv1.card//IM_ROBOT.{u}" for u in ("lisi", "wangwu", "zhangsan")]
    assert set(await grants(app, "qianqi")) == {"crm.export"}
    assert "只有被通知的" in await click(sim, "qianqi", track, "withdraw")
    notice = await click(sim, "wangwu", track, "withdraw")
    assert "已撤回" in notice
    await card_status(sim, track, "withdrawn")
    assert await grants(app, "qianqi") == {}
    # The owner's review item: a card of its own, decided with a click.
    review = CARD.format(2)
    params = await card_status(sim, review, "pending")
    assert "R-1" in params["markdown"] and "已由 王五" in params["markdown"]
    assert sim.cards()[review].spaces == ["dtv1.card//IM_ROBOT.zhangsan"]
    assert "只有" in await click(sim, "wangwu", review, "justified")
    assert "不合理" in await click(sim, "zhangsan", review, "unjustified")
    params = await card_status(sim, review, "rejected")
    assert "结论：不合理" in params["markdown"]
    assert ("break_glass.reviewed", "applied", "qianqi") in await audit_actions(app)
    await verify_chain(app)
