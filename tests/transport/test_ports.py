"""The ports (bot/ports.py): the concrete classes fit them, and the outbox needs no more than
its Messenger (a recording fake, no sockets)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot import ports
from bot.config import DingTalkSettings, OutboxSettings
from bot.core.clock import FakeClock
from bot.core.sends import Reply
from bot.delivery.outbox import OutboxSender
from bot.transport import openapi
from storage.db import Database, UnitOfWork


async def test_the_concrete_classes_fit_the_ports(db: Database) -> None:
    async with aiohttp.ClientSession() as http:
        client = openapi.OpenApiClient(http, DingTalkSettings(client_id="a",
                                                              client_secret=SecretStr("s")))
        assert isinstance(client, ports.Messenger)
        assert isinstance(client, ports.Directory)
    assert isinstance(UnitOfWork(db), ports.UnitOfWork)
    assert not isinstance(object(), ports.Messenger)


def test_the_clients_errors_are_the_ports_errors() -> None:
    # Code that catches the ports' errors catches what the client raises.
    for name in ("DingTalkError", "RateLimited", "SessionExpired", "NotFound", "AuthError",
                 "PermissionDenied", "BadRequest", "ServerError", "TransportError"):
        assert getattr(openapi, name) is getattr(ports, name)
    assert issubclass(ports.SessionExpired, ports.DingTalkError)
    assert ports.RateLimited.retryable and not ports.NotFound.retryable


class FakeMessenger:
    """Records what it is asked to send; ``throttled`` people are flow-controlled."""

    def __init__(self, throttled: Sequence[str] = ()) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self._throttled = set(throttled)

    async def send_by_webhook(self, url: str, text: str, *, markdown: bool = False,
                              title: str = "Baton", at: Sequence[str] = ()) -> None:
        self.sent.append(("webhook", url, text, markdown, tuple(at)))

    async def send_to_group(self, conversation_id: str, text: str, *, markdown: bool = False,
                            title: str = "Baton") -> None:
        self.sent.append(("group", conversation_id, text, markdown, title))

    async def send_to_user(self, user_id: str, text: str, *, markdown: bool = False,
                           title: str = "Baton") -> bool:
        self.sent.append(("user", user_id, text, markdown, title))
        return user_id not in self._throttled

    async def send_file(self, user_id: str, media_id: str, file_name: str) -> None:
        self.sent.append(("file", user_id, media_id, file_name))

    async def upload_media(self, content: bytes, file_name: str,
                           media_type: str = "file") -> str:
        return "@media"

    async def create_and_deliver_card(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.sent.append(("card", dict(body)))
        return {}

    async def update_card(self, out_track_id: str, params: Mapping[str, str],
                          private: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.sent.append(("update", out_track_id, dict(params), private))

    async def download_file(self, download_code: str) -> bytes:
        return b""


async def _queue(db: Database, clock: FakeClock, reply: Reply, webhook: str | None = None) -> None:
    async with db.uow() as uow:
        expires = clock.now() + timedelta(hours=1) if webhook else None
        await uow.outbox.add("reply", reply.conversation_key, reply.payload(), clock.now(),
                             session_webhook=webhook, webhook_expires_at=expires)
        await uow.commit()


async def test_the_outbox_sends_through_its_messenger(db: Database) -> None:
    clock = FakeClock()
    fake = FakeMessenger()
    assert isinstance(fake, ports.Messenger)
    await _queue(db, clock, Reply("in the group", "cid1", True, user_id="u1", at=("u1",)))
    await _queue(db, clock, Reply("**to you**", "cid2", False, user_id="u2", markdown=True,
                                  title="T"))
    await _queue(db, clock, Reply("by hook", "cid3", True, user_id="u3"), webhook="https://h")
    out = OutboxSender(db, fake, OutboxSettings(), clock, rng=random.Random(1))
    assert await out.drain_once() == 3
    assert sorted(fake.sent) == sorted([
        ("group", "cid1", "in the group", False, ""),
        ("user", "u2", "**to you**", True, "T"),
        ("webhook", "https://h", "by hook", False, ()),
    ])
    assert out.sent == 3


async def test_a_flow_controlled_person_is_retried_later(db: Database) -> None:
    clock = FakeClock()
    fake = FakeMessenger(throttled=["u2"])
    await _queue(db, clock, Reply("wait", "cid2", False, user_id="u2"))
    out = OutboxSender(db, fake, OutboxSettings(), clock, rng=random.Random(1))
    await out.drain_once()
    assert fake.sent == [("user", "u2", "wait", False, "")]
    assert out.sent == 0
    async with db.uow() as uow:
        assert await uow.outbox.next_due_at() is not None   # rescheduled, not lost
