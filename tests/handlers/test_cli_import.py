"""``baton import`` as the operator reads it: one language per run, and expiry times shown
in the zone they were applied in (on SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.cli.bulk import import_file
from bot.cli.sandbox import DEMO_CATALOG
from bot.config import Settings

CORP = "dingcliimport"
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CJK = re.compile("[\u4e00-\u9fff]")


def settings(db_url: str, lang: str, tz: str = "Asia/Shanghai") -> Settings:
    return Settings.model_validate({"database": {"url": db_url}, "org": {"corp_id": CORP},
                                    "catalog": DEMO_CATALOG, "locale": {"default": lang},
                                    "policy": {"timezone": tz}})


async def seed(db: Any) -> None:
    async with db.uow() as uow:
        await uow.members.upsert(CORP, "alice", NOW, name="Alice")
        await uow.commit()


def sheet(tmp_path: Path, *rows: list[str]) -> str:
    path = tmp_path / "t.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "name", "type", "value", "expires_at", "source"])
        w.writerows(rows)
    return str(path)


GOOD = [["alice", "Alice", "grant", "crm.export", "2030-01-01T08:00:00+08:00", ""],
        ["alice", "Alice", "grant", "crm.report.view", "2030-01-01 08:00", ""]]
BAD = [*GOOD, ["alice", "Alice", "grant", "crm.exprot", "", ""]]


@pytest.mark.parametrize("rows", [GOOD, BAD], ids=["clean", "errors"])
async def test_an_english_run_prints_only_english(db: Any, db_url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  rows: list[list[str]]) -> None:
    await seed(db)
    code = await import_file(settings(db_url, "en"), sheet(tmp_path, *rows), "add", True)
    out = capsys.readouterr()
    assert code == (0 if rows is GOOD else 1)
    text = out.out + out.err
    assert "row 2: create" in text
    assert not CJK.search(text), text


@pytest.mark.parametrize("rows", [GOOD, BAD], ids=["clean", "errors"])
async def test_a_chinese_run_prints_only_chinese(db: Any, db_url: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 rows: list[list[str]]) -> None:
    await seed(db)
    code = await import_file(settings(db_url, "zh-CN"), sheet(tmp_path, *rows), "add", True)
    out = capsys.readouterr()
    assert code == (0 if rows is GOOD else 1)
    text = out.out + out.err
    assert "第 2 行：新增" in text
    # Nothing English but the file's own values (ids, types, names) and the zone's name.
    words = set(re.findall(r"[A-Za-z]{3,}", text)) - {
        "alice", "grant", "crm", "export", "report", "view", "exprot", "Asia", "Shanghai", "baton"}
    assert not words, text


async def test_expiry_times_are_shown_in_the_zone_applied(db: Any, db_url: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          ) -> None:
    """08:00+08:00 is 00:00 UTC: it was shown as "08:00 UTC". A time without an offset is
    read as UTC: 08:00 UTC is 16:00 in Shanghai. Each is shown in policy.timezone, named."""
    await seed(db)
    assert await import_file(settings(db_url, "en"), sheet(tmp_path, *GOOD), "add", True) == 0
    out = capsys.readouterr().out
    assert "crm.export → 2030-01-01 08:00 (Asia/Shanghai)" in out
    assert "crm.report.view → 2030-01-01 16:00 (Asia/Shanghai)" in out
    assert "08:00 UTC" not in out
    assert await import_file(settings(db_url, "en", "UTC"), sheet(tmp_path, *GOOD),
                             "add", True) == 0
    out = capsys.readouterr().out
    assert "crm.export → 2030-01-01 00:00 (UTC)" in out
    assert "crm.report.view → 2030-01-01 08:00 (UTC)" in out


async def test_an_import_with_only_the_database_url_acts_on_the_stores_corp(
        db: Any, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With org.corp_id not configured, `baton import` worked on corp ``default``: every row
    was "unknown member". It takes the one corp the store holds, and refuses one it lacks."""
    await seed(db)
    only_url = Settings.model_validate({"database": {"url": db_url}, "catalog": DEMO_CATALOG,
                                        "locale": {"default": "en"}})
    code = await import_file(only_url, sheet(tmp_path, *GOOD), "add", True)
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "row 2: create" in out.out and CORP in out.err
    other = only_url.model_copy(update={"org": only_url.org.model_copy(
        update={"corp_id": "dingother"})})
    other.org.model_fields_set.add("corp_id")
    assert await import_file(other, sheet(tmp_path, *GOOD), "add", True) == 1
    err = capsys.readouterr().err
    assert "dingother" in err and CORP in err
