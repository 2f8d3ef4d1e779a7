"""The real ``baton`` command in a subprocess: refusal without credentials, migrations, the
first owner, the audit check, and a full ``baton run`` against the simulator ended by SIGTERM."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.cli.sandbox import DEMO_GROUP, demo_simulator
from dingtalk_sim import Simulator
from storage import migrate
from tests.e2e.helpers import base_env, baton, db_env

pytestmark = pytest.mark.e2e

def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_run_without_credentials_refuses_and_starts_nothing(tmp_path: Path) -> None:
    r = baton("run", cwd=tmp_path)
    assert r.returncode != 0
    assert "DINGTALK_CLIENT_ID" in r.stderr and "DINGTALK_CLIENT_SECRET" in r.stderr
    assert "Traceback" not in r.stderr
    assert "Sandbox" not in r.stdout and "simulated DingTalk" not in r.stdout
    assert list(tmp_path.iterdir()) == []  # no store, no sandbox database


def test_db_upgrade_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    head = migrate.head_revision()
    first = baton("db", "upgrade", cwd=tmp_path, env=db_env(path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"database at revision {head} (was None)"
    assert {"members", "audit_entries", "outbox", "processed_messages", "alembic_version"} <= (
        tables(path))
    second = baton("db", "upgrade", cwd=tmp_path, env=db_env(path))
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == f"database at revision {head}"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]


def test_init_sets_the_owner_once_and_audit_verify_checks_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "init.db"
    env = db_env(path)
    first = baton("init", "--owner", "zhangsan", "--admin", "lisi", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "owner set to zhangsan, admins: lisi"
    with sqlite3.connect(path) as conn:
        members = set(conn.execute("SELECT corp_id, user_id, level FROM members"))
    assert members == {("dingclitest", "zhangsan", "owner"), ("dingclitest", "lisi", "admin")}

    with ThreadPoolExecutor(2) as pool:  # independent reads: run them side by side
        again_f = pool.submit(baton, "init", "--owner", "wangwu", cwd=tmp_path, env=env)
        ok_f = pool.submit(baton, "audit", "verify", cwd=tmp_path, env=env)
        again, ok = again_f.result(), ok_f.result()
    assert again.returncode != 0
    assert "already has an owner" in again.stderr
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT user_id FROM members WHERE level='owner'").fetchall() == [
            ("zhangsan",)]

    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "audit chain verified"

    with sqlite3.connect(path) as conn:  # someone edits history behind Baton's back
        conn.execute("UPDATE audit_entries SET actor_id = 'mallory' WHERE seq = 1")
    bad = baton("audit", "verify", cwd=tmp_path, env=env)
    assert bad.returncode == 1
    assert "audit chain broken at entry #1" in bad.stderr


def test_export_with_only_the_database_url_exports_the_stores_corp(tmp_path: Path) -> None:
    """`baton export` with nothing but BATON_DATABASE__URL (no configuration, no DingTalk):
    the table of the corp the store holds, not a header without rows. A corp the store does
    not hold, or an empty store, is an error that says why and writes no file."""
    path = tmp_path / "export.db"
    seeded = baton("init", "--owner", "zhangsan", "--admin", "lisi", cwd=tmp_path,
                   env=db_env(path))
    assert seeded.returncode == 0, seeded.stderr
    only_url = {**base_env(), "BATON_DATABASE__URL": f"sqlite+aiosqlite:///{path}"}
    r = baton("export", "t.csv", cwd=tmp_path, env=only_url)
    assert r.returncode == 0, r.stderr
    assert "dingclitest" in r.stderr  # says which corp it took
    rows = (tmp_path / "t.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rows == ["user_id,name,type,value,expires_at,source",
                    "lisi,,level,admin,,", "zhangsan,,level,owner,,"]

    with ThreadPoolExecutor(2) as pool:  # two refusals, side by side
        other_f = pool.submit(baton, "export", "o.csv", cwd=tmp_path,
                              env={**only_url, "BATON_ORG__CORP_ID": "dingother"})
        empty_f = pool.submit(baton, "export", "e.xlsx", cwd=tmp_path, env={
            **base_env(), "BATON_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"})
        other, empty = other_f.result(), empty_f.result()
    assert other.returncode == 1
    assert "dingother" in other.stderr and "dingclitest" in other.stderr
    assert "BATON_ORG__CORP_ID" in other.stderr
    assert empty.returncode == 1
    assert "数据库中还没有任何成员或审计记录" in empty.stderr  # zh-CN, the default
    assert "Traceback" not in other.stderr + empty.stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(("o.csv", "e.xlsx"))]


def test_audit_and_backup_with_only_the_database_url_read_the_stores_corp(
        tmp_path: Path) -> None:
    """`baton audit verify`, `audit export` and `backup list` with nothing but
    BATON_DATABASE__URL read the corp the store holds (they verified, exported and listed
    corp ``default``'s nothing, exit 0). A corp the store does not hold is an error that says
    so; nothing is written."""
    path = tmp_path / "audit.db"
    assert baton("init", "--owner", "zhangsan", cwd=tmp_path, env=db_env(path)).returncode == 0
    with sqlite3.connect(path) as conn:  # a broken chain, to show verify reads this corp
        conn.execute("UPDATE audit_entries SET action = 'forged' WHERE corp_id = 'dingclitest'")
    only_url = {**base_env(), "BATON_DATABASE__URL": f"sqlite+aiosqlite:///{path}"}
    verify = baton("audit", "verify", cwd=tmp_path, env=only_url)
    assert verify.returncode == 1, verify.stdout
    assert "broken at entry" in verify.stderr and "dingclitest" in verify.stderr
    out = baton("audit", "export", "a.csv", cwd=tmp_path, env=only_url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("wrote 1 audit entries"), out.stdout
    other = {**only_url, "BATON_ORG__CORP_ID": "dingother"}
    for args in (("audit", "verify"), ("audit", "export", "b.csv"), ("backup", "list")):
        r = baton(*args, cwd=tmp_path, env=other)
        assert r.returncode == 1, (args, r.stdout)
        assert "dingother" in r.stderr and "dingclitest" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "b.csv").exists()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with demo_simulator() as s:
        yield s


def test_run_serves_the_simulator_and_stops_on_sigterm(sim: Simulator, tmp_path: Path) -> None:
    env = base_env()
    env.update({
        "DINGTALK_CLIENT_ID": sim.client_id,
        "DINGTALK_CLIENT_SECRET": sim.client_secret,
        "BATON_DINGTALK__OPENAPI_ENDPOINT": sim.base_url,
        "BATON_DINGTALK__OAPI_ENDPOINT": sim.base_url,
        "BATON_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
        "BATON_ORG__CORP_ID": sim.corp_id,
    })
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli.main", "run"], cwd=tmp_path,
                                env=env, stdout=out, stderr=err)
    try:
        sim.wait_for(lambda: [c for c in sim.connections() if c.live], timeout=30,
                     what="baton run to connect")
        assert proc.poll() is None
        n = len(sim.messages(DEMO_GROUP))
        sim.say("zhaoliu", " whoami", conversation_id=DEMO_GROUP)
        reply = sim.wait_for(
            lambda: [m.text for m in sim.messages(DEMO_GROUP)[n:] if "zhaoliu" in m.text],
            timeout=15, what="the answer to whoami")
        assert "member" in reply[0]
        # The owner came from the simulated DingTalk admin list on first start.
        n = len(sim.messages(DEMO_GROUP))
        sim.say("zhaoliu", " admins", conversation_id=DEMO_GROUP)
        admins = sim.wait_for(
            lambda: [m.text for m in sim.messages(DEMO_GROUP)[n:] if "Owner:" in m.text],
            timeout=15, what="the answer to admins")
        assert "zhangsan" in admins[0]

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
        sim.wait_for(lambda: all(not c.live for c in sim.connections()), timeout=5,
                     what="the stream socket to close")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    log = err_path.read_text(encoding="utf-8") + out_path.read_text(encoding="utf-8")
    assert "Traceback" not in log
    assert sim.client_secret not in log
    tickets = [r.query.get("ticket", "") for r in sim.requests("/connect")]
    assert tickets and all(t and t not in log for t in tickets)


def test_cli_import_audits_each_change_with_before_and_after(tmp_path: Path) -> None:
    """`baton import` records, like a chat import, what each entry was and became."""
    import asyncio
    import csv as csv_mod

    import yaml
    from sqlalchemy import select

    from bot.cli.sandbox import DEMO_CATALOG
    from storage.db import open_database
    from storage.models import AuditEntry

    path = tmp_path / "cli.db"
    env = db_env(path)
    cfg = tmp_path / "baton.yaml"
    cfg.write_text(yaml.safe_dump({"catalog": DEMO_CATALOG}, allow_unicode=True), encoding="utf-8")
    assert baton("db", "upgrade", "-c", str(cfg), cwd=tmp_path, env=env).returncode == 0
    until = datetime(2027, 1, 1, tzinfo=UTC)

    async def seed() -> None:
        db = open_database(f"sqlite+aiosqlite:///{path}")
        try:
            async with db.uow() as uow:
                now = datetime(2026, 12, 1, tzinfo=UTC)
                await uow.members.upsert("dingclitest", "alice", now, name="Alice")
                m = await uow.members.get("dingclitest", "alice")
                assert m is not None
                m.role = "sales"
                await uow.perms.grant("dingclitest", "alice", "crm.export", by="ops", now=now,
                                      expires_at=until)
                await uow.commit()
        finally:
            await db.dispose()

    asyncio.run(seed())
    table = tmp_path / "t.csv"
    with table.open("w", encoding="utf-8", newline="") as f:
        w = csv_mod.writer(f)
        w.writerow(["user_id", "name", "type", "value", "expires_at", "source"])
        w.writerow(["alice", "Alice", "role", "analyst", "", ""])
    r = baton("import", str(table), "--mode", "replace", "-c", str(cfg), cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr

    async def changes() -> list[tuple[Any, Any]]:
        db = open_database(f"sqlite+aiosqlite:///{path}")
        try:
            async with db.uow() as uow:
                rows = (await uow.session.execute(select(AuditEntry).where(
                    AuditEntry.action == "import.change").order_by(AuditEntry.seq))).scalars()
                return sorted(((a.before, a.after) for a in rows), key=repr)
        finally:
            await db.dispose()

    got = asyncio.run(changes())
    assert ({"kind": "grant", "value": "crm.export", "expires_at": until.isoformat()},
            {"op": "remove", "batch": "B-1"}) in got
    assert ({"kind": "role", "value": "sales", "expires_at": None},
            {"kind": "role", "value": "analyst", "expires_at": None, "op": "update",
             "batch": "B-1"}) in got
