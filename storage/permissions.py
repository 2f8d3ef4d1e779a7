"""Permission rows: grants (merged per user and name), templates and their assignments.

Reads return the pure domain's :class:`Holdings`, so effective permissions are computed in
one place (``bot.core.domain.permissions``) for whoami, who-has, template impact and exports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    bindparam,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    text,
    type_coerce,
    union,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.domain.index import Entry
from bot.core.domain.members import Sender
from bot.core.domain.permissions import (
    OWNER_ROLE,
    Catalog,
    EndedGrant,
    GrantIn,
    Holdings,
    Source,
    TemplateIn,
    TemplateView,
    longest,
    sources_of,
)
from storage.models import MEMBER, OWNER, Grant, Member, Template, TemplateAssignment, UTCDateTime
from storage.repositories import DueWorkRepo, built_once


@dataclass(frozen=True)
class GrantChange:
    """A grant as it was before a write and as it is after (None: no row)."""

    before: Grant | None
    before_expires: datetime | None
    after: Grant | None

    @property
    def changed(self) -> bool:
        if self.before is None or self.after is None:
            return self.before is not self.after
        return self.before_expires != self.after.expires_at


def _held() -> Any:
    """Grants (unexpired at :now) and template assignments of the users :ids in company
    :corp, in one UNION ALL by user, kind and name; built once (its cache key is kept)."""
    def build() -> Any:
        corp: Any = bindparam("corp")
        ids: Any = bindparam("ids", expanding=True)
        now = bindparam("now", type_=UTCDateTime())
        return union_all(
            select(Grant.user_id, literal("g").label("kind"), Grant.name, Grant.expires_at,
                   type_coerce(null(), JSON).label("items"))
            .where(Grant.corp_id == corp, Grant.user_id.in_(ids),
                   or_(Grant.expires_at.is_(None), Grant.expires_at > now)),
            select(TemplateAssignment.user_id, literal("t"), Template.name,
                   type_coerce(null(), UTCDateTime()), Template.permissions)
            .join(Template, TemplateAssignment.template_id == Template.id)
            .where(Template.corp_id == corp, TemplateAssignment.user_id.in_(ids)),
        ).order_by(text("1, 2, 3"))

    return built_once(("holdings_union",), build)


class PermissionRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session
        # Members of a batch of read commands whose holdings are read together, lazily:
        # the first holdings_of() for one of them reads them all (see :meth:`expect`).
        self._expected: dict[tuple[str, str], Member | Sender] = {}
        self._primed: dict[tuple[str, str], Holdings] = {}
        self._primed_at: datetime | None = None

    def expect(self, members: Iterable[Member | Sender], now: datetime) -> None:
        """Say whose holdings this transaction may ask for at ``now``: the first
        :meth:`holdings_of` for any of them reads all of them (two queries in all), the rest
        answer from memory. Only for a transaction that changes no permission (a batch of
        read commands)."""
        self._expected = {(m.corp_id, m.user_id): m for m in members}
        self._primed, self._primed_at = {}, now

    async def _prime(self, now: datetime) -> None:
        by_corp: dict[str, dict[str, tuple[str, str | None]]] = {}
        for (corp_id, uid), m in self._expected.items():
            by_corp.setdefault(corp_id, {})[uid] = (m.level, m.role)
        for corp_id, known in by_corp.items():
            got = await self.holdings_many(corp_id, known, now, known=known)
            self._primed.update({(corp_id, u): h for u, h in got.items()})

    # ---- reads -------------------------------------------------------------------------
    async def holdings(self, corp_id: str, user_id: str, now: datetime) -> Holdings:
        return (await self.holdings_many(corp_id, [user_id], now))[user_id]

    async def holdings_of(self, member: Member | Sender, now: datetime) -> Holdings:
        """Holdings of a member this transaction already read (one query fewer)."""
        key = (member.corp_id, member.user_id)
        if now == self._primed_at and key in self._expected:
            if key not in self._primed:
                await self._prime(now)
            return self._primed[key]
        return (await self.holdings_many(member.corp_id, [member.user_id], now,
                                         known={member.user_id: (member.level, member.role)})
                )[member.user_id]

    async def holdings_many(self, corp_id: str, user_ids: Iterable[str], now: datetime, *,
                            known: dict[str, tuple[str, str | None]] | None = None,
                            ) -> dict[str, Holdings]:
        """Holdings of each user (members not in the store hold nothing); ``known`` gives
        (level, role) of members already loaded, which are then not read again."""
        ids = sorted(set(user_ids))
        known = known or {}
        base = {u: known.get(u, ("member", None)) for u in ids}
        unknown = [u for u in ids if u not in known]
        grants: dict[str, list[GrantIn]] = {u: [] for u in ids}
        templates: dict[str, list[TemplateIn]] = {u: [] for u in ids}
        for chunk in _chunks(unknown, 500):
            for uid, level, role in (await self.s.execute(
                select(Member.user_id, Member.level, Member.role)
                .where(Member.corp_id == corp_id, Member.user_id.in_(chunk))
            )).all():
                base[uid] = (level, role)
        for chunk in _chunks(ids, 500):
            # Grants and template assignments in one round trip (a UNION ALL), by user
            # and name: the order each was read in before.
            params = {"corp": corp_id, "ids": chunk, "now": now}
            for uid, kind, name, exp, items in (await self.s.execute(_held(), params)).all():
                if kind == "g":
                    grants[uid].append(GrantIn(name, exp))
                else:
                    templates[uid].append(TemplateIn(name, tuple(items)))
        return {u: Holdings(base[u][0], base[u][1], tuple(grants[u]), tuple(templates[u]))
                for u in ids}

    # ---- the in-memory index (bot.core.domain.index) -----------------------------------
    async def index_corps(self) -> list[str]:
        """Every company the store holds members or templates of."""
        got = set((await self.s.execute(select(Member.corp_id).distinct())).scalars())
        got |= set((await self.s.execute(select(Template.corp_id).distinct())).scalars())
        return sorted(got)

    async def index_all(self, corp_id: str) -> tuple[dict[str, Entry], dict[str, tuple[str, ...]]]:
        """Every member's entry and every template's items in ``corp_id`` (four queries,
        no per-member round trip), grants with their expiries, expired ones included (the
        index checks expiry when it reads)."""
        return await self._entries(corp_id, None), await self.index_templates(corp_id, None)

    async def index_users(self, corp_id: str, user_ids: Iterable[str]) -> dict[str, Entry]:
        """The entries of ``user_ids`` as stored now (a member not stored: an empty one)."""
        ids = sorted(set(user_ids))
        out: dict[str, Entry] = {u: Entry() for u in ids}
        for chunk in _chunks(ids, 500):
            out.update(await self._entries(corp_id, chunk))
        return out

    async def index_level_holders(self, corp_id: str) -> list[str]:
        """Members whose level is owner or admin."""
        return list((await self.s.execute(
            select(Member.user_id).where(Member.corp_id == corp_id, Member.level != MEMBER)
        )).scalars())

    async def index_templates(self, corp_id: str, names: Iterable[str] | None,
                              ) -> dict[str, tuple[str, ...]]:
        """Items of the templates ``names`` (all when None); a missing one is left out."""
        q = select(Template.name, Template.permissions).where(Template.corp_id == corp_id)
        if names is not None:
            q = q.where(Template.name.in_(sorted(set(names))))
        return {n: tuple(items) for n, items in (await self.s.execute(q)).all()}

    async def _entries(self, corp_id: str, ids: Sequence[str] | None) -> dict[str, Entry]:
        mq = select(Member.user_id, Member.level, Member.role).where(Member.corp_id == corp_id)
        gq = select(Grant.user_id, Grant.name, Grant.expires_at).where(Grant.corp_id == corp_id)
        tq = (select(TemplateAssignment.user_id, Template.name)
              .join(Template, TemplateAssignment.template_id == Template.id)
              .where(Template.corp_id == corp_id))
        if ids is not None:
            mq = mq.where(Member.user_id.in_(ids))
            gq = gq.where(Grant.user_id.in_(ids))
            tq = tq.where(TemplateAssignment.user_id.in_(ids))
        base: dict[str, tuple[str, str | None]] = {
            u: (lv, r) for u, lv, r in (await self.s.execute(mq)).all()}
        grants: dict[str, list[GrantIn]] = {}
        for u, n, exp in (await self.s.execute(gq.order_by(Grant.user_id, Grant.name))).all():
            grants.setdefault(u, []).append(GrantIn(n, exp))
        tpls: dict[str, list[str]] = {}
        for u, n in (await self.s.execute(tq.order_by(TemplateAssignment.user_id,
                                                      Template.name))).all():
            tpls.setdefault(u, []).append(n)
        out: dict[str, Entry] = {}
        for u in set(base) | set(grants) | set(tpls):
            level, role = base.get(u, (MEMBER, None))
            out[u] = Entry(level, role, tuple(grants.get(u, ())), tuple(tpls.get(u, ())))
        return out

    async def grant_row(self, corp_id: str, user_id: str, name: str) -> Grant | None:
        return (await self.s.execute(
            select(Grant).where(Grant.corp_id == corp_id, Grant.user_id == user_id,
                                Grant.name == name)
        )).scalar_one_or_none()

    async def who_has(self, corp_id: str, name: str, catalog: Catalog,
                      now: datetime) -> dict[str, tuple[Source, ...]]:
        """Members holding ``name`` (a permission, or a role) with the sources that give
        it, all of them, by user id (the decision API and exports; chat reads a page)."""
        ids_q = (await self._holder_ids(corp_id, name, catalog, now)).subquery()
        ids = list((await self.s.execute(select(ids_q.c[0]).order_by(ids_q.c[0]))).scalars())
        return await self.sources_for(corp_id, name, catalog, now, ids)

    async def who_has_page(self, corp_id: str, name: str, catalog: Catalog, now: datetime,
                           *, offset: int, limit: int) -> tuple[int, dict[str, tuple[Source, ...]]]:
        """How many members hold ``name``, and the ``limit`` holders from ``offset`` on (by
        user id) with their sources: one read over the indexes whatever the number of
        holders, and holdings computed for that page only."""
        ids_q = (await self._holder_ids(corp_id, name, catalog, now)).subquery()
        # The page and the count in one statement (a window count over the whole UNION);
        # past the last page there is no row to carry it, and the count is asked alone.
        rows = (await self.s.execute(
            select(ids_q.c[0], func.count().over()).order_by(ids_q.c[0])
            .limit(limit).offset(offset))).all()
        total = int(rows[0][1]) if rows else int((await self.s.execute(
            select(func.count()).select_from(ids_q))).scalar_one())
        return total, await self.sources_for(corp_id, name, catalog, now, [r[0] for r in rows])

    async def sources_for(self, corp_id: str, name: str, catalog: Catalog, now: datetime,
                          user_ids: list[str]) -> dict[str, tuple[Source, ...]]:
        """The sources that give each of ``user_ids`` ``name`` (those holding it), in order."""
        if catalog.is_role(name) and not catalog.is_permission(name):
            return await self._role_sources(corp_id, name, now, user_ids)
        held = await self.holdings_many(corp_id, user_ids, now)
        out: dict[str, tuple[Source, ...]] = {}
        for uid in user_ids:
            srcs = sources_of(held[uid], catalog, now).get(name)
            if srcs:
                out[uid] = srcs
        return out

    async def _holder_ids(self, corp_id: str, name: str, catalog: Catalog,
                          now: datetime) -> Any:
        """One UNION (so: distinct) of the user ids that hold ``name`` through any source:
        the owner's level, a role, a live grant, a template."""
        live = or_(Grant.expires_at.is_(None), Grant.expires_at > now)
        if catalog.is_role(name) and not catalog.is_permission(name):
            parts: list[Any] = [select(Member.user_id).where(Member.corp_id == corp_id,
                                                              Member.role == name)]
            if name in (OWNER_ROLE, "admin"):
                parts.append(select(Member.user_id).where(Member.corp_id == corp_id,
                                                          Member.level == name))
            parts.append(select(Grant.user_id).where(Grant.corp_id == corp_id,
                                                     Grant.name == name, live))
            return union(*parts)
        # Every name that can carry the permission: itself, the roles that include it, and
        # the templates whose items (permissions, wildcards, roles) expand to it.
        carriers = sorted({name} | {r for r in catalog.roles if name in catalog.expand(r)})
        parts = [select(Member.user_id).where(Member.corp_id == corp_id,
                                              Member.role.in_(carriers)),
                 select(Grant.user_id).where(Grant.corp_id == corp_id,
                                             Grant.name.in_(carriers), live)]
        if name in catalog.expand(OWNER_ROLE):
            parts.append(select(Member.user_id).where(Member.corp_id == corp_id,
                                                      Member.level == OWNER))
        tpl_ids = [tid for tid, items in (await self.s.execute(
            select(Template.id, Template.permissions).where(Template.corp_id == corp_id)
        )).all() if any(name in catalog.expand(i) for i in items)]
        if tpl_ids:
            parts.append(select(TemplateAssignment.user_id)
                         .where(TemplateAssignment.template_id.in_(tpl_ids)))
        return union(*parts)
    async def _role_sources(self, corp_id: str, role: str, now: datetime,
                            user_ids: list[str]) -> dict[str, tuple[Source, ...]]:
        """Each of ``user_ids`` holding ``role``: by level (owner, admin), as their role, by a
        live grant of it; in the order of ``user_ids``."""
        found: dict[str, list[Source]] = {}
        for chunk in _chunks(user_ids, 500):
            if role in (OWNER_ROLE, "admin"):
                for uid in (await self.s.execute(
                    select(Member.user_id).where(Member.corp_id == corp_id, Member.level == role,
                                                 Member.user_id.in_(chunk))
                )).scalars():
                    found.setdefault(uid, []).append(Source("level", role))
            for uid in (await self.s.execute(
                select(Member.user_id).where(Member.corp_id == corp_id, Member.role == role,
                                             Member.user_id.in_(chunk))
            )).scalars():
                found.setdefault(uid, []).append(Source("role", role))
            for uid, exp in (await self.s.execute(
                select(Grant.user_id, Grant.expires_at).where(
                    Grant.corp_id == corp_id, Grant.name == role, Grant.user_id.in_(chunk),
                    or_(Grant.expires_at.is_(None), Grant.expires_at > now))
            )).all():
                found.setdefault(uid, []).append(Source("grant", role, exp))
        return {u: tuple(found[u]) for u in user_ids if u in found}

    # ---- grants --------------------------------------------------------------------------
    async def grant(self, corp_id: str, user_id: str, name: str, *, by: str, now: datetime,
                    expires_at: datetime | None, request_id: int | None = None,
                    batch_id: str | None = None) -> GrantChange:
        """Add a grant, merging with an existing one of the same name (longest expiry)."""
        row = await self.grant_row(corp_id, user_id, name)
        if row is not None and row.expires_at is not None and row.expires_at <= now:
            # An expired row the scheduler has not reached yet: it no longer counts.
            await self.s.delete(row)
            await self.s.flush()
            row = None
        if row is None:
            new = Grant(corp_id=corp_id, user_id=user_id, name=name, granted_by=by,
                        request_id=request_id, batch_id=batch_id, created_at=now,
                        expires_at=expires_at)
            self.s.add(new)
            await self.s.flush()
            return GrantChange(None, None, new)
        before = row.expires_at
        merged = longest(row.expires_at, expires_at)
        if merged != row.expires_at:
            row.expires_at, row.granted_by, row.request_id = merged, by, request_id
            row.batch_id = batch_id
            await self.s.flush()
        return GrantChange(row, before, row)

    async def revoke(self, corp_id: str, user_id: str, name: str) -> Grant | None:
        row = await self.grant_row(corp_id, user_id, name)
        if row is not None:
            await self.s.delete(row)
            await self.s.flush()
        return row

    async def remove_expired(self, grant_id: int, now: datetime) -> EndedGrant | None:
        """Remove grant ``grant_id`` when it has run out by ``now``; None when it is gone
        already (revoked) or was extended (a later due row covers the new expiry)."""
        row = await self.s.get(Grant, grant_id)
        if row is None or row.expires_at is None or row.expires_at > now:
            return None
        await self.s.delete(row)
        await self.s.flush()
        return EndedGrant(row.user_id, row.name, row.expires_at, row.granted_by)

    async def grants_of(self, corp_id: str, user_id: str) -> Sequence[Grant]:
        return (await self.s.execute(
            select(Grant).where(Grant.corp_id == corp_id, Grant.user_id == user_id)
            .order_by(Grant.name)
        )).scalars().all()

    # ---- templates -----------------------------------------------------------------------
    async def template(self, corp_id: str, name: str, *,
                       for_update: bool = False) -> TemplateView | None:
        stmt = select(Template).where(Template.corp_id == corp_id, Template.name == name)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.s.execute(stmt)).scalar_one_or_none()
        return None if row is None else _template_view(row)

    async def templates(self, corp_id: str) -> list[tuple[TemplateView, int]]:
        """Every template with its number of holders, by name."""
        rows = (await self.s.execute(
            select(Template).where(Template.corp_id == corp_id).order_by(Template.name)
        )).scalars().all()
        counts = await self._holder_counts([t.id for t in rows])
        return [(_template_view(t), counts.get(t.id, 0)) for t in rows]

    async def add_template(self, corp_id: str, name: str, items: list[str], *, by: str,
                           now: datetime) -> None:
        self.s.add(Template(corp_id=corp_id, name=name, permissions=items, created_by=by,
                            created_at=now, updated_at=now))
        await self.s.flush()

    async def set_template_items(self, template: TemplateView, items: list[str],
                                 now: datetime) -> None:
        await self.s.execute(update(Template).where(Template.id == template.id).values(
            permissions=items, updated_at=now))

    async def _holder_counts(self, ids: list[int]) -> dict[int, int]:
        if not ids:
            return {}
        return {tid: int(n) for tid, n in (await self.s.execute(
            select(TemplateAssignment.template_id, func.count())
            .where(TemplateAssignment.template_id.in_(ids))
            .group_by(TemplateAssignment.template_id)
        )).all()}

    async def holders_page(self, template_id: int, *, offset: int,
                           limit: int) -> tuple[int, list[str]]:
        """How many members hold the template, and ``limit`` of them from ``offset`` on
        (by user id)."""
        total = (await self._holder_counts([template_id])).get(template_id, 0)
        ids = list((await self.s.execute(
            select(TemplateAssignment.user_id).where(TemplateAssignment.template_id == template_id)
            .order_by(TemplateAssignment.user_id).limit(limit).offset(offset)
        )).scalars())
        return total, ids

    async def holders(self, template_id: int) -> list[str]:
        return list((await self.s.execute(
            select(TemplateAssignment.user_id).where(TemplateAssignment.template_id == template_id)
            .order_by(TemplateAssignment.user_id)
        )).scalars())

    async def assign(self, template: TemplateView | Template, user_id: str, *, by: str,
                     now: datetime, via_dept: str | None = None) -> bool:
        """Assign ``template`` to ``user_id``; False when it already was."""
        exists = (await self.s.execute(
            select(TemplateAssignment.id).where(TemplateAssignment.template_id == template.id,
                                                TemplateAssignment.user_id == user_id)
        )).first()
        if exists:
            return False
        self.s.add(TemplateAssignment(template_id=template.id, user_id=user_id,
                                      via_dept=via_dept, assigned_by=by, created_at=now))
        await self.s.flush()
        return True

    async def delete_template(self, template: TemplateView) -> None:
        await self.s.execute(delete(TemplateAssignment)
                             .where(TemplateAssignment.template_id == template.id))
        await self.s.execute(delete(Template).where(Template.id == template.id))


def _template_view(t: Template) -> TemplateView:
    return TemplateView(t.id, t.name, tuple(t.permissions))


def _chunks(items: Sequence[str], n: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


async def schedule_expiry(due: DueWorkRepo, grant: Grant, now: datetime) -> None:
    """The due row that ends a time-bound grant (one per grant and expiry, so an extended
    grant outlives its earlier row, which then finds it still live and does nothing)."""
    if grant.expires_at is not None:
        await due.schedule(
            "grant_expire", grant.expires_at, {"grant_id": grant.id}, now,
            dedupe_key=f"grant-expire:{grant.id}:{int(grant.expires_at.timestamp())}")
