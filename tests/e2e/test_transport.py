"""The Stream transport under faults, end to end: the real BatonApp and SDK subclass against the
simulator's gateway. Watchdog against a zombie socket, a hanging gateway, acks on the socket
a frame came from, malformed frames, and a message pushed while no connection is up."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import BatonApp
from bot.cli.sandbox import DEMO_GROUP, demo_simulator, sim_settings
from bot.config import Settings
from dingtalk_sim import Simulator
from tests.e2e.conftest import reply_to, roundtrip

pytestmark = pytest.mark.e2e

PING_EVERY = 0.15  # the simulator pings like DingTalk does, so silence means a dead socket
WATCHDOG = 0.8


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The transport does not depend on the store: SQLite only, to keep these fast."""
    return f"sqlite+aiosqlite:///{tmp_path}/baton.db"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with demo_simulator(ping_interval=PING_EVERY) as s:
        yield s


def stream_settings(sim: Simulator, settings: Settings, **stream: float) -> Settings:
    values: dict[str, Any] = {"connect_timeout": 10.0, "watchdog": WATCHDOG,
                              "reconnect_max": 0.2, **stream}
    s = sim_settings(sim, settings.database.url, settings, dingtalk={"stream": values})
    for k, v in values.items():  # a whole-key override of the section, others kept
        assert getattr(s.dingtalk.stream, k) == v
    assert s.dingtalk.client_id == sim.client_id
    return s


@pytest.fixture
async def bot(sim: Simulator, settings: Settings) -> AsyncIterator[BatonApp]:
    async with BatonApp(stream_settings(sim, settings)) as app:
        await app.wait_connected()
        await sim.until(lambda: live(sim), what="the simulator to see the connection")
        yield app


def live(sim: Simulator) -> list[str]:
    return [c.connection_id for c in sim.connections() if c.live]


def ping_acks(sim: Simulator, connection_id: str) -> int:
    return len([a for a in sim.acks() if a.topic == "ping" and a.connection_id == connection_id])


async def test_watchdog_keeps_a_pinged_socket_and_replaces_a_zombie(
        sim: Simulator, bot: BatonApp) -> None:
    [first] = live(sim)
    # Pings for well over the watchdog period: the healthy socket is kept.
    await sim.until(lambda: ping_acks(sim, first) >= int(1.5 * WATCHDOG / PING_EVERY),
                    timeout=10, what="pings acked over 1.5 watchdog periods")
    assert live(sim) == [first] and len(sim.connections()) == 1

    sim.set_zombie(True)  # pings are answered at the socket level, frames vanish
    new = await sim.until(lambda: [c for c in live(sim) if c != first], timeout=10,
                          what="the watchdog to open a new connection")
    await sim.until(lambda: first not in live(sim), timeout=5, what="the zombie to be closed")
    assert bot.stream.reconnects >= 1
    d = sim.say("zhaoliu", " whoami", conversation_id=DEMO_GROUP)
    await reply_to(sim, DEMO_GROUP, "zhaoliu")
    [ack] = await sim.until(lambda: sim.acks(d.message_id), what="the ack")
    assert ack.connection_id in new


async def test_hanging_gateway_is_timed_out_and_retried(
        sim: Simulator, settings: Settings) -> None:
    s = stream_settings(sim, settings, connect_timeout=0.2, watchdog=90.0)
    sim.hang_gateway(0.6)
    async with BatonApp(s) as app:
        await app.wait_connected(timeout=5)
        await sim.until(lambda: live(sim), what="the connection")
        opens = sim.requests("/v1.0/gateway/connections/open")
        assert len(opens) >= 2  # the hung call, then a retry that went through
        assert len(sim.connections()) == 1
        await roundtrip(sim, "zhaoliu", " whoami", "zhaoliu")


async def test_ack_goes_to_the_socket_the_frame_came_from(
        sim: Simulator, bot: BatonApp) -> None:
    [first] = live(sim)
    # Hold the frame in flight: the transfer command looks its target up before its
    # transaction, and the directory answers slowly.
    sim.delay_next("/topapi/v2/user/get", 0.6)
    n_get = len(sim.requests("/topapi/v2/user/get"))
    d = sim.say("zhangsan", " 转让主管理员 @李四", conversation_id=DEMO_GROUP, at=("lisi",))
    assert d.frame["headers"]["connectionId"] == first
    await sim.until(lambda: len(sim.requests("/topapi/v2/user/get")) > n_get,
                    what="the lookup to be under way")
    sim.send_disconnect()  # the bot reconnects while the frame is still being handled
    await sim.until(lambda: [c for c in live(sim) if c != first], timeout=5,
                    what="the new connection")
    assert not sim.acks(d.message_id)
    [ack] = await sim.until(lambda: sim.acks(d.message_id), timeout=10, what="the ack")
    assert ack.connection_id == first
    assert ack.code == 200
    await reply_to(sim, DEMO_GROUP, "R-1")


@pytest.mark.parametrize("raw", [
    "{not json",
    "[1, 2, 3]",
    '"just a string"',
    json.dumps({"specVersion": "1.0", "type": "NOPE", "headers": {"messageId": "x1"}}),
    json.dumps({"specVersion": "1.0", "type": "CALLBACK", "data": "{broken",
                "headers": {"topic": "/v1.0/im/bot/messages/get", "messageId": "x2",
                            "contentType": "application/json", "time": "0"}}),
])
async def test_malformed_frame_does_not_kill_the_connection(
        sim: Simulator, bot: BatonApp, raw: str) -> None:
    [first] = live(sim)
    sim.push_raw(raw)
    d = sim.say("zhaoliu", " whoami", conversation_id=DEMO_GROUP)
    await reply_to(sim, DEMO_GROUP, "zhaoliu")
    [ack] = await sim.until(lambda: sim.acks(d.message_id), what="the ack")
    assert ack.connection_id == first
    assert live(sim) == [first] and len(sim.connections()) == 1
    assert bot.stream.reconnects == 0


async def test_message_pushed_while_disconnected_is_delivered_after_reconnect(
        sim: Simulator, bot: BatonApp) -> None:
    [first] = live(sim)
    sim.hang_gateway(0.5)  # keep the bot from reconnecting before the message is said
    sim.drop_connections()
    assert live(sim) == []
    d = sim.say("qianqi", " whoami", conversation_id=DEMO_GROUP)
    assert "connectionId" not in d.frame["headers"]  # queued: no socket to push it to
    text = await reply_to(sim, DEMO_GROUP, "qianqi", timeout=10)
    assert "member" in text
    [ack] = await sim.until(lambda: sim.acks(d.message_id), what="the ack")
    assert ack.connection_id != first and ack.connection_id in live(sim)
