"""Database faults: SQLite held locked past busy_timeout; PostgreSQL gone for 10 s mid-run.

Each time: the member is told politely that the command was NOT applied, with an event id
(sent directly, since the outbox is in the store that is down); the frame is acked; no row
of the command exists; the process stays up; and the same command, sent again once the
store is back, is applied exactly once.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import BatonApp
from bot.cli.sandbox import sim_settings
from dingtalk_sim import Simulator
from storage.models import AuditEntry, Grant, ProcessedMessage
from tests.e2e.conftest import GROUP, reply_to
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

EVENT = re.compile(r"\b[0-9a-f]{12}\b")
GRANT = "授权 @赵六 crm.report.view"
NOT_APPLIED = "数据库暂时不可用"


async def counts(url: str) -> dict[str, Any]:
    """Rows of what a command writes, read over a connection of the test's own."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as c:
            out: dict[str, Any] = {}
            for model in (ProcessedMessage, AuditEntry, Grant):
                out[model.__tablename__] = (await c.execute(
                    select(func.count()).select_from(model))).scalar_one()
            out["grants"] = sorted((await c.execute(
                text("SELECT user_id, name FROM grants"))).all())
            return out
    finally:
        await engine.dispose()


async def grant_once_more_works(sim: Simulator, app: BatonApp, url: str,
                                before: dict[str, Any]) -> None:
    n = len(sim.messages(GROUP))
    sim.say("lisi", GRANT, conversation_id=GROUP, at=("zhaoliu",))
    await reply_to(sim, GROUP, "已授予", after=n, timeout=20)
    after = await counts(url)
    assert after["grants"] == sorted([*before["grants"], ("zhaoliu", "crm.report.view")])
    async with app.db.uow() as uow:
        assert await uow.audit.verify(app.settings.org.corp_id) is None


async def not_applied_reply(sim: Simulator, after: int) -> str:
    reply = await reply_to(sim, GROUP, NOT_APPLIED, after=after, timeout=20)
    assert "没有执行" in reply and "重新发送" in reply
    assert EVENT.search(reply), reply
    return reply


# ---- SQLite -----------------------------------------------------------------------------------

@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/baton.db"


@pytest.fixture
async def app_sqlite(sim: Simulator, sqlite_url: str) -> AsyncIterator[BatonApp]:
    s = sim_settings(sim, sqlite_url, database={"busy_timeout_ms": 300})
    async with BatonApp(s) as app:
        await app.wait_connected()
        yield app


async def test_sqlite_locked_past_busy_timeout(sim: Simulator, app_sqlite: BatonApp,
                                               sqlite_url: str) -> None:
    app = app_sqlite
    n = len(sim.messages(GROUP))
    sim.say("lisi", "whoami", conversation_id=GROUP)
    await reply_to(sim, GROUP, "lisi", after=n)
    before = await counts(sqlite_url)

    # Another process holds the write lock far longer than Baton's busy_timeout (300 ms).
    # (Off the event loop: Baton shares it, and may be mid-write when the holder asks.)
    holder = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None, timeout=10,
                             check_same_thread=False)
    await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")
    try:
        n = len(sim.messages(GROUP))
        d = sim.say("lisi", GRANT, conversation_id=GROUP, at=("zhaoliu",))
        await not_applied_reply(sim, n)
        await sim.until(lambda: [a for a in sim.acks(d.message_id) if a.code == 200],
                        timeout=10, what="the ack of the refused frame")
        assert app.metrics.commands.get(("store", "unavailable")) == 1
        assert not app._stopped.is_set() and app.stream.connected.is_set()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # Nothing of the command was written: no dedupe record, no audit, no grant.
    assert await counts(sqlite_url) == before
    await grant_once_more_works(sim, app, sqlite_url, before)


# ---- PostgreSQL -------------------------------------------------------------------------------

@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    u = urlsplit(pg_url.replace("postgresql+asyncpg", "postgresql"))
    p = TcpProxy(u.hostname or "127.0.0.1", u.port or 5432)
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.mark.pg
async def test_postgresql_gone_for_ten_seconds(sim: Simulator, pg_url: str,
                                               proxy: TcpProxy) -> None:
    u = urlsplit(pg_url)
    via_proxy = pg_url.replace(f"{u.hostname}:{u.port}", f"127.0.0.1:{proxy.port}")
    s = sim_settings(sim, via_proxy)
    async with BatonApp(s) as app:
        await app.wait_connected()
        n = len(sim.messages(GROUP))
        sim.say("lisi", "whoami", conversation_id=GROUP)
        await reply_to(sim, GROUP, "lisi", after=n)
        before = await counts(pg_url)

        proxy.cut(10.0)        # every connection reset, new ones refused, for 10 s
        n = len(sim.messages(GROUP))
        d = sim.say("lisi", GRANT, conversation_id=GROUP, at=("zhaoliu",))
        await not_applied_reply(sim, n)
        await sim.until(lambda: [a for a in sim.acks(d.message_id) if a.code == 200],
                        timeout=10, what="the ack of the refused frame")
        ok, health = await app.ops.health()
        assert not ok and health["checks"]["database"] is False
        assert not app._stopped.is_set() and app.stream.connected.is_set()
        # PostgreSQL itself (not through the proxy) shows no trace of the command.
        assert await counts(pg_url) == before
        assert await asyncio.to_thread(proxy.up.wait, 20), "the proxy did not come back"
        await grant_once_more_works(sim, app, pg_url, before)
        ok, health = await app.ops.health()
        assert health["checks"]["database"] is True
