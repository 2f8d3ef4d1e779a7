"""The ports: what the application needs from the world, as Protocols.

Delivery, handlers and the request engine name these instead of the classes that implement
them, so they need not import an HTTP client or a database session. The implementations:
``bot.transport.openapi.OpenApiClient`` is the :class:`Messenger` and the
:class:`Directory`, ``storage.db.UnitOfWork`` the :class:`UnitOfWork`,
``bot.core.clock.SystemClock`` (or ``FakeClock``) the :class:`Clock`; ``bot/app.py`` makes
mypy check that they fit.

A port's failures are the typed errors below (DingTalk's answers mapped to them in
``bot.transport.openapi`` and nowhere else).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from bot.core.clock import Clock
from bot.core.domain.rolesync import RoleGroupInfo

__all__ = [
    "CARD_EXISTS", "CARD_MISSING", "AuthError", "BadRequest", "Clock", "DingTalkError",
    "Directory", "Messenger", "NotFound", "PermissionDenied", "RateLimited", "Roles",
    "ServerError", "SessionExpired", "Todos", "TransportError", "UnitOfWork", "WebhookFailed",
    "Webhooks",
]


# ---- what a DingTalk call can fail with ----------------------------------------------------

class DingTalkError(Exception):
    """An OpenAPI call failed; ``retryable`` says whether trying later may help."""

    retryable = False

    def __init__(self, api: str, status: int, code: str, message: str, request_id: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(f"{api}: HTTP {status} {code}: {message}")
        self.api, self.status, self.code, self.message = api, status, code, message
        self.request_id, self.retry_after = request_id, retry_after


class RateLimited(DingTalkError):
    retryable = True


class ServerError(DingTalkError):
    retryable = True


class TransportError(DingTalkError):
    retryable = True


class AuthError(DingTalkError):
    """The credentials or the token were refused (after one refresh)."""


class PermissionDenied(DingTalkError):
    """The app lacks a permission (scope); the operator must grant it in the console."""


class SessionExpired(DingTalkError):
    """A sessionWebhook is past its life (errcode 300001); use the robot send API instead."""


class NotFound(DingTalkError):
    pass


class BadRequest(DingTalkError):
    pass


# DingTalk's codes (``DingTalkError.code``) for a card's outTrackId, which the outbox acts on.
CARD_EXISTS = "param.outTrackIdDuplicate"   # createAndDeliver with an outTrackId in use
CARD_MISSING = "param.outTrackIdNotExist"   # an update of a card not (yet) created


# ---- the ports -----------------------------------------------------------------------------

@runtime_checkable
class Messenger(Protocol):
    """Sends what Baton says: texts and markdown (through a conversation's sessionWebhook, to
    a group, to one person), files, interactive cards; and fetches a file a user sent."""

    async def send_by_webhook(self, url: str, text: str, *, markdown: bool = False,
                              title: str = "Baton", at: Sequence[str] = ()) -> None:
        """Reply through a sessionWebhook; :class:`SessionExpired` once it is past its life."""

    async def send_to_group(self, conversation_id: str, text: str, *, markdown: bool = False,
                            title: str = "Baton") -> None: ...

    async def send_to_user(self, user_id: str, text: str, *, markdown: bool = False,
                           title: str = "Baton") -> bool:
        """One-to-one; False when DingTalk took the call but flow-controlled the person."""
        ...

    async def send_file(self, user_id: str, media_id: str, file_name: str) -> None:
        """An uploaded file (:meth:`upload_media`), one-to-one."""

    async def upload_media(self, content: bytes, file_name: str,
                           media_type: str = "file") -> str: ...

    async def create_and_deliver_card(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A card rendered by ``bot.transport.cards.create_and_deliver_body``."""
        ...

    async def update_card(self, out_track_id: str, params: Mapping[str, str],
                          private: Mapping[str, Mapping[str, str]] | None = None) -> None: ...

    async def download_file(self, download_code: str) -> bytes: ...


@runtime_checkable
class Todos(Protocol):
    """DingTalk to-dos (待办), for the approvers of a request (``integrations.dingtalk_todo``);
    a port of its own, so a messenger without them still is one."""

    async def create_todo(self, union_id: str, subject: str, description: str,
                          source_id: str) -> str:
        """A to-do in ``union_id``'s list; its task id."""
        ...

    async def complete_todo(self, union_id: str, task_id: str) -> None:
        """Mark a to-do done."""


@runtime_checkable
class Directory(Protocol):
    """The organisation's people and departments (DingTalk's contacts, as it answers them)."""

    async def user_get(self, user_id: str) -> dict[str, Any]: ...

    async def list_admins(self) -> list[dict[str, Any]]: ...

    async def dept_get(self, dept_id: int) -> dict[str, Any]: ...

    async def dept_children(self, dept_id: int) -> list[dict[str, Any]]: ...

    async def dept_user_ids(self, dept_id: int) -> list[str]: ...


class WebhookFailed(Exception):
    """A webhook POST did not get a 2xx: ``status`` is the answer's (None: no answer at all,
    e.g. a timeout or a refused connection)."""

    def __init__(self, status: int | None, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}" if status is not None else reason)
        self.status, self.reason = status, reason


@runtime_checkable
class Webhooks(Protocol):
    """POSTs change events to subscribers' URLs (``bot.transport.webhooks.HttpWebhooks``)."""

    async def post_event(self, url: str, secret: str, event: Mapping[str, Any], *,
                         sent_at: int, timeout: float) -> None:
        """POST ``event`` (a ``ChangeEvent.as_json()``) signed with ``secret`` at unix time
        ``sent_at``; returns on a 2xx, else raises :class:`WebhookFailed`."""


@runtime_checkable
class Roles(Protocol):
    """DingTalk's role labels (通讯录角色): groups of roles, and who carries each. Every page
    of a paged read is fetched; ids are DingTalk's."""

    async def role_groups(self) -> list[RoleGroupInfo]: ...

    async def add_role_group(self, name: str) -> int: ...

    async def add_role(self, group_id: int, name: str) -> int: ...

    async def role_members(self, role_id: int) -> list[str]: ...

    async def add_roles_for_users(self, role_ids: Sequence[int],
                                  user_ids: Sequence[str]) -> None:
        """At most 20 of each; every role to every user."""

    async def remove_roles_for_users(self, role_ids: Sequence[int],
                                     user_ids: Sequence[str]) -> None: ...


@runtime_checkable
class UnitOfWork(Protocol):
    """One transaction, rolled back unless committed (its repositories are storage's)."""

    @property
    def dialect(self) -> str: ...

    async def serialise(self, name: str) -> None: ...

    def after_commit(self, fn: Callable[[], None]) -> None: ...

    async def commit(self) -> None: ...
