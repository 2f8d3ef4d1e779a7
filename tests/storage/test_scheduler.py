"""The alarm clock (bot/scheduling/alarm.py) and the claim lease over a real store: a wake-up that
comes while due work runs is never dropped by APScheduler; it makes the run in progress do
exactly one more pass. A claim lasts ``scheduler.lease``, then another replica may take it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobEvent
from sqlalchemy import select

from bot.config import Settings
from bot.core.clock import FakeClock, SystemClock
from bot.core.faults import Faults
from bot.dispatch.context import Context
from bot.logs import setup_logging
from bot.scheduling.alarm import Alarm
from bot.scheduling.due import DueRunner
from storage.db import Database, open_database
from storage.models import DueWork

CORP = "dingscheduler"


class CountingRunner(DueRunner):
    """The real runner, counting its passes."""
    passes = 0

    async def run_once(self) -> int:
        self.passes += 1
        return await super().run_once()


async def test_a_wake_up_during_a_run_is_one_more_pass_never_a_skipped_job(
        db: Database, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="apscheduler")
    settings = Settings.model_validate({"database": {"url": db_url}, "org": {"corp_id": CORP}})
    clock = SystemClock()
    slow_started, slow_release, quick_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow(payload: dict[str, Any], ctx: Context) -> None:
        slow_started.set()
        await asyncio.wait_for(slow_release.wait(), 10)
        async with ctx.transaction():
            pass

    async def quick(payload: dict[str, Any], ctx: Context) -> None:
        async with ctx.transaction():
            quick_done.set()

    runner = CountingRunner(db, settings, clock, None, Faults(), {"slow": slow, "quick": quick})
    alarm = Alarm(runner, poll_seconds=3600)     # only the firings this test makes
    async with db.uow() as uow:
        await uow.due.schedule("slow", clock.now(), {}, clock.now(), dedupe_key="slow")
        await uow.commit()
    loop = asyncio.get_running_loop()
    fired: asyncio.Queue[int] = asyncio.Queue()

    def seen(e: JobEvent) -> None:
        if e.job_id == "due-poll":
            loop.call_soon_threadsafe(fired.put_nowait, e.code)
    alarm._sched.add_listener(seen, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES)
    alarm.start()
    try:
        assert await asyncio.wait_for(fired.get(), 10) == EVENT_JOB_SUBMITTED
        await asyncio.wait_for(slow_started.wait(), 10)       # the first pass is busy
        async with db.uow() as uow:                          # new work, no wake from here
            await uow.due.schedule("quick", clock.now(), {}, clock.now(), dedupe_key="quick")
            await uow.commit()
        for _ in range(3):      # the poll fires three times while the pass runs
            alarm._sched.get_job("due-poll").modify(next_run_time=datetime.now(UTC))
            assert await asyncio.wait_for(fired.get(), 10) == EVENT_JOB_SUBMITTED
        await asyncio.sleep(0)
        assert runner.passes == 1
        slow_release.set()
        await asyncio.wait_for(quick_done.wait(), 10)        # the extra pass ran the new row
        async with alarm._lock:                              # the tick has finished
            pass
        assert runner.passes == 2                            # three wake-ups: one more pass
        assert runner.done == 2 and runner.failures == 0
    finally:
        await alarm.stop()
    assert not [r for r in caplog.records if r.name.startswith("apscheduler")
                and r.levelno >= logging.WARNING]


def test_the_scheduler_warnings_are_not_hidden() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        for name in ("apscheduler", "apscheduler.scheduler", "apscheduler.executors.default"):
            log = logging.getLogger(name)
            assert log.isEnabledFor(logging.WARNING)
            assert not log.isEnabledFor(logging.INFO)      # its per-run lines stay quiet
    finally:
        root.handlers[:], root.level = handlers, level


async def test_a_job_that_outlives_the_configured_lease_is_taken_by_the_waiting_replica(
        db: Database, db_url: str) -> None:
    """#15.5: ``scheduler.lease`` is the claim's length: while replica A's job runs, replica B
    finds nothing until the lease has passed, then takes the row over."""
    settings = Settings.model_validate({"database": {"url": db_url}, "org": {"corp_id": CORP},
                                        "scheduler": {"poll_interval": "1s", "lease": "5s"}})
    clock = FakeClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    started, release = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    def job(name: str) -> Any:
        async def run(payload: dict[str, Any], ctx: Context) -> None:
            ran.append(name)
            if name == "A":
                started.set()
                await asyncio.wait_for(release.wait(), 10)
            async with ctx.transaction():
                pass
        return run

    other = open_database(db_url)           # replica B: its own engine on the same store
    try:
        a = DueRunner(db, settings, clock, None, Faults(), {"slow": job("A")})
        b = DueRunner(other, settings, clock, None, Faults(), {"slow": job("B")})
        async with db.uow() as uow:
            await uow.due.schedule("slow", clock.now(), {}, clock.now(), dedupe_key="slow")
            await uow.commit()
        busy = asyncio.create_task(a.run_once())
        await asyncio.wait_for(started.wait(), 10)
        clock.advance(timedelta(seconds=4))          # within the lease: B waits
        assert await b.run_once() == 0
        clock.advance(timedelta(seconds=2))          # A's job outlived the 5 s lease
        assert await b.run_once() == 1
        assert ran == ["A", "B"]
        release.set()
        assert await asyncio.wait_for(busy, 10) == 1
        async with db.uow() as uow:
            row = (await uow.session.execute(select(DueWork))).scalar_one()
            assert row.status == "done"
    finally:
        await other.dispose()
