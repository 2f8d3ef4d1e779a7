"""Outbox helpers shared by the outbox tests and the secrets tests (not tests themselves): a
client for the loopback simulator, a sender, and outbox rows as Baton writes them."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import SecretStr
from sqlalchemy import select

from bot.cli.sandbox import DEMO_GROUP
from bot.config import DingTalkSettings, OutboxSettings
from bot.core.clock import FakeClock
from bot.core.sends import Reply
from bot.delivery.outbox import OutboxSender
from bot.transport.openapi import OpenApiClient
from dingtalk_sim import Simulator
from storage.db import Database
from storage.models import OutboxMessage

WEBHOOK = "/robot/sendBySession"
GROUP_SEND = "/v1.0/robot/groupMessages/send"
OTO_SEND = "/v1.0/robot/oToMessages/batchSend"
SECOND_GROUP = "cidSECONDGROUP"
CLIENT_RETRIES = 1  # each outbox attempt is at most two HTTP requests


async def _no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def make_client(sim: Simulator, http: aiohttp.ClientSession) -> OpenApiClient:
    settings = DingTalkSettings(
        client_id=sim.client_id, client_secret=SecretStr(sim.client_secret),
        openapi_endpoint=sim.base_url, oapi_endpoint=sim.base_url, max_retries=CLIENT_RETRIES,
    )
    return OpenApiClient(http, settings, sleep=_no_sleep, rng=random.Random(5))


def sender(db: Database, client: OpenApiClient, clock: FakeClock, **outbox: Any) -> OutboxSender:
    return OutboxSender(db, client, OutboxSettings(**outbox), clock, rng=random.Random(11))


def session_of(sim: Simulator, user: str = "zhaoliu",
               conversation: str | None = DEMO_GROUP) -> tuple[str, datetime]:
    """The sessionWebhook and its expiry, as a message from ``user`` carries them."""
    d = sim.say(user, " whoami", conversation_id=conversation)
    data = json.loads(d.frame["data"])
    expires = datetime.fromtimestamp(data["sessionWebhookExpiredTime"] / 1000, UTC)
    return str(data["sessionWebhook"]), expires


async def add_reply(db: Database, clock: FakeClock, text: str, *,
                    conversation: str = DEMO_GROUP, is_group: bool = True,
                    user: str = "zhaoliu", markdown: bool = False,
                    session: tuple[str, datetime] | None = None) -> int:
    """An outbox row exactly as bot.dispatch.context.Context.reply writes it."""
    r = Reply(text=text, conversation_id=conversation, is_group=is_group, user_id=user,
              markdown=markdown, title="Baton", at=(user,) if is_group else ())
    webhook, expires = session if session else (None, None)
    async with db.uow() as uow:
        row_id = await uow.outbox.add(
            "reply", r.conversation_key, r.payload(), clock.now(),
            session_webhook=webhook, webhook_expires_at=expires,
            source_message_id=f"msg-{text}",
        )
        await uow.commit()
        return row_id


async def rows(db: Database) -> list[OutboxMessage]:
    async with db.uow() as uow:
        found = list((await uow.session.execute(
            select(OutboxMessage).order_by(OutboxMessage.id))).scalars().all())
        uow.session.expunge_all()  # plain values, readable after the transaction
        return found


async def row(db: Database, row_id: int) -> OutboxMessage:
    return next(r for r in await rows(db) if r.id == row_id)
