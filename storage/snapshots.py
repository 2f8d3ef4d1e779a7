"""Backups of a corp's permission state, taken before sensitive changes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.db import UnitOfWork
from storage.models import Grant, Member, Snapshot, Template, TemplateAssignment


async def take_snapshot(uow: UnitOfWork, corp_id: str, now: datetime, *, reason: str,
                        request_id: int | None = None) -> Snapshot:
    s = uow.session
    members = (await s.execute(select(Member).where(Member.corp_id == corp_id)
                               .order_by(Member.user_id))).scalars().all()
    grants = (await s.execute(select(Grant).where(Grant.corp_id == corp_id)
                              .order_by(Grant.id))).scalars().all()
    templates = (await s.execute(select(Template).where(Template.corp_id == corp_id)
                                 .order_by(Template.name))).scalars().all()
    assigned = (await s.execute(
        select(Template.name, TemplateAssignment.user_id)
        .join(Template, Template.id == TemplateAssignment.template_id)
        .where(Template.corp_id == corp_id).order_by(Template.name, TemplateAssignment.user_id)
    )).all()
    data: dict[str, Any] = {
        "members": [{"user_id": m.user_id, "name": m.name, "level": m.level, "role": m.role,
                     "active": m.active} for m in members],
        "grants": [{"user_id": g.user_id, "name": g.name, "granted_by": g.granted_by,
                    "expires_at": g.expires_at.isoformat() if g.expires_at else None}
                   for g in grants],
        "templates": [{"name": tp.name, "permissions": list(tp.permissions)} for tp in templates],
        "assignments": [{"template": n, "user_id": u} for n, u in assigned],
    }
    snap = Snapshot(corp_id=corp_id, reason=reason, request_id=request_id, data=data,
                    created_at=now)
    s.add(snap)
    await s.flush()
    return snap


async def list_snapshots(uow: UnitOfWork, corp_id: str, limit: int = 50) -> Sequence[Snapshot]:
    return (await uow.session.execute(
        select(Snapshot).where(Snapshot.corp_id == corp_id).order_by(Snapshot.id.desc())
        .limit(limit))).scalars().all()


async def get_snapshot(uow: UnitOfWork, snapshot_id: int) -> Snapshot | None:
    return await uow.session.get(Snapshot, snapshot_id)
