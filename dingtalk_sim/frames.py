"""Builders for the frames the simulated gateway pushes (stream protocol §1.4, §2, §5.6)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dingtalk_sim.model import SimUser
from dingtalk_sim.state import SimState

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
TOPIC_ROBOT = "/v1.0/im/bot/messages/get"
TOPIC_CARD = "/v1.0/card/instances/callback"
TOPIC_PING = "ping"
TOPIC_DISCONNECT = "disconnect"
OTO_PREFIX = "cidOTO"


def oto_conversation(user_id: str) -> str:
    return f"{OTO_PREFIX}{user_id}"


def frame(
    state: SimState, kind: str, topic: str, data: Mapping[str, Any], *, message_id: str | None
) -> dict[str, Any]:
    """A server frame; ``connectionId`` is filled in when it is written to a socket."""
    headers: dict[str, str] = {
        "contentType": CONTENT_TYPE,
        "messageId": message_id or state.new_message_id(),
        "time": str(state.now_ms()),
        "topic": topic,
    }
    if kind != "SYSTEM":
        headers["appId"] = state.app_id
    return {
        "specVersion": SPEC_VERSION,
        "type": kind,
        "headers": headers,
        "data": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
    }


def event_frame(
    state: SimState, event_type: str, data: Mapping[str, Any], *, event_id: str | None = None
) -> dict[str, Any]:
    """An EVENT frame (an org event such as ``user_leave_org``): the headers carry the
    event's id, type, corp and birth time; a redelivery keeps them all."""
    out = frame(state, "EVENT", event_type, data, message_id=None)
    out["headers"].update(
        {
            "eventId": event_id or state.hex(32),
            "eventType": event_type,
            "eventCorpId": state.corp_id,
            "eventBornTime": str(state.now_ms()),
            "eventUnifiedAppId": state.app_id,
        }
    )
    return out


def org_event_data(state: SimState, user_ids: Sequence[str]) -> dict[str, Any]:
    """The ``data`` of a contact or admin event: the members it is about."""
    return {"userId": list(user_ids), "timeStamp": str(state.now_ms()), "corpId": state.corp_id}


def _robot_common(
    state: SimState, conversation_id: str, conversation_type: str, msg_id: str | None
) -> dict[str, Any]:
    session, expires = state.new_session(conversation_id, conversation_type)
    now = state.now_ms()
    data: dict[str, Any] = {
        "conversationId": conversation_id,
        "conversationType": conversation_type,
        "chatbotCorpId": state.corp_id,
        "chatbotUserId": state.lwcp(f"robot:{state.client_id}"),
        "robotCode": state.client_id,
        "msgId": msg_id or state.new_msg_id(),
        "createAt": now,
        "sessionWebhook": f"{state.base_url}/robot/sendBySession?session={session}",
        "sessionWebhookExpiredTime": int(expires * 1000),
    }
    if conversation_type == "2":
        with state.lock:
            group = state.groups.get(conversation_id)
        data["conversationTitle"] = group.title if group else conversation_id
        data["openThreadId"] = conversation_id
    return data


def _sender(state: SimState, user: SimUser) -> dict[str, Any]:
    sender: dict[str, Any] = {
        "senderNick": user.name,
        "senderId": state.lwcp(f"user:{user.user_id}"),
        "senderPlatform": "Win",
        "isAdmin": user.admin_level > 0 and user.in_corp,
    }
    if user.in_corp:
        sender["senderStaffId"] = user.user_id
        sender["senderCorpId"] = state.corp_id
    return sender


def _group_mentions(state: SimState, at: Sequence[str]) -> list[dict[str, str]]:
    mentions = [{"dingtalkId": state.lwcp(f"robot:{state.client_id}")}]
    for user_id in at:
        user = state.user(user_id)
        entry = {"dingtalkId": state.lwcp(f"user:{user_id}")}
        if user.in_corp:
            entry["staffId"] = user_id
        mentions.append(entry)
    return mentions


def conversation_type(state: SimState, conversation_id: str) -> str:
    with state.lock:
        if conversation_id in state.groups:
            return "2"
    if conversation_id.startswith(OTO_PREFIX):
        return "1"
    raise KeyError(f"simulator: unknown conversation {conversation_id!r}")


def robot_text(
    state: SimState,
    user_id: str,
    text: str,
    *,
    conversation_id: str | None,
    at: Sequence[str],
    msg_id: str | None,
) -> dict[str, Any]:
    user = state.user(user_id)
    conv = conversation_id or oto_conversation(user_id)
    ctype = conversation_type(state, conv)
    data = _robot_common(state, conv, ctype, msg_id)
    data.update(_sender(state, user))
    data["msgtype"] = "text"
    if ctype == "2":
        data["atUsers"] = _group_mentions(state, at)
        data["isInAtList"] = True
        data["text"] = {"content": " " + text}  # the robot's own @-mention is cut out
    else:
        data["text"] = {"content": text}
    return data


def robot_file(
    state: SimState,
    user_id: str,
    file_name: str,
    download_code: str,
    msg_id: str | None,
    conversation_id: str | None = None,
) -> dict[str, Any]:
    user = state.user(user_id)
    conv = conversation_id or oto_conversation(user_id)
    data = _robot_common(state, conv, conversation_type(state, conv), msg_id)
    data.update(_sender(state, user))
    data["msgtype"] = "file"
    data["content"] = {
        "downloadCode": download_code,
        "fileName": file_name,
        "spaceId": str(state.rng_int(10**10, 10**11)),
        "fileId": str(state.rng_int(10**11, 10**12)),
    }
    return data


def robot_from_robot(state: SimState, conversation_id: str, text: str) -> dict[str, Any]:
    ctype = conversation_type(state, conversation_id)
    data = _robot_common(state, conversation_id, ctype, None)
    data.update(
        {
            "senderNick": "其他机器人",
            "senderId": state.lwcp(f"robot:other:{conversation_id}"),
            "senderPlatform": "robot",
            "isAdmin": False,
            "msgtype": "text",
        }
    )
    if ctype == "2":
        data["atUsers"] = _group_mentions(state, ())
        data["isInAtList"] = True
        data["text"] = {"content": " " + text}
    else:
        data["text"] = {"content": text}
    return data


def card_click(
    state: SimState,
    user_id: str,
    out_track_id: str,
    action_id: str,
    params: Mapping[str, str] | None,
) -> dict[str, Any]:
    space_type, space = "IM_ROBOT", user_id
    extension = "{}"
    with state.lock:
        card = state.cards.get(out_track_id)
        if card is not None:
            spaces = [s.split("//", 1)[1].split(".", 1) for s in card.spaces]
            chosen = next((s for s in spaces if s[0] == "IM_GROUP"), spaces[0] if spaces else None)
            if chosen is not None:
                space_type, space = chosen[0], chosen[1]
            if card.extension:
                extension = json.dumps(card.extension, ensure_ascii=False)
    content = {"cardPrivateData": {"actionIds": [action_id], "params": dict(params or {})}}
    return {
        "type": "actionCallback",
        "outTrackId": out_track_id,
        "corpId": state.corp_id,
        "userId": user_id,
        "userIdType": 1,
        "spaceType": space_type,
        "spaceId": space,
        "extension": extension,
        "content": json.dumps(content, ensure_ascii=False, separators=(",", ":")),
    }
