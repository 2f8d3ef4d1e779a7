"""Reminder timing: quiet hours (next_allowed) and the backoff schedule, as tables and a property."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.domain.reminders import (
    in_quiet,
    next_allowed,
    next_reminder_at,
    reminder_gap,
    reminder_schedule,
)

SH = "Asia/Shanghai"


def u(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(("at", "quiet", "tz", "expected"), [
    # Asia/Shanghai is UTC+8: 02:00 UTC is 10:00 local, outside 22:00-08:00.
    (u(11, 23, 2), "22:00-08:00", SH, u(11, 23, 2)),
    (u(11, 23, 13, 59), "22:00-08:00", SH, u(11, 23, 13, 59)),   # 21:59 local
    (u(11, 23, 14), "22:00-08:00", SH, u(11, 24, 0)),            # 22:00 local: start is inside
    (u(11, 23, 15, 30), "22:00-08:00", SH, u(11, 24, 0)),        # 23:30, before midnight
    (u(11, 23, 16), "22:00-08:00", SH, u(11, 24, 0)),            # 00:00, after midnight
    (u(11, 23, 23, 59), "22:00-08:00", SH, u(11, 24, 0)),        # 07:59
    (u(11, 24, 0), "22:00-08:00", SH, u(11, 24, 0)),             # 08:00: the end is outside
    (u(11, 23, 4, 30), "12:00-13:30", SH, u(11, 23, 5, 30)),     # a range within one day
    (u(11, 23, 5, 30), "12:00-13:30", SH, u(11, 23, 5, 30)),
    (u(11, 23, 14), None, SH, u(11, 23, 14)),                     # quiet hours disabled
    (u(11, 23, 14), "08:00-08:00", SH, u(11, 23, 14)),           # an empty range
    (u(11, 23, 23), "22:00-08:00", "UTC", u(11, 24, 8)),
    (u(11, 23, 17), "22:00-08:00", "Asia/Kolkata", u(11, 24, 2, 30)),  # UTC+5:30
    (u(12, 31, 15), "22:00-08:00", SH, datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),  # new year
    # Europe/Berlin springs forward at 02:00 on 2026-03-29: the 02:30 end does not exist
    # that night; the reminder goes at the first instant after the gap (03:30 CEST).
    (u(3, 29, 0, 30), "01:00-02:30", "Europe/Berlin", u(3, 29, 1, 30)),
])
def test_next_allowed(at: datetime, quiet: str | None, tz: str, expected: datetime) -> None:
    assert next_allowed(at, quiet, tz) == expected
    assert not in_quiet(expected, quiet, tz)


def test_next_allowed_keeps_the_time_zone_of_its_argument() -> None:
    at = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    out = next_allowed(at, "22:00-08:00", "UTC")
    assert out.tzinfo is UTC


def test_next_allowed_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_allowed(datetime(2026, 1, 1), "22:00-08:00", SH)


H = timedelta(hours=1)


@pytest.mark.parametrize(("n", "expected"), [
    (0, 4 * H), (1, 8 * H), (2, 16 * H), (3, 24 * H), (4, 24 * H), (10, 24 * H)])
def test_reminder_gap_doubles_up_to_the_maximum(n: int, expected: timedelta) -> None:
    assert reminder_gap(n, 4 * H, 24 * H) == expected


@pytest.mark.parametrize(("ttl", "quiet", "expected"), [
    # No quiet hours: 4h, then +8h, +16h, +24h (capped), ... while the request is open.
    (72 * H, None, [4 * H, 12 * H, 28 * H, 52 * H]),
    (24 * H, None, [4 * H, 12 * H]),
    (2 * H, None, [1 * H]),                 # a short request: the first at half its life
    # Opened 10:00 Shanghai: 14:00; 22:00 -> 08:00 next day (+22h); 16h later is 00:00
    # -> 08:00 (+48h); then +24h (+72h, still open at 74h).
    (74 * H, "22:00-08:00", [4 * H, 22 * H, 46 * H, 70 * H]),
])
def test_reminder_schedule(ttl: timedelta, quiet: str | None, expected: list[timedelta]) -> None:
    opened = u(11, 23, 2)
    got = reminder_schedule(opened, opened + ttl, 4 * H, 24 * H, quiet, SH)
    assert [g - opened for g in got] == expected


def test_next_reminder_at_skips_quiet_hours() -> None:
    # Reminder 1 at 20:00 Shanghai: the next (8h later, 04:00) waits until 08:00.
    assert next_reminder_at(u(11, 23, 12), 1, 4 * H, 24 * H, "22:00-08:00", SH) == u(11, 24, 0)
    assert next_reminder_at(u(11, 23, 12), 1, 4 * H, 24 * H, None, SH) == u(11, 23, 20)


clock_times = st.times().map(lambda x: time(x.hour, x.minute))
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC))


@settings(max_examples=400, deadline=None)
@given(at=instants, start=clock_times, end=clock_times,
       tz=st.sampled_from(["Asia/Shanghai", "UTC", "Asia/Kolkata", "Asia/Kathmandu",
                           "Etc/GMT+5", "Asia/Tokyo"]))
def test_next_allowed_never_quiet_never_earlier(at: datetime, start: time, end: time,
                                                tz: str) -> None:
    quiet = f"{start:%H:%M}-{end:%H:%M}"
    out = next_allowed(at, quiet, tz)
    assert out >= at
    assert not in_quiet(out, quiet, tz)
    assert out - at <= timedelta(hours=24)
    if not in_quiet(at, quiet, tz):
        assert out == at
