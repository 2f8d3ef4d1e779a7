"""The loopback DingTalk simulator (dingtalk_sim), driven by the stock SDK and by plain aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import dingtalk_stream
import pytest
from dingtalk_stream import AckMessage, CallbackMessage

from dingtalk_sim import SimGroup, Simulator, SimUser

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
CARD_TOPIC = "/v1.0/card/instances/callback"
OPEN = "/v1.0/gateway/connections/open"
GROUP = "cidGROUP1"

USERS = [
    SimUser("alice", "张三", admin_level=1),
    SimUser("bob", "李四", admin_level=2, dept_ids=[1, 2]),
    SimUser("carol", "王五", dept_ids=[2]),
    SimUser("dave", "外部", in_corp=False),
]


def make_sim(**kwargs: Any) -> Simulator:
    defaults: dict[str, Any] = {
        "users": USERS,
        "groups": [SimGroup(GROUP, "交接群")],
        "departments": {1: "总部", 2: "研发部", 3: ("后端组", 2)},
    }
    defaults.update(kwargs)
    return Simulator(**defaults)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with make_sim() as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get_token(http: aiohttp.ClientSession, sim: Simulator) -> str:
    async with http.post(
        f"{sim.base_url}/v1.0/oauth2/accessToken",
        json={"appKey": sim.client_id, "appSecret": sim.client_secret},
    ) as r:
        assert r.status == 200
        return str((await r.json())["accessToken"])


async def call(
    http: aiohttp.ClientSession,
    sim: Simulator,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
) -> tuple[int, Any]:
    headers = {"x-acs-dingtalk-access-token": token} if token else {}
    async with http.request(method, sim.base_url + path, json=body, headers=headers) as r:
        return r.status, await r.json()


async def legacy(
    http: aiohttp.ClientSession, sim: Simulator, path: str, body: Any, token: str
) -> Any:
    async with http.post(f"{sim.base_url}{path}?access_token={token}", json=body) as r:
        assert r.status == 200
        return await r.json()


async def open_ws(
    http: aiohttp.ClientSession, sim: Simulator, topics: tuple[str, ...] = (ROBOT_TOPIC,)
) -> aiohttp.ClientWebSocketResponse:
    status, body = await call(
        http,
        sim,
        "POST",
        OPEN,
        {
            "clientId": sim.client_id,
            "clientSecret": sim.client_secret,
            "subscriptions": [{"type": "CALLBACK", "topic": t} for t in topics],
        },
    )
    assert status == 200
    return await http.ws_connect(f"{body['endpoint']}?ticket={quote_plus(body['ticket'])}")


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    frame: dict[str, Any] = json.loads(msg.data)
    return frame


async def ack(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any], data: Any) -> None:
    await ws.send_str(
        json.dumps(
            {
                "code": 200,
                "headers": {
                    "messageId": frame["headers"]["messageId"],
                    "contentType": "application/json",
                },
                "message": "OK",
                "data": json.dumps(data),
            }
        )
    )


# --- the stock SDK against the simulator ---------------------------------------------------


class Recorder(dingtalk_stream.CallbackHandler):  # type: ignore[misc]
    def __init__(self, answer: Any = "OK") -> None:
        super().__init__()
        self.answer = answer
        self.got: list[dict[str, Any]] = []

    async def process(self, message: CallbackMessage) -> tuple[int, Any]:
        self.got.append(message.data)
        return AckMessage.STATUS_OK, self.answer


CARD_ANSWER = {
    "cardData": {"cardParamMap": {"status": "approved"}},
    "userPrivateData": {"cardParamMap": {"myVote": "approve"}},
    "cardUpdateOptions": {"updateCardDataByKey": True},
}


@pytest.fixture(scope="module")
def sdk() -> Iterator[tuple[Simulator, Recorder, Recorder]]:
    """One simulator and one unmodified SDK client (daemon thread) shared by the SDK tests.

    Distinct credentials, so a lingering client can never register with another test's
    simulator; its loop is stopped after the simulator, so it stops retrying too.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        sim = make_sim(client_id="sdk-test-client", client_secret="sdk-test-secret")
        sim.start()
        # Left pointing at this (soon dead) simulator: never at the real service.
        dingtalk_stream.DingTalkStreamClient.OPEN_CONNECTION_API = sim.open_connection_url
        # Its own logger: without one the SDK sets dingtalk_stream.client to INFO for the
        # whole process, and a later test of the logging setup would see the SDK's lines.
        client = dingtalk_stream.DingTalkStreamClient(
            dingtalk_stream.Credential(sim.client_id, sim.client_secret),
            logger=logging.getLogger("tests.sdk_client"),
        )
        robot, card = Recorder(), Recorder(CARD_ANSWER)
        client.register_callback_handler(ROBOT_TOPIC, robot)
        client.register_callback_handler(CARD_TOPIC, card)
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            # run_until_complete raises once the loop is stopped: the stock client never returns
            with contextlib.suppress(RuntimeError):
                loop.run_until_complete(client.start())
            # cancel what the client left behind (it swallows the first cancellation)
            for _ in range(5):
                pending = asyncio.all_tasks(loop)
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.wait(pending, timeout=0.5))
            loop.close()

        thread = threading.Thread(target=run, name="sdk-client", daemon=True)
        thread.start()
        try:
            yield sim, robot, card
        finally:
            sim.stop()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)


def test_sdk_receives_message_and_acks(sdk: tuple[Simulator, Recorder, Recorder]) -> None:
    sim, robot, _ = sdk
    d = sim.say("bob", "@李四 你好", conversation_id=GROUP, at=["bob", "dave"])
    acks = sim.wait_for(lambda: sim.acks(d.message_id), what="the SDK's ack")
    assert acks[0].code == 200 and acks[0].data == {"response": "OK"}
    assert acks[0].topic == ROBOT_TOPIC
    data = next(m for m in robot.got if m["msgId"] == d.msg_id)
    assert data["conversationType"] == "2" and data["conversationId"] == GROUP
    assert data["conversationTitle"] == "交接群"
    assert data["text"] == {"content": " @李四 你好"}
    assert data["senderStaffId"] == "bob" and data["isInAtList"] is True
    robot_entry, bob, dave = data["atUsers"]
    assert set(robot_entry) == {"dingtalkId"} and robot_entry["dingtalkId"] == data["chatbotUserId"]
    assert bob["staffId"] == "bob" and "staffId" not in dave
    assert data["sessionWebhookExpiredTime"] - data["createAt"] == pytest.approx(5_400_000, abs=5)
    assert all(isinstance(v, str) for v in d.frame["headers"].values())


def test_sdk_answers_ping(sdk: tuple[Simulator, Recorder, Recorder]) -> None:
    sim, _, _ = sdk
    before = len(sim.acks())
    sim.send_ping()
    pings = sim.wait_for(
        lambda: [a for a in sim.acks()[before:] if a.topic == "ping"], what="ping ack"
    )
    assert pings[0].code == 200 and "opaque" in pings[0].data


async def test_sdk_click_updates_card(
    sdk: tuple[Simulator, Recorder, Recorder], http: aiohttp.ClientSession
) -> None:
    sim, _, card_handler = sdk
    token = await get_token(http, sim)
    status, _ = await call(
        http,
        sim,
        "POST",
        "/v1.0/card/instances/createAndDeliver",
        {
            "cardTemplateId": "tpl.schema",
            "outTrackId": "card-1",
            "callbackType": "STREAM",
            "cardData": {"cardParamMap": {"status": "pending", "title": "转让"}},
            "openSpaceId": f"dtv1.card//IM_GROUP.{GROUP}",
            "imGroupOpenDeliverModel": {"robotCode": sim.robot_code},
        },
        token=token,
    )
    assert status == 200
    d = sim.click("alice", "card-1", "approve", {"request_id": "42"})
    await sim.until(lambda: sim.cards()["card-1"].history, what="card update from the ack")
    card = sim.cards()["card-1"]
    assert card.params == {"status": "approved", "title": "转让"}
    assert card.private == {"alice": {"myVote": "approve"}}
    assert card.history[0].source == "ack" and card.history[0].user_id == "alice"
    data = card_handler.got[-1]
    assert data["outTrackId"] == "card-1" and data["userId"] == "alice"
    assert data["spaceType"] == "IM_GROUP" and data["spaceId"] == GROUP
    assert json.loads(data["content"]) == {
        "cardPrivateData": {"actionIds": ["approve"], "params": {"request_id": "42"}}
    }
    assert sim.acks(d.message_id)[0].code == 200


def test_sdk_reconnects_after_disconnect(sdk: tuple[Simulator, Recorder, Recorder]) -> None:
    sim, robot, _ = sdk
    sim.wait_for(lambda: any(c.live for c in sim.connections()), what="a live connection")
    old = {c.connection_id for c in sim.connections()}
    sim.send_disconnect()
    d = sim.say("alice", "still there?")  # queued while the only connection drains
    sim.wait_for(lambda: sim.acks(d.message_id), what="ack on the new connection")
    conns = sim.connections()
    closed = [c for c in conns if c.connection_id in old]
    assert all(c.close_code == 1000 for c in closed)
    assert sim.acks(d.message_id)[0].connection_id not in old
    assert robot.got[-1]["conversationType"] == "1"
    assert robot.got[-1]["conversationId"] == "cidOTOalice"


# --- tokens and auth -----------------------------------------------------------------------


async def test_tokens(sim: Simulator, http: aiohttp.ClientSession) -> None:
    t1 = await get_token(http, sim)
    assert await get_token(http, sim) == t1
    async with http.get(
        f"{sim.base_url}/gettoken", params={"appkey": sim.client_id, "appsecret": sim.client_secret}
    ) as r:
        legacy_body = await r.json()
    assert legacy_body["errcode"] == 0 and legacy_body["access_token"] == t1
    async with http.get(f"{sim.base_url}/gettoken", params={"appkey": "x", "appsecret": "y"}) as r:
        assert (r.status, (await r.json())["errcode"]) == (200, 40096)
    status, body = await call(
        http, sim, "POST", "/v1.0/oauth2/accessToken", {"appKey": "x", "appSecret": "y"}
    )
    assert (status, body["code"]) == (400, "invalidClientIdOrSecret")

    path = "/v1.0/robot/oToMessages/batchSend"
    msg = {
        "robotCode": sim.robot_code,
        "userIds": ["alice"],
        "msgKey": "sampleText",
        "msgParam": '{"content": "hi"}',
    }
    status, body = await call(http, sim, "POST", path, msg)
    assert (status, body["code"]) == (400, "AuthenticationFailed.MissingParameter")
    sim.advance(7201)
    status, body = await call(http, sim, "POST", path, msg, token=t1)
    assert (status, body["code"]) == (400, "InvalidAuthentication")
    assert set(body) == {"code", "message", "requestid"}
    t2 = await get_token(http, sim)
    assert t2 != t1
    assert (await call(http, sim, "POST", path, msg, token=t2))[0] == 200
    sim.expire_tokens()
    assert (await call(http, sim, "POST", path, msg, token=t2))[0] == 400
    body = await legacy(http, sim, "/topapi/user/listadmin", {}, t2)
    assert (body["errcode"], body["sub_code"]) == (88, "40014")
    async with http.post(f"{sim.base_url}/topapi/user/listadmin", json={}) as r:
        assert (await r.json())["sub_code"] == "40000"


async def test_auth_error_status_401(http: aiohttp.ClientSession) -> None:
    with make_sim(auth_error_status=401) as s:
        status, body = await call(
            http, s, "PUT", "/v1.0/card/instances", {"outTrackId": "x"}, token="bogus"
        )
        assert (status, body["code"]) == (401, "InvalidAuthentication")


# --- replies and sends ---------------------------------------------------------------------


async def test_session_webhook(sim: Simulator, http: aiohttp.ClientSession) -> None:
    d = sim.say("alice", "帮助", conversation_id=GROUP)  # queued: nobody is connected
    data = json.loads(d.frame["data"])
    url = data["sessionWebhook"]
    assert url.startswith(f"{sim.base_url}/robot/sendBySession?session=")
    async with http.post(
        url, json={"msgtype": "text", "text": {"content": "ok"}, "at": {"atUserIds": ["alice"]}}
    ) as r:
        assert await r.json() == {"errcode": 0, "errmsg": "ok"}
    async with http.post(
        url, json={"msgtype": "markdown", "markdown": {"title": "T", "text": "### x"}}
    ) as r:
        assert (await r.json())["errcode"] == 0
    first, second = sim.messages(GROUP)
    assert (first.via, first.msgtype, first.text, first.at_user_ids) == (
        "webhook",
        "text",
        "ok",
        ["alice"],
    )
    assert (second.msgtype, second.title, second.text) == ("markdown", "T", "### x")
    sim.advance(5401)
    async with http.post(url, json={"msgtype": "text", "text": {"content": "late"}}) as r:
        assert r.status == 200
        assert await r.json() == {"errcode": 300001, "errmsg": "session 不存在"}
    async with http.post(f"{sim.base_url}/robot/sendBySession?session=nope", json={}) as r:
        assert (await r.json())["errcode"] == 300001


async def test_group_send(http: aiohttp.ClientSession) -> None:
    with make_sim(group_send_limit_per_minute=2) as s:
        token = await get_token(http, s)
        path = "/v1.0/robot/groupMessages/send"
        good = {
            "robotCode": s.robot_code,
            "openConversationId": GROUP,
            "msgKey": "sampleMarkdown",
            "msgParam": json.dumps({"title": "标题", "text": "**x**"}),
        }
        status, body = await call(http, s, "POST", path, good, token=token)
        assert status == 200 and body["processQueryKey"]
        (m,) = s.messages(GROUP)
        assert (m.via, m.msgtype, m.title, m.text) == ("group", "sampleMarkdown", "标题", "**x**")
        for change, code in [
            ({"robotCode": "other"}, "invalidParameter.robotCode.auth"),
            ({"openConversationId": "cidNOPE"}, "invalid.openConversationId"),
            ({"msgParam": "{not json"}, "invalidParameter.msgParam.invalid"),
            ({"msgParam": json.dumps({"title": "t", "text": "x" * 15001})}, None),
        ]:
            status, body = await call(http, s, "POST", path, {**good, **change}, token=token)
            assert status == 400
            assert code is None or body["code"] == code
        assert (await call(http, s, "POST", path, good, token=token))[0] == 200
        status, body = await call(http, s, "POST", path, good, token=token)
        assert (status, body["code"]) == (400, "send.too.fast")
        s.advance(61)
        assert (await call(http, s, "POST", path, good, token=token))[0] == 200


async def test_oto_batch_send(sim: Simulator, http: aiohttp.ClientSession) -> None:
    token = await get_token(http, sim)
    path = "/v1.0/robot/oToMessages/batchSend"
    msg = {
        "robotCode": sim.robot_code,
        "userIds": ["alice", "ghost", "dave", "bob"],
        "msgKey": "sampleText",
        "msgParam": json.dumps({"content": "你好"}),
    }
    status, body = await call(http, sim, "POST", path, msg, token=token)
    assert status == 200
    assert body["invalidStaffIdList"] == ["ghost", "dave"]
    assert body["flowControlledStaffIdList"] == [] and body["filteredStaffIdList"] == []
    assert [m.conversation_id for m in sim.messages()] == ["cidOTOalice", "cidOTObob"]
    assert sim.messages("cidOTObob")[0].text == "你好"
    status, body = await call(
        http, sim, "POST", path, {**msg, "userIds": [f"u{i}" for i in range(21)]}, token=token
    )
    assert (status, body["code"]) == (400, "invalidParameter.userIds.overMax")


async def test_files_in_and_out(sim: Simulator, http: aiohttp.ClientSession) -> None:
    token = await get_token(http, sim)
    d = sim.send_file("carol", "清单.xlsx", b"PK\x03\x04data")
    content = json.loads(d.frame["data"])["content"]
    assert set(content) == {"downloadCode", "fileName", "spaceId", "fileId"}
    status, body = await call(
        http,
        sim,
        "POST",
        "/v1.0/robot/messageFiles/download",
        {"downloadCode": content["downloadCode"], "robotCode": sim.robot_code},
        token=token,
    )
    assert status == 200
    async with http.get(body["downloadUrl"]) as r:
        assert await r.read() == b"PK\x03\x04data"
    async with http.get(f"{sim.base_url}/sim/files/unknown") as r:
        assert r.status == 404

    form = aiohttp.FormData()
    form.add_field("type", "file")
    form.add_field("media", b"xlsx-bytes", filename="out.xlsx")
    async with http.post(f"{sim.base_url}/media/upload?access_token={token}", data=form) as r:
        up = await r.json()
    assert up["errcode"] == 0 and up["type"] == "file" and up["media_id"].startswith("@sim")
    (upload,) = sim.uploads()
    assert (upload.media_id, upload.file_name, upload.content) == (
        up["media_id"],
        "out.xlsx",
        b"xlsx-bytes",
    )


# --- cards ---------------------------------------------------------------------------------


async def test_cards(sim: Simulator, http: aiohttp.ClientSession) -> None:
    token = await get_token(http, sim)
    create = {
        "cardTemplateId": "tpl.schema",
        "outTrackId": "c1",
        "callbackType": "STREAM",
        "cardData": {"cardParamMap": {"a": "1", "b": "2"}},
        "privateData": {"bob": {"cardParamMap": {"seen": "no"}}},
    }
    status, body = await call(http, sim, "POST", "/v1.0/card/instances", create, token=token)
    assert (status, body) == (200, {"success": True, "result": "c1"})
    status, body = await call(http, sim, "POST", "/v1.0/card/instances", create, token=token)
    assert (status, body["code"]) == (400, "param.outTrackIdDuplicate")
    bad = {**create, "outTrackId": "c2", "cardData": {"cardParamMap": {"n": 1}}}
    status, body = await call(http, sim, "POST", "/v1.0/card/instances", bad, token=token)
    assert status == 400 and body["code"].startswith("param.")

    deliver = {
        "outTrackId": "c1",
        "userIdType": 1,
        "openSpaceId": f"dtv1.card//im_group.{GROUP};IM_ROBOT.alice;IM_ROBOT.ghost",
        "imGroupOpenDeliverModel": {"robotCode": sim.robot_code},
        "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"},
    }
    status, body = await call(
        http, sim, "POST", "/v1.0/card/instances/deliver", deliver, token=token
    )
    assert status == 200
    assert [(r["spaceType"], r["success"]) for r in body["result"]] == [
        ("IM_GROUP", True),
        ("IM_ROBOT", True),
        ("IM_ROBOT", False),
    ]
    for change in ({"openSpaceId": "IM_GROUP.x"}, {"openSpaceId": "dtv1.card//BOGUS.x"}):
        status, _ = await call(
            http, sim, "POST", "/v1.0/card/instances/deliver", {**deliver, **change}, token=token
        )
        assert status == 400
    status, _ = await call(
        http,
        sim,
        "POST",
        "/v1.0/card/instances/deliver",
        {**deliver, "outTrackId": "nope"},
        token=token,
    )
    assert status == 400

    merge = {
        "outTrackId": "c1",
        "cardData": {"cardParamMap": {"b": "3"}},
        "privateData": {"bob": {"cardParamMap": {"seen": "yes"}}},
        "cardUpdateOptions": {"updateCardDataByKey": True, "updatePrivateDataByKey": True},
    }
    status, body = await call(http, sim, "PUT", "/v1.0/card/instances", merge, token=token)
    assert (status, body) == (200, {"success": True, "result": True})
    card = sim.cards()["c1"]
    assert card.params == {"a": "1", "b": "3"} and card.private == {"bob": {"seen": "yes"}}
    assert card.spaces == [f"dtv1.card//IM_GROUP.{GROUP}", "dtv1.card//IM_ROBOT.alice"]
    assert card.callback_type == "STREAM" and card.template_id == "tpl.schema"
    replace = {"outTrackId": "c1", "cardData": {"cardParamMap": {"z": "0"}}}
    assert (await call(http, sim, "PUT", "/v1.0/card/instances", replace, token=token))[0] == 200
    assert sim.cards()["c1"].params == {"z": "0"}
    assert [h.source for h in sim.cards()["c1"].history] == ["api", "api"]
    status, _ = await call(
        http, sim, "PUT", "/v1.0/card/instances", {**replace, "outTrackId": "x"}, token=token
    )
    assert status == 400

    status, body = await call(
        http,
        sim,
        "POST",
        "/v1.0/card/instances/createAndDeliver",
        {
            **create,
            "outTrackId": "c3",
            "openSpaceId": "dtv1.card//IM_ROBOT.carol",
            "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"},
        },
        token=token,
    )
    assert status == 200 and body["result"]["outTrackId"] == "c3"
    assert body["result"]["deliverResults"][0]["spaceId"] == "carol"


# --- directory -----------------------------------------------------------------------------


async def test_directory(sim: Simulator, http: aiohttp.ClientSession) -> None:
    token = await get_token(http, sim)
    body = await legacy(http, sim, "/topapi/v2/user/get", {"userid": "bob"}, token)
    assert body["errcode"] == 0
    assert {k: body["result"][k] for k in ("userid", "name", "active", "admin")} == {
        "userid": "bob",
        "name": "李四",
        "active": True,
        "admin": True,
    }
    assert body["result"]["dept_id_list"] == [1, 2]
    for who in ("ghost", "dave"):
        body = await legacy(http, sim, "/topapi/v2/user/get", {"userid": who}, token)
        assert body["errcode"] == 60121
    body = await legacy(http, sim, "/topapi/user/listadmin", {}, token)
    assert body["result"] == [
        {"userid": "alice", "sys_level": 1},
        {"userid": "bob", "sys_level": 2},
    ]
    sim.console_transfer_main_admin("alice", "carol")
    body = await legacy(http, sim, "/topapi/user/listadmin", {}, token)
    assert body["result"] == [
        {"userid": "carol", "sys_level": 1},
        {"userid": "bob", "sys_level": 2},
    ]
    sim.set_user("bob", admin_level=0, active=False)
    sim.add_user(SimUser("erin", "赵六", dept_ids=[3]))
    body = await legacy(http, sim, "/topapi/v2/user/get", {"userid": "bob"}, token)
    assert (body["result"]["admin"], body["result"]["active"]) == (False, False)
    body = await legacy(http, sim, "/topapi/user/listid", {"dept_id": 2}, token)
    assert body["result"] == {"userid_list": ["bob", "carol"]}
    body = await legacy(http, sim, "/topapi/v2/department/get", {"dept_id": 3}, token)
    assert body["result"] == {"dept_id": 3, "name": "后端组", "parent_id": 2,
                              "dept_manager_userid_list": []}
    # Managers and department heads (issue 18): user/get's manager_userid and leader flags,
    # department/get's heads.
    sim.set_user("erin", manager="carol", leads=[3])
    body = await legacy(http, sim, "/topapi/v2/user/get", {"userid": "erin"}, token)
    assert body["result"]["manager_userid"] == "carol"
    assert body["result"]["leader_in_dept"] == [{"dept_id": 3, "leader": True}]
    assert body["result"]["unionid"] == sim.union_id("erin")
    body = await legacy(http, sim, "/topapi/v2/department/get", {"dept_id": 3}, token)
    assert body["result"]["dept_manager_userid_list"] == ["erin"]
    body = await legacy(http, sim, "/topapi/v2/department/listsub", {"dept_id": 1}, token)
    assert body["result"] == [{"dept_id": 2, "name": "研发部", "parent_id": 1}]
    body = await legacy(http, sim, "/topapi/v2/department/get", {"dept_id": 99}, token)
    assert body["errcode"] != 0

    change = {"sourceUserId": "carol", "targetUserId": "alice", "effectCorpId": sim.corp_id}
    path = "/v1.0/contact/orgAccounts/mainAdministrators/change"
    status, body = await call(http, sim, "POST", path, change, token=token)
    assert (status, body["code"]) == (403, "Forbidden.AccessDenied.AccessTokenPermissionDenied")
    with make_sim(exclusive_accounts=True) as s:
        t = await get_token(http, s)
        status, body = await call(
            http,
            s,
            "POST",
            path,
            {**change, "sourceUserId": "alice", "targetUserId": "carol"},
            token=t,
        )
        assert (status, body) == (200, {})
        assert s.user("carol").admin_level == 1 and s.user("alice").admin_level == 0


async def test_a_large_directory_is_served_in_pages(http: aiohttp.ClientSession) -> None:
    """topapi/user/listsimple: at most 100 members a page, with a cursor, as DingTalk's."""
    users = [SimUser(f"m{i:04d}", f"成员{i}", dept_ids=[1, 2] if i % 3 else [1])
             for i in range(250)]
    with make_sim(users=users, departments={1: "公司", 2: ("销售部", 1)}) as s:
        token = await get_token(http, s)
        for dept, size in ((1, 100), (2, 37)):
            seen: list[str] = []
            cursor, pages = 0, 0
            while True:
                body = await legacy(http, s, "/topapi/user/listsimple",
                                    {"dept_id": dept, "cursor": cursor, "size": size}, token)
                assert body["errcode"] == 0
                res = body["result"]
                assert len(res["list"]) <= size
                seen += [u["userid"] for u in res["list"]]
                pages += 1
                if not res["has_more"]:
                    assert "next_cursor" not in res
                    break
                cursor = res["next_cursor"]
            want = sorted(u.user_id for u in users if dept in u.dept_ids)
            assert seen == want and pages == -(-len(want) // size)
        for bad in ({"dept_id": 1, "cursor": 0, "size": 101}, {"dept_id": 1, "size": 0},
                    {"dept_id": 1, "cursor": -1, "size": 10}):
            assert (await legacy(http, s, "/topapi/user/listsimple", bad, token))["errcode"] != 0


# --- fault injection -----------------------------------------------------------------------


async def test_fail_next_and_delay_next(sim: Simulator, http: aiohttp.ClientSession) -> None:
    token = await get_token(http, sim)
    path = "/v1.0/card/instances"
    sim.fail_next(path, 429, headers={"Retry-After": "0"}, count=2)
    for _ in range(2):
        async with http.put(
            sim.base_url + path, json={}, headers={"x-acs-dingtalk-access-token": token}
        ) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "0"
            assert set(await r.json()) == {"code", "message", "requestid"}
    status, body = await call(http, sim, "PUT", path, {"outTrackId": "x"}, token=token)
    assert (status, body["code"]) == (400, "param.outTrackIdNotExist")  # rule used up

    sim.fail_next("/topapi/user/listadmin", 200, code="90018")
    assert (await legacy(http, sim, "/topapi/user/listadmin", {}, token))["errcode"] == 90018
    sim.fail_next(
        "/v1.0/oauth2/accessToken",
        403,
        code="Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
    )
    status, body = await call(
        http, sim, "POST", "/v1.0/oauth2/accessToken", {"appKey": "a", "appSecret": "b"}
    )
    assert (status, body["code"]) == (403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi")

    sim.delay_next("/topapi/user/listadmin", 0.2)
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.05):
            await legacy(http, sim, "/topapi/user/listadmin", {}, token)
    assert (await legacy(http, sim, "/topapi/user/listadmin", {}, token))["errcode"] == 0
    recorded = sim.requests("/topapi/user/listadmin")
    assert recorded[0].query == {"access_token": token} and recorded[0].json == {}


def test_wait_for_times_out(sim: Simulator) -> None:
    with pytest.raises(TimeoutError, match="simulator: timed out waiting for nothing"):
        sim.wait_for(lambda: False, timeout=0.05, what="nothing")


# --- the gateway and the socket, with a bare websocket client ------------------------------


async def test_gateway_registration_and_tickets(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    status, body = await call(
        http, sim, "POST", OPEN, {"clientId": sim.client_id, "clientSecret": "wrong"}
    )
    assert (status, body["code"]) == (400, "invalidClientIdOrSecret")
    reg = {
        "clientId": sim.client_id,
        "clientSecret": sim.client_secret,
        "subscriptions": [{"type": "CALLBACK", "topic": ROBOT_TOPIC}],
    }
    status, body = await call(http, sim, "POST", OPEN, reg)
    assert body["endpoint"] == f"ws://127.0.0.1:{sim.base_url.rsplit(':', 1)[1]}/connect"
    url = f"{body['endpoint']}?ticket={quote_plus(body['ticket'])}"
    ws = await http.ws_connect(url)
    with pytest.raises(aiohttp.WSServerHandshakeError) as used:
        await http.ws_connect(url)
    assert used.value.status == 403
    status, body = await call(http, sim, "POST", OPEN, reg)
    sim.advance(91)
    with pytest.raises(aiohttp.WSServerHandshakeError) as expired:
        await http.ws_connect(f"{body['endpoint']}?ticket={quote_plus(body['ticket'])}")
    assert expired.value.status == 403
    (conn,) = sim.connections()
    assert conn.subscriptions == [("CALLBACK", ROBOT_TOPIC)]
    await ws.close()
    await sim.until(lambda: sim.connections()[0].close_code == 1000, what="close")


async def test_socket_routing_faults_and_redelivery(http: aiohttp.ClientSession) -> None:
    with make_sim(robot_redelivery_after=60, disconnect_close_after=10) as s:
        # a click for a topic nobody subscribed to stays queued
        s.click("alice", "no-card", "approve")
        ws = await open_ws(http, s)
        d = s.say("alice", "hi")
        frame = await recv(ws)
        assert frame["headers"]["messageId"] == d.message_id
        assert frame["headers"]["topic"] == ROBOT_TOPIC and frame["type"] == "CALLBACK"
        assert all(isinstance(v, str) for v in frame["headers"].values())
        assert json.loads(frame["data"])["text"] == {"content": "hi"}
        s.advance(61)  # unacked: redelivered once, identical ids
        again = await recv(ws)
        assert again["headers"]["messageId"] == d.message_id and again["data"] == frame["data"]
        await ack(ws, again, {"response": None})
        await s.until(lambda: s.acks(d.message_id), what="ack")

        # explicit redelivery with a fresh messageId keeps data.msgId
        r = s.redeliver(d, new_message_id=True)
        frame = await recv(ws)
        assert frame["headers"]["messageId"] == r.message_id != d.message_id
        assert json.loads(frame["data"])["msgId"] == d.msg_id

        # malformed client frames are recorded and ignored; raw frames reach the client
        await ws.send_str("{not json")
        await s.until(s.bad_frames, what="bad frame")
        s.push_raw("{garbage")
        msg = await ws.receive(timeout=5)
        assert msg.data == "{garbage"

        # zombie: frames are lost, pings still answered at the websocket level
        s.set_zombie(True)
        s.say("bob", "lost")
        assert s.connections()[0].lost == 1
        await ws.ping()
        s.set_zombie(False)

        # ping over the protocol
        s.send_ping()
        ping = await recv(ws)
        assert ping["type"] == "SYSTEM" and ping["headers"]["topic"] == "ping"
        await ack(ws, ping, json.loads(ping["data"]))
        await s.until(lambda: [a for a in s.acks() if a.topic == "ping"], what="ping ack")

        # disconnect: nothing more is pushed; closed by the server 10 s (sim) later
        s.send_disconnect()
        bye = await recv(ws)
        assert bye["headers"]["topic"] == "disconnect"
        assert json.loads(bye["data"]) == {"reason": "connection is expired"}
        queued = s.say("carol", "after disconnect")
        assert "connectionId" not in queued.frame["headers"]
        s.advance(11)
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await s.until(lambda: s.connections()[0].close_code == 1000, what="server close")

        # a new connection gets the queued message; dropping it is abnormal (1006)
        ws2 = await open_ws(http, s)
        frame = await recv(ws2)
        assert frame["headers"]["messageId"] == queued.message_id
        s.drop_connections()
        assert s.connections()[1].close_code == 1006
        assert s.connections()[1].frames_sent == 1

        # the card-topic subscriber receives the click queued at the start
        ws3 = await open_ws(http, s, (CARD_TOPIC,))
        click = await recv(ws3)
        assert click["headers"]["topic"] == CARD_TOPIC
        assert json.loads(click["data"])["type"] == "actionCallback"
        await ws3.close()


async def test_ping_interval_hang_gateway_and_robot_sender(http: aiohttp.ClientSession) -> None:
    with make_sim(ping_interval=0.05) as s:
        s.hang_gateway(0.5)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await open_ws(http, s)
        ws = await open_ws(http, s)  # the hang applied to one call only
        frame = await recv(ws)
        assert frame["type"] == "SYSTEM" and frame["headers"]["topic"] == "ping"
        assert set(json.loads(frame["data"])) == {"opaque"}
        d = s.say_as_robot(GROUP, "机器人的消息")
        while frame["headers"]["messageId"] != d.message_id:
            frame = await recv(ws)
        data = json.loads(frame["data"])
        assert data["senderPlatform"] == "robot" and "senderStaffId" not in data
        assert data["conversationType"] == "2" and data["text"] == {"content": " 机器人的消息"}
        await ws.close()


async def test_org_events_are_pushed_over_stream_to_event_subscribers(
    http: aiohttp.ClientSession,
) -> None:
    """Console admin changes and a member leaving change the directory and push EVENT
    frames (eventId, eventType, eventCorpId, eventBornTime) to a connection subscribed to
    EVENT only; unacked, the same event comes again."""
    with make_sim(robot_redelivery_after=60) as s:
        callbacks_only = await open_ws(http, s)
        d = s.console_add_admin("carol")
        assert d is not None and s.user("carol").admin_level == 2
        status, body = await call(http, s, "POST", OPEN, {
            "clientId": s.client_id, "clientSecret": s.client_secret,
            "subscriptions": [{"type": "EVENT", "topic": "*"}]})
        assert status == 200
        ws = await http.ws_connect(f"{body['endpoint']}?ticket={quote_plus(body['ticket'])}")
        frame = await recv(ws)          # queued until an EVENT subscriber came
        h = frame["headers"]
        assert frame["type"] == "EVENT" and h["eventType"] == "org_admin_add"
        assert h["messageId"] == d.message_id and h["eventId"] and h["eventCorpId"] == s.corp_id
        assert h["eventBornTime"].isdigit() and all(isinstance(v, str) for v in h.values())
        assert json.loads(frame["data"])["userId"] == ["carol"]
        s.advance(61)                   # unacked: the same event again
        again = await recv(ws)
        assert again["headers"]["eventId"] == h["eventId"] and again["data"] == frame["data"]
        await ack(ws, again, {"status": "SUCCESS"})
        await s.until(lambda: s.acks(d.message_id), what="the event's ack")

        d = s.member_leaves("bob")
        frame = await recv(ws)
        assert frame["headers"]["eventType"] == "user_leave_org"
        assert json.loads(frame["data"])["userId"] == ["bob"] and not s.user("bob").active
        removed = s.console_remove_admin("carol", push=False)      # a lost event
        assert removed is None and s.user("carol").admin_level == 0
        # No event ever went to the socket subscribed to callbacks only.
        first = s.connections()[0]
        assert first.subscriptions == [("CALLBACK", ROBOT_TOPIC)] and first.frames_sent == 0
        await callbacks_only.close()
