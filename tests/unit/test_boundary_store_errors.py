"""The error boundary leaves the store's own errors to the caller (no ack, so DingTalk
redelivers) and answers anything else with an event id; which is which is storage's
judgement (``storage.db.store_error``), so bot/dispatch needs no sqlalchemy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.config import Settings
from bot.dispatch.boundary import Boundary
from bot.dispatch.context import Context
from bot.dispatch.metrics import Metrics
from bot.transport.inbound import IncomingMessage
from storage.db import CommitOutcomeUnknown, store_error

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


class _Clock:
    def now(self) -> datetime:
        return NOW


class _Outbox:
    def __init__(self) -> None:
        self.replies: list[str] = []

    async def add(self, kind: str, key: str, payload: dict[str, Any], now: datetime,
                  **kw: Any) -> None:
        self.replies.append(str(payload))


class _Uow:
    def __init__(self) -> None:
        self.outbox = _Outbox()


def _context(uow: _Uow, settings: Settings) -> Context:
    msg = IncomingMessage(
        message_id="m-1", msg_id="m-1", conversation_id="cid", is_group=False,
        conversation_title="", sender_id="amy", sender_nick="Amy", sender_corp_id="c",
        text="whoami", mentions=(), msgtype="text", file=None, session_webhook=None,
        webhook_expires_at=None, from_robot=False)
    return Context.for_message(cast(Any, uow), settings, NOW, "en", msg, cast(Any, None))


def test_store_error_is_any_dbapi_error_and_nothing_else() -> None:
    assert store_error(OperationalError("SELECT 1", {}, Exception("down")))
    assert store_error(IntegrityError("INSERT", {}, Exception("unique")))
    assert not store_error(RuntimeError("bug"))
    assert not store_error(CommitOutcomeUnknown("commit failed"))
    assert not store_error(OSError("reset"))


@pytest.mark.parametrize("exc", [OperationalError("SELECT 1", {}, Exception("down")),
                                 IntegrityError("INSERT", {}, Exception("unique"))])
async def test_a_store_error_is_raised_not_answered(exc: Exception) -> None:
    settings = Settings.model_validate({"org": {"corp_id": "c"}})
    metrics, uow = Metrics(), _Uow()
    boundary = Boundary(settings, cast(Any, _Clock()), metrics, None)

    async def work() -> None:
        raise exc

    with pytest.raises(type(exc)):
        await boundary.run("whoami", _context(uow, settings), work)
    assert uow.outbox.replies == []


async def test_a_bug_is_answered_with_an_event_id() -> None:
    settings = Settings.model_validate({"org": {"corp_id": "c"}})
    metrics, uow = Metrics(), _Uow()
    boundary = Boundary(settings, cast(Any, _Clock()), metrics, None)

    async def work() -> None:
        raise RuntimeError("bug")

    await boundary.run("whoami", _context(uow, settings), work)
    assert len(uow.outbox.replies) == 1
