"""The audit trail end to end: `audit` / `审计` in chat (both languages, reading not audited),
and `baton audit export` in a subprocess. By user, capped, refused to members and hostile
values shown literally are tested at the handler level, tests/handlers/test_audit.py."""

from __future__ import annotations

import asyncio
import csv
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from bot.app import BatonApp
from dingtalk_sim import Simulator
from storage.db import open_database
from tests.e2e.helpers import baton, db_env, say
from tests.support import audit_actions, verify_chain

pytestmark = pytest.mark.e2e

LINE = re.compile(r"^- \d{4}-\d\d-\d\d \d\d:\d\d · ")
EVIL = "[x](dingtalk://evil) **bold**\n- 伪造的一行"


def lines(text: str) -> list[str]:
    """The entry lines of an audit reply (each one starts with a local time)."""
    return [ln for ln in text.split("\n") if ln.startswith("- ")]


async def append(app: BatonApp, n: int, **kw: Any) -> None:
    async with app.db.uow() as uow:
        for _ in range(n):
            await uow.audit.append(app.settings.org.corp_id, app.clock.now(), **kw)
        await uow.commit()


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_audit_lists_the_newest_entries_in_both_languages(sim: Simulator, bot: BatonApp,
                                                                 lang: str) -> None:
    await say(sim, "lisi", "role set @zhaoliu sales", "role is now sales", ("zhaoliu",))
    await say(sim, "lisi", "grant @qianqi crm.report.view", "Granted", ("qianqi",))
    await say(sim, "zhaoliu", "grant @qianqi crm.report.view", "Only the owner or an admin",
              ("qianqi",))
    before = await audit_actions(bot)
    if lang == "zh":
        text = await say(sim, "wangwu", "审计", "审计记录（最近 4 条）")
        got = lines(text)
        assert len(got) == 4 and all(LINE.match(ln) for ln in got)
        # Actions and reasons in words, not identifiers (those stay in the export).
        assert "赵六 (zhaoliu) · 授权 · 已拒绝 · 原因：只有主管理员或子管理员可以执行" in got[0]
        assert "李四 (lisi) · 授予权限 · 对象 钱七 (qianqi) · 已生效 · – → " \
               "name=crm.report.view, expires_at=–" in got[1]
        assert "李四 (lisi) · 设置业务角色 · 对象 赵六 (zhaoliu) · 已生效 · " \
               "role=– → role=sales" in got[2]
        assert "system:dingtalk · 初始化主管理员 · 对象 张三 (zhangsan) · 已生效" in got[3]
        assert "need_admin" not in text and ".apply" not in text and ".refused" not in text
    else:
        text = await say(sim, "wangwu", "audit", "Audit log (newest 4)")
        got = lines(text)
        assert len(got) == 4
        assert "赵六 (zhaoliu) · grant · refused · reason: only the owner or an admin may " \
               "do this" in got[0]
        assert "set the business role · on 赵六 (zhaoliu) · applied" in got[2]
    # The times are local (policy.timezone, Asia/Shanghai).
    async with bot.db.uow() as uow:
        newest = (await uow.audit.recent(bot.settings.org.corp_id, 1))[0].at
    assert got[0].startswith(f"- {newest.astimezone(ZoneInfo('Asia/Shanghai')):%Y-%m-%d %H:%M} · ")
    # Reading the trail is not a change: nothing was audited.
    assert await audit_actions(bot) == before
    await verify_chain(bot)


# ---- baton audit export ---------------------------------------------------------------------

async def _seed(url: str, corp: str) -> None:
    db = open_database(url)
    at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    try:
        async with db.uow() as uow:
            for i, (actor, action, target) in enumerate([
                ("lisi", "grant.apply", "zhaoliu"), ("=HYPERLINK(\"http://x\")", "grant.refused",
                                                     "qianqi"),
                ("lisi", "role_set.apply", "qianqi"), ("wangwu", "grant.revoke", "zhaoliu"),
            ]):
                await uow.audit.append(corp, at + timedelta(days=i), actor_id=actor, action=action,
                                       result="applied", target_id=target, request_id=i + 1,
                                       after={"note": "@SUM(1)", "name": "-2+3"})
            await uow.commit()
    finally:
        await db.dispose()


def test_cli_audit_export_writes_filtered_xlsx_and_csv(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    env = db_env(path)
    assert baton("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    asyncio.run(_seed(f"sqlite+aiosqlite:///{path}", "dingclitest"))

    r = baton("audit", "export", "all.xlsx", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "wrote 4 audit entries to all.xlsx (xlsx)"
    ws = load_workbook(tmp_path / "all.xlsx").active
    assert ws is not None
    rows = [[c.value for c in row] for row in ws.iter_rows()]
    assert rows[0] == ["seq", "at", "actor", "action", "target", "request", "message_id",
                       "result", "before", "after", "hash"]
    assert [r[0] for r in rows[1:]] == [1, 2, 3, 4]
    assert rows[1][1] == "2026-03-01T08:00:00+00:00" and rows[1][5] == "R-1"
    assert rows[2][2] == "'=HYPERLINK(\"http://x\")"
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)

    r = baton("audit", "export", "out.txt", "--format", "csv", "--user", "zhaoliu",
              "--action", "grant.", "--since", "2026-03-01", "--until", "2026-03-05T00:00+00:00",
              cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "wrote 2 audit entries to out.txt (csv)"
    with (tmp_path / "out.txt").open(encoding="utf-8-sig", newline="") as f:
        got = list(csv.DictReader(f))
    assert [(g["seq"], g["actor"], g["action"]) for g in got] == [
        ("1", "lisi", "grant.apply"), ("4", "wangwu", "grant.revoke")]
    assert got[0]["after"] == '{"name":"-2+3","note":"@SUM(1)"}'

    r = baton("audit", "export", "x.csv", "--since", "2026-03-03", cwd=tmp_path, env=env)
    assert r.stdout.strip() == "wrote 2 audit entries to x.csv (csv)"
    # Without an offset, a time is read in policy.timezone (Asia/Shanghai): 15:00 there is
    # 07:00 UTC, before the entry of 03-03 08:00 UTC.
    r = baton("audit", "export", "x.csv", "--since", "2026-03-03T15:00", cwd=tmp_path, env=env)
    assert r.stdout.strip() == "wrote 2 audit entries to x.csv (csv)"
    r = baton("audit", "export", "x.csv", "--action", "GRANT.", cwd=tmp_path, env=env)
    assert r.stdout.strip() == "wrote 3 audit entries to x.csv (csv)"   # case: not minded
    r = baton("audit", "export", "x.csv", "--since", "yesterday", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "'yesterday' is not an ISO date or time" in r.stderr
    r = baton("audit", "export", str(tmp_path / "no" / "such" / "dir.csv"), cwd=tmp_path, env=env)
    assert r.returncode == 1 and "cannot write" in r.stderr and "Traceback" not in r.stderr
    assert baton("audit", "verify", cwd=tmp_path, env=env).returncode == 0
