"""Secrets stay out of logs, the database, audit entries and exports.

The client secret is a sentinel given to the simulator; the access tokens, stream tickets and
sessionWebhook URLs are the ones the simulator issued during the run (read back from its
request log and from the frames it pushed). A realistic run (an owner transfer approved on a
card, grants, a refusal, a sensitive grant approved on a card, a token expiry, a stream
reconnect, a webhook failure, one-to-one chat, the audit listing) is logged at DEBUG from
every logger, then every log line, every database row (outbox rows still pending aside),
every audit entry and both export formats are searched for every sentinel.

The outbox part: only a pending row may hold a sessionWebhook; a webhook past its life is
dropped from the row, and a stored error never carries it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import traceback
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import inspect, select, text

from bot.app import BatonApp
from bot.cli.sandbox import DEMO_GROUP, demo_simulator, sim_settings
from bot.config import Settings
from bot.core.clock import FakeClock
from bot.logs import make_handler
from bot.transport.openapi import OpenApiClient
from dingtalk_sim import Simulator
from dingtalk_sim.state import SESSION_TTL
from dingtalk_sim.stream import CONNECT_PATH
from storage.audit_export import write_audit
from storage.db import Database
from storage.models import AuditEntry, OutboxMessage
from tests.e2e.conftest import CARD, GROUP, card_status, click, reply_to
from tests.transport.outbox_support import (
    GROUP_SEND,
    WEBHOOK,
    add_reply,
    make_client,
    row,
    rows,
    sender,
    session_of,
)

pytestmark = pytest.mark.e2e

SECRET = "SENTINEL-client-secret-5d1e0c7b9a"
# Baton's own code (the simulator is not Baton: it is DingTalk's side).
OWN_LOGGERS = ("bot", "handlers", "storage")


def own(name: str) -> bool:
    return name.split(".", maxsplit=1)[0] in OWN_LOGGERS and not name.startswith("dingtalk_sim")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with demo_simulator(client_secret=SECRET) as s:
        yield s


# ---- capture ------------------------------------------------------------------------------

@dataclass
class Raw:
    name: str
    text: str  # the message with its arguments, and the traceback if any, before any filter


class RawRecorder(logging.Handler):
    """Snapshots each record as Baton's code handed it over (before any redaction)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.raw: list[Raw] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:
            msg = f"{record.msg!s} % {record.args!r}"
        if record.exc_info:
            msg += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.raw.append(Raw(record.name, msg))


@dataclass
class Capture:
    raw: RawRecorder
    out: io.StringIO  # what the production handler wrote
    caplog: pytest.LogCaptureFixture


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture) -> Iterator[Capture]:
    """Every logger at DEBUG (the SDK's too), a raw snapshot, then the production handler
    exactly as ``baton run`` installs it, both on the root logger."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="dingtalk_stream")
    root = logging.getLogger()
    raw, out = RawRecorder(), io.StringIO()
    handler = make_handler((SECRET,), out)
    handler.setLevel(logging.DEBUG)
    root.addHandler(raw)
    root.addHandler(handler)
    try:
        yield Capture(raw, out, caplog)
    finally:
        root.removeHandler(handler)
        root.removeHandler(raw)


@pytest.fixture
def settings(sim: Simulator, db_url: str, capture: Capture) -> Settings:
    """Depends on ``capture`` so logging is at DEBUG before the bot starts."""
    return sim_settings(sim, db_url)


# ---- the sentinels ------------------------------------------------------------------------

@dataclass
class Sentinels:
    sim: Simulator
    webhooks: set[str] = field(default_factory=set)

    def say(self, user: str, text: str, conversation: str | None = GROUP,
            at: tuple[str, ...] = ()) -> None:
        d = self.sim.say(user, f" {text}" if conversation else text, conversation_id=conversation,
                         at=at)
        self.webhooks.add(json.loads(d.frame["data"])["sessionWebhook"])

    async def ask(self, user: str, text: str, expect: str, conversation: str = GROUP,
                  at: tuple[str, ...] = (), reply_in: str | None = None) -> str:
        where = reply_in or conversation
        n = len(self.sim.messages(where))
        self.say(user, text, None if conversation.startswith("cidOTO") else conversation, at)
        return await reply_to(self.sim, where, expect, after=n)

    def all(self) -> dict[str, str]:
        """Every secret of the run, by what it is."""
        found: dict[str, str] = {"client secret: -": SECRET}
        for r in self.sim.requests():
            headers = {k.lower(): v for k, v in r.headers.items()}
            if tok := headers.get("x-acs-dingtalk-access-token"):
                found[f"access token: {tok}"] = tok
            if tok := r.query.get("access_token"):
                found[f"access token: {tok}"] = tok
            if r.path == CONNECT_PATH and (ticket := r.query.get("ticket")):
                found[f"stream ticket: {ticket}"] = ticket
            if r.path == WEBHOOK and (session := r.query.get("session")):
                found[f"webhook session: {session}"] = session
        for url in self.webhooks:
            session = url.rsplit("session=", 1)[1]
            found[f"sessionWebhook: {url}"] = url
            found[f"webhook session: {session}"] = session
        return found


def hits(haystack: str, sentinels: dict[str, str]) -> list[str]:
    return [what for what, value in sentinels.items() if value in haystack]


# ---- the run ------------------------------------------------------------------------------

async def scenario(sim: Simulator, s: Sentinels) -> None:
    await s.ask("zhaoliu", "whoami", "zhaoliu")
    # An owner transfer, accepted on its card.
    text = await s.ask("zhangsan", "转让主管理员 @李四 工作交接", "R-1", at=("lisi",))
    assert "李四" in text
    card = CARD.format(1)
    await card_status(sim, card, "pending")
    assert await click(sim, "zhaoliu", card, "accept")   # not the target: refused
    await click(sim, "lisi", card, "accept")
    await card_status(sim, card, "applied")
    await reply_to(sim, GROUP, "R-1 已完成")
    # The stream connection is replaced (a second ticket).
    first = {c.connection_id for c in sim.connections() if c.live}
    sim.send_disconnect()
    await sim.until(lambda: [c for c in sim.connections() if c.live
                             and c.connection_id not in first], timeout=10,
                    what="the new connection")
    # A grant, a refusal, a webhook that fails once.
    await s.ask("lisi", "授权 @赵六 crm.report.view 7天", "已授予", at=("zhaoliu",))
    await s.ask("zhaoliu", "grant @qianqi crm.report.view", "Only the owner or an admin",
                at=("qianqi",))
    sim.fail_next(WEBHOOK, 500, count=1)
    await s.ask("wangwu", "谁有 crm.report.view", "拥有")
    # Tokens expire; a sensitive grant goes to a card (a refresh) and is approved there.
    sim.expire_tokens()
    text = await s.ask("lisi", "授权 @钱七 crm.export 3天", "已发起审批", at=("qianqi",))
    card = CARD.format(2)
    await card_status(sim, card, "pending")
    assert await click(sim, "lisi", card, "approve")      # the requester: refused
    await click(sim, "wangwu", card, "approve")
    await card_status(sim, card, "applied")
    # One to one, and the audit listing.
    await s.ask("qianqi", "whoami", "My permissions", conversation="cidOTOqianqi")
    await s.ask("wangwu", "审计", "审计记录")


async def drained(app: BatonApp) -> None:
    for _ in range(200):
        async with app.db.uow() as uow:
            if await uow.outbox.depth() == 0:
                return
        await asyncio.sleep(0.05)
    pytest.fail("the outbox did not drain")


async def every_row(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (alembic's too), as plain values."""
    out: dict[str, list[dict[str, Any]]] = {}
    async with db.uow() as uow:
        conn = await uow.session.connection()
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        for name in names:
            result = await conn.execute(text(f'SELECT * FROM "{name}"'))
            out[name] = [dict(r._mapping) for r in result]
    return out


def export_text(path: Path) -> str:
    if path.suffix == ".csv":
        return path.read_text(encoding="utf-8-sig")
    with zipfile.ZipFile(path) as z:
        return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())


async def test_no_secret_in_logs_database_audit_or_exports(
        sim: Simulator, settings: Settings, capture: Capture, tmp_path: Path) -> None:
    s = Sentinels(sim)
    app = BatonApp(settings)
    await app.__aenter__()
    try:
        await app.wait_connected()
        await scenario(sim, s)
        await drained(app)
        sentinels = s.all()
        kinds = [k.split(":", maxsplit=1)[0] for k in sentinels]
        assert set(kinds) == {"client secret", "access token", "stream ticket", "sessionWebhook",
                              "webhook session"}, kinds
        assert kinds.count("stream ticket") >= 2 and kinds.count("access token") >= 2
        assert kinds.count("sessionWebhook") >= 8

        tables = await every_row(app.db)
        assert {"members", "grants", "requests", "votes", "audit_entries", "outbox",
                "processed_messages"} <= set(tables)
        assert tables["grants"] and tables["votes"] and tables["processed_messages"]
        outbox = tables[OutboxMessage.__tablename__]
        assert outbox and all(r["status"] != "pending" for r in outbox)
        assert [r["id"] for r in outbox if r["session_webhook"] is not None] == []
        for name, table_rows in tables.items():
            for r in table_rows:
                if name == OutboxMessage.__tablename__ and r["status"] == "pending":
                    continue
                found = hits(repr(r), sentinels)
                assert not found, f"{found} in table {name}: {r!r}"

        async with app.db.uow() as uow:
            entries = list((await uow.session.execute(
                select(AuditEntry).order_by(AuditEntry.seq))).scalars())
            uow.session.expunge_all()
        assert len(entries) >= 6
        for e in entries:
            cells = {c.key: getattr(e, c.key) for c in AuditEntry.__table__.columns}
            found = hits(json.dumps(cells, default=str, ensure_ascii=False), sentinels)
            assert not found, f"{found} in audit entry {cells!r}"
        for fmt in ("csv", "xlsx"):
            path = tmp_path / f"audit.{fmt}"
            assert write_audit(path, entries, fmt) == len(entries)
            exported = export_text(path)
            assert "grant.apply" in exported
            assert not hits(exported, sentinels), f"secret in the {fmt} export"

        said = [m.text for m in sim.messages()] + [json.dumps(c.params, ensure_ascii=False)
                                                   for c in sim.cards().values()]
        assert not hits("\n".join(said), sentinels), "a secret was said in chat"
    finally:
        await asyncio.wait_for(app.__aexit__(None, None, None), 60)

    # The logs, start to shutdown: the production output holds no secret at all, and Baton's
    # own code never even handed one to the logging call.
    sentinels = s.all()
    out = capture.out.getvalue()
    assert " DEBUG " in out and " bot." in out and len(out.splitlines()) > 50
    seen = [*capture.caplog.get_records("setup"), *capture.caplog.get_records("call")]
    assert len(seen) == len(capture.raw.raw)  # every record reached the root logger
    found = hits(out, sentinels)
    assert not found, f"{found} in the log output: " + next(
        ln for ln in out.splitlines() if hits(ln, sentinels))
    for r in capture.raw.raw:
        if own(r.name):
            assert not hits(r.text, sentinels), f"{r.name} logged {hits(r.text, sentinels)}"
    # The check is not vacuous: third-party libraries at DEBUG did carry secrets that the
    # production filter then masked.
    assert any(hits(r.text, sentinels) for r in capture.raw.raw if not own(r.name))


# ---- the outbox: only a pending row holds a sessionWebhook ------------------------------

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


async def test_a_webhook_past_its_life_is_dropped_even_when_the_row_stays_pending(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    webhook, _ = session_of(sim)
    rid = await add_reply(db, clock, "late", session=(webhook, clock.now() - timedelta(seconds=1)))
    sim.fail_next(GROUP_SEND, 500, count=1000)
    out = sender(db, client, clock, max_attempts=3)
    await out.drain_once()
    r = await row(db, rid)
    assert r.status == "pending" and r.attempts == 1
    assert r.session_webhook is None and r.webhook_expires_at is not None
    assert r.last_error and webhook not in r.last_error
    assert sim.requests(WEBHOOK) == []
    for _ in range(5):
        clock.advance(3600)
        await out.drain_once()
    r = await row(db, rid)
    assert r.status == "failed" and r.session_webhook is None


async def test_a_webhook_dingtalk_calls_expired_is_dropped_before_the_fallback(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    session = session_of(sim)
    rid = await add_reply(db, clock, "fallback", session=session)
    keep = await add_reply(db, clock, "later", session=session)
    async with db.uow() as uow:  # a second row, not yet due, keeps its live webhook
        await uow.outbox.reschedule(keep, clock.now() + timedelta(hours=1), error=None,
                                    count_attempt=False)
        await uow.commit()
    sim.advance(SESSION_TTL + 1)  # DingTalk's clock says 300001; ours still believes in it
    sim.fail_next(GROUP_SEND, 500, count=1000)
    await sender(db, client, clock).drain_once()
    assert len(sim.requests(WEBHOOK)) == 1
    r = await row(db, rid)
    assert r.status == "pending" and r.session_webhook is None
    assert (await row(db, keep)).session_webhook == session[0]  # pending and alive: kept


async def test_a_stored_error_never_carries_the_webhook(
        sim: Simulator, db: Database, client: OpenApiClient, clock: FakeClock) -> None:
    webhook, expires = session_of(sim)
    rid = await add_reply(db, clock, "x", session=(webhook, expires))
    sim.fail_next(WEBHOOK, 200, body={"errcode": 400101, "errmsg": f"bad call to {webhook}"},
                  count=1000)
    out = sender(db, client, clock, max_attempts=2)
    await out.drain_once()
    r = await row(db, rid)
    assert r.status == "pending" and r.last_error and "bad call to" in r.last_error
    session = webhook.rsplit("=", 1)[1]
    assert session not in r.last_error and webhook not in r.last_error
    clock.advance(3600)
    await out.drain_once()
    r = await row(db, rid)
    assert r.status == "failed" and r.session_webhook is None
    assert r.last_error and session not in r.last_error
    assert all(x.session_webhook is None for x in await rows(db) if x.status != "pending")


@pytest.mark.parametrize("n", [3])
async def test_sent_rows_hold_no_webhook(sim: Simulator, db: Database, client: OpenApiClient,
                                         clock: FakeClock, n: int) -> None:
    session = session_of(sim)
    ids = [await add_reply(db, clock, f"m{i}", session=session) for i in range(n)]
    await sender(db, client, clock).drain_once()
    assert [(r.id, r.status, r.session_webhook) for r in await rows(db)] == [
        (i, "sent", None) for i in ids]
    assert [m.text for m in sim.messages(DEMO_GROUP)] == [f"m{i}" for i in range(n)]
