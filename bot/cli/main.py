"""The ``baton`` command: the argument parser and a table from each command to the function
that carries it out. A command's module is imported when that command is given (the one
deliberate late import here), so ``baton --help`` and ``baton config check`` do not load the
bot, the SDK and the store."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any

from bot.config import ConfigError, Settings, load_settings


def _settings(path: str | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as e:
        print("The configuration has problems:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        raise SystemExit(2) from None


def _iso_time(value: str) -> datetime:
    """An ISO 8601 date or time for --since / --until (naive: local, see :func:`_zoned`)."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO date or time, e.g. 2026-03-01 or 2026-03-01T08:00+08:00"
        ) from None


# command -> (module, function, the function's arguments after the settings)
COMMANDS: dict[str, tuple[str, str, Callable[[argparse.Namespace], tuple[Any, ...]]]] = {
    "run": ("bot.cli.ops", "run", lambda a: ()),
    "db": ("bot.cli.ops", "db_upgrade", lambda a: ()),
    "init": ("bot.cli.ops", "init", lambda a: (a.owner, a.admin)),
    "audit verify": ("bot.cli.ops", "audit_verify", lambda a: ()),
    "audit export": ("bot.cli.ops", "audit_export", lambda a: (a,)),
    "backup": ("bot.cli.ops", "backup", lambda a: (getattr(a, "id", None),)),
    "export": ("bot.cli.bulk", "export_file", lambda a: (a.file, a.format)),
    "import": ("bot.cli.bulk", "import_file", lambda a: (a.file, a.mode, a.dry_run)),
    "import-undo": ("bot.cli.bulk", "undo_batch", lambda a: (a.batch,)),
    "schedule": ("bot.cli.schedule", "show_schedule", lambda a: (a.limit,)),
    "webhooks list": ("bot.cli.webhooks", "webhooks_list", lambda a: ()),
    "webhooks replay": ("bot.cli.webhooks", "webhooks_replay", lambda a: (a.name, a.start)),
    "token": ("bot.cli.tokens", "token", lambda a: (a.tokencmd, getattr(a, "name", None),
                                                     getattr(a, "scope", "read"))),
}


def _command(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


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
    sb.add_argument("--org-size", type=int, default=0, metavar="N",
                    help="also seed a large demo organisation of N members (e.g. 10000): "
                         "departments, roles, templates and grants, in the simulated "
                         "directory too")
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
    un = sub.add_parser("import-undo", help="roll an import batch back (all or nothing)")
    un.add_argument("batch", help="the batch id, e.g. B-7")
    un.add_argument("--config", "-c")
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
    wh = sub.add_parser("webhooks", help="the change feed's webhook subscribers")
    whs = wh.add_subparsers(dest="webhookscmd", required=True)
    wl = whs.add_parser("list", help="each subscriber's cursor, lag, state and last error")
    wl.add_argument("--config", "-c")
    wr = whs.add_parser("replay", help="resume a subscriber from a sequence number (audited)")
    wr.add_argument("name", help="the webhook's name in integrations.webhooks")
    wr.add_argument("--from", dest="start", type=int, required=True,
                    help="the first event to send again (its seq; see `baton webhooks list`)")
    wr.add_argument("--config", "-c")
    tk = sub.add_parser("token", help="bearer tokens of the decision API (api.port)")
    tks = tk.add_subparsers(dest="tokencmd", required=True)
    tc = tks.add_parser("create", help="make a token (shown once; stored only as a hash)")
    tc.add_argument("--name", required=True, help="who uses it, e.g. crm")
    tc.add_argument("--scope", choices=["read"], default="read",
                    help="what it may do (default %(default)s: every GET of /v1)")
    tc.add_argument("--config", "-c")
    tl = tks.add_parser("list", help="the tokens, active and revoked (never the tokens)")
    tl.add_argument("--config", "-c")
    tr = tks.add_parser("revoke", help="end a token at once, on every replica")
    tr.add_argument("name")
    tr.add_argument("--config", "-c")
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
        run_sandbox: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = _command(
            "bot.cli.sandbox", "run_sandbox")
        gc.freeze()
        return asyncio.run(run_sandbox(args))
    key = f"{args.cmd} {getattr(args, 'auditcmd', '') or getattr(args, 'webhookscmd', '')}".strip()
    if key not in COMMANDS:
        return 2
    module, name, arguments = COMMANDS[key]
    settings = _settings(getattr(args, "config", None))
    command: Callable[..., Coroutine[Any, Any, int]] = _command(module, name)
    # What is loaded by now lives as long as the process: kept out of the collector's sight,
    # so large work (a 100,000-row import) is not slowed by re-scanning it (2-3x at that size).
    gc.freeze()
    return asyncio.run(command(settings, *arguments(args)))


if __name__ == "__main__":
    raise SystemExit(main())
