"""DingTalk role sync, pure: what to tell DingTalk so its role labels match Baton.

Catalog roles mapped in ``integrations.dingtalk_roles.map`` are mirrored as DingTalk role
labels (通讯录角色). Baton's store is the truth: a reconcile compares who holds each mapped
role in the store (``desired``) with who carries its label in DingTalk (``actual``) and
lists the :class:`Difference` s; a change to one member gives the roles they gained and lost.
Either way the calls to make come from :func:`plan_calls`: ``addrolesforemps`` and
``removerolesforemps`` take up to 20 role ids and 20 user ids and apply every role to every
user, so users who need the same set of roles share a call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

MAX_PER_CALL = 20            # users, and roles, in one addrolesforemps / removerolesforemps
MEMBERS_PAGE = 100           # topapi/role/simplelist: the largest page DingTalk serves
ROLES_PAGE = 200             # topapi/role/list: the largest page of role groups

Op = Literal["add", "remove"]


@dataclass(frozen=True)
class RoleGroupInfo:
    """A DingTalk role group as ``topapi/role/list`` shows it: its roles as (id, name)."""

    group_id: int
    name: str
    roles: tuple[tuple[int, str], ...] = ()

    def role_id(self, name: str) -> int | None:
        return next((rid for rid, n in self.roles if n == name), None)


@dataclass(frozen=True, order=True)
class Difference:
    """One member whose DingTalk label disagrees with the store: ``missing`` (they hold the
    role in Baton, DingTalk lacks the label) or ``extra`` (DingTalk has a label Baton does
    not give)."""

    role: str                 # the catalog role
    user_id: str
    kind: Literal["missing", "extra"]

    @property
    def op(self) -> Op:
        return "add" if self.kind == "missing" else "remove"


@dataclass(frozen=True)
class RoleCall:
    """One ``addrolesforemps`` or ``removerolesforemps`` call: every role to every user."""

    op: Op
    roles: tuple[str, ...]    # catalog roles (their DingTalk ids are looked up at send time)
    users: tuple[str, ...]

    def payload(self) -> dict[str, object]:
        return {"op": self.op, "roles": list(self.roles), "users": list(self.users)}

    @classmethod
    def from_payload(cls, p: Mapping[str, object]) -> RoleCall:
        op = p.get("op")
        roles, users = p.get("roles"), p.get("users")
        if op not in ("add", "remove") or not isinstance(roles, list) or not isinstance(
                users, list):
            raise ValueError(f"not a role call: {dict(p)!r}")
        return cls("add" if op == "add" else "remove", tuple(map(str, roles)),
                   tuple(map(str, users)))


def differences(desired: Mapping[str, Iterable[str]],
                actual: Mapping[str, Iterable[str]]) -> list[Difference]:
    """Per mapped role (the keys of ``desired``), who is missing from DingTalk and who is
    there without holding the role in Baton; sorted. Roles absent from ``actual`` are taken
    as empty in DingTalk."""
    out: list[Difference] = []
    for role, want in desired.items():
        want_set, have = set(want), set(actual.get(role, ()))
        out += [Difference(role, u, "missing") for u in want_set - have]
        out += [Difference(role, u, "extra") for u in have - want_set]
    return sorted(out)


def change(gained: Iterable[str], lost: Iterable[str], held: Iterable[str],
           mapped: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """A member's change as label edits: the mapped roles to add (gained and held now) and to
    remove (lost and no longer held through any other source)."""
    m, now = set(mapped), set(held)
    return (frozenset(set(gained) & now & m), frozenset((set(lost) - now) & m))


def plan_calls(edits: Iterable[tuple[Op, str, str]]) -> list[RoleCall]:
    """``(op, role, user)`` edits as the fewest calls this grouping finds: users are grouped
    by the exact set of roles they need per op, each group cut into calls of at most 20 users
    and 20 roles. Removals come first (a member moved from one role to another never holds
    both in DingTalk), then additions; calls are in a stable order."""
    need: dict[Op, dict[str, set[str]]] = {"remove": defaultdict(set), "add": defaultdict(set)}
    for op, role, user in edits:
        need[op][user].add(role)
    calls: list[RoleCall] = []
    for op in ("remove", "add"):
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for user, roles in need[op].items():
            groups[tuple(sorted(roles))].append(user)
        for roles_key in sorted(groups):
            users = sorted(groups[roles_key])
            for rs in _chunks(roles_key, MAX_PER_CALL):
                for us in _chunks(users, MAX_PER_CALL):
                    calls.append(RoleCall(op, tuple(rs), tuple(us)))
    return calls


def reconcile_calls(diffs: Iterable[Difference]) -> list[RoleCall]:
    return plan_calls((d.op, d.role, d.user_id) for d in diffs)


def read_cost(role_sizes: Sequence[int], groups: int = 1) -> int:
    """Calls a reconcile spends reading DingTalk: the role list, then each mapped role's
    members a page of 100 at a time (an empty role still takes one call)."""
    pages = -(-max(groups, 1) // ROLES_PAGE)
    return pages + sum(max(1, -(-n // MEMBERS_PAGE)) for n in role_sizes)


def _chunks(items: Sequence[str], n: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


__all__ = ["MAX_PER_CALL", "MEMBERS_PAGE", "ROLES_PAGE", "Difference", "RoleCall", "RoleGroupInfo", "change",
           "differences", "plan_calls", "read_cost", "reconcile_calls"]
