"""The handler layer's in-process DingTalk (tests/handlers/conftest.py: FakeDingTalk) answers
as the loopback simulator does through the real OpenApiClient: the same directory (users,
admins, departments), the same typed errors, the same main-administrator change. If the
simulator or the client changes what handlers see, this fails before a handler test can
pass on a fake that no longer tells the truth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from bot.cli.sandbox import DEMO_USERS, demo_simulator
from bot.transport.openapi import DingTalkError, OpenApiClient
from dingtalk_sim import Simulator
from tests.handlers.conftest import FakeDingTalk
from tests.transport.outbox_support import make_client


@pytest.fixture(params=[False, True], ids=["console", "exclusive"])
def exclusive(request: pytest.FixtureRequest) -> bool:
    """Whether the company has exclusive accounts (the main-admin API is allowed)."""
    return bool(request.param)


@pytest.fixture
def sim(exclusive: bool) -> Iterator[Simulator]:
    with demo_simulator(exclusive_accounts=exclusive) as s:
        yield s


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[OpenApiClient]:
    async with aiohttp.ClientSession(trust_env=False) as http:
        yield make_client(sim, http)


@pytest.fixture
def fake(sim: Simulator, exclusive: bool) -> FakeDingTalk:
    return FakeDingTalk(corp_id=sim.corp_id, exclusive_accounts=exclusive)


async def outcome(call: Callable[[], Awaitable[Any]]) -> Any:
    """The answer, or the error as (type, code)."""
    try:
        return await call()
    except DingTalkError as e:
        return (type(e).__name__, e.code)


def same_keys(real: Any, fake: Any) -> Any:
    """The real answer cut to the keys the fake gives (handlers read only those)."""
    if isinstance(real, dict) and isinstance(fake, dict):
        return {k: same_keys(real.get(k), v) for k, v in fake.items()}
    if isinstance(real, list) and isinstance(fake, list) and len(real) == len(fake):
        return [same_keys(r, f) for r, f in zip(real, fake, strict=True)]
    return real


USERS = [u.user_id for u in DEMO_USERS] + ["nobody", ""]


@pytest.mark.parametrize("user_id", USERS)
async def test_user_get_matches(client: OpenApiClient, fake: FakeDingTalk, user_id: str) -> None:
    real = await outcome(lambda: client.user_get(user_id))
    mine = await outcome(lambda: fake.user_get(user_id))
    if user_id == "":
        # DingTalk refuses a missing userid as a bad request; Baton never asks for one.
        assert real[0] == "BadRequest" and mine == ("NotFound", "60121")
        return
    assert same_keys(real, mine) == mine


async def test_admins_and_departments_match(client: OpenApiClient, fake: FakeDingTalk) -> None:
    assert await client.list_admins() == await fake.list_admins()
    for dept in (1, 2, 3, 99):
        assert await outcome(lambda d=dept: client.dept_get(d)) == \
            await outcome(lambda d=dept: fake.dept_get(d))
        assert await outcome(lambda d=dept: client.dept_children(d)) == \
            await outcome(lambda d=dept: fake.dept_children(d))
        assert sorted(await outcome(lambda d=dept: client.dept_user_ids(d)) or []) == \
            sorted(await outcome(lambda d=dept: fake.dept_user_ids(d)) or [])


@pytest.mark.parametrize(("source", "target"), [
    ("zhangsan", "lisi"), ("lisi", "wangwu"), ("zhangsan", "nobody")])
async def test_main_admin_change_matches(sim: Simulator, client: OpenApiClient,
                                         fake: FakeDingTalk, source: str, target: str) -> None:
    real = await outcome(lambda: client.change_main_admin(source, target, sim.corp_id))
    mine = await outcome(lambda: fake.change_main_admin(source, target, sim.corp_id))
    assert real == mine
    assert await client.list_admins() == await fake.list_admins()


async def test_todos_match(sim: Simulator, client: OpenApiClient, fake: FakeDingTalk) -> None:
    """A to-do created in a member's list by unionId, then marked done; an unknown task is
    the same refusal on both sides."""
    union = (await client.user_get("lisi"))["unionid"]
    assert union == (await fake.user_get("lisi"))["unionid"] == sim.union_id("lisi")
    task = await client.create_todo(union, "审批 R-1", "理由", "baton-x-R-1-lisi")
    mine = await fake.create_todo(union, "审批 R-1", "理由", "baton-x-R-1-lisi")
    [todo] = sim.todos().values()
    assert (todo.task_id, todo.union_id, todo.subject, todo.done) == (task, union, "审批 R-1",
                                                                      False)
    assert todo.executor_ids == (union,) and todo.source_id == "baton-x-R-1-lisi"
    await client.complete_todo(union, task)
    await fake.complete_todo(union, mine)
    assert sim.todos()[task].done and fake.todos[mine]["done"]
    assert await outcome(lambda: client.complete_todo(union, "task99")) == \
        await outcome(lambda: fake.complete_todo(union, "task99")) == \
        ("BadRequest", "todo.task.notExist")
