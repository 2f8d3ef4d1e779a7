"""The DingTalk message bodies (bot/transport/bodies.py), pinned to the bytes DingTalk gets.

The JSON strings below are what the outbox, the dispatcher's direct replies and the export
delivery sent before the bodies moved into transport: a change to one of them changes what
DingTalk receives, and must be deliberate.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr

from bot.config import DingTalkSettings
from bot.transport import bodies
from bot.transport.openapi import OpenApiClient


def dumped(body: Any) -> str:
    """As aiohttp puts a ``json=`` body on the wire (``json.dumps`` defaults)."""
    return json.dumps(body)


@pytest.mark.parametrize(("kw", "wire"), [
    ({"text": "hi"}, '{"msgtype": "text", "text": {"content": "hi"}}'),
    ({"text": "hi", "title": "ignored"}, '{"msgtype": "text", "text": {"content": "hi"}}'),
    ({"text": "hi", "at": ["u1"]},
     '{"msgtype": "text", "text": {"content": "hi"}, '
     '"at": {"atUserIds": ["u1"], "isAtAll": false}}'),
    ({"text": "**b**", "markdown": True, "title": "Baton"},
     '{"msgtype": "markdown", "markdown": {"title": "Baton", "text": "**b**"}}'),
    ({"text": "**b**", "markdown": True, "title": "T", "at": ("u1", "u2")},
     '{"msgtype": "markdown", "markdown": {"title": "T", "text": "**b**"}, '
     '"at": {"atUserIds": ["u1", "u2"], "isAtAll": false}}'),
    ({"text": "你好"}, '{"msgtype": "text", "text": {"content": "\\u4f60\\u597d"}}'),
])
def test_webhook_message(kw: dict[str, Any], wire: str) -> None:
    text = kw.pop("text")
    assert dumped(bodies.webhook_message(text, **kw)) == wire


@pytest.mark.parametrize(("kw", "key", "param"), [
    ({"text": "hi"}, "sampleText", '{"content": "hi"}'),
    ({"text": "hi", "title": "ignored"}, "sampleText", '{"content": "hi"}'),
    ({"text": "**b**", "markdown": True, "title": "Baton"}, "sampleMarkdown",
     '{"title": "Baton", "text": "**b**"}'),
])
def test_robot_message(kw: dict[str, Any], key: str, param: str) -> None:
    text = kw.pop("text")
    got_key, got_param = bodies.robot_message(text, **kw)
    assert (got_key, dumped(got_param)) == (key, param)


@pytest.mark.parametrize(("name", "param"), [
    ("baton-export-20260105-0200.xlsx",
     '{"mediaId": "@m", "fileName": "baton-export-20260105-0200.xlsx", "fileType": "xlsx"}'),
    ("a.b.csv", '{"mediaId": "@m", "fileName": "a.b.csv", "fileType": "csv"}'),
])
def test_file_message(name: str, param: str) -> None:
    key, got = bodies.file_message("@m", name)
    assert (key, dumped(got)) == ("sampleFile", param)


def test_card_update() -> None:
    assert dumped(bodies.card_update("req-1", {"status": "ok"})) == (
        '{"outTrackId": "req-1", "cardData": {"cardParamMap": {"status": "ok"}}, '
        '"cardUpdateOptions": {"updateCardDataByKey": true, "updatePrivateDataByKey": true}, '
        '"userIdType": 1}')
    assert bodies.card_update("req-1", {}, {"u1": {"notice": "n"}})["privateData"] == {
        "u1": {"cardParamMap": {"notice": "n"}}}
    assert "privateData" not in bodies.card_update("req-1", {}, {})


# --- what the client's sending methods hand to HTTP (no sockets) ---------------------------

class Recording(OpenApiClient):
    """The real client with its HTTP step replaced by a recorder."""

    def __init__(self, answer: dict[str, Any] | None = None) -> None:
        super().__init__(None, DingTalkSettings(  # type: ignore[arg-type]
            client_id="app", client_secret=SecretStr("s"), robot_code="robot"))
        self.sent: list[tuple[str, str, Any]] = []
        self._answer = answer or {}

    async def _request(self, method: str, url: str, api: str, *, json_body: Any = None,
                       auth: str | None, tok: str | None = None, form: Any = None) -> Any:
        if api == "/v1.0/oauth2/accessToken":
            return {"accessToken": "tok", "expireIn": 7200}
        self.sent.append((method, api, json_body))
        return self._answer


GROUP = "/v1.0/robot/groupMessages/send"
OTO = "/v1.0/robot/oToMessages/batchSend"


async def test_send_by_webhook_posts_the_webhook_body() -> None:
    c = Recording()
    await c.send_by_webhook("https://hook", "**b**", markdown=True, title="Baton", at=["u1"])
    assert c.sent == [("POST", "/robot/sendBySession", bodies.webhook_message(
        "**b**", markdown=True, title="Baton", at=["u1"]))]


async def test_send_to_group_and_to_user_post_the_robot_bodies() -> None:
    c = Recording()
    await c.send_to_group("cid1", "hi")
    assert await c.send_to_user("u1", "**b**", markdown=True, title="T")
    assert [(m, a, dumped(b)) for m, a, b in c.sent] == [
        ("POST", GROUP, '{"robotCode": "robot", "openConversationId": "cid1", '
                        '"msgKey": "sampleText", "msgParam": "{\\"content\\": \\"hi\\"}"}'),
        ("POST", OTO, '{"robotCode": "robot", "userIds": ["u1"], "msgKey": "sampleMarkdown", '
                      '"msgParam": "{\\"title\\": \\"T\\", \\"text\\": \\"**b**\\"}"}'),
    ]


async def test_send_to_user_says_when_dingtalk_flow_controlled_the_person() -> None:
    assert not await Recording({"flowControlledStaffIdList": ["u1"]}).send_to_user("u1", "x")
    assert await Recording({"flowControlledStaffIdList": ["u2"]}).send_to_user("u1", "x")
    assert await Recording({"flowControlledStaffIdList": None}).send_to_user("u1", "x")


async def test_send_file_posts_a_sample_file() -> None:
    c = Recording()
    await c.send_file("u1", "@m", "中文.csv")
    [(_, api, body)] = c.sent
    assert api == OTO and body["userIds"] == ["u1"] and body["msgKey"] == "sampleFile"
    assert body["msgParam"] == '{"mediaId": "@m", "fileName": "中文.csv", "fileType": "csv"}'


async def test_update_card_puts_the_update_body() -> None:
    c = Recording()
    await c.update_card("req-1", {"status": "ok"}, {"u1": {"notice": "n"}})
    assert c.sent == [("PUT", "/v1.0/card/instances",
                       bodies.card_update("req-1", {"status": "ok"}, {"u1": {"notice": "n"}}))]
