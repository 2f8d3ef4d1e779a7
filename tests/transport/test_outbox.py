"""OutboxSender on both backends, against the simulator, on a FakeClock: the per-conversation
budget defers (never drops), failures back off then end FAILED, a restart resumes, and a dead
session webhook falls back to the robot send API."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.cli.sandbox import DEMO_GROUP, demo_simulator
from bot.config import OutboxSettings
from bot.core.clock import FakeClock
from bot.core.sends import Reply
from bot.delivery.outbox import OutboxSender
from bot.transport.openapi import OpenApiClient
from dingtalk_sim import SimGroup, Simulator
from dingtalk_sim.state import SESSION_TTL
from storage.db import Database, open_database
from tests.transport.outbox_support import (
    CLIENT_RETRIES,
    GROUP_SEND,
    OTO_SEND,
    SECOND_GROUP,
    WEBHOOK,
    add_reply,
    make_client,
    row,
    rows,
    sender,
    session_of,
)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    s = demo_simulator()
    s.start()
    s.add_group(SimGroup(SECOND_GROUP, "第二个群"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        yield session


@pytest.fixture
def client(sim: Simulator, http: aiohttp.ClientSession) -> OpenApiClient:
    return make_client(sim, http)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


def texts(sim: Simulator, conversation: str | None = None) -> list[str]:
    return [m.text for m in sim.messages(conversation)]


# --- the per-conversation budget ---------------------------------------------------------


async def test_budget_defers_the_excess_to_when_the_window_frees(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    session = session_of(sim)
    want = [f"m{i:02d}" for i in range(25)]
    for t in want:
        await add_reply(db, clock, t, session=session)
    out = sender(db, client, clock, per_conversation_per_minute=20)
    t0 = clock.now()

    await out.drain_once()
    assert texts(sim, DEMO_GROUP) == want[:20]
    state = await rows(db)
    assert [r.status for r in state] == ["sent"] * 20 + ["pending"] * 5
    for r in state[20:]:  # queued, not dropped, not failed, no attempt spent
        assert r.attempts == 0 and r.last_error is None
        assert r.next_attempt_at == t0 + timedelta(seconds=60)
    assert out.sent == 20 and out.deferred == 5 and out.failed == 0

    await out.drain_once()  # nothing is due yet
    clock.advance(59)
    await out.drain_once()
    assert len(sim.messages(DEMO_GROUP)) == 20

    clock.advance(1)
    await out.drain_once()
    assert texts(sim, DEMO_GROUP) == want  # the rest, in order, none twice
    assert all(r.status == "sent" for r in await rows(db))
    clock.advance(600)
    await out.drain_once()
    assert texts(sim, DEMO_GROUP) == want


async def test_a_reply_to_someone_else_is_not_queued_behind_a_backlog(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    """One person's 45 replies: 20 go, 25 wait for the next two windows. A reply to another
    member of the group, written a second later, takes the first slot that frees up, not a
    slot after the whole backlog."""
    session = session_of(sim)
    flood = [f"f{i:02d}" for i in range(45)]
    for t in flood:
        await add_reply(db, clock, t, session=session)
    out = sender(db, client, clock, per_conversation_per_minute=20)
    await out.drain_once()
    assert texts(sim, DEMO_GROUP) == flood[:20]
    clock.advance(1)
    await add_reply(db, clock, "other", user="qianqi", session=session_of(sim, "qianqi"))
    await out.drain_once()
    clock.advance(59)
    await out.drain_once()
    sent = texts(sim, DEMO_GROUP)
    assert len(sent) == 40 and "other" in sent[20:]
    assert [t for t in sent if t != "other"] == flood[:39]   # the backlog still in order
    clock.advance(60)
    await out.drain_once()
    assert texts(sim, DEMO_GROUP)[40:] == flood[39:]


async def test_conversations_do_not_share_a_budget(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    session = session_of(sim)
    for i in range(21):
        await add_reply(db, clock, f"a{i}", session=session)
        if i < 20:  # Context.send: no session webhook, the robot API
            await add_reply(db, clock, f"b{i}", conversation=SECOND_GROUP)
    await add_reply(db, clock, "dm", conversation="cidOTOqianqi", is_group=False, user="qianqi")
    out = sender(db, client, clock, per_conversation_per_minute=20)

    await out.drain_once()
    assert texts(sim, DEMO_GROUP) == [f"a{i}" for i in range(20)]
    assert texts(sim, SECOND_GROUP) == [f"b{i}" for i in range(20)]
    assert texts(sim, "cidOTOqianqi") == ["dm"]
    assert out.deferred == 1
    clock.advance(60)
    await out.drain_once()
    assert texts(sim, DEMO_GROUP)[-1] == "a20"
    assert len(sim.messages()) == 42


async def test_card_updates_and_merged_alerts_take_no_budget_slot(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    """DingTalk's per-group limit counts messages the group sees: a card update edits a
    message in place, and alerts merged into one alert are one message. With a budget of 3,
    a card, four updates of it and three merged alerts leave room for exactly one reply."""
    from bot.transport.cards import create_and_deliver_body

    conv = f"group:{DEMO_GROUP}"
    body = create_and_deliver_body(template_id="tpl", robot_code=sim.client_id,
                                   out_track_id="baton-x-R1", params={"status": "pending"},
                                   group_id=DEMO_GROUP, user_id=None, at={})
    async with db.uow() as uow:
        await uow.outbox.add("card", conv, {"op": "create", "out_track_id": "baton-x-R1",
                                            "body": body}, clock.now())
        for i in range(4):
            await uow.outbox.add("card", conv, {"op": "update", "out_track_id": "baton-x-R1",
                                                "body": {"params": {"status": f"s{i}"}}},
                                 clock.now())
        for i in range(3):
            r = Reply(text=f"alert {i}", conversation_id=DEMO_GROUP, is_group=True)
            await uow.outbox.add("reply", conv, {**r.payload(), "merge": "alert"}, clock.now())
        await uow.commit()
    out = sender(db, client, clock, per_conversation_per_minute=3)
    await out.drain_once()
    assert out.sent == 8 and out.deferred == 0
    assert len(sim.requests("/v1.0/card/instances")) == 4   # the updates (PUT)
    assert len(sim.messages(DEMO_GROUP)) == 1               # the three alerts as one
    state = await rows(db)
    assert sum(r.counted_at is not None for r in state) == 2  # the card and the alert

    session = session_of(sim)
    one = await add_reply(db, clock, "fits", session=session)
    two = await add_reply(db, clock, "waits", session=session)
    await out.drain_once()
    assert texts(sim, DEMO_GROUP)[-1] == "fits"
    assert (await row(db, one)).status == "sent" and (await row(db, two)).status == "pending"
    assert out.deferred == 1


async def test_a_card_update_waits_for_its_held_back_creation(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    """The group's budget holds the card's creation back; its update (another queue) must
    not fail for good meanwhile, or the card would show its first state forever."""
    from bot.transport.cards import create_and_deliver_body

    track, conv = "baton-x-R1", f"group:{DEMO_GROUP}"
    await add_reply(db, clock, "first", session=session_of(sim))    # takes the only slot
    body = create_and_deliver_body(template_id="tpl", robot_code=sim.client_id,
                                   out_track_id=track, params={"status": "pending"},
                                   group_id=DEMO_GROUP, user_id=None, at={})
    async with db.uow() as uow:
        await uow.outbox.add("card", conv, {"op": "create", "out_track_id": track,
                                            "body": body}, clock.now())
        upd = await uow.outbox.add("card", f"card:{track}", {
            "op": "update", "out_track_id": track, "body": {"params": {"status": "applied"}}},
            clock.now())
        await uow.commit()
    out = sender(db, client, clock, per_conversation_per_minute=1, max_attempts=2)
    await out.drain_once()
    r = await row(db, upd)
    assert r.status == "pending" and r.attempts == 0 and r.last_error is None
    assert track not in sim.cards()
    for _ in range(3):                       # the creation's slot frees, then the update
        clock.advance(31)
        await out.drain_once()
    assert sim.cards()[track].params["status"] == "applied"
    assert [x.status for x in await rows(db)] == ["sent"] * 3 and out.failed == 0


# --- failures ----------------------------------------------------------------------------


async def test_persistent_failure_backs_off_then_is_marked_failed(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    sim.fail_next(WEBHOOK, 500, count=1000)
    rid = await add_reply(db, clock, "doomed", session=session_of(sim))
    out = sender(db, client, clock, max_attempts=3, base_backoff=2.0, max_backoff=300.0)
    per_attempt = CLIENT_RETRIES + 1

    await out.drain_once()
    r = await row(db, rid)
    assert r.status == "pending" and r.attempts == 1
    assert r.last_error and "ServerError" in r.last_error
    first = (r.next_attempt_at - clock.now()).total_seconds()
    assert 1.0 <= first < 3.0  # 2 s base, jitter in [0.5, 1.5)
    assert len(sim.requests(WEBHOOK)) == per_attempt

    await out.drain_once()  # not due: no attempt
    assert len(sim.requests(WEBHOOK)) == per_attempt

    clock.advance(r.next_attempt_at - clock.now())
    await out.drain_once()
    r = await row(db, rid)
    assert r.status == "pending" and r.attempts == 2
    second = (r.next_attempt_at - clock.now()).total_seconds()
    assert 2.0 <= second < 6.0  # doubled

    clock.advance(r.next_attempt_at - clock.now())
    with caplog.at_level(logging.ERROR, logger="bot.delivery.outbox"):
        await out.drain_once()
    r = await row(db, rid)
    assert r.status == "failed"  # kept, visible, never silently dropped
    assert r.attempts == 3 and r.last_error and "ServerError" in r.last_error
    assert out.failed == 1
    assert any("OPERATOR ALERT" in rec.getMessage() for rec in caplog.records)
    assert len(sim.requests(WEBHOOK)) == 3 * per_attempt

    clock.advance(3600)
    await out.drain_once()  # a failed row is not retried on its own
    assert len(sim.requests(WEBHOOK)) == 3 * per_attempt
    assert sim.messages() == []


async def test_transient_failures_then_delivered_exactly_once(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    per_attempt = CLIENT_RETRIES + 1
    sim.fail_next(WEBHOOK, 503, count=2 * per_attempt)  # two whole attempts fail
    rid = await add_reply(db, clock, "persistent", session=session_of(sim))
    out = sender(db, client, clock, max_attempts=5)
    for _ in range(6):
        await out.drain_once()
        clock.advance(600)
    r = await row(db, rid)
    assert r.status == "sent" and r.attempts == 2 and r.sent_at is not None
    assert texts(sim) == ["persistent"]
    assert len(sim.requests(WEBHOOK)) == 2 * per_attempt + 1


async def test_retry_after_of_a_rate_limit_is_honoured(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    sim.fail_next(WEBHOOK, 429, headers={"Retry-After": "120"}, count=CLIENT_RETRIES + 1)
    rid = await add_reply(db, clock, "later", session=session_of(sim))
    out = sender(db, client, clock, base_backoff=1.0)
    await out.drain_once()
    r = await row(db, rid)
    assert r.status == "pending" and r.attempts == 1
    assert (r.next_attempt_at - clock.now()).total_seconds() >= 120
    clock.advance(r.next_attempt_at - clock.now())
    await out.drain_once()
    assert texts(sim) == ["later"]


# --- restart -----------------------------------------------------------------------------


async def test_restart_resumes_pending_and_abandoned_rows(
        sim: Simulator, db: Database, db_url: str, client: OpenApiClient,
        http: aiohttp.ClientSession, clock: FakeClock) -> None:
    session = session_of(sim)
    want = [f"r{i:02d}" for i in range(22)]
    for t in want:
        await add_reply(db, clock, t, session=session)
    first = sender(db, client, clock, per_conversation_per_minute=20)
    await first.drain_once()  # 20 sent, 2 deferred
    # A row a sender claimed and then died with, unsent.
    await add_reply(db, clock, "claimed-then-crashed", conversation=SECOND_GROUP)
    async with db.uow() as uow:
        claimed = await uow.outbox.claim_due(clock.now(), timedelta(seconds=60), 10)
        await uow.commit()
    assert [r.payload["text"] for r in claimed] == ["claimed-then-crashed"]
    del first

    # The restarted process: its own engine, client and sender on the same store.
    db2 = open_database(db_url)
    try:
        second = sender(db2, make_client(sim, http), clock, per_conversation_per_minute=20)
        await second.drain_once()
        assert len(sim.messages()) == 20  # deferred rows not yet due; the claim still leased
        clock.advance(60)
        await second.drain_once()
        assert texts(sim, DEMO_GROUP) == want
        assert texts(sim, SECOND_GROUP) == ["claimed-then-crashed"]
        assert all(r.status == "sent" for r in await rows(db2))
    finally:
        await db2.dispose()


# --- session webhook fallback --------------------------------------------------------------


async def test_expired_webhook_in_group_uses_group_send(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    webhook, _ = session_of(sim)
    past = clock.now() - timedelta(seconds=1)
    await add_reply(db, clock, "plain", session=(webhook, past))
    await add_reply(db, clock, "**bold**", markdown=True, session=(webhook, past))
    out = sender(db, client, clock)
    await out.drain_once()
    assert sim.requests(WEBHOOK) == []  # a known-dead webhook is not even tried
    msgs = sim.messages(DEMO_GROUP)
    assert [(m.via, m.msgtype, m.text) for m in msgs] == [
        ("group", "sampleText", "plain"), ("group", "sampleMarkdown", "**bold**")]
    assert msgs[1].title == "Baton"
    assert all(r.status == "sent" for r in await rows(db))


async def test_expired_webhook_one_to_one_uses_batch_send(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    webhook, _ = session_of(sim, "qianqi", conversation=None)
    await add_reply(db, clock, "just you", conversation="cidOTOqianqi", is_group=False,
                    user="qianqi", session=(webhook, clock.now() - timedelta(minutes=1)))
    await sender(db, client, clock).drain_once()
    [m] = sim.messages()
    assert (m.via, m.conversation_id, m.text, m.user_ids) == (
        "oto", "cidOTOqianqi", "just you", ["qianqi"])
    [req] = sim.requests(OTO_SEND)
    assert req.json["userIds"] == ["qianqi"] and req.json["robotCode"] == sim.client_id


async def test_webhook_answering_300001_falls_back_to_the_robot_api(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    session = session_of(sim)
    assert session[1] > clock.now()  # our clock still believes in it
    rid = await add_reply(db, clock, "fallback", session=session)
    sim.advance(SESSION_TTL + 1)  # DingTalk's clock does not
    out = sender(db, client, clock)
    await out.drain_once()
    assert len(sim.requests(WEBHOOK)) == 1
    assert [(m.via, m.text) for m in sim.messages()] == [("group", "fallback")]
    r = await row(db, rid)
    assert r.status == "sent" and r.attempts == 0
    clock.advance(600)
    await out.drain_once()
    assert len(sim.messages()) == 1


# --- where held-back rows are put (a pure hint; the budget is checked again at send) ------

_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_W = timedelta(minutes=1)


@pytest.mark.parametrize(("recent_ago", "limit", "expect"), [
    ((), 3, [0, 0, 0, 60, 60, 60, 120]),                    # nothing sent: free now
    ((59, 58, 57), 3, [1, 2, 3, 61, 62, 63, 121]),          # full: as each send leaves
    ((59,), 3, [0, 0, 1, 60, 60, 61, 120]),                 # two free, then the one leaving
    ((70, 65, 30), 3, [0, 0, 30, 60, 60, 90, 120]),         # older sends no longer count
])
def test_slot_table(recent_ago: tuple[int, ...], limit: int, expect: list[int]) -> None:
    from bot.delivery.outbox import slot

    recent = [_NOW - timedelta(seconds=s) for s in recent_ago]
    got = [(slot(recent, k, limit, _W, _NOW) - _NOW).total_seconds() for k in range(len(expect))]
    assert got == expect


@given(st.lists(st.integers(0, 59_999), max_size=12), st.integers(1, 6))
def test_slots_never_overfill_a_window(recent_ms: list[int], limit: int) -> None:
    """Sends at the recent times plus one at each slot never put more than ``limit`` sends
    in any minute, and the slots come in order."""
    from bot.delivery.outbox import slot

    recent = sorted(_NOW - timedelta(milliseconds=ms) for ms in recent_ms)[-limit:]
    slots = [slot(recent, k, limit, _W, _NOW) for k in range(3 * limit)]
    assert slots == sorted(slots) and all(s >= _NOW for s in slots)
    sends = [*recent, *slots]
    for start in sends:
        assert sum(1 for s in sends if start <= s < start + _W) <= limit


async def test_a_card_created_by_an_attempt_that_died_unmarked_counts_as_delivered(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    """A crash between createAndDeliver and the mark leaves the row pending; the resend gets
    outTrackIdDuplicate. The card is there: the row is delivered, not retried to FAILED."""
    from bot.transport.cards import create_and_deliver_body

    body = create_and_deliver_body(template_id="tpl", robot_code=sim.client_id,
                                   out_track_id="baton-x-R1", params={"status": "pending"},
                                   group_id=DEMO_GROUP, user_id=None, at={})
    ids = []
    for _ in range(2):   # the second row is the first one as the restart finds it again
        async with db.uow() as uow:
            ids.append(await uow.outbox.add(
                "card", f"group:{DEMO_GROUP}",
                {"op": "create", "out_track_id": "baton-x-R1", "body": body}, clock.now()))
            await uow.commit()
    out = sender(db, client, clock, max_attempts=2)
    await out.drain_once()
    assert [(await row(db, i)).status for i in ids] == ["sent", "sent"]
    assert out.failed == 0 and list(sim.cards()) == ["baton-x-R1"]
    assert len(sim.requests("/v1.0/card/instances/createAndDeliver")) == 2


async def test_a_store_error_recording_one_failure_keeps_the_other_sends_marked(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    """Two conversations in one cycle: the group's replies go out; the other's send fails
    and the store fails while recording that (injected). The group's sends are still
    marked, so after the lease they are not sent again."""
    ok = [await add_reply(db, clock, f"ok-{i}", user=u, session=session_of(sim, u))
          for i, u in enumerate(("zhaoliu", "qianqi"))]
    await add_reply(db, clock, "other", conversation=SECOND_GROUP)
    sim.fail_next(GROUP_SEND, 500, count=1000)
    out = sender(db, client, clock)
    real_failed = out._failed

    async def store_down(*_a: Any, **_k: Any) -> None:
        from sqlalchemy.exc import OperationalError
        raise OperationalError("UPDATE outbox_messages ...", {}, Exception("database is locked"))

    out._failed = store_down  # type: ignore[method-assign]
    await out.drain_once()
    assert [(await row(db, i)).status for i in ok] == ["sent", "sent"]
    assert sorted(m.text for m in sim.messages(DEMO_GROUP)) == ["ok-0", "ok-1"]

    out._failed = real_failed  # type: ignore[method-assign]
    clock.advance(timedelta(seconds=61))  # past the lease of the row whose failure was lost
    await out.drain_once()
    assert sorted(m.text for m in sim.messages(DEMO_GROUP)) == ["ok-0", "ok-1"]


async def test_sends_are_marked_while_a_slow_conversation_still_sends(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    """Every third of the lease the sender writes the marks it has: a conversation whose
    sends are slow does not keep another's delivered rows unmarked until their lease runs
    out (when another replica could claim and send them again)."""
    fast = await add_reply(db, clock, "fast", session=session_of(sim))
    for i in range(3):   # one person, so three waves in a row, each slow
        await add_reply(db, clock, f"slow-{i}", conversation=SECOND_GROUP)
    sim.delay_next(GROUP_SEND, 0.5, count=3)
    out = OutboxSender(db, client, OutboxSettings(), clock, rng=random.Random(11),
                       lease=timedelta(seconds=0.6))
    drain = asyncio.create_task(out.drain_once())
    await sim.until(lambda: out.sent >= 1, timeout=5, what="the fast row marked")
    assert not drain.done(), "the slow conversation was not still sending"
    assert (await row(db, fast)).status == "sent"
    await drain
    assert [r.status for r in await rows(db)] == ["sent"] * 4
    assert sorted(m.text for m in sim.messages(SECOND_GROUP)) == ["slow-0", "slow-1", "slow-2"]
