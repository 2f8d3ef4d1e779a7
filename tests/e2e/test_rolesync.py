"""DingTalk role sync end to end (SQLite and PostgreSQL): the real bot against the simulator's
role APIs. Start finds the role group and roles an admin made in the console (and creates
the one missing), the reconcile after start removes a label Baton does not give, a role set
in the chat reaches DingTalk through the change feed and the outbox, /metrics counts the
calls by API; and a corp whose app lacks the permission gets one alert, not a retry loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.app import BatonApp
from bot.cli.sandbox import sim_settings
from bot.config import Settings
from dingtalk_sim import Simulator
from dingtalk_sim.roles import ADD_EMPS_PATH, ADD_ROLE_PATH, MEMBERS_PATH, REMOVE_EMPS_PATH
from tests.e2e.conftest import GROUP
from tests.e2e.helpers import say

pytestmark = pytest.mark.e2e

ROLES = {"enabled": True, "group": "Baton", "map": {"sales": "销售", "analyst": "分析师"},
         "mode": "enforce"}


@pytest.fixture
def settings(sim: Simulator, db_url: str) -> Settings:
    return sim_settings(sim, db_url, ops={"port": 0},
                        integrations={"dingtalk_roles": ROLES},
                        org={"alert_conversation": GROUP}, limits={"alert_window": "1s"})


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[BatonApp]:
    async with BatonApp(settings) as a:
        await a.wait_connected()
        yield a


def alerts(sim: Simulator, contains: str) -> list[str]:
    return [m.text for m in sim.messages(GROUP) if contains in m.text]


async def metrics(app: BatonApp) -> str:
    async with aiohttp.ClientSession(trust_env=False) as s, \
            s.get(f"http://127.0.0.1:{app.ops.port}/metrics") as r:
        return await r.text()


async def test_roles_follow_baton(sim: Simulator, settings: Settings) -> None:
    # Before Baton's first start: an admin made the group and one role in the console, and
    # gave its label to someone Baton never gave the role.
    sim.console_assign_role("Baton", "销售", "wangwu")
    sales = sim.role_id("Baton", "销售")
    async with BatonApp(settings) as app:
        await app.wait_connected()
        assert sim.role_id("Baton", "销售") == sales          # found, not made again
        assert sim.role_id("Baton", "分析师") is not None      # the missing one made
        assert sim.role_calls(ADD_ROLE_PATH) == 1
        # The reconcile after start: wangwu's label goes, and the alert conversation hears.
        await sim.until(lambda: sim.role_holders("Baton", "销售") == [],
                        what="the reconcile to remove the extra label")
        await sim.until(lambda: alerts(sim, "钉钉角色对账"), what="the reconcile summary")
        assert "销售 多 wangwu" in alerts(sim, "钉钉角色对账")[0]

        await say(sim, "lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
        await sim.until(lambda: sim.role_holders("Baton", "销售") == ["zhaoliu"],
                        what="the role set to reach DingTalk")
        await say(sim, "lisi", "设置角色 @赵六 analyst", "业务角色设为 analyst", ("zhaoliu",))
        await sim.until(lambda: sim.role_holders("Baton", "分析师") == ["zhaoliu"]
                        and sim.role_holders("Baton", "销售") == [],
                        what="the move to reach DingTalk")
        assert sim.role_calls(ADD_EMPS_PATH) == 2 and sim.role_calls(REMOVE_EMPS_PATH) == 2
        text = await metrics(app)
        assert 'baton_dingtalk_calls_total{api="/topapi/role/addrolesforemps"} 2.0' in text
        assert f'baton_dingtalk_calls_total{{api="{MEMBERS_PATH}"}} 2.0' in text
        assert "baton_dingtalk_monthly_call_budget 10000.0" in text
    # After a restart: nothing made again, and the feed is followed from where it stopped.
    async with BatonApp(settings) as app:
        await app.wait_connected()
        await say(sim, "lisi", "清除角色 @赵六", "analyst", ("zhaoliu",))
        await sim.until(lambda: sim.role_holders("Baton", "分析师") == [],
                        what="the clear to reach DingTalk")
    assert sim.role_calls(ADD_ROLE_PATH) == 1 and sim.role_calls(ADD_EMPS_PATH) == 2
    assert len(alerts(sim, "钉钉角色对账")) == 1


async def test_refused_for_a_permission_alerts_once(sim: Simulator, app: BatonApp) -> None:
    await sim.until(lambda: sim.role_calls(MEMBERS_PATH) == 2, what="the first reconcile")
    sim.deny_roles()
    for who, name in (("zhaoliu", "赵六"), ("qianqi", "钱七")):
        await say(sim, "lisi", f"设置角色 @{name} sales", "业务角色设为 sales", (who,))
    await sim.until(lambda: app.outbox.parked == 2, what="both role calls parked")
    await sim.until(lambda: alerts(sim, "qyapi_manage_addresslist"), what="the alert")
    await say(sim, "zhaoliu", "whoami", "sales")            # a barrier: the bot is idle
    assert len(alerts(sim, "qyapi_manage_addresslist")) == 1
    assert sim.role_calls(ADD_EMPS_PATH) == 0 and sim.role_holders("Baton", "销售") == []
    text = await metrics(app)
    assert "baton_outbox_parked_total 2.0" in text


async def test_a_member_who_leaves_loses_the_label_without_a_failing_call(
        sim: Simulator, app: BatonApp) -> None:
    await sim.until(lambda: sim.role_calls(MEMBERS_PATH) == 2, what="the first reconcile")
    await say(sim, "lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    await sim.until(lambda: sim.role_holders("Baton", "销售") == ["zhaoliu"],
                    what="the role set to reach DingTalk")
    d = sim.member_leaves("zhaoliu")
    await sim.until(lambda: sim.acks(d.message_id), what="the leave's ack")
    assert sim.role_holders("Baton", "销售") == []           # DingTalk dropped the label
    # A barrier: a later change is sent after anything the leave queued (one ordered queue;
    # a refused call ahead of it would hold it back for minutes of retries).
    await say(sim, "lisi", "设置角色 @钱七 analyst", "业务角色设为 analyst", ("qianqi",))
    await sim.until(lambda: sim.role_holders("Baton", "分析师") == ["qianqi"],
                    what="the next change to reach DingTalk")
    for path in (ADD_EMPS_PATH, REMOVE_EMPS_PATH):
        assert len(sim.requests(path)) == sim.role_calls(path), f"a refused call to {path}"
    assert sim.role_calls(REMOVE_EMPS_PATH) == 0
    assert alerts(sim, "钉钉角色同步失败") == [] and alerts(sim, "未送达") == []
    assert sim.role_holders("Baton", "销售") == []
