"""Admin drift and offboarding in the store: DingTalk's admin list as Baton last saw it, who
holds anything, ending everything a member who left holds, and moving their review items.

Reads and writes return plain values of ``bot.core`` (or tuples of them); rows stay here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.domain.members import MEMBER
from storage.models import (
    DingTalkAdmin,
    Grant,
    Member,
    ReviewCard,
    ReviewItem,
    Template,
    TemplateAssignment,
)


@dataclass(frozen=True)
class EndedHolding:
    """A grant or template assignment that ended when its holder left."""

    kind: str                       # "grant" | "template"
    name: str
    expires_at: datetime | None = None
    granted_by: str = ""


class DriftRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    # ---- DingTalk's admin list ---------------------------------------------------------
    async def admin_list(self, corp_id: str) -> dict[str, int] | None:
        """userId -> sys_level as last recorded; None when nothing was ever recorded."""
        rows = (await self.s.execute(
            select(DingTalkAdmin.user_id, DingTalkAdmin.sys_level)
            .where(DingTalkAdmin.corp_id == corp_id))).all()
        if not rows:
            seen = (await self.s.execute(select(func.count()).select_from(DingTalkAdmin).where(
                DingTalkAdmin.corp_id == corp_id, DingTalkAdmin.user_id == ""))).scalar_one()
            return {} if seen else None
        return {u: int(level) for u, level in rows if u}

    async def admin_list_seen(self, corp_id: str) -> datetime | None:
        """When the recorded list was read from DingTalk (None: nothing recorded)."""
        return (await self.s.execute(select(func.max(DingTalkAdmin.seen_at)).where(
            DingTalkAdmin.corp_id == corp_id))).scalar_one_or_none()

    async def record_admin_list(self, corp_id: str, levels: Mapping[str, int],
                                now: datetime) -> None:
        """Replace the recorded list with ``levels`` (an empty list is recorded too, by a
        marker row, so "nobody" differs from "never seen")."""
        await self.s.execute(delete(DingTalkAdmin).where(DingTalkAdmin.corp_id == corp_id))
        rows = [DingTalkAdmin(corp_id=corp_id, user_id=u, sys_level=lv, seen_at=now)
                for u, lv in sorted(levels.items())]
        if not rows:
            rows = [DingTalkAdmin(corp_id=corp_id, user_id="", sys_level=2, seen_at=now)]
        self.s.add_all(rows)
        await self.s.flush()

    async def baton_levels(self, corp_id: str) -> dict[str, str]:
        """userId -> level of the owner and the admins (members are absent)."""
        return {u: level for u, level in (await self.s.execute(
            select(Member.user_id, Member.level)
            .where(Member.corp_id == corp_id, Member.level != MEMBER))).all()}

    # ---- who holds anything ------------------------------------------------------------
    async def holding_members(self, corp_id: str) -> list[str]:
        """Active members who hold anything Baton gives: a level, a role, a grant or a
        template (the ones the daily sweep checks against the directory)."""
        granted = select(Grant.user_id).where(Grant.corp_id == corp_id)
        templated = (select(TemplateAssignment.user_id)
                     .join(Template, Template.id == TemplateAssignment.template_id)
                     .where(Template.corp_id == corp_id))
        return list((await self.s.execute(
            select(Member.user_id).where(
                Member.corp_id == corp_id, Member.active.is_(True),
                or_(Member.level != MEMBER, Member.role.is_not(None),
                    Member.user_id.in_(granted), Member.user_id.in_(templated)))
            .order_by(Member.user_id))).scalars())

    # ---- ending what a member holds ----------------------------------------------------
    async def end_holdings(self, corp_id: str, user_id: str) -> list[EndedHolding]:
        """Delete every grant and template assignment of ``user_id``; what ended, by name."""
        grants = (await self.s.execute(
            select(Grant).where(Grant.corp_id == corp_id, Grant.user_id == user_id)
            .order_by(Grant.name))).scalars().all()
        ended = [EndedHolding("grant", g.name, g.expires_at, g.granted_by) for g in grants]
        assigned = (await self.s.execute(
            select(TemplateAssignment.id, Template.name)
            .join(Template, Template.id == TemplateAssignment.template_id)
            .where(Template.corp_id == corp_id, TemplateAssignment.user_id == user_id)
            .order_by(Template.name))).all()
        ended += [EndedHolding("template", name) for _id, name in assigned]
        if grants:
            await self.s.execute(delete(Grant).where(Grant.id.in_([g.id for g in grants])))
        if assigned:
            await self.s.execute(delete(TemplateAssignment).where(
                TemplateAssignment.id.in_([i for i, _ in assigned])))
        return ended

    async def hold_member(self, corp_id: str, user_id: str) -> bool:
        """Lock ``user_id``'s row for this transaction (two replicas offboarding the same
        member take turns; the second finds the work done); False when there is none."""
        return (await self.s.execute(select(Member.id).where(
            Member.corp_id == corp_id, Member.user_id == user_id).with_for_update())
        ).first() is not None

    async def mark_left(self, corp_id: str, user_id: str, now: datetime) -> None:
        """``user_id`` has left the corp: inactive in the store from now on."""
        row = (await self.s.execute(select(Member).where(
            Member.corp_id == corp_id, Member.user_id == user_id))).scalar_one_or_none()
        if row is not None and row.active:
            row.active, row.updated_at = False, now
            await self.s.flush()

    # ---- review items ------------------------------------------------------------------
    async def reassign_review(self, campaign_id: int, from_admin: str, to_admin: str,
                              max_cards: int) -> tuple[int, int, bool]:
        """Move the undecided items of ``from_admin`` in campaign ``campaign_id`` to
        ``to_admin``: (items moved, ``to_admin``'s card number, whether that card is new).
        Nothing moves when ``to_admin``'s card number would be ``max_cards`` or more (no
        card could show them the items)."""
        items = (await self.s.execute(select(ReviewItem).where(
            ReviewItem.request_id == campaign_id, ReviewItem.admin_id == from_admin,
            ReviewItem.decision.is_(None)))).scalars().all()
        cards = {a: n for a, n in (await self.s.execute(
            select(ReviewCard.admin_id, ReviewCard.n).where(
                ReviewCard.request_id == campaign_id))).all()}
        if not items:
            return 0, cards.get(to_admin, -1), False
        new = to_admin not in cards
        n = max(cards.values(), default=-1) + 1 if new else cards[to_admin]
        if n >= max_cards:
            return 0, n, False
        for it in items:
            it.admin_id = to_admin
        if new:
            cards[to_admin] = n
            self.s.add(ReviewCard(request_id=campaign_id, n=cards[to_admin], admin_id=to_admin))
        await self.s.flush()
        return len(items), cards[to_admin], new
