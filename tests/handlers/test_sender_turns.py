"""Each sender's messages take effect in arrival order (bot.dispatch.turns.SenderTurns), also when
reads are batched and changes are not: table tests of the turns, and the dispatcher on both
databases (the order of the replies written to the outbox)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.cli.sandbox import DEMO_CATALOG
from bot.config import Settings
from bot.core.clock import FakeClock
from bot.dispatch.dispatcher import Dispatcher
from bot.dispatch.turns import SenderTurns
from bot.transport.inbound import IncomingMessage
from handlers import build_router
from storage.db import Database
from storage.models import OutboxMessage


async def test_reads_of_one_sender_do_not_wait_for_each_other() -> None:
    turns = SenderTurns()
    before1, done1 = turns.take("p", read=True)
    before2, done2 = turns.take("p", read=True)
    assert before1 == [] and before2 == []
    done1.set_result(None)
    done2.set_result(None)
    await asyncio.sleep(0)   # done callbacks run on the next turn of the loop
    assert len(turns) == 0


async def test_a_change_waits_for_everything_before_it_and_a_read_for_the_last_change() -> None:
    turns = SenderTurns()
    _, r1 = turns.take("p", read=True)
    _, c1 = turns.take("p", read=False)
    b_r2, r2 = turns.take("p", read=True)
    b_c2, c2 = turns.take("p", read=False)
    assert turns.take("q", read=False)[0] == []          # another sender: no wait
    assert b_r2 == [c1]
    assert set(b_c2) == {c1, r2}                         # r1 is before c1, covered by it
    c1.set_result(None)
    b_r3, r3 = turns.take("p", read=True)
    assert b_r3 == [c2]
    for f in (r1, r2, c2, r3):
        f.set_result(None)


async def test_finished_messages_are_forgotten() -> None:
    turns = SenderTurns()
    futures = [turns.take(s, read=r)[1] for s, r in
               [("p", True), ("p", False), ("q", True), ("p", True)]]
    assert len(turns) == 2
    for f in futures:
        f.set_result(None)
    await asyncio.sleep(0)   # done callbacks run on the next turn of the loop
    assert len(turns) == 0
    assert turns.take("p", read=False)[0] == []


def _msg(i: int, user: str, text: str) -> IncomingMessage:
    return IncomingMessage(
        message_id=f"m{i}", msg_id=f"m{i}", conversation_id="cidG", is_group=True,
        conversation_title="g", sender_id=user, sender_nick=user, sender_corp_id="corp",
        text=text, mentions=(), msgtype="text", file=None, session_webhook=None,
        webhook_expires_at=None, from_robot=False)


@pytest.mark.parametrize("texts", [
    [("q", "whoami"), ("p", "whoami"), ("p", "admins")],
    [("q", "whoami"), ("p", "admins"), ("p", "whoami")],
    [("q", "whoami"), ("p", "whoami"), ("p", "admins"), ("p", "whoami"), ("p", "help")],
])
async def test_one_senders_replies_are_queued_in_arrival_order(
        db: Database, db_url: str, texts: list[tuple[str, str]]) -> None:
    settings = Settings.model_validate({
        "database": {"url": db_url}, "catalog": DEMO_CATALOG,
        "org": {"corp_id": "corp", "bootstrap_from_dingtalk": False}})
    dispatcher = Dispatcher(db, settings, FakeClock(datetime.now(UTC)), build_router())
    # All arrive together: q's read starts a batch, p's messages arrive while it runs.
    await asyncio.gather(*(dispatcher.handle_robot_message(_msg(i, u, t))
                           for i, (u, t) in enumerate(texts)))
    async with db.uow() as uow:
        rows = (await uow.session.execute(
            select(OutboxMessage.source_message_id, OutboxMessage.payload)
            .order_by(OutboxMessage.id))).all()
    p_order = [mid for mid, payload in rows if payload["user_id"] == "p"]
    assert p_order == [f"m{i}" for i, (u, _) in enumerate(texts) if u == "p"]


async def test_a_change_with_a_slow_lookup_keeps_its_place(db: Database, db_url: str) -> None:
    """A change's lookups (prepare) run after it has taken its turn: a later message from
    the same sender waits for it, however long the lookup takes."""
    settings = Settings.model_validate({
        "database": {"url": db_url}, "catalog": DEMO_CATALOG,
        "org": {"corp_id": "corp", "bootstrap_from_dingtalk": False}})
    gate = asyncio.get_running_loop().create_future()
    looking_up = asyncio.Event()

    class SlowLookup(Dispatcher):
        async def _prepare(self, parsed: Any, sender: str) -> Any:  # a slow directory lookup
            if not looking_up.is_set():
                looking_up.set()
                await gate
            return await super()._prepare(parsed, sender)

    dispatcher = SlowLookup(db, settings, FakeClock(datetime.now(UTC)), build_router())
    first = asyncio.create_task(dispatcher.handle_robot_message(_msg(0, "p", "admins")))
    await looking_up.wait()
    rest = [asyncio.create_task(dispatcher.handle_robot_message(_msg(i, "p", t)))
            for i, t in ((1, "admins"), (2, "whoami"))]
    for _ in range(20):
        await asyncio.sleep(0)
    assert not any(t.done() for t in rest), "a later message went before the slow change"
    gate.set_result(None)
    await asyncio.gather(first, *rest)
    async with db.uow() as uow:
        order = list((await uow.session.execute(
            select(OutboxMessage.source_message_id).order_by(OutboxMessage.id))).scalars())
    assert order == ["m0", "m1", "m2"]
