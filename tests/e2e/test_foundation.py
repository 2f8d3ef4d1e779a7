"""The walking skeleton, end to end through the simulator and the real SDK: 1:1 replies,
robot senders, duplicates and redelivery, reconnection, retried and webhook replies. The
handler-level behaviour is in tests/handlers/test_foundation.py."""

from __future__ import annotations

import pytest

from bot.app import BatonApp
from bot.config import Settings
from dingtalk_sim import Simulator
from tests.e2e.conftest import GROUP, reply_to, roundtrip

pytestmark = pytest.mark.e2e


async def test_one_to_one_chat_is_answered_there(sim: Simulator, bot: BatonApp) -> None:
    d = sim.say("zhaoliu", "whoami")
    text = await sim.until(lambda: [m for m in sim.messages() if "zhaoliu" in m.text
                                    and m.conversation_id != GROUP], what="a 1:1 reply")
    assert text and d.msg_id


async def test_robot_senders_are_ignored(sim: Simulator, bot: BatonApp) -> None:
    d = sim.say_as_robot(GROUP, " whoami")
    await sim.until(lambda: sim.acks(d.message_id), what="the ack of the robot's message")
    await roundtrip(sim, "zhaoliu", " help", "transfer-owner")  # barrier
    assert not [m for m in sim.messages(GROUP) if "No business permissions" in m.text
                or ("成员" in m.text and "whoami" in m.text)]


async def test_duplicate_delivered_concurrently_gets_one_reply(sim: Simulator, bot: BatonApp) -> None:
    d = sim.say("wangwu", " whoami", conversation_id=GROUP)
    sim.redeliver(d)
    sim.redeliver(d)
    await sim.until(lambda: len(sim.acks(d.message_id)) >= 3, what="three acks")
    await roundtrip(sim, "zhaoliu", " help", "transfer-owner")  # barrier: sends are in order
    replies = [m for m in sim.messages(GROUP) if "wangwu" in m.text]
    assert len(replies) == 1


async def test_redelivery_after_restart_changes_nothing(sim: Simulator, settings: Settings) -> None:
    async with BatonApp(settings) as app:
        await app.wait_connected()
        d = sim.say("lisi", " whoami", conversation_id=GROUP)
        await reply_to(sim, GROUP, "lisi")
    async with BatonApp(settings) as app:
        await app.wait_connected()
        sim.redeliver(d)
        await sim.until(lambda: len(sim.acks(d.message_id)) >= 2, what="ack of the redelivery")
        await roundtrip(sim, "zhaoliu", " help", "transfer-owner")
        assert len([m for m in sim.messages(GROUP) if "lisi" in m.text]) == 1
        assert app.metrics.duplicates == 1


async def test_disconnect_frame_reconnects_and_loses_nothing(sim: Simulator, bot: BatonApp) -> None:
    sim.send_disconnect()
    n = len(sim.messages(GROUP))
    sim.say("zhaoliu", " whoami", conversation_id=GROUP)
    await reply_to(sim, GROUP, "zhaoliu", after=n)
    conns = sim.connections()
    assert len(conns) >= 2 and bot.stream.reconnects >= 1


async def test_dropped_socket_reconnects_and_loses_nothing(sim: Simulator, bot: BatonApp) -> None:
    sim.drop_connections()
    n = len(sim.messages(GROUP))
    sim.say("zhaoliu", " 我的权限", conversation_id=GROUP)
    await reply_to(sim, GROUP, "zhaoliu", after=n)
    assert len(sim.connections()) >= 2


async def test_reply_retried_after_429_then_503_and_delivered_once(
        sim: Simulator, bot: BatonApp) -> None:
    sim.fail_next("/robot/sendBySession", 429, headers={"Retry-After": "0"})
    sim.fail_next("/robot/sendBySession", 503)
    n = len(sim.messages(GROUP))
    sim.say("qianqi", " whoami", conversation_id=GROUP)
    await reply_to(sim, GROUP, "qianqi", after=n)
    await roundtrip(sim, "zhaoliu", " help", "transfer-owner")
    assert len([m for m in sim.messages(GROUP) if "qianqi" in m.text]) == 1
    assert len(sim.requests("/robot/sendBySession")) >= 3


async def test_expired_session_webhook_falls_back_to_robot_api(sim: Simulator, bot: BatonApp) -> None:
    sim.fail_next("/robot/sendBySession", 200, body={"errcode": 300001, "errmsg": "session 不存在"})
    n = len(sim.messages(GROUP))
    sim.say("qianqi", " whoami", conversation_id=GROUP)
    text = await reply_to(sim, GROUP, "qianqi", after=n)
    assert text
    assert [m for m in sim.messages(GROUP)[n:] if m.via == "group"]
