"""Bulk export and import end to end: the file goes through the media upload and the robot
file download of the simulator, the dry run, the approval card (in the importer's chat and
the admin group), the all-or-nothing apply, and undo; a file frame from a group. Bad rows
and replace mode are tested at the handler level, tests/handlers/test_bulk.py."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select

from bot.app import BatonApp
from bot.cli.sandbox import sim_settings
from bot.config import Settings
from dingtalk_sim import Simulator
from storage import bulk as store
from storage.models import AuditEntry, Request
from tests.e2e.conftest import CARD, GROUP, card_status, click, reply_to
from tests.support import edit

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(sim: Simulator, db_url: str) -> Settings:
    return sim_settings(sim, db_url, org={"admin_conversations": [GROUP]})


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[BatonApp]:
    async with BatonApp(settings) as a:
        await a.wait_connected()
        yield a


def dm(user: str) -> str:
    return f"cidOTO{user}"


async def say(sim: Simulator, user: str, text: str, expect: str, at: tuple[str, ...] = ()) -> str:
    n = len(sim.messages(GROUP))
    sim.say(user, f" {text}", conversation_id=GROUP, at=at)
    return await reply_to(sim, GROUP, expect, after=n)


async def send_file(sim: Simulator, user: str, name: str, data: bytes, expect: str) -> str:
    n = len(sim.messages(dm(user)))
    sim.send_file(user, name, data)
    return await reply_to(sim, dm(user), expect, after=n, timeout=30)


async def exported(sim: Simulator, user: str, fmt: str = "xlsx") -> tuple[str, bytes]:
    before = len(sim.uploads())
    await say(sim, user, f"export {fmt}", "one-to-one")
    up = await sim.until(lambda: sim.uploads()[before:] or None, what="the upload")
    files = await sim.until(lambda: [m for m in sim.messages(dm(user))
                                     if m.msgtype == "sampleFile"
                                     and m.params.get("mediaId") == up[0].media_id],
                            what="the file message to the requester")
    assert files[0].params["fileName"] == up[0].file_name
    # Never to a group.
    assert not [m for m in sim.messages(GROUP) if m.msgtype == "sampleFile"]
    return up[0].file_name, up[0].content


async def table(app: BatonApp) -> set[tuple[Any, ...]]:
    async with app.db.uow() as uow:
        entries, _ = await store.entries(uow, app.settings.org.corp_id, _now(app))
    return {(e.user_id, e.kind, e.value, e.expires_at) for e in entries}


def _now(app: BatonApp) -> Any:
    return app.clock.now()


async def seed(sim: Simulator) -> None:
    await say(sim, "lisi", "role set @zhaoliu sales", "role is now", ("zhaoliu",))
    await say(sim, "lisi", "grant @zhaoliu crm.report.view for 7d", "Granted", ("zhaoliu",))
    await say(sim, "lisi", "template create base crm.customer.view", "created")
    await say(sim, "lisi", "template apply base @qianqi", "applied", ("qianqi",))


async def test_export_then_reimport_changes_nothing(sim: Simulator, app: BatonApp) -> None:
    await seed(sim)
    name, data = await exported(sim, "lisi")
    assert name.endswith(".xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    assert wb.sheetnames[0] == "permissions" and "effective" in wb.sheetnames
    before = await table(app)
    # A file carries no command word: its answers speak the configured default (zh-CN).
    text = await send_file(sim, "lisi", name, data, "完全一致")
    assert "6 行" in text
    assert await table(app) == before
    # And as CSV.
    name, data = await exported(sim, "lisi", "csv")
    await send_file(sim, "lisi", name, data, "完全一致")


async def test_edited_file_applies_its_diff_after_approval_and_undo_restores(
        sim: Simulator, app: BatonApp) -> None:
    await seed(sim)
    _name, data = await exported(sim, "lisi")
    before = await table(app)
    changed = edit(data, add=[["qianqi", "钱七", "grant", "crm.report.view", "", ""]],
                   set_role=("zhaoliu", "analyst"))
    text = await send_file(sim, "lisi", "edited.xlsx", changed, "导入预览")
    assert "新增 1，更新 1" in text
    assert "新增 qianqi grant crm.report.view" in text and "更新 zhaoliu role analyst" in text
    request = await reply_to(sim, dm("lisi"), "已发起审批")
    assert "1 人将新增 crm.report.view" in request and "1 人将失去 crm.customer.edit" in request
    assert await table(app) == before                       # nothing before approval
    card = CARD.format(1)
    params = await card_status(sim, card, "pending")
    assert "edited.xlsx" in params["markdown"]
    await card_status(sim, card + "-group", "pending")       # the twin in the admin group
    notice = await click(sim, "lisi", card, "approve")        # the importer cannot approve
    assert notice
    await click(sim, "wangwu", card + "-group", "approve")
    await card_status(sim, card, "applied")
    after = await table(app)
    assert after - before == {("qianqi", "grant", "crm.report.view", None),
                              ("zhaoliu", "role", "analyst", None)}
    assert before - after == {("zhaoliu", "role", "sales", None)}
    async with app.db.uow() as uow:
        changes = (await uow.session.execute(select(AuditEntry).where(
            AuditEntry.action == "import.change"))).scalars().all()
        assert len(changes) == 2 and all(c.after and c.after["batch"] == "B-1" for c in changes)
        assert await uow.audit.verify(app.settings.org.corp_id) is None
    await say(sim, "wangwu", "导入 撤销 B-1", "已发起审批")
    await click(sim, "zhangsan", CARD.format(2), "approve")
    await card_status(sim, CARD.format(2), "applied")
    assert await table(app) == before
    # Undone once: asking again says so, and by which request (not "an undo request exists").
    await reply_to(sim, GROUP, "已生效：撤销导入批次 B-1")
    n = len(sim.messages(GROUP))
    sim.say("wangwu", " 导入 撤销 B-1", conversation_id=GROUP)
    again = await reply_to(sim, GROUP, "B-1", after=n)
    assert "已被撤销" in again and "R-2" in again and "已有撤销申请" not in again


async def test_a_file_frame_from_a_group_is_refused_and_changes_nothing(
        sim: Simulator, app: BatonApp) -> None:
    """DingTalk delivers files to a bot one-to-one only: a file frame from a group is forged
    (or the protocol changed). It is answered in that group, audited as refused, and the
    file is neither downloaded nor imported."""
    await seed(sim)
    _name, data = await exported(sim, "lisi")
    before = await table(app)
    changed = edit(data, add=[["qianqi", "钱七", "grant", "crm.report.view", "", ""]])
    downloads = len(sim.requests("/v1.0/robot/messageFiles/download"))
    n = len(sim.messages(GROUP))
    sim.send_file("lisi", "edited.xlsx", changed, conversation_id=GROUP)
    text = await reply_to(sim, GROUP, "单聊", after=n)
    assert "导入预览" not in text
    assert len(sim.requests("/v1.0/robot/messageFiles/download")) == downloads
    assert await table(app) == before
    async with app.db.uow() as uow:
        assert (await uow.session.execute(select(Request).where(
            Request.kind == "import"))).first() is None
        refused = [(a.actor_id, a.result, (a.after or {}).get("reason"))
                   for a in (await uow.session.execute(select(AuditEntry).where(
                       AuditEntry.action == "import.refused"))).scalars()]
    assert refused == [("lisi", "refused", "import_in_group")]
