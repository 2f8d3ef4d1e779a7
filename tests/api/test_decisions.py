"""The decision API over real HTTP (aiohttp's test server on port 0; our own HTTP, no
DingTalk), on SQLite and PostgreSQL: answers, tokens, bad input, paging, rate limits,
freshness (a change committed through another database connection, as another replica
would, is in the very next answer) and the OpenAPI description covering every route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.api.decisions import OPENAPI, DecisionApi, encode_cursor
from bot.cli.sandbox import DEMO_CATALOG
from bot.config import Settings
from bot.core.clock import FakeClock
from bot.core.domain.tokens import token_hash
from storage.db import Database, open_database

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CORP = "dingsandboxcorp"
TOKEN = "baton_" + "t" * 43


def settings(url: str, **api: Any) -> Settings:
    data = Settings().model_dump()
    data["database"]["url"] = url
    data["org"]["corp_id"] = CORP
    data["catalog"] = DEMO_CATALOG
    data["api"].update({"port": 0, **api})
    return Settings.model_validate(data)


class Tick:
    """A monotonic clock moved by hand (the rate limiter and token cache read it)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def write(db: Database, fn: Callable[[Any], Any], action: str = "grant.apply",
                target: str | None = None) -> None:
    async with db.uow() as uow:
        await fn(uow)
        await uow.audit.append(CORP, NOW, actor_id="t", action=action, result="applied",
                               target_id=target)
        await uow.commit()


async def seed(db: Database) -> None:
    async with db.uow() as uow:
        await uow.members.upsert(CORP, "zhangsan", NOW, level="owner")
        for i in range(12):
            await uow.members.upsert(CORP, f"m{i:02d}", NOW)
            await uow.perms.grant(CORP, f"m{i:02d}", "crm.report.view", by="zhangsan",
                                  now=NOW, expires_at=None)
        m = await uow.members.upsert(CORP, "mia", NOW)
        await uow.members.set_role(m, "sales", NOW)
        await uow.perms.grant(CORP, "mia", "crm.export", by="zhangsan", now=NOW,
                              expires_at=NOW + timedelta(days=3))
        await uow.tokens.create(CORP, "crm", "read", token_hash(TOKEN), by="t", now=NOW)
        await uow.commit()


class Api:
    def __init__(self, api: DecisionApi, client: TestClient[Any, Any], clock: FakeClock,
                 tick: Tick) -> None:
        self.api, self.client, self.clock, self.tick = api, client, clock, tick

    async def get(self, path: str, token: str | None = TOKEN, **params: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.client.get(path, params=params, headers=headers) as r:
            assert r.content_type == "application/json"
            return r.status, await r.json()


@pytest.fixture
async def make(db: Database, db_url: str) -> AsyncIterator[Callable[..., Any]]:
    await seed(db)
    made: list[TestClient[Any, Any]] = []

    async def build(**api: Any) -> Api:
        clock, tick = FakeClock(NOW), Tick()
        d = DecisionApi(db, settings(db_url, **api), clock, monotonic=tick)
        client = TestClient(TestServer(d.web_app()))
        await client.start_server()
        made.append(client)
        return Api(d, client, clock, tick)

    yield build
    for c in made:
        await c.close()


async def test_check_answers_with_sources_expiry_and_as_of(make: Any) -> None:
    a = await make()
    status, body = await a.get("/v1/check", user="mia", permission="crm.export")
    assert status == 200 and body["allowed"] is True
    assert body["sources"] == [{"kind": "grant", "name": "crm.export",
                                "expires_at": (NOW + timedelta(days=3)).isoformat()}]
    assert body["expires_at"] == (NOW + timedelta(days=3)).isoformat()
    assert body["as_of"] == a.api.keeper.as_of
    status, body = await a.get("/v1/check", user="mia", permission="crm.customer.edit")
    assert body["allowed"] and body["sources"][0] == {"kind": "role", "name": "sales",
                                                      "expires_at": None}
    # The owner holds every catalog permission (the same resolution as whoami).
    _, body = await a.get("/v1/check", user="zhangsan", permission="finance.invoice")
    assert body["allowed"] and body["sources"][0]["kind"] == "level"
    # A time-bound grant stops counting at its expiry, before any expiry event.
    a.clock.advance(timedelta(days=3))
    _, body = await a.get("/v1/check", user="mia", permission="crm.export")
    assert body["allowed"] is False and body["sources"] == [] and body["expires_at"] is None


async def test_an_unknown_user_looks_exactly_like_a_member_holding_nothing(make: Any) -> None:
    a = await make()
    async with a.api.db.uow() as uow:
        await uow.members.upsert(CORP, "bare", NOW)
        await uow.commit()
    _, known = await a.get("/v1/check", user="bare", permission="crm.export")
    _, ghost = await a.get("/v1/check", user="ghost", permission="crm.export")
    assert {**known, "user": "x"} == {**ghost, "user": "x"}
    _, known = await a.get("/v1/users/bare/permissions")
    _, ghost = await a.get("/v1/users/ghost/permissions")
    assert known["permissions"] == ghost["permissions"] == []


async def test_user_permissions_lists_each_with_sources(make: Any) -> None:
    a = await make()
    status, body = await a.get("/v1/users/mia/permissions")
    assert status == 200
    got = {p["permission"]: p for p in body["permissions"]}
    assert set(got) == {"crm.customer.view", "crm.customer.edit", "crm.export"}
    assert got["crm.customer.view"]["expires_at"] is None


async def test_no_wrong_or_revoked_token_gets_401_json(make: Any, db_url: str) -> None:
    a = await make()
    for token in (None, "nonsense", "baton_" + "x" * 43):
        status, body = await a.get("/v1/check", token=token, user="mia", permission="crm.export")
        assert status == 401 and body["error"] == "unauthorized" and body["message"]
    lookups = a.api.token_lookups
    for _ in range(3):
        status, _ = await a.get("/v1/check", user="mia", permission="crm.export")
        assert status == 200
    assert a.api.token_lookups == lookups + 1      # verified once, then from the cache
    # Revoked through another connection pool, as another replica (or the CLI) would.
    other = open_database(db_url)
    try:
        async with other.uow() as uow:
            assert await uow.tokens.revoke(CORP, "crm", NOW)
            await uow.commit()
    finally:
        await other.dispose()
    status, body = await a.get("/v1/check", user="mia", permission="crm.export")
    assert status == 401 and "revoked" in body["message"]


async def test_bad_input_gets_a_clear_4xx_json_error(make: Any) -> None:
    a = await make()
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("/v1/check", {"permission": "crm.export"}, 400, "bad_query"),
        ("/v1/check", {"user": "mia"}, 400, "bad_query"),
        ("/v1/check", {"user": "mia", "permission": "crm.exprt"}, 400, "unknown_permission"),
        ("/v1/check", {"user": "mia", "permission": "sales"}, 400, "unknown_permission"),
        ("/v1/check", {"user": "m" * 65, "permission": "crm.export"}, 400, "bad_query"),
        ("/v1/check", {"user": "mia", "permission": "crm.export", "at_least": "x"}, 400,
         "bad_query"),
        ("/v1/permissions/nope/holders", {}, 400, "unknown_permission"),
        ("/v1/permissions/crm.report.view/holders", {"limit": "0"}, 400, "bad_query"),
        ("/v1/permissions/crm.report.view/holders", {"limit": "abc"}, 400, "bad_query"),
        ("/v1/permissions/crm.report.view/holders", {"cursor": "!!"}, 400, "bad_cursor"),
        ("/v1/permissions/crm.report.view/holders", {"cursor": "bWlh"}, 400, "bad_cursor"),
        ("/v1/events", {"after": "-1"}, 400, "bad_query"),
        ("/v1/nothing", {}, 404, "not_found"),
    ]
    for path, params, want, code in cases:
        status, body = await a.get(path, **params)
        assert (status, body["error"]) == (want, code), (path, params, body)
        assert body["message"]
    _, body = await a.get("/v1/check", user="mia", permission="crm.exprt")
    assert body["did_you_mean"][0] == "crm.export"


async def test_holders_page_through_and_past_the_end(make: Any) -> None:
    a = await make()
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        status, body = await a.get("/v1/permissions/crm.report.view/holders", **params)
        assert status == 200
        pages += 1
        seen += [h["user"] for h in body["holders"]]
        cursor = body.get("next_cursor")
        if cursor is None:
            break
    # 12 grantees and the owner, in user id order, 5 a page.
    assert seen == sorted([f"m{i:02d}" for i in range(12)] + ["zhangsan"]) and pages == 3
    status, body = await a.get("/v1/permissions/crm.report.view/holders",
                               cursor=encode_cursor("zzz"))
    assert status == 200 and body["holders"] == [] and "next_cursor" not in body


async def test_a_change_committed_elsewhere_is_in_the_next_answer(make: Any, db_url: str) -> None:
    a = await make()
    _, body = await a.get("/v1/check", user="m00", permission="finance.invoice")
    assert body["allowed"] is False
    first = body["as_of"]
    other = open_database(db_url)       # another replica's connection pool
    try:
        for n in range(5):              # change and read back at once, several times
            user = f"m{n:02d}"
            await write(other, lambda uow, u=user: uow.perms.grant(
                CORP, u, "finance.invoice", by="t", now=NOW, expires_at=None), target=user)
            _, body = await a.get("/v1/check", user=user, permission="finance.invoice")
            assert body["allowed"] is True and body["as_of"] == first + 2 * n + 1
            await write(other, lambda uow, u=user: uow.perms.revoke(CORP, u, "finance.invoice"),
                        action="grant.revoke", target=user)
            _, body = await a.get("/v1/check", user=user, permission="finance.invoice")
            assert body["allowed"] is False
            assert body["as_of"] == first + 2 * n + 2
    finally:
        await other.dispose()


async def test_at_least_waits_for_the_sequence_or_says_503(make: Any, db: Database) -> None:
    a = await make(max_wait=30)
    _, body = await a.get("/v1/check", user="m01", permission="finance.invoice")
    target = body["as_of"] + 1
    waiting = asyncio.ensure_future(a.get("/v1/check", user="m01", permission="finance.invoice",
                                          at_least=target))
    await asyncio.sleep(0)
    await write(db, lambda uow: uow.perms.grant(CORP, "m01", "finance.invoice", by="t",
                                                now=NOW, expires_at=None), target="m01")
    status, body = await waiting
    assert status == 200 and body["as_of"] >= target and body["allowed"] is True
    b = await make(max_wait="1s")
    status, body = await b.get("/v1/check", user="m01", permission="finance.invoice",
                               at_least=target + 1000)
    assert status == 503 and body["error"] == "not_fresh" and body["at_least"] == target + 1000


async def test_each_token_has_a_rate_limit_with_retry_after(make: Any) -> None:
    a = await make(rate_per_second=1, burst=2)
    statuses = [(await a.get("/v1/users/mia/permissions"))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    async with a.client.get("/v1/users/mia/permissions",
                            headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 429 and r.headers["Retry-After"] == "1"
        assert (await r.json())["error"] == "rate_limited"
    a.tick.t += 1.0
    assert (await a.get("/v1/users/mia/permissions"))[0] == 200
    # Wrong tokens from one peer share a bucket too (each costs a store read).
    wrong = "baton_" + "w" * 43
    statuses = [(await a.get("/v1/users/mia/permissions", token=wrong))[0] for _ in range(3)]
    assert statuses == [401, 401, 429]


async def test_events_page_the_feed_and_say_410_past_retention(make: Any, db: Database) -> None:
    a = await make()
    for u in ("m01", "m02", "m03"):
        await write(db, lambda uow, u=u: uow.perms.grant(CORP, u, "crm.export", by="t",
                                                         now=NOW, expires_at=None), target=u)
    status, body = await a.get("/v1/events", after=0, limit=2)
    assert status == 200 and [e["seq"] for e in body["events"]] == [1, 2]
    assert body["events"][0]["type"] == "grant.added" and body["next_after"] == 2
    _, body = await a.get("/v1/events", after=2)
    assert [e["seq"] for e in body["events"]] == [3]
    _, body = await a.get("/v1/events", after=3)
    assert body["events"] == [] and body["next_after"] == 3
    async with db.uow() as uow:
        await uow.feed.purge_before(NOW + timedelta(seconds=1))
        await uow.commit()
    await write(db, lambda uow: uow.perms.grant(CORP, "m04", "crm.export", by="t", now=NOW,
                                                expires_at=None), target="m04")
    status, body = await a.get("/v1/events", after=0)
    assert status == 410 and body["error"] == "gone" and body["oldest"] == 4


async def test_openapi_describes_every_served_route(make: Any) -> None:
    a = await make()
    async with a.client.get("/v1/openapi.json") as r:      # no token needed
        assert r.status == 200
        doc = await r.json()
    assert doc == OPENAPI
    served = {(res.canonical, route.method.lower())
              for res in a.client.server.app.router.resources() for route in res}
    described = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert served == described
