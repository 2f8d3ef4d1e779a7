"""DingTalk message bodies: plain values in, the JSON DingTalk receives out.

The outbox, the dispatcher's direct replies and the export delivery say what to send (a
text, a markdown text with its title, a file); only this module knows how DingTalk spells
it. Interactive-card bodies are in :mod:`bot.transport.cards`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any


def webhook_message(text: str, *, markdown: bool = False, title: str = "Baton",
                    at: Sequence[str] = ()) -> dict[str, Any]:
    """The body of a reply through a conversation's ``sessionWebhook``; ``at`` names the
    people it mentions."""
    body: dict[str, Any]
    if markdown:
        body = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    else:
        body = {"msgtype": "text", "text": {"content": text}}
    if at:
        body["at"] = {"atUserIds": list(at), "isAtAll": False}
    return body


def robot_message(text: str, *, markdown: bool = False,
                  title: str = "Baton") -> tuple[str, dict[str, Any]]:
    """``msgKey`` and ``msgParam`` of a robot message (group or one-to-one send API)."""
    if markdown:
        return "sampleMarkdown", {"title": title, "text": text}
    return "sampleText", {"content": text}


def file_message(media_id: str, file_name: str) -> tuple[str, dict[str, Any]]:
    """``msgKey`` and ``msgParam`` of an uploaded file sent by the robot; its type is the
    name's extension."""
    return "sampleFile", {"mediaId": media_id, "fileName": file_name,
                          "fileType": file_name.rsplit(".", 1)[-1]}


def card_update(out_track_id: str, params: Mapping[str, str],
                private: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """``PUT /v1.0/card/instances``: new public params, and per-user private ones."""
    body: dict[str, Any] = {
        "outTrackId": out_track_id,
        "cardData": {"cardParamMap": dict(params)},
        "cardUpdateOptions": {"updateCardDataByKey": True, "updatePrivateDataByKey": True},
        "userIdType": 1,
    }
    if private:
        body["privateData"] = {u: {"cardParamMap": dict(p)} for u, p in private.items()}
    return body


def role_emps(role_ids: Sequence[int], user_ids: Sequence[str]) -> dict[str, str]:
    """``topapi/role/addrolesforemps`` / ``removerolesforemps``: comma-separated strings of at
    most 20 role ids and 20 user ids (every role is applied to every user)."""
    if not role_ids or not user_ids or len(role_ids) > 20 or len(user_ids) > 20:
        raise ValueError(f"a role call takes 1 to 20 roles and users, not {len(role_ids)} "
                         f"and {len(user_ids)}")
    return {"roleIds": ",".join(str(r) for r in role_ids), "userIds": ",".join(user_ids)}


def page(size: int, offset: int, **more: Any) -> dict[str, Any]:
    """A legacy paged read (``topapi/role/list``, ``topapi/role/simplelist``)."""
    return {**more, "size": size, "offset": offset}
def todo_create(subject: str, description: str, source_id: str,
                executor_union_id: str) -> dict[str, Any]:
    """``POST /v1.0/todo/users/{unionId}/tasks``: a to-do in the executor's own list."""
    return {"sourceId": source_id, "subject": subject[:200], "description": description[:1000],
            "executorIds": [executor_union_id], "participantIds": [executor_union_id],
            "isOnlyShowExecutor": True, "priority": 20, "notifyConfigs": {"dingNotify": "1"}}


def todo_done() -> dict[str, Any]:
    """``PUT /v1.0/todo/users/{unionId}/tasks/{taskId}``: mark it done."""
    return {"done": True}


class MessageSends(ABC):
    """The Messenger port's message methods, composed once from the three raw send calls
    and the bodies above: the OpenAPI client and the handler tests' fake DingTalk share it,
    so both send exactly the same bodies."""

    @abstractmethod
    async def send_webhook(self, url: str, body: Mapping[str, Any]) -> None: ...

    @abstractmethod
    async def group_send(self, conversation_id: str, msg_key: str,
                         msg_param: Mapping[str, Any]) -> str: ...

    @abstractmethod
    async def oto_send(self, user_ids: list[str], msg_key: str,
                       msg_param: Mapping[str, Any]) -> dict[str, Any]: ...

    async def send_by_webhook(self, url: str, text: str, *, markdown: bool = False,
                              title: str = "Baton", at: Sequence[str] = ()) -> None:
        await self.send_webhook(url, webhook_message(text, markdown=markdown, title=title, at=at))

    async def send_to_group(self, conversation_id: str, text: str, *, markdown: bool = False,
                            title: str = "Baton") -> None:
        await self.group_send(conversation_id, *robot_message(text, markdown=markdown,
                                                              title=title))

    async def send_to_user(self, user_id: str, text: str, *, markdown: bool = False,
                           title: str = "Baton") -> bool:
        """One-to-one; False when DingTalk took the call but flow-controlled the person."""
        res = await self.oto_send([user_id], *robot_message(text, markdown=markdown, title=title))
        return user_id not in (res.get("flowControlledStaffIdList") or [])

    async def send_file(self, user_id: str, media_id: str, file_name: str) -> None:
        await self.oto_send([user_id], *file_message(media_id, file_name))
