"""When reminders fall: backoff (doubling up to a maximum) and quiet hours. Pure functions.

Quiet hours are a local time range ``"HH:MM-HH:MM"`` in a time zone; the start is inside,
the end is not. A range whose start is after its end crosses midnight (``"22:00-08:00"``);
an empty range (start == end) means no quiet hours. A reminder that falls inside is moved
to the end of that quiet period.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def parse_quiet(quiet: str) -> tuple[time, time]:
    start, end = quiet.split("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


def _quiet_end(local: datetime, start: time, end: time) -> datetime | None:
    """The local end of the quiet period ``local`` is in, or None when it is not in one."""
    t = local.replace(tzinfo=None).time()
    if start == end:
        return None
    if start < end:
        inside, next_day = start <= t < end, False
    else:
        inside, next_day = t >= start or t < end, t >= start
    if not inside:
        return None
    day = local.date() + timedelta(days=1 if next_day else 0)
    return datetime.combine(day, end, tzinfo=local.tzinfo)


def in_quiet(at: datetime, quiet: str | None, tz: str) -> bool:
    if not quiet:
        return False
    start, end = parse_quiet(quiet)
    return _quiet_end(at.astimezone(ZoneInfo(tz)), start, end) is not None


def next_allowed(at: datetime, quiet: str | None, tz: str) -> datetime:
    """``at``, or the end of the quiet period ``at`` falls in (never earlier than ``at``)."""
    if at.tzinfo is None:
        raise ValueError("next_allowed needs an aware datetime")
    if not quiet:
        return at
    start, end = parse_quiet(quiet)
    zone = ZoneInfo(tz)
    out = at
    for _ in range(48):  # once, except when a DST jump puts the wall-clock end back inside
        qend = _quiet_end(out.astimezone(zone), start, end)
        if qend is None:
            return out
        nxt = qend.astimezone(at.tzinfo)
        out = nxt if nxt > out else out + timedelta(minutes=30)
    return out


def reminder_gap(n: int, every: timedelta, most: timedelta) -> timedelta:
    """The wait after the ``n``-th reminder (the first waits ``every``), doubling to ``most``."""
    doubled: timedelta = every * (2 ** max(0, n))
    return min(most, doubled)


def next_reminder_at(now: datetime, n: int, every: timedelta, most: timedelta,
                     quiet: str | None, tz: str) -> datetime:
    """When reminder ``n + 1`` falls, given reminder ``n`` went out at ``now`` (n=0: opened)."""
    return next_allowed(now + reminder_gap(n, every, most), quiet, tz)


def reminder_schedule(opened: datetime, expires: datetime, every: timedelta, most: timedelta,
                      quiet: str | None, tz: str) -> list[datetime]:
    """Every reminder of a request nobody answers, as the due handlers will send them."""
    out: list[datetime] = []
    at = next_allowed(opened + min(every, (expires - opened) / 2), quiet, tz)
    while at < expires:
        out.append(at)
        at = next_reminder_at(at, len(out), every, most, quiet, tz)
    return out
