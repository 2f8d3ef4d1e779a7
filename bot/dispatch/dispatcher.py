"""The dispatcher: one inbound message or card click, one transaction, exactly once.

For each robot message: check the rate limits (limits.py), parse, take the sender's turn
(turns.py); then, inside one database transaction, record its id (a redelivery finds it and
changes nothing), check who may run it (authority.py), call the handler inside a savepoint,
write replies and audit entries to the outbox/audit tables, commit. Only then does the
transport ack the frame. Read commands that arrive together share a transaction
(batching.py). What a handler raises is answered by the one error boundary (boundary.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.config import Settings
from bot.core.cardref import CardKind, kind_of
from bot.core.clock import Clock
from bot.core.commands import ImportFile, Parsed, ParseError, lang_of, parse
from bot.core.domain.members import Sender
from bot.core.faults import Faults
from bot.core.lang import Lang
from bot.dispatch import authority
from bot.dispatch.batching import Batcher
from bot.dispatch.boundary import Boundary
from bot.dispatch.context import CommandRouter, Context
from bot.dispatch.limits import RateLimiter, Verdict, member_share
from bot.dispatch.metrics import Metrics
from bot.dispatch.turns import SenderTurns
from bot.texts.catalog import t
from bot.transport.inbound import CardAction, IncomingMessage, OrgEvent
from bot.transport.openapi import OpenApiClient
from storage.db import CommitOutcomeUnknown, Database, store_unavailable

log = logging.getLogger(__name__)

MAX_TEXT = 2000


@dataclasses.dataclass(frozen=True)
class _Read:
    msg: IncomingMessage
    parsed: Parsed | None
    error: ParseError | None


class Dispatcher:
    def __init__(self, db: Database, settings: Settings, clock: Clock, router: CommandRouter,
                 *, on_commit: Callable[[], None] = lambda: None,
                 on_schedule: Callable[[], None] = lambda: None,
                 metrics: Metrics | None = None, client: OpenApiClient | None = None,
                 faults: Faults | None = None, read_batch: int = 64) -> None:
        self.db, self.settings, self.clock, self.router = db, settings, clock, router
        self.on_commit = on_commit
        self.on_schedule = on_schedule
        self.metrics = metrics or Metrics()
        self.client = client
        self.faults = faults or Faults()
        lim = settings.limits
        self.limiter = RateLimiter(
            lim.user_per_minute, lim.conversation_per_minute,
            member_share(settings.outbox.per_conversation_per_minute, lim.group_share))
        # Messages whose COMMIT failed: until one attempt settles them, never say "not applied".
        self._uncertain: set[str] = set()
        self._reads = Batcher(self._read_batch, limit=read_batch, alone=self._read_alone)
        self._turns = SenderTurns()
        self.boundary = Boundary(settings, clock, self.metrics, client)

    def _lang(self, parsed_lang: Lang | None) -> Lang:
        loc = self.settings.locale
        if loc.follow_user and parsed_lang is not None:
            return parsed_lang
        return loc.lang

    async def _prepare(self, parsed: Parsed, sender_id: str) -> Any:
        """Run a command's I/O (directory lookups) before its transaction opens."""
        route = self.router.routes.get(type(parsed.command))
        if route is None or (route.prepare is None and route.prepare_sender is None):
            return None
        try:
            if route.prepare_sender is not None:
                return await route.prepare_sender(parsed.command, self.client, sender_id)
            assert route.prepare is not None
            if route.prepare_settings:
                return await route.prepare(parsed.command, self.client, self.settings)
            return await route.prepare(parsed.command, self.client)
        except Exception:
            log.exception("preparing %s failed", type(parsed.command).command_name)
            return {"error": "prepare_failed"}

    async def handle_robot_message(self, msg: IncomingMessage) -> None:
        """Handle one message; when the store is down, tell the sender it was not applied.

        A failure before COMMIT rolled everything back: the sender is told so directly (the
        outbox lives in the store) with an event id, and the frame is acked, so the same
        command sent again later is a new command. A failed COMMIT may have applied: no word
        and no ack, so the redelivery finds out through the dedupe record.
        """
        try:
            await self._handle_robot_message(msg)
            self._uncertain.discard(msg.dedupe_key)
        except CommitOutcomeUnknown:
            self._uncertain.add(msg.dedupe_key)
            log.error("commit failed for message %s: outcome unknown; not acking it, so the "
                      "redelivery settles it", msg.dedupe_key)
            raise
        except Exception as e:
            if not store_unavailable(e) or msg.dedupe_key in self._uncertain:
                raise
            await self.boundary.message_not_applied(
                msg, e, lambda: self._lang(lang_of(msg.text) if msg.file is None else None))

    async def _handle_robot_message(self, msg: IncomingMessage) -> None:
        # Parse once, outside the transaction (pure); the result or error is used inside.
        parsed: Parsed | None = None
        error: ParseError | None = None
        if not msg.from_robot:
            verdict = self.limiter.check(msg.sender_id, msg.conversation_id, time.monotonic(),
                                         group=msg.is_group)
            if not verdict.allowed:
                await self._throttled(msg, verdict)
                return
            if msg.file is not None:
                # A file sent to Baton is an import (DingTalk delivers files one-to-one only).
                parsed = Parsed(ImportFile(msg.file, in_group=msg.is_group),
                                self.settings.locale.lang)
            else:
                try:
                    # Text past the cap is cut so the parser refuses it as too long, cheaply.
                    parsed = parse(msg.text[: MAX_TEXT + 1], list(msg.mentions),
                                   length=len(msg.text))
                except ParseError as e:
                    error = e
        batched = self._batchable(parsed, error)
        if msg.from_robot:
            await self._handle_one(msg, parsed, error, None)
            return
        # The turn is taken on arrival; a change's lookups (prepare) overlap the wait for it.
        before, done = self._turns.take(msg.sender_id, read=batched)
        try:
            prepared = None if batched or parsed is None else await self._prepare(parsed, msg.sender_id)
            if before:
                await asyncio.wait(before)
            if batched and await self._reads.submit(_Read(msg, parsed, error)):
                return
            await self._handle_one(msg, parsed, error, prepared)
        finally:
            done.set_result(None)

    def _batchable(self, parsed: Parsed | None, error: ParseError | None) -> bool:
        """Read commands (and parse errors) write nothing but their dedupe record and their
        reply, so concurrent ones share one transaction (see :meth:`_read_batch`)."""
        if error is not None:
            return True
        if parsed is None:
            return False
        route = self.router.routes.get(type(parsed.command))
        return (route is not None and route.reads_only and route.prepare is None
                and route.prepare_sender is None)

    async def _read_batch(self, items: list[_Read]) -> None:
        """Run read commands that arrived together in one transaction: one statement
        records all their ids, one reads their senders, the holdings they ask for are read
        together, one multi-row INSERT queues their replies, one COMMIT. Each is still
        judged on its own (a refusal, an unknown command, a bug answer only that message);
        a redelivered id is skipped as a duplicate. A failure before COMMIT raises and each
        message is then retried alone."""
        now = self.clock.now()
        async with self.db.uow() as uow:
            fresh = await uow.processed.claim_many([it.msg.dedupe_key for it in items],
                                                   "robot", now)
            todo: list[_Read] = []
            for it in items:
                key = it.msg.dedupe_key
                if key not in fresh:
                    self._duplicate(key)
                    continue
                fresh.discard(key)   # the same id twice in one batch: the second is a repeat
                todo.append(it)
            if todo:
                senders = await uow.members.upsert_senders(
                    self.settings.org.corp_id,
                    [(it.msg.sender_id, it.msg.sender_nick or None) for it in todo], now)
                uow.perms.expect(senders.values(), now)
                replies: list[dict[str, Any]] = []
                for it in todo:
                    await self._answer(uow, now, it.msg, senders[it.msg.sender_id],
                                       it.parsed, it.error, replies=replies)
                await uow.outbox.add_many(replies, now)
                self._after(uow)
            await uow.commit()
            self.faults.crash("commit.before_ack")

    def _duplicate(self, key: str) -> None:
        self.metrics.duplicates += 1
        log.info("message %s already handled; acking the redelivery", key)

    async def _answer(self, uow: Any, now: datetime, msg: IncomingMessage, sender: Sender,
                      parsed: Parsed | None, error: ParseError | None, *, prepared: Any = None,
                      replies: list[dict[str, Any]] | None = None) -> None:
        """Answer one message inside the transaction: its parse error, or its command."""
        if error is not None:
            lang = self._lang(error.lang)
            ctx = Context.for_message(uow, self.settings, now, lang, msg, sender, replies=replies)
            await ctx.reply(error.render(lang), markdown=True)
            self.metrics.count("parse_error", error.code)
        elif parsed is not None:
            await self._run(parsed, Context.for_message(
                uow, self.settings, now, self._lang(parsed.lang), msg, sender, self.faults,
                prepared, replies, request_kinds=self.router.requests))

    async def _read_alone(self, it: _Read) -> None:
        """A read whose batch failed before COMMIT, handled alone (a read has nothing to
        prepare); the batcher runs these one by one, in arrival order."""
        await self._handle_one(it.msg, it.parsed, it.error, None)

    async def _handle_one(self, msg: IncomingMessage, parsed: Parsed | None,
                          error: ParseError | None, prepared: Any) -> None:
        now = self.clock.now()
        async with self.db.uow() as uow:
            if not await uow.processed.claim(msg.dedupe_key, "robot", now):
                self._duplicate(msg.dedupe_key)
                return
            if msg.from_robot:
                await uow.commit()
                return
            sender = await uow.members.upsert_sender(self.settings.org.corp_id, msg.sender_id,
                                                     now, name=msg.sender_nick or None)
            await self._answer(uow, now, msg, sender, parsed, error, prepared=prepared)
            self._after(uow)
            await uow.commit()
            self.faults.crash("commit.before_ack")

    async def _throttled(self, msg: IncomingMessage, verdict: Verdict) -> None:
        """Over a rate limit: the command is not run; the first refusal of a window is
        answered and audited, the rest are only recorded as handled (so not redelivered)."""
        now = self.clock.now()
        self.metrics.count("rate_limited", verdict.scope)
        async with self.db.uow() as uow:
            if not await uow.processed.claim(msg.dedupe_key, "robot", now):
                return
            if verdict.tell:
                sender = await uow.members.upsert_sender(self.settings.org.corp_id,
                                                         msg.sender_id, now,
                                                         name=msg.sender_nick or None)
                lang = self._lang(lang_of(msg.text))
                ctx = Context.for_message(uow, self.settings, now, lang, msg, sender)
                key = ("rate_limited_conversation" if verdict.scope == "conversation"
                       else "rate_limited")
                await ctx.reply(t(key, lang, seconds=max(1, math.ceil(verdict.retry_after))))
                await ctx.audit(ctx.sender.user_id, "rate_limited", "refused",
                                after={"scope": verdict.scope, "conversation": msg.conversation_id})
                self._after(uow)
            await uow.commit()

    def _after(self, uow: Any) -> None:
        uow.after_commit(self.on_commit)
        if uow.due.touched:
            uow.after_commit(self.on_schedule)

    async def _run(self, parsed: Parsed, ctx: Context) -> None:
        cmd = parsed.command

        async def work() -> None:
            route = authority.check(cmd, self.router.routes.get(type(cmd)), ctx)
            if route.reads_only:
                await route.handler(cmd, ctx)
            else:
                async with ctx.uow.savepoint():
                    await route.handler(cmd, ctx)

        await self.boundary.run(type(cmd).command_name, ctx, work)

    async def handle_card_action(self, action: CardAction) -> dict[str, Any]:
        """Judge a click by the clicker's userId and the stored request; return the ack body.

        With the store down before COMMIT, nothing was decided: the clicker is told directly
        to click again later, and the frame is acked."""
        try:
            return await self._handle_card_action(action)
        except Exception as e:
            if not store_unavailable(e):
                raise
            await self.boundary.click_not_applied(action, e)
            return {}

    async def _handle_card_action(self, action: CardAction) -> dict[str, Any]:
        now = self.clock.now()
        async with self.db.uow() as uow:
            if not await uow.processed.claim(action.dedupe_key, "card", now):
                self.metrics.duplicates += 1
                return {}
            await uow.members.upsert(self.settings.org.corp_id, action.user_id, now)
            env = Context(uow, self.settings, now, self.faults, message_id=action.message_id,
                          request_kinds=self.router.requests)
            async with uow.savepoint():
                # By the card's kind; a card Baton did not make goes to the request engine,
                # which answers that it does not know it.
                kind = kind_of(action.out_track_id) or CardKind.REQUEST
                response = await self.router.card_actions[kind](action, env)
            self._after(uow)
            await uow.commit()
            self.faults.crash("commit.before_ack")
        return response



    async def handle_event(self, event: OrgEvent) -> None:
        """Handle a DingTalk org event: once per member it names, each in one transaction
        that records ``evt:<eventId>:<userId>`` (a redelivery, or a member already done
        before a crash, changes nothing). An event Baton does not route is acked and
        dropped. Raises (no ack: DingTalk redelivers) when the store fails."""
        route = self.router.events.get(event.event_type)
        if route is None:
            log.info("event %s of type %s not handled", event.event_id, event.event_type)
            return
        if event.corp_id and event.corp_id != self.settings.org.corp_id:
            log.warning("event %s is for corp %s, not ours; ignored", event.event_id,
                        event.corp_id)
            return
        for one in event.each():
            # The event's time is taken before its lookups: what they read is at least this
            # recent (handlers/drift.py never records an admin list over a newer one).
            now = self.clock.now()
            prepared = None
            if route.prepare is not None:
                prepared = await route.prepare(one, self.client)
            async with self.db.uow() as uow:
                if not await uow.processed.claim(one.dedupe_key(), "event", now):
                    self.metrics.duplicates += 1
                    log.info("event %s already handled", one.dedupe_key())
                    continue
                ctx = Context(uow, self.settings, now, self.faults,
                              message_id=one.dedupe_key(), client=self.client,
                              request_kinds=self.router.requests)
                async with uow.savepoint():
                    await route.handler(one, prepared, ctx)
                self._after(uow)
                await uow.commit()
                self.faults.crash("commit.before_ack")
            self.metrics.count("event", event.event_type)
