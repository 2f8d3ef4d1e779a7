"""``baton export FILE``, ``baton import FILE [--mode add|replace] [--dry-run]`` and
``baton import-undo B-7``.

The operator's way to move the permission table: the same file format, validation and dry
run as the chat import, applied all or nothing in one transaction. An operator import is
recorded as an applied import request (requester ``operator``), so ``import undo <batch>``
works on it like on any other batch; every change is audited. ``baton import-undo`` rolls a
batch back the same way (an applied ``import_undo`` request, refused if the table changed
since the batch).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bot.app import prepare_database
from bot.cli.store import operator_store, store_corp, with_corp
from bot.config import Settings
from bot.core.domain.bulk import Mode, change_from_json, change_to_json, inverse, plan, read_rows
from bot.core.domain.requests import State
from bot.files.sheet import FileRefused, read_table
from bot.texts.catalog import t
from handlers.bulk import (
    build_export,
    change_audit_rows,
    dry_run_lines,
    plain,
    read_limits,
    refusal_params,
)
from handlers.permissions import catalog_of
from storage import bulk as store
from storage.db import open_database

OPERATOR = "operator"


def _progress(label: str, total: int) -> Callable[[int], None]:
    """A one-line progress bar on stderr (only on a terminal; silent in logs and CI)."""
    tty = sys.stderr.isatty()

    def show(done: int) -> None:
        if not tty or total <= 0:
            return
        width = 30
        fill = int(width * done / total)
        sys.stderr.write(f"\r{label} [{'#' * fill}{'.' * (width - fill)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


async def export_file(settings: Settings, path: str, fmt: str | None) -> int:
    fmt = fmt or ("csv" if path.lower().endswith(".csv") else "xlsx")
    db = open_database(settings.database.url)
    try:
        await prepare_database(db)
        corp = await store_corp(db, settings)
        if corp is None:
            return 1
        settings = with_corp(settings, corp)
        built = await build_export(db, settings, datetime.now(UTC), fmt=fmt,
                                   template=False, lang=settings.locale.lang)
    finally:
        await db.dispose()
    tmp = Path(path + ".part")
    await asyncio.to_thread(tmp.write_bytes, built.data)
    await asyncio.to_thread(tmp.replace, path)
    print(f"wrote {path} ({len(built.data)} bytes, {built.rows} rows, {fmt})")
    for key, params in built.over:
        # The file is written (a backup, a report), but the import would refuse it as is.
        print("baton: " + plain(key, settings.locale.lang, name=Path(path).name, **params),
              file=sys.stderr)
    return 0


async def import_file(settings: Settings, path: str, mode: Mode, dry_run: bool) -> int:
    lang = settings.locale.lang
    try:
        data = await asyncio.to_thread(Path(path).read_bytes)
    except OSError as e:
        print(f"baton: cannot read {path}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        table = await asyncio.to_thread(read_table, data, Path(path).name,
                                        **read_limits(settings))
    except FileRefused as e:
        print("baton: " + plain(f"import_refused_{e.code}", lang,
                                **{**refusal_params(e), "name": Path(path).name}),
              file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    db = open_database(settings.database.url)
    try:
        await prepare_database(db)
        found = await store_corp(db, settings)
        if found is None:
            return 1
        corp = found
        async with db.uow() as uow:
            known = await store.people(uow, corp)
            templates = {tp.name for tp, _ in await uow.perms.templates(corp)}
            good, errors = read_rows(((r.row, r.cells) for r in table.rows),
                                     catalog=catalog_of(settings),
                                     members={u: lv for u, (_n, lv) in known.items()},
                                     templates=templates, now=now,
                                     names={u: n for u, (n, _lv) in known.items()})
            del table, known              # the file's rows are entries now: let them go
            current, _ = await store.entries(uow, corp, now)
            p = plan(good, errors, current, mode)
            for line in dry_run_lines(p, lang, settings.policy.timezone):
                print(line)
            # One language per run: the summary speaks the rows' language.
            print(t("import_cli_summary", lang, rows=len(p.rows), create=p.count("create"),
                    update=p.count("update"), unchanged=p.count("unchanged"),
                    errors=len(p.errors), remove=p.removals,
                    mode=t(f"import_mode_{mode}", lang)))
            if p.errors:
                print("baton: " + t("import_cli_has_errors", lang), file=sys.stderr)
                return 1
            if dry_run or not p.changes:
                print(t("import_cli_dry_run" if dry_run else "import_cli_no_changes", lang))
                return 0
            req = await uow.requests.create(
                corp_id=corp, kind="import", state=State.APPLIED, requester_id=OPERATOR,
                target_id=None, conversation_id="", reason="baton import",
                payload={"file": Path(path).name, "mode": mode, "is_group": False,
                         "changes": [change_to_json(c) for c in p.changes]},
                created_at=now, expires_at=now, decided_at=now, decided_by=OPERATOR)
            batch = f"B-{req.id}"
            req = await uow.requests.set_payload(req.id, {**req.payload, "batch": batch})
            show = _progress("applying", len(p.changes))
            done = await store.apply_changes(uow, corp, p.changes, by=OPERATOR, batch=batch,
                                             now=now, strict=True, progress=show)
            await uow.audit.append_many(corp, now, change_audit_rows(
                done, actor=OPERATOR, request_id=req.id, batch=batch, action="import.change"))
            await uow.audit.append(corp, now, actor_id=OPERATOR, action="import.apply",
                                   result="applied", request_id=req.id,
                                   after={"batch": batch, "changes": len(done),
                                          "file": Path(path).name})
            await uow.commit()
        print(t("import_cli_applied", lang, n=len(done), batch=batch))
        return 0
    finally:
        await db.dispose()


async def undo_batch(settings: Settings, batch: str) -> int:
    """Roll the import batch ``batch`` back, all or nothing, as the operator."""
    lang = settings.locale.lang
    batch = batch.upper() if batch.lower().startswith("b-") else f"B-{batch}"
    now = datetime.now(UTC)
    async with operator_store(settings) as db:
        corp = await store_corp(db, settings)
        if corp is None:
            return 1
        async with db.uow() as uow:
            source = [r for r in await uow.requests.by_kind(corp, "import")
                      if r.payload.get("batch") == batch and r.state == State.APPLIED.value]
            if not source:
                print("baton: " + plain("import_undo_unknown", lang, batch=batch), file=sys.stderr)
                return 1
            undone = [r for r in await uow.requests.by_kind(corp, "import_undo")
                      if r.payload.get("batch") == batch and r.state == State.APPLIED.value]
            if undone:
                print("baton: " + plain("import_undo_done", lang, batch=batch,
                                        id=undone[0].public_id), file=sys.stderr)
                return 1
            changes = inverse(change_from_json(c) for c in source[0].payload["changes"])
            req = await uow.requests.create(
                corp_id=corp, kind="import_undo", state=State.APPLIED, requester_id=OPERATOR,
                target_id=None, conversation_id="", reason="baton import-undo",
                payload={"batch": batch, "source": source[0].id, "is_group": False,
                         "changes": [change_to_json(c) for c in changes]},
                created_at=now, expires_at=now, decided_at=now, decided_by=OPERATOR)
            show = _progress("undoing", len(changes))
            try:
                done = await store.apply_changes(uow, corp, changes, by=OPERATOR,
                                                 batch=f"{batch}-undo", now=now, strict=True,
                                                 progress=show)
            except store.Conflict:
                print("baton: " + plain("not_applied_import_undo_store_changed", lang),
                      file=sys.stderr)
                return 1
            await uow.audit.append_many(corp, now, change_audit_rows(
                done, actor=OPERATOR, request_id=req.id, batch=f"{batch}-undo",
                action="import.undo_change"))
            await uow.commit()
        print(plain("import_cli_undone", lang, n=len(done), batch=batch))
        return 0
