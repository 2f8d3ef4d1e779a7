"""The role sync's pure parts: differences, label edits from a change, call plans (at most
20 users and 20 roles a call, every edit exactly once, nothing more), and the read cost."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.domain.rolesync import (
    MAX_PER_CALL,
    Difference,
    RoleCall,
    change,
    differences,
    plan_calls,
    read_cost,
    reconcile_calls,
)
from bot.delivery.budget import crossed


@pytest.mark.parametrize(("desired", "actual", "expected"), [
    ({"sales": {"a"}}, {}, [Difference("sales", "a", "missing")]),
    ({"sales": set()}, {"sales": {"b"}}, [Difference("sales", "b", "extra")]),
    ({"sales": {"a", "b"}}, {"sales": {"b", "c"}},
     [Difference("sales", "a", "missing"), Difference("sales", "c", "extra")]),
    ({"sales": {"a"}}, {"sales": {"a"}, "other": {"z"}}, []),   # unmapped roles: not ours
])
def test_differences(desired: dict[str, set[str]], actual: dict[str, set[str]],
                     expected: list[Difference]) -> None:
    assert differences(desired, actual) == expected


@pytest.mark.parametrize(("gained", "lost", "held", "add", "remove"), [
    ({"sales"}, {"analyst"}, {"sales"}, {"sales"}, {"analyst"}),
    ({"sales"}, set(), set(), set(), set()),                  # gained, but gone again since
    (set(), {"sales"}, {"sales"}, set(), set()),              # still held through a grant
    ({"crm_admin"}, {"sales"}, {"crm_admin"}, set(), {"sales"}),   # crm_admin is not mapped
])
def test_change(gained: set[str], lost: set[str], held: set[str], add: set[str],
                remove: set[str]) -> None:
    assert change(gained, lost, held, {"sales", "analyst"}) == (add, remove)


def test_plan_groups_users_by_their_roles_and_removes_first() -> None:
    edits = [("add", "sales", f"u{i:02}") for i in range(25)]
    edits += [("remove", "analyst", "u00"), ("add", "analyst", "x"), ("add", "sales", "x")]
    assert plan_calls(edits) == [  # type: ignore[arg-type]
        RoleCall("remove", ("analyst",), ("u00",)),
        RoleCall("add", ("analyst", "sales"), ("x",)),
        RoleCall("add", ("sales",), tuple(f"u{i:02}" for i in range(20))),
        RoleCall("add", ("sales",), tuple(f"u{i:02}" for i in range(20, 25))),
    ]


def test_reconcile_calls_for_ten_thousand_missing_in_one_role() -> None:
    diffs = [Difference("sales", f"u{i:05}", "missing") for i in range(10_000)]
    calls = reconcile_calls(diffs)
    assert len(calls) == 500 and all(len(c.users) == MAX_PER_CALL for c in calls)


@pytest.mark.parametrize(("sizes", "calls"), [
    ([10_000], 101), ([0], 2), ([100, 101], 4), ([5000, 3000, 2000], 101),
    ([3334, 3333, 3333], 103),
])
def test_read_cost(sizes: list[int], calls: int) -> None:
    assert read_cost(sizes) == calls


@pytest.mark.parametrize(("total", "budget", "expected"), [
    (7999, 10000, []), (8000, 10000, [80]), (9999, 10000, [80]), (10000, 10000, [80, 100]),
    (1, 1, [80, 100]),
])
def test_budget_thresholds(total: int, budget: int, expected: list[int]) -> None:
    assert crossed(total, budget) == expected


edit = st.tuples(st.sampled_from(["add", "remove"]),
                 st.sampled_from([f"r{i}" for i in range(25)]),
                 st.sampled_from([f"u{i}" for i in range(60)]))


@given(st.lists(edit, max_size=400))
def test_every_edit_is_made_once_and_nothing_else(edits: list[tuple[str, str, str]]) -> None:
    calls = plan_calls(edits)  # type: ignore[arg-type]
    made: list[tuple[str, str, str]] = []
    for c in calls:
        assert 1 <= len(c.roles) <= MAX_PER_CALL and 1 <= len(c.users) <= MAX_PER_CALL
        made += [(c.op, r, u) for r in c.roles for u in c.users]
        assert RoleCall.from_payload(c.payload()) == c
    assert sorted(made) == sorted(set(edits))
    ops = [c.op for c in calls]
    assert ops == sorted(ops, key=lambda o: o != "remove")      # removals first
