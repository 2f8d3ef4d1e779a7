"""A large demo organisation, bulk-loaded: members with a role, grants and a template each.

For ``baton sandbox --org-size N``, the bulk benchmark and the bulk round-trip tests: the
permission table of ``N`` members has ten rows a member (one role, eight grants, half of
them time-bound, one template), plus the owner's and the admins' level rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select

from storage.db import UnitOfWork
from storage.models import ADMIN, MEMBER, OWNER, Grant, Member, Template, TemplateAssignment

GRANTS_EACH = 8


@dataclass(frozen=True)
class OrgShape:
    """What to seed: ``members`` people (``uid(i)``), the names they may hold."""

    members: int
    permissions: Sequence[str]
    roles: Sequence[str]
    templates: Mapping[str, Sequence[str]]
    admins: int = 2           # members 1..admins are admins and member 0 the owner; -1: none

    @staticmethod
    def uid(i: int) -> str:
        return f"m{i:06d}"

    @staticmethod
    def name(i: int) -> str:
        return f"成员{i:05d}"


async def seed_org(uow: UnitOfWork, corp_id: str, shape: OrgShape, now: datetime,
                   chunk: int = 5000) -> int:
    """Insert the organisation (into a store without it); returns the table's row count."""
    perms, roles = list(shape.permissions), list(shape.roles)
    if len(perms) < GRANTS_EACH * 3 or not roles or not shape.templates:
        raise ValueError("need at least 24 permissions, a role and a template")
    s = uow.session
    await s.execute(insert(Template), [
        {"corp_id": corp_id, "name": n, "permissions": list(p), "created_by": "seed",
         "created_at": now, "updated_at": now} for n, p in shape.templates.items()])
    ids = {n: i for n, i in (await s.execute(
        select(Template.name, Template.id).where(Template.corp_id == corp_id))).all()}
    tpl_ids = [ids[n] for n in shape.templates]
    rows = 0
    for lo in range(0, shape.members, chunk):
        hi = min(lo + chunk, shape.members)
        members, grants, assigned = [], [], []
        for i in range(lo, hi):
            uid = shape.uid(i)
            level = (MEMBER if shape.admins < 0 else OWNER if i == 0 else
                     ADMIN if i <= shape.admins else MEMBER)
            members.append({"corp_id": corp_id, "user_id": uid, "name": shape.name(i),
                            "level": level, "role": roles[i % len(roles)], "active": True,
                            "created_at": now, "updated_at": now})
            for k in range(GRANTS_EACH):
                grants.append({
                    "corp_id": corp_id, "user_id": uid, "name": perms[(i + 3 * k) % len(perms)],
                    "granted_by": "seed", "created_at": now,
                    "expires_at": now + timedelta(days=30 + i % 60, hours=k) if k % 2 else None})
            assigned.append({"template_id": tpl_ids[i % len(tpl_ids)], "user_id": uid,
                             "assigned_by": "seed", "created_at": now})
            rows += 1 + GRANTS_EACH + 1 + (level != MEMBER)
        await s.execute(insert(Member), members)
        await s.execute(insert(Grant), grants)
        await s.execute(insert(TemplateAssignment), assigned)
    return rows


__all__ = ["GRANTS_EACH", "OrgShape", "seed_org"]
