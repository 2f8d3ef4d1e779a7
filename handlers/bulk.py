"""Bulk import and export of the permission table (Excel or CSV), safe by construction.

* ``export [xlsx|csv]`` / ``导出``: queued to the outbox (kind ``export``); the sender builds
  the file outside any transaction, uploads it through the media API and sends it to the
  requester one-to-one (never to a group). ``export template`` sends the empty, versioned
  import template.
* A file sent one-to-one is an import: downloaded and read (bot/files/sheet.py refuses
  oversized, zip-bomb, macro, non-workbook and hostile files before parsing) before the
  transaction; then a dry run (per row: create / update / unchanged / error, and who gains
  or loses what). Any error row: nothing applies. A clean file becomes a request whose card
  goes to the importer and to the first admin conversation; another admin approves; it
  applies all or nothing under one batch id, and only if the store is still what the dry run
  saw. ``import undo <batch>`` / ``导入 撤销`` is a request that rolls the batch back.
* ``import replace`` / ``导入 替换`` arms the sender's next file for replace mode (1 hour).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.approvals.engine import NoLongerAllowed
from bot.core.clock import local
from bot.core.commands import Export, ExportTemplate, ImportFile, ImportMode, ImportUndo
from bot.core.domain.bulk import (
    Change,
    Entry,
    Mode,
    Plan,
    RowResult,
    basis,
    change_from_json,
    change_to_json,
    entry_from_json,
    entry_to_json,
    inverse,
    plan,
    read_rows,
    same_basis,
)
from bot.core.domain.permissions import Catalog, GrantIn, Holdings, TemplateIn, effective, impact, sources_of
from bot.core.domain.requests import Request, State
from bot.core.escape import Md, literal
from bot.core.lang import Lang
from bot.dispatch.context import CommandRouter, Context, UserError
from bot.files.sheet import (
    COLUMNS,
    FORMAT_VERSION,
    CsvWriter,
    FileRefused,
    Table,
    XlsxWriter,
    check_workbook,
    inflate_cap,
    read_table,
    write_xlsx,
)
from bot.ports import DingTalkError, Messenger
from bot.texts.catalog import MESSAGES, t
from handlers.permissions import ApprovedChange, catalog_of, did_you_mean, start_request
from handlers.templates import impact_text
from storage import bulk as store
from storage.db import Database, UnitOfWork

log = logging.getLogger(__name__)
router = CommandRouter()

IMPORT = "import"
IMPORT_UNDO = "import_undo"
ARM_FOR = timedelta(hours=1)
SHOW_ROWS = 30
SHOW_REMOVALS = 20


# ---- export ---------------------------------------------------------------------------------

@router.command(Export, ExportTemplate, admin_only=True, authority="admin")
async def export(cmd: Export | ExportTemplate, ctx: Context) -> None:
    fmt = cmd.fmt if isinstance(cmd, Export) else "xlsx"
    await ctx.uow.outbox.add("export", f"user:{ctx.sender.user_id}", {
        "user_id": ctx.sender.user_id, "fmt": fmt, "lang": ctx.lang,
        "template": isinstance(cmd, ExportTemplate)}, ctx.now,
        source_message_id=ctx.message.message_id)
    await ctx.audit(ctx.sender.user_id, "export.requested", "ok", after={"format": fmt,
                                                     "template": isinstance(cmd, ExportTemplate)})
    key = "export_template_queued" if isinstance(cmd, ExportTemplate) else "export_queued"
    await ctx.reply(ctx.t(key, fmt=fmt))


@dataclass(frozen=True)
class ExportFile:
    """A built export: the file, its name, its data rows, and what would keep Baton's own
    import (under the same configuration) from taking it back: (text key, params) each."""

    data: bytes
    name: str
    rows: int
    over: tuple[tuple[str, dict[str, str]], ...] = ()


CHUNK = 500          # members a chunk of the export (the peak RSS follows it: 2000 gave +25 MB)


def _table_row(e: Entry, people: Mapping[str, tuple[str | None, str, str | None]],
               source: Mapping[tuple[str, str, str], str]) -> list[object]:
    who = people.get(e.user_id)
    return [e.user_id, (who[0] if who else None) or "", e.kind, e.value,
            e.expires_at.isoformat() if e.expires_at else "", source.get(e.key, "")]


def _effective_rows(chunk: store.TableChunk, items: Mapping[str, tuple[str, ...]],
                    cat: Catalog, lang: Lang, now: datetime) -> list[list[object]]:
    """The ``effective`` sheet's rows of a chunk's members: each permission and its sources,
    from the chunk's own entries (no second read of the store)."""
    grants: dict[str, list[GrantIn]] = {}
    templates: dict[str, list[TemplateIn]] = {}
    for e in chunk.entries:
        if e.kind == "grant":
            grants.setdefault(e.user_id, []).append(GrantIn(e.value, e.expires_at))
        elif e.kind == "template":
            templates.setdefault(e.user_id, []).append(TemplateIn(e.value, items.get(e.value, ())))
    out: list[list[object]] = []
    for uid in sorted(chunk.people):
        name, level, role = chunk.people[uid]
        held = Holdings(level, role, tuple(grants.get(uid, ())), tuple(templates.get(uid, ())))
        for perm, srcs in sources_of(held, cat, now).items():
            out.append([uid, name or "", perm, cat.label(perm, lang), "; ".join(
                f"{s.kind}:{s.name}" + (f"@{s.expires_at.isoformat()}" if s.expires_at else "")
                for s in srcs)])
    return out


def over_limits(settings: Any, *, rows: int, size: int, inflated: int = 0,
                refusal: FileRefused | None = None) -> tuple[tuple[str, dict[str, str]], ...]:
    """Why the import would refuse a file of ``rows`` data rows and ``size`` bytes (and,
    for a workbook, ``inflated`` bytes read and the directory's own ``refusal``), each
    naming the configuration key to raise."""
    lim = settings.bulk
    out: list[tuple[str, dict[str, str]]] = []
    if rows > lim.max_rows:
        out.append(("export_over_rows", {"rows": str(rows), "max": str(lim.max_rows),
                                         "setting": "bulk.max_rows"}))
    if size > lim.max_bytes:
        out.append(("export_over_size", {"size": f"{size / 1048576:.1f}",
                                         "max": f"{lim.max_file_mb:g}",
                                         "setting": "bulk.max_file_mb"}))
    if inflated > inflate_cap(lim.max_rows) and rows <= lim.max_rows:
        out.append(("export_over_inflated", {"size": f"{inflated / 1048576:.0f}",
                                             "max": f"{inflate_cap(lim.max_rows) / 1048576:.0f}",
                                             "setting": "bulk.max_rows"}))
    if refusal is not None and not out:
        out.append(("export_not_importable", {"code": refusal.code, "setting": "bulk.max_rows"}))
    return tuple(out)


async def build_export(db: Database, settings: Any, now: datetime, *, fmt: str,
                       template: bool, lang: Lang) -> ExportFile:
    """The file: the full table (read from the store in chunks and streamed into the file),
    or the empty import template."""
    stamp = now.strftime("%Y%m%d-%H%M")
    if template:
        rows: list[list[object]] = []
        example = [["zhangsan", "张三", "grant", "crm.customer.view", "2026-12-31T00:00:00+00:00", ""]]
        data = await asyncio.to_thread(write_xlsx, [
            ("permissions", COLUMNS, rows), ("example", COLUMNS, example),
            ("about", ("key", "value"), [("format", FORMAT_VERSION), ("kind", "import template")]),
        ])
        return ExportFile(data, f"baton-import-template-{FORMAT_VERSION}.xlsx", 0)
    cat = catalog_of(settings)
    corp = settings.org.corp_id
    if fmt == "csv":
        out = CsvWriter(COLUMNS)
        waiting: asyncio.Future[None] | None = None
        async with db.uow() as uow:
            async for chunk in store.table_chunks(uow, corp, now, CHUNK):
                table = [_table_row(e, chunk.people, chunk.source) for e in chunk.entries]
                if waiting is not None:
                    await waiting
                waiting = asyncio.ensure_future(asyncio.to_thread(out.append_rows, table))
        if waiting is not None:
            await waiting
        data = await asyncio.to_thread(out.close)
        return ExportFile(data, f"baton-permissions-{stamp}.csv", out.rows,
                          over_limits(settings, rows=out.rows, size=len(data)))
    wb = XlsxWriter()
    ws = wb.sheet("permissions", COLUMNS)
    eff_ws = wb.sheet("effective", ("user_id", "name", "permission", "label", "sources"),
                      spooled=True)

    def write(table: list[list[object]], eff: list[list[object]]) -> None:
        ws.append_rows(table)
        eff_ws.append_rows(eff)

    # One pass over the store: a chunk's rows are written (off the loop) while the next
    # chunk is read; the effective permissions come from the same rows.
    pending: asyncio.Future[None] | None = None
    async with db.uow() as uow:
        tpls = [(tp.name, tuple(tp.permissions)) for tp, _ in await uow.perms.templates(corp)]
        items = dict(tpls)
        async for chunk in store.table_chunks(uow, corp, now, CHUNK):
            table = [_table_row(e, chunk.people, chunk.source) for e in chunk.entries]
            eff = _effective_rows(chunk, items, cat, lang, now)
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(asyncio.to_thread(write, table, eff))
    if pending is not None:
        await pending
    n_rows, read_bytes = ws.rows, ws.inflated
    tpls_rows = [(n, ", ".join(i)) for n, i in tpls]
    wb.sheet("templates", ("template", "items")).append_rows(tpls_rows)
    about = wb.sheet("about", ("key", "value"))
    about.append_rows([("format", FORMAT_VERSION), ("exported_at", now.isoformat()),
                       ("corp_id", corp)])
    data = await asyncio.to_thread(wb.close)
    # What the import reads of it: the permissions and about sheets and the small parts.
    read_bytes += about.inflated + wb.shared_bytes + 256 * 1024   # + the small parts
    refusal = None
    try:
        check_workbook(data, settings.bulk.max_rows)
    except FileRefused as e:
        refusal = e
    return ExportFile(data, f"baton-permissions-{stamp}.xlsx", n_rows,
                      over_limits(settings, rows=n_rows, size=len(data), inflated=read_bytes,
                                  refusal=refusal))


def plain(key: str, lang: Lang, /, **params: Any) -> str:
    """A message as plain text, for a file (nothing escaped: no markdown there)."""
    return MESSAGES[key][lang].format(**{k: str(v) for k, v in params.items()})


def report_rows(p: Plan) -> list[list[Any]]:
    """Every row of a dry run, compactly, for the report file (an outbox payload)."""
    out: list[list[Any]] = []
    for r in p.rows:
        if r.error is not None:
            out.append([r.row, "error", r.error.code, dict(r.error.params), list(r.error.hints)])
        elif r.entry is not None:
            out.append([r.row, r.status, *entry_to_json(r.entry)])
    return out


async def build_report(payload: dict[str, Any], lang: Lang, tz: str, now: datetime,
                       ) -> tuple[bytes, str]:
    """The full per-row dry run of an import, as a workbook (the chat shows the first rows)."""
    def rows() -> list[list[object]]:
        out: list[list[object]] = []
        for item in payload["report"]:
            if item[1] == "error":
                why = plain(f"import_row_{item[2]}", lang, **item[3])
                if item[4]:
                    why = f"{why} ({', '.join(item[4])})"
                out.append([item[0], plain("import_status_error", lang), "", "", "", "", why])
            else:
                uid, kind, value, exp = item[2:6]
                out.append([item[0], plain(f"import_status_{item[1]}", lang), uid, kind, value,
                            local(datetime.fromisoformat(exp), tz) if exp else "", ""])
        return out

    header = ("row", "status", "user_id", "type", "value", "expires_at", "detail")
    data = await asyncio.to_thread(lambda: write_xlsx([
        ("report", header, rows()),
        ("about", ("key", "value"), [("format", FORMAT_VERSION),
                                     ("import", str(payload.get("file", ""))),
                                     ("timezone", tz), ("dry_run_at", now.isoformat())])]))
    return data, f"baton-import-report-{now.strftime('%Y%m%d-%H%M')}.xlsx"


async def build_removals(db: Database, settings: Any, now: datetime,
                         payload: dict[str, Any]) -> tuple[bytes, str]:
    """The full list of what a replace import removes (its dry run lists the first ones),
    in the import format."""
    removed = [entry_from_json(v) for v in payload["removals"]]
    async with db.uow() as uow:
        people = {m.user_id: m.name for m in await store.members(uow, settings.org.corp_id)}
    rows = [[e.user_id, people.get(e.user_id) or "", e.kind, e.value,
             e.expires_at.isoformat() if e.expires_at else "", "remove"] for e in removed]
    data = await asyncio.to_thread(write_xlsx, [
        ("removals", COLUMNS, rows),
        ("about", ("key", "value"), [("format", FORMAT_VERSION),
                                     ("import", str(payload.get("file", ""))),
                                     ("dry_run_at", now.isoformat())]),
    ])
    return data, f"baton-import-removals-{now.strftime('%Y%m%d-%H%M')}.xlsx"


async def send_export(db: Database, settings: Any, client: Messenger,
                      payload: dict[str, Any], now: datetime) -> None:
    """The outbox's delivery of an ``export`` row: build, upload, send one-to-one."""
    lang: Lang = "en" if payload.get("lang") == "en" else "zh"
    over: tuple[tuple[str, dict[str, str]], ...] = ()
    if "removals" in payload:
        data, name = await build_removals(db, settings, now, payload)
    elif "report" in payload:
        data, name = await build_report(payload, lang, settings.policy.timezone, now)
    else:
        built = await build_export(db, settings, now, fmt=str(payload.get("fmt", "xlsx")),
                                   template=bool(payload.get("template")), lang=lang)
        data, name, over = built.data, built.name, built.over
    media = await client.upload_media(data, name)
    await client.send_file(str(payload["user_id"]), media, name)
    if over:
        # Said after the file, once: a retry of this row rebuilds and resends both.
        await client.send_to_user(str(payload["user_id"]), "\n\n".join(
            t(key, lang, name=literal(name, 80), **params) for key, params in over),
            markdown=True, title=t("export_over_title", lang))


# ---- import: arming replace mode ----------------------------------------------------------------

@router.command(ImportMode, admin_only=True, authority="admin")
async def import_mode(cmd: ImportMode, ctx: Context) -> None:
    await ctx.uow.members.arm_import(ctx.sender, cmd.mode, ctx.now + ARM_FOR)
    note = ctx.t("import_replace_note") if cmd.mode == "replace" else ""
    await ctx.reply(ctx.t("import_armed", mode=ctx.t(f"import_mode_{cmd.mode}"), note=note))


# ---- import: the file ---------------------------------------------------------------------------

async def fetch_file(cmd: ImportFile, client: Messenger | None, settings: Any,
                     ) -> dict[str, Any]:
    """Before the transaction: download and read the file (parsing off the event loop),
    within ``bulk.max_file_mb`` and ``bulk.max_rows``."""
    if cmd.in_group:
        return {}
    if client is None:
        return {"error": "no_client"}
    try:
        data = await client.download_file(cmd.file.download_code)
    except DingTalkError as e:
        log.warning("downloading import file failed: %s", e)
        return {"error": e.code}
    try:
        table = await asyncio.to_thread(read_table, data, cmd.file.file_name,
                                        **read_limits(settings))
    except FileRefused as e:
        return {"refused": e.code, "params": dict(e.params)}
    return {"table": table}


def read_limits(settings: Any) -> dict[str, int]:
    return {"max_bytes": settings.bulk.max_bytes, "max_rows": settings.bulk.max_rows}


def refusal_params(e: FileRefused | dict[str, str]) -> dict[str, str]:
    """A refusal's parameters for its message (sizes in MB where the limit is set in MB)."""
    params = dict(e.params if isinstance(e, FileRefused) else e)
    if "size" in params and "max" in params and params["size"].isdigit() and \
            params["max"].isdigit():
        params["size_mb"] = f"{int(params['size']) / 1048576:.1f}"
        params["max_mb"] = f"{int(params['max']) / 1048576:.1f}"
    return params


@router.command(ImportFile, authority="admin", prepare=fetch_file, prepare_settings=True)
async def import_file(cmd: ImportFile, ctx: Context) -> None:
    info: dict[str, Any] = ctx.prepared or {}
    name = literal(cmd.file.file_name, 80)
    if cmd.in_group or ctx.message.is_group:
        raise UserError("import_in_group", audit_action="import.refused", name=name)
    if "error" in info:
        raise UserError("import_download_failed", name=name)
    if "refused" in info:
        params: dict[str, Any] = {k: literal(str(v), 80)
                                  for k, v in refusal_params(info["params"]).items()}
        raise UserError(f"import_refused_{info['refused']}", audit_action="import.refused",
                        **{**params, "name": name})
    table: Table = info.pop("table")      # let the rows go once they are entries
    me = ctx.sender
    mode: Mode = "add"
    if me.import_mode == "replace" and me.import_mode_until and me.import_mode_until > ctx.now:
        mode = "replace"
    cat = catalog_of(ctx.settings)
    corp = ctx.corp_id
    known = await store.people(ctx.uow, corp)
    templates = {tp.name: list(tp.permissions) for tp, _ in await ctx.uow.perms.templates(corp)}
    good, errors = read_rows(((r.row, r.cells) for r in table.rows), catalog=cat,
                             members={u: lv for u, (_n, lv) in known.items()},
                             templates=set(templates), now=ctx.now,
                             names={u: n for u, (n, _lv) in known.items()})
    del table
    current, _src = await store.entries(ctx.uow, corp, ctx.now)
    p = plan(good, errors, current, mode)
    lines = dry_run_lines(p, ctx.lang, ctx.settings.policy.timezone)
    if len(p.errors) + p.count("create") + p.count("update") > SHOW_ROWS:
        # A large dry run: the reply shows the first rows; every row goes out as a file.
        await ctx.uow.outbox.add("export", f"user:{me.user_id}", {
            "user_id": me.user_id, "lang": ctx.lang, "file": cmd.file.file_name,
            "report": report_rows(p)}, ctx.now, source_message_id=ctx.message.message_id)
        lines.append(f"- {ctx.t('import_report_file', rows=len(p.rows))}")
    if p.errors:
        await ctx.audit(ctx.sender.user_id, "import.refused", "refused", after={
            "file": cmd.file.file_name, "rows": len(p.rows), "errors": len(p.errors)})
        still = [ctx.t("import_replace_still_armed")] if mode == "replace" else []
        await ctx.reply("\n".join([ctx.t("import_has_errors", name=name, n=len(p.errors),
                                         rows=len(p.rows)), *lines, *still]), markdown=True,
                        title=ctx.t("import_title"))
        return
    if not p.changes:
        await ctx.uow.members.disarm_import(me)
        await ctx.reply(ctx.t("import_no_changes", name=name, rows=len(p.rows)))
        return
    imp = await change_impact(ctx.uow, corp, p.changes, cat, templates, ctx.now)
    summary = ctx.t("import_summary", name=name, mode=ctx.t(f"import_mode_{mode}"),
                    create=p.count("create"), update=p.count("update"),
                    unchanged=p.count("unchanged"), remove=p.removals)
    # What the dry run saw: everyone's entries in replace mode, the file's people's in add
    # mode. Applying checks it again, so the approved preview is what happens.
    people = None if mode == "replace" else {e.user_id for _, e in good}
    await start_request(ctx, IMPORT, None, {
        "file": cmd.file.file_name, "mode": mode, "summary": summary,
        "impact": impact_text(imp, cat, ctx.lang, imp.people()),
        "changes": [change_to_json(c) for c in p.changes],
        "basis": basis(current, people),
        "people": None if people is None else sorted(people)})
    # The armed replace mode is used up by the file that became a request (a file refused
    # for errors, or with nothing to change, leaves it armed for the corrected file).
    await ctx.uow.members.disarm_import(me)
    removed = [c.entry for c in p.changes if c.op == "remove"]
    gone = await removal_lines(ctx, removed)
    if len(removed) > SHOW_REMOVALS:
        # The card and this reply show the first ones; the importer gets them all as a file.
        await ctx.uow.outbox.add("export", f"user:{me.user_id}", {
            "user_id": me.user_id, "lang": ctx.lang, "file": cmd.file.file_name,
            "removals": [entry_to_json(e) for e in removed]}, ctx.now,
            source_message_id=ctx.message.message_id)
        gone += [Md(""), ctx.t("import_removals_file")]
    await ctx.reply("\n".join([f"### {ctx.t('import_title')}", summary, *lines, *gone]),
                    markdown=True, title=ctx.t("import_title"))


def dry_run_lines(p: Plan, lang: Lang, tz: str) -> list[str]:
    """Per-row results worth reading: errors first, then changes (capped); times in ``tz``."""
    shown: list[RowResult] = p.errors + [r for r in p.rows if r.status in ("create", "update")]
    out = []
    for r in shown[:SHOW_ROWS]:
        if r.error is not None:
            why = t(f"import_row_{r.error.code}", lang,
                    **{k: literal(v, 64) for k, v in r.error.params.items()})
            if r.error.hints:   # the did-you-mean of chat commands
                why = t("import_row_hint", lang, why=why,
                        hint=did_you_mean(list(r.error.hints), lang))
            out.append(t("import_row_error", lang, row=r.row, why=why))
        elif r.entry is not None:
            out.append(t(f"import_row_{r.status}", lang, row=r.row,
                         what=_entry_text(r.entry, tz)))
    if len(shown) > SHOW_ROWS:
        out.append(t("and_more_rows", lang, n=len(shown) - SHOW_ROWS))
    if p.removals and not p.errors:
        out.append(t("import_removals", lang, n=p.removals))
    return [f"- {line}" for line in out]


async def removal_lines(env: Context, removed: Sequence[Entry]) -> list[Md]:
    """Who loses what: the first :data:`SHOW_REMOVALS` removals, then "and N more"."""
    if not removed:
        return []
    shown = removed[:SHOW_REMOVALS]
    names = await env.names(*dict.fromkeys(e.user_id for e in shown))
    tz = env.settings.policy.timezone
    out = [Md(f"- {names[e.user_id]} {_entry_text(e, tz, who=False)}") for e in shown]
    if len(removed) > SHOW_REMOVALS:
        out.append(Md(f"- {t('and_more_items', env.lang, n=len(removed) - SHOW_REMOVALS)}"))
    return [Md(""), t("import_removals_list", env.lang, n=len(removed)), *out]


def _entry_text(e: Entry, tz: str, *, who: bool = True) -> Md:
    # The time as applied, in the company's zone and saying so (an input's own offset, or
    # UTC for a time without one, has been applied by then).
    until = f" → {local(e.expires_at, tz)} ({literal(tz, 64)})" if e.expires_at else ""
    user = f"{literal(e.user_id, 64)} " if who else ""
    return Md(f"{user}{e.kind} {literal(e.value, 64)}{until}")


async def change_impact(uow: UnitOfWork, corp: str, changes: Sequence[Change], cat: Catalog,
                        templates: dict[str, list[str]], now: datetime) -> Any:
    """Who gains and who loses which permissions if ``changes`` applied."""
    users = sorted({c.entry.user_id for c in changes})
    held = await uow.perms.holdings_many(corp, users, now)
    before = {u: effective(h, cat, now) for u, h in held.items()}
    after_h: dict[str, Holdings] = dict(held)
    for c in changes:
        h, e = after_h[c.entry.user_id], c.entry
        if e.kind == "role":
            h = replace(h, role=None if c.op == "remove" else e.value)
        elif e.kind == "grant":
            grants = tuple(g for g in h.grants if g.name != e.value)
            if c.op != "remove":
                grants += (GrantIn(e.value, e.expires_at),)
            h = replace(h, grants=grants)
        elif e.kind == "template":
            tps = tuple(x for x in h.templates if x.name != e.value)
            if c.op != "remove":
                tps += (TemplateIn(e.value, tuple(templates.get(e.value, ()))),)
            h = replace(h, templates=tps)
        after_h[c.entry.user_id] = h
    return impact(before, {u: effective(h, cat, now) for u, h in after_h.items()})


async def apply_batch(env: Context, req: Request, changes: list[Change], *, batch: str,
                      action: str) -> None:
    """All or nothing: any conflict raises, the savepoint rolls back, the request FAILS."""
    try:
        done = await store.apply_changes(env.uow, env.corp_id, changes, by=req.requester_id,
                                         batch=batch, now=env.now, strict=True)
    except store.Conflict as e:
        log.info("%s: the table changed since the dry run (%s)", req.public_id, e)
        undo = action == "import.undo_change"
        raise NoLongerAllowed("import_undo_store_changed" if undo else "import_store_changed") \
            from None
    await env.uow.audit.append_many(env.corp_id, env.now, change_audit_rows(
        done, actor=req.requester_id, request_id=req.id, batch=batch, action=action,
        message_id=env.message_id))


def change_audit_rows(done: list[Change], *, actor: str, request_id: int, batch: str,
                      action: str, message_id: str | None = None) -> list[dict[str, Any]]:
    """One audit entry per applied change, with the state before and after (chat and CLI)."""
    return [
        {"actor_id": actor, "action": action, "result": "applied",
         "target_id": c.entry.user_id, "request_id": request_id, "message_id": message_id,
         "before": _state(c.before) if c.op != "create" else None,
         "after": {**(_state(c.entry) if c.op != "remove" else {}), "op": c.op, "batch": batch}}
        for c in done]


def _state(e: Entry | None) -> dict[str, Any]:
    if e is None:
        return {}
    return {"kind": e.kind, "value": e.value,
            "expires_at": e.expires_at.isoformat() if e.expires_at else None}


def _people_in(changes: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(change_from_json(c).entry.user_id for c in changes))


class ImportRequest(ApprovedChange):
    kind = IMPORT

    def affected(self, target: str | None, payload: Mapping[str, Any]) -> tuple[str, ...]:
        return _people_in(payload["changes"])

    async def describe(self, req: Request, env: Context) -> Md:
        p = req.payload
        extra = f"\n\n{t('import_batch', env.lang, batch=p['batch'])}" if p.get("batch") else ""
        removed = [c.entry for c in map(change_from_json, p["changes"]) if c.op == "remove"]
        gone = "\n".join(["", *await removal_lines(env, removed)]) if removed else ""
        # summary and impact: markdown built from escaped parts when the file was read
        return Md(f"{p.get('summary', '')}\n\n{p.get('impact', '')}{gone}{extra}")

    async def subject(self, req: Request, env: Context) -> str:
        return t("subject_import", env.lang, file=literal(str(req.payload.get("file", "")), 80),
                 n=len(req.payload["changes"]))

    async def apply(self, req: Request, env: Context) -> None:
        batch = f"B-{req.id}"
        if "basis" in req.payload:
            current, _src = await store.entries(env.uow, env.corp_id, env.now)
            people = req.payload.get("people")
            if not same_basis(req.payload["basis"], current, people, env.now):
                raise NoLongerAllowed("import_store_changed")
        changes = [change_from_json(c) for c in req.payload["changes"]]
        await apply_batch(env, req, changes, batch=batch, action="import.change")
        req = await env.uow.requests.set_payload(req.id, {**req.payload, "batch": batch})
        await env.audit(req.requester_id, "import.apply", "applied", request_id=req.id,
                        after={"batch": batch, "changes": len(changes),
                               "file": str(req.payload.get("file", ""))})


@router.command(ImportUndo, admin_only=True, authority="admin")
async def import_undo(cmd: ImportUndo, ctx: Context) -> None:
    batch = cmd.batch.upper() if cmd.batch.lower().startswith("b-") else f"B-{cmd.batch}"
    done = [r for r in await ctx.uow.requests.by_kind(ctx.corp_id, IMPORT)
            if r.payload.get("batch") == batch and r.state == State.APPLIED.value]
    if not done:
        raise UserError("import_undo_unknown", batch=literal(cmd.batch, 64))
    source = done[0]
    undone = [r for r in await ctx.uow.requests.by_kind(ctx.corp_id, IMPORT_UNDO)
              if r.payload.get("batch") == batch and r.state in ("pending", "approved", "applied")]
    applied = [r for r in undone if r.state == State.APPLIED.value]
    if applied:
        raise UserError("import_undo_done", batch=batch, id=applied[0].public_id)
    if undone:
        raise UserError("import_undo_twice", batch=batch, id=undone[0].public_id)
    changes = inverse(change_from_json(c) for c in source.payload["changes"])
    await start_request(ctx, IMPORT_UNDO, None, {
        "batch": batch, "source": source.id, "changes": [change_to_json(c) for c in changes]})


class ImportUndoRequest(ApprovedChange):
    kind = IMPORT_UNDO

    def affected(self, target: str | None, payload: Mapping[str, Any]) -> tuple[str, ...]:
        return _people_in(payload["changes"])

    async def describe(self, req: Request, env: Context) -> Md:
        return t("describe_import_undo", env.lang, batch=str(req.payload["batch"]),
                 n=len(req.payload["changes"]))

    async def subject(self, req: Request, env: Context) -> str:
        return t("subject_import_undo", env.lang, batch=str(req.payload["batch"]))

    async def apply(self, req: Request, env: Context) -> None:
        changes = [change_from_json(c) for c in req.payload["changes"]]
        await apply_batch(env, req, changes, batch=f"{req.payload['batch']}-undo",
                          action="import.undo_change")


router.request_kind(ImportRequest())
router.request_kind(ImportUndoRequest())


__all__ = ["build_export", "router", "send_export"]
