"""Rate limits (pure, with an explicit clock) and the merging of alert rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.delivery.outbox import MERGE_CAP, merge_alerts
from bot.dispatch.limits import RateLimiter, SlidingWindow, member_share
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


@pytest.mark.parametrize(("budget", "share", "commands"), [
    (20, 0.5, 9),      # the defaults: 9 answers and the notice are half the group's minute
    (20, 1.0, 19),
    (20, 0.25, 4),
    (3, 0.5, 1),       # always at least one
    (1, 0.1, 1),
])
def test_member_share_of_a_group_budget(budget: int, share: float, commands: int) -> None:
    assert member_share(budget, share) == commands


def test_a_member_in_a_group_is_held_to_their_share() -> None:
    rl = RateLimiter(20, 60, member_share(20, 0.5))
    assert all(rl.check("flood", "g", i / 10, group=True).allowed for i in range(9))
    v = rl.check("flood", "g", 1.0, group=True)
    assert not v.allowed and v.scope == "member" and v.tell and v.retry_after == 59
    refused = [rl.check("flood", "g", 1 + i / 100, group=True) for i in range(90)]
    assert not any(r.allowed or r.tell for r in refused)   # one notice, never one each
    assert rl.check("other", "g", 2.0, group=True).allowed  # the others are served
    assert rl.check("flood", "g2", 2.0, group=True).allowed  # another group: its own share
    # One-to-one, only the member's own limit applies (nobody else shares the budget).
    assert sum(rl.check("dm", "oto", 3.0).allowed for _ in range(25)) == 20
    assert rl.check("flood", "g", 60.0, group=True).allowed  # the window moved on


def test_one_notice_per_conversation_whichever_limit() -> None:
    rl = RateLimiter(3, 1000, 2)
    assert rl.check("u", "g1", 0, group=True).allowed and rl.check("u", "g1", 1, group=True).allowed
    v = rl.check("u", "g1", 2, group=True)
    assert (v.allowed, v.scope, v.tell) == (False, "member", True)
    assert rl.check("u", "g2", 3, group=True).allowed       # the third of the member's 3
    v = rl.check("u", "g1", 4, group=True)
    assert (v.allowed, v.scope, v.tell) == (False, "user", False)   # g1 was told already
    v = rl.check("u", "g2", 5, group=True)
    assert (v.allowed, v.scope, v.tell) == (False, "user", True)    # g2 hears it once


@given(st.lists(st.floats(min_value=0, max_value=300, allow_nan=False), max_size=300),
       st.integers(min_value=1, max_value=40), st.floats(min_value=0.05, max_value=1))
def test_a_member_never_takes_more_than_their_share_of_a_group(
        times: list[float], budget: int, share: float) -> None:
    """Answers plus notices of one member in one group, in any window: within the share
    (the notice paid for out of it), so the rest of the group's budget is the others'."""
    rl = RateLimiter(1000, 1000, member_share(budget, share))
    messages: list[float] = []
    for t in sorted(times):
        v = rl.check("flood", "g", t, group=True)
        if v.allowed or v.tell:
            messages.append(t)
    cap = max(2, int(budget * share + 1e-9))
    for t in messages:
        assert sum(1 for x in messages if t - 60 < x <= t) <= cap


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
