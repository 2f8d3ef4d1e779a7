"""The permission table as rows (for export and import) and applying bulk changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, union

from bot.core.domain.bulk import Change, Entry
from storage.db import UnitOfWork
from storage.models import (
    ADMIN,
    OWNER,
    AuditEntry,
    Grant,
    Member,
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


@dataclass(frozen=True)
class TableChunk:
    """Some members (by userId, in order) and every assignment they hold."""

    people: Mapping[str, tuple[str | None, str, str | None]]   # user_id: (name, level, role)
    entries: list[Entry]                                     # ordered by member, then kind
    source: dict[tuple[str, str, str], str] = field(default_factory=dict)


_KIND_ORDER = {"level": 0, "role": 1, "grant": 2, "template": 3}


def _in_range(col: Any, lo: str | None, hi: str | None) -> list[Any]:
    conds = []
    if lo is not None:
        conds.append(col > lo)
    if hi is not None:
        conds.append(col <= hi)
    return conds


async def table_chunks(uow: UnitOfWork, corp_id: str, now: datetime, size: int = 2000,
                       ) -> AsyncIterator[TableChunk]:
    """The permission table, ``size`` members at a time (by userId ranges, so assignments
    of users the store has no member row for are not left out); column reads only, no ORM
    rows, so a table of 100,000 rows is never held at once."""
    ids = list((await uow.session.execute(
        select(Member.user_id).where(Member.corp_id == corp_id).order_by(Member.user_id)
    )).scalars())
    edges: list[tuple[str | None, str | None]] = []
    for i in range(0, max(len(ids), 1), size):
        lo = ids[i - 1] if i else None
        hi = ids[i + size - 1] if i + size < len(ids) else None
        edges.append((lo, hi))
    del ids
    for lo, hi in edges:
        people = {uid: (name, level, role) for uid, name, level, role in (
            await uow.session.execute(
                select(Member.user_id, Member.name, Member.level, Member.role).where(
                    Member.corp_id == corp_id, *_in_range(Member.user_id, lo, hi)))).all()}
        out: list[Entry] = []
        source: dict[tuple[str, str, str], str] = {}
        for uid, (_name, level, role) in people.items():
            if level in (OWNER, ADMIN):
                out.append(Entry(uid, "level", level))
            if role:
                out.append(Entry(uid, "role", role))
        for uid, name, exp, by, batch in (await uow.session.execute(
            select(Grant.user_id, Grant.name, Grant.expires_at, Grant.granted_by,
                   Grant.batch_id).where(
                Grant.corp_id == corp_id, *_in_range(Grant.user_id, lo, hi),
                or_(Grant.expires_at.is_(None), Grant.expires_at > now))
        )).all():
            e = Entry(uid, "grant", name, exp)
            out.append(e)
            source[e.key] = f"granted_by={by}" + (f" batch={batch}" if batch else "")
        for uid, name, via in (await uow.session.execute(
            select(TemplateAssignment.user_id, Template.name, TemplateAssignment.via_dept)
            .join(Template, Template.id == TemplateAssignment.template_id)
            .where(Template.corp_id == corp_id,
                   *_in_range(TemplateAssignment.user_id, lo, hi))
        )).all():
            e = Entry(uid, "template", name)
            out.append(e)
            if via:
                source[e.key] = f"dept={via}"
        out.sort(key=lambda e: (e.user_id, _KIND_ORDER[e.kind], e.value))
        yield TableChunk(people, out, source)


async def entries(uow: UnitOfWork, corp_id: str, now: datetime,
                  ) -> tuple[list[Entry], dict[tuple[str, str, str], str]]:
    """Every assignment in the store, ordered by member, and a source note per entry."""
    out: list[Entry] = []
    source: dict[tuple[str, str, str], str] = {}
    async for chunk in table_chunks(uow, corp_id, now, size=5000):
        out.extend(chunk.entries)
        source.update(chunk.source)
    return out, source


async def has_member(uow: UnitOfWork, corp_id: str, user_id: str) -> bool:
    return (await uow.session.execute(select(Member.id).where(
        Member.corp_id == corp_id, Member.user_id == user_id))).first() is not None


async def people(uow: UnitOfWork, corp_id: str) -> dict[str, tuple[str | None, str]]:
    """Every member's (name, level), by userId: what an import validates against."""
    return {uid: (name, level) for uid, name, level in (await uow.session.execute(
        select(Member.user_id, Member.name, Member.level).where(Member.corp_id == corp_id)
    )).all()}


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
