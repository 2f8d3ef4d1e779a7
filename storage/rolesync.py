"""The role sync's and the call budget's own rows: mapped roles' DingTalk ids, marks (a
cursor, once-only alerts) and the month's metered calls; and who holds a mapped role."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ApiCallMonth, DingTalkRole, Grant, Member, OutboxMessage, SyncMark
from storage.repositories import dialect_insert


def _left(corp_id: str) -> Select[str]:
    """The members of ``corp_id`` who have left (inactive): they hold no label."""
    return select(Member.user_id).where(Member.corp_id == corp_id, Member.active.is_(False))


class RoleSyncRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    # ---- mapped roles ----------------------------------------------------------------------
    async def role_ids(self, corp_id: str) -> dict[str, tuple[str, int]]:
        """catalog role -> (DingTalk name, DingTalk role id), as found or created on start."""
        rows = (await self.s.execute(select(
            DingTalkRole.role, DingTalkRole.dingtalk_name, DingTalkRole.role_id).where(
            DingTalkRole.corp_id == corp_id))).all()
        return {r: (n, int(i)) for r, n, i in rows}

    async def save_role(self, corp_id: str, role: str, name: str, role_id: int, group_id: int,
                        now: datetime) -> None:
        row = await self.s.get(DingTalkRole, (corp_id, role))
        if row is None:
            self.s.add(DingTalkRole(corp_id=corp_id, role=role, dingtalk_name=name,
                                    role_id=role_id, group_id=group_id, updated_at=now))
        else:
            row.dingtalk_name, row.role_id, row.group_id, row.updated_at = (
                name, role_id, group_id, now)
        await self.s.flush()

    # ---- who holds a mapped role -----------------------------------------------------------
    async def holders(self, corp_id: str, roles: Iterable[str],
                      now: datetime) -> dict[str, set[str]]:
        """Per role, the members who hold it now: as their role (``role set``) or through a
        live grant of it (as ``who-has <role>`` counts them)."""
        wanted = list(roles)
        out: dict[str, set[str]] = {r: set() for r in wanted}
        if not wanted:
            return out
        for uid, role in (await self.s.execute(select(Member.user_id, Member.role).where(
                Member.corp_id == corp_id, Member.role.in_(wanted),
                Member.active.is_(True)))).all():
            out[str(role)].add(uid)
        for uid, name in (await self.s.execute(select(Grant.user_id, Grant.name).where(
                Grant.corp_id == corp_id, Grant.name.in_(wanted),
                Grant.user_id.not_in(_left(corp_id)),
                or_(Grant.expires_at.is_(None), Grant.expires_at > now)))).all():
            out[name].add(uid)
        return out

    async def held_many(self, corp_id: str, user_ids: Iterable[str], roles: Iterable[str],
                        now: datetime) -> dict[str, set[str]]:
        """Which of ``roles`` each of ``user_ids`` holds now (role or live grant)."""
        wanted, users = list(roles), list(dict.fromkeys(user_ids))
        out: dict[str, set[str]] = {u: set() for u in users}
        if not wanted:
            return out
        for i in range(0, len(users), 500):
            part = users[i:i + 500]
            for uid, role in (await self.s.execute(select(Member.user_id, Member.role).where(
                    Member.corp_id == corp_id, Member.user_id.in_(part),
                    Member.role.in_(wanted), Member.active.is_(True)))).all():
                out[uid].add(str(role))
            for uid, name in (await self.s.execute(select(Grant.user_id, Grant.name).where(
                    Grant.corp_id == corp_id, Grant.user_id.in_(part), Grant.name.in_(wanted),
                    Grant.user_id.not_in(_left(corp_id)),
                    or_(Grant.expires_at.is_(None), Grant.expires_at > now)))).all():
                out[uid].add(name)
        return out

    async def left(self, corp_id: str, user_ids: Iterable[str]) -> set[str]:
        """Which of ``user_ids`` have left the corp (inactive in the store): DingTalk
        refuses a role call naming any of them (errcode 33012), and drops their labels
        itself."""
        users = list(dict.fromkeys(user_ids))
        out: set[str] = set()
        for i in range(0, len(users), 500):
            out |= set((await self.s.execute(select(Member.user_id).where(
                Member.corp_id == corp_id, Member.user_id.in_(users[i:i + 500]),
                Member.active.is_(False)))).scalars())
        return out

    async def users_in_flight(self, kind: str, sent_since: datetime | None = None) -> set[str]:
        """Members named by role calls of ``kind`` still waiting in the outbox (pending), and
        by those sent at or after ``sent_since`` (a reader of DingTalk who began then may not
        have seen them land)."""
        out: set[str] = set()
        moving = OutboxMessage.status == "pending"
        if sent_since is not None:
            moving = or_(moving, (OutboxMessage.status == "sent")
                         & (OutboxMessage.sent_at >= sent_since))
        for payload in (await self.s.execute(select(OutboxMessage.payload).where(
                OutboxMessage.kind == kind, moving))).scalars():
            users = payload.get("users") if isinstance(payload, dict) else None
            if isinstance(users, list):
                out |= {str(u) for u in users}
        return out

    # ---- marks -----------------------------------------------------------------------------
    async def mark(self, corp_id: str, name: str) -> str | None:
        row = await self.s.get(SyncMark, (corp_id, name))
        return None if row is None else row.value

    async def set_mark(self, corp_id: str, name: str, value: str, now: datetime) -> None:
        row = await self.s.get(SyncMark, (corp_id, name))
        if row is None:
            self.s.add(SyncMark(corp_id=corp_id, name=name, value=value, updated_at=now))
        else:
            row.value, row.updated_at = value, now
        await self.s.flush()

    async def claim_mark(self, corp_id: str, name: str, now: datetime, value: str = "") -> bool:
        """Set the mark unless it is set; True for the one caller that set it (a once-only
        alert across replicas and restarts)."""
        res = await self.s.execute(dialect_insert(self.s, SyncMark).values(
            corp_id=corp_id, name=name, value=value, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["corp_id", "name"]))
        return bool(getattr(res, "rowcount", 0))

    async def clear_mark(self, corp_id: str, name: str) -> bool:
        res = await self.s.execute(delete(SyncMark).where(SyncMark.corp_id == corp_id,
                                                          SyncMark.name == name))
        return bool(getattr(res, "rowcount", 0))

    # ---- the call budget -------------------------------------------------------------------
    async def add_calls(self, corp_id: str, counts: Mapping[str, int], now: datetime,
                        ) -> dict[str, int]:
        """Add each month's metered calls to its total; the totals after."""
        out: dict[str, int] = {}
        for month, n in counts.items():
            await self.s.execute(dialect_insert(self.s, ApiCallMonth).values(
                corp_id=corp_id, month=month, calls=0, updated_at=now,
            ).on_conflict_do_nothing(index_elements=["corp_id", "month"]))
            await self.s.execute(update(ApiCallMonth).where(
                ApiCallMonth.corp_id == corp_id, ApiCallMonth.month == month).values(
                calls=ApiCallMonth.calls + n, updated_at=now))
            out[month] = int((await self.s.execute(select(ApiCallMonth.calls).where(
                ApiCallMonth.corp_id == corp_id, ApiCallMonth.month == month))).scalar_one())
        return out

    async def calls_in(self, corp_id: str, month: str) -> int:
        return int((await self.s.execute(select(ApiCallMonth.calls).where(
            ApiCallMonth.corp_id == corp_id, ApiCallMonth.month == month))).scalar() or 0)
