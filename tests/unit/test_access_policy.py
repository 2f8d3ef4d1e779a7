"""The member-request policy (bot/core/domain/access.py) as tables, and the property that
no requester nor subject is ever among their own approvers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.domain.access import (
    AccessPolicy,
    Approver,
    AutoRule,
    People,
    Plan,
    PolicyOverride,
    approver_pool,
    capped,
    plan_request,
    policy_for,
    warn_at,
)

H = timedelta(hours=1)
D = timedelta(days=1)
OWNER, ADMINS = Approver("owner"), Approver("admins")
MANAGER, LEADER = Approver("manager"), Approver("dept_leader")
PEOPLE = People(owner="boss", admins=frozenset({"a1", "a2"}), manager="mgr",
                dept_leaders=frozenset({"lead"}), role_holders={"auditor": frozenset({"au"})},
                departments=frozenset({"2", "销售部"}))
DEFAULTS = AccessPolicy((OWNER, ADMINS), 1, 7 * D)


def pol(*approvers: Approver, need: int = 1, cap: timedelta | None = 7 * D,
        auto: AutoRule | None = None, requestable: bool = True) -> AccessPolicy:
    return AccessPolicy(approvers, need, cap, auto, requestable)


# (policy, requester, asked) -> plan
PLANS: list[tuple[AccessPolicy, str, timedelta | None, Plan]] = [
    # the defaults: the owner and the admins, one of them; no ask means the cap
    (DEFAULTS, "m", 8 * H, Plan("ask", 8 * H, False, frozenset({"boss", "a1", "a2"}), 1)),
    (DEFAULTS, "m", None, Plan("ask", 7 * D, False, frozenset({"boss", "a1", "a2"}), 1)),
    # over the cap: capped, and flagged so the reply says so
    (pol(ADMINS, cap=8 * H), "m", 3 * D, Plan("ask", 8 * H, True, frozenset({"a1", "a2"}), 1)),
    # no cap at all: a request may be permanent
    (pol(ADMINS, cap=None), "m", None, Plan("ask", None, False, frozenset({"a1", "a2"}), 1)),
    # an admin asking is not their own approver
    (pol(ADMINS), "a1", H, Plan("ask", H, False, frozenset({"a2"}), 1)),
    (pol(ADMINS, need=2), "a1", H,
     Plan("refused", H, False, frozenset({"a2"}), 2, "not_enough_approvers")),
    # manager, department head, users, role
    (pol(MANAGER), "m", H, Plan("ask", H, False, frozenset({"mgr"}), 1)),
    (pol(LEADER), "m", H, Plan("ask", H, False, frozenset({"lead"}), 1)),
    (pol(LEADER), "lead", H, Plan("refused", H, False, frozenset(), 1, "not_enough_approvers")),
    (pol(Approver("users", ("u1", "m"))), "m", H, Plan("ask", H, False, frozenset({"u1"}), 1)),
    (pol(Approver("role", ("auditor",))), "m", H, Plan("ask", H, False, frozenset({"au"}), 1)),
    (pol(Approver("role", ("nobody",))), "m", H,
     Plan("refused", H, False, frozenset(), 1, "not_enough_approvers")),
    (pol(MANAGER, Approver("users", ("u1",)), need=2), "m", H,
     Plan("ask", H, False, frozenset({"mgr", "u1"}), 2)),
    # auto-approval: by duration, by department, both
    (pol(ADMINS, auto=AutoRule(max_duration=2 * H)), "m", 2 * H, Plan("auto", 2 * H)),
    (pol(ADMINS, auto=AutoRule(max_duration=2 * H)), "m", 3 * H,
     Plan("ask", 3 * H, False, frozenset({"a1", "a2"}), 1)),
    (pol(ADMINS, cap=None, auto=AutoRule(max_duration=2 * H)), "m", None,
     Plan("ask", None, False, frozenset({"a1", "a2"}), 1)),
    (pol(ADMINS, auto=AutoRule(departments=frozenset({"销售部"}))), "m", D, Plan("auto", D)),
    (pol(ADMINS, auto=AutoRule(departments=frozenset({"财务部"}))), "m", D,
     Plan("ask", D, False, frozenset({"a1", "a2"}), 1)),
    (pol(ADMINS, auto=AutoRule(frozenset({"2"}), H)), "m", 2 * H,
     Plan("ask", 2 * H, False, frozenset({"a1", "a2"}), 1)),
    # not requestable: refused before anything else
    (pol(ADMINS, requestable=False), "m", H, Plan("refused", refusal="not_requestable")),
]


@pytest.mark.parametrize(("policy", "requester", "asked", "plan"), PLANS)
def test_plans(policy: AccessPolicy, requester: str, asked: timedelta | None, plan: Plan) -> None:
    assert plan_request(policy, PEOPLE, requester, asked) == plan


OWN = {
    "crm.export": PolicyOverride(approvers=(MANAGER,), max_duration=8 * H),
    "crm.view": PolicyOverride(auto_approve=AutoRule(max_duration=2 * H)),
    "fin.pay": PolicyOverride(requestable=False, approvals_required=3),
    "crm.edit": None,
}
ROLES = {"sales": ("crm.view", "crm.edit"), "all": ("crm.export", "crm.view", "fin.pay")}


def expand(name: str) -> tuple[str, ...]:
    return ROLES.get(name, (name,))


@pytest.mark.parametrize(("name", "want"), [
    ("crm.edit", DEFAULTS),
    ("crm.export", AccessPolicy((MANAGER,), 1, 8 * H)),
    ("crm.view", AccessPolicy((OWNER, ADMINS), 1, 7 * D, AutoRule(max_duration=2 * H))),
    ("fin.pay", AccessPolicy((OWNER, ADMINS), 3, 7 * D, None, False)),
    # a role: default approvers, the strictest of its permissions, never automatic
    ("sales", AccessPolicy((OWNER, ADMINS), 1, 7 * D)),
    ("all", AccessPolicy((OWNER, ADMINS), 3, 8 * H, None, False)),
])
def test_policy_for(name: str, want: AccessPolicy) -> None:
    assert policy_for(name, OWN, DEFAULTS, expand) == want


@pytest.mark.parametrize(("asked", "cap", "want"), [
    (None, None, (None, False)), (H, None, (H, False)), (None, H, (H, False)),
    (H, H, (H, False)), (2 * H, H, (H, True)),
])
def test_capped(asked: timedelta | None, cap: timedelta | None,
                want: tuple[timedelta | None, bool]) -> None:
    assert capped(asked, cap) == want


T = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("life", "warning", "before_end"), [
    (10 * H, H, H),                 # 20% is 2h; 1h comes later
    (2 * H, H, 24 * timedelta(minutes=1)),    # 20% is 24m; later than 1h before
    (7 * D, H, H),
])
def test_warn_at(life: timedelta, warning: timedelta, before_end: timedelta) -> None:
    assert warn_at(T, T + life, warning) == T + life - before_end


ids = st.sampled_from(["boss", "a1", "a2", "mgr", "lead", "au", "u1", "m", "x"])
approvers = st.one_of(
    st.sampled_from([OWNER, ADMINS, MANAGER, LEADER]),
    st.lists(ids, min_size=1, max_size=3).map(lambda u: Approver("users", tuple(u))),
    st.just(Approver("role", ("auditor",))))
people = st.builds(
    People, owner=st.one_of(st.none(), ids), admins=st.frozensets(ids, max_size=4),
    manager=st.one_of(st.none(), ids), dept_leaders=st.frozensets(ids, max_size=3),
    role_holders=st.fixed_dictionaries({"auditor": st.frozensets(ids, max_size=3)}))


@given(st.lists(approvers, min_size=1, max_size=5), people, ids, ids,
       st.integers(min_value=1, max_value=4))
def test_no_one_approves_their_own_request_or_one_about_them(
        chosen: list[Approver], who: People, requester: str, subject: str, need: int) -> None:
    policy = pol(*chosen, need=need)
    assert not {requester, subject} & approver_pool(policy, who, requester, subject)
    plan = plan_request(policy, who, requester, H, subject=subject)
    assert requester not in plan.approvers and subject not in plan.approvers
    assert plan.outcome != "ask" or len(plan.approvers) >= need
