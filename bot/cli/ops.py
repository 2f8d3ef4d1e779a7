"""The operator commands that act on the store or serve: ``baton run``, ``db upgrade``,
``init``, ``audit verify|export`` and ``backup list|show``. Each takes the settings and the
parsed arguments (``bot/cli/main.py`` looks them up by name when the command is given)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.app import BatonApp, NotConfigured, prepare_database
from bot.bootstrap import set_owner
from bot.cli.store import store_corp
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.logs import setup_logging
from storage import migrate
from storage.audit_export import Format, write_audit
from storage.db import open_database
from storage.snapshots import get_snapshot, list_snapshots


async def run(settings: Settings) -> int:
    setup_logging(settings.log.level, (settings.dingtalk.client_secret.get_secret_value(),),
                  json_format=settings.log.json_format)
    try:
        app = BatonApp(settings)
        async with app:
            # Everything built at start lives as long as the process (the permission index
            # with every member's resolved answer included): move it out of the collector's
            # sight, so a full collection under load scans only what is new (a 100+ ms
            # full GC is a 100+ ms stall of the event loop).
            await app.index.warmed()
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


async def db_upgrade(settings: Settings) -> int:
    db = open_database(settings.database.url)
    try:
        before = await migrate.current_revision(db)
        await migrate.upgrade(db)
        after = await migrate.current_revision(db)
    finally:
        await db.dispose()
    print(f"database at revision {after}" + ("" if before == after else f" (was {before})"))
    return 0


async def init(settings: Settings, owner: str, admins: list[str]) -> int:
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


async def audit_verify(settings: Settings) -> int:
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


def _zoned(at: datetime | None, tz: str) -> datetime | None:
    """A time without an offset is read in ``policy.timezone``, as the company reads its clock."""
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


async def audit_export(settings: Settings, args: argparse.Namespace) -> int:
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


async def backup(settings: Settings, snapshot_id: int | None) -> int:
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
