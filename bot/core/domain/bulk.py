"""Bulk import, pure: read the rows of a permission table, compare them with the store,
and plan the changes (a dry run) — or refuse the file, naming each bad row.

The table has one row per assignment: ``user_id | name | type | value | expires_at |
source``, where ``type`` is ``role`` (the member's one business role), ``grant`` (a
permission or role, optionally until ``expires_at``), ``template`` (an assignment) or
``level`` (owner / admin; informational: levels change through ``admin add/remove`` and
``transfer-owner`` only, so a level row must match the store). ``name`` and ``source`` are
informational. In ``add`` mode the file only adds and updates; in ``replace`` mode whatever
the store holds that the file does not list (roles, grants, templates) is removed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from bot.core.domain.permissions import BUILTIN_ROLES, Catalog

Kind = Literal["role", "grant", "template", "level"]
Mode = Literal["add", "replace"]
KINDS: Mapping[str, Kind] = {
    "role": "role", "角色": "role", "grant": "grant", "授权": "grant", "权限": "grant",
    "template": "template", "模板": "template", "level": "level", "身份": "level",
}
_UID = re.compile(r"[A-Za-z0-9_\-.@$]{1,64}")


@dataclass(frozen=True, order=True, slots=True)
class Entry:
    """One assignment a member holds (or a file asks for)."""

    user_id: str
    kind: Kind
    value: str
    expires_at: datetime | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        # A member has one role: the key of a role row does not include its value.
        return (self.user_id, self.kind, "" if self.kind == "role" else self.value)


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    code: str                       # the message key suffix: import_row_<code>
    params: Mapping[str, str] = field(default_factory=dict)
    hints: tuple[str, ...] = ()     # did-you-mean: the closest known names (unknown ones)


@dataclass(frozen=True, slots=True)
class RowResult:
    row: int
    status: Literal["create", "update", "unchanged", "error"]
    entry: Entry | None = None
    error: RowError | None = None


@dataclass(frozen=True, slots=True)
class Change:
    op: Literal["create", "update", "remove"]
    entry: Entry                     # the state after (for remove: what is removed)
    before: Entry | None = None      # the state before (update and remove)


@dataclass(frozen=True)
class Plan:
    rows: tuple[RowResult, ...]
    changes: tuple[Change, ...]

    @property
    def errors(self) -> list[RowResult]:
        return [r for r in self.rows if r.status == "error"]

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def removals(self) -> int:
        return sum(1 for c in self.changes if c.op == "remove")


def parse_time(text: str, now: datetime) -> datetime | None:
    """``2026-12-01``, ``2026-12-01 08:00`` or full ISO 8601; naive times are UTC."""
    t = text.strip()
    if not t:
        return None
    try:
        at = datetime.fromisoformat(t.replace("Z", "+00:00").replace("/", "-"))
    except ValueError:
        raise ValueError(t) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def read_rows(rows: Iterable[tuple[int, Mapping[str, str]]], *, catalog: Catalog,
              members: Mapping[str, str], templates: set[str], now: datetime,
              names: Mapping[str, str | None] | None = None,
              ) -> tuple[list[tuple[int, Entry]], list[RowError]]:
    """Validate each row: the entries it asks for, and the errors (row number and reason,
    with a did-you-mean for an unknown member, permission, role or template).

    ``members`` maps every known userId to its level; ``names`` (optional) their names.
    """
    good: list[tuple[int, Entry]] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str, str], int] = {}
    for n, cells in rows:
        uid = cells.get("user_id", "").strip()
        kind_text = cells.get("type", "").strip()
        value = cells.get("value", "").strip()
        if not uid:
            errors.append(RowError(n, "no_user"))
            continue
        if _UID.fullmatch(uid) is None:
            errors.append(RowError(n, "bad_user", {"user": uid[:64]}))
            continue
        if uid not in members:
            errors.append(RowError(n, "unknown_user", {"user": uid}, _close_members(
                uid, cells.get("name", "").strip(), members, names or {})))
            continue
        kind = KINDS.get(kind_text.lower())
        if kind is None:
            errors.append(RowError(n, "bad_type", {"type": kind_text[:32]}))
            continue
        if not value:
            errors.append(RowError(n, "no_value"))
            continue
        try:
            expires = parse_time(cells.get("expires_at", ""), now)
        except ValueError:
            errors.append(RowError(n, "bad_time", {"time": cells.get("expires_at", "")[:40]}))
            continue
        if expires is not None and kind != "grant":
            errors.append(RowError(n, "expiry_not_grant"))
            continue
        if expires is not None and expires <= now:
            errors.append(RowError(n, "expired", {"time": cells.get("expires_at", "")[:40]}))
            continue
        problem = _check_value(kind, value, catalog, templates, members.get(uid, "member"))
        if problem is not None:
            errors.append(RowError(n, problem, {"value": value[:64]},
                                   _close_values(problem, value, catalog, templates)))
            continue
        entry = Entry(uid, kind, value, expires)
        if entry.key in seen:
            code = "two_roles" if kind == "role" else "duplicate"
            errors.append(RowError(n, code, {"other": str(seen[entry.key])}))
            continue
        seen[entry.key] = n
        good.append((n, entry))
    return good, errors


def _check_value(kind: Kind, value: str, cat: Catalog, templates: set[str],
                 level: str) -> str | None:
    if kind == "role":
        if value in BUILTIN_ROLES:
            return "builtin_role"
        return None if value in cat.roles else "unknown_role"
    if kind == "grant":
        if value in BUILTIN_ROLES:
            return "builtin_role"
        return None if cat.known(value) else "unknown_permission"
    if kind == "template":
        return None if value in templates else "unknown_template"
    return None if value == level else "level_differs"


def _close(name: str, pool: Iterable[str], n: int = 3) -> tuple[str, ...]:
    """The closest of ``pool`` to ``name``, case-insensitively (as chat commands suggest)."""
    lowered = {p.lower(): p for p in pool}
    return tuple(lowered[h] for h in difflib.get_close_matches(name.lower(), list(lowered),
                                                               n=n, cutoff=0.5))


def _close_values(problem: str, value: str, cat: Catalog, templates: set[str],
                  ) -> tuple[str, ...]:
    if problem == "unknown_permission":
        return tuple(cat.suggest(value))      # a grant may name a permission or a role
    if problem == "unknown_role":
        return _close(value, cat.roles)
    if problem == "unknown_template":
        return _close(value, templates)
    return ()


def _close_members(uid: str, name: str, members: Mapping[str, str],
                   names: Mapping[str, str | None]) -> tuple[str, ...]:
    """Known userIds the row may mean: those whose name is the row's name, then the
    userIds closest to the one written."""
    same = [u for u, nm in names.items() if name and nm and nm.strip() == name and u in members]
    return tuple(dict.fromkeys([*sorted(same), *_close(uid, members)]))[:3]


def plan(file_entries: list[tuple[int, Entry]], errors: list[RowError],
         current: Iterable[Entry], mode: Mode) -> Plan:
    """The dry run: per-row results and, when no row is in error, the changes."""
    have = {e.key: e for e in current if e.kind != "level"}
    results: list[RowResult] = [RowResult(e.row, "error", error=e) for e in errors]
    changes: list[Change] = []
    listed: set[tuple[str, str, str]] = set()
    for n, entry in file_entries:
        listed.add(entry.key)
        if entry.kind == "level":
            results.append(RowResult(n, "unchanged", entry))
            continue
        old = have.get(entry.key)
        if old is None:
            results.append(RowResult(n, "create", entry))
            changes.append(Change("create", entry))
        elif old.value != entry.value or old.expires_at != entry.expires_at:
            results.append(RowResult(n, "update", entry))
            changes.append(Change("update", entry, old))
        else:
            results.append(RowResult(n, "unchanged", entry))
    if mode == "replace":
        for key, old in sorted(have.items()):
            if key not in listed:
                changes.append(Change("remove", old, old))
    results.sort(key=lambda r: r.row)
    return Plan(tuple(results), tuple(changes) if not errors else ())


def inverse(changes: Iterable[Change]) -> list[Change]:
    """The changes that undo ``changes`` (applied in reverse order)."""
    out: list[Change] = []
    for c in reversed(list(changes)):
        if c.op == "create":
            out.append(Change("remove", c.entry, c.entry))
        elif c.op == "remove":
            out.append(Change("create", c.entry))
        else:
            assert c.before is not None
            out.append(Change("update", c.before, c.entry))
    return out


# ---- (de)serialising plans into a request's payload ---------------------------------------

def basis(current: Iterable[Entry], users: Iterable[str] | None = None) -> dict[str, Any]:
    """What an import was planned against (only ``users``' entries, when given): a digest of
    the entries without an expiry, and the time-bound ones themselves, so that one lapsing
    before the approval is not taken for an edit (:func:`same_basis`). Admin levels are
    left out (an import does not change them)."""
    only = None if users is None else set(users)
    kept = [e for e in current if e.kind != "level" and (only is None or e.user_id in only)]
    lasting = sorted(json.dumps(entry_to_json(e), ensure_ascii=False)
                     for e in kept if e.expires_at is None)
    return {"digest": hashlib.sha256("\n".join(lasting).encode()).hexdigest(),
            "timed": sorted(entry_to_json(e) for e in kept
                            if e.expires_at is not None)}


def same_basis(saved: Mapping[str, Any], current: Iterable[Entry], users: Iterable[str] | None,
               now: datetime) -> bool:
    """Whether the store (``current``, read at ``now``) is still what :func:`basis` saw,
    but for time-bound entries that have lapsed since (they end by themselves)."""
    mine = basis(current, users)
    still = sorted(v for v in saved["timed"] if datetime.fromisoformat(str(v[3])) > now)
    return bool(mine["digest"] == saved["digest"] and mine["timed"] == still)


def entry_to_json(e: Entry) -> list[str | None]:
    return [e.user_id, e.kind, e.value, e.expires_at.isoformat() if e.expires_at else None]


def entry_from_json(v: list[str | None]) -> Entry:
    uid, kind, value, exp = v
    if uid is None or value is None or kind not in ("role", "grant", "template", "level"):
        raise ValueError(f"not an entry: {v!r}")
    return Entry(uid, cast(Kind, kind), value, datetime.fromisoformat(exp) if exp else None)


def change_to_json(c: Change) -> dict[str, object]:
    return {"op": c.op, "e": entry_to_json(c.entry),
            "b": entry_to_json(c.before) if c.before else None}


def change_from_json(d: Mapping[str, Any]) -> Change:
    op = d["op"]
    if op not in ("create", "update", "remove"):
        raise ValueError(f"not a change: {d!r}")
    b = d.get("b")
    return Change(op, entry_from_json(list(d["e"])), entry_from_json(list(b)) if b else None)
