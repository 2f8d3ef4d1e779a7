"""Durations as written in chat and config, and back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.commands import format_duration, parse_duration

MAX_SECONDS = 3650 * 86400

VALID = [
    # English
    ("30m", timedelta(minutes=30)),
    ("30min", timedelta(minutes=30)),
    ("30 mins", timedelta(minutes=30)),
    ("1 minute", timedelta(minutes=1)),
    ("45 Minutes", timedelta(minutes=45)),
    ("12h", timedelta(hours=12)),
    ("12hr", timedelta(hours=12)),
    ("1 hour", timedelta(hours=1)),
    ("36 HOURS", timedelta(hours=36)),
    ("7d", timedelta(days=7)),
    ("7D", timedelta(days=7)),
    ("1 day", timedelta(days=1)),
    ("7 days", timedelta(days=7)),
    ("2w", timedelta(weeks=2)),
    ("1 week", timedelta(weeks=1)),
    ("3 weeks", timedelta(weeks=3)),
    ("  7d  ", timedelta(days=7)),
    # Chinese
    ("30分钟", timedelta(minutes=30)),
    ("30分", timedelta(minutes=30)),
    ("12小时", timedelta(hours=12)),
    ("3个小时", timedelta(hours=3)),
    ("12时", timedelta(hours=12)),
    ("3天", timedelta(days=3)),
    ("3 天", timedelta(days=3)),
    ("1日", timedelta(days=1)),
    ("2周", timedelta(weeks=2)),
    ("2星期", timedelta(weeks=2)),
    ("2个星期", timedelta(weeks=2)),
    # full-width digits and letters, as a Chinese IME may type them
    ("７天", timedelta(days=7)),
    ("１２ｈ", timedelta(hours=12)),
    # bounds
    ("1m", timedelta(minutes=1)),
    ("3650d", timedelta(days=3650)),
    ("521w", timedelta(weeks=521)),
    ("87600h", timedelta(days=3650)),
    ("5256000m", timedelta(days=3650)),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(text, allow_seconds=True) == expected


SECONDS = [
    ("10s", timedelta(seconds=10)),
    ("10 sec", timedelta(seconds=10)),
    ("90 seconds", timedelta(seconds=90)),
    ("10秒", timedelta(seconds=10)),
    ("315360000s", timedelta(days=3650)),
]


@pytest.mark.parametrize(("text", "expected"), SECONDS)
def test_seconds_only_when_allowed(text: str, expected: timedelta) -> None:
    assert parse_duration(text, allow_seconds=True) == expected
    with pytest.raises(ValueError, match="seconds are not accepted"):
        parse_duration(text)


INVALID = [
    ("", "whole number and a unit"),
    ("   ", "whole number and a unit"),
    ("d", "whole number and a unit"),
    ("7", "whole number and a unit"),
    ("7x", "unknown unit"),
    ("7dd", "unknown unit"),
    ("7 d d", "whole number and a unit"),
    ("-7d", "whole number and a unit"),
    ("+7d", "whole number and a unit"),
    ("7.5h", "whole number and a unit"),
    ("1h30m", "whole number and a unit"),
    ("seven days", "whole number and a unit"),
    ("7年", "unknown unit"),
    ("7 months", "unknown unit"),
    ("for 7d", "whole number and a unit"),
    ("0m", "longer than zero"),
    ("0天", "longer than zero"),
    ("3651d", "at most 3650 days"),
    ("522w", "at most 3650 days"),
    ("87601h", "at most 3650 days"),
    ("999999999999d", "at most 3650 days"),
    ("9999999999999d", "whole number and a unit"),
    ("7" * 5000 + "d", "whole number and a unit"),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_durations(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)
    with pytest.raises(ValueError, match=message):
        parse_duration(text, allow_seconds=True)


def test_error_names_the_accepted_forms() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("soon")
    for form in ("30m", "12h", "7d", "2w", "7天", "12小时"):
        assert form in str(info.value)
    with pytest.raises(ValueError, match="10s"):
        parse_duration("soon", allow_seconds=True)


FORMATS = [
    (timedelta(days=3), "3d", "3天"),
    (timedelta(days=7), "1w", "1周"),  # the largest exact unit
    (timedelta(hours=12), "12h", "12小时"),
    (timedelta(weeks=2), "2w", "2周"),
    (timedelta(minutes=30), "30m", "30分钟"),
    (timedelta(hours=36), "36h", "36小时"),
    (timedelta(minutes=90), "90m", "90分钟"),
    (timedelta(days=10), "10d", "10天"),
    (timedelta(seconds=10), "10s", "10秒"),
    (timedelta(seconds=61), "61s", "61秒"),
    (timedelta(days=3650), "3650d", "3650天"),
    (timedelta(0), "0m", "0分钟"),
    (timedelta(days=-3), "-3d", "-3天"),
    (timedelta(minutes=5, microseconds=400_000), "5m", "5分钟"),
    (timedelta(seconds=9, microseconds=600_000), "10s", "10秒"),
]


@pytest.mark.parametrize(("td", "en", "zh"), FORMATS)
def test_format_duration(td: timedelta, en: str, zh: str) -> None:
    assert format_duration(td, "en") == en
    assert format_duration(td, "zh") == zh


@given(st.integers(1, MAX_SECONDS), st.sampled_from(["en", "zh"]))
def test_format_then_parse_round_trips(seconds: int, lang: str) -> None:
    td = timedelta(seconds=seconds)
    text = format_duration(td, "zh" if lang == "zh" else "en")
    assert parse_duration(text, allow_seconds=True) == td


@given(st.integers(1, MAX_SECONDS // 60), st.sampled_from(["en", "zh"]))
def test_whole_minutes_round_trip_without_seconds(minutes: int, lang: str) -> None:
    td = timedelta(minutes=minutes)
    assert parse_duration(format_duration(td, "zh" if lang == "zh" else "en")) == td


@given(st.text(max_size=30), st.booleans())
def test_parse_duration_raises_only_value_error(text: str, allow_seconds: bool) -> None:
    try:
        td = parse_duration(text, allow_seconds=allow_seconds)
    except ValueError:
        return
    assert timedelta(0) < td <= timedelta(days=3650)
