"""Bulk import at the handler level (ported from the end-to-end suite, same assertions): a
bad row applies nothing and is named, replace mode (what the file omits goes; a store that
changed after the preview fails the request; a refused file leaves the mode armed; each
removal named before approval, the full list sent as a file). Files come and go through the
in-process DingTalk: a download code for what the user sends, the outbox's export delivery
(``send_export``) for what Baton sends. The wire path keeps its runs in
tests/e2e/test_bulk.py."""

from __future__ import annotations

import io
import itertools
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select

from handlers.bulk import send_export
from storage import bulk as store
from storage.models import Request
from tests.handlers.conftest import CARD, GROUP, Harness, MakeHarness, Sent
from tests.support import edit

_codes = itertools.count(1)


@pytest.fixture
async def app(make_harness: MakeHarness) -> Harness:
    return await make_harness(org={"admin_conversations": [GROUP]})


def dm(user: str) -> str:
    return f"user:{user}"


async def say(h: Harness, user: str, text: str, expect: str, at: tuple[str, ...] = ()) -> str:
    return await h.ask(user, text, expect, at)


async def deliver_exports(h: Harness, sent: list[Sent]) -> list[tuple[str, bytes]]:
    """What the outbox does with ``export`` rows: build, upload, send one-to-one. Returns
    the uploads (name, bytes), each checked to have gone to its requester as a file."""
    out = []
    for s in sent:
        if s.kind != "export":
            continue
        before = len(h.dingtalk.called("upload_media"))
        await send_export(h.db, h.settings, h.dingtalk, s.payload, h.clock.now())  # type: ignore[arg-type]
        [(content, name, _)] = h.dingtalk.called("upload_media")[before:]
        to, key, param = h.dingtalk.called("oto_send")[-1]
        assert to == [s.payload["user_id"]] and key == "sampleFile"
        assert param["fileName"] == name and s.to == dm(str(s.payload["user_id"]))
        out.append((name, content))
    return out


async def exported(h: Harness, user: str, fmt: str = "xlsx") -> tuple[str, bytes]:
    sent = await h.say(user, f"export {fmt}")
    h.reply_with(sent, "one-to-one")
    [(name, data)] = await deliver_exports(h, sent)
    return name, data


async def send_file(h: Harness, user: str, name: str, data: bytes, expect: str) -> str:
    sent = await h.send_file(user, name, data)
    return h.reply_with(sent, expect, dm(user))


async def table(h: Harness) -> set[tuple[Any, ...]]:
    async with h.db.uow() as uow:
        entries, _ = await store.entries(uow, h.settings.org.corp_id, h.clock.now())
    return {(e.user_id, e.kind, e.value, e.expires_at) for e in entries}


async def seed(h: Harness) -> None:
    await say(h, "lisi", "role set @zhaoliu sales", "role is now", ("zhaoliu",))
    await say(h, "lisi", "grant @zhaoliu crm.report.view for 7d", "Granted", ("zhaoliu",))
    await say(h, "lisi", "template create base crm.customer.view", "created")
    await say(h, "lisi", "template apply base @qianqi", "applied", ("qianqi",))


async def test_a_bad_row_applies_nothing_and_is_named(app: Harness) -> None:
    h = app
    await seed(h)
    _name, data = await exported(h, "lisi")
    before = await table(h)
    bad = edit(data, add=[["qianqi", "", "grant", "crm.report.view", "", ""],
                          ["qianqi", "", "grant", "crm.nope", "", ""]])
    text = await send_file(h, "lisi", "bad.xlsx", bad, "没有应用任何更改")
    assert "权限目录中没有「crm.nope」" in text
    wb = openpyxl.load_workbook(io.BytesIO(bad), read_only=True)
    n_rows = sum(1 for _ in wb["permissions"].iter_rows())
    assert f"第 {n_rows} 行：错误" in text
    assert await table(h) == before
    async with h.db.uow() as uow:
        assert (await uow.session.execute(select(Request))).first() is None


async def test_replace_mode_removes_what_the_file_omits(app: Harness) -> None:
    h = app
    await seed(h)
    _name, data = await exported(h, "lisi")
    await say(h, "lisi", "import replace", "replace")
    trimmed = edit(data, drop_user="qianqi")
    text = await send_file(h, "lisi", "trimmed.xlsx", trimmed, "导入预览")
    assert "移除 1" in text
    assert "替换模式" in text
    await h.press("zhangsan", CARD.format(1) + "-group", "approve")
    await h.card_status(CARD.format(1), "applied")
    assert not [e for e in await table(h) if e[0] == "qianqi"]


async def test_replace_import_fails_when_the_store_changed_after_its_preview(
        app: Harness) -> None:
    """The preview is what gets approved: a permission changed between the dry run and the
    approval fails the request, nothing applied, and the importer is told why."""
    h = app
    await seed(h)
    _name, data = await exported(h, "lisi")
    await say(h, "lisi", "import replace", "replace")
    await send_file(h, "lisi", "trimmed.xlsx", edit(data, drop_user="qianqi"), "导入预览")
    # Meanwhile, outside the file's view: a new grant for zhaoliu, which the file omits.
    await say(h, "wangwu", "grant @zhaoliu crm.customer.view", "Granted", ("zhaoliu",))
    before = await table(h)
    await h.press("zhangsan", CARD.format(1) + "-group", "approve")
    await h.card_status(CARD.format(1), "failed")
    assert await table(h) == before                       # the new grant survives
    text = await h.told("未做任何更改", dm("lisi"))
    assert "预览之后权限已被他人修改" in text


async def test_a_refused_file_leaves_replace_mode_armed_for_the_corrected_one(
        app: Harness) -> None:
    h = app
    await seed(h)
    _name, data = await exported(h, "lisi")
    await say(h, "lisi", "import replace", "replace")
    bad = edit(data, drop_user="qianqi", add=[["qianqi", "", "grant", "crm.nope", "", ""]])
    text = await send_file(h, "lisi", "bad.xlsx", bad, "没有应用任何更改")
    assert "替换模式仍然有效" in text
    text = await send_file(h, "lisi", "fixed.xlsx", edit(data, drop_user="qianqi"), "导入预览")
    assert "替换模式" in text and "移除 1" in text


async def test_a_replace_dry_run_names_each_removal_before_approval(app: Harness) -> None:
    """Counts are not enough to approve a replace: the reply and the card list who loses
    what (the first 20, then "and N more"), and the importer gets the full list as a file."""
    h = app
    corp, now = h.settings.org.corp_id, h.clock.now()
    async with h.db.uow() as uow:
        for i in range(1, 24):
            await uow.members.upsert(corp, f"u{i:02d}", now, name=f"成员{i:02d}")
            await uow.perms.grant(corp, f"u{i:02d}", "crm.export", by="lisi", now=now,
                                  expires_at=None)
        await uow.commit()
    await say(h, "lisi", "import replace", "replace")
    keep = "user_id,name,type,value,expires_at,source\nu01,成员01,grant,crm.export,,\n"
    sent = await h.send_file("lisi", "keep-one.csv", keep.encode())
    text = h.reply_with(sent, "导入预览", dm("lisi"))
    assert "移除 22" in text
    listed = [f"成员{i:02d} (u{i:02d}) grant crm.export" for i in range(2, 24)]
    assert all(line in text for line in listed[:20]), text
    assert not any(line in text for line in listed[20:])
    assert "另有 2 项" in text and "文件" in text
    params = await h.card_status(CARD.format(1), "pending")
    assert all(line in params["markdown"] for line in listed[:20])
    assert not any(line in params["markdown"] for line in listed[20:])
    assert "另有 2 项" in params["markdown"]
    # The full list, one-to-one to the importer, in the import format.
    [(_name, content)] = await deliver_exports(h, sent)
    wb = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    rows = [tuple(c for c in r) for r in wb.worksheets[0].iter_rows(values_only=True)]
    assert rows[0][:4] == ("user_id", "name", "type", "value")
    assert sorted(r[:4] for r in rows[1:]) == [
        (f"u{i:02d}", f"成员{i:02d}", "grant", "crm.export") for i in range(2, 24)]
    assert not [s for s in await h.sent_after(0) if s.kind == "export" and s.to.startswith("group:")]
    assert not [c for c in h.dingtalk.called("group_send") if c[1] == "sampleFile"]
