"""The webhook sender on both backends, POSTing to a real receiver on a loopback port: every
event signed and in order, a subscriber's filter, retries with backoff, a pause with one
alert and a replay that resumes it, a hanging URL that holds up only its own subscriber and
no store write, two senders (replicas) that never send one subscriber's events out of
order, and a round cut short between a 2xx and its record, which sends the same ids again."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.cli.webhooks import webhooks_list, webhooks_replay
from bot.config import Settings
from bot.core.clock import FakeClock
from bot.delivery.webhooks import WebhookSender
from bot.transport.webhooks import HttpWebhooks
from storage.db import Database
from storage.models import AuditEntry, OutboxMessage
from tests.webhook_receiver import Receiver

CORP = "dingtestcorp"
SECRET = "whsec-test-3a9f"
ALERTS = "cidALERTS"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def receiver(clock: FakeClock) -> AsyncIterator[Receiver]:
    r = Receiver({n: SECRET for n in ("crm", "erp", "slow", "fast")},
                 now=lambda: clock.now().timestamp())
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        yield session


def settings(db_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
             *hooks: dict[str, Any], **delivery: Any) -> Settings:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    return Settings(
        database={"url": db_url}, org={"corp_id": CORP, "alert_conversation": ALERTS},
        integrations={
            "webhooks": [{"url": receiver.url(h["name"]), "secret": "${HOOK_SECRET}", **h}
                         for h in hooks],
            "webhook_delivery": {"base_backoff": 1.0, "max_backoff": 30.0, **delivery}})


def sender(db: Database, s: Settings, http: aiohttp.ClientSession, clock: FakeClock,
           poster: Any = None, **kw: Any) -> WebhookSender:
    return WebhookSender(db, poster or HttpWebhooks(http), s, clock, rng=random.Random(3), **kw)


async def changes(db: Database, clock: FakeClock, n: int, *, start: int = 0) -> None:
    """``n`` applied changes (alternately a grant and a revoke), one transaction each."""
    for i in range(start, start + n):
        action = "grant.apply" if i % 2 == 0 else "grant.revoke"
        async with db.uow() as uow:
            await uow.audit.append(CORP, clock.now(), actor_id="lisi", action=action,
                                   result="applied", target_id=f"u{i}",
                                   after={"name": "crm.export", "i": i})
            await uow.commit()


async def head(db: Database) -> int:
    async with db.uow() as uow:
        return await uow.feed.head()


async def sub(db: Database, name: str) -> Any:
    async with db.uow() as uow:
        return await uow.webhooks.get(name)


async def test_every_event_signed_in_order_once_and_filters_hold(
        db: Database, db_url: str, receiver: Receiver, http: aiohttp.ClientSession,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(db_url, receiver, monkeypatch, {"name": "crm"},
                 {"name": "erp", "events": ["grant.revoked"]}, batch=7)
    await changes(db, clock, 3)                   # before the subscribers exist: not sent
    ws = sender(db, s, http, clock)
    assert await ws.register() == ["crm", "erp"]
    assert await ws.register() == []              # a restart adds nothing
    await changes(db, clock, 20, start=3)
    await ws.drain()

    crm = receiver.of("crm")
    assert [h.seq for h in crm] == list(range(4, 24))           # strictly in order, each once
    assert all(h.verified for h in receiver.hits)
    assert len({h.event_id for h in crm}) == 20
    assert crm[0].body["subject"] == {"type": "user", "id": "u3"}
    assert crm[0].body["after"] == {"name": "crm.export", "i": 3}
    erp = receiver.of("erp")
    assert {h.type for h in erp} == {"grant.revoked"}
    assert [h.seq for h in erp] == [n for n in range(4, 24) if n % 2 == 0]
    for name in ("crm", "erp"):       # filtered-out events are passed over too
        assert (await sub(db, name)).cursor == await head(db) == 23
    assert ws.delivered["crm"] == 20 and ws.delivered["erp"] == 10


async def test_a_failing_receiver_is_retried_with_backoff_and_nothing_overtakes(
        db: Database, db_url: str, receiver: Receiver, http: aiohttp.ClientSession,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(db_url, receiver, monkeypatch, {"name": "crm", "max_attempts": 5})
    ws = sender(db, s, http, clock)
    await ws.register()
    await changes(db, clock, 2)
    receiver.endpoints["crm"].fail = 1
    await ws.drain()
    assert [h.seq for h in receiver.of("crm")] == [1]
    assert (await sub(db, "crm")).next_attempt_at > clock.now()
    await ws.drain()                # backing off: not due yet
    assert len(receiver.of("crm")) == 1
    await changes(db, clock, 3, start=2)
    receiver.endpoints["crm"].fail_at[3] = 2
    clock.advance(timedelta(minutes=1))
    await ws.drain()                # 1 and 2 went; 3 failed: nothing after it went
    assert [h.seq for h in receiver.of("crm")] == [1, 1, 2, 3]
    st = await sub(db, "crm")
    assert (st.cursor, st.attempts, st.state) == (2, 1, "active")
    assert "#3: HTTP 500" in st.last_error
    clock.advance(timedelta(minutes=1))
    await ws.drain()
    assert (await sub(db, "crm")).attempts == 2
    clock.advance(timedelta(minutes=1))
    await ws.drain()
    assert [h.seq for h in receiver.of("crm")] == [1, 1, 2, 3, 3, 3, 4, 5]
    assert receiver.unique("crm") == [1, 2, 3, 4, 5]
    assert len({h.event_id for h in receiver.of("crm") if h.seq == 3}) == 1   # same id again
    st = await sub(db, "crm")
    assert (st.cursor, st.attempts, st.last_error) == (5, 0, None)
    assert ws.failures["crm"] == 3


async def test_max_attempts_pause_it_with_one_alert_and_replay_resumes_it(
        db: Database, db_url: str, receiver: Receiver, http: aiohttp.ClientSession,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    s = settings(db_url, receiver, monkeypatch, {"name": "crm", "max_attempts": 3})
    ws = sender(db, s, http, clock)
    await ws.register()
    await changes(db, clock, 4)
    receiver.endpoints["crm"].status = 503
    for _ in range(6):
        await ws.drain()
        clock.advance(timedelta(minutes=5))
    assert [h.seq for h in receiver.of("crm")] == [1, 1, 1]      # paused at the third
    st = await sub(db, "crm")
    assert (st.state, st.cursor, st.attempts) == ("paused", 0, 3)
    async with db.uow() as uow:
        alerts = (await uow.session.execute(select(OutboxMessage.payload).where(
            OutboxMessage.conversation_key == f"group:{ALERTS}"))).scalars().all()
        audited = (await uow.session.execute(select(AuditEntry.action, AuditEntry.after)
                                             .where(AuditEntry.action.like("webhook.%")))).all()
    assert len(alerts) == 1
    assert "webhook crm" in alerts[0]["text"] or "Webhook crm" in alerts[0]["text"]
    assert "baton webhooks replay crm --from 1" in alerts[0]["text"]
    assert [a for a, _ in audited] == ["webhook.paused"]
    assert SECRET not in str(alerts) + str(audited)

    assert await webhooks_list(s) == 0
    listed = capsys.readouterr().out
    assert "crm\tpaused\tcursor 0\tlag 4\tattempts 3/3" in listed and "HTTP 503" in listed

    receiver.endpoints["crm"].status = 200
    await changes(db, clock, 1, start=4)
    await ws.drain()
    assert len(receiver.of("crm")) == 3                           # paused stays paused
    assert await webhooks_replay(s, "crm", 3) == 0                 # skip 1 and 2 on purpose
    clock.advance(timedelta(seconds=5))
    await ws.drain()
    assert [h.seq for h in receiver.of("crm")] == [1, 1, 1, 3, 4, 5]
    st = await sub(db, "crm")
    assert (st.state, st.cursor, st.attempts, st.paused_at) == ("active", 5, 0, None)
    async with db.uow() as uow:
        replay = (await uow.session.execute(select(
            AuditEntry.actor_id, AuditEntry.before, AuditEntry.after).where(
            AuditEntry.action == "webhook.replay"))).one()
    assert tuple(replay) == ("cli", {"webhook": "crm", "cursor": 0, "state": "paused"},
                             {"webhook": "crm", "cursor": 2, "state": "active"})


async def test_replay_refuses_an_unknown_name_and_a_seq_past_the_head(
        db: Database, db_url: str, receiver: Receiver, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    s = settings(db_url, receiver, monkeypatch, {"name": "crm"})
    await changes(db, clock, 2)
    assert await webhooks_replay(s, "nope", 1) == 1
    assert "no webhook 'nope'" in capsys.readouterr().err
    assert await webhooks_replay(s, "crm", 9) == 1
    assert "past the feed's head (2)" in capsys.readouterr().err
    assert await webhooks_replay(s, "crm", 0) == 1
    assert await sub(db, "crm") is None          # nothing changed


async def test_a_hanging_url_delays_only_its_own_subscriber_and_no_store_write(
        db: Database, db_url: str, receiver: Receiver, http: aiohttp.ClientSession,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(db_url, receiver, monkeypatch, {"name": "slow", "timeout": 30},
                 {"name": "fast"}, lease="120s", poll_interval="60s")
    receiver.endpoints["slow"].hang = True
    ws = sender(db, s, http, clock)
    await ws.register()
    db.feed_listeners.append(ws.wake)
    task = asyncio.create_task(ws.run())
    try:
        await changes(db, clock, 3)
        await receiver.until(lambda: receiver.endpoints["slow"].waiting == 1
                             and receiver.unique("fast") == [1, 2, 3], what="fast got all 3")
        # While slow's POST hangs, the store takes writes (a command's transaction) and
        # fast keeps receiving them.
        await asyncio.wait_for(changes(db, clock, 2, start=3), 5)
        await receiver.until(lambda: receiver.unique("fast") == [1, 2, 3, 4, 5], what="fast")
        assert [h.seq for h in receiver.of("slow")] == [1]
        receiver.endpoints["slow"].hang = False
        receiver.endpoints["slow"].release.set()
        await receiver.until(lambda: receiver.unique("slow") == [1, 2, 3, 4, 5], what="slow")
    finally:
        ws.stop()
        await asyncio.wait_for(task, 10)
    assert [h.seq for h in receiver.of("slow")] == [1, 2, 3, 4, 5]


async def test_a_post_past_its_timeout_is_a_failed_attempt(
        db: Database, db_url: str, receiver: Receiver, http: aiohttp.ClientSession,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(db_url, receiver, monkeypatch, {"name": "slow", "timeout": 0.2})
    receiver.endpoints["slow"].hang = True
    ws = sender(db, s, http, clock)
    await ws.register()
    await changes(db, clock, 1)
    await ws.drain()
    st = await sub(db, "slow")
    assert (st.cursor, st.attempts) == (0, 1)
    assert st.last_error == "#1: no answer within 0.2s"


async def test_two_senders_never_send_one_subscriber_out_of_order(
        db: Database, db_url: str, receiver: Receiver, http: aiohttp.ClientSession,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(db_url, receiver, monkeypatch, {"name": "crm"}, batch=3)
    a, b = sender(db, s, http, clock), sender(db, s, http, clock)
    await a.register()
    await b.register()

    async def both() -> None:
        await asyncio.gather(a.drain(), b.drain())

    for k in range(8):
        await asyncio.gather(changes(db, clock, 5, start=k * 5), both())
    await both()
    got = [h.seq for h in receiver.of("crm")]
    assert got == list(range(1, 41)), got           # no repeat, no reordering
    assert a.delivered["crm"] + b.delivered["crm"] == 40


class CutShort(BaseException):
    """The process dies: nothing after this runs, no handler catches it."""


class DieAfter:
    """The real poster; after its ``n``-th 2xx the round dies before recording it."""

    def __init__(self, inner: HttpWebhooks, n: int) -> None:
        self.inner, self.left = inner, n

    async def post_event(self, url: str, secret: str, event: Any, *, sent_at: int,
                         timeout: float) -> None:
        await self.inner.post_event(url, secret, event, sent_at=sent_at, timeout=timeout)
        self.left -= 1
        if self.left == 0:
            raise CutShort


async def test_a_round_cut_short_after_a_2xx_sends_the_same_ids_again(
        db: Database, db_url: str, receiver: Receiver, http: aiohttp.ClientSession,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(db_url, receiver, monkeypatch, {"name": "crm"}, lease="30s", batch=4)
    dying = sender(db, s, http, clock, DieAfter(HttpWebhooks(http), 6))
    await dying.register()
    await changes(db, clock, 10)
    with pytest.raises(CutShort):
        for _ in range(5):
            await dying._round("crm")   # the rounds a run would start, until it dies
    assert [h.seq for h in receiver.of("crm")] == [1, 2, 3, 4, 5, 6]
    assert (await sub(db, "crm")).cursor == 4        # 5 and 6 went, unrecorded
    restarted = sender(db, s, http, clock)
    await restarted.drain()
    assert len(receiver.of("crm")) == 6              # the dead round's lease still holds
    clock.advance(timedelta(seconds=31))
    await restarted.drain()
    assert receiver.unique("crm") == list(range(1, 11))
    assert receiver.repeats("crm") == 2              # 5 and 6, with the same ids
    assert (await sub(db, "crm")).cursor == 10


async def test_progress_recorded_during_a_round_bounds_what_a_crash_sends_again(
        db: Database, db_url: str, receiver: Receiver, http: aiohttp.ClientSession,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(db_url, receiver, monkeypatch, {"name": "crm"}, lease="30s")
    dying = sender(db, s, http, clock, DieAfter(HttpWebhooks(http), 6), progress_every=0)
    await dying.register()
    await changes(db, clock, 10)
    with pytest.raises(CutShort):
        await dying._round("crm")
    assert (await sub(db, "crm")).cursor == 5        # each 2xx recorded but the last
    clock.advance(timedelta(seconds=31))
    await sender(db, s, http, clock).drain()
    assert receiver.unique("crm") == list(range(1, 11))
    assert receiver.repeats("crm") == 1              # only 6


async def test_a_stop_cuts_a_hanging_post_short_and_frees_the_lease(
        db: Database, db_url: str, receiver: Receiver, http: aiohttp.ClientSession,
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(db_url, receiver, monkeypatch, {"name": "slow", "timeout": 25}, lease="60s")
    receiver.endpoints["slow"].hang_seq = 3
    ws = sender(db, s, http, clock, progress_every=0)
    await ws.register()
    await changes(db, clock, 4)
    task = asyncio.create_task(ws.drain())
    await receiver.until(lambda: receiver.endpoints["slow"].waiting == 1, what="POST of 3")
    ws.stop()
    await asyncio.wait_for(ws.run(), 5)              # well inside the POST's 25 s timeout
    await asyncio.wait_for(task, 5)
    st = await sub(db, "slow")
    assert (st.cursor, st.attempts, st.claimed_until) == (2, 0, None)
    await sender(db, s, http, clock).drain()         # the next start resumes at once
    assert receiver.unique("slow") == [1, 2, 3, 4]
    assert [h.seq for h in receiver.of("slow")] == [1, 2, 3, 3, 4]
