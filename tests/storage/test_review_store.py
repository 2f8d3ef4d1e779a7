"""Access review campaigns in their own tables: migration 0006 carries the campaigns stored
the old way (a request payload) over and back; the repository hands out core values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command
from sqlalchemy import select

from bot.core.domain.requests import State
from bot.core.domain.review import KEEP, REMOVE, Campaign, LiveGrant, ReviewItem, assign_items
from storage import migrate
from storage.db import Database, open_database
from storage.models import Grant, Request, UTCDateTime

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(days=14)
KEPT_AT = NOW + timedelta(hours=1, microseconds=250)

# An open campaign as handlers/review.py stored it before 0006, and a closed one.
OLD_ITEMS = [
    {"i": 0, "grant_id": 7, "user": "qianqi", "name": "analyst", "granted_by": "gone",
     "expires_at": None, "admin": "zhangsan", "decision": None, "by": None, "at": None},
    {"i": 1, "grant_id": 8, "user": "qianqi", "name": "crm.report.view", "granted_by": "lisi",
     "expires_at": "2026-04-01T00:00:00+00:00", "admin": "lisi", "decision": "keep",
     "by": "lisi", "at": KEPT_AT.isoformat()},
]
OLD_OPEN = {"items": OLD_ITEMS, "admins": ["zhangsan", "lisi"], "is_group": False, "lang": "en"}
OLD_CLOSED = {"items": [{**OLD_ITEMS[0], "decision": "unreviewed_keep", "at": NOW.isoformat()}],
              "admins": ["zhangsan"], "is_group": False, "lang": "zh"}

_requests = sa.table(
    "requests", sa.column("id", sa.Integer), sa.column("corp_id", sa.String),
    sa.column("kind", sa.String), sa.column("state", sa.String),
    sa.column("requester_id", sa.String), sa.column("conversation_id", sa.String),
    sa.column("reason", sa.String), sa.column("payload", sa.JSON()),
    sa.column("created_at", UTCDateTime()), sa.column("expires_at", UTCDateTime()),
    sa.column("version", sa.Integer))


def _row(id_: int, state: str, payload: dict[str, object], kind: str = "review"
         ) -> dict[str, object]:
    return {"id": id_, "corp_id": "corp", "kind": kind, "state": state,
            "requester_id": "zhangsan", "conversation_id": "", "reason": "", "payload": payload,
            "created_at": NOW, "expires_at": DEADLINE, "version": 1}


async def _payloads(database: Database) -> dict[int, dict[str, object]]:
    async with database.engine.connect() as conn:
        rows = (await conn.execute(sa.select(_requests.c.id, _requests.c.payload)
                                   .order_by(_requests.c.id))).all()
    return {i: p for i, p in rows}


async def test_0006_upgrades_an_empty_database(db_url: str) -> None:
    database = open_database(db_url)
    try:
        await migrate.upgrade(database, "0006")
        async with database.uow() as uow:
            assert await uow.reviews.latest_in("corp") is None
            assert await uow.reviews.open_in("corp") is None
    finally:
        await database.dispose()


async def test_0006_carries_campaigns_stored_the_old_way_over_and_back(db_url: str) -> None:
    database = open_database(db_url)
    try:
        await migrate.upgrade(database, "0005")
        async with database.engine.begin() as conn:
            await conn.execute(sa.insert(_requests), [
                _row(1, "applied", OLD_CLOSED), _row(2, "pending", OLD_OPEN),
                _row(3, "pending", {"is_group": True, "lang": "zh", "items": ["not mine"]},
                     kind="owner_transfer")])
        await migrate.upgrade(database)
        async with database.uow() as uow:
            c = await uow.reviews.open_in("corp")
            assert c == Campaign(
                id=2, state=State.PENDING, expires_at=DEADLINE, admins=("zhangsan", "lisi"),
                items=(ReviewItem(0, 7, "qianqi", "analyst", "gone", None, "zhangsan"),
                       ReviewItem(1, 8, "qianqi", "crm.report.view", "lisi",
                                  datetime(2026, 4, 1, tzinfo=UTC), "lisi", KEEP, "lisi",
                                  KEPT_AT)),
                lang="en")
            closed = await uow.reviews.campaign(1)
            assert closed is not None and closed.state is State.APPLIED
            assert [(it.decision, it.at) for it in closed.items] == [("unreviewed_keep", NOW)]
            assert await uow.reviews.latest_in("corp") == c
            assert await uow.reviews.campaign(3) is None          # not a review
        payloads = await _payloads(database)
        assert payloads[2] == {"is_group": False, "lang": "en"}
        assert payloads[3] == {"is_group": True, "lang": "zh", "items": ["not mine"]}

        async with database.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(migrate.alembic_config(c), "0005"))
        assert await migrate.current_revision(database) == "0005"
        payloads = await _payloads(database)
        assert payloads[2] == OLD_OPEN and payloads[1] == OLD_CLOSED
        assert payloads[3] == {"is_group": True, "lang": "zh", "items": ["not mine"]}
    finally:
        await database.dispose()


async def test_a_campaign_is_started_decided_and_closed_through_the_repository(
        db: Database) -> None:
    async with db.uow() as uow:
        for gid, user, name, by in [(1, "qianqi", "analyst", "lisi"),
                                    (2, "zhaoliu", "sales", "zhangsan")]:
            uow.session.add(Grant(id=gid, corp_id="corp", user_id=user, name=name,
                                  granted_by=by, created_at=NOW))
        uow.session.add(Grant(id=3, corp_id="corp", user_id="x", name="old", granted_by="lisi",
                              created_at=NOW, expires_at=NOW - timedelta(days=1)))
        await uow.session.flush()
        live = await uow.reviews.live_grants("corp", NOW)
        assert [g.grant_id for g in live] == [1, 2]
        assert live[0] == LiveGrant(1, "qianqi", "analyst", "lisi", None)
        order, items = assign_items(live, ["lisi"], "zhangsan")
        c = await uow.reviews.start("corp", requester="zhangsan", admins=order, items=items,
                                    lang="en", now=NOW, deadline=DEADLINE, message_id="m1")
        assert (c.state, c.admins, c.items, c.lang) == (State.PENDING, ("zhangsan", "lisi"),
                                                        tuple(items), "en")
        assert await uow.reviews.open_in("corp") == c
        removed = c.items[0].decided(REMOVE, "lisi", NOW)
        assert await uow.reviews.revoke(removed) == {"name": "analyst", "expires_at": None,
                                                     "granted_by": "lisi"}
        assert await uow.reviews.revoke(removed) is None            # gone already
        await uow.reviews.record(c.id, [removed])
        closed = await uow.reviews.close(c.id, [c.items[1].decided(KEEP, "zhangsan", NOW)], NOW)
        assert closed.state is State.APPLIED
        assert [it.decision for it in closed.items] == [REMOVE, KEEP]
        assert await uow.reviews.open_in("corp") is None
        req = (await uow.session.execute(select(Request).where(Request.id == c.id))).scalar_one()
        assert (req.version, req.decided_at, req.payload) == (3, NOW, {"is_group": False,
                                                                     "lang": "en"})
        await uow.commit()


async def test_a_break_glass_grant_is_tagged_and_the_tag_kept_with_the_item(db: Database) -> None:
    async with db.uow() as uow:
        for rid, kind in [(11, "break_glass"), (12, "access")]:
            uow.session.add(Request(id=rid, corp_id="corp", kind=kind, state="applied",
                                    requester_id="qianqi", conversation_id="", reason="r",
                                    payload={}, created_at=NOW, expires_at=DEADLINE))
        await uow.session.flush()
        for gid, name, rid in [(1, "crm.export", 11), (2, "crm.report.view", 12),
                               (3, "analyst", None)]:
            uow.session.add(Grant(id=gid, corp_id="corp", user_id="qianqi", name=name,
                                  granted_by="qianqi", created_at=NOW, request_id=rid))
        await uow.session.flush()
        live = await uow.reviews.live_grants("corp", NOW)
        assert {g.name: g.break_glass for g in live} == {
            "crm.export": 11, "crm.report.view": None, "analyst": None}
        order, items = assign_items(live, ["lisi"], "zhangsan")
        c = await uow.reviews.start("corp", requester="zhangsan", admins=order, items=items,
                                    lang="zh", now=NOW, deadline=DEADLINE, message_id=None)
        # The tag is the item's own: it stays when the grant is gone.
        assert await uow.reviews.revoke(next(it for it in c.items if it.name == "crm.export"))
        again = await uow.reviews.campaign(c.id)
        assert again is not None
        assert {it.name: it.break_glass for it in again.items} == {
            "crm.export": 11, "crm.report.view": None, "analyst": None}
