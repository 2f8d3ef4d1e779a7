"""Chinese working days from a maintained package (``chinesecalendar``): public holidays
and make-up workdays (调休) as the State Council publishes them. Years the package has no
data for fall back to Monday to Friday (and are logged once)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import chinese_calendar

from bot.core.domain.workdays import IsWorkday, weekdays, working_after

log = logging.getLogger(__name__)
_warned: set[int] = set()


def china_workday(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        if day.year not in _warned:
            _warned.add(day.year)
            log.warning("chinesecalendar has no data for %s: counting Monday to Friday",
                        day.year)
        return weekdays(day)


def calendar_of(name: str | None) -> IsWorkday | None:
    """The working-day test for ``policy.calendar`` (None: count plain time)."""
    return china_workday if name == "cn" else None


def later(start: datetime, gap: timedelta, calendar: str | None, tz: str) -> datetime:
    """``start + gap``, counting working days only when ``policy.calendar`` names one."""
    is_workday = calendar_of(calendar)
    return start + gap if is_workday is None else working_after(start, gap, is_workday, tz)
