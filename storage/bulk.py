"""The permission table as rows (for export and import) and applying bulk changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import delete, or_, select, union

from bot.core.domain.bulk import Change, Entry
from storage.db import UnitOfWork
from storage.models import (
    ADMIN,
    OWNER,
    AuditEntry,
    Grant,
    Member,
    Request,
    Template,
    TemplateAssignment,
)
from storage.permissions import schedule_expiry


class Conflict(Exception):
    """The store no longer is what a change expects (an undo after later edits)."""


async def members(uow: UnitOfWork, corp_id: str) -> list[Member]:
    return list((await uow.session.execute(
        select(Member).where(Member.corp_id == corp_id).order_by(Member.user_id)
    )).scalars())


async def corps(uow: UnitOfWork) -> list[str]:
    """Every corp the store holds members or audit entries of."""
    q = union(select(Member.corp_id), select(AuditEntry.corp_id))
    return sorted(set((await uow.session.execute(q)).scalars()))


async def entries(uow: UnitOfWork, corp_id: str, now: datetime,
                  ) -> tuple[list[Entry], dict[tuple[str, str, str], str]]:
    """Every assignment in the store, ordered by member, and a source note per entry."""
    out: list[Entry] = []
    source: dict[tuple[str, str, str], str] = {}
    for m in await members(uow, corp_id):
        if m.level in (OWNER, ADMIN):
            out.append(Entry(m.user_id, "level", m.level))
        if m.role:
            out.append(Entry(m.user_id, "role", m.role))
    for g, kind in (await uow.session.execute(
        select(Grant, Request.kind).outerjoin(Request, Request.id == Grant.request_id)
        .where(Grant.corp_id == corp_id,
               or_(Grant.expires_at.is_(None), Grant.expires_at > now))
    )).all():
        e = Entry(g.user_id, "grant", g.name, g.expires_at)
        out.append(e)
        source[e.key] = f"granted_by={g.granted_by}" + (f" batch={g.batch_id}" if g.batch_id else "")
        if kind == "break_glass":       # emergency access stands out (issue 18)
            source[e.key] += f" break_glass=R-{g.request_id}"
    for uid, name, via in (await uow.session.execute(
        select(TemplateAssignment.user_id, Template.name, TemplateAssignment.via_dept)
        .join(Template, Template.id == TemplateAssignment.template_id)
        .where(Template.corp_id == corp_id)
    )).all():
        e = Entry(uid, "template", name)
        out.append(e)
        if via:
            source[e.key] = f"dept={via}"
    order = {"level": 0, "role": 1, "grant": 2, "template": 3}
    out.sort(key=lambda e: (e.user_id, order[e.kind], e.value))
    return out, source


async def apply_changes(uow: UnitOfWork, corp_id: str, changes: Iterable[Change], *, by: str,
                        batch: str, now: datetime, strict: bool = False,
                        progress: Callable[[int], None] | None = None) -> list[Change]:
    """Apply ``changes``; ``strict``: refuse (Conflict) when the store is not in the state
    each change starts from. Returns what was applied, for auditing."""
    changes = list(changes)
    templates = {t.name: t for t in (await uow.session.execute(
        select(Template).where(Template.corp_id == corp_id))).scalars()}
    # Every grant row the batch touches, loaded at once (not one query per change).
    users = sorted({c.entry.user_id for c in changes if c.entry.kind == "grant"})
    grants: dict[tuple[str, str], Grant] = {}
    for i in range(0, len(users), 500):
        for g in (await uow.session.execute(select(Grant).where(
                Grant.corp_id == corp_id, Grant.user_id.in_(users[i:i + 500])))).scalars():
            grants[(g.user_id, g.name)] = g
    done: list[Change] = []
    for c in changes:
        e = c.entry
        if e.kind == "grant":
            row = grants.get((e.user_id, e.value))
            if row is not None and row.expires_at is not None and row.expires_at <= now:
                await uow.session.delete(row)
                await uow.session.flush()
                del grants[(e.user_id, e.value)]
                row = None
            if strict:
                _expect(row is None if c.op == "create" else
                        row is not None and row.expires_at == (c.before or e).expires_at, c)
            if c.op == "remove":
                if row is not None:
                    await uow.session.delete(row)
                    del grants[(e.user_id, e.value)]
            elif row is None:
                row = Grant(corp_id=corp_id, user_id=e.user_id, name=e.value, granted_by=by,
                            batch_id=batch, created_at=now, expires_at=e.expires_at)
                uow.session.add(row)
                grants[(e.user_id, e.value)] = row
            else:
                row.expires_at, row.batch_id, row.granted_by = e.expires_at, batch, by
        elif e.kind == "role":
            m = await uow.members.get(corp_id, e.user_id)
            if m is None:
                raise Conflict(f"member {e.user_id} is gone")
            if strict:
                want = None if c.op == "create" else (c.before or e).value
                _expect(m.role == want, c)
            m.role, m.updated_at = (None if c.op == "remove" else e.value), now
        elif e.kind == "template":
            tpl = templates.get(e.value)
            if tpl is None:
                raise Conflict(f"template {e.value} is gone")
            if c.op == "remove":
                res = await uow.session.execute(delete(TemplateAssignment).where(
                    TemplateAssignment.template_id == tpl.id,
                    TemplateAssignment.user_id == e.user_id))
                if strict:
                    _expect(getattr(res, "rowcount", 1) == 1, c)
            else:
                added = await uow.perms.assign(tpl, e.user_id, by=by, now=now,
                                               via_dept=f"batch:{batch}")
                if strict:
                    _expect(added, c)
        else:
            continue
        done.append(c)
        if len(done) % 500 == 0:
            await uow.session.flush()
            if progress is not None:
                progress(len(done))
    await uow.session.flush()
    if progress is not None:
        progress(len(done))
    # Time-bound grants end through the scheduler, like any other grant.
    for c in done:
        gr = grants.get((c.entry.user_id, c.entry.value)) if c.entry.kind == "grant" else None
        if gr is not None and c.op != "remove":
            await schedule_expiry(uow.due, gr, now)
    return done


def _expect(ok: bool, c: Change) -> None:
    if not ok:
        raise Conflict(f"{c.entry.user_id} {c.entry.kind} {c.entry.value} changed since")
