"""The role sync's rows on both stores: mapped role ids, once-only marks, the month's call
totals summed from several flushes, and who holds a mapped role (role or live grant)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.db import Database

CORP = "dingstore"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


async def test_role_ids_marks_and_call_totals(db: Database) -> None:
    async with db.uow() as uow:
        await uow.rolesync.save_role(CORP, "sales", "销售", 1_500_000_001, 7, T0)
        await uow.rolesync.save_role(CORP, "sales", "销售部", 1_500_000_009, 7, T0)
        assert await uow.rolesync.role_ids(CORP) == {"sales": ("销售部", 1_500_000_009)}
        assert await uow.rolesync.claim_mark(CORP, "budget:2026-12:80", T0)
        assert not await uow.rolesync.claim_mark(CORP, "budget:2026-12:80", T0)
        await uow.rolesync.set_mark(CORP, "roles.cursor", "5", T0)
        await uow.rolesync.set_mark(CORP, "roles.cursor", "9", T0)
        assert await uow.rolesync.mark(CORP, "roles.cursor") == "9"
        assert await uow.rolesync.add_calls(CORP, {"2026-12": 3}, T0) == {"2026-12": 3}
        await uow.commit()
    async with db.uow() as uow:    # another replica's flush adds to the same total
        assert await uow.rolesync.add_calls(CORP, {"2026-12": 4, "2027-01": 1}, T0) == {
            "2026-12": 7, "2027-01": 1}
        assert await uow.rolesync.clear_mark(CORP, "budget:2026-12:80")
        assert await uow.rolesync.claim_mark(CORP, "budget:2026-12:80", T0)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.rolesync.calls_in(CORP, "2026-12") == 7
        assert await uow.rolesync.calls_in(CORP, "2026-11") == 0


async def test_holders_count_roles_and_live_grants(db: Database) -> None:
    async with db.uow() as uow:
        for u in ("a", "b", "c", "d"):
            await uow.members.upsert(CORP, u, T0, name=u)
        a = await uow.members.sender(CORP, "a")
        assert a is not None
        await uow.members.set_role(a, "sales", T0)
        await uow.perms.grant(CORP, "b", "sales", by="a", now=T0, expires_at=None)
        await uow.perms.grant(CORP, "c", "sales", by="a", now=T0,
                              expires_at=T0 + timedelta(hours=1))
        await uow.perms.grant(CORP, "d", "crm.export", by="a", now=T0, expires_at=None)
        await uow.commit()
    later = T0 + timedelta(hours=2)
    async with db.uow() as uow:
        assert await uow.rolesync.holders(CORP, ["sales", "analyst"], T0) == {
            "sales": {"a", "b", "c"}, "analyst": set()}
        assert await uow.rolesync.holders(CORP, ["sales"], later) == {"sales": {"a", "b"}}
        assert await uow.rolesync.held_many(CORP, ["a", "c", "d"], ["sales"], later) == {
            "a": {"sales"}, "c": set(), "d": set()}
