"""Due work: rows with ``due_at`` in our own table, claimed atomically, done exactly once.

APScheduler is only the alarm clock (bot/scheduling/alarm.py): it calls :meth:`DueRunner.run_once`
on an interval and at the next due time. The table is the truth, so a restart sends what
fell due while Baton was down, once, and several replicas never do a row twice (a claim is a
lease; on PostgreSQL ``FOR UPDATE SKIP LOCKED``). A handler's changes and the row's "done"
mark commit in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta

from bot.config import Settings
from bot.core.clock import Clock
from bot.core.domain.due import DueItem
from bot.core.faults import Faults
from bot.dispatch.context import Context, DueHandler, DueJob, RequestKinds
from bot.transport.openapi import OpenApiClient
from storage.db import Database

log = logging.getLogger(__name__)
LATE_AFTER = timedelta(seconds=60)   # schedule lag over this is logged at WARNING


class DueRunner:
    def __init__(self, db: Database, settings: Settings, clock: Clock,
                 client: OpenApiClient | None, faults: Faults,
                 handlers: Mapping[str, DueHandler], *, on_commit: Callable[[], None] = lambda: None,
                 batch: int = 100,
                 max_attempts: int = 10, request_kinds: RequestKinds | None = None) -> None:
        self.db, self.settings, self.clock, self.client = db, settings, clock, client
        self.faults, self.handlers, self.on_commit = faults, handlers, on_commit
        self.request_kinds = request_kinds      # the root router's, for request due work
        self.lease = settings.scheduler.lease
        self.batch, self.max_attempts = batch, max_attempts
        self.done = 0
        self.failures = 0
        self.last_lag = 0.0     # seconds the last row ran after its due time
        self.max_lag = 0.0
        self.late = 0           # rows run more than LATE_AFTER after their due time

    async def run_once(self) -> int:
        """Claim and run everything due now; returns how many rows ran."""
        total = 0
        while True:
            now = self.clock.now()
            async with self.db.uow() as uow:
                rows = await uow.due.claim_due(now, self.lease, self.batch)
                await uow.commit()
            for row in rows:
                await self._run(row, now)
            total += len(rows)
            if len(rows) < self.batch:
                return total

    async def _run(self, row: DueItem, now: datetime) -> None:
        # Per row, at the moment it runs: a long batch makes its last rows later than its first.
        lag = max(0.0, (self.clock.now() - row.due_at).total_seconds())
        self.last_lag, self.max_lag = lag, max(self.max_lag, lag)
        if lag > LATE_AFTER.total_seconds():
            self.late += 1
            log.warning("due work %s (%s) ran %.0f s after its due time %s", row.id, row.kind,
                        lag, row.due_at.isoformat())
        handler = self.handlers.get(row.kind)
        ctx = self.context(row.id)
        try:
            if handler is None:
                raise LookupError(f"no handler for due work of kind {row.kind!r}")
            await handler(dict(row.payload), ctx)
            self.done += 1
        except Exception as e:
            self.failures += 1
            attempts = row.attempts + 1
            give_up = attempts >= self.max_attempts
            log.exception("due work %s (%s) failed, attempt %d%s", row.id, row.kind, attempts,
                          "; giving up (OPERATOR ALERT)" if give_up else "")
            delay = timedelta(seconds=min(3600, 5 * 2 ** attempts))
            async with self.db.uow() as uow:
                await uow.due.mark_failed(row, f"{type(e).__name__}: {e}"[:300],
                                          retry_at=None if give_up else self.clock.now() + delay)
                await uow.commit()

    def context(self, row_id: int) -> Context:
        """A due job's context: its ``transaction()`` is :meth:`_transaction`."""
        ctx = Context(None, self.settings, self.clock.now(), self.faults, client=self.client,
                      job=DueJob(row_id, self.db, lambda: self._transaction(ctx, row_id)),
                      request_kinds=self.request_kinds)
        return ctx

    @contextlib.asynccontextmanager
    async def _transaction(self, job: Context, row_id: int) -> AsyncIterator[Context]:
        """One transaction for the handler's changes and the row's done mark."""
        async with self.db.uow() as uow:
            ctx = job.inside(uow, self.clock.now())
            yield ctx
            # A row another handler already did (merged into its work) stays as that left it.
            await uow.due.mark_done(row_id, ctx.now)
            uow.after_commit(self.on_commit)
            await uow.commit()

    async def next_due_at(self) -> datetime | None:
        async with self.db.uow() as uow:
            rows = await uow.due.upcoming(1)
            return rows[0].due_at if rows else None
