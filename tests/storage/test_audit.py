"""The audit trail: verify names the first bad entry (edit, deletion, reordering, after a
retention purge), retention keeps the chain verifiable, the export writer neutralises
formulas in both formats, and the chat lines show stored values literally."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, func, select, update

from bot.config import ConfigError, Settings, load_settings
from bot.core.clock import FakeClock
from bot.core.escape import literal
from bot.core.faults import Faults
from bot.scheduling.due import DueRunner
from handlers import build_router
from handlers.audit import (
    action_text,
    change_summary,
    entry_line,
    next_run,
    reason_text,
    schedule_retention,
)
from storage.audit_export import COLUMNS, neutralise, write_audit, write_rows
from storage.db import Database
from storage.models import AuditEntry, AuditHead, DueWork

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CORP = "c1"


async def fill(db: Database, n: int, *, start: datetime = NOW, step: timedelta = timedelta(days=1),
               corp: str = CORP) -> None:
    async with db.uow() as uow:
        for i in range(n):
            await uow.audit.append(corp, start + i * step, actor_id=f"a{i % 3}",
                                   action="grant.apply" if i % 2 else "role_set.apply",
                                   result="applied", target_id=f"u{i % 4}", request_id=i or None,
                                   before={"role": None}, after={"role": f"r{i}"})
        await uow.commit()


async def verify(db: Database, corp: str = CORP) -> int | None:
    async with db.uow() as uow:
        return await uow.audit.verify(corp)


async def execute(db: Database, stmt: Any) -> None:
    async with db.uow() as uow:
        await uow.session.execute(stmt)
        await uow.commit()


async def seqs(db: Database) -> list[int]:
    async with db.uow() as uow:
        return list((await uow.session.execute(
            select(AuditEntry.seq).where(AuditEntry.corp_id == CORP).order_by(AuditEntry.seq)
        )).scalars())


# ---- verify ---------------------------------------------------------------------------------

async def test_verify_names_an_edited_entry(db: Database) -> None:
    await fill(db, 6)
    assert await verify(db) is None
    await execute(db, update(AuditEntry).where(AuditEntry.seq == 4).values(result="refused"))
    assert await verify(db) == 4


@pytest.mark.parametrize(("gone", "named"), [(1, 1), (3, 3), (6, 6)])
async def test_verify_names_a_deleted_entry(db: Database, gone: int, named: int) -> None:
    await fill(db, 6)
    await execute(db, delete(AuditEntry).where(AuditEntry.seq == gone))
    assert await verify(db) == named


async def test_verify_names_entries_cut_off_the_end(db: Database) -> None:
    await fill(db, 6)
    await execute(db, delete(AuditEntry).where(AuditEntry.seq >= 5))
    assert await verify(db) == 5


async def test_verify_names_a_reordering(db: Database) -> None:
    await fill(db, 6)
    # Swap entries 2 and 3 (through a free seq: (corp_id, seq) is unique).
    await execute(db, update(AuditEntry).where(AuditEntry.seq == 2).values(seq=100))
    await execute(db, update(AuditEntry).where(AuditEntry.seq == 3).values(seq=2))
    await execute(db, update(AuditEntry).where(AuditEntry.seq == 100).values(seq=3))
    assert await verify(db) == 2


async def test_verify_names_a_rewritten_timestamp(db: Database) -> None:
    await fill(db, 4)
    await execute(db, update(AuditEntry).where(AuditEntry.seq == 2)
                  .values(at=NOW + timedelta(days=30)))
    assert await verify(db) == 2


# ---- retention ------------------------------------------------------------------------------

async def purge(db: Database, cutoff: datetime, corp: str = CORP) -> tuple[int, int | None]:
    async with db.uow() as uow:
        out = await uow.audit.purge_before(corp, cutoff)
        await uow.commit()
        return out


async def head(db: Database, corp: str = CORP) -> AuditHead:
    async with db.uow() as uow:
        h = await uow.session.get(AuditHead, corp)
        assert h is not None
        uow.session.expunge(h)
        return h


async def test_purge_keeps_the_chain_verifiable_and_appends_continue(db: Database) -> None:
    await fill(db, 10)
    await fill(db, 3, corp="other")
    assert await purge(db, NOW + timedelta(days=4)) == (4, 4)     # entries 1..4 are older
    assert await seqs(db) == list(range(5, 11))
    h = await head(db)
    assert (h.anchor_seq, h.seq) == (4, 10)
    assert await verify(db) is None
    assert await verify(db, "other") is None                       # another corp untouched
    await fill(db, 2, start=NOW + timedelta(days=20))
    assert await verify(db) is None
    assert await purge(db, NOW + timedelta(days=4)) == (0, None)    # nothing more is that old
    assert (await head(db)).anchor_seq == 4


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder"])
async def test_verify_after_a_purge_still_names_the_first_bad_entry(db: Database,
                                                                    tamper: str) -> None:
    await fill(db, 10)
    await purge(db, NOW + timedelta(days=3))
    assert await verify(db) is None
    if tamper == "edit":
        await execute(db, update(AuditEntry).where(AuditEntry.seq == 7).values(actor_id="mallory"))
        assert await verify(db) == 7
    elif tamper == "delete":
        await execute(db, delete(AuditEntry).where(AuditEntry.seq == 4))  # the first one kept
        assert await verify(db) == 4
    else:
        await execute(db, update(AuditEntry).where(AuditEntry.seq == 5).values(seq=100))
        await execute(db, update(AuditEntry).where(AuditEntry.seq == 6).values(seq=5))
        await execute(db, update(AuditEntry).where(AuditEntry.seq == 100).values(seq=6))
        assert await verify(db) == 5


async def test_verify_names_an_edited_anchor(db: Database) -> None:
    await fill(db, 5)
    await purge(db, NOW + timedelta(days=2))
    await execute(db, update(AuditHead).where(AuditHead.corp_id == CORP).values(anchor_hash="0" * 64))
    assert await verify(db) == 3


async def test_purge_stops_before_a_tampered_entry(db: Database) -> None:
    await fill(db, 8)
    await execute(db, update(AuditEntry).where(AuditEntry.seq == 3).values(target_id="mallory"))
    assert await purge(db, NOW + timedelta(days=6)) == (2, 2)      # 1 and 2 go, 3 stays
    assert await seqs(db) == list(range(3, 9))
    assert await verify(db) == 3                                   # the evidence is kept


async def test_purge_takes_only_a_prefix_of_the_chain(db: Database) -> None:
    # Entry 3 is dated early (a replica's clock was behind): it goes only with 1 and 2.
    await fill(db, 5)
    async with db.uow() as uow:
        e = await uow.audit.append(CORP, NOW - timedelta(days=1), actor_id="x", action="y",
                                   result="applied")
        assert e.seq == 6
        await uow.commit()
    assert await purge(db, NOW + timedelta(days=2)) == (2, 2)
    assert await seqs(db) == [3, 4, 5, 6]
    assert await verify(db) is None


async def test_purge_of_everything_leaves_a_verifiable_empty_chain(db: Database) -> None:
    await fill(db, 3)
    assert await purge(db, NOW + timedelta(days=30)) == (3, 3)
    assert await seqs(db) == []
    assert await verify(db) is None
    await fill(db, 1, start=NOW + timedelta(days=31))
    assert await seqs(db) == [4]
    assert await verify(db) is None


def test_next_run_is_3am_local_on_the_next_day() -> None:
    # 23:30 UTC on 1 March is 07:30 on 2 March in Shanghai: the next run is 3 March 03:00.
    at = next_run(datetime(2026, 3, 1, 23, 30, tzinfo=UTC), "Asia/Shanghai")
    assert at.astimezone(UTC) == datetime(2026, 3, 2, 19, 0, tzinfo=UTC)


async def test_retention_due_work_purges_audits_and_plans_tomorrow(db: Database,
                                                                   db_url: str) -> None:
    settings = Settings.model_validate({"database": {"url": db_url}, "org": {"corp_id": CORP},
                                        "audit": {"retention": "180d"}})
    clock = FakeClock(NOW + timedelta(days=182, hours=1))       # 2026-08-30 17:00 local
    await fill(db, 6)                               # days 0..5: 0, 1 and 2 are past 180 days
    await schedule_retention(db, settings, clock.now())
    await schedule_retention(db, settings, clock.now())            # a second start: no double
    runner = DueRunner(db, settings, clock, None, Faults(), build_router().dues)
    assert await runner.run_once() == 1
    assert runner.failures == 0
    assert await seqs(db) == [4, 5, 6, 7]
    async with db.uow() as uow:
        last = (await uow.audit.recent(CORP, 1))[0]
        assert (last.actor_id, last.action, last.after) == ("system", "audit.retention", {
            "removed": 3, "through_seq": 3,
            "cutoff": (clock.now() - timedelta(days=180)).isoformat()})
        rows = (await uow.session.execute(select(DueWork).order_by(DueWork.id))).scalars().all()
        assert [(r.status, r.dedupe_key) for r in rows] == [
            ("done", f"audit-retention:{CORP}:2026-08-30"),
            ("pending", f"audit-retention:{CORP}:2026-08-31")]
        assert rows[1].due_at == datetime(2026, 8, 30, 19, 0, tzinfo=UTC)  # 03:00 in Shanghai
    assert await verify(db) is None
    # A restart the same day plans nothing new; tomorrow's run takes one more day away.
    await schedule_retention(db, settings, clock.now())
    clock.advance(timedelta(days=1))
    assert await runner.run_once() == 1
    assert await seqs(db) == [5, 6, 7, 8]
    assert (await head(db)).anchor_seq == 4
    assert await verify(db) is None
    async with db.uow() as uow:
        n = (await uow.session.execute(select(func.count()).select_from(DueWork))).scalar_one()
    assert n == 3


def test_retention_below_180_days_is_refused_in_plain_words(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("audit:\n  retention: 30d\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(p, env={})
    assert info.value.problems == [
        "audit.retention: '30d' is too short: the audit trail is kept at least 180 days "
        "(write 180d or more, e.g. 26w or 365d)"]
    p.write_text("audit:\n  retention: 365d\n", encoding="utf-8")
    assert load_settings(p, env={}).audit.retention == timedelta(days=365)
    assert load_settings(None, env={}).audit.retention == timedelta(days=180)
    assert load_settings(None, env={"BATON_AUDIT__RETENTION": "26w"}).audit.retention == \
        timedelta(weeks=26)


# ---- export ---------------------------------------------------------------------------------

HOSTILE = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "\0x", "=HYPERLINK(\"http://e\")"]


@pytest.mark.parametrize("value", HOSTILE)
def test_neutralise_prefixes_every_formula_start(value: str) -> None:
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "crm.export", "'=already", " =1", "a=b", "", "张三"])
def test_neutralise_leaves_plain_text(value: str) -> None:
    assert neutralise(value) == value


def hostile_rows() -> list[list[Any]]:
    return [[i, *[v] * (len(COLUMNS) - 1)] for i, v in enumerate(HOSTILE, 1)]


def test_csv_has_no_formula_cells(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    assert write_rows(path, hostile_rows(), "csv") == len(HOSTILE)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")                        # a BOM, for Excel
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(COLUMNS)
    for row, value in zip(rows[1:], HOSTILE, strict=True):
        assert row[1:] == ["'" + value] * (len(COLUMNS) - 1)
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]       # no partial file left


def test_xlsx_has_no_formula_cells(tmp_path: Path) -> None:
    path = tmp_path / "a.xlsx"
    assert write_rows(path, hostile_rows(), "xlsx") == len(HOSTILE)
    ws = load_workbook(path).active
    assert ws is not None
    rows = list(ws.iter_rows())
    assert [c.value for c in rows[0]] == list(COLUMNS)
    for row, value in zip(rows[1:], HOSTILE, strict=True):
        assert row[0].value == row[0].row - 1 and row[0].data_type == "n"
        for cell in row[1:]:
            assert cell.data_type == "s", (cell.coordinate, cell.value)
            expected = "'" + value.replace("\0", "\\x00").replace("\r", "\\x0d")
            assert cell.value == expected


async def test_export_of_stored_entries_with_filters(db: Database, tmp_path: Path) -> None:
    await fill(db, 6)
    async with db.uow() as uow:
        await uow.audit.append(CORP, NOW + timedelta(days=10), actor_id="=evil()",
                               action="grant.refused", result="refused", target_id="u1",
                               message_id="msg-1",
                               after={"reason": "[x](dingtalk://evil) **bold**\n=2"})
        await uow.commit()
        every = await uow.audit.between(CORP)
        by_user = await uow.audit.between(CORP, user_id="u1")
        grants = await uow.audit.between(CORP, action_prefix="grant.")
        window = await uow.audit.between(CORP, since=NOW + timedelta(days=2),
                                         until=NOW + timedelta(days=4))
        odd = await uow.audit.between(CORP, action_prefix="grant%")      # LIKE is escaped
        uow.session.expunge_all()
    assert [e.seq for e in every] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.seq for e in by_user] == [2, 6, 7]
    assert [e.seq for e in grants] == [2, 4, 6, 7]
    assert [e.seq for e in window] == [3, 4]
    assert odd == []

    assert write_audit(tmp_path / "all.csv", every, "csv") == 7
    with (tmp_path / "all.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    first, last = rows[0], rows[-1]
    assert first["seq"] == "1" and first["at"] == "2026-03-01T08:00:00+00:00"
    assert first["request"] == "" and rows[1]["request"] == "R-1"
    assert first["before"] == '{"role":null}' and first["after"] == '{"role":"r0"}'
    assert first["hash"] == every[0].hash
    assert last["actor"] == "'=evil()" and last["message_id"] == "msg-1"
    assert last["after"] == '{"reason":"[x](dingtalk://evil) **bold**\\n=2"}'

    assert write_audit(tmp_path / "all.xlsx", every, "xlsx") == 7
    ws = load_workbook(tmp_path / "all.xlsx").active
    assert ws is not None
    values = [[c.value for c in r] for r in ws.iter_rows()]
    assert values[0] == list(COLUMNS) and len(values) == 8
    assert values[7][2] == "'=evil()"
    assert all(c.data_type != "f" for r in ws.iter_rows() for c in r)


# ---- chat lines -----------------------------------------------------------------------------

def entry(**kw: Any) -> AuditEntry:
    base: dict[str, Any] = dict(corp_id=CORP, seq=1, at=NOW, actor_id="lisi", action="grant.apply",
                                result="applied", target_id="zhaoliu", request_id=None,
                                before=None, after=None, prev_hash="", hash="")
    return AuditEntry(**{**base, **kw})


def test_summary_shows_what_changed() -> None:
    assert change_summary({"role": None}, {"role": "sales"}) == "role=– → role=sales"
    assert change_summary({"level": "admin", "x": 1}, {"level": "member", "x": 1}) == \
        "level=admin → level=member"
    assert change_summary(None, {"name": "crm.export", "expires_at": None}) == \
        "– → name=crm.export, expires_at=–"
    assert change_summary({"name": "a"}, None) == "name=a → –"
    assert change_summary(None, None) == ""
    assert len(change_summary(None, {"k": "v" * 500})) == 100


def test_entry_line_shows_hostile_values_literally() -> None:
    evil, name = "[x](dingtalk://evil) **bold**\n- fake line", "**李四**\n- 伪造"
    line = entry_line(entry(actor_id="lisi", target_id="u[1]", request_id=7,
                            after={"reason": evil}, result="refused"),
                      {"lisi": name}, "en", "Asia/Shanghai")
    assert "\n" not in line
    assert "[x]" not in line and "**" not in line and "dingtalk://" not in line
    assert line == (f"- 2026-03-01 16:00 · {literal(name, 40)} (lisi) · grant · "
                    f"on {literal('u[1]')} · R-7 · refused · "
                    f"reason: other ({literal(evil, 64)})")
    zh = entry_line(entry(), {}, "zh", "UTC")
    assert zh == "- 2026-03-01 08:00 · lisi · 授予权限 · 对象 zhaoliu · 已生效"


def test_entry_line_speaks_the_readers_language_not_identifiers() -> None:
    refused = entry(action="review start.refused", result="refused", target_id=None,
                    after={"reason": "need_owner", "command": "权限审核 开始", "level": "成员"})
    zh = entry_line(refused, {}, "zh", "UTC")
    assert zh == "- 2026-03-01 08:00 · lisi · 权限审核 开始 · 已拒绝 · 原因：只有主管理员可以执行"
    en = entry_line(refused, {}, "en", "UTC")
    assert en == "- 2026-03-01 08:00 · lisi · review start · refused · reason: only the owner " \
        "may do this"
    assert "need_owner" not in zh + en and "review start.refused" not in zh + en


@pytest.mark.parametrize(("action", "zh", "en"), [
    ("role_set.refused", "设置角色", "role set"),
    ("template_apply.refused", "模板 应用", "template apply"),
    ("grant.requested", "敏感权限授予：发起申请", "Sensitive grant: requested"),
    ("owner_transfer.applied", "主管理员转让：已生效", "Owner transfer: Applied"),
    ("owner_transfer.vote", "主管理员转让：卡片表态", "Owner transfer: decision on the card"),
    ("role_clear.apply", "清除业务角色", "clear the business role"),
    ("some.new_thing", "some.new_thing", "some.new_thing"),      # unknown: as stored
    ("x.**b**", "x.＊＊b＊＊", "x.＊＊b＊＊"),                       # ... and escaped
])
def test_actions_have_labels_in_both_languages_and_unknown_ones_fall_back(
        action: str, zh: str, en: str) -> None:
    assert (action_text(action, "zh"), action_text(action, "en")) == (zh, en)


def test_unknown_reasons_are_named_as_other() -> None:
    assert reason_text("brand_new", "zh") == "原因：其他（brand_new）"
    assert reason_text("user_inactive", "en") == \
        "reason: the member is inactive (not activated, or left)"
