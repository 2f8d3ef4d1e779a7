"""Access review: the cron's next fire time and who reviews which grant (pure parts)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.core.cardref import CardKind, CardRef
from bot.core.domain.review import LiveGrant, assign_items
from handlers import build_router, review
from handlers.review import next_fire

CRON = "0 9 1 1,4,7,10 *"


@pytest.mark.parametrize(("now", "expected"), [
    (datetime(2026, 1, 5, 2, 0, tzinfo=UTC), datetime(2026, 4, 1, 1, 0, tzinfo=UTC)),
    # exactly at a fire time: the next one (the row for this one is being run)
    (datetime(2026, 4, 1, 1, 0, tzinfo=UTC), datetime(2026, 7, 1, 1, 0, tzinfo=UTC)),
    (datetime(2026, 3, 31, 23, 0, tzinfo=UTC), datetime(2026, 4, 1, 1, 0, tzinfo=UTC)),
    (datetime(2026, 11, 2, 0, 0, tzinfo=UTC), datetime(2027, 1, 1, 1, 0, tzinfo=UTC)),
])
def test_next_fire_in_the_policy_time_zone(now: datetime, expected: datetime) -> None:
    at = next_fire(CRON, "Asia/Shanghai", now)
    assert at == expected and at.utcoffset() is not None


def test_next_fire_other_zone_and_bad_expression() -> None:
    at = next_fire("30 8 * * mon", "UTC", datetime(2026, 1, 5, 9, 0, tzinfo=UTC))  # a Monday
    assert at == datetime(2026, 1, 12, 8, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        next_fire("not a cron", "UTC", datetime(2026, 1, 5, tzinfo=UTC))


def test_items_go_to_their_granter_if_still_an_admin_else_the_owner() -> None:
    grants = [
        LiveGrant(3, "zhaoliu", "sales", "lisi", None),
        LiveGrant(1, "qianqi", "crm.report.view", "wangwu", datetime(2026, 2, 1, tzinfo=UTC)),
        LiveGrant(2, "qianqi", "analyst", "former_admin", None),
        LiveGrant(4, "zhaoliu", "crm.export", "zhangsan", None),
    ]
    order, items = assign_items(grants, ["zhangsan", "lisi", "wangwu"], "zhangsan")
    assert [(it.i, it.user, it.name, it.admin) for it in items] == [
        (0, "qianqi", "analyst", "zhangsan"),            # the granter is no longer an admin
        (1, "qianqi", "crm.report.view", "wangwu"),
        (2, "zhaoliu", "crm.export", "zhangsan"),        # the owner granted it
        (3, "zhaoliu", "sales", "lisi"),
    ]
    assert order == ["zhangsan", "lisi", "wangwu"]       # the owner's card first
    assert items[1].expires_at == datetime(2026, 2, 1, tzinfo=UTC)
    assert all(it.decision is None for it in items)
    assert assign_items([], ["lisi"], "zhangsan") == ([], [])


def test_a_break_glass_grant_is_the_owners_to_review_and_keeps_its_tag() -> None:
    # lisi (an admin) used break-glass: the grant is "granted by" lisi, but lisi does not
    # review it; the owner does, and the item remembers the request it came from.
    grants = [LiveGrant(5, "lisi", "crm.export", "lisi", None, break_glass=9),
              LiveGrant(6, "lisi", "crm.report.view", "lisi", None)]
    order, items = assign_items(grants, ["zhangsan", "lisi"], "zhangsan")
    assert [(it.name, it.admin, it.break_glass) for it in items] == [
        ("crm.export", "zhangsan", 9), ("crm.report.view", "lisi", None)]
    assert order == ["zhangsan", "lisi"]


def test_review_card_refs_are_distinct_and_read_back_as_review_cards() -> None:
    tracks = [CardRef.review("corp", 12, n).pack() for n in range(26 * 26)]
    assert len(set(tracks)) == len(tracks)
    assert [t.rsplit("-", 1)[1] for t in tracks[:2]] == ["rva", "rvb"]
    assert tracks[26] == "baton-corp-R12-rvba"
    ref = CardRef.unpack("baton-corp-R12-rvba")
    assert (ref.kind, ref.corp, ref.id, ref.reviewer) == (CardKind.REVIEW, "corp", 12, 26)


def test_review_cards_route_by_their_kind_not_by_registry_keys() -> None:
    assert review.router.card_actions == {CardKind.REVIEW: review.review_click}
    assert not [k for k in build_router().requests.actions if k.startswith("review:")]
