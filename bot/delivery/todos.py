"""DingTalk to-dos (待办) for request approvers, delivered from the outbox (kind ``todo``).

A row ``{"op": "create" | "done", "request_id", "user_id", ...}`` is written by the request's
own transaction; this deliverer does the calls, with the outbox's retries. The approver's
unionId is looked up once (``user/get``) and kept. A ``done`` that arrives before its
``create`` (the request ended first, or the create is still retrying) records the to-do as
done, so the create then makes nothing; a request that ends while its to-do is being
created gets it closed at once. Failures never touch the request or its card.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from bot.ports import BadRequest, Directory, Todos
from storage.db import Database

log = logging.getLogger(__name__)

KIND = "todo"


class TodoClient(Todos, Directory, Protocol):
    """The to-do calls and the directory lookup of a unionId (the OpenAPI client is both)."""


def todo_key(user_id: str) -> str:
    """One outbox conversation per approver: their create and done go out in order."""
    return f"todo:{user_id}"


async def _union_id(db: Database, client: TodoClient, corp_id: str, user_id: str) -> str:
    async with db.uow() as uow:
        kept = await uow.todos.union_id(corp_id, user_id)
    if kept:
        return kept
    found = str((await client.user_get(user_id)).get("unionid") or "")
    if not found:
        raise BadRequest("/topapi/v2/user/get", 200, "noUnionId",
                         f"the directory gives no unionId for {user_id}")
    async with db.uow() as uow:
        await uow.todos.keep_union_id(corp_id, user_id, found)
        await uow.commit()
    return found


async def send_todo(db: Database, client: TodoClient, corp_id: str, p: dict[str, Any]) -> None:
    request_id, user = int(p["request_id"]), str(p["user_id"])
    if p["op"] == "create":
        async with db.uow() as uow:
            if await uow.todos.find(request_id, user) is not None:
                return          # created before (a resend), or the request ended first
        union = await _union_id(db, client, corp_id, user)
        task = await client.create_todo(union, str(p["subject"]), str(p.get("description", "")),
                                        str(p.get("source_id", "")))
        async with db.uow() as uow:
            now = await uow.todos.find(request_id, user)
            ended = now is not None and now.state == "done"
            await uow.todos.record(request_id, user, task_id=task,
                                   state="done" if ended else "open")
            await uow.commit()
        if ended:
            await client.complete_todo(union, task)
        return
    async with db.uow() as uow:
        todo = await uow.todos.find(request_id, user)
        if todo is None or todo.task_id is None:
            await uow.todos.record(request_id, user, state="done")
            await uow.commit()
            return
        if todo.state == "done":
            return
    union = await _union_id(db, client, corp_id, user)
    await client.complete_todo(union, todo.task_id)
    async with db.uow() as uow:
        await uow.todos.record(request_id, user, state="done")
        await uow.commit()
