"""Member requests (product.md section 13), pure: a permission's policy, who approves it,
how long it may be asked for, and when it applies without anyone deciding.

``policy_for`` reads the catalog's policies (a permission's own over the defaults under
``policy``); ``plan_request`` turns one ask into a :class:`Plan`: refused (and why),
applied at once (auto-approval), or asked of an approver pool of which ``need`` must agree.
The pool never holds the requester nor the member the change is about; a test holds that as
a property. Nothing here performs I/O: the handler reads the directory (manager, department
heads) and the store (owner, admins, role holders) into :class:`People` first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

ApproverKind = Literal["owner", "admins", "manager", "dept_leader", "users", "role"]
WARN_SHARE = 0.2        # the holder is warned when this share of a grant's life is left


@dataclass(frozen=True)
class Approver:
    """One entry of a policy's ``approvers``: a word, or ``users`` / ``role`` with names."""

    kind: ApproverKind
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class AutoRule:
    """Apply at once when every given condition holds (None: not a condition)."""

    departments: frozenset[str] | None = None
    max_duration: timedelta | None = None


@dataclass(frozen=True)
class PolicyOverride:
    """A permission's own policy: each field None falls back to the defaults."""

    approvers: tuple[Approver, ...] | None = None
    approvals_required: int | None = None
    max_duration: timedelta | None = None
    auto_approve: AutoRule | None = None
    requestable: bool = True


@dataclass(frozen=True)
class AccessPolicy:
    """The policy one name is asked under, with every field settled."""

    approvers: tuple[Approver, ...]
    approvals_required: int
    max_duration: timedelta | None          # None: no cap (a request may be permanent)
    auto_approve: AutoRule | None = None
    requestable: bool = True


def merged(own: PolicyOverride | None, defaults: AccessPolicy) -> AccessPolicy:
    if own is None:
        return defaults
    return AccessPolicy(
        approvers=own.approvers or defaults.approvers,
        approvals_required=own.approvals_required or defaults.approvals_required,
        max_duration=own.max_duration if own.max_duration is not None else defaults.max_duration,
        auto_approve=own.auto_approve,
        requestable=own.requestable,
    )


def policy_for(name: str, own: Mapping[str, PolicyOverride | None], defaults: AccessPolicy,
               expand: Callable[[str], Iterable[str]]) -> AccessPolicy:
    """The policy of a permission (its own over the defaults), or of a role: the default
    approvers, the strictest of its permissions (every one requestable, the shortest cap,
    the most approvals) and never auto-approved."""
    if name in own:
        return merged(own[name], defaults)
    parts = [merged(own.get(p), defaults) for p in sorted(expand(name))]
    if not parts:
        return defaults
    caps = [p.max_duration for p in parts if p.max_duration is not None]
    return AccessPolicy(
        approvers=defaults.approvers,
        approvals_required=max(p.approvals_required for p in parts),
        max_duration=min(caps) if caps else None,
        auto_approve=None,
        requestable=all(p.requestable for p in parts),
    )


@dataclass(frozen=True)
class People:
    """Who fills each kind of approver for one requester, read when the request is made."""

    owner: str | None = None
    admins: frozenset[str] = frozenset()
    manager: str | None = None
    dept_leaders: frozenset[str] = frozenset()
    role_holders: Mapping[str, frozenset[str]] | None = None
    departments: frozenset[str] = frozenset()     # the requester's, by id and by name


def approver_pool(policy: AccessPolicy, people: People, *exclude: str) -> frozenset[str]:
    """Everyone the policy's approvers name, minus ``exclude`` (the requester and whoever
    the change is about): no one approves their own request or a change about themselves."""
    pool: set[str] = set()
    for a in policy.approvers:
        if a.kind == "owner" and people.owner:
            pool.add(people.owner)
        elif a.kind == "admins":
            pool |= people.admins
        elif a.kind == "manager" and people.manager:
            pool.add(people.manager)
        elif a.kind == "dept_leader":
            pool |= people.dept_leaders
        elif a.kind == "users":
            pool |= set(a.names)
        elif a.kind == "role":
            for r in a.names:
                pool |= (people.role_holders or {}).get(r, frozenset())
    return frozenset(p for p in pool if p and p not in exclude)


def capped(asked: timedelta | None, cap: timedelta | None) -> tuple[timedelta | None, bool]:
    """(the duration granted, whether the ask was cut to the cap). No ask means the cap
    (a member's request is time-bound whenever the policy caps it)."""
    if cap is None:
        return asked, False
    if asked is None:
        return cap, False
    return (cap, True) if asked > cap else (asked, False)


def auto_approved(rule: AutoRule | None, departments: frozenset[str],
                  duration: timedelta | None) -> bool:
    if rule is None:
        return False
    if rule.departments is not None and not (rule.departments & departments):
        return False
    return rule.max_duration is None or (duration is not None and duration <= rule.max_duration)


Outcome = Literal["refused", "auto", "ask"]


@dataclass(frozen=True)
class Plan:
    outcome: Outcome
    duration: timedelta | None = None
    capped: bool = False
    approvers: frozenset[str] = frozenset()
    need: int = 0
    refusal: str | None = None          # "not_requestable" | "not_enough_approvers"


def plan_request(policy: AccessPolicy, people: People, requester: str,
                 asked: timedelta | None, *, subject: str | None = None) -> Plan:
    """What to do with one ask of ``requester`` (for ``subject``, themselves by default)."""
    if not policy.requestable:
        return Plan("refused", refusal="not_requestable")
    duration, cut = capped(asked, policy.max_duration)
    if auto_approved(policy.auto_approve, people.departments, duration):
        return Plan("auto", duration, cut)
    pool = approver_pool(policy, people, requester, subject or requester)
    need = policy.approvals_required
    if len(pool) < need:
        return Plan("refused", duration, cut, pool, need, refusal="not_enough_approvers")
    return Plan("ask", duration, cut, pool, need)


def warn_at(granted_at: datetime, expires_at: datetime, warning: timedelta) -> datetime:
    """When the holder of a grant is warned: at 20% of its life left, or ``warning`` before
    it ends, whichever comes later (the shorter notice)."""
    life = expires_at - granted_at
    return expires_at - min(life * WARN_SHARE, warning)


def may_break_glass(user_id: str, name: str, users: Iterable[str], names: Iterable[str]) -> bool:
    return user_id in set(users) and name in set(names)
