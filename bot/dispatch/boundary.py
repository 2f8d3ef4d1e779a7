"""The one error boundary. A :class:`UserError` is answered with its message (audited and
alerted when it says so); anything else is logged with an event id that the user is shown.
With the store down before COMMIT nothing was applied: the sender is told so directly (the
outbox lives in the store), with an event id."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bot.config import Settings
from bot.core.clock import Clock
from bot.core.lang import Lang
from bot.delivery.alerts import raise_alert
from bot.dispatch.context import Context, UserError
from bot.dispatch.metrics import Metrics
from bot.texts.catalog import t
from bot.transport.inbound import CardAction, IncomingMessage
from bot.transport.openapi import OpenApiClient
from storage.db import store_error

log = logging.getLogger(__name__)


class Boundary:
    def __init__(self, settings: Settings, clock: Clock, metrics: Metrics,
                 client: OpenApiClient | None) -> None:
        self.settings, self.clock, self.metrics, self.client = settings, clock, metrics, client

    async def run(self, name: str, ctx: Context, work: Callable[[], Awaitable[None]]) -> None:
        """Run command ``name``'s ``work`` and answer what it raised."""
        try:
            await work()
            self.metrics.count(name, "ok")
        except UserError as e:
            self.metrics.count(name, "refused")
            await self.refused(e, ctx)
        except Exception as e:
            if store_error(e):
                raise  # the store is in trouble: no ack, the transport lets it be redelivered
            event_id = uuid.uuid4().hex[:12]
            log.exception("command %s failed (event %s, message %s, conversation %s)",
                          name, event_id, ctx.message.message_id, ctx.message.conversation_id)
            self.metrics.count(name, "error")
            await ctx.reply(t("internal_error", ctx.lang, event_id=event_id))

    async def refused(self, e: UserError, ctx: Context) -> None:
        await ctx.reply(e.render(ctx.lang))
        if e.audit_action:
            target = e.params.get("target")
            await ctx.audit(ctx.sender.user_id, e.audit_action, "refused",
                            target_id=str(target) if target else None,
                            after={"reason": e.key, **{
                                k: str(v) for k, v in e.params.items()}})
        if e.alert:
            await raise_alert(ctx.uow, self.settings, ctx.now, actor=ctx.sender.user_id,
                              what=(ctx.message.text or "").strip(),
                              why=e.render(self.settings.locale.lang))

    def store_down_event(self, key: str, exc: BaseException) -> str:
        """Log and count an inbound frame the store could not take; its event id."""
        event_id = uuid.uuid4().hex[:12]
        log.error("database unavailable; %s not applied (event %s): %s: %s", key, event_id,
                  type(exc).__name__, (str(exc).splitlines() or [""])[0][:300])
        self.metrics.count("store", "unavailable")
        return event_id

    async def message_not_applied(self, msg: IncomingMessage, exc: BaseException,
                                  lang: Callable[[], Lang]) -> None:
        """Tell the sender of ``msg`` directly that it was not applied (in ``lang()``)."""
        event_id = self.store_down_event(msg.dedupe_key, exc)
        client = self.client
        if msg.from_robot or client is None:
            return
        text = t("db_unavailable", lang(), event_id=event_id)
        alive = msg.webhook_expires_at is None or msg.webhook_expires_at > self.clock.now()
        send: Awaitable[Any]
        if msg.session_webhook and alive:
            send = client.send_by_webhook(msg.session_webhook, text)
        elif msg.is_group:
            send = client.send_to_group(msg.conversation_id, text)
        else:
            send = client.send_to_user(msg.sender_id, text)
        await _tell_directly(msg.conversation_key, send)

    async def click_not_applied(self, action: CardAction, exc: BaseException) -> None:
        """Tell the clicker directly to click again later."""
        event_id = self.store_down_event(action.dedupe_key, exc)
        if self.client is not None:
            text = t("db_unavailable_click", self.settings.locale.lang, event_id=event_id)
            await _tell_directly(f"user:{action.user_id}", self.client.send_to_user(
                action.user_id, text))


async def _tell_directly(who: str, send: Awaitable[Any]) -> None:
    """Await a send made now, not through the outbox (which is in the store that is down):
    best effort, a failure is logged."""
    try:
        await send
    except Exception:
        log.exception("could not tell %s that the database is unavailable", who)
