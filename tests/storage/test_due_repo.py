"""The due-work repository's claim, done and failed marks (what bot/scheduling/due.py asks
of it), on SQLite and PostgreSQL: core values out, the lease and the status rules in SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from bot.core.domain.due import DueItem
from storage.db import Database
from storage.models import DueWork

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
LEASE = timedelta(seconds=90)


async def _schedule(db: Database, *rows: tuple[str, datetime]) -> None:
    async with db.uow() as uow:
        for key, due in rows:
            await uow.due.schedule("job", due, {"key": key}, NOW, dedupe_key=key)
        await uow.commit()


async def _rows(db: Database) -> dict[str, DueWork]:
    async with db.uow() as uow:
        rows = {r.dedupe_key or "": r for r in (await uow.session.execute(
            select(DueWork))).scalars()}
        uow.session.expunge_all()   # read as they are, not expired by the rollback
        return rows


async def test_claim_due_leases_values_in_due_order(db: Database) -> None:
    await _schedule(db, ("late", NOW - timedelta(minutes=1)), ("early", NOW - timedelta(minutes=5)),
                    ("future", NOW + timedelta(minutes=1)))
    async with db.uow() as uow:
        got = await uow.due.claim_due(NOW, LEASE, 10)
        await uow.commit()
    assert all(isinstance(i, DueItem) for i in got)
    assert [(i.payload["key"], i.due_at, i.status, i.attempts) for i in got] == [
        ("early", NOW - timedelta(minutes=5), "pending", 0),
        ("late", NOW - timedelta(minutes=1), "pending", 0)]
    rows = await _rows(db)
    assert [rows[k].claimed_until for k in ("early", "late", "future")] == [
        NOW + LEASE, NOW + LEASE, None]
    async with db.uow() as uow:           # leased: nobody else takes them until it ends
        assert await uow.due.claim_due(NOW + timedelta(seconds=10), LEASE, 10) == []
        again = await uow.due.claim_due(NOW + LEASE, LEASE, 1)
    assert [i.payload["key"] for i in again] == ["early"]
    async with db.uow() as uow:
        assert [i.payload["key"] for i in await uow.due.upcoming(2)] == ["early", "late"]


async def test_mark_done_only_a_pending_row(db: Database) -> None:
    await _schedule(db, ("a", NOW), ("b", NOW))
    async with db.uow() as uow:
        a, b = await uow.due.claim_due(NOW, LEASE, 10)
        await uow.due.cancel("b")
        await uow.due.mark_done(a.id, NOW + timedelta(seconds=1))
        await uow.due.mark_done(b.id, NOW + timedelta(seconds=1))
        await uow.commit()
    rows = await _rows(db)
    assert (rows["a"].status, rows["a"].done_at, rows["a"].claimed_until) == (
        "done", NOW + timedelta(seconds=1), None)
    assert (rows["b"].status, rows["b"].done_at) == ("cancelled", None)


async def test_mark_failed_retries_or_gives_up(db: Database) -> None:
    await _schedule(db, ("retry", NOW), ("give_up", NOW - timedelta(minutes=1)))
    async with db.uow() as uow:
        give_up, retry = await uow.due.claim_due(NOW, LEASE, 10)
        await uow.due.mark_failed(retry, "ValueError: no", retry_at=NOW + timedelta(seconds=10))
        await uow.due.mark_failed(give_up, "KeyError: x", retry_at=None)
        await uow.commit()
    rows = await _rows(db)
    r, g = rows["retry"], rows["give_up"]
    assert (r.status, r.attempts, r.due_at, r.claimed_until, r.payload) == (
        "pending", 1, NOW + timedelta(seconds=10), None,
        {"key": "retry", "last_error": "ValueError: no"})
    assert (g.status, g.attempts, g.due_at, g.claimed_until, g.payload) == (
        "failed", 1, NOW - timedelta(minutes=1), None,
        {"key": "give_up", "last_error": "KeyError: x"})


@pytest.mark.pg
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_claim_due_skips_rows_another_open_transaction_holds(db: Database) -> None:
    await _schedule(db, ("a", NOW - timedelta(minutes=2)), ("b", NOW - timedelta(minutes=1)))
    async with db.uow() as first:
        held = await first.due.claim_due(NOW, LEASE, 1)
        async with db.uow() as second:
            await second.session.execute(text("SET LOCAL lock_timeout = '2s'"))
            other = await second.due.claim_due(NOW, LEASE, 10)
            await second.commit()
    assert [i.payload["key"] for i in held] == ["a"]
    assert [i.payload["key"] for i in other] == ["b"]
