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
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePosixPath
from sys import intern
from typing import Any, Literal, TypeVar

import openpyxl
import openpyxl.reader.excel
import openpyxl.xml
import openpyxl.xml.functions
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
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
MAX_BYTES = 20 * 1024 * 1024         # the file as downloaded (default of bulk.max_file_mb)
MAX_ROWS = 200_000                    # data rows (default of bulk.max_rows)
ROW_BUDGET = 1024                     # inflated bytes a workbook may stream to, per allowed row
INFLATE_BASE = 8 * 1024 * 1024        # ... plus this, for the parts around the rows
MAX_RATIO = 100                       # per zip member, uncompressed/compressed
TOTAL_PARTS = 4                       # all parts together: at most this many times the cap
SHARED_STRING_BYTES = 40              # xl/sharedStrings.xml, uncompressed, per allowed row...
MIN_SHARED_STRINGS = 8 * 1024 * 1024  # ... but never less than this
MAX_SHARED_STRINGS = MIN_SHARED_STRINGS
MAX_COLS = 20
MAX_ENTRIES = 1000                    # zip members
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


def inflate_cap(max_rows: int) -> int:
    """The most a workbook may inflate to while it is read (every part that is read)."""
    return INFLATE_BASE + ROW_BUDGET * max_rows


def shared_strings_cap(max_rows: int) -> int:
    """The largest shared-string table read (it is parsed whole, so it gets its own cap)."""
    return max(MIN_SHARED_STRINGS, SHARED_STRING_BYTES * max_rows)


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

_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NS_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_SHEET_HEAD = (_XML_HEAD + f'<worksheet xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}"><sheetData>')
_SHEET_TAIL = "</sheetData></worksheet>"
_STYLES = (_XML_HEAD + f'<styleSheet xmlns="{_NS_MAIN}">'
           '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
           '<fills count="2"><fill><patternFill patternType="none"/></fill>'
           '<fill><patternFill patternType="gray125"/></fill></fills>'
           '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border>'
           '</borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" '
           'borderId="0"/></cellStyleXfs><cellXfs count="1"><xf numFmtId="0" fontId="0" '
           'fillId="0" borderId="0" xfId="0"/></cellXfs><cellStyles count="1"><cellStyle '
           'name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>')
# A text cell needs the slow path when it could start a formula (or starts with a quote that
# reading would take off), holds what XML must escape, what .xlsx cannot hold, a lone
# surrogate, or space at either end.
_XLSX_SPECIAL = re.compile(ILLEGAL_CHARACTERS_RE.pattern + "|[\r\ud800-\udfff&<>]")
_RISKY_START = frozenset("'=+-@\t\r\0")
_COL_LETTERS: list[str] = []


def _col(i: int) -> str:
    """The column letters of 0-based column ``i``."""
    while len(_COL_LETTERS) <= i:
        n, name = len(_COL_LETTERS) + 1, ""
        while n:
            n, r = divmod(n - 1, 26)
            name = chr(65 + r) + name
        _COL_LETTERS.append(name)
    return _COL_LETTERS[i]


def _xml_text(v: str) -> str:
    """``v`` as the escaped text of an inline-string cell (neutralised, re-readable)."""
    if v[0] in _RISKY_START or _XLSX_SPECIAL.search(v) is not None:
        v = str(_xlsx_text(_safe_text(v)))
        v = v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if v[0].isspace() or v[-1].isspace():
        return f'<t xml:space="preserve">{v}</t>'
    return f"<t>{v}</t>"


def _xml_row(r: int, row: Sequence[object], strings: dict[str, int]) -> str:
    """One row; its text goes into the shared-string table ``strings`` (text -> index)."""
    cells = []
    for i, c in enumerate(row):
        if c is None or c == "":
            continue
        p = c if isinstance(c, str) else _plain(c)
        if isinstance(p, str):
            if p:
                n = strings.get(p)
                if n is None:
                    n = strings[p] = len(strings)
                cells.append(f'<c r="{_col(i)}{r}" t="s"><v>{n}</v></c>')
        elif p is not None:
            cells.append(f'<c r="{_col(i)}{r}"><v>{p!r}</v></c>' if isinstance(p, float)
                         else f'<c r="{_col(i)}{r}"><v>{p}</v></c>')
    return f'<row r="{r}">{"".join(cells)}</row>'


class SheetWriter:
    """One sheet of a :class:`XlsxWriter`, open for rows; closed by the next sheet or the
    workbook's :meth:`XlsxWriter.close`."""

    def __init__(self, part: Any, strings: dict[str, int]) -> None:
        self._part = part
        self._strings = strings
        self.rows = 0            # data rows written (the header not counted)
        self.inflated = 0        # the sheet's XML so far, in bytes
        self.closed = False
        self._next = 1

    def _write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.inflated += len(data)
        self._part.write(data)

    def append_rows(self, rows: Iterable[Sequence[object]]) -> None:
        out: list[str] = []
        r = self._next
        for row in rows:
            out.append(_xml_row(r, row, self._strings))
            r += 1
            if len(out) >= 2000:
                self._write("".join(out))
                out.clear()
        if out:
            self._write("".join(out))
        self.rows += r - self._next
        self._next = r

    def close(self) -> None:
        if self.closed:
            return
        self._write(_SHEET_TAIL)
        self._part.close()
        self.closed = True


class _Spool:
    """A sheet's XML held compressed (fast, level 1) until the workbook is closed, for a sheet
    filled in step with another: only one zip part can be open for writing at a time."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(1)
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._parts.append(self._z.compress(data))

    def close(self) -> None:
        self._parts.append(self._z.flush())

    def replay(self, out: Any) -> None:
        d = zlib.decompressobj()
        for part in self._parts:
            out.write(d.decompress(part))
        out.write(d.flush())
        self._parts.clear()


class XlsxWriter:
    """A write-only workbook: each sheet streamed row by row into a deflated zip, only the
    compressed bytes kept (and one copy of each distinct text, for the shared-string table:
    reading a shared string costs openpyxl a fraction of an inline one). No text is a
    formula; what .xlsx cannot hold is written as visible ``\\xNN`` (as the audit export).

    openpyxl's own write-only mode writes the same XML, but through a generic element
    serialiser: about 15 s per 100,000 six-column rows against well under one second here."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._zip = zipfile.ZipFile(self._buf, "w", zipfile.ZIP_DEFLATED, compresslevel=3)
        self._titles: list[str] = []
        self._open: SheetWriter | None = None
        self._spooled: list[tuple[int, _Spool, SheetWriter]] = []
        self._strings: dict[str, int] = {}
        self.sheets: dict[str, SheetWriter] = {}
        self.shared_bytes = 0    # xl/sharedStrings.xml, once closed

    def sheet(self, title: str, header: Sequence[object], *, spooled: bool = False,
              ) -> SheetWriter:
        """Start the next sheet (closing the one before) with its header row; a ``spooled``
        one stays open beside the others, its rows held compressed until :meth:`close`."""
        if self._open is not None and not spooled:
            self._open.close()
            self._open = None
        title = re.sub(r"[\\/*?:\[\]]", "_", title)[:31] or f"Sheet{len(self._titles) + 1}"
        self._titles.append(title)
        spool = _Spool() if spooled else None
        ws = SheetWriter(spool if spool is not None else self._zip.open(
            f"xl/worksheets/sheet{len(self._titles)}.xml", "w", force_zip64=True),
            self._strings)
        if spool is not None:
            self._spooled.append((len(self._titles), spool, ws))
        ws._write(_SHEET_HEAD)
        if header:
            ws._write(_xml_row(1, header, self._strings))
        ws._next = 2
        if not spooled:
            self._open = ws
        self.sheets[title] = ws
        return ws

    def close(self) -> bytes:
        if not self._titles:
            raise ValueError("a workbook needs at least one sheet")
        if self._open is not None:
            self._open.close()
            self._open = None
        for i, spool, ws in self._spooled:
            ws.close()
            with self._zip.open(f"xl/worksheets/sheet{i}.xml", "w", force_zip64=True) as part:
                spool.replay(part)
        n = len(self._titles)
        with self._zip.open("xl/sharedStrings.xml", "w", force_zip64=True) as part:
            self.shared_bytes = _write_strings(part, self._strings)
        self._strings.clear()
        sheets = "".join(
            f'<sheet name="{escape_attr(t)}" sheetId="{i}" r:id="rId{i}"/>'
            for i, t in enumerate(self._titles, start=1))
        z = self._zip
        z.writestr("xl/workbook.xml", _XML_HEAD + f'<workbook xmlns="{_NS_MAIN}" '
                   f'xmlns:r="{_NS_REL}"><bookViews><workbookView/></bookViews>'
                   f"<sheets>{sheets}</sheets></workbook>")
        rels = "".join(f'<Relationship Id="rId{i}" Type="{_NS_REL}/worksheet" '
                       f'Target="worksheets/sheet{i}.xml"/>' for i in range(1, n + 1))
        z.writestr("xl/_rels/workbook.xml.rels", _XML_HEAD + f'<Relationships xmlns="{_NS_PKG}">'
                   f'{rels}<Relationship Id="rId{n + 1}" Type="{_NS_REL}/styles" '
                   f'Target="styles.xml"/><Relationship Id="rId{n + 2}" '
                   f'Type="{_NS_REL}/sharedStrings" Target="sharedStrings.xml"/>'
                   "</Relationships>")
        z.writestr("xl/styles.xml", _STYLES)
        z.writestr("_rels/.rels", _XML_HEAD + f'<Relationships xmlns="{_NS_PKG}">'
                   f'<Relationship Id="rId1" Type="{_NS_REL}/officeDocument" '
                   'Target="xl/workbook.xml"/></Relationships>')
        ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
        overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
                            f'ContentType="{ct}.worksheet+xml"/>' for i in range(1, n + 1))
        z.writestr("[Content_Types].xml", _XML_HEAD +
                   '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Default Extension="rels" '
                   'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                   '<Default Extension="xml" ContentType="application/xml"/>'
                   f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
                   f'<Override PartName="/xl/styles.xml" ContentType="{ct}.styles+xml"/>'
                   '<Override PartName="/xl/sharedStrings.xml" '
                   f'ContentType="{ct}.sharedStrings+xml"/>'
                   f"{overrides}</Types>")
        z.close()
        return self._buf.getvalue()


def _write_strings(part: Any, strings: dict[str, int]) -> int:
    """The shared-string table (texts in index order, neutralised and escaped); its size."""
    size = 0

    def put(text: str) -> None:
        nonlocal size
        data = text.encode("utf-8")
        size += len(data)
        part.write(data)

    put(_XML_HEAD + f'<sst xmlns="{_NS_MAIN}" count="{len(strings)}" '
        f'uniqueCount="{len(strings)}">')
    out: list[str] = []
    for text in strings:           # a dict keeps insertion order: the indexes
        out.append(f"<si>{_xml_text(text)}</si>")
        if len(out) >= 5000:
            put("".join(out))
            out.clear()
    put("".join(out) + "</sst>")
    return size


def escape_attr(v: str) -> str:
    return (v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def write_xlsx(sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[object]]]]) -> bytes:
    """A workbook of ``(sheet name, header, rows)``, streamed (:class:`XlsxWriter`); no cell
    a formula. Text the format cannot hold (control characters, CR) is written as visible
    ``\\xNN``, as the audit export does; datetimes as ISO 8601 text in UTC."""
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    wb = XlsxWriter()
    for title, header, rows in sheets:
        wb.sheet(title, header).append_rows(rows)
    return wb.close()


class CsvWriter:
    """UTF-8 with a BOM (so Excel shows Chinese correctly), cells neutralised; rows appended
    in chunks and encoded as they come, only the encoded bytes kept."""

    def __init__(self, header: Sequence[object]) -> None:
        self._out = io.BytesIO()
        self._text = io.StringIO()
        self._csv = csv.writer(self._text)
        self._text.write("\ufeff")
        self._csv.writerow([_csv_cell(h) for h in header])
        self.rows = 0

    def append_rows(self, rows: Iterable[Sequence[object]]) -> None:
        for row in rows:
            self._csv.writerow([c if type(c) is str and c[:1] not in _RISKY_START
                                and "\0" not in c and not _SURROGATE.search(c)
                                else _csv_cell(c) for c in row])
            self.rows += 1
        self._flush()

    def _flush(self) -> None:
        self._out.write(self._text.getvalue().encode("utf-8"))
        self._text.seek(0)
        self._text.truncate()

    def close(self) -> bytes:
        self._flush()
        return self._out.getvalue()


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 with a BOM (so Excel shows Chinese correctly); cells neutralised."""
    w = CsvWriter(header)
    w.append_rows(rows)
    return w.close()


def check_workbook(data: bytes, max_rows: int = MAX_ROWS) -> None:
    """What the import checks of a workbook before reading it (the zip directory):
    :class:`FileRefused` if it would refuse it."""
    _check_zip(data, max_rows)


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


def _check_zip(data: bytes, max_rows: int = MAX_ROWS) -> None:
    """Refuse a non-zip, a zip bomb or a macro workbook from the zip directory alone.

    No fixed total: each part may inflate at most :data:`MAX_RATIO` times its compressed
    size and to no more than :func:`inflate_cap` (all that is read is then counted again
    as it streams, :class:`_CountingZip`); the shared-string table, parsed whole, has its
    own :func:`shared_strings_cap`. Parts never read (an export's ``effective`` sheet) are
    never inflated."""
    buf = io.BytesIO(data)
    if not zipfile.is_zipfile(buf):
        raise FileRefused("not_workbook", {"reason": "not a zip"})
    cap = inflate_cap(max_rows)
    strings_cap = shared_strings_cap(max_rows)
    try:
        with zipfile.ZipFile(buf) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ENTRIES:
                raise FileRefused("zip_bomb", {"reason": "entries", "count": str(len(infos)),
                                               "max": str(MAX_ENTRIES)})
            total = sum(i.file_size for i in infos)
            if total > TOTAL_PARTS * cap:     # more than any workbook of max_rows holds
                raise FileRefused("zip_bomb", {"reason": "size", "size": str(total),
                                               "max": str(TOTAL_PARTS * cap)})
            for i in infos:
                if i.file_size > cap:
                    raise FileRefused("zip_bomb", {"reason": "size", "size": str(i.file_size),
                                                   "max": str(cap)})
                # The shared-string table is parsed whole, by defusedxml's slow parser: a
                # few MB of tiny strings cost seconds and hundreds of MB, so cap it alone.
                if i.filename.lower().endswith("sharedstrings.xml") and \
                        i.file_size > strings_cap:
                    raise FileRefused("zip_bomb", {"reason": "shared strings",
                                                   "size": str(i.file_size),
                                                   "max": str(strings_cap)})
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


class _Inflated:
    """Bytes inflated so far, shared by every part of one workbook being read."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.total = 0
        self.over = False

    def add(self, n: int) -> None:
        self.total += n
        if self.total > self.cap:
            self.over = True
            raise FileRefused("zip_bomb", {"reason": "inflated", "size": str(self.total),
                                           "max": str(self.cap)})

    def refusal(self) -> FileRefused:
        return FileRefused("zip_bomb", {"reason": "inflated", "size": str(self.total),
                                        "max": str(self.cap)})


class _CountedPart(io.RawIOBase):
    """A zip part as it inflates, each byte counted against the workbook's :class:`_Inflated`."""

    def __init__(self, raw: Any, inflated: _Inflated) -> None:
        super().__init__()
        self._raw = raw
        self._inflated = inflated

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        chunk: bytes = self._raw.read(-1 if size is None else size)
        self._inflated.add(len(chunk))
        return chunk

    def readinto(self, b: Any) -> int:
        chunk = self.read(len(b))
        b[:len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _CountingZip(zipfile.ZipFile):
    """The workbook's zip for openpyxl: every part it opens or reads is counted as it
    inflates (the directory's sizes are checked first, but only what streams is sure)."""

    inflated: _Inflated

    def open(self, name: Any, mode: Literal["r", "w"] = "r", pwd: bytes | None = None, *,
             force_zip64: bool = False) -> Any:
        part = super().open(name, mode, pwd, force_zip64=force_zip64)
        return _CountedPart(part, self.inflated) if mode == "r" else part

    def read(self, name: Any, pwd: bytes | None = None) -> bytes:
        with self.open(name, "r", pwd) as part:
            data: bytes = part.read()
            return data


def _unreadable(e: BaseException) -> FileRefused:
    """The refusal for what openpyxl raised, named by its root cause (openpyxl wraps parse
    errors as ValueError: "Unable to read workbook"), never with its text."""
    root, seen = e, 0
    while root.__cause__ is not None and seen < 10:
        root, seen = root.__cause__, seen + 1
    log.info("unreadable spreadsheet: %s", type(root).__name__)
    return FileRefused("unreadable", {"reason": type(root).__name__})


def _guarded(it: Iterator[_T], inflated: _Inflated) -> Iterator[_T]:
    """``it``'s items; whatever openpyxl (or the XML parser) raises while reading: unreadable
    (or, once the workbook has inflated past its cap, a zip bomb)."""
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except MemoryError:
            raise
        except Exception as e:  # hostile XML can break openpyxl anywhere
            if inflated.over:
                raise inflated.refusal() from None
            raise _unreadable(e) from e
        yield item


def _sheet_rows(ws: Any, inflated: _Inflated) -> Iterator[Sequence[object]]:
    # The declared dimension is a hint at best: dropped, so no row is cut off and no
    # declared-but-absent range is padded out.
    ws.reset_dimensions()
    rows: Iterator[Sequence[object]] = ws.iter_rows(min_row=1, min_col=1, values_only=True)
    return _guarded(rows, inflated)


def _read_xlsx(data: bytes, max_rows: int, max_cols: int) -> Table:
    _check_zip(data, max_rows)
    inflated = _Inflated(inflate_cap(max_rows))
    try:
        reader = openpyxl.reader.excel.ExcelReader(io.BytesIO(data), read_only=True,
                                                   data_only=False, keep_links=False)
        counting = _CountingZip(io.BytesIO(data))
        counting.inflated = inflated
        reader.archive = counting
        reader.read()
        wb = reader.wb
    except MemoryError:
        raise
    except Exception as e:  # hostile XML can break openpyxl anywhere
        if inflated.over:
            raise inflated.refusal() from None
        raise _unreadable(e) from e
    try:
        sheets = list(wb.worksheets)
        if not sheets:
            raise FileRefused("empty")
        by_name = {str(ws.title).strip().lower(): ws for ws in sheets}
        ws = by_name.get(PERMISSIONS_SHEET, sheets[0])
        rows = _read_rows(_sheet_rows(ws, inflated), max_rows, max_cols)
        about = by_name.get(ABOUT_SHEET)
        version = _version(about, inflated) if about is not None and about is not ws else None
    finally:
        wb.close()
    return Table(rows, "xlsx", version)


def _version(ws: Any, inflated: _Inflated) -> str | None:
    for n, row in enumerate(_sheet_rows(ws, inflated), start=1):
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
        # Interned: a large table repeats its types, values, times and sources thousands of
        # times; one copy of each keeps a 100,000-row file's rows small.
        cells = {c: intern(_cell_text(raw[i])) if 0 <= i < size else "" for c, i in cols}
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
           "CsvWriter", "FileRefused", "SheetRow", "Table", "XlsxWriter", "check_workbook",
           "inflate_cap", "read_table", "shared_strings_cap", "write_csv", "write_xlsx"]
