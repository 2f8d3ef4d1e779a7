"""Abuse at the handler level (ported from the end-to-end suite, same assertions): a flood
is throttled politely while others are served, a forged card click is alerted. Merged
alerts, oversized frames and the group's send budget keep their runs in
tests/e2e/test_abuse.py (they are the outbox's and the stream's)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import AuditEntry
from tests.handlers.conftest import CARD, GROUP, Harness, MakeHarness, replies

ALERTS = "cidSECURITYALERTS"


@pytest.fixture
async def app(make_harness: MakeHarness) -> Harness:
    return await make_harness(limits={"user_per_minute": 5, "alert_window": "2s"},
                              org={"alert_conversation": ALERTS})


async def test_a_flood_is_throttled_politely_while_others_are_served(app: Harness) -> None:
    h = app
    sent = [s for _ in range(8) for s in await h.say("zhaoliu", "我的权限")]
    # Every message is handled or throttled: none raised.
    text = h.reply_with(sent, "太频繁", f"group:{GROUP}")
    assert "秒后再试" in text
    await h.ask("qianqi", "whoami", "My permissions")
    group = replies(await h.sent_after(0), f"group:{GROUP}")
    answered = [m for m in group if "我的权限" in m]
    slow = [m for m in group if "太频繁" in m]
    assert len(answered) == 5 and len(slow) == 1        # told once, not once per message
    async with h.db.uow() as uow:
        rows = (await uow.session.execute(
            select(AuditEntry).where(AuditEntry.action == "rate_limited"))).scalars().all()
        assert [(r.actor_id, r.result) for r in rows] == [("zhaoliu", "refused")]


async def test_a_forged_card_click_is_alerted(app: Harness) -> None:
    h = app
    await h.ask("lisi", "grant @钱七 crm.export", "R-1", ("qianqi",))
    card = CARD.format(1)
    await h.card_status(card, "pending")
    notice = await h.press("zhaoliu", card, "approve", {"request_id": "R-1", "as": "zhangsan"})
    assert notice
    msgs = replies(await h.sent_after(0), f"group:{ALERTS}")
    assert msgs, "the click alert"
    assert "R-1" in msgs[0] and "zhaoliu" in msgs[0]
