"""Abuse limits and alerts end to end: refused sensitive attempts reach the alert group
merged; an oversized frame is refused without dropping the connection; a flood leaves the
group's send budget to the others. The throttle's reply and the forged-click alert are
tested at the handler level, tests/handlers/test_abuse.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import select

from bot.app import BatonApp
from bot.cli.sandbox import DEMO_GROUP, demo_simulator, sim_settings
from bot.config import Settings
from dingtalk_sim import SimGroup, Simulator
from storage.models import AuditEntry
from tests.e2e.conftest import GROUP, reply_to

pytestmark = pytest.mark.e2e

ALERTS = "cidSECURITYALERTS"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with demo_simulator(groups=(SimGroup(DEMO_GROUP, "权限交接工作群"), SimGroup(ALERTS, "安全提醒"))) as s:
        yield s


@pytest.fixture
def settings(sim: Simulator, db_url: str) -> Settings:
    s = sim_settings(sim, db_url, limits={"user_per_minute": 5, "alert_window": "2s"})
    return sim_settings(sim, db_url, s, org={"alert_conversation": ALERTS},
                        dingtalk={"stream": {**s.dingtalk.stream.model_dump(),
                                             "max_frame_bytes": 8192}})


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[BatonApp]:
    async with BatonApp(settings) as a:
        await a.wait_connected()
        yield a


async def test_refused_sensitive_attempts_are_alerted_merged(sim: Simulator, app: BatonApp) -> None:
    # A burst: three refused sensitive attempts within the alert window.
    for text, at in (("grant @钱七 crm.export", ("qianqi",)), ("admin add @钱七", ("qianqi",)),
                     ("transfer-owner @李四", ("lisi",))):
        sim.say("zhaoliu", f" {text}", conversation_id=GROUP, at=at)
    await sim.until(lambda: len([m for m in sim.messages(GROUP) if "Only" in m.text]) == 3,
                    what="three refusals")
    msgs = await sim.until(lambda: sim.messages(ALERTS), what="the alert message")
    assert len(msgs) == 1
    text = msgs[0].text
    assert "(3)" in text or "3 条" in text
    assert text.count("赵六 (zhaoliu)") == 3 and "crm.export" in text
    assert "member" not in text and "成员" in text         # rendered in the alert's language
    async with app.db.uow() as uow:
        refused = (await uow.session.execute(
            select(AuditEntry.action).where(AuditEntry.result == "refused"))).scalars().all()
        assert {"grant.refused", "admin add.refused", "owner_transfer.refused"} <= set(refused)


async def test_an_oversized_frame_is_refused_and_the_connection_stays(
        sim: Simulator, app: BatonApp) -> None:
    d = sim.say("qianqi", " whoami", conversation_id=GROUP)
    await reply_to(sim, GROUP, "My permissions")
    frame = json.loads(json.dumps(d.frame))
    frame["headers"]["messageId"] = "oversized-1"
    data = json.loads(frame["data"])
    data["msgId"] = "msgOVERSIZED"
    data["text"] = {"content": " whoami " + "x" * 20000}
    frame["data"] = json.dumps(data)
    sim.push_raw(json.dumps(frame))
    [ack] = await sim.until(lambda: sim.acks("oversized-1"), what="the oversized frame's ack")
    assert ack.code == 400
    assert app.stream.frames_refused == 1 and app.stream.reconnects == 0
    n = len(sim.messages(GROUP))
    sim.say("qianqi", " whoami", conversation_id=GROUP)
    await reply_to(sim, GROUP, "My permissions", after=n)
    assert app.stream.reconnects == 0


async def test_a_flood_leaves_the_group_budget_to_the_others(sim: Simulator, db_url: str) -> None:
    """The default limits (20 commands a member a minute, 20 messages a group a minute): a
    member's flood is cut off at their share of the group's budget, so another member's
    command in the same group is answered at once, not a minute later."""
    settings = sim_settings(sim, db_url)
    budget = settings.outbox.per_conversation_per_minute
    async with BatonApp(settings) as app:
        await app.wait_connected()
        flood = [sim.say("zhaoliu", " 我的权限", conversation_id=GROUP) for _ in range(40)]
        for d in flood:
            await sim.until(lambda d=d: sim.acks(d.message_id), what="each flood frame acked")
        await reply_to(sim, GROUP, "太频繁")
        n = len(sim.messages(GROUP))
        sim.say("qianqi", " whoami", conversation_id=GROUP)
        # Well inside the minute the group's budget would take to free up.
        await reply_to(sim, GROUP, "My permissions", after=n, timeout=5)
        sent = sim.messages(GROUP)
        answered = [m for m in sent if "我的权限" in m.text]
        slow = [m for m in sent if "太频繁" in m.text]
        assert len(slow) == 1                              # one notice, not one per refusal
        # The flooder's answers and notice stay within their share; the rest was left free.
        assert len(answered) + len(slow) == budget // 2
        assert len(sent) <= budget
