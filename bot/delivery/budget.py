"""DingTalk's monthly call budget: every replica's metered calls summed in the store, and a
warning to ``org.alert_conversation`` at 80% and at 100% of ``dingtalk.monthly_call_budget``,
once a month per threshold (a mark in the store, so not again after a restart or on another
replica).

The OpenAPI client counts each metered call it makes, per month, in memory
(``OpenApiClient.metered_month``); :class:`BudgetWatch` adds what was counted since its last
flush to the month's total (``api_call_months``) every ``interval`` and once more at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from bot.config import Settings
from bot.delivery.alerts import queue_alert
from bot.texts.catalog import t
from storage.db import Database, UnitOfWork

log = logging.getLogger(__name__)

THRESHOLDS = (80, 100)          # percent of the monthly budget


def crossed(total: int, budget: int) -> list[int]:
    """The thresholds ``total`` calls have reached, of a budget of ``budget``."""
    return [p for p in THRESHOLDS if total * 100 >= budget * p]


async def record_calls(uow: UnitOfWork, settings: Settings, now: datetime,
                       counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Add each month's new calls to its total and warn, once, at each threshold crossed.
    Returns the (month, threshold) warnings queued."""
    corp = settings.org.corp_id
    budget = settings.dingtalk.monthly_call_budget
    warned: list[tuple[str, int]] = []
    totals = await uow.rolesync.add_calls(corp, {m: n for m, n in counts.items() if n}, now)
    lang = settings.locale.lang
    for month, total in sorted(totals.items()):
        for pct in crossed(total, budget):
            if await uow.rolesync.claim_mark(corp, f"budget:{month}:{pct}", now, str(total)):
                await queue_alert(uow, settings, now, who="Baton",
                                  what=t("budget_warning", lang, month=month, calls=total,
                                         budget=budget, pct=pct),
                                  why=t("budget_why", lang), what_cap=400)
                warned.append((month, pct))
                log.warning("DingTalk calls in %s: %d, %d%% of the budget %d", month, total,
                            pct, budget)
    return warned


class BudgetWatch:
    """Flushes a counter of metered calls per month (``counts()``, cumulative) to the store."""

    def __init__(self, db: Database, settings: Settings, counts: Callable[[], Mapping[str, int]],
                 now: Callable[[], datetime], interval: float = 60.0,
                 on_commit: Callable[[], None] = lambda: None) -> None:
        self.db, self.settings, self._counts, self._now = db, settings, counts, now
        self.interval, self.on_commit = interval, on_commit
        self._flushed: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def flush(self) -> list[tuple[str, int]]:
        async with self._lock:
            seen = dict(self._counts())
            delta = {m: n - self._flushed.get(m, 0) for m, n in seen.items()}
            if not any(delta.values()):
                return []
            async with self.db.uow() as uow:
                warned = await record_calls(uow, self.settings, self._now(), delta)
                if warned:
                    uow.after_commit(self.on_commit)
                await uow.commit()
            self._flushed = seen
            return warned

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="call-budget")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("could not record DingTalk call counts; will retry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            # Bounded: a store that is down must not hold up the stop (the counts are only
            # this replica's latest minute; the warning comes with the next flush anywhere).
            await asyncio.wait_for(self.flush(), 5)
        except Exception:
            log.exception("could not record the last DingTalk call counts")


__all__ = ["THRESHOLDS", "BudgetWatch", "crossed", "record_calls"]
