"""Where each member is in their last long answer, per conversation (``next`` reads it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.paging import Cursor
from storage.models import PagedAnswer
from storage.repositories import _insert


class PagingRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def remember(self, corp_id: str, conversation_key: str, user_id: str,
                       cursor: Cursor, now: datetime) -> None:
        """Make ``cursor`` the member's last long answer in the conversation (one row each,
        replaced in place: an upsert, so two replicas answering at once keep one)."""
        values = {"kind": cursor.kind, "args": dict(cursor.args), "page": cursor.page,
                  "updated_at": now}
        stmt = _insert(self.s, PagedAnswer).values(
            corp_id=corp_id, conversation_key=conversation_key, user_id=user_id, **values)
        await self.s.execute(stmt.on_conflict_do_update(
            index_elements=["corp_id", "conversation_key", "user_id"], set_=values))

    async def last(self, corp_id: str, conversation_key: str, user_id: str) -> Cursor | None:
        row = (await self.s.execute(
            select(PagedAnswer.kind, PagedAnswer.args, PagedAnswer.page).where(
                PagedAnswer.corp_id == corp_id, PagedAnswer.conversation_key == conversation_key,
                PagedAnswer.user_id == user_id)
        )).first()
        return None if row is None else Cursor(row.kind, dict(row.args), int(row.page))
