"""What every handler gets: a typed context, a user-facing error, and a router to register on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from bot.config import Settings
from bot.core.escape import Md
from bot.core.faults import Faults
from bot.core.lang import Lang
from bot.core.sends import CardSpec, Reply
from bot.dispatch.env import Env
from bot.texts.catalog import t
from bot.transport.inbound import CardAction, IncomingMessage
from storage.db import UnitOfWork
from storage.models import ADMIN, OWNER, Member

if TYPE_CHECKING:
    from bot.transport.openapi import OpenApiClient


class UserError(Exception):
    """A refusal the user is told about; nothing the handler did is kept.

    ``audit_action`` set: the refusal is written to the audit trail; ``alert``: it is
    a refused sensitive attempt, also posted to ``org.alert_conversation``.
    """

    def __init__(self, key: str, *, audit_action: str | None = None, alert: bool = False,
                 **params: Any) -> None:
        super().__init__(key)
        self.key, self.params, self.audit_action = key, params, audit_action
        self.alert = alert          # also post it to org.alert_conversation

    def render(self, lang: Lang) -> Md:
        return t(self.key, lang, **{k: v.render(lang) if isinstance(v, Localized) else v
                                    for k, v in self.params.items()})


@dataclass(frozen=True)
class Localized:
    """A message parameter that is itself a text key, rendered in the reader's language."""

    key: str

    def render(self, lang: Lang) -> Md:
        return t(self.key, lang)

    def __str__(self) -> str:
        return self.key


@dataclass
class Context:
    uow: UnitOfWork
    settings: Settings
    now: datetime
    lang: Lang
    message: IncomingMessage
    sender: Member
    faults: Faults = field(default_factory=Faults)
    prepared: Any = None
    # Set by the dispatcher for a batch of read commands: replies are collected here and
    # written with one multi-row INSERT when the batch is done (same transaction).
    replies: list[dict[str, Any]] | None = None

    def env(self) -> Env:
        """The request machinery's view of this context (notices in the user's language)."""
        return Env(self.uow, self.settings, self.now, self.faults, self.message.message_id,
                   self.lang)

    @property
    def corp_id(self) -> str:
        return self.settings.org.corp_id

    @property
    def is_admin(self) -> bool:
        return self.sender.level in (OWNER, ADMIN)

    def t(self, key: str, **params: Any) -> Md:
        return t(key, self.lang, **params)

    async def reply(self, text: str, *, markdown: bool = False, title: str = "Baton",
                    at: tuple[str, ...] = ()) -> None:
        """Answer in the conversation the command came from (through the outbox)."""
        m = self.message
        r = Reply(text=text, conversation_id=m.conversation_id, is_group=m.is_group,
                  user_id=m.sender_id, markdown=markdown, title=title, at=at)
        row: dict[str, Any] = {
            "kind": "reply", "conversation_key": r.conversation_key, "payload": r.payload(),
            "session_webhook": m.session_webhook, "webhook_expires_at": m.webhook_expires_at,
            "source_message_id": m.message_id}
        if self.replies is not None:
            self.replies.append(row)
            return
        await self.uow.outbox.add(row.pop("kind"), row.pop("conversation_key"),
                                  row.pop("payload"), self.now, **row)

    async def send(self, reply: Reply) -> None:
        """Send a message somewhere else (a group, or a person one-to-one)."""
        await self.uow.outbox.add("reply", reply.conversation_key, reply.payload(), self.now,
                                  source_message_id=self.message.message_id)

    async def card(self, spec: CardSpec) -> None:
        await self.uow.outbox.add("card", spec.conversation_key, spec.payload(), self.now,
                                  source_message_id=self.message.message_id)

    async def audit(self, action: str, result: str, **kw: Any) -> None:
        await self.uow.audit.append(self.corp_id, self.now, actor_id=self.sender.user_id,
                                    action=action, result=result,
                                    message_id=self.message.message_id, **kw)


C = TypeVar("C")
Handler = Callable[[Any, Context], Awaitable[None]]


Prepare = Callable[[Any, "OpenApiClient | None"], Awaitable[Any]]
ClickHandler = Callable[[CardAction, Env], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    admin_only: bool
    prepare: Prepare | None = None
    authority: str | None = None       # "admin" (owner or admin) or "owner"; None: anyone
    reads_only: bool = False           # writes nothing but its replies: no savepoint needed


class CommandRouter:
    """One per handler module; the composition root includes them in order."""

    def __init__(self) -> None:
        self.routes: dict[type[Any], Route] = {}
        self.card_actions: dict[str, ClickHandler] = {}

    def command(self, *types: type[Any], admin_only: bool = False,
                prepare: Any = None, authority: str | None = None, reads_only: bool = False,
                ) -> Callable[[Callable[[C, Context], Awaitable[None]]],
                              Callable[[C, Context], Awaitable[None]]]:
        """Route ``types`` to the handler. ``prepare(cmd, client)`` runs before the
        transaction (directory lookups and other I/O), its result is ``ctx.prepared``.
        ``authority`` ("admin" or "owner") is checked before the handler runs; a sender
        without it is refused with a message naming it, and the refusal is audited."""
        def deco(fn: Callable[[C, Context], Awaitable[None]]) -> Callable[[C, Context], Awaitable[None]]:
            for ty in types:
                if ty in self.routes:
                    raise ValueError(f"{ty.__name__} is already routed")
                self.routes[ty] = Route(fn, admin_only, prepare, authority, reads_only)
            return fn
        return deco

    def card_action(self, kind: str) -> Callable[[ClickHandler], ClickHandler]:
        """Route clicks on cards of ``kind`` to the handler; it returns the ack body."""
        def deco(fn: ClickHandler) -> ClickHandler:
            if kind in self.card_actions:
                raise ValueError(f"card kind {kind} is already routed")
            self.card_actions[kind] = fn
            return fn
        return deco

    def include(self, other: CommandRouter) -> None:
        for ty, route in other.routes.items():
            if ty in self.routes:
                raise ValueError(f"{ty.__name__} is routed twice")
            self.routes[ty] = route
        for kind, fn in other.card_actions.items():
            if kind in self.card_actions:
                raise ValueError(f"card kind {kind} is routed twice")
            self.card_actions[kind] = fn
