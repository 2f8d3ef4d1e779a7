"""The operations endpoint: /healthz says what is wrong, /metrics counts what happened."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.app import BatonApp
from bot.cli.sandbox import sim_settings
from bot.config import Settings
from dingtalk_sim import Simulator
from tests.e2e.conftest import GROUP, reply_to

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(sim: Simulator, db_url: str) -> Settings:
    return sim_settings(sim, db_url, ops={"port": 0})


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[BatonApp]:
    async with BatonApp(settings) as a:
        await a.wait_connected()
        yield a


async def get(app: BatonApp, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession(trust_env=False) as s, \
            s.get(f"http://127.0.0.1:{app.ops.port}{path}") as r:
        body = await (r.json() if path == "/healthz" else r.text())
        return r.status, body


async def test_healthz_and_metrics(sim: Simulator, app: BatonApp) -> None:
    status, body = await get(app, "/healthz")
    assert status == 200 and body["ok"] is True
    assert body["checks"] == {"stream": True, "database": True, "outbox": True, "schedule": True}
    sim.say("qianqi", " whoami", conversation_id=GROUP)
    await reply_to(sim, GROUP, "My permissions")
    sim.say("qianqi", " grant @钱七 crm.export", conversation_id=GROUP, at=("qianqi",))
    await reply_to(sim, GROUP, "Only the owner or an admin")
    status, text = await get(app, "/metrics")
    assert status == 200
    assert 'baton_commands_total{command="whoami",result="ok"} 1.0' in text
    assert 'baton_commands_total{command="grant",result="refused"} 1.0' in text
    count = [ln for ln in text.splitlines() if ln.startswith("baton_ack_latency_seconds_count")]
    assert count and float(count[0].split()[-1]) >= 2
    assert "baton_stream_connected 1.0" in text and "baton_database_up 1.0" in text
    assert "baton_outbox_depth" in text and "baton_schedule_lag_seconds" in text


async def test_healthz_reports_a_lost_stream(sim: Simulator, app: BatonApp) -> None:
    sim.hang_gateway(5)          # keep the bot from reconnecting while we look
    sim.drop_connections()
    await sim.until(lambda: not app.stream.connected.is_set(), what="the bot to notice")
    status, body = await get(app, "/healthz")
    assert status == 503 and body["checks"]["stream"] is False and body["checks"]["database"]
