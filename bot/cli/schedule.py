"""``baton schedule``: what is due next, how much is overdue, and what failed (from due_work)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.config import Settings
from bot.core.clock import Clock, SystemClock, local
from storage.db import open_database

REMINDERS = ("request_remind", "review_remind")    # about one request, moot once it closes


def about(payload: dict[str, Any]) -> str:
    """What a due row is about, e.g. ``R-12 (reminder #2)`` or ``grant 5``."""
    parts: list[str] = []
    if "request_id" in payload:
        parts.append(f"R-{payload['request_id']}")
    for key in ("grant_id", "review_id", "campaign_id", "user_id"):
        if key in payload:
            parts.append(f"{key.removesuffix('_id')} {payload[key]}")
    if "n" in payload:
        parts.append(f"(#{payload['n']})")
    return " ".join(parts) or "-"


def _when(at: datetime, tz: str) -> str:
    return local(at, tz, "%Y-%m-%d %H:%M:%S")


async def show_schedule(settings: Settings, limit: int = 20, clock: Clock | None = None) -> int:
    now = (clock or SystemClock()).now()
    tz = settings.policy.timezone
    db = open_database(settings.database.url)
    try:
        async with db.uow() as uow:
            # A reminder row left pending by a request closed before the fix of #15.31 (or
            # closed by hand) is never sent: its handler skips a closed request. Not listed.
            sched = await uow.due.overview(now, limit, moot_kinds=REMINDERS)
    finally:
        await db.dispose()
    print(f"now {_when(now, tz)} ({tz}); {sched.total} pending, {sched.overdue} overdue, "
          f"{sched.n_failed} failing or failed")
    if sched.upcoming:
        print(f"next due (up to {limit}):")
        for r in sched.upcoming:
            late = "  OVERDUE" if r.due_at <= now else ""
            print(f"  {_when(r.due_at, tz)}  {r.kind:<26} {about(r.payload)}{late}")
    else:
        print("nothing scheduled")
    if sched.failed:
        print("failures:")
        for r in sched.failed:
            err = str(r.payload.get("last_error", ""))[:120]
            print(f"  #{r.id} {r.kind} {about(r.payload)}: {r.status}, {r.attempts} attempt(s), "
                  f"due {_when(r.due_at, tz)}" + (f" — {err}" if err else ""))
    return 0
