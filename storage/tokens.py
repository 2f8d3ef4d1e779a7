"""Decision API tokens (as hashes) and the one-row freshness read the API makes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.core.domain.tokens import TokenView
from storage.models import ApiToken, FeedHead
from storage.repositories import built_once


def _view(r: ApiToken) -> TokenView:
    return TokenView(r.id, r.corp_id, r.name, r.scope, r.created_by, r.created_at, r.revoked_at)


class TokenRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def create(self, corp_id: str, name: str, scope: str, token_hash: str, *, by: str,
                     now: datetime) -> TokenView | None:
        """A new token; None when an active token of that name exists already."""
        if await self.active(corp_id, name) is not None:
            return None
        row = ApiToken(corp_id=corp_id, name=name, scope=scope, token_hash=token_hash,
                       created_by=by, created_at=now)
        self.s.add(row)
        await self.s.flush()
        return _view(row)

    async def active(self, corp_id: str, name: str) -> TokenView | None:
        row = (await self.s.execute(
            select(ApiToken).where(ApiToken.corp_id == corp_id, ApiToken.name == name,
                                   ApiToken.revoked_at.is_(None)))).scalar_one_or_none()
        return None if row is None else _view(row)

    async def all(self, corp_id: str) -> list[TokenView]:
        rows = (await self.s.execute(
            select(ApiToken).where(ApiToken.corp_id == corp_id)
            .order_by(ApiToken.name, ApiToken.created_at))).scalars()
        return [_view(r) for r in rows]

    async def revoke(self, corp_id: str, name: str, now: datetime) -> TokenView | None:
        """Revoke the active token ``name`` (None: there is none)."""
        row = (await self.s.execute(
            select(ApiToken).where(ApiToken.corp_id == corp_id, ApiToken.name == name,
                                   ApiToken.revoked_at.is_(None)).with_for_update()
        )).scalar_one_or_none()
        if row is None:
            return None
        row.revoked_at = now
        await self.s.flush()
        return _view(row)

    async def by_hash(self, token_hash: str) -> TokenView | None:
        row = (await self.s.execute(
            select(ApiToken).where(ApiToken.token_hash == token_hash))).scalar_one_or_none()
        return None if row is None else _view(row)

    async def freshness(self) -> tuple[int, int]:
        """(the feed's committed head, the token epoch) in one round trip (see
        :func:`freshness`)."""
        return await freshness(self.s)


def _freshness() -> Any:
    head = select(FeedHead.seq).where(FeedHead.id == 1).scalar_subquery()
    epoch = (select(func.count()).select_from(ApiToken)
             .where(ApiToken.revoked_at.is_not(None)).scalar_subquery())
    return select(head, epoch)


async def freshness(conn: AsyncSession | AsyncConnection) -> tuple[int, int]:
    """(the feed's committed head, the token epoch) in one statement. The epoch is the
    number of revoked tokens: it only grows, and grows with every revoke, so a cache of
    verified tokens stamped with it knows when to look again. ``conn`` may be a read-only
    connection in autocommit (:meth:`storage.db.Database.reader`): one round trip, no
    transaction, no SQLite write lock."""
    got = (await conn.execute(built_once(("freshness",), _freshness))).one()
    return int(got[0] or 0), int(got[1] or 0)
