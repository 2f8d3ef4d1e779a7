"""Bulk export and import of 10,000 rows: seconds and peak RSS, each in its own process.

    python -m bench.bulk_bench [--rows 10000] [--fmt xlsx|csv|both]

A store is seeded with members, roles and grants so that the permission table has about
``--rows`` rows. Then, each phase in a fresh process (so its peak RSS is its own):

* export: ``build_export`` (read the store, write the file) as ``baton export`` runs it;
* import: read the exported file back with one changed row in ten, validate, dry-run,
  and apply all or nothing in one transaction (``baton import`` without the console).

Targets (issue 5): under 5 s and under 200 MB each.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bot.cli.sandbox import DEMO_CATALOG
from bot.config import Settings

PERMS = list(DEMO_CATALOG["permissions"])


def settings_for(db: str) -> Settings:
    return Settings.model_validate({"database": {"url": f"sqlite+aiosqlite:///{db}"},
                                    "catalog": DEMO_CATALOG, "org": {"corp_id": "bench"}})


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def seed(db_path: str, rows: int) -> None:
    from bot.app import prepare_database
    from storage.db import open_database
    from storage.models import Grant, Member

    now = datetime.now(UTC)
    members = max(1, rows // 3)           # each member: a role row and two grant rows
    db = open_database(f"sqlite+aiosqlite:///{db_path}")
    await prepare_database(db)
    async with db.uow() as uow:
        await uow.session.execute(insert(Member), [
            {"corp_id": "bench", "user_id": f"u{i:05d}", "name": f"成员{i}", "level": "member",
             "role": "sales" if i % 2 else "analyst", "active": True, "created_at": now,
             "updated_at": now} for i in range(members)])
        await uow.session.execute(insert(Grant), [
            {"corp_id": "bench", "user_id": f"u{i:05d}", "name": PERMS[(i + k) % len(PERMS)],
             "granted_by": "bench", "created_at": now,
             "expires_at": now + timedelta(days=30) if k else None}
            for i in range(members) for k in range(2)])
        await uow.commit()
    await db.dispose()


async def phase_export(db_path: str, fmt: str, out: str) -> None:
    from bot.cli.bulk import export_file

    t0 = time.perf_counter()
    await export_file(settings_for(db_path), out, fmt)
    dt = time.perf_counter() - t0
    size = await asyncio.to_thread(os.path.getsize, out)
    print(f"RESULT export {fmt} seconds={dt:.2f} rss_mb={rss_mb():.0f} bytes={size}")


def _edit(src: str, fmt: str) -> str:
    """One data row in ten gets another expiry: an import with ~10% updates."""
    from bot.files.sheet import COLUMNS, read_table, write_csv, write_xlsx

    table = read_table(Path(src).read_bytes(), Path(src).name)
    later = (datetime.now(UTC) + timedelta(days=60)).replace(microsecond=0).isoformat()
    rows = []
    for i, r in enumerate(table.rows):
        cells = [r.cells.get(c, "") for c in COLUMNS]
        if i % 10 == 0 and cells[2] == "grant":
            cells[4] = later
        rows.append(cells)
    out = src.replace(f".{fmt}", f"-edited.{fmt}")
    data = write_csv(COLUMNS, rows) if fmt == "csv" else write_xlsx([("permissions", COLUMNS, rows)])
    Path(out).write_bytes(data)
    return out


async def phase_import(db_path: str, fmt: str, path: str) -> None:
    from bot.cli.bulk import import_file

    sink = io.StringIO()
    real = sys.stdout
    t0 = time.perf_counter()
    sys.stdout = sink                       # the per-row dry-run lines are not the point here
    try:
        rc = await import_file(settings_for(db_path), path, "add", dry_run=False)
    finally:
        sys.stdout = real
    dt = time.perf_counter() - t0
    applied = [line for line in sink.getvalue().splitlines() if line.startswith("applied")]
    print(f"RESULT import {fmt} seconds={dt:.2f} rss_mb={rss_mb():.0f} rc={rc} "
          f"{applied[0] if applied else sink.getvalue().splitlines()[-1:]}")


def run_phase(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "bench.bulk_bench", *args], check=True,
                         capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
    return lines[-1] if lines else out.stdout + out.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--fmt", choices=["xlsx", "csv", "both"], default="both")
    ap.add_argument("--phase", choices=["export", "import"])
    ap.add_argument("--db")
    ap.add_argument("--file")
    a = ap.parse_args()
    if a.phase == "export":
        asyncio.run(phase_export(a.db, a.fmt, a.file))
        return
    if a.phase == "import":
        asyncio.run(phase_import(a.db, a.fmt, a.file))
        return
    fmts = ["xlsx", "csv"] if a.fmt == "both" else [a.fmt]
    print(f"bulk bench: ~{a.rows:,} rows, {os.cpu_count()} cpus")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in fmts:
            db = f"{tmp}/bench-{fmt}.db"
            asyncio.run(seed(db, a.rows))
            path = f"{tmp}/table.{fmt}"
            print(run_phase("--phase", "export", "--db", db, "--fmt", fmt, "--file", path))
            edited = _edit(path, fmt)
            print(run_phase("--phase", "import", "--db", db, "--fmt", fmt, "--file", edited))
    print("targets: under 5 s and under 200 MB peak RSS per phase (each phase its own process)")


if __name__ == "__main__":
    main()
