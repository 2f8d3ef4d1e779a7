"""The webhook sender: the change feed pushed to each subscriber, in order, at least once.

The feed (``change_events``, written in the transaction of each change) is the durable log;
``webhook_subscribers`` holds each subscriber's cursor. A round for one subscriber:

1. one short transaction leases the subscriber (a conditional UPDATE: one replica wins) and
   reads the events after its cursor (up to ``batch``, only the types it wants);
2. with no transaction open, POSTs them one by one, in seq order, stopping at the first
   failure (a later event never overtakes an earlier one);
3. one transaction writes the outcome under the lease's token: the cursor after the last
   2xx, or the failure (attempts, retry time with backoff); the ``max_attempts``-th failure
   at one event pauses the subscriber and queues one alert in the same transaction.

A crash anywhere before step 3 commits leaves the cursor where it was: the same events (same
ids) go again once the lease runs out; receivers deduplicate on the id. Each subscriber runs
in its own task, so a URL that hangs delays only its own subscriber, and no transaction is
open while a POST waits, so commands never queue behind a webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import Settings, WebhookSettings
from bot.core.clock import Clock
from bot.core.domain import webhooks as rules
from bot.core.domain.feed import ChangeEvent
from bot.core.domain.webhooks import Subscription
from bot.core.faults import Faults
from bot.delivery.alerts import queue_alert
from bot.logs import redact
from bot.ports import WebhookFailed, Webhooks
from bot.texts.catalog import t
from storage.db import Database, UnitOfWork

log = logging.getLogger(__name__)
PROGRESS_EVERY = 1.0   # seconds between two records of a round's progress


@dataclass(frozen=True)
class Claimed:
    """A subscriber leased for one round, with the events the round is to send."""

    cfg: WebhookSettings
    token: str
    sub: Subscription
    head: int
    events: list[ChangeEvent]


class WebhookSender:
    def __init__(self, db: Database, poster: Webhooks, settings: Settings, clock: Clock, *,
                 faults: Faults | None = None, rng: random.Random | None = None,
                 on_alert: Callable[[], None] | None = None,
                 progress_every: float = PROGRESS_EVERY) -> None:
        self._db, self._poster, self._settings, self._clock = db, poster, settings, clock
        self._subs: dict[str, WebhookSettings] = {
            w.name: w for w in settings.integrations.webhooks}
        self._d = settings.integrations.webhook_delivery
        self._faults = faults or Faults()
        self._rng = rng or random.Random()
        self._on_alert = on_alert
        self._progress_every = progress_every
        self._wake = asyncio.Event()
        self._stopping = False
        self._rounds: dict[str, asyncio.Task[None]] = {}
        self._reached: dict[str, int] = {}   # per round under way: the last seq acknowledged
        self._posts: dict[str, asyncio.Future[None]] = {}   # per round: the POST under way
        #: Per subscriber, since start: events acknowledged, failed attempts, pauses.
        self.delivered: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.paused: Counter[str] = Counter()

    @property
    def names(self) -> list[str]:
        return list(self._subs)

    def wake(self, _head: int | None = None) -> None:
        """New events (a feed listener), a replay or a round's end: look again now."""
        self._wake.set()

    async def register(self) -> list[str]:
        """Make a row for each configured subscriber not yet in the store; a new one starts
        at the feed's head. Returns the names added."""
        if not self._subs:
            return []
        async with self._db.uow() as uow:
            await uow.serialise("webhooks.register")
            head = await uow.feed.head()
            added = await uow.webhooks.register(self.names, head, self._clock.now())
            await uow.commit()
        for name in added:
            log.info("webhook %s: new subscriber, following the feed from seq %d", name, head)
        return added

    async def run(self) -> None:
        """Deliver until :meth:`stop`; then cut short the POSTs under way, let each round
        record what was acknowledged and free its lease, and return."""
        if not self._subs:
            return
        while not self._stopping:
            self._wake.clear()
            timeout = self._d.poll_interval.total_seconds()
            try:
                _started, nxt = await self._start_rounds()
            except Exception:
                log.exception("webhooks: could not look for work; will retry")
                nxt = None
            if nxt is not None:
                timeout = min(timeout, max(0.0, (nxt - self._clock.now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        # A POST under way is not waited for (a slow receiver must not hold up a shutdown):
        # it is cancelled, and its round records what was acknowledged and frees its lease,
        # so the next start resumes at once; the cut-off event goes again.
        for post in list(self._posts.values()):
            post.cancel()
        if self._rounds:
            await asyncio.wait(list(self._rounds.values()))

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def drain(self) -> None:
        """Run rounds until no subscriber has due work (tests)."""
        while True:
            started, _ = await self._start_rounds()
            if not started and not self._rounds:
                return
            await asyncio.wait(list(self._rounds.values()))

    async def _start_rounds(self) -> tuple[int, datetime | None]:
        """In one transaction, lease every idle subscriber that has due work and read its
        events; start a round for each. Returns (rounds started, the next retry time)."""
        idle = [n for n in self._subs if n not in self._rounds]
        if not idle or self._stopping:
            return 0, None
        now = self._clock.now()
        async with self._db.uow() as uow:
            head = await uow.feed.head()
            claimed = [c for name in await uow.webhooks.due(idle, head, now)
                       if (c := await self._claim(uow, name, head, now)) is not None]
            nxt = await uow.webhooks.next_due_at(idle)
            await uow.commit()
        for c in claimed:
            task = asyncio.create_task(self._deliver(c), name=f"webhook:{c.cfg.name}")
            self._rounds[c.cfg.name] = task
            task.add_done_callback(functools.partial(self._round_done, c.cfg.name))
        return len(claimed), nxt

    async def _claim(self, uow: UnitOfWork, name: str, head: int,
                     now: datetime) -> Claimed | None:
        cfg = self._subs[name]
        token = uuid.uuid4().hex
        sub = await uow.webhooks.claim(name, token, now, self._d.lease)
        if sub is None:
            return None
        types = None if "*" in cfg.events else list(cfg.events)
        events = await uow.feed.after(sub.cursor, self._d.batch, upto=head, types=types)
        return Claimed(cfg, token, sub, head, events)

    def _round_done(self, name: str, _task: asyncio.Task[None]) -> None:
        task = self._rounds.pop(name, None)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("webhook %s: round failed: %r", name, task.exception())
        self._wake.set()

    async def _round(self, name: str) -> None:
        """One round for ``name`` now, if it is due and free (tests drive it so)."""
        async with self._db.uow() as uow:
            head = await uow.feed.head()
            c = await self._claim(uow, name, head, self._clock.now())
            await uow.commit()
        if c is not None:
            await self._deliver(c)

    async def _deliver(self, c: Claimed) -> None:
        cfg, token, sub, head, events = c.cfg, c.token, c.sub, c.head, c.events
        name, lease = cfg.name, self._d.lease
        self._reached[name] = sub.cursor
        try:
            reached, error, complete = await self._post(cfg, token, sub.cursor, events, lease)
        except asyncio.CancelledError:
            reached = self._reached.pop(name, sub.cursor)
            try:
                await asyncio.wait_for(self._release(name, token, sub.cursor, reached), 5)
            except Exception:
                log.exception("webhook %s: could not free the lease at a stop", name)
            raise
        self._reached.pop(name, None)
        if error is None and not complete:
            # Cut short without a failure (a stop, the lease's budget, a lost lease): keep
            # what went, free the lease, count no attempt; the rest goes next round.
            await self._release(name, token, sub.cursor, reached)
            return
        if complete and len(events) < self._d.batch:
            reached = max(reached, head)   # every wanted event up to the head went
        await self._settle(cfg, sub, token, reached, error)

    async def _release(self, name: str, token: str, cursor: int, reached: int) -> None:
        async with self._db.uow() as uow:
            await uow.webhooks.release(name, token, reached if reached > cursor else None,
                                       self._clock.now())
            await uow.commit()

    async def _post(self, cfg: WebhookSettings, token: str, cursor: int,
                    events: list[ChangeEvent], lease: timedelta,
                    ) -> tuple[int, str | None, bool]:
        """POST ``events`` in order: (the seq of the last one acknowledged, the error that
        stopped the round or None, whether every one of them went). Progress is recorded
        about once a second meanwhile, so a crash sends at most about a second's worth of
        events again."""
        loop = asyncio.get_running_loop()
        began = recorded_at = loop.time()
        reached = cursor
        secret = cfg.secret.get_secret_value()
        for ev in events:
            if self._stopping or loop.time() - began + cfg.timeout > lease.total_seconds() / 2:
                return reached, None, False   # the rest next round: no POST outlives the lease
            post = asyncio.ensure_future(self._poster.post_event(
                cfg.url, secret, ev.as_json(), sent_at=int(self._clock.now().timestamp()),
                timeout=cfg.timeout))
            self._posts[cfg.name] = post
            try:
                await post
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if (me is not None and me.cancelling()) or not self._stopping:
                    raise       # the round itself is cancelled
                return reached, None, False     # a stop cut this POST short
            except WebhookFailed as e:
                return reached, f"#{ev.seq}: {redact(str(e), (secret,))}", False
            except Exception as e:   # a bug, not the receiver: keep the event, say so loudly
                log.exception("webhook %s: event %s could not be sent", cfg.name, ev.id)
                return reached, f"#{ev.seq}: {type(e).__name__}: {e}", False
            finally:
                self._posts.pop(cfg.name, None)
            self._faults.crash("webhook.before_mark")
            reached = self._reached[cfg.name] = ev.seq
            self.delivered[cfg.name] += 1
            if loop.time() - recorded_at >= self._progress_every:
                async with self._db.uow() as uow:
                    kept = await uow.webhooks.delivered(cfg.name, token, reached,
                                                        self._clock.now())
                    await uow.commit()
                if not kept:
                    return reached, None, False   # the lease is gone: the settle says so
                recorded_at = loop.time()
        return reached, None, True

    async def _settle(self, cfg: WebhookSettings, sub: Subscription, token: str, reached: int,
                      error: str | None) -> None:
        now = self._clock.now()
        reached = max(reached, sub.cursor)
        out = rules.settle(sub.cursor, sub.attempts, reached, error, now,
                           max_attempts=cfg.max_attempts, base=self._d.base_backoff,
                           cap=self._d.max_backoff, rng=self._rng)
        async with self._db.uow() as uow:
            if not await uow.webhooks.settle(cfg.name, token, out, now,
                                             progressed=reached > sub.cursor):
                log.warning("webhook %s: lease lost (replayed or taken over); this round's "
                            "outcome is dropped and its events go again", cfg.name)
                return
            if out.paused:
                await self._alert(uow, cfg, out)
            await uow.commit()
        if error is not None:
            self.failures[cfg.name] += 1
            log.warning("webhook %s: event after seq %d not delivered (attempt %d/%d): %s",
                        cfg.name, out.cursor, out.attempts, cfg.max_attempts, error)
        if out.paused:
            self.paused[cfg.name] += 1
            log.error("OPERATOR ALERT: webhook %s paused at seq %d after %d attempts: %s",
                      cfg.name, out.cursor + 1, out.attempts, error)

    async def _alert(self, uow: UnitOfWork, cfg: WebhookSettings, out: rules.Outcome) -> None:
        s = self._settings
        lang = s.locale.lang
        await uow.audit.append(s.org.corp_id, self._clock.now(), actor_id="system",
                               action="webhook.paused", result="applied",
                               after={"webhook": cfg.name, "cursor": out.cursor,
                                      "attempts": out.attempts, "error": out.error})
        if await queue_alert(uow, s, self._clock.now(), who="Baton", what=t(
                "alert_webhook_paused", lang, name=cfg.name, seq=out.cursor + 1,
                attempts=out.attempts, error=(out.error or "")[:120]),
                why="webhook", what_cap=400) and self._on_alert is not None:
            uow.after_commit(self._on_alert)
