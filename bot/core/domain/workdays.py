"""Working time, pure: a deadline ``duration`` after ``start`` counting only working days.

The clock runs through a working day and stops across a day off: 8h asked at 18:00 on a
Friday end at 02:00 on Monday when Saturday and Sunday are off. Which days are working days
is a port (``is_workday(date) -> bool``): weekends only (here), or a maintained calendar
with holidays and make-up workdays (调休; ``bot.transport.workdays``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_DAYS = 3660      # a bound on the walk: a calendar with no working day ends here

IsWorkday = Callable[[date], bool]


def weekdays(day: date) -> bool:
    """Monday to Friday: the calendar without holiday data."""
    return day.weekday() < 5


def working_after(start: datetime, duration: timedelta, is_workday: IsWorkday,
                  tz: str) -> datetime:
    """``start`` plus ``duration`` of working-day time, in ``tz``'s days (aware, as given)."""
    zone = ZoneInfo(tz)
    at = start.astimezone(zone)
    left = duration
    for _ in range(MAX_DAYS):
        midnight = datetime.combine(at.date() + timedelta(days=1), time(0), zone)
        if is_workday(at.date()):
            if at + left <= midnight:
                return (at + left).astimezone(start.tzinfo)
            left -= midnight - at
        at = midnight
    return (at + left).astimezone(start.tzinfo)
