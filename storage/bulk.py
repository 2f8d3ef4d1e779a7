"""The permission table as rows (for export and import) and applying bulk changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, or_, select, union, update

from bot.core.domain.bulk import Change, Entry
from storage.db import UnitOfWork
from storage.models import (
    ADMIN,
    OWNER,
    AuditEntry,
    DueWork,
    Grant,
    Member,
    Request,
    Template,
    TemplateAssignment,
)
from storage.repositories import _insert


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
        for uid, name, exp, by, batch, req_id, kind in (await uow.session.execute(
            select(Grant.user_id, Grant.name, Grant.expires_at, Grant.granted_by,
                   Grant.batch_id, Grant.request_id, Request.kind)
            .outerjoin(Request, Request.id == Grant.request_id).where(
                Grant.corp_id == corp_id, *_in_range(Grant.user_id, lo, hi),
                or_(Grant.expires_at.is_(None), Grant.expires_at > now))
        )).all():
            e = Entry(uid, "grant", name, exp)
            out.append(e)
            source[e.key] = f"granted_by={by}" + (f" batch={batch}" if batch else "")
            if kind == "break_glass":       # emergency access stands out (issue 18)
                source[e.key] += f" break_glass=R-{req_id}"
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
    each change starts from. Returns what was applied, for auditing.

    Set-based, for batches of 100,000: the rows the batch touches are read in chunks as
    plain columns, every change is checked and decided in memory (in order, so a key that
    comes twice sees the first), then written with one statement per kind and chunk."""
    changes = list(changes)
    s = uow.session
    tpl_ids = {n: i for n, i in (await s.execute(
        select(Template.name, Template.id).where(Template.corp_id == corp_id))).all()}
    grant_users = sorted({c.entry.user_id for c in changes if c.entry.kind == "grant"})
    role_users = sorted({c.entry.user_id for c in changes if c.entry.kind == "role"})
    tpl_users = sorted({c.entry.user_id for c in changes if c.entry.kind == "template"})
    # (user, name) -> (id or None for a row to insert, expires_at); None: no row
    grants: dict[tuple[str, str], tuple[int | None, datetime | None] | None] = {}
    for part in _chunked(grant_users, CHUNK):
        for gid, uid, name, exp in (await s.execute(select(
                Grant.id, Grant.user_id, Grant.name, Grant.expires_at).where(
                Grant.corp_id == corp_id, Grant.user_id.in_(part)))).all():
            grants[(uid, name)] = (gid, exp)
    roles: dict[str, tuple[int, str | None]] = {}
    for part in _chunked(role_users, CHUNK):
        for mid, uid, role in (await s.execute(select(Member.id, Member.user_id, Member.role).where(
                Member.corp_id == corp_id, Member.user_id.in_(part)))).all():
            roles[uid] = (mid, role)
    assigned: set[tuple[int, str]] = set()
    for part in _chunked(tpl_users, CHUNK):
        assigned |= set((await s.execute(select(
            TemplateAssignment.template_id, TemplateAssignment.user_id).where(
            TemplateAssignment.user_id.in_(part),
            TemplateAssignment.template_id.in_(list(tpl_ids.values()) or [-1])))).all())
    gone_ids: set[int] = set()          # grant rows to delete (expired, or removed)
    new_grants: dict[tuple[str, str], datetime | None] = {}
    set_grants: dict[int, datetime | None] = {}
    new_roles: dict[int, str | None] = {}
    unassign: set[tuple[int, str]] = set()
    assign: dict[tuple[int, str], None] = {}
    done: list[Change] = []
    for c in changes:
        e = c.entry
        if e.kind == "grant":
            key = (e.user_id, e.value)
            row = grants.get(key)
            if row is not None and row[1] is not None and row[1] <= now:
                if row[0] is not None:
                    gone_ids.add(row[0])
                    set_grants.pop(row[0], None)
                new_grants.pop(key, None)
                row = grants[key] = None
            if strict:
                _expect(row is None if c.op == "create" else
                        row is not None and row[1] == (c.before or e).expires_at, c)
            if c.op == "remove":
                if row is not None:
                    if row[0] is not None:
                        gone_ids.add(row[0])
                        set_grants.pop(row[0], None)
                    new_grants.pop(key, None)
                    grants[key] = None
            elif row is None or row[0] is None:
                new_grants[key] = e.expires_at
                grants[key] = (None, e.expires_at)
            else:
                set_grants[row[0]] = e.expires_at
                grants[key] = (row[0], e.expires_at)
        elif e.kind == "role":
            m = roles.get(e.user_id)
            if m is None:
                raise Conflict(f"member {e.user_id} is gone")
            if strict:
                want = None if c.op == "create" else (c.before or e).value
                _expect(m[1] == want, c)
            value = None if c.op == "remove" else e.value
            roles[e.user_id] = (m[0], value)
            new_roles[m[0]] = value
        elif e.kind == "template":
            tid = tpl_ids.get(e.value)
            if tid is None:
                raise Conflict(f"template {e.value} is gone")
            pair = (tid, e.user_id)
            if c.op == "remove":
                if strict:
                    _expect(pair in assigned, c)
                assigned.discard(pair)
                assign.pop(pair, None)
                unassign.add(pair)
            else:
                if strict:
                    _expect(pair not in assigned, c)
                if pair not in assigned:
                    assigned.add(pair)
                    unassign.discard(pair)
                    assign[pair] = None
        else:
            continue
        done.append(c)
    if progress is not None:
        progress(len(done) // 2)
    for ids in _chunked(sorted(gone_ids), CHUNK):
        await s.execute(delete(Grant).where(Grant.id.in_(ids)))
    if set_grants:
        await s.execute(update(Grant).execution_options(synchronize_session=False), [
            {"id": gid, "expires_at": exp, "batch_id": batch, "granted_by": by}
            for gid, exp in set_grants.items()])
    if unassign:
        ta = cast(Table, TemplateAssignment.__table__)
        await s.execute(delete(ta).where(ta.c.template_id == bindparam("tid"),
                                         ta.c.user_id == bindparam("uid")),
                        [{"tid": tid, "uid": uid} for tid, uid in sorted(unassign)])
    if new_roles:
        await s.execute(update(Member).execution_options(synchronize_session=False), [
            {"id": mid, "role": role, "updated_at": now} for mid, role in new_roles.items()])
    if assign:
        await s.execute(insert(TemplateAssignment), [
            {"template_id": tid, "user_id": uid, "via_dept": f"batch:{batch}",
             "assigned_by": by, "created_at": now} for tid, uid in assign])
    timed: list[tuple[int, datetime]] = [(gid, exp) for gid, exp in set_grants.items()
                                         if exp is not None]
    items = list(new_grants.items())
    for i in range(0, len(items), CHUNK):
        part = items[i:i + CHUNK]
        new_ids = (await s.execute(insert(Grant).returning(Grant.id, sort_by_parameter_order=True), [
            {"corp_id": corp_id, "user_id": uid, "name": name, "granted_by": by,
             "batch_id": batch, "created_at": now, "expires_at": exp}
            for (uid, name), exp in part])).scalars().all()
        timed += [(gid, exp) for gid, (_k, exp) in zip(new_ids, part, strict=True)
                  if exp is not None]
    # Time-bound grants end through the scheduler, like any other grant (one due row per
    # grant and expiry, as storage.permissions.schedule_expiry writes it).
    for i in range(0, len(timed), CHUNK):
        await s.execute(_insert(s, DueWork).on_conflict_do_nothing(
            index_elements=["dedupe_key"]), [
            {"kind": "grant_expire", "due_at": exp, "payload": {"grant_id": gid},
             "dedupe_key": f"grant-expire:{gid}:{int(exp.timestamp())}", "status": "pending",
             "attempts": 0, "created_at": now} for gid, exp in timed[i:i + CHUNK]])
    if timed:
        uow.due.touched = True
    await s.flush()
    if progress is not None:
        progress(len(done))
    return done


CHUNK = 500


def _chunked(items: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _expect(ok: bool, c: Change) -> None:
    if not ok:
        raise Conflict(f"{c.entry.user_id} {c.entry.kind} {c.entry.value} changed since")
