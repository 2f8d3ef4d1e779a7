"""Requests, their cards and their messages at the handler level: the real dispatcher on a
real store (SQLite and PostgreSQL), what Baton sends read back from the outbox."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from storage.models import DueWork, OutboxMessage
from tests.handlers.conftest import GROUP, Harness, card_updates, replies

CARD = "baton-dingsandboxcorp-R{}"
LISI_REVIEW = "baton-dingsandboxcorp-R1-rva"
WANGWU_REVIEW = "baton-dingsandboxcorp-R1-rvb"


async def state_of(h: Harness, request_id: int) -> str:
    async with h.db.uow() as uow:
        req = await uow.requests.find(request_id)
        assert req is not None
        return req.state


async def review_with_grants(h: Harness) -> None:
    """Items, by holder and name: 1 qianqi/analyst (wangwu), 2 qianqi/crm.customer.edit
    (lisi), 3 zhaoliu/crm.report.view (lisi); access review R-1 started by the owner."""
    await h.say("lisi", "授权 @赵六 crm.report.view", at=("zhaoliu",))
    await h.say("wangwu", "授权 @钱七 analyst", at=("qianqi",))
    await h.say("lisi", "授权 @钱七 crm.customer.edit", at=("qianqi",))
    assert any("R-1" in r for r in replies(await h.say("zhangsan", "权限审核 开始")))


# ---- #15: cancelling an access review ---------------------------------------------------------

async def test_cancel_an_access_review(harness: Harness) -> None:
    h = harness
    await review_with_grants(h)
    sent = await h.say("zhangsan", "cancel R-1")
    assert replies(sent) == ["R-1 is cancelled."]
    assert not [r for r in replies(sent) if "went wrong" in r]
    assert await state_of(h, 1) == "cancelled"
    for track in (LISI_REVIEW, WANGWU_REVIEW):
        [params] = card_updates(sent, track)
        assert params["status"] == "cancelled" and "审核已取消" in params["markdown"]
    text = replies(await h.say("zhangsan", "review status"))[0]
    assert "(cancelled)" in text
    # The deadline has nothing left to do: no summary, no revocation, the row cancelled.
    async with h.db.uow() as uow:
        rows = (await uow.session.execute(select(DueWork).where(
            DueWork.kind == "review_close"))).scalars().all()
        assert [r.status for r in rows] == ["cancelled"]
    h.clock.advance(timedelta(days=15))
    assert not replies(await h.run_due())
    notice, _ = await h.click("lisi", LISI_REVIEW, "keep", {"item": "2"})
    assert "已结束" in notice


# ---- #24: review items numbered from 1; the last decision closes the review --------------------

async def test_review_items_numbered_from_one_and_last_decision_closes(harness: Harness) -> None:
    h = harness
    await review_with_grants(h)
    notice, sent = await h.click("wangwu", WANGWU_REVIEW, "keep", {"item": "1"})
    [params] = card_updates(sent, WANGWU_REVIEW)
    assert params["markdown"].splitlines()[2].startswith("1. 钱七 (qianqi)：analyst")
    assert "已保留 1 项" in notice and params["status"] == "done"
    notice, _ = await h.click("lisi", LISI_REVIEW, "keep", {"item": "0"})
    assert "没有第 0 项" in notice
    notice, _ = await h.click("lisi", LISI_REVIEW, "keep", {"item": "1"})
    assert "只能由负责的管理员审核" in notice                  # item 1 is wangwu's
    notice, sent = await h.click("lisi", LISI_REVIEW, "remove", {"item": "3"})
    [params] = card_updates(sent, LISI_REVIEW)
    assert "2. 钱七 (qianqi)：crm.customer.edit" in params["markdown"]
    assert "3. 赵六 (zhaoliu)：crm.report.view" in params["markdown"] and "已移除" in params["markdown"]
    assert "结束" not in notice and params["status"] == "pending"
    text = replies(await h.say("zhangsan", "权限审核 状态"))[0]
    assert "（进行中）" in text
    # The last item: the review closes now, and says so.
    notice, sent = await h.click("lisi", LISI_REVIEW, "keep", {"item": "2"})
    assert "已保留 1 项" in notice and "最后一项" in notice and "R-1" in notice
    assert await state_of(h, 1) == "applied"
    for track in (LISI_REVIEW, WANGWU_REVIEW):
        [params] = card_updates(sent, track)
        assert params["status"] == "applied"
    [summary] = replies(sent, "user:zhangsan")
    assert "每一项授权都已审核" in summary and "保留 2 · 移除 1 · 待审核 0" in summary
    text = replies(await h.say("zhangsan", "权限审核 状态"))[0]
    assert "（已结束）" in text
    # The deadline job then does nothing: no second summary, no unreviewed notice.
    h.clock.advance(timedelta(days=15))
    assert not replies(await h.run_due())
    async with h.db.uow() as uow:
        rows = (await uow.session.execute(select(DueWork).where(
            DueWork.kind == "review_close"))).scalars().all()
        assert [r.status for r in rows] == ["cancelled"]
    assert "已结束" in (await h.click("lisi", LISI_REVIEW, "keep", {"item": "2"}))[0]


# ---- #23: pending names what every request is about -------------------------------------------

async def test_pending_shows_a_target_for_every_kind(harness: Harness) -> None:
    h = harness
    await h.say("lisi", "授权 @赵六 crm.report.view", at=("zhaoliu",))
    assert any("R-1" in r for r in replies(await h.say("zhangsan", "review start")))
    await h.say("lisi", "template create pack crm.report.view")
    assert any("R-2" in r for r in replies(
        await h.say("lisi", "template set pack crm.report.view,crm.customer.edit")))
    assert any("R-3" in r for r in replies(
        await h.say("lisi", "grant @Zhao crm.export", at=("zhaoliu",))))
    assert any("R-4" in r for r in replies(
        await h.say("zhangsan", "transfer-owner @Li", at=("lisi",))))
    await h.say("lisi", "template create spack crm.export")
    assert any("R-5" in r for r in replies(
        await h.say("lisi", "template apply spack @Qian", at=("qianqi",))))
    text = replies(await h.say("zhangsan", "pending"))[0]
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("- R-")}
    assert set(lines) == {"R-1", "R-2", "R-3", "R-4", "R-5"}, text
    assert "→ template “spack” (1 members)," in lines["R-5"]
    assert "→ 1 grants, reviewed by 1 admin(s)," in lines["R-1"]
    assert "→ template “pack”," in lines["R-2"]
    assert "→ 赵六 (zhaoliu)," in lines["R-3"]
    assert "→ 李四 (lisi)," in lines["R-4"]
    assert not [line for line in lines.values() if "→ ," in line]


async def test_import_requests_name_their_file_or_batch(harness: Harness) -> None:
    from bot.core.domain.requests import Request, State
    from bot.dispatch.context import Context
    from handlers.bulk import ImportRequest, ImportUndoRequest

    async with harness.db.uow() as uow:
        env = Context(uow, harness.settings, harness.clock.now(), harness.dispatcher.faults)
        now = harness.clock.now()
        base = Request(id=1, corp_id=env.corp_id, kind="import", state=State.PENDING,
                       requester_id="a", target_id=None, conversation_id="", reason="",
                       payload={}, created_at=now, expires_at=now)
        imp = replace(base, payload={"file": "perms [x](y).xlsx", "changes": [{}, {}]})
        assert await ImportRequest().subject(imp, env) == "导入文件 perms ［x］(y).xlsx（2 项更改）"
        undo = replace(base, kind="import_undo", payload={"batch": "B-7", "changes": []})
        assert await ImportUndoRequest().subject(undo, env) == "导入批次 B-7"


# ---- #17: one message for one cancellation ----------------------------------------------------

async def test_cancelling_a_transfer_says_it_once(harness: Harness) -> None:
    h = harness
    await h.say("zhangsan", "转让主管理员 @李四", at=("lisi",))
    sent = await h.say("zhangsan", "取消 R-1")
    assert replies(sent) == ["主管理员转让 R-1 已取消，未做任何更改。"]
    [params] = card_updates(sent, CARD.format(1))
    assert params["status"] == "cancelled" and "张三 (zhangsan)" in params["decided"]
    assert await state_of(h, 1) == "cancelled"


async def test_cancelled_elsewhere_the_canceller_and_the_requester_each_told_once(
        harness: Harness) -> None:
    """The owner cancels, one-to-one, a grant request an admin made in the group: the owner
    gets the confirmation, the group the notice; once each."""
    h = harness
    await h.say("lisi", "grant @Zhao crm.export", at=("zhaoliu",))
    sent = await h.say("zhangsan", "cancel R-1", conversation="")
    assert replies(sent, "user:zhangsan") == ["R-1 is cancelled."]
    [notice] = replies(sent, f"group:{GROUP}")
    assert "R-1" in notice and "nothing changed" in notice
    assert len(replies(sent)) == 2
    [params] = card_updates(sent, CARD.format(1))
    assert params["status"] == "cancelled"


# ---- #30: a decider on the wrong button is told which buttons are theirs ----------------------

async def test_wrong_button_names_the_clickers_own_buttons(harness: Harness) -> None:
    h = harness
    await h.say("zhangsan", "转让主管理员 @李四", at=("lisi",))
    notice, sent = await h.click("lisi", CARD.format(1), "approve")
    assert notice == "这个按钮不是给你的，你的按钮是「接受」或「谢绝」。你的点击未生效。"
    assert "张三" not in notice and not card_updates(sent, CARD.format(1))
    assert not [s for s in sent if s.kind == "reply"]                # no security alert
    # A stranger still learns who may decide.
    notice, _ = await h.click("zhaoliu", CARD.format(1), "accept")
    assert "只有 李四 (lisi)" in notice
    notice, sent = await h.click("lisi", CARD.format(1), "accept")
    assert "接受" in notice and card_updates(sent, CARD.format(1))[0]["status"] == "applied"


async def test_owner_and_approvers_on_the_wrong_button(harness: Harness) -> None:
    h = harness
    await h.say("lisi", "grant @Zhao crm.export", at=("zhaoliu",))
    notice, _ = await h.click("wangwu", CARD.format(1), "accept")
    assert "yours are “Approve” and “Reject”" in notice
    async with h.db.uow() as uow:
        e = (await uow.audit.recent(h.settings.org.corp_id, 1))[0]
        assert (e.action, e.actor_id, e.after) == (
            "grant.click_refused", "wangwu", {"reason": "not_your_button", "action": "accept"})
    await h.say("zhangsan", "grant @Wang owner.transfer", at=("wangwu",))    # R-2, sensitive
    await h.click("lisi", CARD.format(2), "approve")
    assert any("R-3" in r for r in replies(
        await h.say("wangwu", "transfer-owner @Li", at=("lisi",))))
    notice, _ = await h.click("zhangsan", CARD.format(3), "accept")
    assert "yours are “Approve” and “Reject”" in notice


# ---- #28: the after-transfer checklist goes to the new owner only -----------------------------

async def test_checklist_one_to_one_and_a_short_note_in_the_group(harness: Harness) -> None:
    h = harness
    await h.say("zhangsan", "转让主管理员 @李四", at=("lisi",))
    _, sent = await h.click("lisi", CARD.format(1), "accept")
    [note] = [s for s in sent if s.kind == "reply" and s.to == f"group:{GROUP}"]
    assert note.text == "主管理员转让 R-1 已完成：李四 (lisi) 现在是主管理员。交接清单已私聊发给 TA。"
    assert note.payload["at"] == ["lisi"]
    [duties] = replies(sent, "user:lisi")
    assert "AppSecret" in duties and "你现在是主管理员" in duties
    assert not [s for s in sent if s.kind == "reply" and "AppSecret" in s.text
                and s.to != "user:lisi"]


async def test_transfer_asked_one_to_one_checklist_still_only_to_the_new_owner(
        harness: Harness) -> None:
    h = harness
    await h.say("zhangsan", "transfer-owner uid:lisi", conversation="")
    _, sent = await h.click("lisi", CARD.format(1) + "-dma", "accept")
    [note] = replies(sent, "user:zhangsan")
    assert "R-1 is done" in note and "AppSecret" not in note
    [duties] = replies(sent, "user:lisi")
    assert "AppSecret" in duties


# ---- #15.1: an owner waiting on one request and escalated on another is reminded once ---------

async def test_owner_deciding_one_request_and_escalated_on_another_gets_one_reminder(
        harness: Harness) -> None:
    """Asked one-to-one with no admin group, reminders go one-to-one to each decider. The
    owner decides R-1 and is @-mentioned as escalation for R-2 (a grant to the owner, which
    the owner does not decide): one reminder to the owner, not two copies."""
    h = harness
    h.settings.policy.escalate_after = timedelta(hours=1)
    await h.say("lisi", "授权 uid:qianqi crm.export", conversation="")
    await h.say("lisi", "授权 uid:zhangsan crm.export", conversation="")
    h.clock.advance(timedelta(hours=4, seconds=1))
    sent = await h.run_due()
    owner = replies(sent, "user:zhangsan")
    assert len(owner) == 1, owner
    assert "R-1" in owner[0] and "R-2" in owner[0] and "升级" in owner[0]
    assert len(replies(sent, "user:wangwu")) == 1


async def test_a_reminder_still_unsent_is_superseded_by_the_next_one_naming_its_requests(
        harness: Harness) -> None:
    """#15.1: a reminder still pending in the outbox (e.g. sent just before a crash and never
    marked) is not sent next to the catch-up that names the same requests."""
    h = harness
    await h.say("zhangsan", "授权 @钱七 crm.export", at=("qianqi",))
    h.clock.advance(timedelta(hours=4, seconds=1))
    [first] = [s for s in await h.run_due() if s.kind == "reply"]
    assert first.payload["remind"] == [1]
    await h.say("zhangsan", "授权 @钱七 finance.invoice", at=("qianqi",))
    h.clock.advance(timedelta(hours=9))        # R-1's 2nd and R-2's 1st: one message
    [catch_up] = [s for s in await h.run_due() if s.kind == "reply"]
    assert catch_up.payload["remind"] == [1, 2]
    async with h.db.uow() as uow:
        rows = (await uow.session.execute(select(OutboxMessage.status, OutboxMessage.payload)
                                          .where(OutboxMessage.kind == "reply"))).all()
    status = [st for st, p in rows if p.get("remind")]
    assert status == ["superseded", "pending"]
