"""Handler-level harness for the request machinery: the real dispatcher, router and due
handlers on a real store (``db_url``: SQLite and PostgreSQL), the demo company's directory
from the loopback simulator's OpenAPI, no Stream connection. What Baton would send is read
back from the outbox table (the recording): nothing is mocked."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.app import prepare_database
from bot.bootstrap import bootstrap
from bot.cli.sandbox import DEMO_GROUP, demo_simulator, sim_settings
from bot.config import Settings
from bot.core.clock import FakeClock
from bot.core.faults import Faults
from bot.dispatch.dispatcher import Dispatcher
from bot.scheduling.due import DueRunner
from bot.transport.inbound import CardAction, IncomingMessage
from bot.transport.openapi import OpenApiClient
from handlers import build_router
from storage.db import Database, open_database
from storage.models import OutboxMessage

GROUP = DEMO_GROUP
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)     # 10:00 in Asia/Shanghai
_ids = itertools.count(1)


@dataclass
class Sent:
    kind: str                    # reply | card | ...
    to: str                      # conversation key: group:<cid>, user:<userId>, card:<track>
    payload: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.payload.get("text", ""))


@dataclass
class Harness:
    db: Database
    settings: Settings
    clock: FakeClock
    dispatcher: Dispatcher
    due: DueRunner

    async def say(self, user: str, text: str, *, conversation: str = GROUP,
                  at: tuple[str, ...] = ()) -> list[Sent]:
        """``user`` says ``text`` (a group when ``conversation`` is given, else one-to-one);
        returns what Baton queued for sending because of it."""
        before = await self._last_id()
        n = next(_ids)
        group = conversation != ""
        await self.dispatcher.handle_robot_message(IncomingMessage(
            message_id=f"m{n}", msg_id=f"msg{n}", conversation_id=conversation or f"oto{user}",
            is_group=group, conversation_title="", sender_id=user, sender_nick="",
            sender_corp_id=self.settings.org.corp_id, text=text, mentions=at,
            msgtype="text", file=None, session_webhook=None, webhook_expires_at=None,
            from_robot=False))
        return await self.sent_after(before)

    async def click(self, user: str, track: str, action: str,
                    params: dict[str, str] | None = None) -> tuple[str, list[Sent]]:
        """``user`` presses ``action`` on card ``track``: (their private notice, what was
        queued)."""
        before = await self._last_id()
        n = next(_ids)
        ack = await self.dispatcher.handle_card_action(CardAction(
            message_id=f"c{n}", out_track_id=track, user_id=user,
            corp_id=self.settings.org.corp_id, action_id=action, params=params or {},
            space_type="IM_GROUP", space_id=GROUP))
        notice = str(ack.get("userPrivateData", {}).get("cardParamMap", {}).get("notice", "")) \
            if ack else ""
        return notice, await self.sent_after(before)

    async def run_due(self) -> list[Sent]:
        before = await self._last_id()
        await self.due.run_once()
        return await self.sent_after(before)

    async def _last_id(self) -> int:
        async with self.db.uow() as uow:
            rows = (await uow.session.execute(select(OutboxMessage.id))).scalars().all()
            return max(rows, default=0)

    async def sent_after(self, last: int) -> list[Sent]:
        async with self.db.uow() as uow:
            rows = (await uow.session.execute(select(OutboxMessage).where(
                OutboxMessage.id > last).order_by(OutboxMessage.id))).scalars().all()
            return [Sent(r.kind, r.conversation_key, dict(r.payload)) for r in rows]


@pytest.fixture
async def harness(db_url: str) -> AsyncIterator[Harness]:
    with demo_simulator() as sim:
        settings = sim_settings(sim, db_url, policy={"quiet_hours": None})
        clock = FakeClock(T0)
        db = open_database(db_url)
        try:
            await prepare_database(db)
            async with aiohttp.ClientSession(trust_env=False) as http:
                client = OpenApiClient(http, settings.dingtalk)
                await bootstrap(db, settings, clock, client)
                faults, router = Faults(), build_router()
                yield Harness(
                    db, settings, clock,
                    Dispatcher(db, settings, clock, router, client=client, faults=faults),
                    DueRunner(db, settings, clock, client, faults, router.dues,
                              request_kinds=router.requests))
        finally:
            await db.dispose()
