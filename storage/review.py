"""Access review campaigns in the store: the request row (state, deadline), its reviewers'
cards and its items, handed out as :class:`bot.core.domain.review.Campaign` values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.domain.requests import State
from bot.core.domain.review import BREAK_GLASS, REVIEW, Campaign, LiveGrant, ReviewItem
from storage.models import DueWork, Grant, Request
from storage.models import ReviewCard as CardRow
from storage.models import ReviewItem as ItemRow


class ReviewRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def live_grants(self, corp_id: str, now: datetime) -> list[LiveGrant]:
        """The corp's live grants, each tagged with the break-glass request it came from."""
        rows = (await self.s.execute(
            select(Grant, Request.kind).outerjoin(Request, Grant.request_id == Request.id)
            .where(Grant.corp_id == corp_id))).all()
        return [LiveGrant(g.id, g.user_id, g.name, g.granted_by, g.expires_at,
                          g.request_id if kind == BREAK_GLASS else None) for g, kind in rows
                if g.expires_at is None or g.expires_at > now]

    async def start(self, corp_id: str, *, requester: str, admins: Sequence[str],
                    items: Sequence[ReviewItem], lang: str, now: datetime, deadline: datetime,
                    message_id: str | None) -> Campaign:
        """A new open campaign: its request row, one card per reviewer, its items."""
        req = Request(corp_id=corp_id, kind=REVIEW, state=State.PENDING.value,
                      requester_id=requester, target_id=None, conversation_id="",
                      payload={"is_group": False, "lang": lang}, created_at=now,
                      expires_at=deadline, source_message_id=message_id)
        self.s.add(req)
        await self.s.flush()
        self.s.add_all([CardRow(request_id=req.id, n=n, admin_id=a) for n, a in enumerate(admins)])
        self.s.add_all([ItemRow(request_id=req.id, i=it.i, grant_id=it.grant_id,
                                user_id=it.user, name=it.name, granted_by=it.granted_by,
                                expires_at=it.expires_at, admin_id=it.admin,
                                break_glass=it.break_glass) for it in items])
        await self.s.flush()
        found = await self.campaign(req.id)
        assert found is not None
        return found

    async def campaign(self, request_id: int) -> Campaign | None:
        req = await self.s.get(Request, request_id)
        if req is None or req.kind != REVIEW:
            return None
        return await self._of(req)

    async def open_in(self, corp_id: str) -> Campaign | None:
        """The corp's open campaign (at most one is open at a time)."""
        req = (await self.s.execute(
            select(Request).where(Request.corp_id == corp_id, Request.kind == REVIEW,
                                  Request.state == State.PENDING.value)
            .order_by(Request.id.desc()).limit(1))).scalar_one_or_none()
        return await self._of(req) if req is not None else None

    async def latest_in(self, corp_id: str) -> Campaign | None:
        req = (await self.s.execute(
            select(Request).where(Request.corp_id == corp_id, Request.kind == REVIEW)
            .order_by(Request.id.desc()).limit(1))).scalar_one_or_none()
        return await self._of(req) if req is not None else None

    async def record(self, campaign_id: int, decided: Iterable[ReviewItem]) -> None:
        """Write these items' decisions (one change of the campaign)."""
        await self._write(campaign_id, decided)
        req = await self.s.get(Request, campaign_id)
        assert req is not None
        req.version += 1
        await self.s.flush()

    async def close(self, campaign_id: int, decided: Iterable[ReviewItem], now: datetime
                    ) -> Campaign:
        """Write the last decisions and close the campaign (APPLIED)."""
        await self._write(campaign_id, decided)
        req = await self.s.get(Request, campaign_id)
        assert req is not None
        req.state = State.APPLIED.value
        req.decided_at = now
        req.version += 1
        await self.s.flush()
        return await self._of(req)

    async def revoke(self, item: ReviewItem) -> dict[str, Any] | None:
        """Delete the item's grant if it still is the one reviewed; its state before (for the
        audit trail), or None when it is gone."""
        row = await self.s.get(Grant, item.grant_id)
        if row is None or row.user_id != item.user or row.name != item.name:
            return None
        before = {"name": row.name, "expires_at": row.expires_at.isoformat() if row.expires_at
                  else None, "granted_by": row.granted_by}
        await self.s.delete(row)
        await self.s.flush()
        return before

    async def cancel_planned_starts(self, corp_id: str, keep_key: str, now: datetime) -> None:
        """Cancel the planned ``review_start`` rows of ``corp_id`` still ahead of ``now``
        except ``keep_key`` (one that fell due while Baton was down still runs)."""
        await self.s.execute(update(DueWork).where(
            DueWork.kind == "review_start", DueWork.status == "pending", DueWork.due_at > now,
            DueWork.dedupe_key.startswith(f"access-review-start:{corp_id}:", autoescape=True),
            DueWork.dedupe_key != keep_key).values(status="cancelled"))

    async def _write(self, campaign_id: int, decided: Iterable[ReviewItem]) -> None:
        for it in decided:
            row = await self.s.get(ItemRow, (campaign_id, it.i))
            assert row is not None
            row.decision, row.decided_by, row.decided_at = it.decision, it.by, it.at
        await self.s.flush()

    async def _of(self, req: Request) -> Campaign:
        admins = (await self.s.execute(select(CardRow.admin_id).where(
            CardRow.request_id == req.id).order_by(CardRow.n))).scalars().all()
        items = (await self.s.execute(select(ItemRow).where(
            ItemRow.request_id == req.id).order_by(ItemRow.i))).scalars().all()
        lang = req.payload.get("lang")
        return Campaign(
            id=req.id, state=State(req.state), expires_at=req.expires_at, admins=tuple(admins),
            items=tuple(ReviewItem(i=r.i, grant_id=r.grant_id, user=r.user_id, name=r.name,
                                   granted_by=r.granted_by, expires_at=r.expires_at,
                                   admin=r.admin_id, decision=r.decision, by=r.decided_by,
                                   at=r.decided_at, break_glass=r.break_glass) for r in items),
            lang=lang if isinstance(lang, str) else "")
