"""The bulk round trip at scale, through the operator's commands (``baton export``, ``baton
import``, ``baton import-undo``), on SQLite and PostgreSQL: a store seeded with the large demo
organisation (1,000 members, 10,000 rows here; ``bench/bulk_bench.py`` runs 100,000) is
exported as .xlsx and .csv; each file imports back with zero changes; one row in ten edited
applies exactly those changes; the batch is undone and the table is what it was."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.cli.bulk import export_file, import_file, undo_batch
from bot.cli.sandbox import ORG_CATALOG, edit_file, org_shape
from bot.config import Settings
from bot.files.sheet import read_table
from storage import bulk as store
from storage.demo import seed_org
from storage.models import AuditEntry

CORP = "dingscale"
MEMBERS = 1000          # ten rows each: 10,000 rows


def settings(db_url: str, **bulk: Any) -> Settings:
    return Settings.model_validate({"database": {"url": db_url}, "org": {"corp_id": CORP},
                                    "catalog": ORG_CATALOG, "locale": {"default": "en"},
                                    "bulk": bulk})


async def seed(db: Any) -> int:
    async with db.uow() as uow:
        n = await seed_org(uow, CORP, org_shape(MEMBERS), datetime.now(UTC))
        await uow.commit()
    return int(n)


async def table(db: Any) -> list[tuple[Any, ...]]:
    async with db.uow() as uow:
        got, _ = await store.entries(uow, CORP, datetime.now(UTC))
    return [(e.user_id, e.kind, e.value, e.expires_at) for e in got]


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
async def test_the_round_trip_at_scale(db: Any, db_url: str, tmp_path: Path, fmt: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    rows = await seed(db)
    assert rows == MEMBERS * 10 + 3        # the owner's and two admins' level rows
    before = await table(db)
    s = settings(db_url)
    path = str(tmp_path / f"table.{fmt}")
    assert await export_file(s, path, fmt) == 0
    out = capsys.readouterr()
    assert f"{rows} rows" in out.out and "baton:" not in out.err   # no limit warning

    # The export imports back: a dry run with zero changes.
    assert await import_file(s, path, "add", True) == 0
    out = capsys.readouterr().out
    assert f"rows {rows}: create 0, update 0, unchanged {rows}, errors 0, remove 0" in out, out

    # One row in ten edited: exactly those changes, applied as one batch.
    edited = str(tmp_path / f"edited.{fmt}")
    n = edit_file(path, fmt, edited)
    assert rows // 10 - 3 <= n <= rows // 10 + 1
    assert await import_file(s, edited, "add", False) == 0
    out = capsys.readouterr().out
    assert f"applied {n} changes as batch B-1" in out, out
    after = await table(db)
    assert len(set(after) - set(before)) == n      # each edit is one new or changed entry
    # the file now matches the store: importing it again changes nothing
    assert await import_file(s, edited, "add", True) == 0
    assert "create 0, update 0" in capsys.readouterr().out
    async with db.uow() as uow:
        changes = (await uow.session.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "import.change"))).scalar()
    assert changes == n

    # Undo: the table is what it was before the import.
    assert await undo_batch(s, "B-1") == 0
    assert f"undid batch B-1: {n} changes" in capsys.readouterr().out
    assert await table(db) == before
    assert await undo_batch(s, "B-1") == 1           # once only
    assert "already undone" in capsys.readouterr().err


async def test_an_export_over_the_limits_says_so_and_names_the_key(
        db: Any, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = await seed(db)
    small = settings(db_url, max_rows=5000, max_file_mb=0.2)
    path = str(tmp_path / "table.csv")
    assert await export_file(small, path, "csv") == 0     # written: a backup all the same
    err = capsys.readouterr().err
    assert f"has {rows} rows, more than an import accepts (5000, bulk.max_rows)" in err
    assert "bulk.max_file_mb" in err
    # ... and the import under the same configuration refuses it, naming the keys
    assert await import_file(small, path, "add", True) == 1
    err = capsys.readouterr().err
    assert "bulk.max_file_mb" in err and "0.2 MB" in err
    roomy = settings(db_url, max_file_mb=0.2 * 10, max_rows=5000)
    assert await import_file(roomy, path, "add", True) == 1
    assert "more than 5000 rows (bulk.max_rows)" in capsys.readouterr().err
    # With the keys raised, the same file is accepted.
    assert await import_file(settings(db_url), path, "add", True) == 0
    # an xlsx export within the limits says nothing
    assert await export_file(settings(db_url), str(tmp_path / "t.xlsx"), "xlsx") == 0
    assert "baton:" not in capsys.readouterr().err


def test_formulas_stay_text_at_scale(tmp_path: Path) -> None:
    """A formula in a large csv is read as its text, never evaluated."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["user_id", "name", "type", "value", "expires_at", "source"])
    for i in range(5000):
        w.writerow([f"m{i:06d}", "=1+1" if i % 2 else "@SUM(A1)", "grant", "crm.view", "", ""])
    got = read_table(buf.getvalue().encode(), "a.csv")
    assert {r.cells["name"] for r in got.rows} == {"=1+1", "@SUM(A1)"}
