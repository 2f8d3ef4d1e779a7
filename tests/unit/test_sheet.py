"""The bulk file layer (bot/files/sheet.py): exports re-import to the same strings, formulas
stay text both ways, and hostile files (zip bombs, entity expansion, macros, non-workbooks,
huge sheets, bad headers, odd encodings) are refused with a specific code."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from bot.files import sheet
from bot.files.sheet import (
    COLUMNS,
    FORMAT_VERSION,
    MAX_BYTES,
    FileRefused,
    SheetRow,
    Table,
    read_table,
    write_csv,
    write_xlsx,
)
from storage.audit_export import neutralise

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


# ---- helpers --------------------------------------------------------------------------------

def refused(data: bytes, name: str, **kw: int) -> FileRefused:
    with pytest.raises(FileRefused) as e:
        read_table(data, name, **kw)
    return e.value


def xlsx(rows: Sequence[Sequence[object]], header: Sequence[str] = COLUMNS) -> bytes:
    return write_xlsx([("permissions", header, rows)])


def openpyxl_file(rows: Sequence[Sequence[object]], title: str = "Sheet") -> bytes:
    """A workbook as a spreadsheet program would write it (ordinary, not write-only)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def csv_bytes(rows: Sequence[Sequence[str]], encoding: str = "utf-8-sig") -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode(encoding)


def replace_members(data: bytes, new: dict[str, bytes]) -> bytes:
    """``data`` (a zip) with members replaced or added."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for item in src.infolist():
            if item.filename not in new:
                z.writestr(item, src.read(item.filename))
        for name, content in new.items():
            z.writestr(name, content)
    return out.getvalue()


def sheet_xml(body: str, dimension: str | None = None) -> bytes:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    return f'<worksheet xmlns="{NS}">{dim}<sheetData>{body}</sheetData></worksheet>'.encode()


def inline_row(r: int, cells: dict[str, str]) -> str:
    cs = "".join(f'<c r="{col}{r}" t="inlineStr"><is><t>{text}</t></is></c>'
                 for col, text in cells.items())
    return f'<row r="{r}">{cs}</row>'


def cells(user: str = "", name: str = "", kind: str = "", value: str = "", expires: str = "",
          source: str = "") -> dict[str, str]:
    return dict(zip(COLUMNS, (user, name, kind, value, expires, source), strict=True))


def expected(rows: Sequence[Sequence[str]]) -> list[SheetRow]:
    """What reading back ``rows`` (written under COLUMNS) must give."""
    out = []
    for n, row in enumerate(rows, start=2):
        stripped = [c.strip() for c in row]
        if any(stripped):
            out.append(SheetRow(n, dict(zip(COLUMNS, stripped, strict=True))))
    return out


# ---- round trips (hypothesis) ---------------------------------------------------------------

_TRICKY = "=+-@'\",;\n\t 张三李四王五权限 ％＝"
_XLSX_UNSAFE = re.compile(ILLEGAL_CHARACTERS_RE.pattern + r"|\r")

csv_text = st.text(alphabet=st.one_of(st.sampled_from(_TRICKY),
                                      st.characters(exclude_categories=("Cs",),
                                                    exclude_characters="\0")),
                   max_size=24)
xlsx_text = csv_text.filter(lambda s: _XLSX_UNSAFE.search(s) is None)


@settings(max_examples=60)
@given(st.lists(st.lists(xlsx_text, min_size=6, max_size=6), max_size=6))
def test_xlsx_round_trip(rows: list[list[str]]) -> None:
    table = read_table(xlsx(rows), "export.xlsx")
    assert table.fmt == "xlsx"
    assert table.rows == expected(rows)


@settings(max_examples=100)
@given(st.lists(st.lists(csv_text, min_size=6, max_size=6), max_size=6))
def test_csv_round_trip(rows: list[list[str]]) -> None:
    table = read_table(write_csv(COLUMNS, rows), "export.csv")
    assert table == Table(expected(rows), "csv", None)


@given(csv_text)
def test_written_cells_never_start_a_formula(text: str) -> None:
    data = write_csv(COLUMNS, [[text]])
    got = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))[1][0]
    assert neutralise(got) == got        # nothing a spreadsheet would evaluate
    if _XLSX_UNSAFE.search(text) is None:
        book = zipfile.ZipFile(io.BytesIO(xlsx([[text]])))
        assert b"<f>" not in book.read("xl/worksheets/sheet1.xml")


def test_quote_before_formula_survives_a_round_trip() -> None:
    rows = [["'=x", "''+y", "'", "'a", "=1+1", "-2"]]
    assert read_table(xlsx(rows), "a.xlsx").rows == expected(rows)
    assert read_table(write_csv(COLUMNS, rows), "a.csv").rows == expected(rows)


def test_xlsx_control_characters_are_escaped_like_the_audit_export() -> None:
    rows = [["u\x01", "a\rb", "grant", "\x00x", "", ""]]
    got = read_table(xlsx(rows), "a.xlsx").rows[0].cells
    assert got["user_id"] == "u\\x01"
    assert got["name"] == "a\\x0db"
    assert got["value"] == "'\\x00x"        # neutralised first (NUL starts a formula), then escaped


def test_csv_nul_is_written_visibly_so_the_file_reads_back() -> None:
    data = write_csv(COLUMNS, [["u", "a\0b", "grant", "v", "", ""]])
    assert b"\0" not in data
    assert read_table(data, "a.csv").rows[0].cells["name"] == "a\\x00b"


def test_non_text_values_are_written_and_read_as_text() -> None:
    when = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    rows = [["u1", None, "grant", 7, when, 2.5], ["u2", True, "grant", 1.0,
                                                  datetime(2026, 12, 1, 8, 0), "x"]]
    for data, name in ((write_xlsx([("permissions", COLUMNS, rows)]), "a.xlsx"),
                       (write_csv(COLUMNS, rows), "a.csv")):
        got = [r.cells for r in read_table(data, name).rows]
        assert got == [cells("u1", "", "grant", "7", "2026-12-01T08:00:00+00:00", "2.5"),
                       cells("u2", "TRUE", "grant", "1", "2026-12-01T08:00:00+00:00", "x")]


def test_csv_is_utf8_with_bom() -> None:
    data = write_csv(COLUMNS, [["zhangsan", "张三", "grant", "crm.view", "", ""]])
    assert data.startswith(b"\xef\xbb\xbf")
    assert "张三".encode() in data


# ---- cells read from spreadsheet programs ----------------------------------------------------

def test_cell_values_from_a_spreadsheet_program() -> None:
    data = openpyxl_file([COLUMNS,
                          ["u1", 12345678901, "grant", 3.0, datetime(2026, 12, 1, 8, 0), 1.25],
                          ["u2", None, "grant", "  padded  ", None, False]])
    assert [r.cells for r in read_table(data, "a.xlsx").rows] == [
        cells("u1", "12345678901", "grant", "3", "2026-12-01T08:00:00+00:00", "1.25"),
        cells("u2", "", "grant", "padded", "", "FALSE")]


def test_formulas_are_read_as_text_and_exported_without_formulas() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "permissions"
    ws.append(list(COLUMNS))
    ws["A2"] = '=HYPERLINK("http://x")'
    ws["C2"] = "grant"
    ws["D2"] = "=1+1"
    ws["F2"] = "=cmd|' /C calc'!A0"
    buf = io.BytesIO()
    wb.save(buf)
    raw = zipfile.ZipFile(buf).read("xl/worksheets/sheet1.xml")
    assert b"<f>" in raw                                   # really formulas in the source file
    got = read_table(buf.getvalue(), "f.xlsx").rows
    assert got == [SheetRow(2, cells('=HYPERLINK("http://x")', "", "grant", "=1+1", "",
                                     "=cmd|' /C calc'!A0"))]
    out = write_xlsx([("permissions", COLUMNS, [list(got[0].cells.values())])])
    book = zipfile.ZipFile(io.BytesIO(out))
    xml = (book.read("xl/worksheets/sheet1.xml") + book.read("xl/sharedStrings.xml")).decode()
    assert "<f>" not in xml and "<f " not in xml
    assert "'=HYPERLINK(" in xml and "'=1+1" in xml
    assert read_table(out, "again.xlsx").rows == got        # and it re-imports to the same text


def test_csv_formulas_are_text_and_written_back_neutralised() -> None:
    evil = "=cmd|' /C calc'!A0"
    data = csv_bytes([COLUMNS, ["zhaoliu", evil, "grant", "crm.report.view", "", ""],
                      ['=HYPERLINK("http://evil")', "@SUM(1)", "grant", "+1", "-1", ""]])
    rows = read_table(data, "f.csv").rows
    assert rows[0].cells["name"] == evil
    assert rows[1].cells["user_id"] == '=HYPERLINK("http://evil")'
    out = write_csv(COLUMNS, [list(r.cells.values()) for r in rows]).decode("utf-8-sig")
    back = list(csv.reader(io.StringIO(out, newline="")))
    assert back[1][1] == "'" + evil
    assert back[2][:5] == ["'=HYPERLINK(\"http://evil\")", "'@SUM(1)", "grant", "'+1", "'-1"]
    assert read_table(out.encode("utf-8-sig"), "again.csv").rows == rows


# ---- refusals before parsing -----------------------------------------------------------------

def test_size_is_checked_first() -> None:
    e = refused(b"x" * (MAX_BYTES + 1), "big.exe")
    assert e.code == "too_large"
    assert e.params == {"size": str(MAX_BYTES + 1), "max": str(MAX_BYTES)}
    assert refused(b"x" * 11, "a.csv", max_bytes=10).code == "too_large"


@pytest.mark.parametrize("name", ["notes.txt", "old.xls", "binary.xlsb", "noext", "a.xlsx.exe",
                                  "sheet.ods"])
def test_wrong_type(name: str) -> None:
    assert refused(xlsx([]), name).code == "wrong_type"


@pytest.mark.parametrize("name", ["sheet.xlsm", "SHEET.XLSM", "t.xltm"])
def test_macro_by_name(name: str) -> None:
    assert refused(xlsx([]), name).code == "macro"


def test_extension_is_case_insensitive() -> None:
    data = xlsx([["u1", "", "grant", "v", "", ""]])
    assert len(read_table(data, "Export.XLSX").rows) == 1
    assert len(read_table(write_csv(COLUMNS, [["u1", "", "grant", "v", "", ""]]), "E.CSV").rows) == 1


def test_macro_project_inside_an_xlsx() -> None:
    sneaky = replace_members(xlsx([]), {"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0 macro"})
    e = refused(sneaky, "sneaky.xlsx")
    assert e.code == "macro"


def test_macro_enabled_content_type() -> None:
    data = xlsx([])
    types = zipfile.ZipFile(io.BytesIO(data)).read("[Content_Types].xml").replace(
        b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        b"application/vnd.ms-excel.sheet.macroEnabled.main+xml")
    assert b"macroEnabled" in types
    assert refused(replace_members(data, {"[Content_Types].xml": types}), "m.xlsx").code == "macro"


@pytest.mark.parametrize("data", [bytes(range(256)) * 8, b"PK\x03\x04 not really a zip",
                                  b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500])
def test_not_a_workbook(data: bytes) -> None:
    assert refused(data, "random.xlsx").code == "not_workbook"


def test_a_zip_without_a_workbook_is_not_a_workbook() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    assert refused(buf.getvalue(), "a.xlsx").code == "not_workbook"


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in members.items():
            z.writestr(name, content)
    return buf.getvalue()


def forbid_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, reading any zip member, or opening a workbook, fails the test."""
    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("a refused file was read")
    monkeypatch.setattr(zipfile.ZipFile, "open", boom)
    monkeypatch.setattr(zipfile.ZipFile, "read", boom)
    monkeypatch.setattr(openpyxl, "load_workbook", boom)


def test_zip_bomb_is_refused_without_reading_it(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = zip_of({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>",
                   "xl/worksheets/sheet1.xml": b"\0" * (60 * 1024 * 1024)})
    assert len(bomb) < MAX_BYTES
    forbid_reading(monkeypatch)
    e = refused(bomb, "bomb.xlsx")
    assert e.code == "zip_bomb"


def test_a_small_member_with_a_huge_ratio_is_a_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = zip_of({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>",
                   "xl/sharedStrings.xml": b" " * (4 * 1024 * 1024)})
    forbid_reading(monkeypatch)
    e = refused(bomb, "bomb.xlsx")
    assert (e.code, e.params["reason"]) == ("zip_bomb", "ratio")


def test_too_many_zip_entries_is_a_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    many = zip_of({f"xl/media/{i}.bin": b"" for i in range(1001)})
    forbid_reading(monkeypatch)
    e = refused(many, "many.xlsx")
    assert (e.code, e.params["reason"]) == ("zip_bomb", "entries")


# ---- refusals while parsing ------------------------------------------------------------------

LOL = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
       + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
                 for i in range(1, 10))
       + f']><worksheet xmlns="{NS}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is>'
       '<t>&lol9;</t></is></c></row></sheetData></worksheet>')


@pytest.mark.parametrize("member", ["xl/worksheets/sheet1.xml", "xl/workbook.xml",
                                    "xl/styles.xml"])
def test_entity_expansion_is_unreadable(member: str) -> None:
    good = xlsx([["u1", "", "grant", "v", "", ""]])
    e = refused(replace_members(good, {member: LOL.encode()}), "lol.xlsx")
    assert e.params == {"reason": "EntitiesForbidden"}     # defusedxml said no


@pytest.mark.parametrize("xml", [b"<worksheet><sheetData><row", b"\xff\xfe garbage",
                                 sheet_xml('<row r="x"><c r="A1"><v>1</v></c></row>'),
                                 sheet_xml('<row r="1"><c r="A1" t="s"><v>99</v></c></row>')])
def test_broken_sheet_xml_is_unreadable(xml: bytes) -> None:
    good = xlsx([["u1", "", "grant", "v", "", ""]])
    assert refused(replace_members(good, {"xl/worksheets/sheet1.xml": xml}), "b.xlsx").code == (
        "unreadable")


def test_defusedxml_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    sheet._require_defusedxml()
    monkeypatch.setattr(openpyxl.xml, "DEFUSEDXML", False)
    with pytest.raises(RuntimeError, match="defusedxml"):
        sheet._require_defusedxml()


def big_sheet(n: int, dimension: str | None = None) -> bytes:
    """A workbook (openpyxl write-only) whose sheet then gets ``n`` data rows; the rows are
    written as XML directly, since openpyxl takes seconds per 100,000 rows."""
    shell = xlsx([])
    head = inline_row(1, {"A": "user_id", "B": "type", "C": "value"})
    rows = "".join(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>u{r}</t></is></c>'
                   f'<c r="B{r}"><v>1</v></c><c r="C{r}"><v>2</v></c></row>'
                   for r in range(2, n + 2))
    return replace_members(shell, {"xl/worksheets/sheet1.xml": sheet_xml(head + rows, dimension)})


def test_a_200000_row_sheet_is_refused_as_it_streams() -> None:
    data = big_sheet(200_000)
    assert len(data) < MAX_BYTES
    e = refused(data, "huge.xlsx", max_rows=50_000)     # bulk.max_rows: 50000
    assert e.code == "too_many_rows"
    # stopped at the first row over the limit: header row 1, data rows 2..50001
    assert e.params == {"max": "50000", "row": "50002"}


def test_the_inflated_bytes_are_counted_as_they_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each part within the directory's caps, together over what max_rows allows: refused
    while streaming (the cap is derived from max_rows, not fixed)."""
    monkeypatch.setattr(sheet, "INFLATE_BASE", 0)
    rows = [[f"u{i}", "", "grant", f"p{i}" * 300, "", ""] for i in range(6)]
    data = write_xlsx([("permissions", COLUMNS, rows), ("about", ("key", "value"),
                                                        [(f"k{i}", "v" * 900) for i in range(6)])])
    sizes = {i.filename: i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist()}
    cap = sheet.inflate_cap(8)                          # 8 KiB
    assert max(sizes.values()) < cap < sum(sizes.values())
    e = refused(data, "a.xlsx", max_rows=8)
    assert (e.code, e.params["reason"], e.params["max"]) == ("zip_bomb", "inflated", str(cap))
    # the same file reads under a larger bulk.max_rows
    assert len(read_table(data, "a.xlsx", max_rows=40).rows) == 6


def test_the_part_size_cap_grows_with_max_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A part the directory says is larger than max_rows allows is refused unread; raising
    bulk.max_rows raises the cap (no fixed 50 MB)."""
    monkeypatch.setattr(sheet, "INFLATE_BASE", 0)
    rows = [[f"u{i}", "", "grant", f"p{i}", "", ""] for i in range(40)]
    data = xlsx(rows)
    forbid_reading(monkeypatch)
    e = refused(data, "a.xlsx", max_rows=2)
    assert (e.code, e.params["reason"]) == ("zip_bomb", "size")
    monkeypatch.undo()
    assert len(read_table(data, "a.xlsx", max_rows=40).rows) == 40


def test_row_limit_is_on_data_rows() -> None:
    rows = [["u1", "", "grant", "v", "", ""], ["", "", "", "", "", ""], ["u2", "", "grant", "v", "", ""]]
    assert len(read_table(xlsx(rows), "a.xlsx", max_rows=2).rows) == 2
    assert refused(xlsx([*rows, rows[0]]), "a.xlsx", max_rows=2).code == "too_many_rows"
    assert refused(write_csv(COLUMNS, [*rows, rows[0]]), "a.csv", max_rows=2).code == "too_many_rows"


def test_the_declared_dimension_is_only_a_hint() -> None:
    # declares one row, holds five: all five are read
    data = big_sheet(5, dimension="A1:C1")
    assert [r.row for r in read_table(data, "a.xlsx").rows] == [2, 3, 4, 5, 6]
    # declares the whole grid, holds two rows: read quickly, no padding
    data = big_sheet(2, dimension="A1:XFD1048576")
    assert [r.cells["user_id"] for r in read_table(data, "a.xlsx").rows] == ["u2", "u3"]


def test_many_blank_rows_with_cells_are_bounded() -> None:
    head = inline_row(1, {"A": "user_id", "B": "type", "C": "value"})
    blank = "".join(f'<row r="{r}"><c r="A{r}" s="0"/></row>' for r in range(2, 30))
    data = replace_members(xlsx([]), {"xl/worksheets/sheet1.xml": sheet_xml(head + blank)})
    assert refused(data, "a.xlsx", max_rows=10).code == "too_many_rows"
    assert read_table(data, "a.xlsx").rows == []


# ---- headers and columns ---------------------------------------------------------------------

def test_header_is_case_insensitive_order_free_and_optional_columns_may_be_absent() -> None:
    rows = [["  VALUE ", "User_ID", "Type"], ["crm.view", "u1", "grant"]]
    for data, name in ((openpyxl_file(rows), "a.xlsx"), (csv_bytes(rows), "a.csv")):
        assert read_table(data, name).rows == [SheetRow(2, cells("u1", "", "grant", "crm.view"))]


@pytest.mark.parametrize(("header", "key", "value"), [
    (["user_id", "type", "value", "notes", "Owner"], "unknown", "notes, owner"),
    (["user_id", "name", "value"], "missing", "type"),
    (["name", "expires_at"], "missing", "user_id, type, value"),
    (["user_id", "type", "value", "USER_ID"], "duplicate", "user_id"),
    (["Permissions export"], "unknown", "permissions export"),
])
def test_bad_header(header: list[str], key: str, value: str) -> None:
    for data, name in ((openpyxl_file([header, ["x"] * len(header)]), "a.xlsx"),
                       (csv_bytes([header]), "a.csv")):
        e = refused(data, name)
        assert e.code == "bad_header"
        assert e.params[key] == value
        assert e.params["row"] == "1"


def test_a_header_wider_than_the_column_cap() -> None:
    header = [*COLUMNS, *(f"extra{i}" for i in range(20))]
    for data, name in ((openpyxl_file([header]), "a.xlsx"), (csv_bytes([header]), "a.csv")):
        e = refused(data, name)
        assert e.code == "too_many_columns"
        assert e.params["max"] == "20"
    assert refused(csv_bytes([COLUMNS]), "a.csv", max_cols=5).code == "too_many_columns"


def test_data_in_a_column_without_a_header() -> None:
    rows = [[*COLUMNS, "", "  "], ["u1", "", "grant", "v", "", "", "", ""],
            ["u2", "", "grant", "v", "", "", "", "stray"]]
    for data, name in ((openpyxl_file(rows), "a.xlsx"), (csv_bytes(rows), "a.csv")):
        e = refused(data, name)
        assert e.code == "too_many_columns"
        assert e.params["row"] == "3"
    gap = [["user_id", "", "type", "value"], ["u1", "oops", "grant", "v"]]
    assert refused(csv_bytes(gap), "a.csv").code == "too_many_columns"


def test_blank_rows_are_skipped_and_row_numbers_kept() -> None:
    rows: list[list[str]] = [[], ["", " "], list(COLUMNS), ["u1", "", "grant", "a", "", ""], [],
                             ["", "", "", "", "", ""], ["u2", "", "grant", "b", "", ""],
                             ["\u3000", "", "", "", "", ""], ["u3", "", "grant", "c", "", ""]]
    for data, name in ((openpyxl_file(rows), "a.xlsx"), (csv_bytes(rows), "a.csv")):
        got = read_table(data, name).rows
        assert [(r.row, r.cells["user_id"]) for r in got] == [(4, "u1"), (7, "u2"), (9, "u3")]


def test_csv_quoted_newlines_stay_in_the_cell() -> None:
    data = csv_bytes([COLUMNS, ["u1", "line one\nline two", "grant", "v", "", ""],
                      ["u2", "", "grant", "w", "", ""]])
    got = read_table(data, "a.csv").rows
    assert got[0].cells["name"] == "line one\nline two"
    assert [r.row for r in got] == [2, 3]


def test_the_permissions_sheet_is_preferred_and_the_version_read() -> None:
    data = write_xlsx([("example", COLUMNS, [["ex", "", "grant", "x", "", ""]]),
                       ("permissions", COLUMNS, [["u1", "", "grant", "v", "", ""]]),
                       ("about", ("key", "value"), [("format", FORMAT_VERSION), ("kind", "t")])])
    table = read_table(data, "a.xlsx")
    assert [r.cells["user_id"] for r in table.rows] == ["u1"]
    assert table.version == FORMAT_VERSION
    plain = openpyxl_file([COLUMNS, ["u9", "", "grant", "v", "", ""]], title="Whatever")
    table = read_table(plain, "a.xlsx")
    assert [r.cells["user_id"] for r in table.rows] == ["u9"] and table.version is None


def test_an_empty_template_reads_as_no_rows() -> None:
    table = read_table(xlsx([]), "template.xlsx")
    assert table.rows == [] and table.fmt == "xlsx"


# ---- encodings and empty files ---------------------------------------------------------------

def test_gb18030_csv() -> None:
    data = csv_bytes([COLUMNS, ["zhangsan", "张三", "grant", "crm.客户.查看", "", "手工"]],
                     encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    got = read_table(data, "excel-cn.csv").rows
    assert got == [SheetRow(2, cells("zhangsan", "张三", "grant", "crm.客户.查看", "", "手工"))]


def test_undecodable_csv() -> None:
    assert refused(b"\xff\xfe\xff\xfeuser_id", "a.csv").code == "bad_encoding"


def test_nul_in_csv_is_unreadable() -> None:
    assert refused(b"user_id,type,value\nu1,gr\0ant,v\n", "a.csv").code == "unreadable"
    # UTF-16 (Excel's "Unicode text") is mostly NULs when its text is ASCII
    assert refused("user_id,type,value\n".encode("utf-16-le"), "a.csv").code == "unreadable"


@pytest.mark.parametrize(("data", "name"), [
    (b"", "a.csv"), (b"", "a.xlsx"), (b"\n\r\n,,,\n  ,\n", "a.csv"), (b"\xef\xbb\xbf", "a.csv"),
])
def test_empty(data: bytes, name: str) -> None:
    assert refused(data, name).code == "empty"


def test_a_workbook_with_an_empty_sheet_is_empty() -> None:
    assert refused(write_xlsx([("permissions", (), [])]), "a.xlsx").code == "empty"


def test_an_oversized_shared_string_table_is_refused_unread() -> None:
    import io as _io
    import zipfile as _zipfile

    from bot.files.sheet import MAX_SHARED_STRINGS, FileRefused, read_table, write_xlsx

    good = write_xlsx([("permissions", ("user_id", "type", "value"), [("a", "grant", "p")])])
    src = _zipfile.ZipFile(_io.BytesIO(good))
    out = _io.BytesIO()
    # About 9 MB of tiny distinct strings: within the ratio limit, over the table's own cap.
    strings = "".join(f"<si><t>{i:x}</t></si>" for i in range(500_000))
    with _zipfile.ZipFile(out, "w", _zipfile.ZIP_STORED) as z:
        for item in src.infolist():
            if item.filename != "xl/sharedStrings.xml":
                z.writestr(item.filename, src.read(item.filename))
        z.writestr("xl/sharedStrings.xml", f"<sst>{strings}</sst>")
    assert len(strings) > MAX_SHARED_STRINGS
    try:
        read_table(out.getvalue(), "strings.xlsx", max_bytes=64 * 1024 * 1024)
    except FileRefused as e:
        assert e.code == "zip_bomb" and e.params["reason"] == "shared strings"
    else:
        raise AssertionError("an oversized shared-string table was read")
