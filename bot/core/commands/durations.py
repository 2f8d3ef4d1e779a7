"""Durations as people write them in chat and in the config: ``7d``, ``12小时``, ``2w``.

A duration is a whole number and one unit. Seconds are for configuration values only
(``allow_seconds=True``), so that a demo can run a whole cycle in a minute.
"""

from __future__ import annotations

import re
from datetime import timedelta

from ..lang import Lang

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
MAX_DURATION = timedelta(days=3650)

_UNITS: dict[str, int] = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes", "分钟", "分"), MINUTE),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours", "小时", "个小时", "时"), HOUR),
    **dict.fromkeys(("d", "day", "days", "天", "日"), DAY),
    **dict.fromkeys(("w", "wk", "week", "weeks", "周", "个周", "星期", "个星期"), WEEK),
}
_SECOND_UNITS = frozenset(("s", "sec", "secs", "second", "seconds", "秒"))

# Bounded: at most 12 digits, then at most 8 unit characters; no nested repetition.
_DURATION = re.compile(r"([0-9]{1,12}) ?([^0-9 ]{1,8})")
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}  # ！..～ -> !..~

_FORMS = "30m, 12h, 7d, 2w (or 30分钟, 12小时, 7天, 2周)"

_SHORT: dict[Lang, tuple[tuple[int, str], ...]] = {
    "en": ((WEEK, "w"), (DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (1, "s")),
    "zh": ((WEEK, "周"), (DAY, "天"), (HOUR, "小时"), (MINUTE, "分钟"), (1, "秒")),
}


def parse_duration(text: str, *, allow_seconds: bool = False) -> timedelta:
    """``"7d"`` -> ``timedelta(days=7)``; raises ``ValueError`` saying what is accepted."""
    forms = f"{_FORMS}{', or seconds: 10s' if allow_seconds else ''}"
    clean = " ".join(text.translate(_FULLWIDTH).split()).lower()
    match = _DURATION.fullmatch(clean)
    if match is None:
        raise ValueError(
            f"invalid duration {text[:40]!r}: write a whole number and a unit, e.g. {forms}"
        )
    number, unit = int(match[1]), match[2]
    if unit in _SECOND_UNITS:
        if not allow_seconds:
            raise ValueError(
                f"invalid duration {text[:40]!r}: seconds are not accepted here; "
                f"use minutes or longer, e.g. {_FORMS}"
            )
        seconds = number
    elif unit in _UNITS:
        seconds = number * _UNITS[unit]
    else:
        raise ValueError(f"invalid duration {text[:40]!r}: unknown unit {unit!r}; use {forms}")
    if seconds <= 0:
        raise ValueError(f"invalid duration {text[:40]!r}: it must be longer than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration {text[:40]!r}: it must be at most 3650 days")
    return timedelta(seconds=seconds)


def format_duration(td: timedelta, lang: Lang) -> str:
    """The duration in its largest exact unit: ``7d`` / ``7天``, ``36h`` / ``36小时``.

    Fractions of a second are rounded to the nearest second; zero is ``0m`` / ``0分钟``.
    """
    if td < timedelta(0):
        return "-" + format_duration(-td, lang)
    seconds = td.days * DAY + td.seconds + (1 if td.microseconds >= 500_000 else 0)
    units = _SHORT[lang]
    if seconds == 0:
        return f"0{units[3][1]}"
    for size, suffix in units:
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    raise AssertionError("unreachable: every whole number of seconds is a multiple of 1")
