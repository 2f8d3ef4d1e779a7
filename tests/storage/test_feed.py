"""The change feed: an event for every applied change, written with its audit entry in the
same transaction, numbered in commit order; carried over from the audit by migration 0007;
kept as long as the audit keeps its entries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from bot.core.domain.feed import EVENT_TYPES, TEMPLATE, USER
from storage import migrate
from storage.db import Database, open_database
from storage.models import UTCDateTime

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CORP = "c1"


async def _events(db: Database, after: int = 0) -> list:  # type: ignore[type-arg]
    async with db.uow() as uow:
        return await uow.feed.after(after, 1000)


async def test_an_applied_change_becomes_an_event_with_its_audit_entry(db: Database) -> None:
    async with db.uow() as uow:
        await uow.audit.append(CORP, NOW, actor_id="admin", action="grant.apply",
                               result="applied", target_id="mia", request_id=7,
                               before=None, after={"name": "crm.export", "expires_at": None})
        await uow.audit.append(CORP, NOW, actor_id="bob", action="grant.refused",
                               result="refused", target_id="mia")
        await uow.audit.append(CORP, NOW, actor_id="admin", action="review.keep",
                               result="applied", target_id="mia")
        await uow.commit()
    [ev] = await _events(db)
    assert (ev.seq, ev.type, ev.action, ev.actor, ev.subject_kind, ev.subject, ev.request_id) \
        == (1, "grant.added", "grant.apply", "admin", USER, "mia", 7)
    assert ev.after == {"name": "crm.export", "expires_at": None} and ev.before is None
    assert ev.at == NOW and len(ev.id) == 32
    wire = ev.as_json()
    assert wire["subject"] == {"type": "user", "id": "mia"} and wire["at"] == NOW.isoformat()
    async with db.uow() as uow:
        assert await uow.feed.head() == 1


async def test_a_rolled_back_change_leaves_no_event_and_no_gap(db: Database) -> None:
    async with db.uow() as uow:
        await uow.audit.append(CORP, NOW, actor_id="a", action="grant.revoke", result="applied",
                               target_id="mia", before={"name": "x"})
        # no commit: rolled back
    async with db.uow() as uow:
        await uow.audit.append(CORP, NOW, actor_id="a", action="grant.revoke", result="applied",
                               target_id="lei", before={"name": "x"})
        await uow.commit()
    assert [(e.seq, e.subject) for e in await _events(db)] == [(1, "lei")]


async def test_many_entries_get_consecutive_numbers_and_template_edits_name_holders(
        db: Database) -> None:
    async with db.uow() as uow:
        await uow.audit.append_many(CORP, NOW, [
            {"actor_id": "a", "action": "import.change", "result": "applied",
             "target_id": f"u{i}", "request_id": 3, "after": {"op": "create", "batch": "b1"}}
            for i in range(3)])
        await uow.audit.append(CORP, NOW, actor_id="a", action="template.set", result="applied",
                               before={"template": "sales", "items": ["a"]},
                               after={"template": "sales", "items": ["a", "b"],
                                      "holders": ["u1", "u2"]})
        await uow.commit()
    events = await _events(db)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.type for e in events] == ["import.change"] * 3 + ["template.edited"]
    assert (events[3].subject_kind, events[3].subject) == (TEMPLATE, "sales")
    assert events[3].users() == ("u1", "u2") and events[0].users() == ("u0",)
    async with db.uow() as uow:
        assert [e.seq for e in await uow.feed.after(1, 2)] == [2, 3]
        assert [e.seq for e in await uow.feed.after(0, 10, upto=2)] == [1, 2]
        assert [e.seq for e in await uow.feed.after(0, 10, types=["template.edited"])] == [4]


async def test_the_feed_keeps_pace_with_audit_retention(db: Database) -> None:
    async with db.uow() as uow:
        for i in range(4):
            await uow.audit.append(CORP, NOW + timedelta(days=i), actor_id="a",
                                   action="grant.apply", result="applied", target_id=f"u{i}")
        await uow.commit()
    async with db.uow() as uow:
        removed, _ = await uow.audit.purge_before(CORP, NOW + timedelta(days=2))
        await uow.commit()
    assert removed == 2
    async with db.uow() as uow:
        assert await uow.feed.oldest() == 3
        assert await uow.feed.head() == 4     # numbering never restarts
    assert [e.subject for e in await _events(db)] == ["u2", "u3"]


async def test_commit_listeners_hear_the_new_head(db: Database) -> None:
    heard: list[int] = []
    db.feed_listeners.append(heard.append)
    async with db.uow() as uow:
        await uow.audit.append(CORP, NOW, actor_id="a", action="vote", result="approve")
        await uow.commit()
    async with db.uow() as uow:
        await uow.audit.append(CORP, NOW, actor_id="a", action="admin_add.apply",
                               result="applied", target_id="u")
        await uow.commit()
    assert heard == [1]


@pytest.mark.pg
async def test_on_postgresql_a_second_writer_waits_so_seq_follows_commit_order(
        db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has one writer at a time by construction")
    first = db.uow()
    await first.__aenter__()
    await first.audit.append(CORP, NOW, actor_id="a", action="grant.apply", result="applied",
                             target_id="first")

    async def second() -> None:
        async with db.uow() as uow:
            await uow.audit.append("c2", NOW, actor_id="a", action="grant.apply",
                                   result="applied", target_id="second")
            await uow.commit()

    task = asyncio.create_task(second())
    # Wait (bounded) until the second writer is blocked on the feed head's row lock.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        async with db.engine.connect() as conn:
            waiting = (await conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"))).scalar_one()
        if waiting:
            break
        assert asyncio.get_running_loop().time() < deadline, "second writer never blocked"
        await asyncio.sleep(0.01)
    assert not task.done()
    await first.commit()
    await first.__aexit__(None, None, None)
    await asyncio.wait_for(task, 10)
    assert [(e.seq, e.subject) for e in await _events(db)] == [(1, "first"), (2, "second")]


_audit = sa.table(
    "audit_entries", sa.column("corp_id", sa.String), sa.column("seq", sa.BigInteger),
    sa.column("at", UTCDateTime()), sa.column("actor_id", sa.String),
    sa.column("action", sa.String), sa.column("target_id", sa.String),
    sa.column("request_id", sa.Integer), sa.column("before", sa.JSON()),
    sa.column("after", sa.JSON()), sa.column("result", sa.String),
    sa.column("prev_hash", sa.String), sa.column("hash", sa.String))


async def test_0007_carries_applied_changes_over_from_the_audit(db_url: str) -> None:
    database = open_database(db_url)
    try:
        await migrate.upgrade(database, "0006")
        rows = [
            ("c1", 1, NOW, "grant.apply", "applied", "mia", None),
            ("c1", 2, NOW + timedelta(hours=1), "grant.refused", "refused", "mia", None),
            ("c1", 3, NOW + timedelta(hours=2), "template.delete", "applied", None,
             {"template": "t", "items": [], "holders": ["a"]}),
            ("c1", 4, NOW + timedelta(hours=3), "review.keep", "applied", "mia", None),
        ]
        async with database.engine.begin() as conn:
            await conn.execute(sa.insert(_audit), [
                {"corp_id": c, "seq": s, "at": at, "actor_id": "x", "action": a, "result": r,
                 "target_id": tgt, "request_id": None, "before": before, "after": None,
                 "prev_hash": "0", "hash": "0"} for c, s, at, a, r, tgt, before in rows])
        await migrate.upgrade(database)
        events = await _events(database)
        assert [(e.seq, e.type, e.subject) for e in events] == [
            (1, "grant.added", "mia"), (2, "template.deleted", "t")]
        assert events[1].users() == ("a",) and events[1].at == NOW + timedelta(hours=2)
        async with database.uow() as uow:
            assert await uow.feed.head() == 2
        async with database.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(migrate.alembic_config(c), "0006"))
        async with database.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert "change_events" not in tables and "feed_head" not in tables
    finally:
        await database.dispose()


def test_every_event_type_is_named_for_a_change() -> None:
    assert all(t.split(".")[0] in {"grant", "role", "admin", "owner", "template", "import"}
               for t in EVENT_TYPES.values())
