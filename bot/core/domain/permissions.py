"""Business permissions, pure: the catalog, name resolution and effective permissions.

A member's *effective* permissions are the union of their live sources:

* their **level**: the owner holds every catalog permission and ``owner.transfer``
  (admins hold administrative authority, not business permissions);
* their **role** (``role set``): the role's permission patterns (wildcards like ``crm.*``);
* their **grants**: each names a permission or a role; a time-bound grant counts until it
  expires (``expires_at`` is exclusive);
* their **templates**: each item is a permission, a wildcard or a role, read live, so
  editing a template changes every holder at once.

A permission held through several sources lasts as long as the longest of them (a
permanent source makes it permanent); revoking one source keeps what another justifies.
Nothing here performs I/O; the store loads :class:`Holdings` and the handlers render.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Literal, Protocol

OWNER_ROLE = "owner"
ADMIN_ROLE = "admin"
BUILTIN_ROLES = frozenset({OWNER_ROLE, ADMIN_ROLE})
TRANSFER_PERMISSION = "owner.transfer"
BUILTIN_PERMISSIONS: Mapping[str, tuple[str, str]] = {
    TRANSFER_PERMISSION: ("转让主管理员", "Transfer the main administrator"),
}

SourceKind = Literal["level", "role", "grant", "template"]


class _CatalogLike(Protocol):
    @property
    def permissions(self) -> Mapping[str, object]: ...
    @property
    def roles(self) -> Mapping[str, list[str]]: ...
    @property
    def sensitive(self) -> list[str]: ...


@dataclass(frozen=True)
class Catalog:
    """Permissions (id -> zh/en names), roles (name -> patterns) and sensitive names."""

    permissions: Mapping[str, tuple[str, str]]
    roles: Mapping[str, tuple[str, ...]]
    sensitive: frozenset[str] = frozenset()
    _expanded: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_settings(cls, c: _CatalogLike) -> Catalog:
        perms: dict[str, tuple[str, str]] = dict(BUILTIN_PERMISSIONS)
        for pid, names in c.permissions.items():
            perms[pid] = (str(getattr(names, "zh", pid)), str(getattr(names, "en", pid)))
        return cls(perms, {r: tuple(p) for r, p in c.roles.items()},
                   frozenset(c.sensitive) | {TRANSFER_PERMISSION})

    # ---- names ---------------------------------------------------------------------------
    def is_role(self, name: str) -> bool:
        return name in self.roles or name in BUILTIN_ROLES

    def is_permission(self, name: str) -> bool:
        return name in self.permissions

    def is_pattern(self, name: str) -> bool:
        return any(ch in name for ch in "*?[") and bool(self.match(name))

    def known(self, name: str) -> bool:
        return self.is_role(name) or self.is_permission(name)

    def match(self, pattern: str) -> frozenset[str]:
        return frozenset(p for p in self.permissions if fnmatchcase(p, pattern))

    def suggest(self, name: str, *, roles: bool = True, n: int = 3) -> list[str]:
        """The closest known names, for a did-you-mean."""
        pool = list(self.permissions) + (list(self.roles) if roles else [])
        lowered = {p.lower(): p for p in pool}
        hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
        return [lowered[h] for h in hits]

    def label(self, perm: str, lang: Literal["zh", "en"]) -> str:
        names = self.permissions.get(perm)
        if names is None:
            return perm
        return f"{perm} {names[0] if lang == 'zh' else names[1]}"

    # ---- expansion -----------------------------------------------------------------------
    def expand(self, name: str) -> frozenset[str]:
        """The permissions ``name`` stands for: a role's, a pattern's matches, or itself."""
        got = self._expanded.get(name)
        if got is not None:
            return got
        if name == OWNER_ROLE:
            got = frozenset(self.permissions)
        elif name == ADMIN_ROLE:
            got = frozenset()
        elif name in self.roles:
            got = frozenset().union(*(self.match(p) for p in self.roles[name]))
        elif name in self.permissions:
            got = frozenset({name})
        else:
            got = self.match(name)
        self._expanded[name] = got
        return got

    def is_sensitive(self, name: str) -> bool:
        """Granting ``name`` needs an approved request: it, or anything it contains, is
        marked sensitive (a role that bundles a sensitive permission is sensitive too)."""
        if name in self.sensitive:
            return True
        return bool(self.expand(name) & self.sensitive)

    def sensitive_in(self, names: Iterable[str]) -> list[str]:
        return sorted({n for n in names if self.is_sensitive(n)})


# ---- effective permissions ---------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Source:
    """Where one permission comes from."""

    kind: SourceKind
    name: str                          # the level, role, granted name or template name
    expires_at: datetime | None = None


@dataclass(frozen=True)
class GrantIn:
    name: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class EndedGrant:
    """A time-bound grant that ran out and was removed."""

    user_id: str
    name: str
    expires_at: datetime
    granted_by: str


@dataclass(frozen=True)
class TemplateView:
    """A stored permission template: its id, name and items, in order."""

    id: int
    name: str
    permissions: tuple[str, ...]


@dataclass(frozen=True)
class TemplateIn:
    name: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class Holdings:
    """Everything that can give one member permissions, as stored."""

    level: str = "member"
    role: str | None = None
    grants: tuple[GrantIn, ...] = ()
    templates: tuple[TemplateIn, ...] = ()


def live(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or expires_at > now


def longest(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later of two expiries, where None (permanent) outlasts everything."""
    if a is None or b is None:
        return None
    return max(a, b)


def sources_of(h: Holdings, catalog: Catalog, now: datetime) -> dict[str, tuple[Source, ...]]:
    """Each effective permission with its live sources, sorted."""
    out: dict[str, set[Source]] = {}

    def add(perms: Iterable[str], src: Source) -> None:
        for p in perms:
            out.setdefault(p, set()).add(src)

    if h.level == OWNER_ROLE:
        add(catalog.expand(OWNER_ROLE), Source("level", OWNER_ROLE))
    if h.role:
        add(catalog.expand(h.role), Source("role", h.role))
    for g in h.grants:
        if live(g.expires_at, now):
            add(catalog.expand(g.name), Source("grant", g.name, g.expires_at))
    for tpl in h.templates:
        src = Source("template", tpl.name)
        for item in tpl.items:
            add(catalog.expand(item), src)
    return {p: tuple(sorted(s, key=_source_key)) for p, s in sorted(out.items())}


def _source_key(s: Source) -> tuple[int, str, float]:
    order = {"level": 0, "role": 1, "grant": 2, "template": 3}[s.kind]
    return order, s.name, s.expires_at.timestamp() if s.expires_at else float("inf")


RemovalRoute = Literal["role", "role_grant", "template"]


def ways_to_remove(sources: Iterable[Source], catalog: Catalog) -> tuple[tuple[RemovalRoute, str], ...]:
    """What would take away a permission held through ``sources``, other than revoking a
    grant of it: changing or clearing the member's role ("role", role), revoking the grant of
    a role that contains it ("role_grant", role), or editing a template ("template", name).
    A level (the owner's) is not something to remove this way and is left out."""
    out: dict[tuple[RemovalRoute, str], None] = {}
    for s in sources:
        if s.kind == "role":
            out[("role", s.name)] = None
        elif s.kind == "grant" and catalog.is_role(s.name):
            out[("role_grant", s.name)] = None
        elif s.kind == "template":
            out[("template", s.name)] = None
    return tuple(sorted(out, key=lambda r: (("role", "role_grant", "template").index(r[0]), r[1])))


def effective(h: Holdings, catalog: Catalog, now: datetime) -> frozenset[str]:
    return frozenset(sources_of(h, catalog, now))


def expiry(sources: Iterable[Source]) -> datetime | None:
    """When a permission held through ``sources`` ends (None: it does not)."""
    srcs = list(sources)
    if not srcs:
        raise ValueError("no sources")
    end: datetime | None = srcs[0].expires_at
    for s in srcs[1:]:
        end = longest(end, s.expires_at)
    return end


@dataclass(frozen=True)
class Impact:
    """What a change does to a set of members: who gains and who loses each permission."""

    gains: Mapping[str, tuple[str, ...]]     # permission -> user ids
    losses: Mapping[str, tuple[str, ...]]

    @property
    def empty(self) -> bool:
        return not self.gains and not self.losses

    def people(self) -> int:
        return len({u for us in (*self.gains.values(), *self.losses.values()) for u in us})


def impact(before: Mapping[str, frozenset[str]], after: Mapping[str, frozenset[str]]) -> Impact:
    """Compare effective permissions per user before and after a change."""
    gains: dict[str, list[str]] = {}
    losses: dict[str, list[str]] = {}
    for user in sorted(set(before) | set(after)):
        b, a = before.get(user, frozenset()), after.get(user, frozenset())
        for p in sorted(a - b):
            gains.setdefault(p, []).append(user)
        for p in sorted(b - a):
            losses.setdefault(p, []).append(user)
    return Impact({p: tuple(u) for p, u in gains.items()}, {p: tuple(u) for p, u in losses.items()})
