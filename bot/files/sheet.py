"""The file layer of bulk import and export: spreadsheet bytes in, plain text cells out.

Pure functions on bytes (no database, no network). Reading refuses, before any parsing
where it can, whatever is oversized, not a workbook, a zip bomb or macro-enabled; the
workbook itself is then read by openpyxl in read-only mode through defusedxml (so entity
expansion fails), formulas are kept as their text and never evaluated, and rows are
counted as they stream so a huge sheet is refused without being held in memory. Writing
passes every text cell through :func:`storage.audit_export.neutralise`, so no exported
cell is ever a formula; reading removes exactly the quote that adds, so an export
re-imports to the same strings.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any, Literal, TypeVar

import openpyxl
import openpyxl.reader.excel
import openpyxl.xml
import openpyxl.xml.functions
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from openpyxl.worksheet._reader import DATA_TAG, DIMENSION_TAG
from openpyxl.worksheet.dimensions import SheetDimension
from openpyxl.worksheet.formula import ArrayFormula

# _xlsx_text: the audit export's escaping of what .xlsx cannot hold, shared so both agree.
from storage.audit_export import _xlsx_text, neutralise

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = ("user_id", "name", "type", "value", "expires_at", "source")
REQUIRED: tuple[str, ...] = ("user_id", "type", "value")
FORMAT_VERSION = "baton-permissions-v1"
MAX_BYTES = 5 * 1024 * 1024          # the file as downloaded
MAX_UNCOMPRESSED = 50 * 1024 * 1024  # sum of zip members
MAX_RATIO = 100                      # per zip member, uncompressed/compressed
MAX_SHARED_STRINGS = 8 * 1024 * 1024  # xl/sharedStrings.xml, uncompressed
MAX_ROWS = 50_000                    # data rows
MAX_COLS = 20
MAX_ENTRIES = 1000                   # zip members
PERMISSIONS_SHEET = "permissions"
ABOUT_SHEET = "about"
ABOUT_ROWS = 100                     # the about sheet is read this far at most

Format = Literal["xlsx", "csv"]
RefusalCode = Literal["too_large", "not_workbook", "macro", "zip_bomb", "too_many_rows",
                      "too_many_columns", "bad_header", "unreadable", "bad_encoding", "empty",
                      "wrong_type"]
_SURROGATE = re.compile("[\ud800-\udfff]")
_MACRO_EXT = frozenset({".xlsm", ".xltm", ".xlam"})
_T = TypeVar("_T")


def _require_defusedxml() -> None:
    """openpyxl must parse through defusedxml, or a billion-laughs sheet would expand."""
    parse = getattr(openpyxl.xml.functions, "iterparse", None)
    if openpyxl.xml.DEFUSEDXML is not True or not getattr(parse, "__module__", "").startswith(
            "defusedxml"):
        raise RuntimeError("openpyxl is not using defusedxml (is defusedxml installed and "
                           "OPENPYXL_DEFUSEDXML unset?); refusing to read spreadsheets")


_require_defusedxml()


class _ReadOnlyWorksheet(ReadOnlyWorksheet):  # type: ignore[misc]
    """openpyxl's read-only sheet, sized without reading the whole sheet.

    openpyxl looks for ``<dimension>`` on *end* events, so a sheet without one (openpyxl's own
    write-only mode never writes it) is parsed in full when the workbook loads, before a
    single row can be counted. Same result here, found on *start* events and stopping where
    ``<sheetData>`` begins. (``read_table`` then drops the dimension anyway.)"""

    def _get_size(self) -> None:
        with self._get_source() as src:
            for _event, element in openpyxl.xml.functions.iterparse(src, events=("start",)):
                if element.tag == DIMENSION_TAG:
                    dims = SheetDimension.from_tree(element).boundaries
                    self._min_column, self._min_row, self._max_column, self._max_row = dims
                    return
                if element.tag == DATA_TAG:
                    return


if openpyxl.reader.excel.ReadOnlyWorksheet is ReadOnlyWorksheet:
    openpyxl.reader.excel.ReadOnlyWorksheet = _ReadOnlyWorksheet


@dataclass(frozen=True, slots=True)
class SheetRow:
    row: int                  # the spreadsheet row number (header is row 1; first data row is 2)
    cells: dict[str, str]     # by column name (COLUMNS), every value a str (blank -> ""), stripped


@dataclass(frozen=True, slots=True)
class Table:
    rows: list[SheetRow]
    fmt: Format
    version: str | None       # what the xlsx "about" sheet says ("format" row), else None


class FileRefused(Exception):
    """A file not read, and why: ``code`` names the reason, ``params`` fill its message."""

    def __init__(self, code: RefusalCode, params: dict[str, str] | None = None) -> None:
        self.code: str = code
        self.params: dict[str, str] = dict(params or {})
        detail = ", ".join(f"{k}={v}" for k, v in self.params.items())
        super().__init__(f"{code} ({detail})" if detail else code)


# ---- cells: text in, text out -------------------------------------------------------------------

def _formula_like(text: str) -> bool:
    return neutralise(text) != text


def _safe_text(value: str) -> str:
    """``value`` as written to a file: neutralised, and re-readable to the same string.

    A value that already starts with quotes before a formula character (``'=x``) gets one more
    quote, because reading removes one from anything of that shape."""
    if _SURROGATE.search(value):  # a lone surrogate cannot be encoded: shown as U+FFFD
        value = _SURROGATE.sub("\ufffd", value)
    safe = neutralise(value)
    if safe == value and value.startswith("'") and _formula_like(value.lstrip("'")):
        safe = "'" + value
    return safe


def _unquote(text: str) -> str:
    """Undo the quote :func:`_safe_text` added (a ``'`` before quotes and a formula character)."""
    if text.startswith("'") and _formula_like(text.lstrip("'")):
        return text[1:]
    return text


def _iso(v: datetime) -> str:
    return (v.astimezone(UTC) if v.tzinfo else v.replace(tzinfo=UTC)).isoformat()


def _plain(v: object) -> object:
    """A value as a file cell: None, a finite number, or text."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, Decimal):
        return v if v.is_finite() else str(v)
    if isinstance(v, datetime):
        return _iso(v)
    if isinstance(v, date | time):
        return v.isoformat()
    return str(v)


def _xlsx_cell(v: object) -> object:
    p = _plain(v)
    return str(_xlsx_text(_safe_text(p))) if isinstance(p, str) else p


def _csv_cell(v: object) -> str:
    p = _plain(v)
    if isinstance(p, str):
        p = _safe_text(p)
        # NUL would make the file unreadable to read_table: written visibly, as in .xlsx.
        return p.replace("\0", "\\x00") if "\0" in p else p
    return _cell_text(p)  # numbers as reading shows them (1.0 -> "1")


def _cell_text(v: object) -> str:
    """What a read cell holds, as stripped text; formulas stay their text, never evaluated."""
    if v is None:
        return ""
    if isinstance(v, str):
        return _unquote(v).strip()
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, datetime):
        return _iso(v)
    if isinstance(v, date | time):
        return v.isoformat()
    if isinstance(v, timedelta):
        return str(v)
    if isinstance(v, ArrayFormula):
        return _cell_text(v.text or "")
    return str(v).strip()


# ---- writing ------------------------------------------------------------------------------------

def write_xlsx(sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[object]]]]) -> bytes:
    """A workbook of ``(sheet name, header, rows)``, streamed (write-only); no cell a formula.

    Text the format cannot hold (control characters, CR) is written as visible ``\\xNN``, as
    the audit export does; datetimes as ISO 8601 text in UTC."""
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    wb = openpyxl.Workbook(write_only=True)
    for title, header, rows in sheets:
        ws = wb.create_sheet(title)
        ws.append([_xlsx_cell(h) for h in header])
        for row in rows:
            ws.append([_xlsx_cell(c) for c in row])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 with a BOM (so Excel shows Chinese correctly); cells neutralised."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv.writer(buf)
    w.writerow([_csv_cell(h) for h in header])
    for row in rows:
        w.writerow([_csv_cell(c) for c in row])
    return buf.getvalue().encode("utf-8")


# ---- reading ------------------------------------------------------------------------------------

def read_table(data: bytes, file_name: str, *, max_bytes: int = MAX_BYTES,
               max_rows: int = MAX_ROWS, max_cols: int = MAX_COLS) -> Table:
    """The permission rows of an uploaded .xlsx or .csv, or :class:`FileRefused` saying why not."""
    if len(data) > max_bytes:
        raise FileRefused("too_large", {"size": str(len(data)), "max": str(max_bytes)})
    ext = PurePosixPath(file_name.strip().replace("\\", "/")).suffix.lower()
    if ext in _MACRO_EXT:
        raise FileRefused("macro", {"reason": "extension", "ext": ext})
    if ext not in (".xlsx", ".csv"):
        raise FileRefused("wrong_type", {"ext": ext})
    if not data:
        raise FileRefused("empty")
    if ext == ".csv":
        return Table(_read_rows(_csv_rows(data), max_rows, max_cols), "csv", None)
    return _read_xlsx(data, max_rows, max_cols)


def _csv_rows(data: bytes) -> Iterator[Sequence[object]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise FileRefused("bad_encoding", {"tried": "utf-8, gb18030"})
    if "\0" in text:
        raise FileRefused("unreadable", {"reason": "NUL byte"})
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise FileRefused("unreadable", {"reason": f"csv: {str(e)[:60]}"}) from e
        yield row


def _check_zip(data: bytes) -> None:
    """Refuse a non-zip, a zip bomb or a macro workbook from the zip directory alone."""
    buf = io.BytesIO(data)
    if not zipfile.is_zipfile(buf):
        raise FileRefused("not_workbook", {"reason": "not a zip"})
    try:
        with zipfile.ZipFile(buf) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ENTRIES:
                raise FileRefused("zip_bomb", {"reason": "entries", "count": str(len(infos)),
                                               "max": str(MAX_ENTRIES)})
            total = sum(i.file_size for i in infos)
            if total > MAX_UNCOMPRESSED:
                raise FileRefused("zip_bomb", {"reason": "size", "size": str(total),
                                               "max": str(MAX_UNCOMPRESSED)})
            for i in infos:
                # The shared-string table is parsed whole, by defusedxml's slow parser: a
                # few MB of tiny strings cost seconds and hundreds of MB, so cap it alone.
                if i.filename.lower().endswith("sharedstrings.xml") and \
                        i.file_size > MAX_SHARED_STRINGS:
                    raise FileRefused("zip_bomb", {"reason": "shared strings",
                                                   "size": str(i.file_size),
                                                   "max": str(MAX_SHARED_STRINGS)})
                if i.file_size > MAX_RATIO * max(i.compress_size, 1) or (
                        i.compress_size == 0 and i.file_size > 0):
                    raise FileRefused("zip_bomb", {"reason": "ratio", "max": str(MAX_RATIO)})
            names = {i.filename for i in infos}
            if any("vbaproject" in n.lower() for n in names):
                raise FileRefused("macro", {"reason": "vbaProject"})
            if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
                raise FileRefused("not_workbook", {"reason": "no workbook part"})
            types = zf.read("[Content_Types].xml").lower()
            if b"macroenabled" in types or b"vbaproject" in types:
                raise FileRefused("macro", {"reason": "content type"})
    except FileRefused:
        raise
    except MemoryError:
        raise
    except Exception as e:  # a broken zip directory, in any of the ways zipfile reports it
        raise FileRefused("not_workbook", {"reason": type(e).__name__}) from e


def _unreadable(e: BaseException) -> FileRefused:
    """The refusal for what openpyxl raised, named by its root cause (openpyxl wraps parse
    errors as ValueError: "Unable to read workbook"), never with its text."""
    root, seen = e, 0
    while root.__cause__ is not None and seen < 10:
        root, seen = root.__cause__, seen + 1
    log.info("unreadable spreadsheet: %s", type(root).__name__)
    return FileRefused("unreadable", {"reason": type(root).__name__})


def _guarded(it: Iterator[_T]) -> Iterator[_T]:
    """``it``'s items; whatever openpyxl (or the XML parser) raises while reading: unreadable."""
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except MemoryError:
            raise
        except Exception as e:  # hostile XML can break openpyxl anywhere
            raise _unreadable(e) from e
        yield item


def _sheet_rows(ws: Any) -> Iterator[Sequence[object]]:
    # The declared dimension is a hint at best: dropped, so no row is cut off and no
    # declared-but-absent range is padded out.
    ws.reset_dimensions()
    rows: Iterator[Sequence[object]] = ws.iter_rows(min_row=1, min_col=1, values_only=True)
    return _guarded(rows)


def _read_xlsx(data: bytes, max_rows: int, max_cols: int) -> Table:
    _check_zip(data)
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False,
                                    keep_links=False)
    except MemoryError:
        raise
    except Exception as e:  # hostile XML can break openpyxl anywhere
        raise _unreadable(e) from e
    try:
        sheets = list(wb.worksheets)
        if not sheets:
            raise FileRefused("empty")
        by_name = {str(ws.title).strip().lower(): ws for ws in sheets}
        ws = by_name.get(PERMISSIONS_SHEET, sheets[0])
        rows = _read_rows(_sheet_rows(ws), max_rows, max_cols)
        about = by_name.get(ABOUT_SHEET)
        version = _version(about) if about is not None and about is not ws else None
    finally:
        wb.close()
    return Table(rows, "xlsx", version)


def _version(ws: Any) -> str | None:
    for n, row in enumerate(_sheet_rows(ws), start=1):
        if n > ABOUT_ROWS:
            break
        if len(row) >= 2 and _cell_text(row[0]).lower() == "format":
            return _cell_text(row[1])[:64] or None
    return None


def _blank(values: Iterable[object]) -> bool:
    return all(v is None or v == "" or (isinstance(v, str) and not _cell_text(v)) for v in values)


def _header(raw: Sequence[object], n: int, max_cols: int) -> dict[str, int]:
    """The column of each name in the header row ``raw`` (row ``n``), or FileRefused."""
    cells = [(i, _cell_text(v).lower()) for i, v in enumerate(raw) if v is not None]
    cells = [(i, name) for i, name in cells if name]
    width = cells[-1][0] + 1 if cells else 0
    if len(cells) > max_cols or width > max_cols:
        raise FileRefused("too_many_columns", {"row": str(n), "count": str(max(len(cells), width)),
                                               "max": str(max_cols)})
    where: dict[str, int] = {}
    unknown: list[str] = []
    duplicate: list[str] = []
    for i, name in cells:
        if name not in COLUMNS:
            unknown.append(name[:40])
        elif name in where:
            duplicate.append(name)
        else:
            where[name] = i
    missing = [c for c in REQUIRED if c not in where]
    if unknown or duplicate or missing:
        raise FileRefused("bad_header", {
            "row": str(n), "unknown": ", ".join(unknown[:5]), "missing": ", ".join(missing),
            "duplicate": ", ".join(duplicate[:5]), "expected": ", ".join(COLUMNS)})
    return where


def _read_rows(rows: Iterator[Sequence[object]], max_rows: int, max_cols: int) -> list[SheetRow]:
    """Header, then data rows (blank ones skipped), counted as they stream."""
    where: dict[str, int] | None = None
    cols: list[tuple[str, int]] = []
    width = 0
    gaps: list[int] = []
    out: list[SheetRow] = []
    filled = 0       # rows with any cell at all, blank or not: bounds the work on hostile sheets
    for n, raw in enumerate(rows, start=1):
        size = len(raw)
        if size == 0:
            continue
        filled += 1
        if filled > 2 * max_rows + 1:
            raise FileRefused("too_many_rows", {"max": str(max_rows), "row": str(n)})
        if raw.count(None) + raw.count("") == size:
            continue
        if where is None:
            if _blank(raw):
                continue
            where = _header(raw, n, max_cols)
            cols = [(c, where.get(c, -1)) for c in COLUMNS]
            width = max(where.values()) + 1
            gaps = [i for i in range(width) if i not in where.values()]
            continue
        cells = {c: _cell_text(raw[i]) if 0 <= i < size else "" for c, i in cols}
        stray = (size > width and not _blank(raw[width:])) or (
            bool(gaps) and not _blank(raw[i] for i in gaps if i < size))
        if stray:
            raise FileRefused("too_many_columns", {"row": str(n), "max": str(width)})
        if not any(cells.values()):
            continue
        if len(out) >= max_rows:
            raise FileRefused("too_many_rows", {"max": str(max_rows), "row": str(n)})
        out.append(SheetRow(n, cells))
    if where is None:
        raise FileRefused("empty")
    return out


__all__ = ["COLUMNS", "FORMAT_VERSION", "MAX_BYTES", "MAX_COLS", "MAX_RATIO", "MAX_ROWS",
           "MAX_UNCOMPRESSED", "FileRefused", "SheetRow", "Table", "read_table",
           "write_csv", "write_xlsx"]
