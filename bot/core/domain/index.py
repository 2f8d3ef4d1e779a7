"""The permission index, pure: every member's holdings in memory, resolved on read.

The store is the truth; this is a copy of what makes permissions (levels, roles, grants
with their expiries, template assignments, template items), kept per company. An answer is
computed at read time by :func:`bot.core.domain.permissions.sources_of` from the member's
:class:`Holdings`, the very function ``whoami`` uses, so wildcards, roles inside grants and
templates resolve one way only. Expiry is checked against the ``now`` of the read, so a
grant that has run out stops counting before the scheduler's expiry event arrives.

Template items are held once per template and referenced by name from each holder, so an
edit of a template changes every holder's answer as soon as its items are replaced.
``holders`` keeps a reverse map (name -> members) so who-has looks only at the members
that hold a carrier of the permission, not at every member.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.core.domain.permissions import (
    BUILTIN_ROLES,
    OWNER_ROLE,
    Catalog,
    GrantIn,
    Holdings,
    Source,
    TemplateIn,
    sources_of,
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One member as the index holds them: level, role, grants and template names."""

    level: str = "member"
    role: str | None = None
    grants: tuple[GrantIn, ...] = ()
    templates: tuple[str, ...] = ()

    def names(self) -> Iterable[str]:
        """Every name this member holds something through (for the reverse map)."""
        if self.level in BUILTIN_ROLES:
            yield "level:" + self.level
        if self.role:
            yield "role:" + self.role
        for g in self.grants:
            yield "grant:" + g.name
        for t in self.templates:
            yield "template:" + t


NOBODY = Entry()


class CorpIndex:
    """The holdings of one company."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.entries: dict[str, Entry] = {}
        self.templates: dict[str, tuple[str, ...]] = {}
        self.by_name: dict[str, set[str]] = {}
        # Resolved answers: user -> (sources, computed at, valid until). An answer holds
        # from when it was computed until the first grant in it that expires after that
        # (None: until the member or a template of theirs changes, which drops it).
        self._memo: dict[str, tuple[dict[str, tuple[Source, ...]], datetime,
                                    datetime | None]] = {}

    # ---- writes --------------------------------------------------------------------------
    def put(self, user_id: str, entry: Entry | None) -> None:
        """Replace a member's entry (None or an empty entry: they hold nothing)."""
        self._memo.pop(user_id, None)
        old = self.entries.pop(user_id, None)
        if old is not None:
            for n in old.names():
                users = self.by_name.get(n)
                if users is not None:
                    users.discard(user_id)
                    if not users:
                        del self.by_name[n]
        if entry is None or entry == NOBODY:
            return
        self.entries[user_id] = entry
        for n in entry.names():
            self.by_name.setdefault(n, set()).add(user_id)

    def put_template(self, name: str, items: tuple[str, ...] | None) -> None:
        """Replace a template's items (None: it no longer exists)."""
        for uid in self.by_name.get("template:" + name, ()):
            self._memo.pop(uid, None)
        if items is None:
            self.templates.pop(name, None)
        else:
            self.templates[name] = items

    # ---- reads ---------------------------------------------------------------------------
    def holdings(self, user_id: str) -> Holdings:
        e = self.entries.get(user_id, NOBODY)
        tpls = tuple(TemplateIn(t, self.templates[t]) for t in e.templates
                     if t in self.templates)
        return Holdings(e.level, e.role, e.grants, tpls)

    def sources(self, user_id: str, now: datetime) -> dict[str, tuple[Source, ...]]:
        """Each effective permission of ``user_id`` with its live sources (an unknown member
        holds nothing: the same answer as a member without permissions). Computed by
        ``sources_of`` and kept until it may change (a grant in it expires, the member or
        one of their templates changes); the caller must not modify what it returns."""
        e = self.entries.get(user_id)
        if e is None:
            return {}
        hit = self._memo.get(user_id)
        if hit is not None and hit[1] <= now and (hit[2] is None or now < hit[2]):
            return hit[0]
        got = sources_of(self.holdings(user_id), self.catalog, now)
        ends = [g.expires_at for g in e.grants if g.expires_at is not None and g.expires_at > now]
        self._memo[user_id] = (got, now, min(ends) if ends else None)
        return got

    def warm(self, user_ids: Iterable[str], now: datetime) -> None:
        """Resolve and keep the answers of ``user_ids`` (so a who-has over thousands of
        members reads kept answers instead of resolving each)."""
        for uid in user_ids:
            self.sources(uid, now)

    def sources_for(self, user_id: str, permission: str, now: datetime) -> tuple[Source, ...]:
        """The live sources of one permission: ``sources_of`` over only what the member
        holds that carries it (the same answer as ``sources(user)[permission]``, since a
        source gives a permission only through its own expansion), for who-has, which asks
        this of thousands of members at once."""
        hit = self._memo.get(user_id)
        if hit is not None and hit[1] <= now and (hit[2] is None or now < hit[2]):
            return hit[0].get(permission, ())
        e = self.entries.get(user_id)
        if e is None:
            return ()
        cat = self.catalog
        h = Holdings(
            e.level if permission in cat.expand(e.level) else "member",
            e.role if e.role and permission in cat.expand(e.role) else None,
            tuple(g for g in e.grants if permission in cat.expand(g.name)),
            tuple(TemplateIn(t, carried) for t in e.templates
                  if (carried := tuple(i for i in self.templates.get(t, ())
                                       if permission in cat.expand(i)))))
        return sources_of(h, cat, now).get(permission, ())

    def check(self, user_id: str, permission: str, now: datetime) -> tuple[Source, ...]:
        """The live sources through which ``user_id`` holds ``permission`` (empty: not held)."""
        return self.sources(user_id, now).get(permission, ())

    def candidates(self, name: str) -> set[str]:
        """Members who may hold ``name`` (a permission or a role): every holder of a name
        that carries it. A superset; :meth:`holders` decides exactly."""
        cat = self.catalog
        if cat.is_role(name) and not cat.is_permission(name):
            out = set(self.by_name.get("level:" + name, ()))
            out |= self.by_name.get("role:" + name, set())
            out |= self.by_name.get("grant:" + name, set())
            return out
        out = set()
        if name in cat.expand(OWNER_ROLE):
            out |= self.by_name.get("level:" + OWNER_ROLE, set())
        for key, users in self.by_name.items():
            kind, _, held = key.partition(":")
            if kind == "template":
                carries = any(name in cat.expand(i) for i in self.templates.get(held, ()))
            else:
                carries = kind in ("role", "grant") and name in cat.expand(held)
            if carries:
                out |= users
        return out

    def holders(self, name: str, now: datetime) -> dict[str, tuple[Source, ...]]:
        """Members holding ``name`` (a permission, or a role as such) with their sources,
        by user id."""
        cat = self.catalog
        out: dict[str, tuple[Source, ...]] = {}
        if cat.is_role(name) and not cat.is_permission(name):
            for uid in sorted(self.candidates(name)):
                e = self.entries[uid]
                srcs: list[Source] = []
                if e.level == name:
                    srcs.append(Source("level", name))
                if e.role == name:
                    srcs.append(Source("role", name))
                srcs += [Source("grant", g.name, g.expires_at) for g in e.grants
                         if g.name == name and (g.expires_at is None or g.expires_at > now)]
                if srcs:
                    out[uid] = tuple(srcs)
            return out
        for uid in sorted(self.candidates(name)):
            got = self.sources_for(uid, name, now)
            if got:
                out[uid] = got
        return out


    def holders_page(self, permission: str, now: datetime, *, after: str | None, limit: int,
                     ) -> tuple[list[tuple[str, tuple[Source, ...]]], bool]:
        """Holders of ``permission`` with user ids after ``after``, at most ``limit``, in
        user id order, and whether more follow. Only as many members are resolved as the
        page needs (plus one, to know whether it is the last)."""
        page: list[tuple[str, tuple[Source, ...]]] = []
        for uid in sorted(self.candidates(permission)):
            if after is not None and uid <= after:
                continue
            got = self.sources_for(uid, permission, now)
            if not got:
                continue
            if len(page) == limit:
                return page, True
            page.append((uid, got))
        return page, False


class PermissionIndex:
    """Every company's :class:`CorpIndex`, and ``as_of``: the feed sequence it reflects."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.corps: dict[str, CorpIndex] = {}
        self.as_of = 0

    def corp(self, corp_id: str) -> CorpIndex:
        got = self.corps.get(corp_id)
        if got is None:
            got = self.corps[corp_id] = CorpIndex(self.catalog)
        return got

    def load(self, corp_id: str, entries: Mapping[str, Entry],
             templates: Mapping[str, tuple[str, ...]]) -> None:
        """Replace one company wholesale."""
        c = self.corps[corp_id] = CorpIndex(self.catalog)
        for name, items in templates.items():
            c.put_template(name, items)
        for uid, e in entries.items():
            c.put(uid, e)
