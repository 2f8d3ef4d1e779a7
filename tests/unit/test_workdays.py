"""Working time (bot/core/domain/workdays.py) as a table, with weekends only and with the
Chinese calendar (holidays and make-up workdays, 调休, from the chinesecalendar package)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.domain.workdays import IsWorkday, weekdays, working_after
from bot.transport.workdays import china_workday, later

SH = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)


def sh(*a: int) -> datetime:
    return datetime(*a, tzinfo=SH)


CASES: list[tuple[str, IsWorkday, datetime, timedelta, datetime]] = [
    ("within a day", weekdays, sh(2026, 11, 23, 10), 4 * H, sh(2026, 11, 23, 14)),
    ("over a weekend", weekdays, sh(2026, 11, 27, 18), 8 * H, sh(2026, 11, 30, 2)),
    ("from a Saturday", weekdays, sh(2026, 11, 28, 12), 1 * H, sh(2026, 11, 30, 1)),
    ("Mid-Autumn Friday is off", china_workday, sh(2026, 9, 24, 18), 8 * H, sh(2026, 9, 28, 2)),
    ("National Day", china_workday, sh(2026, 9, 30, 18), 8 * H, sh(2026, 10, 8, 2)),
    ("a make-up Saturday works", china_workday, sh(2026, 10, 9, 18), 8 * H,
     sh(2026, 10, 10, 2)),
    ("the same, weekends only", weekdays, sh(2026, 10, 9, 18), 8 * H, sh(2026, 10, 12, 2)),
    ("a make-up Sunday works", china_workday, sh(2026, 1, 3, 12), 1 * H, sh(2026, 1, 4, 1)),
    ("no data for the year: weekends", china_workday, sh(2040, 1, 6, 18), 8 * H,
     sh(2040, 1, 9, 2)),
]


@pytest.mark.parametrize(("why", "cal", "start", "gap", "end"), CASES, ids=[c[0] for c in CASES])
def test_working_after(why: str, cal: IsWorkday, start: datetime, gap: timedelta,
                       end: datetime) -> None:
    assert working_after(start, gap, cal, "Asia/Shanghai") == end


def test_no_calendar_is_plain_time() -> None:
    start = datetime(2026, 9, 30, 10, tzinfo=UTC)
    assert later(start, 8 * H, None, "Asia/Shanghai") == start + 8 * H
    assert later(start, 8 * H, "cn", "Asia/Shanghai") == sh(2026, 10, 8, 2)


@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 1)),
       st.integers(min_value=0, max_value=30 * 24 * 60))
def test_never_sooner_than_plain_time(naive: datetime, minutes: int) -> None:
    start = naive.replace(tzinfo=UTC)
    gap = timedelta(minutes=minutes)
    assert working_after(start, gap, china_workday, "Asia/Shanghai") >= start + gap
    assert working_after(start, gap, weekdays, "Asia/Shanghai") >= start + gap
