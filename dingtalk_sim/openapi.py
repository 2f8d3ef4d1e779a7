"""The simulated OpenAPI: the ``/v1.0`` host and the legacy ``oapi`` host on one server.

Every request is recorded, then ``delay_next`` / ``fail_next`` rules apply, then the
handler. Handlers raise ``ApiError`` (new API: HTTP status + ``{code, message, requestid}``)
or ``LegacyError`` (HTTP 200 + ``{errcode, errmsg}``); the middleware renders both.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from dingtalk_sim import cards as cardlib
from dingtalk_sim.errors import ApiError, LegacyError, default_code
from dingtalk_sim.frames import oto_conversation
from dingtalk_sim.model import CardUpdate, HttpRecord, SentMessage, SimTodo, Upload
from dingtalk_sim.state import CardState, FailRule, SimState
from dingtalk_sim.stream import CONNECT_PATH, OPEN_PATH

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TOKEN_HEADER = "x-acs-dingtalk-access-token"  # noqa: S105 (a header name)
MSG_PARAM_MAX_BYTES = 15000
LIST_PAGE_MAX = 100  # topapi/user/listsimple: at most 100 members a page
OTO_MAX_USERS = 20
FILES_PATH = "/sim/files/"
# msgKey -> keys its msgParam must hold (others are accepted without checks)
MSG_KEYS: dict[str, tuple[str, ...]] = {
    "sampleText": ("content",),
    "sampleMarkdown": ("title", "text"),
    "sampleImageMsg": ("photoURL",),
    "sampleLink": ("text", "title", "messageUrl"),
    "sampleActionCard": ("title", "text"),
    "sampleActionCard2": ("title", "text"),
    "sampleActionCard3": ("title", "text"),
    "sampleActionCard4": ("title", "text"),
    "sampleActionCard5": ("title", "text"),
    "sampleActionCard6": ("title", "text"),
    "sampleFile": ("mediaId", "fileName"),
    "sampleAudio": ("mediaId",),
    "sampleVideo": ("videoMediaId",),
}
WEBHOOK_TYPES: dict[str, tuple[str, ...]] = {
    "text": ("content",),
    "markdown": ("title", "text"),
    "actionCard": ("title", "text"),
    "link": ("title", "text", "messageUrl"),
    "feedCard": (),
}
_NEW_HOST_PREFIXES = ("/v1.0/", "/sim/")


def is_legacy(path: str) -> bool:
    """True for paths of the ``oapi`` host (errors are HTTP 200 with ``errcode``)."""
    return not path.startswith(_NEW_HOST_PREFIXES) and path not in (CONNECT_PATH, OPEN_PATH)


def _json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=dict(headers or {}),
    )


class OpenApi:
    """HTTP handlers of both hosts."""

    def __init__(self, state: SimState) -> None:
        self._state = state

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/v1.0/oauth2/accessToken", self._access_token)
        r.add_post("/v1.0/robot/groupMessages/send", self._group_send)
        r.add_post("/v1.0/robot/oToMessages/batchSend", self._oto_send)
        r.add_post("/v1.0/robot/messageFiles/download", self._file_download)
        r.add_post("/v1.0/card/instances", self._card_create)
        r.add_put("/v1.0/card/instances", self._card_update)
        r.add_post("/v1.0/card/instances/deliver", self._card_deliver)
        r.add_post("/v1.0/card/instances/createAndDeliver", self._card_create_deliver)
        r.add_post("/v1.0/contact/orgAccounts/mainAdministrators/change", self._change_main_admin)
        r.add_post("/v1.0/todo/users/{unionId}/tasks", self._todo_create)
        r.add_put("/v1.0/todo/users/{unionId}/tasks/{taskId}", self._todo_update)
        r.add_get("/gettoken", self._gettoken)
        r.add_post("/robot/sendBySession", self._webhook)
        r.add_post("/media/upload", self._media_upload)
        r.add_post("/topapi/v2/user/get", self._user_get)
        r.add_post("/topapi/user/listadmin", self._list_admin)
        r.add_post("/topapi/user/listid", self._list_userid)
        r.add_post("/topapi/user/listsimple", self._list_simple)
        r.add_post("/topapi/v2/department/get", self._dept_get)
        r.add_post("/topapi/v2/department/listsub", self._dept_listsub)
        r.add_get(FILES_PATH + "{code}", self._file_bytes)

    # --- middleware: record, faults, error rendering ---------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        state = self._state
        body: Any = None
        if request.body_exists and not request.content_type.startswith("multipart/"):
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
        state.record_http(
            HttpRecord(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                json=body,
                at=state.now(),
            )
        )
        delay = state.take_delay(request.path, request.method)
        if delay is not None:
            await asyncio.sleep(delay.seconds)
            transport = request.transport
            if delay.abandon and (transport is None or transport.is_closing()):
                log.info("%s %s: client gone during the delay; dropped", request.method,
                         request.path)
                return web.Response(status=504)  # nobody reads it
        fail = state.take_fail(request.path, request.method)
        if fail is not None:
            log.info("%s %s: injected failure %d", request.method, request.path, fail.status)
            return self._fault_response(request.path, fail)
        try:
            return await handler(request)
        except ApiError as exc:
            log.info("%s %s -> %d %s", request.method, request.path, exc.status, exc.code)
            body = {"code": exc.code, "message": exc.message, "requestid": self._request_id()}
            body.update(exc.extra)
            return _json_response(body, exc.status)
        except LegacyError as exc:
            log.info("%s %s -> errcode %d", request.method, request.path, exc.errcode)
            legacy: dict[str, Any] = {"errcode": exc.errcode, "errmsg": exc.errmsg}
            legacy.update(exc.extra)
            if exc.request_id:
                legacy["request_id"] = self._state.hex(13)
            return _json_response(legacy)

    def _fault_response(self, path: str, rule: FailRule) -> web.Response:
        if rule.body is not None:
            body: dict[str, Any] = dict(rule.body)
        elif is_legacy(path):
            errcode = int(rule.code) if rule.code.lstrip("-").isdigit() else rule.status
            body = {"errcode": errcode, "errmsg": f"simulated failure ({rule.code or rule.status})"}
        else:
            body = {
                "code": rule.code or default_code(rule.status),
                "message": "simulated failure",
                "requestid": self._request_id(),
            }
        return _json_response(body, rule.status, rule.headers)

    def _request_id(self) -> str:
        return self._state.uuid4().upper()

    # --- shared checks ---------------------------------------------------------------------

    def _require_token(self, request: web.Request) -> None:
        token = request.headers.get(TOKEN_HEADER, "")
        if not token:
            raise ApiError(
                400, "AuthenticationFailed.MissingParameter", f"缺少参数：{TOKEN_HEADER}"
            )
        if not self._state.token_valid(token):
            raise ApiError(
                self._state.auth_error_status, "InvalidAuthentication", "不合法的access_token"
            )

    def _require_legacy_token(self, request: web.Request) -> None:
        token = request.query.get("access_token", "")
        if not token:
            raise LegacyError(
                88,
                "ding talk error[subcode=40000,submsg=access_token is blank]",
                sub_code="40000",
                sub_msg="access_token is blank",
            )
        if not self._state.token_valid(token):
            raise LegacyError(
                88,
                "ding talk error[subcode=40014,submsg=不合法的access_token]",
                sub_code="40014",
                sub_msg="不合法的access_token",
            )

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(400, "invalidParameter", "请求体必须是 JSON 对象")
        return body

    @staticmethod
    async def _legacy_body(request: web.Request) -> dict[str, Any]:
        if not request.body_exists:
            return {}
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise LegacyError(40035, "缺少参数 json")
        return body

    def _check_robot_code(self, body: Mapping[str, Any]) -> None:
        robot_code = body.get("robotCode")
        if not robot_code:
            raise ApiError(400, "invalidParameter.robotCode.empty", "robotCode 不能为空")
        if robot_code != self._state.client_id:
            raise ApiError(400, "invalidParameter.robotCode.auth", "robotCode 与应用不匹配")

    def _process_query_key(self) -> str:
        with self._state.lock:
            raw = self._state.rng.getrandbits(192).to_bytes(24, "big")
        return base64.b64encode(raw).decode()

    @staticmethod
    def _msg_param(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        msg_key = body.get("msgKey")
        if not isinstance(msg_key, str) or not msg_key:
            raise ApiError(400, "invalidParameter.msgKey.empty", "msgKey 不能为空")
        if msg_key not in MSG_KEYS:
            raise ApiError(400, "invalidParameter.msgKey.invalid", f"msgKey 不合法: {msg_key}")
        raw = body.get("msgParam")
        if not isinstance(raw, str):
            raise ApiError(400, "invalidParameter.msgParam.invalid", "msgParam 必须是 JSON 字符串")
        if len(raw.encode()) > MSG_PARAM_MAX_BYTES:
            raise ApiError(400, "invalidParameter.msgParam.tooLong", "msgParam 超过 15000 字节")
        try:
            params = json.loads(raw)
        except ValueError:
            params = None
        if not isinstance(params, dict):
            raise ApiError(400, "invalidParameter.msgParam.invalid", "msgParam 必须是 JSON")
        missing = [k for k in MSG_KEYS[msg_key] if k not in params]
        if missing:
            raise ApiError(
                400, "invalidParameter.msgParam.invalid", f"msgParam 缺少: {', '.join(missing)}"
            )
        return msg_key, params

    # --- token -----------------------------------------------------------------------------

    async def _access_token(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if (
            body.get("appKey") != self._state.client_id
            or body.get("appSecret") != self._state.client_secret
        ):
            raise ApiError(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        token, remaining = self._state.issue_token()
        return _json_response({"accessToken": token, "expireIn": int(remaining)})

    async def _gettoken(self, request: web.Request) -> web.Response:
        key, secret = request.query.get("appkey"), request.query.get("appsecret")
        if not key or not secret:
            raise LegacyError(40035, "缺少参数 appkey 或 appsecret")
        if key != self._state.client_id or secret != self._state.client_secret:
            raise LegacyError(40096, "不合法的appKey或appSecret")
        token, remaining = self._state.issue_token()
        return _json_response(
            {"errcode": 0, "access_token": token, "errmsg": "ok", "expires_in": int(remaining)}
        )

    # --- messages --------------------------------------------------------------------------

    async def _webhook(self, request: web.Request) -> web.Response:
        session = self._state.session(request.query.get("session", ""))
        if session is None:
            raise LegacyError(300001, "session 不存在", request_id=False)
        body = await self._legacy_body(request)
        msgtype = body.get("msgtype")
        if not isinstance(msgtype, str) or msgtype not in WEBHOOK_TYPES:
            raise LegacyError(40035, "缺少参数 msgtype 或 msgtype 不支持", request_id=False)
        section = body.get(msgtype)
        if not isinstance(section, dict) or any(k not in section for k in WEBHOOK_TYPES[msgtype]):
            raise LegacyError(40035, f"缺少参数 {msgtype}", request_id=False)
        at = body.get("at")
        at_ids = at.get("atUserIds") if isinstance(at, dict) else None
        self._state.record_sent(
            SentMessage(
                via="webhook",
                conversation_id=session.conversation_id,
                msgtype=msgtype,
                text=str(section.get("content", section.get("text", ""))),
                title=str(section.get("title", "")),
                at_user_ids=[str(u) for u in at_ids] if isinstance(at_ids, list) else [],
                user_ids=[],
                raw=body,
                params=dict(section),
                at=self._state.now(),
            )
        )
        return _json_response({"errcode": 0, "errmsg": "ok"})

    async def _group_send(self, request: web.Request) -> web.Response:
        self._require_token(request)
        body = await self._body(request)
        self._check_robot_code(body)
        conversation_id = body.get("openConversationId")
        with self._state.lock:
            known = isinstance(conversation_id, str) and conversation_id in self._state.groups
        if not known:
            raise ApiError(400, "invalid.openConversationId", "openConversationId 不合法")
        assert isinstance(conversation_id, str)
        msg_key, params = self._msg_param(body)
        if not self._state.group_send_allowed(conversation_id):
            raise ApiError(400, "send.too.fast", "发送太快，请稍后重试")
        self._state.record_sent(
            SentMessage(
                via="group",
                conversation_id=conversation_id,
                msgtype=msg_key,
                text=str(params.get("content", params.get("text", ""))),
                title=str(params.get("title", "")),
                at_user_ids=[],
                user_ids=[],
                raw=body,
                params=params,
                at=self._state.now(),
            )
        )
        return _json_response({"processQueryKey": self._process_query_key()})

    async def _oto_send(self, request: web.Request) -> web.Response:
        self._require_token(request)
        body = await self._body(request)
        self._check_robot_code(body)
        user_ids = body.get("userIds")
        if not isinstance(user_ids, list) or not user_ids:
            raise ApiError(400, "invalidParameter.userIds.empty", "userIds 不能为空")
        if len(user_ids) > OTO_MAX_USERS:
            raise ApiError(400, "invalidParameter.userIds.overMax", "userIds 最多 20 个")
        msg_key, params = self._msg_param(body)
        with self._state.lock:
            valid = [
                str(u)
                for u in user_ids
                if str(u) in self._state.users and self._state.users[str(u)].in_corp
            ]
        invalid = [str(u) for u in user_ids if str(u) not in valid]
        now = self._state.now()
        for user_id in valid:
            self._state.record_sent(
                SentMessage(
                    via="oto",
                    conversation_id=oto_conversation(user_id),
                    msgtype=msg_key,
                    text=str(params.get("content", params.get("text", ""))),
                    title=str(params.get("title", "")),
                    at_user_ids=[],
                    user_ids=list(valid),
                    raw=body,
                    params=params,
                    at=now,
                )
            )
        return _json_response(
            {
                "processQueryKey": self._process_query_key(),
                "invalidStaffIdList": invalid,
                "flowControlledStaffIdList": [],
                "filteredStaffIdList": [],
            }
        )

    # --- files -----------------------------------------------------------------------------

    async def _file_download(self, request: web.Request) -> web.Response:
        self._require_token(request)
        body = await self._body(request)
        self._check_robot_code(body)
        code = body.get("downloadCode")
        with self._state.lock:
            known = isinstance(code, str) and code in self._state.files
        if not known:
            raise ApiError(400, "invalidParameter.downloadCode.invalid", "downloadCode 不合法")
        url = f"{self._state.base_url}{FILES_PATH}{quote(str(code), safe='')}"
        return _json_response({"downloadUrl": url})

    async def _file_bytes(self, request: web.Request) -> web.Response:
        with self._state.lock:
            found = self._state.files.get(request.match_info["code"])
        if found is None:
            raise web.HTTPNotFound()
        _, content = found
        return web.Response(body=content, content_type="application/octet-stream")

    async def _media_upload(self, request: web.Request) -> web.Response:
        self._require_legacy_token(request)
        if not request.content_type.startswith("multipart/"):
            raise LegacyError(40035, "缺少参数 media")
        media_type = request.query.get("type", "")
        file_name, content = "", b""
        found = False
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "media":
                file_name, content, found = part.filename or "", bytes(await part.read()), True
            elif part.name == "type" and not media_type:
                media_type = await part.text()
        if not found:
            raise LegacyError(40035, "缺少参数 media")
        media_type = media_type or "file"
        media_id = "@sim" + self._state.hex(24)
        now = self._state.now()
        self._state.record_upload(Upload(media_id, file_name, content, media_type, now))
        return _json_response(
            {
                "errcode": 0,
                "errmsg": "ok",
                "type": media_type,
                "media_id": media_id,
                "created_at": int(now * 1000),
            }
        )

    # --- cards -----------------------------------------------------------------------------

    def _new_card(self, body: Mapping[str, Any]) -> CardState:
        template = body.get("cardTemplateId")
        if not isinstance(template, str) or not template:
            raise ApiError(400, "param.cardTemplateIdEmpty", "cardTemplateId 不能为空")
        out_track_id = body.get("outTrackId")
        if not isinstance(out_track_id, str) or not out_track_id:
            raise ApiError(400, "param.outTrackIdEmpty", "outTrackId 不能为空")
        params = cardlib.param_map(body.get("cardData"), "cardData", required=True)
        private = cardlib.private_maps(body.get("privateData"))
        callback_type = body.get("callbackType", "")
        if callback_type not in ("", "STREAM", "HTTP"):
            raise ApiError(400, "param.callbackTypeInvalid", "callbackType 只能是 STREAM 或 HTTP")
        with self._state.lock:
            if out_track_id in self._state.cards:
                raise ApiError(400, "param.outTrackIdDuplicate", "outTrackId 已存在")
        return CardState(
            out_track_id=out_track_id,
            template_id=template,
            params=params or {},
            private=private,
            callback_type=str(callback_type),
            created_at=self._state.now(),
        )

    def _store_card(self, card: CardState) -> None:
        with self._state.lock:
            if card.out_track_id in self._state.cards:
                raise ApiError(400, "param.outTrackIdDuplicate", "outTrackId 已存在")
            self._state.cards[card.out_track_id] = card
            self._state.changed()

    def _card(self, body: Mapping[str, Any]) -> CardState:
        out_track_id = body.get("outTrackId")
        if not isinstance(out_track_id, str) or not out_track_id:
            raise ApiError(400, "param.outTrackIdEmpty", "outTrackId 不能为空")
        with self._state.lock:
            card = self._state.cards.get(out_track_id)
        if card is None:
            raise ApiError(400, "param.outTrackIdNotExist", "卡片实例不存在")
        return card

    def _check_deliver(self, body: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Validate openSpaceId and the delivery models; return the spaces."""
        spaces = cardlib.parse_open_space_id(body.get("openSpaceId"))
        types = {t for t, _ in spaces}
        if "IM_GROUP" in types and not isinstance(body.get("imGroupOpenDeliverModel"), dict):
            raise ApiError(400, "param.openSpaceModelInvalid", "缺少 imGroupOpenDeliverModel")
        if "IM_ROBOT" in types:
            model = body.get("imRobotOpenDeliverModel")
            if not isinstance(model, dict) or model.get("spaceType") != "IM_ROBOT":
                raise ApiError(
                    400,
                    "param.openSpaceModelInvalid",
                    "imRobotOpenDeliverModel.spaceType 必须是 IM_ROBOT",
                )
        return spaces

    def _deliver(
        self, card: CardState, body: Mapping[str, Any], spaces: list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        group_model = body.get("imGroupOpenDeliverModel") or {}
        robot_model = body.get("imRobotOpenDeliverModel") or {}
        with self._state.lock:
            for space_type, ident in spaces:
                error = ""
                model: Mapping[str, Any] = {}
                if space_type == "IM_GROUP":
                    model = group_model
                    if model.get("robotCode") != self._state.client_id:
                        error = "robotCode 不合法"
                    elif ident not in self._state.groups:
                        error = "机器人不在该群或群不存在"
                elif space_type == "IM_ROBOT":
                    model = robot_model
                    user = self._state.users.get(ident)
                    if user is None or not user.in_corp:
                        error = "用户不存在"
                if not error:
                    sid = cardlib.space_id(space_type, ident)
                    if sid not in card.spaces:
                        card.spaces.append(sid)
                    extension = model.get("extension")
                    if isinstance(extension, dict):
                        card.extension.update({str(k): str(v) for k, v in extension.items()})
                results.append(
                    {
                        "spaceType": space_type,
                        "spaceId": ident,
                        "success": not error,
                        "errorMsg": error,
                        "carrierId": "" if error else self._process_query_key(),
                    }
                )
            self._state.changed()
        return results

    async def _card_create(self, request: web.Request) -> web.Response:
        self._require_token(request)
        card = self._new_card(await self._body(request))
        self._store_card(card)
        return _json_response({"success": True, "result": card.out_track_id})

    async def _card_deliver(self, request: web.Request) -> web.Response:
        self._require_token(request)
        body = await self._body(request)
        card = self._card(body)
        spaces = self._check_deliver(body)
        return _json_response({"success": True, "result": self._deliver(card, body, spaces)})

    async def _card_create_deliver(self, request: web.Request) -> web.Response:
        self._require_token(request)
        body = await self._body(request)
        card = self._new_card(body)
        spaces = self._check_deliver(body)
        self._store_card(card)
        results = self._deliver(card, body, spaces)
        return _json_response(
            {
                "success": True,
                "result": {"outTrackId": card.out_track_id, "deliverResults": results},
            }
        )

    async def _card_update(self, request: web.Request) -> web.Response:
        self._require_token(request)
        body = await self._body(request)
        card = self._card(body)
        params = cardlib.param_map(body.get("cardData"), "cardData")
        private = cardlib.private_maps(body.get("privateData"))
        by_key, private_by_key = cardlib.update_options(body.get("cardUpdateOptions"))
        with self._state.lock:
            cardlib.apply_update(
                card, params=params, private=private, by_key=by_key, private_by_key=private_by_key
            )
            card.history.append(CardUpdate("api", params, private, by_key, None, self._state.now()))
            self._state.changed()
        return _json_response({"success": True, "result": True})

    # --- to-dos (待办) ------------------------------------------------------------------------

    def _todo_union(self, request: web.Request) -> str:
        union_id = request.match_info["unionId"]
        with self._state.lock:
            known = self._state.user_of_union(union_id) is not None
        if not known:
            raise ApiError(400, "invalidParameter.unionId", "unionId 不存在")
        return union_id

    async def _todo_create(self, request: web.Request) -> web.Response:
        self._require_token(request)
        union_id = self._todo_union(request)
        body = await self._body(request)
        subject = body.get("subject")
        if not isinstance(subject, str) or not subject.strip():
            raise ApiError(400, "invalidParameter.subject", "subject 不能为空")
        executors = body.get("executorIds") or []
        if not isinstance(executors, list) or not all(isinstance(e, str) for e in executors):
            raise ApiError(400, "invalidParameter.executorIds", "executorIds 格式错误")
        with self._state.lock:
            task_id = f"task{len(self._state.todos) + 1}"
            todo = SimTodo(task_id, union_id, subject, str(body.get("description") or ""),
                           str(body.get("sourceId") or ""), tuple(executors), False,
                           self._state.now())
            self._state.todos[task_id] = todo
            self._state.changed()
        return _json_response({"id": task_id, "subject": subject, "done": False,
                               "executorIds": executors, "sourceId": todo.source_id,
                               "createdTime": int(todo.created_at * 1000)})

    async def _todo_update(self, request: web.Request) -> web.Response:
        self._require_token(request)
        union_id = self._todo_union(request)
        body = await self._body(request)
        task_id = request.match_info["taskId"]
        with self._state.lock:
            todo = self._state.todos.get(task_id)
            if todo is None or todo.union_id != union_id:
                raise ApiError(404, "todo.task.notExist", "待办不存在")
            if isinstance(body.get("done"), bool):
                self._state.todos[task_id] = replace(todo, done=body["done"])
            self._state.changed()
        return _json_response({"result": True})

    # --- directory -------------------------------------------------------------------------

    async def _user_get(self, request: web.Request) -> web.Response:
        self._require_legacy_token(request)
        body = await self._legacy_body(request)
        user_id = body.get("userid")
        if not isinstance(user_id, str) or not user_id:
            raise LegacyError(40035, "缺少参数 userid")
        with self._state.lock:
            user = self._state.users.get(user_id)
        if user is None or not user.in_corp:
            raise LegacyError(60121, "找不到该用户")
        result = {
            "userid": user.user_id,
            "unionid": self._state.union_id(user.user_id),
            "name": user.name,
            "active": user.active,
            "admin": user.admin_level > 0,
            "boss": False,
            "senior": False,
            "real_authed": True,
            "hide_mobile": False,
            "exclusive_account": self._state.exclusive_accounts,
            "dept_id_list": list(user.dept_ids),
            "dept_order_list": [{"dept_id": d, "order": 0} for d in user.dept_ids],
            "leader_in_dept": [{"dept_id": d, "leader": d in user.leads} for d in user.dept_ids],
            "manager_userid": user.manager,
            "title": "",
            "job_number": "",
            "state_code": "86",
        }
        return self._legacy_ok(result)

    async def _list_admin(self, request: web.Request) -> web.Response:
        self._require_legacy_token(request)
        await self._legacy_body(request)
        with self._state.lock:
            admins = [u for u in self._state.users.values() if u.admin_level > 0 and u.in_corp]
        admins.sort(key=lambda u: u.admin_level)
        return self._legacy_ok([{"userid": u.user_id, "sys_level": u.admin_level} for u in admins])

    def _dept_id(self, body: Mapping[str, Any]) -> int:
        dept_id = body.get("dept_id")
        if isinstance(dept_id, str) and dept_id.isdigit():
            dept_id = int(dept_id)
        if not isinstance(dept_id, int) or isinstance(dept_id, bool):
            raise LegacyError(40035, "缺少参数 dept_id")
        with self._state.lock:
            if dept_id not in self._state.departments:
                raise LegacyError(60003, "部门不存在")
        return dept_id

    async def _list_userid(self, request: web.Request) -> web.Response:
        self._require_legacy_token(request)
        dept_id = self._dept_id(await self._legacy_body(request))
        with self._state.lock:
            ids = [
                u.user_id for u in self._state.users.values() if u.in_corp and dept_id in u.dept_ids
            ]
        return self._legacy_ok({"userid_list": ids})

    async def _list_simple(self, request: web.Request) -> web.Response:
        """A department's members a page at a time, as DingTalk serves a large directory:
        ``{dept_id, cursor, size}`` (size 1..100) -> ``{has_more, next_cursor, list}``."""
        self._require_legacy_token(request)
        body = await self._legacy_body(request)
        dept_id = self._dept_id(body)
        cursor, size = body.get("cursor", 0), body.get("size")
        if not isinstance(cursor, int) or isinstance(cursor, bool) or cursor < 0:
            raise LegacyError(40035, "不合法的参数 cursor")
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= LIST_PAGE_MAX:
            raise LegacyError(40035, "不合法的参数 size")
        with self._state.lock:
            members = sorted((u for u in self._state.users.values()
                              if u.in_corp and dept_id in u.dept_ids), key=lambda u: u.user_id)
        page = members[cursor:cursor + size]
        more = cursor + size < len(members)
        result: dict[str, Any] = {"has_more": more,
                                  "list": [{"userid": u.user_id, "name": u.name} for u in page]}
        if more:
            result["next_cursor"] = cursor + size
        return self._legacy_ok(result)

    def _dept_json(self, dept_id: int) -> dict[str, Any]:
        dept = self._state.departments[dept_id]
        result: dict[str, Any] = {"dept_id": dept.dept_id, "name": dept.name}
        if dept.parent_id is not None:
            result["parent_id"] = dept.parent_id
        return result

    async def _dept_get(self, request: web.Request) -> web.Response:
        self._require_legacy_token(request)
        dept_id = self._dept_id(await self._legacy_body(request))
        with self._state.lock:
            # department/get (not listsub) names the department's heads.
            leaders = [u.user_id for u in self._state.users.values()
                       if u.in_corp and dept_id in u.leads]
            return self._legacy_ok({**self._dept_json(dept_id),
                                    "dept_manager_userid_list": leaders})

    async def _dept_listsub(self, request: web.Request) -> web.Response:
        self._require_legacy_token(request)
        dept_id = self._dept_id(await self._legacy_body(request))
        with self._state.lock:
            subs = [
                self._dept_json(d.dept_id)
                for d in self._state.departments.values()
                if d.parent_id == dept_id
            ]
        return self._legacy_ok(subs)

    def _legacy_ok(self, result: Any) -> web.Response:
        return _json_response(
            {"errcode": 0, "errmsg": "ok", "result": result, "request_id": self._state.hex(13)}
        )

    async def _change_main_admin(self, request: web.Request) -> web.Response:
        self._require_token(request)
        body = await self._body(request)
        if not self._state.exclusive_accounts:
            raise ApiError(
                403,
                "Forbidden.AccessDenied.AccessTokenPermissionDenied",
                "没有调用该接口的权限，接口权限申请参考：https://open.dingtalk.com/document/orgapp/add-api-permission",
                {
                    "accessdenieddetail": {
                        "requiredScopes": ["Contact.OrgAccountSecurity.ReadWrite"]
                    }
                },
            )
        for name in ("sourceUserId", "targetUserId", "effectCorpId"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise ApiError(400, f"invalidParameter.{name}.empty", f"{name} 不能为空")
        if body["effectCorpId"] != self._state.corp_id:
            raise ApiError(400, "invalidParameter.effectCorpId", "effectCorpId 不合法")
        with self._state.lock:
            source = self._state.users.get(body["sourceUserId"])
            target = self._state.users.get(body["targetUserId"])
            if source is None or target is None or not source.in_corp or not target.in_corp:
                raise ApiError(400, "invalidParameter.userId.notExist", "用户不存在")
            if source.admin_level != 1:
                raise ApiError(
                    400, "invalidParameter.sourceUserId.notMainAdmin", "源用户不是主管理员"
                )
            self._state.transfer_main_admin(source.user_id, target.user_id)
        log.info("main administrator transferred through the exclusive-account API")
        return _json_response({})
