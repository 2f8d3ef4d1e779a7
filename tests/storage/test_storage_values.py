"""Repositories named by intent return bot/core values, on SQLite and PostgreSQL (issue 16)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.core.domain.audit import AuditRecord
from bot.core.domain.due import DueItem
from bot.core.domain.members import ADMIN, MEMBER, OWNER, MemberView
from bot.core.domain.outbox import OutboxRow
from bot.core.domain.permissions import EndedGrant, TemplateView
from bot.core.domain.requests import RequestConflict, Vote
from storage import models
from storage.db import Database
from storage.models import OutboxMessage, Request, Template

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CORP = "c1"


def _request(state: str = "pending", kind: str = "grant", corp: str = CORP) -> Request:
    return Request(corp_id=corp, kind=kind, state=state, requester_id="a", target_id="b",
                   conversation_id="cid", created_at=NOW, expires_at=NOW + timedelta(days=1))


async def test_members_names_levels_and_views(db: Database) -> None:
    async with db.uow() as uow:
        await uow.members.upsert(CORP, "bob", NOW, level=OWNER, name="Bob")
        await uow.members.upsert(CORP, "amy", NOW, name="Amy")
        await uow.members.upsert(CORP, "nameless", NOW)
        await uow.members.upsert("c2", "eve", NOW, name="Eve")
        assert await uow.members.names(CORP, set()) == {}
        assert await uow.members.names(CORP, {"bob", "amy", "nameless", "eve", "ghost"}) == {
            "bob": "Bob", "amy": "Amy"}
        amy = await uow.members.get(CORP, "amy")
        assert amy is not None
        await uow.members.set_level(amy, ADMIN, NOW + timedelta(hours=1))
        await uow.members.set_role(amy, "sales", NOW + timedelta(hours=2))
        await uow.members.arm_import(amy, "replace", NOW + timedelta(minutes=10))
        await uow.commit()
    async with db.uow() as uow:
        people = await uow.members.admins_of(CORP)
        assert people == [MemberView("bob", "Bob", OWNER, None, True),
                          MemberView("amy", "Amy", ADMIN, "sales", True)]
        with pytest.raises(dataclasses.FrozenInstanceError):
            people[0].level = MEMBER  # type: ignore[misc]
        amy = await uow.members.get(CORP, "amy")
        assert amy is not None
        assert (amy.level, amy.role, amy.updated_at) == (ADMIN, "sales", NOW + timedelta(hours=2))
        assert (amy.import_mode, amy.import_mode_until) == ("replace", NOW + timedelta(minutes=10))


async def test_members_disarm_import_and_name_if_unnamed(db: Database) -> None:
    async with db.uow() as uow:
        amy = await uow.members.upsert(CORP, "amy", NOW)
        bob = await uow.members.upsert(CORP, "bob", NOW, name="Bob")
        await uow.members.arm_import(amy, "replace", NOW + timedelta(hours=1))
        await uow.members.disarm_import(amy)
        uow.members.name_if_unnamed(amy, "Amy")
        uow.members.name_if_unnamed(bob, "Robert")        # has a name: kept
        uow.members.name_if_unnamed(bob, None)
        await uow.commit()
    async with db.uow() as uow:
        amy = await uow.members.get(CORP, "amy")
        bob = await uow.members.get(CORP, "bob")
        assert amy is not None and bob is not None
        assert (amy.name, amy.import_mode, amy.import_mode_until) == ("Amy", None, None)
        assert bob.name == "Bob"


async def test_set_level_meets_the_one_owner_constraint_at_once(db: Database) -> None:
    async with db.uow() as uow:
        await uow.members.upsert(CORP, "bob", NOW, level=OWNER)
        amy = await uow.members.upsert(CORP, "amy", NOW)
        with pytest.raises(IntegrityError):
            await uow.members.set_level(amy, OWNER, NOW)


async def test_requests_save_votes_and_conflicts(db: Database) -> None:
    async with db.uow() as uow:
        first = _request()
        rid = await uow.requests.save_new(first)
        assert rid == first.id and rid > 0
        await uow.requests.add_vote(rid, "x", "approve", NOW)
        await uow.requests.add_vote(rid, "y", "reject", NOW + timedelta(minutes=1))
        other = await uow.requests.save_new(_request(corp="c2"), savepoint=True)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.requests.votes_of(rid) == (
            Vote("x", "approve", NOW), Vote("y", "reject", NOW + timedelta(minutes=1)))
        assert await uow.requests.votes_of(other) == ()
        assert set(await uow.requests.by_ids(CORP, {rid, other, 999})) == {rid}
        # A second open owner transfer: the core's conflict, and the transaction goes on.
        await uow.requests.save_new(_request(kind="owner_transfer"), savepoint=True)
        with pytest.raises(RequestConflict):
            await uow.requests.save_new(_request(kind="owner_transfer"), savepoint=True)
        await uow.requests.add_vote(rid, "z", "approve", NOW)
        await uow.commit()
    async with db.uow() as uow:
        assert [v.voter for v in await uow.requests.votes_of(rid)] == ["x", "y", "z"]


async def test_savepoint_rolls_back_only_its_block(db: Database) -> None:
    async with db.uow() as uow:
        req = _request()
        await uow.requests.save_new(req)
        with pytest.raises(RuntimeError):
            async with uow.savepoint():
                req.state = "applied"
                await uow.requests.add_vote(req.id, "x", "approve", NOW)
                raise RuntimeError("apply failed")
        await uow.requests.reload(req)
        assert req.state == "pending"
        assert await uow.requests.votes_of(req.id) == ()
        await uow.ping()
        await uow.commit()


async def test_due_work_pending_take_overdue_and_overview(db: Database) -> None:
    async with db.uow() as uow:
        closed = _request(state="rejected")
        live = _request()
        await uow.requests.save_new(closed)
        await uow.requests.save_new(live)
        for key, kind, due, payload in [
            ("a", "request_remind", NOW - timedelta(minutes=5), {"request_id": live.id}),
            ("b", "request_remind", NOW - timedelta(minutes=1), {"request_id": live.id}),
            ("c", "request_remind", NOW + timedelta(hours=1), {"request_id": live.id}),
            ("d", "request_remind", NOW - timedelta(minutes=3), {"request_id": closed.id}),
            ("e", "grant_expire", NOW - timedelta(minutes=2), {"grant_id": 5}),
        ]:
            await uow.due.schedule(kind, due, payload, NOW, dedupe_key=key)
        await uow.commit()
    async with db.uow() as uow:
        rows = await uow.due.pending_due("request_remind", NOW, besides=-1)
        assert all(isinstance(r, DueItem) for r in rows)
        assert [(r.due_at, r.payload["request_id"]) for r in rows] == [
            (NOW - timedelta(minutes=5), live.id), (NOW - timedelta(minutes=3), closed.id),
            (NOW - timedelta(minutes=1), live.id)]
        ids = dict(zip("adb", (r.id for r in rows), strict=True))
        assert [r.id for r in await uow.due.pending_due(
            "request_remind", NOW, besides=ids["a"])] == [ids["d"], ids["b"]]
        assert await uow.due.is_pending(ids["b"])
        assert await uow.due.take([ids["b"], ids["d"]], NOW) == {ids["b"], ids["d"]}
        assert await uow.due.take([ids["b"]], NOW) == set()           # taken already
        assert not await uow.due.is_pending(ids["b"])
        assert not await uow.due.is_pending(999_999)
        assert await uow.due.overdue(NOW) == (2, NOW - timedelta(minutes=5))   # a and e
        await uow.commit()
    async with db.uow() as uow:
        await uow.due.schedule("grant_expire", NOW - timedelta(minutes=9), {"grant_id": 6}, NOW,
                               dedupe_key="f")
        await uow.due.schedule("request_remind", NOW - timedelta(minutes=8),
                               {"request_id": closed.id}, NOW, dedupe_key="g")   # moot
        await uow.commit()
    async with db.uow() as uow:
        sched = await uow.due.overview(NOW, 2, moot_kinds=("request_remind",))
    assert (sched.total, sched.overdue, sched.n_failed, sched.failed) == (4, 3, 0, ())
    assert [(i.kind, i.due_at, i.payload) for i in sched.upcoming] == [
        ("grant_expire", NOW - timedelta(minutes=9), {"grant_id": 6}),
        ("request_remind", NOW - timedelta(minutes=5), {"request_id": live.id})]
    assert all(isinstance(i, DueItem) and i.status == "pending" for i in sched.upcoming)


async def test_outbox_backlog(db: Database) -> None:
    async with db.uow() as uow:
        assert await uow.outbox.backlog() == (0, None, 0)
        first = await uow.outbox.add("reply", "k", {}, NOW)
        await uow.outbox.add("reply", "k", {}, NOW + timedelta(minutes=1))
        gone = await uow.outbox.add("reply", "k", {}, NOW + timedelta(minutes=2))
        await uow.outbox.mark_failed(gone, "boom")
        assert first > 0
        assert await uow.outbox.backlog() == (2, NOW, 1)


async def test_grant_expiry_and_templates(db: Database) -> None:
    async with db.uow() as uow:
        ends = await uow.perms.grant(CORP, "amy", "crm.export", by="bob", now=NOW,
                                     expires_at=NOW + timedelta(hours=1))
        keeps = await uow.perms.grant(CORP, "amy", "crm.read", by="bob", now=NOW,
                                      expires_at=None)
        await uow.perms.add_template(CORP, "sales", ["crm.read"], by="bob", now=NOW)
        await uow.commit()
    assert ends.after is not None and keeps.after is not None
    async with db.uow() as uow:
        assert await uow.perms.remove_expired(ends.after.id, NOW) is None      # not yet
        assert await uow.perms.remove_expired(keeps.after.id, NOW) is None     # never ends
        assert await uow.perms.remove_expired(ends.after.id, NOW + timedelta(hours=1)) == \
            EndedGrant("amy", "crm.export", NOW + timedelta(hours=1), "bob")
        assert await uow.perms.remove_expired(ends.after.id, NOW + timedelta(hours=2)) is None
        tpl = await uow.perms.template(CORP, "sales", for_update=True)
        assert tpl == TemplateView(tpl.id if tpl else 0, "sales", ("crm.read",))
        assert tpl is not None
        await uow.perms.set_template_items(tpl, ["crm.read", "crm.export"],
                                           NOW + timedelta(days=1))
        # The same transaction reads the new items (the identity map follows the UPDATE).
        assert await uow.perms.templates(CORP) == [
            (TemplateView(tpl.id, "sales", ("crm.read", "crm.export")), 0)]
        assert await uow.perms.assign(tpl, "amy", by="bob", now=NOW)
        await uow.commit()
    async with db.uow() as uow:
        assert [g.name for g in await uow.perms.grants_of(CORP, "amy")] == ["crm.read"]
        row = (await uow.session.execute(select(Template).where(Template.id == tpl.id))).scalar_one()
        assert (row.permissions, row.updated_at, row.created_by) == (
            ["crm.read", "crm.export"], NOW + timedelta(days=1), "bob")
        assert await uow.perms.holders(tpl.id) == ["amy"]
        await uow.perms.delete_template(tpl)
        assert await uow.perms.template(CORP, "sales") is None
        assert await uow.perms.holders(tpl.id) == []
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.perms.templates(CORP) == []


async def test_audit_reads_are_values_that_outlive_the_transaction(db: Database) -> None:
    async with db.uow() as uow:
        await uow.audit.append(CORP, NOW, actor_id="bob", action="grant.apply",
                               result="applied", target_id="amy", after={"name": "crm.read"})
        await uow.audit.append(CORP, NOW, actor_id="amy", action="role_set.refused",
                               result="refused")
        await uow.commit()
    async with db.uow() as uow:
        recent = await uow.audit.recent(CORP, 5)
        between = await uow.audit.between(CORP, user_id="amy")
    assert all(isinstance(e, AuditRecord) for e in [*recent, *between])
    assert [(e.seq, e.action) for e in recent] == [(2, "role_set.refused"), (1, "grant.apply")]
    assert [e.seq for e in between] == [1, 2]
    first = between[0]
    assert (first.actor_id, first.target_id, first.after, first.prev_hash) == (
        "bob", "amy", {"name": "crm.read"}, "0" * 64)
    assert between[1].prev_hash == first.hash


def test_the_outbox_value_has_the_outbox_table_s_columns() -> None:
    """A claim builds ``OutboxRow(**row)`` from every column of the table: core's value
    (re-exported by the schema) must name exactly those."""
    assert models.OutboxRow is OutboxRow
    assert [f.name for f in dataclasses.fields(OutboxRow)] == [
        c.name for c in OutboxMessage.__table__.columns]
