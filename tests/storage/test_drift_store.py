"""Admin drift and offboarding in the store (storage/drift.py), on both databases: DingTalk's
admin list as last seen, who holds anything, ending a leaver's holdings, and moving their
review items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.core.domain.review import ReviewItem
from storage.db import Database
from storage.drift import EndedHolding

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CORP = "dingcorp"


async def test_the_admin_list_as_last_seen(db: Database) -> None:
    async with db.uow() as uow:
        assert await uow.drift.admin_list(CORP) is None          # never seen
        await uow.drift.record_admin_list(CORP, {}, NOW)
        assert await uow.drift.admin_list(CORP) == {}            # seen empty: not "never"
        await uow.drift.record_admin_list(CORP, {"zs": 1, "ls": 2}, NOW)
        await uow.drift.record_admin_list(CORP, {"zs": 1, "ww": 2}, NOW)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.drift.admin_list(CORP) == {"zs": 1, "ww": 2}
        assert await uow.drift.admin_list("other") is None


async def test_holders_ending_and_leaving(db: Database) -> None:
    async with db.uow() as uow:
        for uid, level in (("zs", "owner"), ("ls", "admin"), ("zl", "member"), ("qq", "member"),
                           ("sb", "member")):
            await uow.members.upsert(CORP, uid, NOW, level=level)
        sb = await uow.members.sender(CORP, "sb")
        assert sb is not None
        await uow.members.set_role(sb, "sales", NOW)
        await uow.perms.grant(CORP, "zl", "crm.export", by="ls", now=NOW,
                              expires_at=NOW + timedelta(days=1))
        await uow.perms.grant(CORP, "zl", "crm.report.view", by="ls", now=NOW, expires_at=None)
        await uow.perms.add_template(CORP, "t1", ["crm.report.view"], by="ls", now=NOW)
        tpl = await uow.perms.template(CORP, "t1")
        assert tpl is not None
        await uow.perms.assign(tpl, "zl", by="ls", now=NOW)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.drift.holding_members(CORP) == ["ls", "sb", "zl", "zs"]
        assert await uow.drift.baton_levels(CORP) == {"zs": "owner", "ls": "admin"}
        ended = await uow.drift.end_holdings(CORP, "zl")
        assert ended == [EndedHolding("grant", "crm.export", NOW + timedelta(days=1), "ls"),
                         EndedHolding("grant", "crm.report.view", None, "ls"),
                         EndedHolding("template", "t1")]
        await uow.drift.mark_left(CORP, "sb", NOW)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.drift.end_holdings(CORP, "zl") == []
        assert await uow.drift.holding_members(CORP) == ["ls", "zs"]
        sb = await uow.members.sender(CORP, "sb")
        assert sb is not None and not sb.active


async def test_review_items_are_handed_over(db: Database) -> None:
    items = [ReviewItem(i, 100 + i, "zl", f"p{i}", "ls", None, admin)
             for i, admin in enumerate(("zs", "ls", "ls"))]
    async with db.uow() as uow:
        c = await uow.reviews.start(CORP, requester="zs", admins=["zs", "ls"], items=items,
                                    lang="zh", now=NOW, deadline=NOW + timedelta(days=14),
                                    message_id=None)
        await uow.reviews.record(c.id, [c.items[2].decided("keep", "ls", NOW)])
        assert await uow.drift.reassign_review(c.id, "ls", "zs", 676) == (1, 0, False)
        assert await uow.drift.reassign_review(c.id, "ls", "zs", 676) == (0, 0, False)
        c2 = await uow.reviews.start(CORP, requester="zs", admins=["ls"], items=items[1:2],
                                     lang="zh", now=NOW, deadline=NOW + timedelta(days=14),
                                     message_id=None)
        # No card number left for zs (1 would be the cap): nothing moves.
        assert await uow.drift.reassign_review(c2.id, "ls", "zs", 1) == (0, 1, False)
        assert await uow.drift.reassign_review(c2.id, "ls", "zs", 676) == (1, 1, True)
        await uow.commit()
    async with db.uow() as uow:
        got = await uow.reviews.campaign(c.id)
        assert got is not None
        assert [it.admin for it in got.items] == ["zs", "zs", "ls"]     # a decided one stays
        got2 = await uow.reviews.campaign(c2.id)
        assert got2 is not None and got2.admins == ("ls", "zs")
        assert [it.admin for it in got2.items] == ["zs"]
