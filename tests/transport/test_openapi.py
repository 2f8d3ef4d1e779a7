"""OpenApiClient against the loopback simulator: token cache and refresh, retries and
backoff (asserted through a recording ``sleep``, never waited), typed errors, call counts,
and files both ways."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.cli.sandbox import DEMO_GROUP, demo_simulator
from bot.config import DingTalkSettings
from bot.transport.openapi import (
    AuthError,
    NotFound,
    OpenApiClient,
    PermissionDenied,
    RateLimited,
    ServerError,
    SessionExpired,
    TransportError,
)
from dingtalk_sim import Simulator
from dingtalk_sim.state import SESSION_TTL

TOKEN = "/v1.0/oauth2/accessToken"
GROUP_SEND = "/v1.0/robot/groupMessages/send"
USER_GET = "/topapi/v2/user/get"
WEBHOOK = "/robot/sendBySession"


class Sleeps:
    """A fake ``sleep`` that records what it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with demo_simulator() as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        yield session


def settings_for(sim: Simulator, **kw: Any) -> DingTalkSettings:
    return DingTalkSettings(
        client_id=sim.client_id, client_secret=SecretStr(sim.client_secret),
        openapi_endpoint=sim.base_url, oapi_endpoint=sim.base_url, **kw,
    )


MakeClient = Callable[..., OpenApiClient]


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sim: Simulator, http: aiohttp.ClientSession, sleeps: Sleeps) -> MakeClient:
    def make(s: Simulator | None = None, *, monotonic: Callable[[], float] | None = None,
             **kw: Any) -> OpenApiClient:
        extra: dict[str, Any] = {"monotonic": monotonic} if monotonic else {}
        return OpenApiClient(http, settings_for(s or sim, **kw), sleep=sleeps,
                             rng=random.Random(7), **extra)
    return make


def tokens_fetched(sim: Simulator) -> int:
    return len(sim.requests(TOKEN))


def header_tokens(sim: Simulator, path: str) -> list[str]:
    return [r.headers.get("x-acs-dingtalk-access-token", "") for r in sim.requests(path)]


def session_webhook(sim: Simulator, user: str = "zhaoliu") -> str:
    """A fresh sessionWebhook, as a message from ``user`` in the demo group carries it."""
    d = sim.say(user, " hi", conversation_id=DEMO_GROUP)
    return str(json.loads(d.frame["data"])["sessionWebhook"])


# --- token ------------------------------------------------------------------------------


async def test_token_fetched_once_and_cached(sim: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    assert (await client.user_get("lisi"))["name"] == "李四"
    await client.user_get("wangwu")
    await client.list_admins()
    await client.group_send(DEMO_GROUP, "sampleText", {"content": "x"})
    assert tokens_fetched(sim) == 1
    tok = await client.token()
    assert tokens_fetched(sim) == 1
    assert header_tokens(sim, GROUP_SEND) == [tok]
    assert [r.query.get("access_token") for r in sim.requests(USER_GET)] == [tok, tok]


async def test_concurrent_first_calls_fetch_the_token_once(
        sim: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    users = ["zhangsan", "lisi", "wangwu", "zhaoliu", "qianqi", "sunba"]
    results = await asyncio.gather(*(client.user_get(u) for u in users))
    assert [r["userid"] for r in results] == users
    assert tokens_fetched(sim) == 1


async def test_token_refreshed_before_its_expiry(sim: Simulator, make_client: MakeClient) -> None:
    mono = FakeMonotonic()
    client = make_client(monotonic=mono)
    await client.list_admins()
    # documented: refreshed five minutes before the 7200 s expiry
    mono.t += 6800
    await client.list_admins()
    assert tokens_fetched(sim) == 1
    mono.t += 200  # 7000 s: inside the last five minutes, fetched again before use
    await client.list_admins()
    assert tokens_fetched(sim) == 2


@pytest.mark.parametrize("status", [400, 401])
async def test_rejected_token_is_refreshed_exactly_once(
        http: aiohttp.ClientSession, sleeps: Sleeps, status: int) -> None:
    with demo_simulator(auth_error_status=status) as s:
        client = OpenApiClient(http, settings_for(s), sleep=sleeps, rng=random.Random(1))
        await client.group_send(DEMO_GROUP, "sampleText", {"content": "one"})
        old = await client.token()
        s.expire_tokens()
        await client.group_send(DEMO_GROUP, "sampleText", {"content": "two"})
        assert tokens_fetched(s) == 2
        new = await client.token()
        assert new != old
        # the refused call, then the same call again with the new token
        assert header_tokens(s, GROUP_SEND) == [old, old, new]
        assert [m.text for m in s.messages(DEMO_GROUP)] == ["one", "two"]
        assert sleeps.calls == []  # a refresh is not a backoff


async def test_legacy_token_rejection_88_40014_is_refreshed_once(
        sim: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    await client.user_get("lisi")
    old = await client.token()
    sim.expire_tokens()
    assert (await client.user_get("wangwu"))["name"] == "王五"
    new = await client.token()
    assert tokens_fetched(sim) == 2 and new != old
    assert [r.query.get("access_token") for r in sim.requests(USER_GET)] == [old, old, new]


async def test_second_rejection_raises_auth_error(sim: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    sim.fail_next(GROUP_SEND, 400, code="InvalidAuthentication", count=5)
    with pytest.raises(AuthError):
        await client.group_send(DEMO_GROUP, "sampleText", {"content": "x"})
    assert len(sim.requests(GROUP_SEND)) == 2  # the call, one retry after one refresh
    assert tokens_fetched(sim) == 2
    assert sim.messages() == []


async def test_second_legacy_rejection_raises_auth_error(
        sim: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    body = {"errcode": 88, "sub_code": "40014", "errmsg": "不合法的access_token"}
    sim.fail_next(USER_GET, 200, body=body, count=5)
    with pytest.raises(AuthError):
        await client.user_get("lisi")
    assert len(sim.requests(USER_GET)) == 2
    assert tokens_fetched(sim) == 2


# --- retries ----------------------------------------------------------------------------


async def test_429_retry_after_is_slept_exactly(
        sim: Simulator, make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client()
    sim.fail_next(GROUP_SEND, 429, headers={"Retry-After": "3"})
    key = await client.group_send(DEMO_GROUP, "sampleText", {"content": "hello"})
    assert key
    assert sleeps.calls == [3.0]
    assert len(sim.requests(GROUP_SEND)) == 2
    assert [m.text for m in sim.messages(DEMO_GROUP)] == ["hello"]
    assert client.retries == 1


async def test_503_then_success_with_jittered_exponential_backoff(
        sim: Simulator, make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client()
    sim.fail_next(GROUP_SEND, 503, count=3)
    await client.group_send(DEMO_GROUP, "sampleText", {"content": "hello"})
    assert len(sim.requests(GROUP_SEND)) == 4
    assert len(sleeps.calls) == 3
    # documented: 0.2 s doubling (capped at 8 s), times a jitter factor in [0.5, 1.5)
    for attempt, slept in enumerate(sleeps.calls, 1):
        base = min(8.0, 0.2 * 2 ** (attempt - 1))
        assert 0.5 * base <= slept < 1.5 * base, (attempt, slept)
    assert sleeps.calls[2] > sleeps.calls[0]
    assert len(sim.messages(DEMO_GROUP)) == 1


async def test_backoff_jitter_differs_between_clients(
        sim: Simulator, http: aiohttp.ClientSession) -> None:
    waits: list[list[float]] = []
    for seed in (1, 2):
        rec = Sleeps()
        client = OpenApiClient(http, settings_for(sim), sleep=rec, rng=random.Random(seed))
        sim.fail_next(GROUP_SEND, 503, count=2)
        await client.group_send(DEMO_GROUP, "sampleText", {"content": f"s{seed}"})
        waits.append(rec.calls)
    assert waits[0] != waits[1]


async def test_qps_limit_403_is_retried(
        sim: Simulator, make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client()
    sim.fail_next(GROUP_SEND, 403, code="Forbidden.AccessDenied.QpsLimitForAppkeyAndApi")
    await client.group_send(DEMO_GROUP, "sampleText", {"content": "hi"})
    assert len(sim.requests(GROUP_SEND)) == 2
    assert len(sleeps.calls) == 1
    assert len(sim.messages(DEMO_GROUP)) == 1


async def test_legacy_qps_limit_90018_is_retried(
        sim: Simulator, make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client()
    sim.fail_next(USER_GET, 200, body={"errcode": 90018, "errmsg": "too fast"})
    assert (await client.user_get("lisi"))["userid"] == "lisi"
    assert len(sim.requests(USER_GET)) == 2 and len(sleeps.calls) == 1


@pytest.mark.parametrize(("status", "error"), [(429, RateLimited), (500, ServerError),
                                               (503, ServerError)])
async def test_retries_give_up_after_max_retries(
        sim: Simulator, make_client: MakeClient, sleeps: Sleeps, status: int,
        error: type[Exception]) -> None:
    client = make_client(max_retries=3)
    sim.fail_next(GROUP_SEND, status, count=50)
    with pytest.raises(error) as info:
        await client.group_send(DEMO_GROUP, "sampleText", {"content": "x"})
    assert info.value.status == status  # type: ignore[attr-defined]
    assert len(sim.requests(GROUP_SEND)) == 4  # the call and 3 retries
    assert len(sleeps.calls) == 3
    assert sim.messages() == []


async def test_permission_denied_is_not_retried(
        sim: Simulator, make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client()
    with pytest.raises(PermissionDenied) as info:  # sim: the app lacks the scope
        await client.change_main_admin("zhangsan", "lisi", sim.corp_id)
    assert info.value.code == "Forbidden.AccessDenied.AccessTokenPermissionDenied"
    assert info.value.status == 403
    assert len(sim.requests("/v1.0/contact/orgAccounts/mainAdministrators/change")) == 1
    assert sleeps.calls == []
    assert tokens_fetched(sim) == 1  # not mistaken for a rejected token either


async def test_unknown_user_is_not_found(
        sim: Simulator, make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client()
    with pytest.raises(NotFound):
        await client.user_get("nobody")
    assert len(sim.requests(USER_GET)) == 1 and sleeps.calls == []


async def test_session_webhook_delivers_until_it_expires(
        sim: Simulator, make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client()
    url = session_webhook(sim)
    await client.send_webhook(url, {"msgtype": "text", "text": {"content": "before"}})
    assert [m.text for m in sim.messages(DEMO_GROUP)] == ["before"]
    sim.advance(SESSION_TTL + 1)
    with pytest.raises(SessionExpired):
        await client.send_webhook(url, {"msgtype": "text", "text": {"content": "after"}})
    with pytest.raises(SessionExpired):
        await client.send_webhook(f"{sim.base_url}{WEBHOOK}?session=unknown",
                                  {"msgtype": "text", "text": {"content": "never"}})
    assert [m.text for m in sim.messages(DEMO_GROUP)] == ["before"]
    assert sleeps.calls == []  # an expired session is final, not retried
    assert tokens_fetched(sim) == 0  # a webhook needs no token


async def test_timeout_is_a_transport_error_and_retried(
        sim: Simulator, make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client(request_timeout=0.1)
    await client.token()
    sim.delay_next(GROUP_SEND, 0.3)
    await client.group_send(DEMO_GROUP, "sampleText", {"content": "late"})
    assert len(sim.requests(GROUP_SEND)) == 2
    assert len(sleeps.calls) == 1
    await sim.until(lambda: sim.messages(DEMO_GROUP), what="the retried send")
    assert [m.text for m in sim.messages(DEMO_GROUP)] == ["late"]


async def test_timeouts_give_up_with_transport_error(
        sim: Simulator, make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client(request_timeout=0.1, max_retries=1)
    await client.token()
    sim.delay_next(USER_GET, 0.3, count=2)
    with pytest.raises(TransportError):
        await client.user_get("lisi")
    assert len(sim.requests(USER_GET)) == 2 and len(sleeps.calls) == 1


# --- accounting -------------------------------------------------------------------------


async def test_calls_counted_per_api_and_month_excludes_token_and_contacts(
        sim: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    await client.user_get("lisi")
    await client.user_get("wangwu")
    await client.list_admins()
    await client.dept_user_ids(1)
    await client.group_send(DEMO_GROUP, "sampleText", {"content": "a"})
    sim.fail_next(GROUP_SEND, 503)
    await client.group_send(DEMO_GROUP, "sampleText", {"content": "b"})
    await client.oto_send(["zhaoliu"], "sampleText", {"content": "c"})
    assert client.calls[TOKEN] == 1
    assert client.calls[USER_GET] == 2
    assert client.calls["/topapi/user/listadmin"] == 1
    assert client.calls["/topapi/user/listid"] == 1
    assert client.calls[GROUP_SEND] == 3  # every HTTP request counts, retries included
    assert client.calls["/v1.0/robot/oToMessages/batchSend"] == 1
    month = datetime.now(UTC).strftime("%Y-%m")
    assert client.metered_month == {month: 4}


# --- files ------------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 64 + "交接清单".encode()


async def test_upload_media_round_trips_bytes(sim: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    media_id = await client.upload_media(PAYLOAD, "handover.xlsx")
    [upload] = sim.uploads()
    assert upload.media_id == media_id
    assert upload.content == PAYLOAD
    assert upload.file_name == "handover.xlsx"
    assert upload.type == "file"
    assert sim.requests("/media/upload")[0].query.get("access_token") == await client.token()


async def test_upload_media_keeps_a_chinese_file_name(
        sim: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    await client.upload_media(b"x", "交接清单.xlsx")
    [upload] = sim.uploads()
    assert upload.file_name == "交接清单.xlsx"  # not percent-encoded on the wire


async def test_upload_media_retried_after_503_sends_the_whole_file(
        sim: Simulator, make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client()
    sim.fail_next("/media/upload", 503)
    media_id = await client.upload_media(PAYLOAD, "a.bin")
    assert len(sleeps.calls) == 1
    [upload] = sim.uploads()
    assert upload.media_id == media_id and upload.content == PAYLOAD


async def test_upload_media_refreshes_a_rejected_token_once(
        sim: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    await client.list_admins()
    sim.expire_tokens()
    media_id = await client.upload_media(b"report", "r.txt")
    assert [u.media_id for u in sim.uploads()] == [media_id]
    assert tokens_fetched(sim) == 2


async def test_download_file_round_trips_bytes(sim: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    d = sim.send_file("zhaoliu", "名单.xlsx", PAYLOAD)
    content = json.loads(d.frame["data"])["content"]
    assert content["fileName"] == "名单.xlsx"
    assert await client.download_file(content["downloadCode"]) == PAYLOAD
    [req] = sim.requests("/v1.0/robot/messageFiles/download")
    assert req.json["robotCode"] == sim.client_id


async def test_download_of_json_looking_file_returns_its_bytes(
        sim: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    raw = b'{"a": 1,   "b": [1, 2]}\n'
    d = sim.send_file("zhaoliu", "data.json", raw)
    code = json.loads(d.frame["data"])["content"]["downloadCode"]
    assert await client.download_file(code) == raw
