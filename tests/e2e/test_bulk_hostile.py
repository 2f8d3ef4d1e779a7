"""Hostile import files through the chat: each refused (or neutralised) with a clear reason,
nothing changed. SQLite only: the file checks happen before the store is touched."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import AsyncIterator

import openpyxl
import pytest
from sqlalchemy import func, select

from bot.app import BatonApp
from bot.cli.sandbox import sim_settings
from bot.config import Settings
from bot.files.sheet import COLUMNS, write_xlsx
from dingtalk_sim import Simulator
from storage.models import AuditEntry, Grant, Request
from tests.e2e.conftest import reply_to

pytestmark = pytest.mark.e2e


@pytest.fixture
def db_url(tmp_path: object) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/baton.db"


@pytest.fixture
def settings(sim: Simulator, db_url: str) -> Settings:
    # bulk.max_rows lowered: the 200,000-row sheet below is refused at row 50,002.
    return sim_settings(sim, db_url, locale={"default": "en"}, bulk={"max_rows": 50_000})


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[BatonApp]:
    async with BatonApp(settings) as a:
        await a.wait_connected()
        yield a


async def send(sim: Simulator, name: str, data: bytes, expect: str) -> str:
    conv = "cidOTOlisi"
    n = len(sim.messages(conv))
    sim.send_file("lisi", name, data)
    return await reply_to(sim, conv, expect, after=n, timeout=60)


async def unchanged(app: BatonApp) -> None:
    async with app.db.uow() as uow:
        assert (await uow.session.execute(select(func.count()).select_from(Grant))).scalar() == 0
        assert (await uow.session.execute(select(Request))).first() is None


def xlsx(rows: list[list[str]]) -> bytes:
    return write_xlsx([("permissions", COLUMNS, rows)])


async def test_zip_bomb(sim: Simulator, app: BatonApp) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (60 * 1024 * 1024))
    text = await send(sim, "bomb.xlsx", buf.getvalue(), "zip bomb")
    assert "refused" in text
    await unchanged(app)
    async with app.db.uow() as uow:
        refused = (await uow.session.execute(select(AuditEntry.action).where(
            AuditEntry.result == "refused"))).scalars().all()
        assert "import.refused" in refused


async def test_entity_expansion(sim: Simulator, app: BatonApp) -> None:
    good = xlsx([["zhaoliu", "", "grant", "crm.report.view", "", ""]])
    lol = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
           '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
           '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
           '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol3;</t></is></c></row>'
           '</sheetData></worksheet>')
    src = zipfile.ZipFile(io.BytesIO(good))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                data = lol.encode()
            z.writestr(item, data)
    await send(sim, "lol.xlsx", out.getvalue(), "cannot be read safely")
    await unchanged(app)


async def test_macro_workbooks(sim: Simulator, app: BatonApp) -> None:
    await send(sim, "sheet.xlsm", xlsx([]), "contains macros")
    src = zipfile.ZipFile(io.BytesIO(xlsx([])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for item in src.infolist():
            z.writestr(item, src.read(item.filename))
        z.writestr("xl/vbaProject.bin", b"\xd0\xcf\x11\xe0 macro")
    await send(sim, "sneaky.xlsx", out.getvalue(), "contains macros")
    await send(sim, "notes.txt", b"hello", "Only .xlsx and .csv")
    await send(sim, "random.xlsx", b"PK\x03\x04 not really a zip", "not a valid Excel workbook")
    await unchanged(app)


async def test_a_200000_row_sheet(sim: Simulator, app: BatonApp) -> None:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("permissions")
    ws.append(["user_id", "type", "value"])      # the required columns only: a small file
    for i in range(200_000):
        ws.append([i, "grant", "p"])
    buf = io.BytesIO()
    wb.save(buf)
    text = await send(sim, "huge.xlsx", buf.getvalue(), "more than")
    assert "more than 50000 rows (bulk.max_rows)" in text
    await unchanged(app)


async def test_a_file_over_the_size_limit_names_the_key(sim: Simulator, app: BatonApp) -> None:
    big = b"user_id,type,value\n" + b"x" * (21 * 1024 * 1024)
    text = await send(sim, "big.csv", big, "too large")
    assert "the limit is 20.0 MB, bulk.max_file_mb" in text
    await unchanged(app)


async def test_csv_formulas_are_text(sim: Simulator, app: BatonApp) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    w.writerow(["zhaoliu", "=cmd|' /C calc'!A0", "grant", "crm.report.view", "", ""])
    w.writerow(["=HYPERLINK(\"http://evil\")", "", "grant", "crm.report.view", "", ""])
    text = await send(sim, "formulas.csv", buf.getvalue().encode("utf-8-sig"), "nothing was applied")
    assert "row 3: error" in text and "malformed" in text       # a formula is not a userId
    assert "http://" not in text                                 # shown literally, never a link
    await unchanged(app)
