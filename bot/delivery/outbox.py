"""The outbox sender: sends what committed transactions wrote, never loses it.

Rows are claimed with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sent, then marked
sent. A failure is retried with jittered exponential backoff; after ``max_attempts`` the row
is FAILED and logged as an operator alert, never silently dropped. Messages to one
conversation respect ``per_conversation_per_minute``: over the budget a row waits (queued,
not dropped). A restart resumes whatever is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.config import OutboxSettings
from bot.core.clock import Clock
from bot.core.domain.outbox import OutboxRow
from bot.core.faults import Faults
from bot.core.lang import Lang
from bot.logs import redact
from bot.ports import (
    CARD_EXISTS,
    CARD_MISSING,
    DingTalkError,
    Messenger,
    PermissionDenied,
    RateLimited,
    SessionExpired,
)
from bot.texts.catalog import t
from storage.db import Database, UnitOfWork

log = logging.getLogger(__name__)

MESSAGE_KINDS = {"reply", "card", "export"}
AFTER_CREATION = timedelta(seconds=1)      # an update waiting for its card goes this long after
Deliverer = Callable[[dict[str, Any]], Awaitable[None]]
GiveUp = Callable[[UnitOfWork, OutboxRow, int, str], Awaitable[None]]
# Called in the transaction that parks a row DingTalk refused for want of a permission.
Park = Callable[[UnitOfWork, OutboxRow, DingTalkError, datetime], Awaitable[None]]


@dataclass(frozen=True)
class Budget:
    """A conversation's sends in the last minute: how many (up to the limit), and their
    times when some row may have to wait for a slot."""

    used: int
    recent: list[datetime]


class OutboxSender:
    def __init__(self, db: Database, client: Messenger, settings: OutboxSettings,
                 clock: Clock, *, batch: int = 50, lease: timedelta = timedelta(seconds=60),
                 idle_poll: float = 5.0, rng: random.Random | None = None,
                 alert_window: timedelta = timedelta(seconds=30),
                 deliverers: dict[str, Deliverer] | None = None,
                 on_give_up: GiveUp | None = None, faults: Faults | None = None,
                 on_denied: dict[str, Park] | None = None) -> None:
        self._db, self._client, self._s, self._clock = db, client, settings, clock
        self._alert_window = alert_window
        # Other kinds of rows (e.g. "export": build a file, upload it, send it), same retries.
        self._deliverers = deliverers or {}
        # Called in the transaction that marks a row FAILED (the operator alert).
        self._on_give_up = on_give_up
        # Kinds whose rows are parked (FAILED at once, no retries) when DingTalk answers that
        # the app lacks a permission: retrying cannot help until an operator grants it.
        self._on_denied = on_denied or {}
        self.parked = 0
        self._faults = faults or Faults()
        self._batch, self._lease, self._idle = batch, lease, idle_poll
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = False
        self.sent = 0
        self.failed = 0
        self.deferred = 0
        # Sent but not yet marked ((id, took a budget slot), when), and held back but not yet
        # put back: written by the next cycle's transaction (or :meth:`_settle`).
        self._unmarked: list[tuple[list[tuple[int, bool]], datetime]] = []
        self._undeferred: list[tuple[int, datetime]] = []
        self._settling = asyncio.Lock()   # one writer of those two lists' marks at a time

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Send until :meth:`stop`; after a stop, one last drain, then return.

        Pipelined: what one cycle sent is marked sent by the next cycle's transaction,
        together with its claim, so a busy sender spends one transaction per cycle."""
        while True:
            self._wake.clear()
            try:
                n = await self._cycle()
            except Exception:
                log.exception("outbox drain failed; will retry")
                n = 0
            if self._stopping:
                try:
                    await self._settle()
                except Exception:
                    log.exception("outbox: could not mark the last sends; they may be resent")
                return
            if n > 0:
                continue   # the next cycle marks these and takes what came meanwhile
            timeout = self._idle
            try:
                async with self._db.uow() as uow:
                    nxt = await uow.outbox.next_due_at()
            except Exception:
                nxt = None
            if nxt is not None:
                timeout = min(timeout, max(0.0, (nxt - self._clock.now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def drain_once(self) -> int:
        """Claim what is due, send it, mark it sent; the number of rows claimed."""
        n = await self._cycle()
        await self._settle()
        return n

    async def _apply(self, uow: UnitOfWork) -> tuple[int, int]:
        """Write what earlier sends left: rows to mark sent, held-back rows to put back.
        Returns how many entries of each it wrote, so :meth:`_applied` drops only those
        (sends still finishing may add more meanwhile)."""
        marks, defers = len(self._unmarked), len(self._undeferred)
        if marks:
            # One statement, each row with the time it went (the budget counts from it). A
            # crash before it commits means a resend, never a loss.
            await uow.outbox.mark_sent_each(
                [(i, at, counted) for ids, at in self._unmarked[:marks] for i, counted in ids])
        if defers:
            await uow.outbox.defer_many(self._undeferred[:defers])
        return marks, defers

    def _applied(self, written: tuple[int, int]) -> None:
        marks, defers = written
        self.sent += sum(len(ids) for ids, _ in self._unmarked[:marks])
        self.deferred += defers
        del self._unmarked[:marks]
        del self._undeferred[:defers]

    async def _settle(self) -> None:
        async with self._settling:
            if self._unmarked or self._undeferred:
                async with self._db.uow() as uow:
                    written = await self._apply(uow)
                    await uow.commit()
                self._applied(written)

    async def _cycle(self) -> int:
        """One transaction (earlier sends marked, due rows claimed, each conversation's
        budget read), then the sends; their marks wait for the next transaction, or are
        written every third of the lease while the sends go on (a slow conversation must
        not keep others' sends unmarked until their leases run out)."""
        loop = asyncio.get_running_loop()
        began = loop.time()   # the leases below run from about now
        now = self._clock.now()
        budgets: dict[str, Budget] = {}
        async with self._settling, self._db.uow() as uow:
            written = await self._apply(uow)
            rows = list(await uow.outbox.claim_due(now, self._lease, self._batch))
            by_conv: dict[str, list[OutboxRow]] = defaultdict(list)
            for r in rows:
                by_conv[r.conversation_key].append(r)
            for key, conv_rows in by_conv.items():
                budgets[key] = await self._budget(uow, key, conv_rows, now)
            await uow.commit()
            self._applied(written)
        if not rows:
            return 0
        sending = asyncio.ensure_future(asyncio.gather(
            *(self._send_conversation(k, v, budgets[k]) for k, v in by_conv.items()),
            return_exceptions=True))
        period = self._lease.total_seconds() / 3
        deadline = began + period
        try:
            while not (await asyncio.wait({sending}, timeout=max(0.0, deadline - loop.time()))
                       )[0]:
                try:
                    await self._settle()
                except Exception:
                    log.exception("outbox: could not mark sends while others go on")
                deadline += period
        finally:
            if not sending.done():
                sending.cancel()
        for key, res in zip(by_conv, sending.result(), strict=True):
            if isinstance(res, BaseException):
                # What it sent is recorded already; the rest keep their lease and go again.
                log.error("outbox: sending to %s failed midway: %s: %s", key,
                          type(res).__name__, res)
        return len(rows)

    async def _budget(self, uow: UnitOfWork, key: str, rows: Sequence[OutboxRow],
                      now: datetime) -> Budget:
        """Sends to a conversation in the last minute, counted only as far as the limit;
        their times (the latest ``limit``, for the slots) are read only if a row must wait."""
        limit = self._s.per_conversation_per_minute
        since = now - timedelta(minutes=1)
        used = await uow.outbox.count_sent_since(key, since, cap=limit)
        if used + sum(map(_counts, rows)) <= limit:
            return Budget(used, [])
        recent = list(await uow.outbox.sent_since(key, since, limit=limit))
        return Budget(len(recent), recent)

    async def _send_conversation(self, key: str, rows: Sequence[OutboxRow],
                                 budget: Budget) -> None:
        """Send one conversation's rows within its budget. Rows held back, and each wave's
        sends, are recorded as soon as known (and marked by the next transaction), so a
        failure elsewhere loses none of them."""
        window = timedelta(minutes=1)
        now = self._clock.now()
        if any(r.kind == "reply" and r.payload.get("merge") == "alert" for r in rows):
            # Alerts raised within the window after this one ride along in one message.
            async with self._db.uow() as uow:
                more = await uow.outbox.claim_alerts(key, now + self._alert_window, now,
                                                     self._lease)
                await uow.commit()
            have = {r.id for r in rows}
            rows = [*rows, *(r for r in more if r.id not in have)]
        rows, merged = merge_alerts(rows)
        limit = self._s.per_conversation_per_minute
        used, recent = budget.used, list(budget.recent)
        if used + sum(map(_counts, rows)) > limit:
            # Not all can go now: one person's backlog must not take every free slot ahead
            # of a reply to someone else (each person's replies and every card keep order).
            rows = fair_order(rows)
        deferred: list[tuple[int, datetime]] = []
        go: list[OutboxRow] = []
        for row in rows:
            if _counts(row) and (deferred or used >= limit):
                # Over the budget: the k-th waiting row takes the k-th slot to free up, so
                # only as many rows fall due as can be sent, and a busy group's backlog is
                # not claimed and put back again and again ahead of other conversations.
                deferred.append((row.id, slot(recent, len(deferred), limit, window, now)))
                continue
            go.append(row)
            if _counts(row):
                used += 1   # budget taken when planned (a failed send gives none back)
                recent.append(now)
        self._undeferred += deferred

        async def send(row: OutboxRow) -> list[tuple[int, bool]]:
            payload, riders = merged.get(row.id, (row.payload, []))
            if await self._send_row(row, payload):
                self._faults.crash("send.before_mark")
                # Alerts merged into this one went in its message: they take no budget slot.
                return [(row.id, _counts(row)), *((r, False) for r in riders)]
            return []

        for wave in waves(go):
            sent: list[tuple[int, bool]] = []
            if len(wave) == 1:
                sent += await send(wave[0])
            else:
                for ids in await asyncio.gather(*(send(r) for r in wave)):
                    sent += ids
            if sent:
                self._unmarked.append((sent, self._clock.now()))

    async def _send_row(self, row: OutboxRow, payload: dict[str, Any] | None = None) -> bool:
        self._faults.crash("ack.before_send")
        try:
            await self._deliver(row, payload)
        except DingTalkError as e:
            if e.code == CARD_MISSING and await self._wait_for_creation(row):
                return False
            if isinstance(e, PermissionDenied) and row.kind in self._on_denied:
                await self._park(row, e)
                return False
            await self._record_failure(row, f"{type(e).__name__}: {e.code} {e.message}",
                                       e.retry_after)
            return False
        except Exception as e:  # a bug in rendering or sending: keep the row, say so loudly
            log.exception("outbox row %s could not be sent", row.id)
            await self._record_failure(row, f"{type(e).__name__}: {e}", None)
            return False
        return True

    async def _wait_for_creation(self, row: OutboxRow) -> bool:
        """An update of a card whose creation is still queued (say, held back by its group's
        budget) goes after it, spending no attempt: otherwise the update could fail for good
        and the card, created later, would show its first state (live buttons) forever."""
        track = str(row.payload.get("out_track_id", ""))
        try:
            async with self._db.uow() as uow:
                due = await uow.outbox.pending_creation(track)
        except Exception:
            log.exception("outbox row %s: could not look for its card's creation", row.id)
            return False
        if due is None:
            return False
        self._undeferred.append((row.id, max(due, self._clock.now()) + AFTER_CREATION))
        log.info("outbox row %s: card %s not created yet; the update waits for it", row.id, track)
        return True

    async def _record_failure(self, row: OutboxRow, error: str,
                              retry_after: float | None) -> None:
        try:
            await self._failed(row, error, retry_after)
        except Exception:   # the store is in trouble: the row keeps its lease, then goes again
            log.exception("outbox row %s: could not record the failed send", row.id)

    async def _park(self, row: OutboxRow, e: DingTalkError) -> None:
        try:
            async with self._db.uow() as uow:
                await uow.outbox.mark_failed(row.id, f"parked: {type(e).__name__}: {e.code} "
                                                     f"{e.message}")
                await self._on_denied[row.kind](uow, row, e, self._clock.now())
                await uow.commit()
            self.parked += 1
            log.error("OPERATOR ALERT: outbox row %s (%s) parked: DingTalk refused it for a "
                      "missing permission (%s)", row.id, row.kind, e.code)
        except Exception:   # the store is in trouble: the row keeps its lease, then goes again
            log.exception("outbox row %s: could not park it", row.id)

    async def _forget_webhook(self, row: OutboxRow) -> None:
        """A dead sessionWebhook is of no use and still a secret: drop it from the row."""
        async with self._db.uow() as uow:
            await uow.outbox.forget_webhook(row.id)
            await uow.commit()

    async def _failed(self, row: OutboxRow, error: str, retry_after: float | None) -> None:
        attempts = row.attempts + 1
        # The error is stored and logged: keep the webhook, tokens and tickets out of it.
        error = redact(error, (row.session_webhook,) if row.session_webhook else ())
        async with self._db.uow() as uow:
            if attempts >= self._s.max_attempts:
                await uow.outbox.mark_failed(row.id, error)
                self.failed += 1
                log.error("OPERATOR ALERT: outbox row %s (%s to %s) failed after %d attempts: %s",
                          row.id, row.kind, row.conversation_key, attempts, error)
                if self._on_give_up is not None and row.payload.get("merge") != "alert":
                    # Not for an alert itself: a dead alert channel must not feed itself.
                    await self._on_give_up(uow, row, attempts, error)
            else:
                delay = min(self._s.max_backoff, self._s.base_backoff * 2 ** (attempts - 1))
                delay *= 0.5 + self._rng.random()
                if retry_after is not None:
                    delay = max(delay, retry_after)
                await uow.outbox.reschedule(row.id, self._clock.now() + timedelta(seconds=delay),
                                            error=error, count_attempt=True)
                log.warning("outbox row %s not sent (%s); retry in %.1fs", row.id, error, delay)
            await uow.commit()

    async def _deliver(self, row: OutboxRow, payload: dict[str, Any] | None = None) -> None:
        p = payload if payload is not None else row.payload
        if row.kind == "reply":
            await self._send_reply(row, p)
        elif row.kind == "card":
            if p["op"] == "create":
                try:
                    await self._client.create_and_deliver_card(p["body"])
                except DingTalkError as e:
                    if e.code != CARD_EXISTS:
                        raise
                    # Our outTrackIds are ours alone (one per request): the card exists
                    # because an earlier attempt created it and died before marking the
                    # row sent. That is this row, delivered.
                    log.info("card %s already exists: outbox row %s was delivered before",
                             p.get("out_track_id"), row.id)
            else:
                body = p["body"]
                await self._client.update_card(p["out_track_id"], body.get("params", {}),
                                               body.get("private"))
        elif row.kind in self._deliverers:
            await self._deliverers[row.kind](p)
        else:
            raise ValueError(f"unknown outbox kind {row.kind!r}")

    async def _send_reply(self, row: OutboxRow, p: dict[str, Any]) -> None:
        markdown = p.get("format") == "markdown"
        title = p["title"] if markdown else ""   # a plain text has none
        webhook = row.session_webhook
        alive = row.webhook_expires_at is None or row.webhook_expires_at > self._clock.now()
        if webhook and not alive:
            await self._forget_webhook(row)
        if webhook and alive:
            try:
                await self._client.send_by_webhook(webhook, p["text"], markdown=markdown,
                                                   title=title, at=p.get("at") or ())
                return
            except SessionExpired:
                log.info("session webhook expired for row %s; using the robot API", row.id)
                await self._forget_webhook(row)
        if p["is_group"]:
            await self._client.send_to_group(p["conversation_id"], p["text"], markdown=markdown,
                                             title=title)
        elif not await self._client.send_to_user(p["user_id"], p["text"], markdown=markdown,
                                                 title=title):
            raise RateLimited("/v1.0/robot/oToMessages/batchSend", 200, "flowControlled",
                              "throttled by DingTalk", retry_after=60.0)


def _counts(row: OutboxRow) -> bool:
    """Whether a row is a message that counts against a conversation's budget."""
    return row.kind in MESSAGE_KINDS and not (
        row.kind == "card" and row.payload.get("op") == "update")


def waves(rows: Sequence[OutboxRow]) -> list[list[OutboxRow]]:
    """Split one conversation's rows (in id order) into waves sent one after another, the
    rows of a wave at the same time: consecutive replies to different people share a wave;
    a second reply to the same person, and any other row (a card, an alert, an export),
    start a new one. So each person still gets their replies in order, and a card never
    overtakes or is overtaken by what was written before or after it."""
    out: list[list[OutboxRow]] = []
    people: set[str] = set()   # of the last wave, while it is open to more replies
    for r in rows:
        who = _person(r)
        if who and people and who not in people:
            out[-1].append(r)
            people.add(who)
            continue
        out.append([r])
        people = {who} if who else set()
    return out


def _person(row: OutboxRow) -> str | None:
    """Whom a reply answers (waves and fair order); None for a card, an alert, an export."""
    if row.kind == "reply" and not row.payload.get("merge"):
        return str(row.payload.get("user_id") or "") or None
    return None


def fair_order(rows: Sequence[OutboxRow]) -> list[OutboxRow]:
    """One conversation's rows (in id order) reordered so that, when its budget is short,
    the free slots are shared across the people being answered: within each run of
    replies between two other rows (a card, an alert, an export, which keep their place),
    round robin over the people, those with fewest replies in the run first (ties: who came
    first). Each person's replies stay in their order."""
    out: list[OutboxRow] = []
    run: dict[str, list[OutboxRow]] = {}

    def flush() -> None:
        queues = sorted(run.values(), key=len)   # stable: ties keep first appearance
        for r in range(len(queues[-1]) if queues else 0):
            out.extend(q[r] for q in queues if r < len(q))
        run.clear()

    for row in rows:
        who = _person(row)
        if who is None:
            flush()
            out.append(row)
        else:
            run.setdefault(who, []).append(row)
    flush()
    return out


def slot(recent: Sequence[datetime], k: int, limit: int, window: timedelta,
         now: datetime) -> datetime:
    """When the k-th (0-based) message held back in a conversation may go, given the sends
    ``recent``ly made there: budget still free now, then as each recent send leaves the
    window (oldest first), then a window after each of those. Only a hint: the budget is
    checked again at send time."""
    times = sorted(t for t in recent if t > now - window)[-limit:]
    free = limit - len(times)
    # Slot r of each round is one window after slot r of the round before, so any minute
    # holds at most one send per slot: ``limit`` in all, the recent ones included.
    r, rounds = k % limit, k // limit
    first = now if r < free else times[r - free] + window
    return first + window * rounds


MERGE_CAP = 30


def merge_alerts(rows: Sequence[OutboxRow],
                 ) -> tuple[list[OutboxRow], dict[int, tuple[dict[str, Any], list[int]]]]:
    """Collapse one conversation's due alert rows into the first of them.

    Returns the rows to send and, for the row that carries a merged text, its payload and
    the ids of the rows it stands for (marked sent with it, so a crash resends all or none).
    """
    keep: list[OutboxRow] = []
    first: OutboxRow | None = None
    texts: list[str] = []
    riders: list[int] = []
    for r in rows:
        if r.kind == "reply" and r.payload.get("merge") == "alert":
            texts.append(str(r.payload.get("text", "")))
            if first is None:
                first = r
                keep.append(r)
            else:
                riders.append(r.id)
        else:
            keep.append(r)
    if first is None:
        return keep, {}
    lang: Lang = "en" if first.payload.get("lang") == "en" else "zh"
    body = [t("alert_header", lang, n=len(texts)), *texts[:MERGE_CAP]]
    if len(texts) > MERGE_CAP:
        body.append(t("alert_more", lang, n=len(texts) - MERGE_CAP))
    return keep, {first.id: ({**first.payload, "text": "\n".join(body)}, riders)}
