"""DingTalk to-dos of request approvers, and the unionIds the to-do API needs (kept once
looked up). Only the outbox's to-do deliverer writes here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import TodoTask, UnionId


@dataclass(frozen=True)
class Todo:
    request_id: int
    user_id: str
    task_id: str | None
    state: str


class TodoRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def union_id(self, corp_id: str, user_id: str) -> str | None:
        row = await self.s.get(UnionId, (corp_id, user_id))
        return row.union_id if row else None

    async def keep_union_id(self, corp_id: str, user_id: str, union_id: str) -> None:
        row = await self.s.get(UnionId, (corp_id, user_id))
        if row is None:
            self.s.add(UnionId(corp_id=corp_id, user_id=user_id, union_id=union_id))
        else:
            row.union_id = union_id
        await self.s.flush()

    async def find(self, request_id: int, user_id: str) -> Todo | None:
        row = (await self.s.execute(
            select(TodoTask).where(TodoTask.request_id == request_id, TodoTask.user_id == user_id)
            .with_for_update())).scalar_one_or_none()
        return Todo(row.request_id, row.user_id, row.task_id, row.state) if row else None

    async def record(self, request_id: int, user_id: str, *, task_id: str | None = None,
                     state: str = "open") -> None:
        row = await self.s.get(TodoTask, (request_id, user_id))
        if row is None:
            self.s.add(TodoTask(request_id=request_id, user_id=user_id, task_id=task_id,
                                state=state))
        else:
            row.task_id = task_id if task_id is not None else row.task_id
            row.state = state
        await self.s.flush()
