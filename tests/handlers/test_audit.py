"""The audit trail in chat at the handler level (ported from the end-to-end suite, same
assertions): by user and count, in pages, refused to members (and that refusal audited),
refusals in the chat's language, hostile stored values shown literally. The wire path keeps
its runs in tests/e2e/test_audit.py."""

from __future__ import annotations

import re
from typing import Any

from bot.core.escape import literal
from tests.handlers.conftest import Harness
from tests.support import audit_actions, verify_chain

LINE = re.compile(r"^- \d{4}-\d\d-\d\d \d\d:\d\d · ")
EVIL = "[x](dingtalk://evil) **bold**\n- 伪造的一行"


def lines(text: str) -> list[str]:
    """The entry lines of an audit reply (each one starts with a local time)."""
    return [ln for ln in text.split("\n") if ln.startswith("- ")]


async def append(h: Harness, n: int, **kw: Any) -> None:
    async with h.db.uow() as uow:
        for _ in range(n):
            await uow.audit.append(h.settings.org.corp_id, h.clock.now(), **kw)
        await uow.commit()


async def test_audit_for_one_user_and_a_count(h: Harness) -> None:
    await h.ask("lisi", "role set @zhaoliu sales", "role is now sales", ("zhaoliu",))
    await h.ask("lisi", "grant @qianqi crm.report.view", "Granted", ("qianqi",))
    await h.ask("lisi", "revoke @qianqi crm.report.view", "Revoked", ("qianqi",))
    text = await h.ask("lisi", "audit @qianqi", "Audit log involving 钱七 (qianqi) (newest 2)",
                     ("qianqi",))
    got = lines(text)
    assert len(got) == 2 and all("钱七 (qianqi)" in ln for ln in got)
    assert "revoke a grant" in got[0] and "· grant ·" in got[1]
    text = await h.ask("lisi", "审计 @钱七 1", "与 钱七 (qianqi) 相关的审计记录（最近 1 条）",
                     ("qianqi",))
    assert len(lines(text)) == 1 and "撤销授权" in lines(text)[0]
    # As actor too: lisi did all three.
    text = await h.ask("lisi", "audit @lisi", "Audit log involving 李四 (lisi)", ("lisi",))
    assert len(lines(text)) == 3
    text = await h.ask("lisi", "audit @sunba", "No audit entries involve", ("sunba",))
    assert "sunba" in text


async def test_a_refusal_reads_in_chinese_in_a_chinese_chat(h: Harness) -> None:
    await h.ask("zhaoliu", "权限审核 开始", "只有主管理员可以使用")
    text = await h.ask("zhangsan", "审计 1", "审计记录（最近 1 条）")
    assert "赵六 (zhaoliu) · 权限审核 开始 · 已拒绝 · 原因：只有主管理员可以执行" in text
    assert "review start" not in text and "need_owner" not in text
    async with h.db.uow() as uow:      # the trail itself keeps the identifiers
        newest = (await uow.audit.recent(h.settings.org.corp_id, 1))[0]
        assert (newest.action, (newest.after or {}).get("reason")) == \
            ("review start.refused", "need_owner")


async def test_audit_over_50_comes_in_pages_of_20(h: Harness) -> None:
    await append(h, 60, actor_id="system", action="test.fill", result="applied")
    text = await h.ask("lisi", "audit 80", "Audit log (newest 61)")
    assert "Page 1 of 4. Send `next` for page 2, or `audit 80 page 2`." in text
    assert len(lines(text)) == 20
    text = await h.ask("lisi", "审计 60", "审计记录（最近 60 条）")
    assert "第 1/3 页" in text and len(lines(text)) == 20
    text = await h.ask("lisi", "audit 3", "Audit log (newest 3)")
    assert len(lines(text)) == 3 and "Page" not in text


async def test_audit_is_refused_to_a_member_and_the_refusal_is_audited(
        h: Harness) -> None:
    text = await h.ask("zhaoliu", "audit", "Only the owner or an admin may use “audit”")
    assert "you are: member" in text
    await h.ask("qianqi", "审计 @李四", "「审计」只有主管理员或子管理员可以使用", ("lisi",))
    refused = [a for a in await audit_actions(h) if a[0] == "audit.refused"]
    assert refused == [("audit.refused", "refused", None)] * 2
    await verify_chain(h)


async def test_hostile_stored_values_are_shown_literally(h: Harness) -> None:
    corp = h.settings.org.corp_id
    async with h.db.uow() as uow:
        await uow.members.upsert(corp, "mallory", h.clock.now(), name=EVIL)
        await uow.commit()
    await append(h, 1, actor_id="mallory", action="transfer.**start**", result="`refused`",
                 target_id="<b>x</b>", after={"reason": EVIL, "**k**": "# h\r\n1. x"})
    text = await h.ask("lisi", "audit 2", "Audit log (newest 2)")
    got = lines(text)
    assert len(got) == 2 and all(LINE.match(ln) for ln in got)       # no forged line
    assert text.count("\n- ") == 2
    for bad in ("[x]", "](", "dingtalk://", "**", "`refused`", "<b>", "\n1. ", "\n# ", "\r"):
        assert bad not in text, bad
    assert f"{literal(EVIL, 40)} (mallory)" in got[0]
    assert f"{literal('transfer.**start**')} · on {literal('<b>x</b>')}" in got[0]
