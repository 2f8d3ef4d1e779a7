"""The ``baton`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.cli.store import store_corp
from bot.config import ConfigError, Settings, load_settings


def _settings(path: str | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as e:
        print("The configuration has problems:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        raise SystemExit(2) from None


async def _run(settings: Settings) -> int:
    from bot.app import BatonApp, NotConfigured
    from bot.logs import setup_logging

    setup_logging(settings.log.level, (settings.dingtalk.client_secret.get_secret_value(),),
                  json_format=settings.log.json_format)
    try:
        app = BatonApp(settings)
        async with app:
            # Everything built at start lives as long as the process: move it out of the
            # collector's sight, so a full collection under load scans only what is new
            # (a 100+ ms full GC is a 100+ ms stall of the event loop).
            gc.collect()
            gc.freeze()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, app.request_stop)
            await app.wait_stopped()
    except NotConfigured as e:
        print(f"baton: {e}", file=sys.stderr)
        return 2
    return 0


async def _db_upgrade(settings: Settings) -> int:
    from storage import migrate
    from storage.db import open_database

    db = open_database(settings.database.url)
    try:
        before = await migrate.current_revision(db)
        await migrate.upgrade(db)
        after = await migrate.current_revision(db)
    finally:
        await db.dispose()
    print(f"database at revision {after}" + ("" if before == after else f" (was {before})"))
    return 0


async def _init(settings: Settings, owner: str, admins: list[str]) -> int:
    from bot.app import prepare_database
    from bot.bootstrap import set_owner
    from bot.core.clock import SystemClock
    from storage.db import open_database

    db = open_database(settings.database.url)
    try:
        await prepare_database(db)
        done = await set_owner(db, settings.org.corp_id, owner, admins, SystemClock(),
                               source="cli")
    finally:
        await db.dispose()
    if not done:
        print("baton: this corp already has an owner; use an owner transfer to change it",
              file=sys.stderr)
        return 1
    print(f"owner set to {owner}" + (f", admins: {', '.join(admins)}" if admins else ""))
    return 0


async def _audit_verify(settings: Settings) -> int:
    from storage.db import open_database

    db = open_database(settings.database.url)
    try:
        corp = await store_corp(db, settings)
        if corp is None:
            return 1
        async with db.uow() as uow:
            bad = await uow.audit.verify(corp)
    finally:
        await db.dispose()
    if bad is None:
        print("audit chain verified")
        return 0
    print(f"audit chain broken at entry #{bad}", file=sys.stderr)
    return 1


def _iso_time(value: str) -> datetime:
    """An ISO 8601 date or time for --since / --until (naive: local, see :func:`_zoned`)."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO date or time, e.g. 2026-03-01 or 2026-03-01T08:00+08:00"
        ) from None


def _zoned(at: datetime | None, tz: str) -> datetime | None:
    """A time without an offset is read in ``policy.timezone``, as the company reads its clock."""
    from zoneinfo import ZoneInfo

    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


async def _audit_export(settings: Settings, args: argparse.Namespace) -> int:
    from storage.audit_export import Format, write_audit
    from storage.db import open_database

    fmt: Format = args.format or ("csv" if str(args.file).lower().endswith(".csv") else "xlsx")
    db = open_database(settings.database.url)
    try:
        corp = await store_corp(db, settings)
        if corp is None:
            return 1
        async with db.uow() as uow:
            tz = settings.policy.timezone
            entries = await uow.audit.between(
                corp, user_id=args.user,
                # Actions are lower case; PostgreSQL's LIKE, unlike SQLite's, minds case.
                action_prefix=args.action.lower() if args.action else None,
                since=_zoned(args.since, tz), until=_zoned(args.until, tz))
    finally:
        await db.dispose()
    try:
        n = write_audit(args.file, entries, fmt)
    except OSError as e:
        print(f"baton: cannot write {args.file}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wrote {n} audit entries to {args.file} ({fmt})")
    return 0


async def _backup(settings: Settings, snapshot_id: int | None) -> int:
    import json

    from storage.db import open_database
    from storage.snapshots import get_snapshot, list_snapshots

    db = open_database(settings.database.url)
    try:
        corp = await store_corp(db, settings)
        if corp is None:
            return 1
        async with db.uow() as uow:
            if snapshot_id is None:
                snaps = await list_snapshots(uow, corp)
                if not snaps:
                    print("no backups yet (one is taken before every owner transfer)")
                for sn in snaps:
                    owner = next((m["user_id"] for m in sn.data.get("members", [])
                                  if m.get("level") == "owner"), "-")
                    req = f"R-{sn.request_id}" if sn.request_id else "-"
                    print(f"{sn.id}\t{sn.created_at.isoformat(timespec='seconds')}\t"
                          f"{sn.reason}\t{req}\towner={owner}\t"
                          f"{len(sn.data.get('members', []))} members, "
                          f"{len(sn.data.get('grants', []))} grants")
                return 0
            snap = await get_snapshot(uow, snapshot_id)
            if snap is None or snap.corp_id != corp:
                print(f"baton: no backup {snapshot_id}; `baton backup list` shows them",
                      file=sys.stderr)
                return 1
            print(json.dumps({"id": snap.id, "created_at": snap.created_at.isoformat(),
                              "reason": snap.reason, "request_id": snap.request_id,
                              **snap.data}, ensure_ascii=False, indent=2))
            return 0
    finally:
        await db.dispose()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="baton", description="Baton, the DingTalk handover bot")
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="connect to DingTalk and serve (needs credentials)")
    run.add_argument("--config", "-c")
    sb = sub.add_parser("sandbox", help="a local DingTalk simulator, demo members and a chat")
    sb.add_argument("--config", "-c")
    sb.add_argument("--db", default="baton-sandbox.db", help="SQLite file (default %(default)s)")
    sb.add_argument("--lang", choices=["zh", "en"], default="zh")
    sb.add_argument("--script", help="read chat lines from this file instead of the terminal")
    sb.add_argument("--files", default="baton-sandbox-files",
                    help="folder for the files Baton sends, e.g. exports (default %(default)s)")
    db = sub.add_parser("db", help="database commands")
    dbs = db.add_subparsers(dest="dbcmd", required=True)
    up = dbs.add_parser("upgrade", help="migrate the schema to the newest revision")
    up.add_argument("--config", "-c")
    ini = sub.add_parser("init", help="set the first owner (and admins) of an empty store")
    ini.add_argument("--owner", required=True)
    ini.add_argument("--admin", action="append", default=[])
    ini.add_argument("--config", "-c")
    cfg = sub.add_parser("config", help="configuration commands")
    cfgs = cfg.add_subparsers(dest="cfgcmd", required=True)
    chk = cfgs.add_parser("check", help="validate a configuration file")
    chk.add_argument("file", nargs="?")
    au = sub.add_parser("audit", help="audit trail commands")
    aus = au.add_subparsers(dest="auditcmd", required=True)
    ver = aus.add_parser("verify", help="check the hash chain")
    ver.add_argument("--config", "-c")
    exp = aus.add_parser("export", help="write the audit trail to an .xlsx or .csv file")
    exp.add_argument("file", help="where to write (the format follows a .csv/.xlsx name)")
    exp.add_argument("--format", choices=["xlsx", "csv"])
    exp.add_argument("--user", help="only entries where this userId is actor or target")
    exp.add_argument("--action", help="only actions starting with this, e.g. grant.")
    exp.add_argument("--since", type=_iso_time,
                     help="from this ISO date or time on (policy.timezone if no offset)")
    exp.add_argument("--until", type=_iso_time,
                     help="before this ISO date or time (policy.timezone if no offset)")
    exp.add_argument("--config", "-c")
    ex = sub.add_parser("export", help="write the permission table to an .xlsx or .csv file")
    ex.add_argument("file")
    ex.add_argument("--format", choices=["xlsx", "csv"])
    ex.add_argument("--config", "-c")
    im = sub.add_parser("import", help="apply a permission table file (all or nothing)")
    im.add_argument("file")
    im.add_argument("--mode", choices=["add", "replace"], default="add")
    im.add_argument("--dry-run", action="store_true", help="show what would change; apply nothing")
    im.add_argument("--config", "-c")
    bk = sub.add_parser("backup", help="snapshots of the permission state")
    bks = bk.add_subparsers(dest="backupcmd", required=True)
    bl = bks.add_parser("list", help="list backups, newest first")
    bl.add_argument("--config", "-c")
    bsh = bks.add_parser("show", help="print one backup as JSON")
    bsh.add_argument("id", type=int)
    bsh.add_argument("--config", "-c")
    sc = sub.add_parser("schedule", help="what is due next, overdue and failed (due work)")
    sc.add_argument("--limit", type=int, default=20, help="rows to list (default %(default)s)")
    sc.add_argument("--config", "-c")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "config":
        try:
            s = load_settings(args.file)
        except ConfigError as e:
            print(f"{args.file or 'configuration'}: {len(e.problems)} problem(s):")
            for prob in e.problems:
                print(f"  - {prob}")
            return 1
        warn = [] if s.dingtalk.has_credentials else [
            "no DingTalk credentials in the environment (DINGTALK_CLIENT_ID / "
            "DINGTALK_CLIENT_SECRET): `baton run` will refuse to start"]
        print(f"{args.file or 'configuration'}: OK")
        for w in warn:
            print(f"  note: {w}")
        return 0
    if args.cmd == "sandbox":
        from bot.cli.sandbox import run_sandbox

        return asyncio.run(run_sandbox(args))
    settings = _settings(getattr(args, "config", None))
    if args.cmd == "run":
        return asyncio.run(_run(settings))
    if args.cmd == "db":
        return asyncio.run(_db_upgrade(settings))
    if args.cmd == "init":
        return asyncio.run(_init(settings, args.owner, args.admin))
    if args.cmd == "export":
        from bot.cli.bulk import export_file

        return asyncio.run(export_file(settings, args.file, args.format))
    if args.cmd == "import":
        from bot.cli.bulk import import_file

        return asyncio.run(import_file(settings, args.file, args.mode, args.dry_run))
    if args.cmd == "schedule":
        from bot.cli.schedule import show_schedule

        return asyncio.run(show_schedule(settings, args.limit))
    if args.cmd == "backup":
        return asyncio.run(_backup(settings, getattr(args, "id", None)))
    if args.cmd == "audit" and args.auditcmd == "export":
        return asyncio.run(_audit_export(settings, args))
    if args.cmd == "audit":
        return asyncio.run(_audit_verify(settings))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
