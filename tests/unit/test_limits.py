"""Rate limits (pure, with an explicit clock) and the merging of alert rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.limits import RateLimiter, SlidingWindow
from bot.outbox import MERGE_CAP, merge_alerts
from storage.models import OutboxMessage


@pytest.mark.parametrize(("times", "limit", "allowed"), [
    ([0, 1, 2], 3, [True, True, True]),
    ([0, 1, 2, 3], 3, [True, True, True, False]),
    ([0, 1, 2, 60], 3, [True, True, True, True]),        # the first hit left the window
    ([0, 1, 2, 59.9], 3, [True, True, True, False]),
    ([0, 0, 0, 0, 61, 61], 2, [True, True, False, False, True, True]),
])
def test_user_window(times: list[float], limit: int, allowed: list[bool]) -> None:
    rl = RateLimiter(limit, 1000)
    assert [rl.check("u", "c", t).allowed for t in times] == allowed


def test_conversation_limit_and_telling_once() -> None:
    rl = RateLimiter(100, 2)
    assert rl.check("a", "c", 0).allowed and rl.check("b", "c", 1).allowed
    v = rl.check("a", "c", 2)
    assert not v.allowed and v.scope == "conversation" and v.tell and v.retry_after == 58
    assert not rl.check("a", "c", 3).tell                 # told once per window
    assert rl.check("b", "c", 3).tell                     # each member is told once
    assert rl.check("a", "other", 3).allowed              # other conversations are served
    assert rl.throttled == 3


@given(st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), max_size=200),
       st.integers(min_value=1, max_value=10))
def test_never_more_than_the_limit_in_any_window(times: list[float], limit: int) -> None:
    w = SlidingWindow(limit)
    allowed: list[float] = []
    for t in sorted(times):
        if w.full("k", t) is None:
            w.record("k", t)
            allowed.append(t)
    for t in allowed:
        assert sum(1 for x in allowed if t - 60 < x <= t) <= limit


def _row(i: int, text: str, merge: bool = True, kind: str = "reply") -> OutboxMessage:
    payload = {"text": text, "lang": "en", "title": "Baton security alert"}
    if merge:
        payload["merge"] = "alert"
    return OutboxMessage(id=i, kind=kind, conversation_key="group:x", payload=payload,
                         next_attempt_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_merge_alerts_into_the_first() -> None:
    rows = [_row(1, "- a"), _row(2, "plain", merge=False), _row(3, "- b"), _row(4, "- c")]
    keep, merged = merge_alerts(rows)
    assert [r.id for r in keep] == [1, 2]
    payload, riders = merged[1]
    assert riders == [3, 4]
    assert payload["text"] == "### Baton security alerts (3)\n- a\n- b\n- c"


def test_merge_caps_the_lines() -> None:
    rows = [_row(i, f"- {i}") for i in range(1, MERGE_CAP + 6)]
    _keep, merged = merge_alerts(rows)
    text = merged[1][0]["text"]
    assert text.count("\n- ") == MERGE_CAP and text.endswith("…and 5 more; see `audit`.")


def test_nothing_to_merge() -> None:
    rows = [_row(1, "x", merge=False)]
    assert merge_alerts(rows) == (rows, {})
