"""Admin drift, the pure part (bot/core/domain/drift.py), and org events as the transport
reads them (bot/transport/inbound.py): tables, and a property tying the two rules together."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.domain.drift import (
    ADMIN_ADD,
    ADMIN_REMOVE,
    OWNER_CHANGE,
    Drift,
    admin_levels,
    adoptable,
    adopted_level,
    find_drift,
    holds,
)
from bot.dispatch.context import CommandRouter
from bot.transport.inbound import MalformedFrame, OrgEvent, parse_org_event

BATON = {"zs": "owner", "ls": "admin", "ww": "admin"}
SEEN = {"zs": 1, "ls": 2, "ww": 2}

# (recorded before, DingTalk now, Baton's levels) -> drifts
FIND = [
    # nothing changed
    (SEEN, SEEN, BATON, []),
    # an admin added in the console, a member in Baton
    (SEEN, {**SEEN, "qq": 2}, BATON, [Drift("qq", ADMIN_ADD, 2)]),
    # ... whom Baton already made an admin: no drift
    (SEEN, {**SEEN, "qq": 2}, {**BATON, "qq": "admin"}, []),
    # an admin removed in the console, still one in Baton
    (SEEN, {"zs": 1, "ww": 2}, BATON, [Drift("ls", ADMIN_REMOVE, 0)]),
    # ... whom Baton already removed: no drift
    (SEEN, {"zs": 1, "ww": 2}, {"zs": "owner", "ww": "admin"}, []),
    # the main administrator changed in the console
    (SEEN, {"ls": 1, "ww": 2}, BATON, [Drift("ls", OWNER_CHANGE, 1)]),
    # ... after an owner transfer in Baton (the console step): no drift
    (SEEN, {"ls": 1, "ww": 2}, {"ls": "owner", "zs": "admin", "ww": "admin"}, []),
    # nothing recorded yet: every listed admin is a new sighting
    (None, {**SEEN, "qq": 2}, BATON, [Drift("qq", ADMIN_ADD, 2)]),
    # ... and a Baton-made admin DingTalk never listed is not a removal
    (None, SEEN, {**BATON, "zl": "admin"}, []),
    # a Baton admin who never was one in DingTalk, while the list changes elsewhere
    (SEEN, {**SEEN, "qq": 2}, {**BATON, "zl": "admin"}, [Drift("qq", ADMIN_ADD, 2)]),
]


@pytest.mark.parametrize(("before", "now", "baton", "want"), FIND)
def test_find_drift(before: dict[str, int] | None, now: dict[str, int], baton: dict[str, str],
                    want: list[Drift]) -> None:
    assert find_drift(before, now, baton) == want


HOLDS = [
    (Drift("qq", ADMIN_ADD, 2), {"qq": 2}, {}, True),
    (Drift("qq", ADMIN_ADD, 2), {}, {}, False),                      # undone in the console
    (Drift("qq", ADMIN_ADD, 2), {"qq": 2}, {"qq": "admin"}, False),  # Baton caught up
    (Drift("ls", ADMIN_REMOVE, 0), {}, {"ls": "admin"}, True),
    (Drift("ls", ADMIN_REMOVE, 0), {"ls": 2}, {"ls": "admin"}, False),
    (Drift("ls", ADMIN_REMOVE, 0), {}, {}, False),
    (Drift("ls", OWNER_CHANGE, 1), {"ls": 1}, {"zs": "owner"}, True),
    (Drift("ls", OWNER_CHANGE, 1), {"ls": 1}, {"ls": "owner"}, False),
    (Drift("ls", OWNER_CHANGE, 1), {"ls": 2, "zs": 1}, {"zs": "owner"}, False),
]


@pytest.mark.parametrize(("d", "now", "baton", "want"), HOLDS)
def test_holds(d: Drift, now: dict[str, int], baton: dict[str, str], want: bool) -> None:
    assert holds(d, now, baton) is want


@pytest.mark.parametrize(("change", "level", "want"), [
    (ADMIN_ADD, "member", True), (ADMIN_ADD, "admin", False), (ADMIN_ADD, "owner", False),
    (ADMIN_REMOVE, "admin", True), (ADMIN_REMOVE, "member", False),
    (ADMIN_REMOVE, "owner", False),
    (OWNER_CHANGE, "member", True), (OWNER_CHANGE, "admin", True), (OWNER_CHANGE, "owner", False),
])
def test_adoptable_judges_on_batons_side(change: str, level: str, want: bool) -> None:
    assert adoptable(change, level) is want


def test_adopted_levels() -> None:
    assert [adopted_level(c) for c in (OWNER_CHANGE, ADMIN_ADD, ADMIN_REMOVE)] == \
        ["owner", "admin", "member"]


def test_admin_levels_reads_listadmin_and_skips_the_unreadable() -> None:
    rows: list[dict[str, Any]] = [{"userid": "zs", "sys_level": 1}, {"userid": "ls", "sys_level": 2},
                                  {"userid": "", "sys_level": 2}, {"userid": "x", "sys_level": 3},
                                  {"userid": "y", "sys_level": "2"}, {"sys_level": 2}]
    assert admin_levels(rows) == {"zs": 1, "ls": 2}


levels = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from([1, 2]),
                         max_size=4)
baton_levels = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]),
                               st.sampled_from(["owner", "admin"]), max_size=4)


@given(levels, levels, baton_levels)
def test_every_drift_found_still_holds_at_once(before: dict[str, int], now: dict[str, int],
                                               baton: dict[str, str]) -> None:
    """A drift is reported only while it holds; adopting it makes it stop holding."""
    for d in find_drift(before, now, baton):
        assert holds(d, now, baton)
        adopted = {**baton, d.user_id: adopted_level(d.change)}
        assert not holds(d, now, adopted)


# ---- org events as the transport reads them --------------------------------------------------

HEADERS = {"eventId": "e1", "eventType": "user_leave_org", "eventCorpId": "dingX",
           "eventBornTime": "1700000000000", "messageId": "m1"}

PARSE = [
    ({"userId": ["a", "b"]}, ("a", "b")),
    ({"UserId": ["a"]}, ("a",)),                       # the HTTP-callback spelling
    ({"userId": "a"}, ("a",)),
    ({"userId": ["a", "a", ""]}, ("a",)),
    ({}, ()),
]


@pytest.mark.parametrize(("data", "users"), PARSE)
def test_parse_org_event(data: dict[str, Any], users: tuple[str, ...]) -> None:
    ev = parse_org_event(HEADERS, data)
    assert ev.user_ids == users and ev.event_type == "user_leave_org"
    assert ev.corp_id == "dingX" and ev.born_at is not None
    assert [e.user_ids for e in ev.each()] == [(u,) for u in users]
    assert len({e.dedupe_key() for e in ev.each()}) == len(users)


@pytest.mark.parametrize(("headers", "data"), [
    ({**HEADERS, "eventType": ""}, {"userId": ["a"]}),
    ({k: v for k, v in HEADERS.items() if k not in ("eventId", "messageId")}, {"userId": ["a"]}),
    (HEADERS, ["a"]),
    (HEADERS, {"userId": {"a": 1}}),
])
def test_malformed_org_events_are_refused(headers: dict[str, Any], data: Any) -> None:
    with pytest.raises(MalformedFrame):
        parse_org_event(headers, data)


def test_an_event_type_is_routed_once() -> None:
    async def handler(event: OrgEvent, prepared: Any, ctx: Any) -> None:
        return None

    a, b = CommandRouter(), CommandRouter()
    a.event("user_leave_org")(handler)
    with pytest.raises(ValueError, match="already routed"):
        a.event("user_leave_org")(handler)
    b.event("user_leave_org")(handler)
    root = CommandRouter()
    root.include(a)
    with pytest.raises(ValueError, match="routed twice"):
        root.include(b)
