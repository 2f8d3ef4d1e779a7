"""APScheduler 3.11 as the alarm clock; the due_work table stays the source of truth.

One interval job looks for due work every ``scheduler.poll_interval``; after each run a
one-off date job is set for the next due time, so work falls on time without a tight poll.
Jobs are in memory only (never a shared job store): losing them loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.scheduling.due import DueRunner

log = logging.getLogger(__name__)


class Alarm:
    def __init__(self, runner: DueRunner, poll_seconds: float) -> None:
        self.runner = runner
        self._sched = AsyncIOScheduler(timezone="UTC")
        self._poll = poll_seconds
        self._lock = asyncio.Lock()
        self._again = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, *, first_run: bool = True) -> None:
        """Poll every ``poll_interval``; the first poll at once unless the caller runs the
        first pass itself (``await tick()``, as the app does at start)."""
        first = {"next_run_time": datetime.now(self._sched.timezone)} if first_run else {}
        self._sched.add_job(self._ring, "interval", seconds=self._poll, id="due-poll",
                            coalesce=True, max_instances=1, misfire_grace_time=None, **first)
        self._sched.start()

    async def stop(self) -> None:
        self._closed = True  # a job APScheduler already dispatched must not touch the store
        if self._sched.running:
            self._sched.shutdown(wait=False)
        async with self._lock:  # let a run in progress finish its transaction
            pass
        for t in list(self._tasks):
            t.cancel()

    async def _ring(self) -> None:
        """The APScheduler job: start a tick and return at once. A job that ran as long as
        the tick would make APScheduler skip the next firing ("maximum number of running
        instances reached") instead of letting the tick look once more."""
        self.wake()

    async def tick(self) -> None:
        """Run what is due, then set the alarm for the next due time. A tick that comes while
        another runs is not lost: it makes the running one do exactly one more pass."""
        if self._closed:
            return
        self._again = True
        if self._lock.locked():
            return  # the run in progress looks once more before it ends
        nxt: datetime | None = None
        async with self._lock:
            try:
                while self._again and not self._closed:
                    self._again = False
                    await self.runner.run_once()
                    nxt = await self.runner.next_due_at()
            except Exception:
                log.exception("due-work run failed")
                return
        if nxt is not None and self._sched.running:
            self._sched.add_job(self._ring, "date", run_date=nxt, id="due-next",
                                replace_existing=True, misfire_grace_time=None)

    def wake(self) -> None:
        """Look now (e.g. after a commit that scheduled something)."""
        if self._sched.running:
            t = asyncio.get_running_loop().create_task(self.tick())
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
