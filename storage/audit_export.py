"""Writing the audit trail out as .xlsx or .csv (``baton audit export``). Pure: rows in, a file out.

Every text cell that a spreadsheet could read as a formula (one starting with ``=``, ``+``,
``-``, ``@``, a tab, a carriage return or NUL) gets a leading ``'``, in both formats, so no
cell is ever a formula. In .xlsx, control characters the format cannot hold (and CR, which
it would turn into LF) are written as visible ``\\xNN`` escapes instead.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from bot.core.domain.audit import AuditRecord

Format = Literal["xlsx", "csv"]
Cell = str | int

COLUMNS: tuple[str, ...] = ("seq", "at", "actor", "action", "target", "request", "message_id",
                            "result", "before", "after", "hash")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\0")
# What .xlsx cannot hold, and CR (an XML reader turns it into LF): written as \xNN.
_XLSX_ESCAPE = re.compile(ILLEGAL_CHARACTERS_RE.pattern + r"|\r")


def neutralise(value: str) -> str:
    """The text as it should be stored so that no spreadsheet evaluates it."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _json(value: dict[str, Any] | None) -> str:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      default=str)


def audit_row(e: AuditRecord) -> list[Cell]:
    """One entry as cells, in :data:`COLUMNS` order (times in UTC, ISO 8601)."""
    return [
        e.seq, e.at.astimezone(UTC).isoformat(), e.actor_id, e.action, e.target_id or "",
        f"R-{e.request_id}" if e.request_id is not None else "", e.message_id or "", e.result,
        _json(e.before), _json(e.after), e.hash,
    ]


def _safe(row: Sequence[Cell]) -> list[Cell]:
    return [neutralise(c) if isinstance(c, str) else c for c in row]


def _xlsx_text(c: Cell) -> Cell:
    if isinstance(c, str):
        return str(_XLSX_ESCAPE.sub(lambda m: f"\\x{ord(m.group()):02x}", c))
    return c


def _write_xlsx(path: Path, rows: Iterator[list[Cell]]) -> int:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("audit")
    ws.append(list(COLUMNS))
    n = 0
    for row in rows:
        ws.append([_xlsx_text(c) for c in row])
        n += 1
    wb.save(path)
    return n


def _write_csv(path: Path, rows: Iterator[list[Cell]]) -> int:
    n = 0
    # utf-8-sig: Excel then opens the Chinese text correctly.
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for row in rows:
            w.writerow(row)
            n += 1
    return n


def write_rows(path: str | Path, rows: Iterable[Sequence[Cell]], fmt: Format) -> int:
    """Write a header and ``rows`` (neutralised) to ``path``; returns how many rows.

    The file appears whole or not at all (written next to it, then renamed)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.partial")
    safe = (_safe(r) for r in rows)
    try:
        n = _write_xlsx(tmp, safe) if fmt == "xlsx" else _write_csv(tmp, safe)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def write_audit(path: str | Path, entries: Iterable[AuditRecord], fmt: Format) -> int:
    """The audit entries to ``path`` as ``fmt``; returns how many were written."""
    return write_rows(path, (audit_row(e) for e in entries), fmt)
