"""What paged answers read and keep, on SQLite and PostgreSQL: the cursor ``next`` continues
(one row per member and conversation, replaced in place), a page of who-has with its count
(the same holders, in the same order, as the full list), a page of a template's holders and
of the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from bot.core.domain.permissions import Catalog, Source
from bot.core.paging import Cursor
from storage.db import Database
from storage.models import Grant, Member, PagedAnswer

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CORP = "c1"
CAT = Catalog({"crm.view": ("看", "View"), "crm.edit": ("改", "Edit")},
              {"viewer": ("crm.view",), "crm_all": ("crm.*",)})


async def test_the_cursor_is_one_row_per_member_and_conversation(db: Database) -> None:
    async with db.uow() as uow:
        assert await uow.paging.last(CORP, "group:g1", "amy") is None
        await uow.paging.remember(CORP, "group:g1", "amy", Cursor("who_has", {"name": "x"}, 1),
                                  NOW)
        await uow.paging.remember(CORP, "group:g1", "amy", Cursor("who_has", {"name": "x"}, 2),
                                  NOW + timedelta(seconds=1))
        await uow.paging.remember(CORP, "user:amy", "amy", Cursor("whoami", {}, 3), NOW)
        await uow.paging.remember(CORP, "group:g1", "bob",
                                  Cursor("audit", {"user": None, "n": 500}, 4), NOW)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.paging.last(CORP, "group:g1", "amy") == \
            Cursor("who_has", {"name": "x"}, 2)
        assert await uow.paging.last(CORP, "user:amy", "amy") == Cursor("whoami", {}, 3)
        assert await uow.paging.last(CORP, "group:g1", "bob") == \
            Cursor("audit", {"user": None, "n": 500}, 4)
        assert await uow.paging.last("c2", "group:g1", "amy") is None
        n = (await uow.session.execute(select(func.count()).select_from(PagedAnswer))).scalar()
        assert n == 3


async def seed(db: Database) -> None:
    async with db.uow() as uow:
        await uow.session.execute(insert(Member), [
            {"corp_id": CORP, "user_id": f"u{i:03d}", "name": f"n{i}", "level": "member",
             "role": "viewer" if i % 4 == 0 else None, "active": True, "created_at": NOW,
             "updated_at": NOW} for i in range(200)])
        await uow.session.execute(insert(Grant), [
            {"corp_id": CORP, "user_id": f"u{i:03d}", "name": "crm.view" if i % 2 else "crm_all",
             "granted_by": "x", "created_at": NOW,
             "expires_at": NOW - timedelta(hours=1) if i % 10 == 5 else None}
            for i in range(0, 200, 3)])
        await uow.perms.add_template(CORP, "t", ["crm.*"], by="x", now=NOW)
        tpl = await uow.perms.template(CORP, "t")
        assert tpl is not None
        for i in range(150, 200):
            await uow.perms.assign(tpl, f"u{i:03d}", by="x", now=NOW)
        await uow.commit()


async def test_a_page_of_who_has_is_a_slice_of_the_full_list(db: Database) -> None:
    await seed(db)
    async with db.uow() as uow:
        full = await uow.perms.who_has(CORP, "crm.view", CAT, NOW)
        assert list(full) == sorted(full) and len(full) > 100
        pages = []
        for offset in range(0, len(full) + 30, 30):
            total, page = await uow.perms.who_has_page(CORP, "crm.view", CAT, NOW,
                                                       offset=offset, limit=30)
            assert total == len(full)
            pages.append(page)
        assert [u for p in pages for u in p] == list(full)
        assert {u: s for p in pages for u, s in p.items()} == full
        assert "u005" not in full                        # its grant has run out
        assert full["u151"] == (Source("template", "t"),)
        total, page = await uow.perms.who_has_page(CORP, "crm.edit", CAT, NOW, offset=0,
                                                   limit=5)
        assert list(page) == ["u000", "u006", "u012", "u018", "u024"] and \
            page["u000"] == (Source("grant", "crm_all"),)
        total, page = await uow.perms.who_has_page(CORP, "viewer", CAT, NOW, offset=0, limit=3)
        assert total == 50 and page == {u: (Source("role", "viewer"),)
                                        for u in ("u000", "u004", "u008")}


async def test_pages_of_template_holders_and_of_the_audit(db: Database) -> None:
    await seed(db)
    async with db.uow() as uow:
        tpl = await uow.perms.template(CORP, "t")
        assert tpl is not None
        assert await uow.perms.holders_page(tpl.id, offset=40, limit=20) == \
            (50, [f"u{i:03d}" for i in range(190, 200)])
        for i in range(45):
            await uow.audit.append(CORP, NOW, actor_id="amy" if i % 3 else "bob",
                                   action="x.y", result="applied", after={"i": i})
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.audit.count(CORP) == 45
        assert await uow.audit.count(CORP, at_most=10) == 10
        assert await uow.audit.count(CORP, user_id="bob") == 15
        page = await uow.audit.recent(CORP, 20, offset=20)
        assert [(e.after or {})["i"] for e in page] == list(range(24, 4, -1))
        page = await uow.audit.recent(CORP, 5, user_id="bob", offset=5)
        assert [(e.after or {})["i"] for e in page] == [27, 24, 21, 18, 15]
