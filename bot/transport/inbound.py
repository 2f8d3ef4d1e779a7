"""Plain values for what arrives: the only place that reads DingTalk's inbound JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.core.commands import FileRef

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
CARD_TOPIC = "/v1.0/card/instances/callback"
# Org events (EVENT frames; the subscription is {"type": "EVENT", "topic": "*"}) Baton reads.
USER_LEAVE_ORG = "user_leave_org"
USER_MODIFY_ORG = "user_modify_org"
ORG_ADMIN_ADD = "org_admin_add"
ORG_ADMIN_REMOVE = "org_admin_remove"


class MalformedFrame(ValueError):
    """The frame's data lacks what Baton needs; it is acked and ignored."""


@dataclass(frozen=True)
class IncomingMessage:
    message_id: str            # headers.messageId
    msg_id: str                # data.msgId (the dedupe key when present)
    conversation_id: str
    is_group: bool
    conversation_title: str
    sender_id: str             # senderStaffId: the sender's userId in the corp ("" if none)
    sender_nick: str
    sender_corp_id: str
    text: str
    mentions: tuple[str, ...]  # staffIds of the @-mentioned people, robot excluded, in order;
    #                            "" stands for someone without a staffId (outside the corp)
    msgtype: str
    file: FileRef | None
    session_webhook: str | None
    webhook_expires_at: datetime | None
    from_robot: bool

    @property
    def dedupe_key(self) -> str:
        return f"msg:{self.msg_id}" if self.msg_id else f"hdr:{self.message_id}"

    @property
    def conversation_key(self) -> str:
        return f"group:{self.conversation_id}" if self.is_group else f"user:{self.sender_id}"


@dataclass(frozen=True)
class CardAction:
    message_id: str
    out_track_id: str
    user_id: str               # who clicked: the only identity to trust
    corp_id: str
    action_id: str
    params: dict[str, str]
    space_type: str
    space_id: str

    @property
    def dedupe_key(self) -> str:
        return f"hdr:{self.message_id}"


def _ms(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_robot_message(message_id: str, data: dict[str, Any]) -> IncomingMessage:
    if not isinstance(data, dict) or not data.get("conversationId"):
        raise MalformedFrame("robot message without conversationId")
    msgtype = str(data.get("msgtype") or "")
    text = ""
    if msgtype == "text":
        text = str((data.get("text") or {}).get("content") or "")
    elif msgtype == "richText":
        parts = ((data.get("content") or {}).get("richText")) or []
        text = "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
    file = None
    if msgtype == "file":
        c = data.get("content") or {}
        if c.get("downloadCode"):
            file = FileRef(str(c["downloadCode"]), str(c.get("fileName") or "file"))
    mentions: list[str] = []
    robot_ids = {data.get("chatbotUserId")}
    for u in data.get("atUsers") or []:
        if not isinstance(u, dict) or u.get("dingtalkId") in robot_ids:
            continue
        mentions.append(str(u.get("staffId") or ""))
    sender = str(data.get("senderStaffId") or "")
    from_robot = (
        data.get("senderId") is not None and data.get("senderId") == data.get("chatbotUserId")
    ) or str(data.get("senderPlatform") or "").lower() == "robot" or not sender
    return IncomingMessage(
        message_id=message_id,
        msg_id=str(data.get("msgId") or ""),
        conversation_id=str(data["conversationId"]),
        is_group=str(data.get("conversationType")) == "2",
        conversation_title=str(data.get("conversationTitle") or ""),
        sender_id=sender,
        sender_nick=str(data.get("senderNick") or ""),
        sender_corp_id=str(data.get("senderCorpId") or ""),
        text=text,
        mentions=tuple(mentions),
        msgtype=msgtype,
        file=file,
        session_webhook=str(data["sessionWebhook"]) if data.get("sessionWebhook") else None,
        webhook_expires_at=_ms(data.get("sessionWebhookExpiredTime")),
        from_robot=from_robot,
    )


def parse_card_action(message_id: str, data: dict[str, Any]) -> CardAction:
    if not isinstance(data, dict) or not data.get("outTrackId") or not data.get("userId"):
        raise MalformedFrame("card callback without outTrackId/userId")
    try:
        content = json.loads(data.get("content") or "{}")
    except ValueError:
        raise MalformedFrame("card callback content is not JSON") from None
    private = (content or {}).get("cardPrivateData") or {}
    actions = private.get("actionIds") or []
    params = private.get("params") or {}
    return CardAction(
        message_id=message_id,
        out_track_id=str(data["outTrackId"]),
        user_id=str(data["userId"]),
        corp_id=str(data.get("corpId") or ""),
        action_id=str(actions[0]) if actions else str(params.get("action", "")),
        params={str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {},
        space_type=str(data.get("spaceType") or ""),
        space_id=str(data.get("spaceId") or ""),
    )


@dataclass(frozen=True)
class OrgEvent:
    """A DingTalk org event about some members (``user_leave_org``, ``org_admin_add``...).

    ``event_id`` is DingTalk's id of the event (a redelivery carries the same one);
    ``user_ids`` the members it is about. :meth:`each` splits it into one event per member,
    each handled in a transaction of its own."""

    event_id: str
    event_type: str
    corp_id: str
    born_at: datetime | None
    user_ids: tuple[str, ...]

    def dedupe_key(self) -> str:
        return f"evt:{self.event_id}:{','.join(self.user_ids)}"

    def each(self) -> tuple[OrgEvent, ...]:
        return tuple(OrgEvent(self.event_id, self.event_type, self.corp_id, self.born_at, (u,))
                     for u in self.user_ids)


def _user_ids(data: dict[str, Any]) -> tuple[str, ...]:
    raw: Any = next((data[k] for k in ("userId", "UserId", "userIds", "staffId") if k in data), [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise MalformedFrame("event userId is neither a list nor a string")
    return tuple(dict.fromkeys(str(u) for u in raw if isinstance(u, str | int) and str(u)))


def parse_org_event(headers: dict[str, Any], data: Any) -> OrgEvent:
    """An EVENT frame's headers (``eventId``, ``eventType``, ``eventCorpId``,
    ``eventBornTime``) and decoded ``data`` (``userId``: a list of userIds)."""
    event_id = str(headers.get("eventId") or headers.get("messageId") or "")
    event_type = str(headers.get("eventType") or "")
    if not event_id or not event_type:
        raise MalformedFrame("event without eventId/eventType")
    if not isinstance(data, dict):
        raise MalformedFrame("event data is not an object")
    return OrgEvent(event_id=event_id, event_type=event_type,
                    corp_id=str(headers.get("eventCorpId") or data.get("CorpId") or ""),
                    born_at=_ms(headers.get("eventBornTime")), user_ids=_user_ids(data))
