"""Bulk export, dry run, apply and undo at the size of a large company: seconds and peak RSS.

    python -m bench.bulk_bench [--rows 100000] [--fmt xlsx|csv|both] [--db sqlite|postgresql]

A store is seeded with the large demo organisation (``storage/demo.py``: ``--rows / 10``
members with ten rows each: a role, eight grants, a template). Then each phase runs in a
fresh process, so its peak RSS is its own, exactly as the operator's commands run it:

* export: ``baton export`` (read the store in chunks, stream the file);
* dry run: ``baton import --dry-run`` of that file with one row in ten edited (read, validate,
  plan; nothing applied);
* apply: ``baton import`` of the same file (read, validate, plan, apply all or nothing);
* undo: ``baton import-undo`` of the batch just applied.

The comparator, in the same run: the same phases at 10,000 rows, and the ratio of the two
times (linear cost: at most 10x for 10x the rows). Targets (issue 19) at 100,000 rows: export
xlsx under 8 s, csv under 3 s, under 150 MB; dry run + apply under 20 s and 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import prepare_database
from bot.cli.bulk import export_file, import_file, undo_batch
from bot.cli.sandbox import ORG_CATALOG, edit_file, org_shape
from bot.config import Settings
from storage.db import open_database
from storage.demo import seed_org

CORP = "bench"
PG_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
PG = f"{PG_SERVER}/baton_bulk_bench"      # its own database, created and emptied here


def settings_for(url: str) -> Settings:
    return Settings.model_validate({"database": {"url": url}, "catalog": ORG_CATALOG,
                                    "org": {"corp_id": CORP}, "locale": {"default": "en"}})


def rss_mb() -> float:
    """This process's peak RSS: VmHWM, which starts afresh at exec (ru_maxrss carries the
    forking parent's peak over into the child, and the parent holds the big files)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def seed(url: str, rows: int) -> int:
    db = open_database(url)
    await prepare_database(db)
    async with db.uow() as uow:
        n = await seed_org(uow, CORP, org_shape(max(1, rows // 10)), datetime.now(UTC))
        await uow.commit()
    await db.dispose()
    return n


async def phase(name: str, url: str, path: str, fmt: str, batch: str) -> None:
    s = settings_for(url)
    sink = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sink):   # the per-row lines are not the point here
        if name == "export":
            rc = await export_file(s, path, fmt)
        elif name == "dryrun":
            rc = await import_file(s, path, "add", dry_run=True)
        elif name == "apply":
            rc = await import_file(s, path, "add", dry_run=False)
        else:
            rc = await undo_batch(s, batch)
    dt = time.perf_counter() - t0
    last = [ln for ln in sink.getvalue().splitlines() if ln.strip()][-1:]
    print(f"RESULT {name} {fmt} seconds={dt:.2f} rss_mb={rss_mb():.0f} rc={rc} "
          f"| {last[0] if last else ''}")


def run_phase(*args: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "bench.bulk_bench", *args], check=False,
                         capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
    if not lines:
        raise SystemExit(f"phase {args} failed:\n{out.stdout}\n{out.stderr}")
    head, _, tail = lines[-1].partition(" | ")
    fields = dict(kv.split("=", 1) for kv in head.split()[3:])
    fields["note"] = tail
    return fields


def one_size(rows: int, fmt: str, url_for: str, tmp: str, full: bool = True,
             ) -> dict[str, dict[str, str]]:
    url = url_for
    if url_for == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp}/bench-{rows}-{fmt}.db"
    else:
        asyncio.run(_reset_pg(url))
    n = asyncio.run(seed(url, rows))
    path, edited_path = f"{tmp}/table-{rows}.{fmt}", f"{tmp}/table-{rows}-edited.{fmt}"
    got = {"export": run_phase("--phase", "export", "--url", url, "--fmt", fmt, "--file", path)}
    edits = edit_file(path, fmt, edited_path)
    got["dryrun"] = run_phase("--phase", "dryrun", "--url", url, "--fmt", fmt,
                              "--file", edited_path)
    got["apply"] = run_phase("--phase", "apply", "--url", url, "--fmt", fmt,
                             "--file", edited_path)
    batch = got["apply"]["note"].split("batch ")[-1].split()[0] if "batch" in \
        got["apply"]["note"] else "B-0"
    got["undo"] = run_phase("--phase", "undo", "--url", url, "--fmt", fmt, "--batch", batch)
    got["meta"] = {"rows": str(n), "edits": str(edits), "bytes": str(os.path.getsize(path))}
    if full:
        # Every row edited: a batch of about as many changes as rows, applied and undone.
        everything = f"{tmp}/table-{rows}-all.{fmt}"
        got["meta"]["all_edits"] = str(edit_file(path, fmt, everything, every=1))
        got["apply_all"] = run_phase("--phase", "apply", "--url", url, "--fmt", fmt,
                                     "--file", everything)
        note = got["apply_all"]["note"]
        batch = note.split("batch ")[-1].split()[0] if "batch" in note else "B-0"
        got["undo_all"] = run_phase("--phase", "undo", "--url", url, "--fmt", fmt,
                                    "--batch", batch)
    return got


async def _reset_pg(url: str) -> None:
    admin = create_async_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    async with admin.connect() as c:
        if not (await c.execute(text("SELECT 1 FROM pg_database WHERE datname = "
                                     "'baton_bulk_bench'"))).first():
            await c.execute(text("CREATE DATABASE baton_bulk_bench"))
    await admin.dispose()
    eng = create_async_engine(url)
    async with eng.begin() as c:
        await c.execute(text("DROP SCHEMA public CASCADE"))
        await c.execute(text("CREATE SCHEMA public"))
    await eng.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--fmt", choices=["xlsx", "csv", "both"], default="both")
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--base", type=int, default=10_000, help="the comparator's rows")
    ap.add_argument("--phase", choices=["export", "dryrun", "apply", "undo"])
    ap.add_argument("--url")
    ap.add_argument("--file", default="")
    ap.add_argument("--batch", default="")
    a = ap.parse_args()
    if a.phase:
        gc.freeze()          # as `baton` does once its command is loaded (bot/cli/main.py)
        asyncio.run(phase(a.phase, a.url, a.file, a.fmt, a.batch))
        return
    fmts = ["xlsx", "csv"] if a.fmt == "both" else [a.fmt]
    url = "sqlite" if a.db == "sqlite" else PG
    print(f"bulk bench: {a.rows:,} rows against {a.base:,}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f}, {a.db}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in fmts:
            base = one_size(a.base, fmt, url, tmp)
            big = one_size(a.rows, fmt, url, tmp)
            print(f"\n{fmt}: {big['meta']['rows']} rows ({big['meta']['bytes']} bytes, "
                  f"{big['meta']['edits']} edited) vs {base['meta']['rows']} rows")
            print(f"  {'phase':8} {'s@' + str(a.rows):>10} {'MB':>6} {'s@' + str(a.base):>10} "
                  f"{'MB':>6} {'ratio':>6}  note")
            print(f"  (apply_all / undo_all: every row edited, {big['meta']['all_edits']} and "
                  f"{base['meta']['all_edits']} changes in one batch)")
            for ph in ("export", "dryrun", "apply", "undo", "apply_all", "undo_all"):
                b, g = base[ph], big[ph]
                ratio = float(g["seconds"]) / max(float(b["seconds"]), 1e-3)
                print(f"  {ph:8} {g['seconds']:>10} {g['rss_mb']:>6} {b['seconds']:>10} "
                      f"{b['rss_mb']:>6} {ratio:>6.1f}  rc={g['rc']} {g['note'][:70]}")
    print(f"\ntargets at 100,000 rows: export xlsx < 8 s, csv < 3 s, < 150 MB; apply (read, "
          f"validate, dry run, apply) < 20 s, < 250 MB; ratio <= 10; load now "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
