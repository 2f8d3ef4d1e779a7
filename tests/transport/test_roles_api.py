"""The role label APIs, client against simulator over loopback HTTP: find and create, paged
member reads, the 20-a-call limit, and a refusal for a missing permission as a typed error."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import aiohttp
import pytest
from pydantic import SecretStr

from bot.config import DingTalkSettings
from bot.transport.openapi import BadRequest, OpenApiClient, PermissionDenied
from dingtalk_sim import Simulator, SimUser
from dingtalk_sim.roles import ADD_EMPS_PATH, LIST_PATH, MEMBERS_PATH

USERS = [SimUser(f"u{i:03}", f"U{i}") for i in range(250)]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(users=USERS) as s:
        yield s


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[OpenApiClient]:
    async def no_sleep(_: float) -> None:
        return None

    async with aiohttp.ClientSession(trust_env=False) as http:
        yield OpenApiClient(http, DingTalkSettings(
            client_id=sim.client_id, client_secret=SecretStr(sim.client_secret),
            openapi_endpoint=sim.base_url, oapi_endpoint=sim.base_url),
            sleep=no_sleep, rng=random.Random(1))


async def test_groups_roles_and_paged_members(sim: Simulator, client: OpenApiClient) -> None:
    groups = await client.role_groups()
    assert [g.name for g in groups] == ["默认"]                 # a new corp's default group
    gid = await client.add_role_group("Baton")
    rid = await client.add_role(gid, "销售")
    found = next(g for g in await client.role_groups() if g.name == "Baton")
    assert found.group_id == gid and found.role_id("销售") == rid
    ids = [u.user_id for u in USERS]
    for i in range(0, len(ids), 20):
        await client.add_roles_for_users([rid], ids[i:i + 20])
    assert sim.role_calls(ADD_EMPS_PATH) == 13
    before = sim.role_calls(MEMBERS_PATH)
    assert await client.role_members(rid) == ids                # 250: three pages of 100
    assert sim.role_calls(MEMBERS_PATH) - before == 3
    await client.remove_roles_for_users([rid], ids[:20])
    assert sim.role_holders("Baton", "销售") == ids[20:]
    with pytest.raises(BadRequest) as e:
        await client.add_role_group("Baton")
    assert e.value.code == "33013"
    with pytest.raises(BadRequest) as e:
        await client.oapi(ADD_EMPS_PATH, {"roleIds": str(rid), "userIds": ",".join(ids[:21])})
    assert e.value.code == "33012"
    with pytest.raises(BadRequest) as e:
        await client.add_roles_for_users([rid], ["nobody"])
    assert e.value.code == "33012"
    assert client.calls[LIST_PATH] == 2 and client.metered_month     # counted, by API


async def test_a_refusal_for_a_permission_is_typed_and_not_retried(
        sim: Simulator, client: OpenApiClient) -> None:
    sim.deny_roles()
    with pytest.raises(PermissionDenied) as e:
        await client.role_groups()
    assert e.value.code == "60011" and "qyapi_manage_addresslist" in e.value.message
    assert len(sim.requests(LIST_PATH)) == 1 and client.retries == 0
    sim.deny_roles(False)
    assert await client.role_groups()


async def test_the_month_of_a_call_is_the_injected_clock_s(sim: Simulator) -> None:
    """The budget month comes from the clock the client is given (the bot's), not the
    machine's: a sandbox or a test clock counts its calls in its own month."""
    async def no_sleep(_: float) -> None:
        return None

    async with aiohttp.ClientSession(trust_env=False) as http:
        client = OpenApiClient(http, DingTalkSettings(
            client_id=sim.client_id, client_secret=SecretStr(sim.client_secret),
            openapi_endpoint=sim.base_url, oapi_endpoint=sim.base_url),
            sleep=no_sleep, rng=random.Random(1),
            now=lambda: datetime(2031, 2, 28, 23, 59, tzinfo=UTC))
        await client.role_groups()
    assert client.metered_month == {"2031-02": 1}
