"""The decision API end to end: two real bots (as `baton run` builds them, API on port 0)
on one database (SQLite and PostgreSQL) and one simulator. A change made in the chat, on
whichever replica DingTalk hands the command to, is in the very next answer of *both*
replicas' APIs; whoami in the chat answers from the same index; a revoked token is refused
by both on the next request; the CLI makes and revokes tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import BatonApp
from bot.cli.sandbox import sim_settings
from bot.cli.tokens import new_token
from bot.core.domain.tokens import token_hash
from dingtalk_sim import Simulator
from tests.e2e.conftest import GROUP
from tests.e2e.helpers import baton, db_env, say

pytestmark = pytest.mark.e2e


@pytest.fixture
async def replicas(sim: Simulator, db_url: str) -> AsyncIterator[list[BatonApp]]:
    apps: list[BatonApp] = []
    try:
        for _ in range(2):
            app = BatonApp(sim_settings(sim, db_url, api={"port": 0}))
            await app.__aenter__()
            apps.append(app)
            await app.wait_connected()
        yield apps
    finally:
        for app in reversed(apps):
            await asyncio.wait_for(app.__aexit__(None, None, None), 60)


async def make_token(app: BatonApp, name: str = "crm") -> str:
    raw = new_token()
    async with app.db.uow() as uow:
        assert await uow.tokens.create(app.settings.org.corp_id, name, "read", token_hash(raw),
                                       by="test", now=app.clock.now())
        await uow.commit()
    return raw


async def check(http: aiohttp.ClientSession, app: BatonApp, token: str, user: str,
                perm: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    async with http.get(f"http://127.0.0.1:{app.api.port}/v1/check",
                        params={"user": user, "permission": perm, **extra},
                        headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


async def test_a_chat_change_is_in_the_next_answer_of_every_replica(
        sim: Simulator, replicas: list[BatonApp]) -> None:
    token = await make_token(replicas[0])
    async with aiohttp.ClientSession() as http:
        for app in replicas:
            status, body = await check(http, app, token, "zhaoliu", "crm.report.view")
            assert status == 200 and body["allowed"] is False
        for round_ in range(3):
            # Whichever replica took the command, both answer with it at once.
            await say(sim, "lisi", "授权 @赵六 crm.report.view", "已授予", ("zhaoliu",))
            seen = []
            for app in replicas:
                status, body = await check(http, app, token, "zhaoliu", "crm.report.view")
                assert status == 200 and body["allowed"] is True, (round_, body)
                assert body["sources"] == [{"kind": "grant", "name": "crm.report.view",
                                            "expires_at": None}]
                seen.append(body["as_of"])
            text = await say(sim, "zhaoliu", "我的权限", "我的权限")
            assert "crm.report.view" in text
            await say(sim, "lisi", "撤销 @赵六 crm.report.view", "已撤销", ("zhaoliu",))
            for app in replicas:
                # at_least: an as_of seen on one replica, asked of the other.
                status, body = await check(http, app, token, "zhaoliu", "crm.report.view",
                                           at_least=max(seen))
                assert status == 200 and body["allowed"] is False and body["as_of"] > max(seen)
            text = await say(sim, "zhaoliu", "我的权限", "我的权限")
            assert "crm.report.view" not in text
        # Revoked on one replica: both refuse it on the next request.
        async with replicas[1].db.uow() as uow:
            assert await uow.tokens.revoke(replicas[1].settings.org.corp_id, "crm",
                                           replicas[1].clock.now())
            await uow.commit()
        for app in replicas:
            status, body = await check(http, app, token, "zhaoliu", "crm.report.view")
            assert status == 401 and body["error"] == "unauthorized"
    assert sim.messages(GROUP)


def test_token_cli_creates_lists_and_revokes_with_an_audit(tmp_path: Path) -> None:
    env = db_env(tmp_path / "t.db")
    made = baton("token", "create", "--name", "crm", cwd=Path.cwd(), env=env)
    assert made.returncode == 0, made.stderr
    raw = made.stdout.strip().splitlines()[-1]
    assert raw.startswith("baton_") and len(raw) > 40
    again = baton("token", "create", "--name", "crm", cwd=Path.cwd(), env=env)
    assert again.returncode == 1 and "active already" in again.stderr
    bad = baton("token", "create", "--name", "no spaces", cwd=Path.cwd(), env=env)
    assert bad.returncode == 2 and "token name" in bad.stderr
    listed = baton("token", "list", cwd=Path.cwd(), env=env)
    assert "crm" in listed.stdout and "active" in listed.stdout and raw not in listed.stdout
    gone = baton("token", "revoke", "crm", cwd=Path.cwd(), env=env)
    assert gone.returncode == 0 and "revoked" in gone.stdout
    assert baton("token", "revoke", "crm", cwd=Path.cwd(), env=env).returncode == 1
    assert "revoked" in baton("token", "list", cwd=Path.cwd(), env=env).stdout
    audit = baton("audit", "export", str(tmp_path / "a.csv"), cwd=Path.cwd(), env=env)
    assert audit.returncode == 0, audit.stderr
    text = (tmp_path / "a.csv").read_text()
    assert "api_token.create" in text and "api_token.revoke" in text and raw not in text
    # Stored as a hash only.
    assert raw.encode() not in (tmp_path / "t.db").read_bytes()
