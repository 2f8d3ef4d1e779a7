"""DingTalk role sync at the handler layer (SQLite and PostgreSQL): changes followed from the
change feed become batched role calls in the outbox; the outbox sends them to the fake
DingTalk (which keeps the role labels); a refusal for a permission is parked and alerted
once; the reconcile audits and fixes (enforce) or only reports; the call budget warns once
a month per threshold."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.core.domain.rolesync import RoleCall, RoleGroupInfo
from bot.delivery.budget import BudgetWatch, record_calls
from bot.delivery.outbox import OutboxSender
from bot.delivery.rolesync import CURSOR_MARK, KIND, ROLE_READS_AT_ONCE, RoleSync, follow_feed
from bot.ports import PermissionDenied, ServerError
from bot.transport.inbound import OrgEvent
from handlers.rolesync import schedule_reconcile
from storage.models import AuditEntry, OutboxMessage
from tests.handlers.conftest import GROUP, Harness, MakeHarness
from tests.support import Overlap, audit_actions, member

ROLES: dict[str, Any] = {"enabled": True, "group": "Baton",
                         "map": {"sales": "销售", "analyst": "分析师"}, "mode": "enforce"}
DENIED = PermissionDenied("/topapi/role/addrolesforemps", 200, "60011",
                          "应用尚未开通所需的权限：[qyapi_manage_addresslist]")


async def rig(make_harness: MakeHarness, **roles: Any) -> tuple[Harness, RoleSync]:
    h = await make_harness(integrations={"dingtalk_roles": {**ROLES, **roles}},
                           org={"alert_conversation": GROUP})
    sync = RoleSync(h.db, h.settings, h.dingtalk)
    assert await sync.start(h.clock.now())
    await follow(h)           # the first step puts the cursor at the feed's head
    return h, sync


async def follow(h: Harness) -> int:
    async with h.db.uow() as uow:
        _, n = await follow_feed(uow, h.settings, h.clock.now())
        await uow.commit()
    return n


async def rows(h: Harness, status: str | None = "pending") -> list[tuple[RoleCall, str, str]]:
    """Queued role calls: (call, status, last error)."""
    async with h.db.uow() as uow:
        found = (await uow.session.execute(select(OutboxMessage).where(
            OutboxMessage.kind == KIND).order_by(OutboxMessage.id))).scalars().all()
        return [(RoleCall.from_payload(r.payload), r.status, r.last_error or "") for r in found
                if status is None or r.status == status]


async def alerts(h: Harness, contains: str) -> list[str]:
    return [s.text for s in await h.sent_after(0)
            if s.kind == "reply" and s.payload.get("merge") == "alert" and contains in s.text]


def sender(h: Harness, sync: RoleSync) -> OutboxSender:
    return OutboxSender(h.db, h.dingtalk, h.settings.outbox, h.clock,
                        deliverers={KIND: lambda p: sync.deliver(p, h.clock.now())},
                        on_denied={KIND: sync.parked})


async def test_start_finds_or_creates_the_group_and_roles(make_harness: MakeHarness) -> None:
    h, sync = await rig(make_harness)
    assert h.dingtalk.called("add_role_group") == [("Baton",)]
    assert sorted(a[1] for a in h.dingtalk.called("add_role")) == ["分析师", "销售"]
    # A restart finds them: nothing created twice.
    assert await sync.start(h.clock.now())
    assert len(h.dingtalk.called("add_role_group")) == 1
    assert len(h.dingtalk.called("add_role")) == 2


async def test_role_changes_follow_to_dingtalk(make_harness: MakeHarness) -> None:
    h, sync = await rig(make_harness)
    await h.ask("lisi", "设置角色 @赵六 sales", "业务角色设为 sales", ("zhaoliu",))
    assert await follow(h) == 1
    assert [c for c, _, _ in await rows(h)] == [RoleCall("add", ("sales",), ("zhaoliu",))]
    await sender(h, sync).drain_once()
    assert h.dingtalk.holders_of("Baton", "销售") == ["zhaoliu"]
    assert await follow(h) == 0       # the cursor moved on with the calls

    # Moved to another role: the old label goes first, then the new one comes.
    await h.ask("lisi", "role set @zhaoliu analyst", "role is now analyst", ("zhaoliu",))
    assert await follow(h) == 2
    assert [c for c, _, _ in await rows(h)] == [
        RoleCall("remove", ("sales",), ("zhaoliu",)), RoleCall("add", ("analyst",), ("zhaoliu",))]
    await sender(h, sync).drain_once()
    assert h.dingtalk.holders_of("Baton", "销售") == []
    assert h.dingtalk.holders_of("Baton", "分析师") == ["zhaoliu"]

    await h.ask("lisi", "role clear @zhaoliu", "analyst", ("zhaoliu",))
    assert await follow(h) == 1
    await sender(h, sync).drain_once()
    assert h.dingtalk.holders_of("Baton", "分析师") == []
    # An unmapped role moves nothing.
    await h.ask("lisi", "role set @zhaoliu crm_admin", "", ("zhaoliu",))
    assert await follow(h) == 0


async def test_a_grant_of_the_role_keeps_the_label(make_harness: MakeHarness) -> None:
    h, sync = await rig(make_harness)
    await h.ask("lisi", "role set @qianqi sales", "role is now sales", ("qianqi",))
    await h.ask("lisi", "grant @qianqi sales", "Granted", ("qianqi",))
    await h.ask("lisi", "role clear @qianqi", "sales", ("qianqi",))
    assert await follow(h) == 1       # the add; the clear removes nothing: the grant holds it
    await sender(h, sync).drain_once()
    assert h.dingtalk.holders_of("Baton", "销售") == ["qianqi"]
    await h.ask("lisi", "revoke @qianqi sales", "", ("qianqi",))
    assert await follow(h) == 1
    assert [c for c, _, _ in await rows(h)] == [RoleCall("remove", ("sales",), ("qianqi",))]
    await sender(h, sync).drain_once()
    assert h.dingtalk.holders_of("Baton", "销售") == []


async def test_many_changes_are_batched_twenty_users_a_call(make_harness: MakeHarness) -> None:
    h, sync = await rig(make_harness)
    users = [f"u{i:03}" for i in range(45)]
    now = h.clock.now()
    async with h.db.uow() as uow:
        for u in users:
            await uow.members.upsert(h.settings.org.corp_id, u, now, name=u)
            m = await uow.members.sender(h.settings.org.corp_id, u)
            assert m is not None
            await uow.members.set_role(m, "sales", now)
            await uow.audit.append(h.settings.org.corp_id, now, actor_id="lisi",
                                   action="role_set.apply", result="applied", target_id=u,
                                   before={"role": None}, after={"role": "sales"})
        await uow.commit()
    assert await follow(h) == 3
    assert [len(c.users) for c, _, _ in await rows(h)] == [20, 20, 5]
    await sender(h, sync).drain_once()
    assert sorted(h.dingtalk.holders_of("Baton", "销售")) == users
    assert len(h.dingtalk.called("add_roles_for_users")) == 3


async def test_refused_for_a_permission_is_parked_and_alerted_once(
        make_harness: MakeHarness) -> None:
    h, sync = await rig(make_harness)
    await h.ask("lisi", "role set @zhaoliu sales", "role is now sales", ("zhaoliu",))
    await follow(h)
    await h.ask("lisi", "role set @qianqi analyst", "role is now analyst", ("qianqi",))
    await follow(h)
    h.dingtalk.fail_next("add_roles_for_users", DENIED, times=2)
    out = sender(h, sync)
    await out.drain_once()
    assert [(s, e.startswith("parked: PermissionDenied")) for _, s, e in await rows(h, None)] \
        == [("failed", True)] * 2
    assert out.parked == 2 and len(h.dingtalk.called("add_roles_for_users")) == 2
    assert len(await alerts(h, "qyapi_manage_addresslist")) == 1
    # Another change, refused again: parked, and no second alert.
    await h.ask("lisi", "role clear @zhaoliu", "sales", ("zhaoliu",))
    assert await follow(h) == 1
    h.dingtalk.fail_next("remove_roles_for_users", DENIED)
    await out.drain_once()
    assert out.parked == 3
    assert len(await alerts(h, "qyapi_manage_addresslist")) == 1
    assert await rows(h) == []          # nothing left to retry forever
    # A transient failure is retried later (with backoff), not parked.
    await h.ask("lisi", "role set @qianqi sales", "role is now sales", ("qianqi",))
    await follow(h)
    h.dingtalk.fail_next("add_roles_for_users", ServerError("/topapi/role/addrolesforemps",
                                                            500, "500", "busy"))
    await out.drain_once()
    pending = await rows(h)
    assert len(pending) == 1 and "ServerError" in pending[0][2]


async def test_a_start_refused_for_a_permission_alerts_once(make_harness: MakeHarness) -> None:
    h = await make_harness(integrations={"dingtalk_roles": ROLES},
                           org={"alert_conversation": GROUP})
    sync = RoleSync(h.db, h.settings, h.dingtalk)
    h.dingtalk.fail_next("role_groups", DENIED, times=2)
    assert not await sync.start(h.clock.now())
    assert not await sync.start(h.clock.now())
    assert len(await alerts(h, "qyapi_manage_addresslist")) == 1
    assert await sync.start(h.clock.now())        # granted: a read proves nothing of writes
    h.dingtalk.fail_next("role_groups", DENIED)
    assert not await sync.start(h.clock.now())
    assert len(await alerts(h, "qyapi_manage_addresslist")) == 1
    await sync.deliver(RoleCall("add", ("sales",), ("zhaoliu",)).payload(), h.clock.now())
    h.dingtalk.fail_next("role_groups", DENIED)   # a role call went through: told again
    assert not await sync.start(h.clock.now())
    assert len(await alerts(h, "qyapi_manage_addresslist")) == 2


async def _drift(h: Harness, sync: RoleSync) -> None:
    """zhaoliu holds sales in Baton, and carried its label until someone took it away in the
    console; wangwu carries the label, given in the console."""
    await h.ask("lisi", "role set @zhaoliu sales", "role is now sales", ("zhaoliu",))
    await follow(h)
    await sender(h, sync).drain_once()
    rid = h.dingtalk.role_id("Baton", "销售")
    assert rid is not None
    h.dingtalk.role_holders[rid].remove("zhaoliu")
    h.dingtalk.console_assign("Baton", "销售", "wangwu")
    h.clock.advance(timedelta(minutes=5))     # later: the call is long done, not in flight


async def test_reconcile_enforce_fixes_dingtalk(make_harness: MakeHarness) -> None:
    h, sync = await rig(make_harness)
    await _drift(h, sync)
    assert await schedule_reconcile(h.db, h.settings, h.clock.now())
    await h.run_due()
    async with h.db.uow() as uow:
        found = (await uow.session.execute(select(
            AuditEntry.action, AuditEntry.result, AuditEntry.target_id).where(
            AuditEntry.action.like("roles.%")).order_by(AuditEntry.seq))).all()
    assert sorted(found) == [("roles.extra", "queued", "wangwu"),
                             ("roles.missing", "queued", "zhaoliu")]
    assert [c for c, _, _ in await rows(h)] == [RoleCall("remove", ("sales",), ("wangwu",)),
                                                RoleCall("add", ("sales",), ("zhaoliu",))]
    [summary] = await alerts(h, "钉钉角色对账")
    assert "2 处不一致" in summary and "销售 缺 zhaoliu" in summary and "销售 多 wangwu" in summary
    await sender(h, sync).drain_once()
    assert h.dingtalk.holders_of("Baton", "销售") == ["zhaoliu"]
    # The next reconcile (the cron's, planned by this one) finds nothing to say.
    h.clock.advance(timedelta(days=1))
    await h.run_due()
    assert len(await alerts(h, "钉钉角色对账")) == 1


async def test_a_change_on_its_way_is_not_drift(make_harness: MakeHarness) -> None:
    h, sync = await rig(make_harness)
    await h.ask("lisi", "role set @zhaoliu sales", "role is now sales", ("zhaoliu",))
    await schedule_reconcile(h.db, h.settings, h.clock.now())
    await h.run_due()                   # the event is not followed yet: not a difference
    await follow(h)
    h.clock.advance(timedelta(days=1))
    await h.run_due()                   # the call is queued, not sent: not a difference
    assert len(h.dingtalk.called("role_members")) == 4          # two reconciles of two roles
    assert await alerts(h, "钉钉角色对账") == []
    assert [c for c, _, _ in await rows(h)] == [RoleCall("add", ("sales",), ("zhaoliu",))]
    await sender(h, sync).drain_once()
    assert h.dingtalk.holders_of("Baton", "销售") == ["zhaoliu"]


async def test_reconcile_report_only_alerts(make_harness: MakeHarness) -> None:
    h, sync = await rig(make_harness, mode="report")
    await _drift(h, sync)
    await schedule_reconcile(h.db, h.settings, h.clock.now())
    await h.run_due()
    async with h.db.uow() as uow:
        results = set((await uow.session.execute(select(AuditEntry.result).where(
            AuditEntry.action.like("roles.%")))).scalars())
    assert results == {"reported"}
    assert await rows(h) == []
    [summary] = await alerts(h, "只报告")
    assert "未做修改" in summary and "销售 缺 zhaoliu" in summary
    assert sorted(h.dingtalk.holders_of("Baton", "销售")) == ["wangwu"]


async def test_reconcile_refused_alerts_once_and_plans_the_next(
        make_harness: MakeHarness) -> None:
    h, _ = await rig(make_harness)
    h.dingtalk.fail_next("role_groups", DENIED, times=2)
    await schedule_reconcile(h.db, h.settings, h.clock.now())
    await h.run_due()
    assert len(await alerts(h, "qyapi_manage_addresslist")) == 1
    async with h.db.uow() as uow:
        upcoming = [d.kind for d in await uow.due.upcoming(50)]
    assert "roles_reconcile" in upcoming


async def test_the_cursor_starts_at_the_head(make_harness: MakeHarness) -> None:
    h = await make_harness(integrations={"dingtalk_roles": ROLES})
    await h.ask("lisi", "role set @zhaoliu sales", "role is now sales", ("zhaoliu",))
    assert await follow(h) == 0                  # history is the reconcile's, not the feed's
    async with h.db.uow() as uow:
        assert await uow.rolesync.mark(h.settings.org.corp_id, CURSOR_MARK) == str(
            await uow.feed.head())
    await h.ask("lisi", "role clear @zhaoliu", "sales", ("zhaoliu",))
    assert await follow(h) == 1


async def test_the_budget_warns_once_a_month_per_threshold(make_harness: MakeHarness) -> None:
    h = await make_harness(org={"alert_conversation": GROUP},
                           dingtalk={"monthly_call_budget": 10000})

    async def add(counts: dict[str, int]) -> list[tuple[str, int]]:
        async with h.db.uow() as uow:
            warned = await record_calls(uow, h.settings, h.clock.now(), counts)
            await uow.commit()
        return warned

    assert await add({"2026-11": 7999}) == []
    assert await add({"2026-11": 1}) == [("2026-11", 80)]
    assert await add({"2026-11": 5}) == []
    assert await add({"2026-11": 1995}) == [("2026-11", 100)]
    assert await add({"2026-12": 9000}) == [("2026-12", 80)]
    assert len(await alerts(h, "钉钉开放接口已调用")) == 3
    # The watch adds only what was counted since its last flush (cumulative counters).
    seen = {"2027-01": 0}
    watch = BudgetWatch(h.db, h.settings, lambda: seen, h.clock.now)
    seen["2027-01"] = 5000
    assert await watch.flush() == []
    seen["2027-01"] = 8000
    assert await watch.flush() == [("2027-01", 80)]
    assert await watch.flush() == []
    async with h.db.uow() as uow:
        assert await uow.rolesync.calls_in(h.settings.org.corp_id, "2027-01") == 8000


def leaves(h: Harness, user_id: str) -> None:
    """``user_id`` leaves the company in DingTalk: out of the corp, their labels gone (as
    DingTalk drops a leaver's role labels itself)."""
    h.dingtalk.set_user(user_id, active=False, in_corp=False)
    for have in h.dingtalk.role_holders.values():
        if user_id in have:
            have.remove(user_id)


async def test_a_member_who_leaves_gets_no_role_calls(make_harness: MakeHarness) -> None:
    h, sync = await rig(make_harness)
    await h.ask("lisi", "role set @zhaoliu sales", "role is now sales", ("zhaoliu",))
    await h.ask("lisi", "role set @qianqi sales", "role is now sales", ("qianqi",))
    await follow(h)
    out = sender(h, sync)
    await out.drain_once()
    assert sorted(h.dingtalk.holders_of("Baton", "销售")) == ["qianqi", "zhaoliu"]
    leaves(h, "zhaoliu")
    await h.dispatcher.handle_event(OrgEvent("leave-1", "user_leave_org",
                                             h.settings.org.corp_id, None, ("zhaoliu",)))
    assert not (await member(h, "zhaoliu")).active
    # Offboarding cleared the role: the leaver is left out of every role call.
    assert await follow(h) == 0
    assert await rows(h) == []
    # A call queued before the leave names them with someone who stays: the leaver is
    # dropped (DingTalk refuses the whole call for one invalid user id), the rest is done.
    async with h.db.uow() as uow:
        await uow.outbox.add(KIND, "dingtalk:roles",
                             RoleCall("add", ("sales",), ("qianqi", "zhaoliu")).payload(),
                             h.clock.now())
        await uow.commit()
    told = len(await alerts(h, ""))
    await out.drain_once()
    assert await rows(h) == [] and [s for _, s, _ in await rows(h, None)][-1] == "sent"
    assert h.dingtalk.holders_of("Baton", "销售") == ["qianqi"]
    assert len(await alerts(h, "")) == told           # no failure alerted
    assert ("roles.user_dropped", "skipped", "zhaoliu") in await audit_actions(h)
    # The reconcile counts only active members: the leaver's role is not "missing".
    async with h.db.uow() as uow:
        m = await uow.members.sender(h.settings.org.corp_id, "zhaoliu")
        assert m is not None
        await uow.members.set_role(m, "analyst", h.clock.now())     # inactive, role kept
        await uow.commit()
    await schedule_reconcile(h.db, h.settings, h.clock.now())
    await h.run_due()
    assert await rows(h) == []
    assert h.dingtalk.holders_of("Baton", "分析师") == []


async def test_replicas_starting_together_make_the_group_once(make_harness: MakeHarness) -> None:
    h = await make_harness(integrations={"dingtalk_roles": ROLES},
                           org={"alert_conversation": GROUP})
    a, b = (RoleSync(h.db, h.settings, h.dingtalk) for _ in range(2))
    assert await asyncio.gather(a.start(h.clock.now()), b.start(h.clock.now())) == [True, True]
    assert [n for n, _ in h.dingtalk.role_book.values()].count("Baton") == 1
    assert sorted(r for _, roles in h.dingtalk.role_book.values() for r in roles.values()
                  if r in ("销售", "分析师")) == ["分析师", "销售"]
    assert await alerts(h, "") == []
    async with h.db.uow() as uow:
        ids = await uow.rolesync.role_ids(h.settings.org.corp_id)
    assert ids["sales"][1] == h.dingtalk.role_id("Baton", "销售")


async def test_a_group_made_meanwhile_is_found_not_alerted(make_harness: MakeHarness) -> None:
    """Another process made the group (or a role) between this one's look and its create:
    DingTalk refuses the name as taken (33013 / 33014), and the ensure looks again."""
    h = await make_harness(integrations={"dingtalk_roles": ROLES},
                           org={"alert_conversation": GROUP})
    sync = RoleSync(h.db, h.settings, h.dingtalk)
    h.dingtalk.console_assign("Baton", "销售", "wangwu")
    real = h.dingtalk.role_groups
    calls = 0

    async def stale() -> list[RoleGroupInfo]:
        nonlocal calls
        calls += 1
        found = await real()
        return [g for g in found if g.name != "Baton"] if calls == 1 else found

    h.dingtalk.role_groups = stale         # type: ignore[method-assign]
    assert await sync.start(h.clock.now())
    assert await alerts(h, "") == []
    async with h.db.uow() as uow:
        ids = await uow.rolesync.role_ids(h.settings.org.corp_id)
    assert ids["sales"][1] == h.dingtalk.role_id("Baton", "销售")


async def test_write_denied_is_alerted_once_across_reconciles(make_harness: MakeHarness) -> None:
    """The app may read roles but not change them: the refusal is told once, not again by
    every reconcile whose read succeeded; a role call that succeeds ends the refusal."""
    h, sync = await rig(make_harness)
    await h.ask("lisi", "role set @zhaoliu sales", "role is now sales", ("zhaoliu",))
    await follow(h)
    h.dingtalk.fail_next("add_roles_for_users", DENIED, times=3)
    out = sender(h, sync)
    await out.drain_once()
    assert len(await alerts(h, "qyapi_manage_addresslist")) == 1
    for _ in range(2):                  # nightly reconciles: read fine, the fix refused again
        await schedule_reconcile(h.db, h.settings, h.clock.now())
        await h.run_due()
        await out.drain_once()
        h.clock.advance(timedelta(days=1))
    assert out.parked == 3
    assert len(await alerts(h, "qyapi_manage_addresslist")) == 1
    # Granted: the next fix goes through, and a later refusal is told again.
    await schedule_reconcile(h.db, h.settings, h.clock.now())
    await h.run_due()
    await out.drain_once()
    assert h.dingtalk.holders_of("Baton", "销售") == ["zhaoliu"]
    await h.ask("lisi", "role clear @zhaoliu", "sales", ("zhaoliu",))
    await follow(h)
    h.dingtalk.fail_next("remove_roles_for_users", DENIED)
    await out.drain_once()
    assert len(await alerts(h, "qyapi_manage_addresslist")) == 2


async def test_template_events_send_nothing(make_harness: MakeHarness) -> None:
    """A template applied to a member or taken off (templates are not mirrored) moves no
    mapped role: no call, not even an add the member already has."""
    h, sync = await rig(make_harness)
    await h.ask("lisi", "role set @zhaoliu sales", "role is now sales", ("zhaoliu",))
    await follow(h)
    await sender(h, sync).drain_once()
    async with h.db.uow() as uow:
        for action in ("template.assign", "template.unassign"):
            await uow.audit.append(h.settings.org.corp_id, h.clock.now(), actor_id="lisi",
                                   action=action, result="applied", target_id="zhaoliu",
                                   before={"template": "crm"}, after=None)
        await uow.commit()
    assert await follow(h) == 0
    assert await rows(h) == []


async def test_a_call_sent_during_the_read_is_not_drift(make_harness: MakeHarness) -> None:
    """The queued call goes out after the reconcile read DingTalk and before it compares:
    it is not reported (nor fixed again) as a difference."""
    h, sync = await rig(make_harness)
    await h.ask("lisi", "role set @zhaoliu sales", "role is now sales", ("zhaoliu",))
    await follow(h)
    real, reads = h.dingtalk.role_members, 0

    async def read_then_send(role_id: int) -> list[str]:
        nonlocal reads
        found = await real(role_id)
        reads += 1
        if reads == 2:                 # DingTalk read: the outbox sends the queued call now
            await sender(h, sync).drain_once()
        return found

    h.dingtalk.role_members = read_then_send        # type: ignore[method-assign]
    await schedule_reconcile(h.db, h.settings, h.clock.now())
    await h.run_due()
    assert h.dingtalk.holders_of("Baton", "销售") == ["zhaoliu"]
    assert await alerts(h, "钉钉角色对账") == []
    assert await rows(h) == []
    assert [a for a in await audit_actions(h) if a[0].startswith("roles.")] == []


async def test_the_reconcile_reads_roles_a_few_at_a_time(make_harness: MakeHarness) -> None:
    """Each mapped role's members are read alongside the others' (a few at a time), so a
    reconcile of many roles ends well inside its lease; what it finds is the same."""
    h, _ = await rig(make_harness, map={"sales": "销售", "analyst": "分析师",
                                        "crm_admin": "CRM 管理员"})
    reads = Overlap(h.dingtalk.role_members)
    h.dingtalk.role_members = reads                     # type: ignore[method-assign]
    h.dingtalk.console_assign("Baton", "分析师", "wangwu")
    await schedule_reconcile(h.db, h.settings, h.clock.now())
    await h.run_due()
    assert 1 < reads.most <= ROLE_READS_AT_ONCE
    assert [c for c, _, _ in await rows(h)] == [RoleCall("remove", ("analyst",), ("wangwu",))]
