"""Storage: migrations match the models; invariants hold as constraints; repositories."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from storage import migrate
from storage.db import Database, open_database
from storage.models import ADMIN, OWNER, AuditEntry, Base, Request

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


async def test_upgrade_of_empty_database_matches_models(db_url: str) -> None:
    database = open_database(db_url)
    try:
        assert await migrate.current_revision(database) is None
        await migrate.upgrade(database)
        await migrate.upgrade(database)  # idempotent
        assert await migrate.is_current(database)
        async with database.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
        assert diff == []
    finally:
        await database.dispose()


def _upgrade_in_process(url: str, start: Any) -> None:
    """One process of the concurrent-upgrade test: its own engine, upgrades once all are ready.
    SQLite's busy timeout is cut to 1 ms: waiting for another process's migration must not
    depend on it (a long migration outlasts any busy timeout)."""
    async def main() -> None:
        database = open_database(url, busy_timeout_ms=1)
        try:
            await database.engine.dispose()  # nothing open before the start line
            start.wait(30)
            await migrate.upgrade(database)
        finally:
            await database.dispose()
    asyncio.run(main())


async def test_concurrent_upgrades_of_an_empty_database_all_succeed(db_url: str) -> None:
    # Replicas that cold-start together: separate processes upgrade the same empty database
    # at the same moment. Each must succeed (none dies on alembic_version), one schema.
    import multiprocessing

    n = 4
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(n)
    procs = [ctx.Process(target=_upgrade_in_process, args=(db_url, start)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        await asyncio.to_thread(p.join, 90)
    assert [p.exitcode for p in procs] == [0] * n
    database = open_database(db_url)
    try:
        async with database.engine.connect() as conn:
            rows = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
        assert rows == [(migrate.head_revision(),)]
    finally:
        await database.dispose()


async def test_one_owner_per_corp_is_a_constraint(db: Database) -> None:
    async with db.uow() as uow:
        await uow.members.upsert("c1", "alice", NOW, level=OWNER)
        await uow.members.upsert("c2", "zed", NOW, level=OWNER)  # another corp: fine
        await uow.commit()
    with pytest.raises(IntegrityError):
        async with db.uow() as uow:
            await uow.members.upsert("c1", "bob", NOW, level=OWNER)
            await uow.commit()
    async with db.uow() as uow:
        owner = await uow.members.owner_of("c1")
        assert owner is not None and owner.user_id == "alice"


async def test_concurrent_first_start_seeding_is_recorded_once(db: Database,
                                                               db_url: str) -> None:
    # Replicas starting together on an empty store each seed the owner, on their own
    # engines (connections): one owner, one bootstrap audit entry, the others change nothing.
    from bot.bootstrap import set_owner
    from bot.core.clock import FakeClock

    others = [open_database(db_url) for _ in range(5)]
    try:
        done = await asyncio.gather(*(
            set_owner(o, "c1", "alice", ["bob"], FakeClock(NOW), source="config")
            for o in others))
    finally:
        for o in others:
            await o.dispose()
    assert sorted(done) == [False] * 4 + [True]
    async with db.uow() as uow:
        owner = await uow.members.owner_of("c1")
        admin = await uow.members.get("c1", "bob")
        entries = (await uow.session.execute(
            select(AuditEntry).where(AuditEntry.action == "bootstrap"))).scalars().all()
        assert owner is not None and owner.user_id == "alice"
        assert admin is not None and admin.level == ADMIN
        assert [(e.corp_id, e.target_id) for e in entries] == [("c1", "alice")]


async def test_one_open_owner_transfer_per_corp(db: Database) -> None:
    def req(state: str) -> Request:
        return Request(corp_id="c1", kind="owner_transfer", state=state, requester_id="a",
                       target_id="b", conversation_id="cid", created_at=NOW,
                       expires_at=NOW + timedelta(days=1))

    async with db.uow() as uow:
        uow.requests.add(req("rejected"))
        uow.requests.add(req("pending"))
        await uow.commit()
    with pytest.raises(IntegrityError):
        async with db.uow() as uow:
            uow.requests.add(req("approved"))
            await uow.commit()


async def test_processed_claim_is_once_even_concurrently(db: Database) -> None:
    async def claim() -> bool:
        async with db.uow() as uow:
            ok = await uow.processed.claim("msg:1", "robot", NOW)
            await uow.commit()
            return ok

    results: list[Any] = await asyncio.gather(*(claim() for _ in range(8)),
                                              return_exceptions=True)
    wins = [r for r in results if r is True]
    assert len(wins) == 1, results
    assert all(r is True or r is False or isinstance(r, IntegrityError) for r in results)


async def test_audit_chain_verifies_and_names_first_tampered_row(db: Database) -> None:
    async with db.uow() as uow:
        for i in range(5):
            await uow.audit.append("c1", NOW + timedelta(seconds=i), actor_id="alice",
                                   action="grant", result="applied", target_id=f"u{i}",
                                   after={"perm": "crm.export"})
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.audit.verify("c1") is None
        await uow.session.execute(
            update(AuditEntry).where(AuditEntry.seq == 3).values(target_id="mallory"))
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.audit.verify("c1") == 3


async def test_outbox_claim_lease_and_rate_window(db: Database) -> None:
    async with db.uow() as uow:
        for i in range(3):
            await uow.outbox.add("reply", "group:g", {"text": str(i)}, NOW)
        await uow.commit()
    async with db.uow() as uow:
        first = await uow.outbox.claim_due(NOW, timedelta(seconds=30), 10)
        await uow.commit()
    assert [r.payload["text"] for r in first] == ["0", "1", "2"]
    async with db.uow() as uow:  # leased: nobody else gets them
        assert list(await uow.outbox.claim_due(NOW, timedelta(seconds=30), 10)) == []
        await uow.outbox.mark_sent(first[0].id, NOW)
        await uow.commit()
    async with db.uow() as uow:  # lease over: the unsent ones come back, the sent one not
        again = await uow.outbox.claim_due(NOW + timedelta(seconds=31), timedelta(seconds=30), 10)
        assert [r.payload["text"] for r in again] == ["1", "2"]
        assert len(await uow.outbox.sent_since("group:g", NOW - timedelta(minutes=1))) == 1


async def test_members_admins_listing_owner_first(db: Database) -> None:
    async with db.uow() as uow:
        await uow.members.upsert("c1", "zoe", NOW, level=ADMIN)
        await uow.members.upsert("c1", "bob", NOW, level=OWNER, name="Bob")
        await uow.members.upsert("c1", "amy", NOW, level=ADMIN)
        await uow.members.upsert("c1", "max", NOW)
        await uow.commit()
    async with db.uow() as uow:
        people = await uow.members.admins_of("c1")
        assert [p.user_id for p in people] == ["bob", "amy", "zoe"]
        bob = (await uow.session.execute(select(Base.metadata.tables["members"]).where(
            Base.metadata.tables["members"].c.user_id == "bob"))).one()
        assert bob.name == "Bob"


async def test_0005_counts_rows_sent_before_it_and_downgrades(db_url: str) -> None:
    """Rows sent before ``outbox.counted_at`` existed keep counting against the budget (for
    the minute that matters); pending rows do not; the revision downgrades cleanly."""
    import sqlalchemy as sa
    from alembic import command

    from storage.models import OutboxMessage, UTCDateTime

    database = open_database(db_url)
    try:
        await migrate.upgrade(database, "0004")
        old = sa.table("outbox", sa.column("id", sa.Integer), sa.column("kind", sa.String),
                       sa.column("conversation_key", sa.String), sa.column("payload", sa.JSON()),
                       sa.column("status", sa.String), sa.column("attempts", sa.Integer),
                       sa.column("next_attempt_at", UTCDateTime()),
                       sa.column("created_at", UTCDateTime()), sa.column("sent_at", UTCDateTime()))
        async with database.engine.begin() as conn:
            await conn.execute(sa.insert(old), [
                {"id": 1, "kind": "reply", "conversation_key": "group:g", "payload": {},
                 "status": "sent", "attempts": 0, "next_attempt_at": NOW, "created_at": NOW,
                 "sent_at": NOW + timedelta(seconds=5)},
                {"id": 2, "kind": "reply", "conversation_key": "group:g", "payload": {},
                 "status": "pending", "attempts": 0, "next_attempt_at": NOW, "created_at": NOW,
                 "sent_at": None}])
        await migrate.upgrade(database)
        async with database.uow() as uow:
            got = (await uow.session.execute(select(OutboxMessage.id, OutboxMessage.counted_at)
                                             .order_by(OutboxMessage.id))).all()
            assert [tuple(r) for r in got] == [(1, NOW + timedelta(seconds=5)), (2, None)]
            assert await uow.outbox.count_sent_since("group:g", NOW, cap=20) == 1
        async with database.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(migrate.alembic_config(c), "0004"))
        assert await migrate.current_revision(database) == "0004"
    finally:
        await database.dispose()
