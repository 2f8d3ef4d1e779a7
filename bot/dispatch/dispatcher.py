"""The dispatcher: one inbound message or card click, one transaction, exactly once.

For each robot message: inside one database transaction, record its id (a redelivery finds
it and changes nothing), parse, check who may run it, call the handler inside a savepoint,
write replies and audit entries to the outbox/audit tables, commit. Only then does the
transport ack the frame. This is also the one error boundary: a :class:`UserError` or a
parse error is answered with its message (and the handler's partial work rolled back);
anything else is logged with an event id that the user is shown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError

from bot.config import Settings
from bot.core.clock import Clock
from bot.core.commands import ImportFile, Parsed, ParseError, UserRef, lang_of, parse
from bot.core.commands.words import primary
from bot.core.faults import Faults
from bot.delivery.alerts import raise_alert
from bot.dispatch.context import CommandRouter, Context, Localized, UserError
from bot.dispatch.limits import RateLimiter, Verdict, member_share
from bot.texts.catalog import Lang, t
from bot.transport.inbound import CardAction, IncomingMessage
from bot.transport.openapi import OpenApiClient
from storage.db import CommitOutcomeUnknown, Database, store_unavailable
from storage.models import Member

log = logging.getLogger(__name__)

MAX_TEXT = 2000
T = TypeVar("T")


class Metrics:
    """Counters the operations endpoint exposes."""

    def __init__(self) -> None:
        self.commands: dict[tuple[str, str], int] = {}
        self.duplicates = 0

    def count(self, command: str, result: str) -> None:
        k = (command, result)
        self.commands[k] = self.commands.get(k, 0) + 1


def _user_refs(cmd: Any) -> list[UserRef]:
    refs: list[UserRef] = []
    for f in dataclasses.fields(cmd):
        v = getattr(cmd, f.name)
        if isinstance(v, UserRef):
            refs.append(v)
        elif isinstance(v, tuple):
            refs += [x for x in v if isinstance(x, UserRef)]
    return refs


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

    def _lang(self, parsed_lang: Lang | None) -> Lang:
        loc = self.settings.locale
        if loc.follow_user and parsed_lang is not None:
            return parsed_lang
        return loc.lang

    def _admin_conversation_ok(self, msg: IncomingMessage) -> bool:
        allowed = self.settings.org.admin_conversations
        return not msg.is_group or not allowed or msg.conversation_id in allowed

    async def _prepare(self, parsed: Parsed) -> Any:
        """Run a command's I/O (directory lookups) before its transaction opens."""
        route = self.router.routes.get(type(parsed.command))
        if route is None or route.prepare is None:
            return None
        try:
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
            await self._store_down(msg, e)

    def _store_down_event(self, key: str, exc: BaseException) -> str:
        """Log and count an inbound frame the store could not take; its event id."""
        event_id = uuid.uuid4().hex[:12]
        log.error("database unavailable; %s not applied (event %s): %s: %s", key, event_id,
                  type(exc).__name__, (str(exc).splitlines() or [""])[0][:300])
        self.metrics.count("store", "unavailable")
        return event_id

    async def _store_down(self, msg: IncomingMessage, exc: BaseException) -> None:
        event_id = self._store_down_event(msg.dedupe_key, exc)
        client = self.client
        if msg.from_robot or client is None:
            return
        lang = self._lang(lang_of(msg.text) if msg.file is None else None)
        text = t("db_unavailable", lang, event_id=event_id)
        alive = msg.webhook_expires_at is None or msg.webhook_expires_at > self.clock.now()
        send: Awaitable[Any]
        if msg.session_webhook and alive:
            send = client.send_webhook(msg.session_webhook,
                                       {"msgtype": "text", "text": {"content": text}})
        elif msg.is_group:
            send = client.group_send(msg.conversation_id, "sampleText", {"content": text})
        else:
            send = client.oto_send([msg.sender_id], "sampleText", {"content": text})
        await _tell_directly(msg.conversation_key, send)

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
            prepared = None if batched or parsed is None else await self._prepare(parsed)
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
        return route is not None and route.reads_only and route.prepare is None

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
                senders = await uow.members.upsert_many(
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

    async def _answer(self, uow: Any, now: datetime, msg: IncomingMessage, sender: Member,
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
                prepared, replies))

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
            sender = await uow.members.upsert(self.settings.org.corp_id, msg.sender_id, now,
                                              name=msg.sender_nick or None)
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
                sender = await uow.members.upsert(self.settings.org.corp_id, msg.sender_id, now,
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
        name = type(cmd).command_name
        route = self.router.routes.get(type(cmd))
        try:
            for i, ref in enumerate(_user_refs(cmd), 1):
                if not ref.user_id:
                    raise UserError("mention_unresolved", n=i)
            if route is None:
                raise UserError("not_available", command=name)
            # Authority first: a member's attempt is refused (audited, alerted) as such
            # wherever it is made, not just sent to the admin group.
            if not _has_authority(ctx.sender.level, route.authority):
                raise UserError(f"need_{route.authority}", audit_action=f"{name}.refused",
                                alert=True, command=_word(name, ctx.lang),
                                level=Localized(f"level_{ctx.sender.level}"))
            if route.admin_only and not self._admin_conversation_ok(ctx.message):
                raise UserError("admin_conversation_only", audit_action=f"{name}.refused")
            if route.reads_only:
                await route.handler(cmd, ctx)
            else:
                async with ctx.uow.session.begin_nested():
                    await route.handler(cmd, ctx)
            self.metrics.count(name, "ok")
        except UserError as e:
            self.metrics.count(name, "refused")
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
        except DBAPIError:
            raise  # the store is in trouble: no ack, the transport lets it be redelivered
        except Exception:
            event_id = uuid.uuid4().hex[:12]
            log.exception("command %s failed (event %s, message %s, conversation %s)",
                          name, event_id, ctx.message.message_id, ctx.message.conversation_id)
            self.metrics.count(name, "error")
            await ctx.reply(t("internal_error", ctx.lang, event_id=event_id))

    async def handle_card_action(self, action: CardAction) -> dict[str, Any]:
        """Judge a click by the clicker's userId and the stored request; return the ack body.

        With the store down before COMMIT, nothing was decided: the clicker is told directly
        to click again later, and the frame is acked."""
        try:
            return await self._handle_card_action(action)
        except Exception as e:
            if not store_unavailable(e):
                raise
            event_id = self._store_down_event(action.dedupe_key, e)
            if self.client is not None:
                text = t("db_unavailable_click", self.settings.locale.lang, event_id=event_id)
                await _tell_directly(f"user:{action.user_id}", self.client.oto_send(
                    [action.user_id], "sampleText", {"content": text}))
            return {}

    async def _handle_card_action(self, action: CardAction) -> dict[str, Any]:
        now = self.clock.now()
        async with self.db.uow() as uow:
            if not await uow.processed.claim(action.dedupe_key, "card", now):
                self.metrics.duplicates += 1
                return {}
            await uow.members.upsert(self.settings.org.corp_id, action.user_id, now)
            env = Context(uow, self.settings, now, self.faults, message_id=action.message_id)
            async with uow.session.begin_nested():
                response = await self.router.card_actions["request"](action, env)
            self._after(uow)
            await uow.commit()
            self.faults.crash("commit.before_ack")
        return response


class SenderTurns:
    """Each sender's messages take effect in the order they arrived: a change waits for
    everything the sender sent before it, a read waits for the sender's last change (reads
    of one sender may share a batch). Different senders do not wait for each other."""

    def __init__(self) -> None:
        self._last_change: dict[str, asyncio.Future[None]] = {}
        self._reads: dict[str, list[asyncio.Future[None]]] = {}

    def take(self, sender: str, *, read: bool,
             ) -> tuple[list[asyncio.Future[None]], asyncio.Future[None]]:
        """What this message must wait for, and the future to resolve when it is done."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        change = self._last_change.get(sender)
        reads = self._reads.setdefault(sender, [])
        if read:
            before = [change] if change is not None and not change.done() else []
            reads.append(done)
        else:
            before = [f for f in (change, *reads) if f is not None and not f.done()]
            self._last_change[sender] = done
            reads.clear()
        done.add_done_callback(lambda _f: self._forget(sender))
        return before, done

    def _forget(self, sender: str) -> None:
        reads = [f for f in self._reads.get(sender, ()) if not f.done()]
        change = self._last_change.get(sender)
        if reads:
            self._reads[sender] = reads
            return
        self._reads.pop(sender, None)
        if change is None or change.done():
            self._last_change.pop(sender, None)

    def __len__(self) -> int:
        return len(set(self._reads) | set(self._last_change))


@dataclasses.dataclass(frozen=True)
class _Read:
    msg: IncomingMessage
    parsed: Parsed | None
    error: ParseError | None


class Batcher(Generic[T]):
    """Group commit: items submitted while a batch is being processed form the next batch
    (up to ``limit``); nothing waits on a timer, a lone item goes at once.

    ``submit`` returns True once the item's batch has committed. When the batch failed
    before COMMIT, each of its items is handled by ``alone``, one at a time and in order,
    before the next batch starts (``submit`` returns True, or raises what ``alone`` raised
    for that item); without ``alone`` it returns False and the caller handles the item
    itself. An unknown COMMIT outcome is raised to every item of the batch.
    """

    def __init__(self, run: Callable[[list[T]], Awaitable[None]], *, limit: int,
                 alone: Callable[[T], Awaitable[None]] | None = None) -> None:
        self._run, self._limit, self._alone = run, max(1, limit), alone
        self._queue: list[tuple[T, asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def submit(self, item: T) -> bool:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
            self._task.add_done_callback(self._drained)
        return await fut

    def _drained(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if task.cancelled():   # (even before its first step): nobody is left waiting
            for _, fut in self._queue:
                if not fut.done():
                    fut.cancel()
            self._queue.clear()

    async def _one_by_one(self, batch: list[tuple[T, asyncio.Future[bool]]]) -> None:
        assert self._alone is not None
        for n, (item, fut) in enumerate(batch):
            try:
                await self._alone(item)
            except Exception as e:
                if not fut.done():
                    fut.set_exception(e)
            except BaseException as e:   # cancelled: the rest are not acked either
                for _, rest in batch[n:]:
                    if not rest.done():
                        rest.set_exception(e)
                raise
            else:
                if not fut.done():
                    fut.set_result(True)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._limit]
                del self._queue[: self._limit]
                outcome: bool | BaseException
                try:
                    await self._run([item for item, _ in batch])
                    outcome = True
                except CommitOutcomeUnknown as e:
                    outcome = e
                except Exception:
                    log.warning("a batch of %d failed before COMMIT; each goes alone",
                                len(batch), exc_info=True)
                    outcome = False
                except BaseException as e:   # cancelled: none of them is acked
                    for _, fut in batch + self._queue:
                        if not fut.done():
                            fut.set_exception(e)
                    self._queue.clear()
                    raise
                self.batches += 1
                if outcome is False and self._alone is not None:
                    await self._one_by_one(batch)
                    continue
                for _, fut in batch:
                    if fut.done():
                        continue
                    if isinstance(outcome, BaseException):
                        fut.set_exception(outcome)
                    else:
                        fut.set_result(outcome)
        finally:
            self._task = None   # (also cleared by _drained, should this never have run)


async def _tell_directly(who: str, send: Awaitable[Any]) -> None:
    """Await a send made now, not through the outbox (which is in the store that is down):
    best effort, a failure is logged."""
    try:
        await send
    except Exception:
        log.exception("could not tell %s that the database is unavailable", who)


def _word(name: str, lang: Lang) -> str:
    """The command word a reply in ``lang`` names (授权 for grant in Chinese)."""
    try:
        return primary(name, lang)
    except KeyError:
        return name


def _has_authority(level: str, authority: str | None) -> bool:
    if authority is None:
        return True
    if authority == "owner":
        return level == "owner"
    return level in ("owner", "admin")
