"""Long answers in pages (issues 17 and 19), on SQLite and PostgreSQL: who-has over 6,500
holders, whoami with 300 grants, pending with 500 open requests, template show with 5,000
holders and audit over 1,000 entries; ``next`` / ``下一页``, an explicit ``page N`` /
``第N页``, past the end, nothing to continue, a restart, another member or conversation.

The store is seeded with multi-row INSERTs of the storage models (seconds, not minutes);
every page is checked against DingTalk's limit (bot.core.paging.TEXT_BYTES)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update

from bot.cli.sandbox import DEMO_CATALOG
from bot.core.paging import TEXT_BYTES, encoded_size
from storage.models import Grant, Member, PagedAnswer, Request, Template, TemplateAssignment
from tests.handlers.conftest import T0, Harness, MakeHarness, replies

CORP = "dingsandboxcorp"


def items(text: str) -> list[str]:
    """The item lines of a page (each starts with "- ")."""
    return [ln for ln in text.split("\n") if ln.startswith("- ")]


def ids(text: str) -> list[str]:
    """The user ids the item lines of a page name, in order ("- name (userId): ...")."""
    return [ln.split(" (", 1)[1].split(")", 1)[0] for ln in items(text)]


def within_limit(text: str) -> str:
    assert encoded_size(text) <= TEXT_BYTES, encoded_size(text)
    return text


async def rows(h: Harness, model: Any, values: Sequence[dict[str, Any]]) -> None:
    """Seed rows directly (fast). They bypass the change feed, so the permission index is
    dropped and loads them afresh on the next read, as after a restart."""
    async with h.db.uow() as uow:
        for i in range(0, len(values), 2000):
            await uow.session.execute(insert(model), list(values[i:i + 2000]))
        await uow.commit()
    h.db.index = None


def uid(i: int) -> str:
    return f"m{i:05d}"


async def members(h: Harness, n: int, role: Any = lambda i: None) -> None:
    await rows(h, Member, [{"corp_id": h.settings.org.corp_id, "user_id": uid(i),
                            "name": f"成员{i:05d}", "level": "member", "role": role(i),
                            "active": True, "created_at": T0, "updated_at": T0}
                           for i in range(n)])


async def template(h: Harness, name: str, items_: list[str], users: list[str]) -> None:
    async with h.db.uow() as uow:
        await uow.perms.add_template(h.settings.org.corp_id, name, items_, by="lisi", now=T0)
        tid = (await uow.session.execute(select(Template.id).where(Template.name == name))
               ).scalar_one()
        await uow.commit()
    await rows(h, TemplateAssignment, [{"template_id": tid, "user_id": u, "assigned_by": "lisi",
                                        "created_at": T0} for u in users])


# ---- who-has: 6,500 holders ---------------------------------------------------------------

async def seed_holders(h: Harness) -> list[str]:
    """6,500 members holding crm.report.view through a grant (3,000; a third time-bound),
    the role analyst (2,000, and 500 of the grantees too) or a template (1,500); 200 more
    whose grant has run out, 300 with another role. With the owner: 6,501 holders."""
    def role(i: int) -> str | None:
        return "analyst" if 3200 <= i < 5200 or i < 500 else "sales" if i >= 6700 else None
    await members(h, 7000, role)
    later, gone = T0 + timedelta(days=7), T0 - timedelta(hours=1)
    await rows(h, Grant, [{"corp_id": CORP, "user_id": uid(i), "name": "crm.report.view",
                           "granted_by": "lisi", "created_at": T0 - timedelta(days=1),
                           "expires_at": gone if i >= 3000 else later if i % 3 == 0 else None}
                          for i in range(3200)])
    await template(h, "reports", ["crm.report.view"], [uid(i) for i in range(5200, 6700)])
    return sorted([uid(i) for i in (*range(3000), *range(3200, 6700))] + ["zhangsan"])


async def test_who_has_6500_holders_comes_in_pages_with_next_and_page_n(h: Harness) -> None:
    holders = await seed_holders(h)
    assert len(holders) == 6501
    text = within_limit(await h.ask("lisi", "who-has crm.report.view",
                                    "Members holding crm.report.view View reports (6501)"))
    got = items(text)
    assert len(got) == 50 and got[0].startswith("- 成员00000 (m00000): role analyst, a grant")
    assert ids(text) == holders[:50]
    assert text.endswith("Page 1 of 131. Send `next` for page 2, or "
                         "`who-has crm.report.view page 2`.")
    assert "m03000" not in text                      # an expired grant gives nothing

    text = within_limit(await h.ask("lisi", "next", "Page 2 of 131"))
    assert ids(text) == holders[50:100]
    assert items(text)[1] == "- 成员00051 (m00051): role analyst, a grant, expires 2026-11-30 10:00"
    assert items(text)[2] == "- 成员00052 (m00052): role analyst, a grant"

    text = within_limit(await h.ask("lisi", "谁有 crm.report.view 第 66 页", "第 66/131 页"))
    assert ids(text) == holders[3250:3300] and items(text)[0].endswith("(m03450): 角色 analyst")
    text = await h.ask("lisi", "下一页", "第 67/131 页。发送 `下一页` 查看第 68 页")
    assert ids(text) == holders[3300:3350]
    text = await h.ask("lisi", "谁有 crm.report.view 第105页", "第 105/131 页")
    assert ids(text) == holders[5200:5250] and items(text)[0].endswith("(m05400): 模板 reports")

    text = await h.ask("lisi", "who-has crm.report.view page 131",
                       "Page 131 of 131 (the last)")
    assert ids(text) == ["zhangsan"] and len(items(text)) == 1
    text = await h.ask("lisi", "next", "already at its last page (131 of 131)")
    assert "`who-has crm.report.view`" in text
    text = await h.ask("lisi", "who-has crm.report.view page 200", "only 131 page(s)")
    assert "`who-has crm.report.view page 131`" in text


async def test_who_has_a_role_is_paged_too(h: Harness) -> None:
    await members(h, 120, lambda i: "sales")
    text = await h.ask("lisi", "who-has sales", "Members holding role sales (120)")
    assert len(items(text)) == 50 and items(text)[0] == "- 成员00000 (m00000): role sales"
    text = await h.ask("lisi", "who-has sales page 3", "Page 3 of 3 (the last)")
    assert len(items(text)) == 20 and items(text)[-1] == "- 成员00119 (m00119): role sales"


async def test_a_short_answer_has_no_footer_and_leaves_next_alone(h: Harness) -> None:
    await seed_holders(h)
    await h.ask("lisi", "who-has crm.report.view", "Page 1 of 131")
    text = await h.ask("lisi", "who-has crm.export", "Members holding crm.export")
    assert "Page" not in text and "next" not in text
    await h.ask("lisi", "next", "Page 2 of 131")      # next continues the long one


# ---- whoami: 300 grants -------------------------------------------------------------------

MANY = {f"bulk.p{i:03d}": {"zh": f"批量权限{i:03d}", "en": f"Bulk permission {i:03d}"}
        for i in range(300)}


async def test_whoami_with_300_grants_pages_in_both_languages(make_harness: MakeHarness) -> None:
    h = await make_harness(catalog={"permissions": {**DEMO_CATALOG["permissions"], **MANY}})
    await h.ask("zhaoliu", "whoami", "My permissions")       # the sender is stored
    await rows(h, Grant, [{"corp_id": CORP, "user_id": "zhaoliu", "name": name,
                           "granted_by": "lisi", "created_at": T0,
                           "expires_at": T0 + timedelta(days=30) if i % 2 else None}
                          for i, name in enumerate(sorted(MANY))])
    text = within_limit(await h.ask("zhaoliu", "whoami", "Page 1 of 8"))
    assert "(300 permissions in all)" in text and len(items(text)) == 40
    assert items(text)[0] == "- bulk.p000 Bulk permission 000 (from a grant)"
    assert "Send `next` for page 2, or `whoami page 2`." in text
    text = within_limit(await h.ask("zhaoliu", "下一页", "第 2/8 页"))
    assert items(text)[0] == "- bulk.p040 批量权限040（来源：授权）"
    assert "发送 `下一页` 查看第 3 页，或发送 `我的权限 第3页`。" in text
    text = within_limit(await h.ask("zhaoliu", "我的权限 第8页", "第 8/8 页（最后一页）"))
    assert len(items(text)) == 20 and items(text)[-1].startswith("- bulk.p299 批量权限299")
    text = await h.ask("zhaoliu", "whoami page 9", "only 8 page(s), so there is no page 9")
    # One-to-one is another conversation: nothing to continue there yet.
    await h.ask("zhaoliu", "next", "There is nothing to continue here", conversation="")


# ---- pending: 500 open requests --------------------------------------------------------------

async def test_pending_with_500_open_requests(h: Harness) -> None:
    await rows(h, Request, [{"corp_id": CORP, "kind": "grant", "state": "pending",
                             "requester_id": "wangwu", "target_id": "zhaoliu",
                             "conversation_id": "cidSANDBOXADMINS", "reason": "",
                             "payload": {"name": "crm.export", "seconds": None, "need": 1,
                                         "lang": "en"},
                             "created_at": T0, "expires_at": T0 + timedelta(days=2)}
                            for _ in range(500)])
    text = within_limit(await h.ask("lisi", "pending", "Open requests (500)"))
    assert len(items(text)) == 20 and items(text)[0].startswith("- R-1 ")
    assert "(yours to decide)" in items(text)[0] or "decide" in items(text)[0]
    assert "Page 1 of 25. Send `next` for page 2, or `pending page 2`." in text
    text = within_limit(await h.ask("lisi", "next", "Page 2 of 25"))
    assert items(text)[0].startswith("- R-21 ") and items(text)[-1].startswith("- R-40 ")
    text = await h.ask("lisi", "待审批 第25页", "第 25/25 页（最后一页）")
    assert items(text)[-1].startswith("- R-500 ")
    # The requester sees the same 500, as requests they made.
    text = await h.ask("wangwu", "pending page 3", "Page 3 of 25")
    assert items(text)[0].startswith("- R-41 ")
    await h.ask("lisi", "pending page 26", "only 25 page(s), so there is no page 26")


# ---- template show: 5,000 holders ------------------------------------------------------------

async def test_template_show_with_5000_holders(h: Harness) -> None:
    await members(h, 5000)
    await template(h, "big", ["crm.customer.view", "crm.report.view"],
                   [uid(i) for i in range(5000)])
    text = within_limit(await h.ask("lisi", "template show big", "Holders: 5000"))
    assert "Contains:" in text and ids(text) == [uid(i) for i in range(50)]
    assert "Page 1 of 100. Send `next` for page 2, or `template show big page 2`." in text
    text = await h.ask("lisi", "next", "Page 2 of 100")
    assert ids(text) == [uid(i) for i in range(50, 100)]
    text = within_limit(await h.ask("lisi", "模板 查看 big 第100页", "第 100/100 页（最后一页）"))
    assert ids(text) == [uid(i) for i in range(4950, 5000)]
    assert "使用人数：5000" in text
    await h.ask("lisi", "下一页", "已经显示到最后一页（共 100 页）")
    await h.ask("lisi", "template show big page 101", "only 100 page(s)")


# ---- audit over a long range -----------------------------------------------------------------

async def test_audit_over_a_long_range(h: Harness) -> None:
    async with h.db.uow() as uow:
        for i in range(1000):
            await uow.audit.append(CORP, T0 + timedelta(seconds=i), actor_id="system",
                                   action="test.fill", result="applied", after={"i": i})
        await uow.commit()
    text = within_limit(await h.ask("lisi", "audit 1000", "Audit log (newest 1000)"))
    assert len(items(text)) == 20 and "i=999" in items(text)[0] and "i=980" in items(text)[-1]
    assert "Page 1 of 50. Send `next` for page 2, or `audit 1000 page 2`." in text
    text = await h.ask("lisi", "more", "Page 2 of 50")
    assert "i=979" in items(text)[0]
    text = within_limit(await h.ask("lisi", "审计 1000 第50页", "第 50/50 页（最后一页）"))
    assert "i=19" in items(text)[0] and "i=0" in items(text)[-1]
    text = await h.ask("lisi", "audit uid:lisi 5000", "No audit entries involve")
    text = await h.ask("lisi", "audit 30 page 2", "Page 2 of 2 (the last)")
    assert len(items(text)) == 10 and "i=979" in items(text)[0]


# ---- next: nothing to continue, restart, who and where ---------------------------------------

async def test_next_with_nothing_to_continue_says_so_in_both_languages(h: Harness) -> None:
    text = await h.ask("zhaoliu", "next", "There is nothing to continue here")
    assert "whoami, who-has, pending, audit, template show" in text
    await h.ask("zhaoliu", "下一页", "这里没有可以继续的回答")
    await h.ask("zhaoliu", "更多", "这里没有可以继续的回答", conversation="")


async def test_next_survives_a_restart_and_is_per_member_and_conversation(
        make_harness: MakeHarness) -> None:
    h = await make_harness()
    await members(h, 120, lambda i: "sales")
    await h.ask("lisi", "who-has sales", "Page 1 of 3")
    again = await make_harness()                 # a new process on the same store
    await again.ask("lisi", "next", "Page 2 of 3")
    await again.ask("wangwu", "next", "There is nothing to continue here")
    await again.ask("lisi", "next", "There is nothing to continue here", conversation="")
    await again.ask("lisi", "next", "Page 3 of 3 (the last)")
    async with again.db.uow() as uow:
        saved = (await uow.session.execute(select(PagedAnswer))).scalars().all()
        assert [(r.user_id, r.kind, r.args, r.page) for r in saved] == \
            [("lisi", "who_has", {"name": "sales"}, 3)]


async def test_next_reads_the_data_as_it_is_now(h: Harness) -> None:
    await members(h, 120, lambda i: "sales")
    await h.ask("lisi", "who-has sales", "Members holding role sales (120)")
    async with h.db.uow() as uow:      # 30 lose their role between two pages
        await uow.session.execute(update(Member).where(Member.user_id < uid(30))
                                  .values(role=None))
        await uow.commit()
    h.db.index = None       # a change behind the feed's back: read afresh, as after a restart
    text = await h.ask("lisi", "next", "Members holding role sales (90)")
    assert "Page 2 of 2 (the last)" in text and ids(text)[0] == uid(80)
    await h.ask("lisi", "next", "already at its last page (2 of 2)")


async def test_next_on_who_has_needs_admin_authority_now(h: Harness) -> None:
    await members(h, 120, lambda i: "sales")
    await h.ask("lisi", "who-has sales", "Page 1 of 3")
    await h.ask("zhangsan", "admin remove @lisi", "no longer an admin", ("lisi",))
    sent = await h.say("lisi", "next")
    text = replies(sent)[0]
    assert "Only the owner or an admin may use “who-has”" in text and "m000" not in text


async def test_bad_page_numbers_get_a_clear_reply(h: Harness) -> None:
    text = await h.ask("lisi", "who-has sales page 0", "is not a page I can show")
    assert "who-has <role-or-permission> [page <n>]" in text
    await h.ask("lisi", "我的权限 第零页", "无法显示“第零页”")
    await h.ask("lisi", "pending page x", "“page x” is not a page")
