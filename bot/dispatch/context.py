"""What every handler gets: one typed context, a user-facing error, and a router to register on.

One :class:`Context` serves a command (it then carries the message and its sender), a card
click and a due job (it then carries the job, whose ``transaction()`` opens the unit of
work); request code and notices act through the same ``send``/``card``/``audit``/``names``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from bot.config import Settings
from bot.core.domain.members import ADMIN, OWNER, Sender
from bot.core.domain.requests import Request, Requirement, State
from bot.core.escape import Md, person
from bot.core.faults import Faults
from bot.core.lang import Lang
from bot.core.sends import CardSpec, Reply
from bot.texts.catalog import t
from bot.transport.inbound import CardAction, IncomingMessage, OrgEvent
from bot.transport.openapi import OpenApiClient
from storage.db import Database, UnitOfWork


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
class CommandSource:
    """What only a command has: the message, its sender, what ``prepare`` found, and (for a
    batch of reads) the list its replies are collected in, written with one multi-row INSERT
    when the batch is done (same transaction)."""

    message: IncomingMessage
    sender: Sender
    prepared: Any = None
    replies: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class DueJob:
    """What only due work has: its row, the database, and ``open``, the one transaction for
    the handler's changes and the row's done mark (supplied by the due runner)."""

    row_id: int
    db: Database
    open: Callable[[], AbstractAsyncContextManager[Context]]


class Context:
    """What a command, a card click or a due job acts through.

    ``uow`` is the open unit of work (a due job opens it with ``transaction()``); ``lang``
    is the command's language, else the request's (``for_request``), else the default.
    ``said`` lists the conversations sent to through this context and its ``for_request``
    copies: a command's own confirmation is left out where a notice already said the same.
    """

    __slots__ = ("_command", "_job", "_lang", "_uow", "client", "faults", "message_id", "now",
                 "request_kinds", "said", "settings")

    def __init__(self, uow: UnitOfWork | None, settings: Settings, now: datetime,
                 faults: Faults | None = None, *, lang: Lang | None = None,
                 message_id: str | None = None, command: CommandSource | None = None,
                 job: DueJob | None = None, client: OpenApiClient | None = None,
                 said: list[str] | None = None,
                 request_kinds: RequestKinds | None = None) -> None:
        self._uow, self.settings, self.now = uow, settings, now
        # The request kinds the root router carries (the request engine looks kinds up here).
        self.request_kinds = request_kinds if request_kinds is not None else RequestKinds()
        self.faults = faults if faults is not None else Faults()
        self._lang, self._command, self._job, self.client = lang, command, job, client
        self.message_id = (message_id if message_id is not None or command is None
                           else command.message.message_id)
        self.said: list[str] = said if said is not None else []

    @classmethod
    def for_message(cls, uow: UnitOfWork, settings: Settings, now: datetime, lang: Lang,
                    message: IncomingMessage, sender: Sender, faults: Faults | None = None,
                    prepared: Any = None, replies: list[dict[str, Any]] | None = None,
                    request_kinds: RequestKinds | None = None) -> Context:
        """A command's context: its message, sender and language."""
        return cls(uow, settings, now, faults, lang=lang,
                   command=CommandSource(message, sender, prepared, replies),
                   request_kinds=request_kinds)

    def inside(self, uow: UnitOfWork, now: datetime) -> Context:
        """The same, acting in the unit of work ``uow`` opened at ``now``."""
        return self._copy(uow=uow, now=now)

    def _copy(self, *, uow: UnitOfWork | None = None, now: datetime | None = None,
              lang: Lang | None = None) -> Context:
        return Context(self._uow if uow is None else uow, self.settings,
                       self.now if now is None else now, self.faults,
                       lang=self._lang if lang is None else lang, message_id=self.message_id,
                       command=self._command, job=self._job, client=self.client,
                       said=self.said, request_kinds=self.request_kinds)

    # ---- what every context has ------------------------------------------------------------

    @property
    def uow(self) -> UnitOfWork:
        if self._uow is None:
            raise RuntimeError("no unit of work is open: a due job opens one with transaction()")
        return self._uow

    @property
    def corp_id(self) -> str:
        return self.settings.org.corp_id

    @property
    def lang(self) -> Lang:
        return self._lang or self.settings.locale.lang

    def t(self, key: str, **params: Any) -> Md:
        return t(key, self.lang, **params)

    def for_request(self, req: Request) -> Context:
        """The same, speaking the language the request was made in."""
        lang = req.payload.get("lang")
        if lang in ("zh", "en") and lang != self.lang:
            return self._copy(lang=lang)
        return self

    async def send(self, reply: Reply) -> None:
        """Send a message somewhere (a group, or a person one-to-one)."""
        self.said.append(reply.conversation_key)
        await self.uow.outbox.add("reply", reply.conversation_key, reply.payload(), self.now,
                                  source_message_id=self.message_id)

    async def card(self, spec: CardSpec) -> None:
        await self.uow.outbox.add("card", spec.conversation_key, spec.payload(), self.now,
                                  source_message_id=self.message_id)

    async def audit(self, actor: str, action: str, result: str, **kw: Any) -> None:
        await self.uow.audit.append(self.corp_id, self.now, actor_id=actor, action=action,
                                    result=result, message_id=self.message_id, **kw)

    async def names(self, *user_ids: str) -> dict[str, Md]:
        found = await self.uow.members.names(self.corp_id, set(user_ids))
        # Directory names are user-controlled: escaped once here, for chat and cards alike.
        return {u: person(found.get(u), u) for u in user_ids}

    # ---- a command's ----------------------------------------------------------------------

    def _the_command(self) -> CommandSource:
        if self._command is None:
            raise RuntimeError("not a command's context: it has no message or sender")
        return self._command

    @property
    def message(self) -> IncomingMessage:
        return self._the_command().message

    @property
    def sender(self) -> Sender:
        return self._the_command().sender

    @property
    def prepared(self) -> Any:
        return self._the_command().prepared

    @property
    def is_admin(self) -> bool:
        return self.sender.level in (OWNER, ADMIN)

    async def reply(self, text: str, *, markdown: bool = False, title: str = "Baton",
                    at: tuple[str, ...] = ()) -> None:
        """Answer in the conversation the command came from (through the outbox)."""
        c = self._the_command()
        m = c.message
        r = Reply(text=text, conversation_id=m.conversation_id, is_group=m.is_group,
                  user_id=m.sender_id, markdown=markdown, title=title, at=at)
        row: dict[str, Any] = {
            "kind": "reply", "conversation_key": r.conversation_key, "payload": r.payload(),
            "session_webhook": m.session_webhook, "webhook_expires_at": m.webhook_expires_at,
            "source_message_id": m.message_id}
        if c.replies is not None:
            c.replies.append(row)
            return
        await self.uow.outbox.add(row.pop("kind"), row.pop("conversation_key"),
                                  row.pop("payload"), self.now, **row)

    # ---- a due job's ----------------------------------------------------------------------

    def _the_job(self) -> DueJob:
        if self._job is None:
            raise RuntimeError("not a due job's context")
        return self._job

    @property
    def row_id(self) -> int:
        return self._the_job().row_id

    @property
    def db(self) -> Database:
        return self._the_job().db

    def transaction(self) -> AbstractAsyncContextManager[Context]:
        """One transaction for the job's changes and its row's done mark; yields the
        context with its unit of work open."""
        return self._the_job().open()


class RequestKind(Protocol):
    """A kind of request (owner transfer, grant, import, ...) the request engine runs: its
    requirements, how to apply it and its texts. Registered on a family's router with
    :meth:`CommandRouter.request_kind`."""

    kind: str

    async def requirements(self, req: Request, env: Context) -> tuple[Requirement, ...]: ...

    async def apply(self, req: Request, env: Context) -> None:
        """Make the change; raise to fail (the caller rolls it back and marks FAILED)."""

    async def after(self, req: Request, env: Context, state: State) -> None:
        """Notices and follow-up work once the request reached ``state`` (terminal)."""

    async def describe(self, req: Request, env: Context) -> Md:
        """What the request changes, for its card (markdown; user values escaped)."""

    async def subject(self, req: Request, env: Context) -> str:
        """Who or what the request is about, in a few words, for lists such as ``pending``
        (never empty; user values escaped)."""


RequestAction = Callable[[Request, CardAction, Context], Awaitable[dict[str, Any]]]


@dataclass
class RequestKinds:
    """The request kinds a router carries, by name, and the handlers of clicks on a kind's
    own card copies, by ``"<kind>:<copy>"`` (say, an owner transfer's console card)."""

    kinds: dict[str, RequestKind] = field(default_factory=dict)
    actions: dict[str, RequestAction] = field(default_factory=dict)

    def kind(self, name: str) -> RequestKind:
        return self.kinds[name]


C = TypeVar("C")
Handler = Callable[[Any, Context], Awaitable[None]]


Prepare = Callable[..., Awaitable[Any]]   # (cmd, client) or, with prepare_settings, (cmd, client, settings)
PrepareSender = Callable[[Any, OpenApiClient | None, str], Awaitable[Any]]
ClickHandler = Callable[[CardAction, Context], Awaitable[dict[str, Any]]]
DueHandler = Callable[[dict[str, Any], Context], Awaitable[None]]
EventHandler = Callable[[OrgEvent, Any, Context], Awaitable[None]]
EventPrepare = Callable[[OrgEvent, OpenApiClient | None], Awaitable[Any]]


@dataclass(frozen=True)
class EventRoute:
    """An org event's handler: ``handler(event, prepared, ctx)``, where ``prepared`` is what
    ``prepare(event, client)`` found before the transaction (directory lookups)."""

    handler: EventHandler
    prepare: EventPrepare | None = None


@dataclass(frozen=True)
class Route:
    handler: Handler
    admin_only: bool
    prepare: Prepare | None = None
    authority: str | None = None       # "admin" (owner or admin) or "owner"; None: anyone
    reads_only: bool = False           # writes nothing but its replies: no savepoint needed
    prepare_sender: PrepareSender | None = None   # as prepare, also told who sent it
    prepare_settings: bool = False     # prepare(cmd, client, settings): it needs the config


class CommandRouter:
    """One per handler module; the composition root includes them in order."""

    def __init__(self) -> None:
        self.routes: dict[type[Any], Route] = {}
        self.card_actions: dict[str, ClickHandler] = {}
        self.dues: dict[str, DueHandler] = {}
        self.events: dict[str, EventRoute] = {}
        self.requests = RequestKinds()

    def command(self, *types: type[Any], admin_only: bool = False,
                prepare: Any = None, authority: str | None = None, reads_only: bool = False,
                prepare_sender: Any = None, prepare_settings: bool = False,
                ) -> Callable[[Callable[[C, Context], Awaitable[None]]],
                              Callable[[C, Context], Awaitable[None]]]:
        """Route ``types`` to the handler. ``prepare(cmd, client)`` runs before the
        transaction (directory lookups and other I/O), its result is ``ctx.prepared``
        (``prepare(cmd, client, settings)`` with ``prepare_settings``).
        ``authority`` ("admin" or "owner") is checked before the handler runs; a sender
        without it is refused with a message naming it, and the refusal is audited.
        ``prepare_sender(cmd, client, sender_id)`` is ``prepare`` for lookups about the
        sender (their manager and department heads)."""
        def deco(fn: Callable[[C, Context], Awaitable[None]]) -> Callable[[C, Context], Awaitable[None]]:
            for ty in types:
                if ty in self.routes:
                    raise ValueError(f"{ty.__name__} is already routed")
                self.routes[ty] = Route(fn, admin_only, prepare, authority, reads_only,
                                        prepare_sender, prepare_settings)
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

    def due(self, kind: str) -> Callable[[DueHandler], DueHandler]:
        """Run due work of ``kind`` with the handler (``handler(payload, ctx)``; it opens the
        job's transaction with ``ctx.transaction()``)."""
        def deco(fn: DueHandler) -> DueHandler:
            if kind in self.dues:
                raise ValueError(f"due kind {kind} is already routed")
            self.dues[kind] = fn
            return fn
        return deco

    def event(self, event_type: str, *, prepare: EventPrepare | None = None,
              ) -> Callable[[EventHandler], EventHandler]:
        """Route DingTalk org events of ``event_type`` (``user_leave_org``...) to the
        handler, once per member the event names, each in a transaction of its own that
        also records the event (a redelivered event changes nothing twice)."""
        def deco(fn: EventHandler) -> EventHandler:
            if event_type in self.events:
                raise ValueError(f"event {event_type} is already routed")
            self.events[event_type] = EventRoute(fn, prepare)
            return fn
        return deco

    def request_kind(self, kind: RequestKind) -> RequestKind:
        """Carry the request kind ``kind`` (the request engine finds it by ``kind.kind``)."""
        if kind.kind in self.requests.kinds:
            raise ValueError(f"request kind {kind.kind} is already registered")
        self.requests.kinds[kind.kind] = kind
        return kind

    def request_action(self, kind: str, copy: str) -> Callable[[RequestAction], RequestAction]:
        """Route clicks on the ``copy`` card of a request of ``kind`` (a card of the kind's
        own, not a vote) to the handler; it returns the ack body."""
        def deco(fn: RequestAction) -> RequestAction:
            key = f"{kind}:{copy}"
            if key in self.requests.actions:
                raise ValueError(f"request card {key} is already routed")
            self.requests.actions[key] = fn
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
        for kind, due in other.dues.items():
            if kind in self.dues:
                raise ValueError(f"due kind {kind} is routed twice")
            self.dues[kind] = due
        for event_type, event_route in other.events.items():
            if event_type in self.events:
                raise ValueError(f"event {event_type} is routed twice")
            self.events[event_type] = event_route
        for name, request_kind in other.requests.kinds.items():
            if name in self.requests.kinds:
                raise ValueError(f"request kind {name} is registered twice")
            self.requests.kinds[name] = request_kind
        for key, action in other.requests.actions.items():
            if key in self.requests.actions:
                raise ValueError(f"request card {key} is routed twice")
            self.requests.actions[key] = action
