"""The one DingTalk OpenAPI client, over the process's one shared ``aiohttp.ClientSession``.

Token cache under a lock; per-request timeouts; retries with jittered exponential backoff on
429, 5xx, timeouts and DingTalk's QPS-limit codes (``Retry-After`` honoured); one token
refresh on a rejected token (HTTP 401, or HTTP 400 ``InvalidAuthentication`` as the live
service answers, or legacy ``errcode 88/40014``); errors mapped to typed exceptions here and
nowhere else; a count of calls per API and month, because DingTalk caps calls per month.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.config import DingTalkSettings
from bot.core.domain.rolesync import MEMBERS_PAGE, ROLES_PAGE, RoleGroupInfo
from bot.ports import (
    AuthError,
    BadRequest,
    DingTalkError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    SessionExpired,
    TransportError,
)
from bot.transport import bodies

# The errors are the ports' (bot.ports); named here too for the callers that import them here.
__all__ = [
    "AuthError", "BadRequest", "DingTalkError", "NotFound", "OpenApiClient", "PermissionDenied",
    "RateLimited", "ServerError", "SessionExpired", "TransportError",
]

log = logging.getLogger(__name__)

RETRYABLE_CODES = {
    "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
    "Forbidden.AccessDenied.QpsLimitForApi",
    "send.too.fast",
    "ServiceUnavailable",
    "SystemBusy",
}
RETRYABLE_ERRCODES = {90018, 90002, -1, 15}
AUTH_CODES = {"InvalidAuthentication", "AuthenticationFailed.InvalidToken"}
AUTH_SUBCODES = {"40014", "40001", "42001"}
# Token, identity and contacts APIs are not metered against the monthly quota.
UNMETERED_PREFIXES = ("/v1.0/oauth2/", "/gettoken", "/topapi/v2/user/", "/topapi/user/",
                      "/topapi/v2/department/", "/v1.0/contact/",
                      # not OpenAPI calls: the session webhook and a file URL
                      "/robot/sendBySession", "/robot/file")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    v = headers.get("Retry-After")
    if v is None:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        return None


class OpenApiClient(bodies.MessageSends):
    """Calls DingTalk. ``sleep`` and ``rng`` are injectable so tests control time; ``now``
    (the bot's clock) dates each metered call's month."""

    def __init__(self, http: aiohttp.ClientSession, settings: DingTalkSettings, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._http = http
        self._s = settings
        self._api = settings.openapi_endpoint.rstrip("/")
        self._oapi = settings.oapi_endpoint.rstrip("/")
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._mono = monotonic
        self._now = now
        self._token: str | None = None
        self._token_deadline = 0.0
        self._token_lock = asyncio.Lock()
        self.calls: Counter[str] = Counter()
        self.metered_month: dict[str, int] = {}
        self.retries = 0

    # ---- token -------------------------------------------------------------------------
    async def token(self) -> str:
        if self._token and self._mono() < self._token_deadline:
            return self._token
        async with self._token_lock:
            if self._token and self._mono() < self._token_deadline:
                return self._token
            data = await self._request(
                "POST", f"{self._api}/v1.0/oauth2/accessToken", "/v1.0/oauth2/accessToken",
                json_body={"appKey": self._s.client_id,
                           "appSecret": self._s.client_secret.get_secret_value()},
                auth=None,
            )
            expires = float(data.get("expireIn", 7200))
            self._token = str(data["accessToken"])
            # Refresh five minutes early (or at half-life for short test tokens).
            self._token_deadline = self._mono() + max(1.0, expires - min(300.0, expires / 2))
            return self._token

    def _invalidate(self, used: str | None) -> None:
        if used is not None and used == self._token:
            self._token = None

    # ---- generic calls -----------------------------------------------------------------
    async def api(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call the new API (``/v1.0/...``) with the token header."""
        return await self._call(method, f"{self._api}{path}", path, body, auth="header")

    async def oapi(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call the legacy API (``/topapi/...``) with the token as a query parameter."""
        return await self._call("POST", f"{self._oapi}{path}", path, body, auth="query")

    async def _call(self, method: str, url: str, api: str, body: Mapping[str, Any] | None,
                    auth: str, form: Callable[[], aiohttp.FormData] | None = None) -> Any:
        refreshed = False
        while True:
            tok = await self.token()
            try:
                return await self._request(method, url, api, json_body=body, auth=auth, tok=tok,
                                           form=form)
            except AuthError:
                if refreshed:
                    raise
                refreshed = True
                log.warning("token refused by %s; refreshing once", api)
                self._invalidate(tok)

    def _count(self, api: str) -> None:
        self.calls[api] += 1
        if not api.startswith(UNMETERED_PREFIXES):
            month = self._now().astimezone(UTC).strftime("%Y-%m")
            self.metered_month[month] = self.metered_month.get(month, 0) + 1

    async def _request(self, method: str, url: str, api: str, *, json_body: Any = None,
                       auth: str | None, tok: str | None = None,
                       form: Callable[[], aiohttp.FormData] | None = None) -> Any:
        """One logical call, with retries for transient failures."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, url, api, json_body=json_body, auth=auth,
                                        tok=tok, data=form() if form else None)
            except DingTalkError as e:
                if not e.retryable or attempt > self._s.max_retries:
                    raise
                delay = e.retry_after
                if delay is None:
                    delay = min(8.0, 0.2 * 2 ** (attempt - 1)) * (0.5 + self._rng.random())
                self.retries += 1
                log.info("retrying %s in %.2fs after %s (attempt %d)", api, delay, e.code, attempt)
                await self._sleep(delay)

    async def _once(self, method: str, url: str, api: str, *, json_body: Any, auth: str | None,
                    tok: str | None, data: aiohttp.FormData | None) -> Any:
        headers = {"Accept": "application/json"}
        params: dict[str, str] = {}
        if auth == "header" and tok:
            headers["x-acs-dingtalk-access-token"] = tok
        elif auth == "query" and tok:
            params["access_token"] = tok
        timeout = aiohttp.ClientTimeout(total=self._s.request_timeout)
        self._count(api)
        try:
            async with self._http.request(
                method, url, json=json_body if data is None else None, data=data, params=params,
                headers=headers, timeout=timeout,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = _retry_after(resp.headers)
                ctype = resp.headers.get("Content-Type", "")
        except (TimeoutError, aiohttp.ClientError) as e:
            raise TransportError(api, 0, type(e).__name__, str(e) or "timeout") from None
        if "json" not in ctype and status == 200 and method == "GET":
            return raw
        try:
            payload: Any = json.loads(raw) if raw else {}
        except ValueError:
            payload = {"message": raw[:200].decode("utf-8", "replace")}
        return self._check(api, status, payload, retry_after, tok)

    def _check(self, api: str, status: int, payload: Any, retry_after: float | None,
               tok: str | None) -> Any:
        if not isinstance(payload, dict):
            if 200 <= status < 300:
                return payload
            payload = {}
        code = str(payload.get("code", "") or "")
        msg = str(payload.get("message", "") or payload.get("errmsg", "") or "")
        rid = str(payload.get("requestid", "") or payload.get("request_id", "") or "")
        if status >= 500:
            raise ServerError(api, status, code or str(status), msg, rid, retry_after)
        if status == 429 or code in RETRYABLE_CODES:
            raise RateLimited(api, status, code or "429", msg, rid, retry_after)
        if status == 401 or code in AUTH_CODES:
            raise AuthError(api, status, code or "401", msg, rid)
        if status == 403:
            raise PermissionDenied(api, status, code, msg, rid)
        if status >= 400:
            raise BadRequest(api, status, code, msg, rid)
        errcode = payload.get("errcode")
        if isinstance(errcode, int) and errcode != 0:
            sub = str(payload.get("sub_code", "") or "")
            if errcode == 300001:
                raise SessionExpired(api, status, "300001", msg, rid)
            if errcode in RETRYABLE_ERRCODES:
                raise RateLimited(api, status, str(errcode), msg, rid, retry_after)
            if (errcode == 88 and sub in AUTH_SUBCODES) or errcode in (40014, 42001):
                raise AuthError(api, status, f"{errcode}/{sub}", msg, rid)
            if errcode == 60121:
                raise NotFound(api, status, "60121", msg, rid)
            if errcode in (60011, 60020):
                raise PermissionDenied(api, status, str(errcode), msg, rid)
            raise BadRequest(api, status, str(errcode), msg, rid)
        return payload

    # ---- typed helpers -----------------------------------------------------------------
    async def send_webhook(self, url: str, body: Mapping[str, Any]) -> None:
        """Reply through a sessionWebhook (no token: the URL is the secret; never log it)."""
        await self._request("POST", url, "/robot/sendBySession", json_body=body, auth=None)

    async def group_send(self, conversation_id: str, msg_key: str, msg_param: Mapping[str, Any]) -> str:
        data = await self.api("POST", "/v1.0/robot/groupMessages/send", {
            "robotCode": self._s.effective_robot_code, "openConversationId": conversation_id,
            "msgKey": msg_key, "msgParam": json.dumps(msg_param, ensure_ascii=False),
        })
        return str(data.get("processQueryKey", ""))

    async def oto_send(self, user_ids: list[str], msg_key: str,
                       msg_param: Mapping[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = await self.api("POST", "/v1.0/robot/oToMessages/batchSend", {
            "robotCode": self._s.effective_robot_code, "userIds": user_ids,
            "msgKey": msg_key, "msgParam": json.dumps(msg_param, ensure_ascii=False),
        })
        return data

    async def create_and_deliver_card(self, body: Mapping[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = await self.api("POST", "/v1.0/card/instances/createAndDeliver", body)
        return data

    async def update_card(self, out_track_id: str, params: Mapping[str, str],
                          private: Mapping[str, Mapping[str, str]] | None = None) -> None:
        await self.api("PUT", "/v1.0/card/instances",
                       bodies.card_update(out_track_id, params, private))

    async def create_todo(self, union_id: str, subject: str, description: str,
                          source_id: str) -> str:
        """A to-do for ``union_id``; its task id."""
        u = quote(union_id, safe="")
        data = await self._call(
            "POST", f"{self._api}/v1.0/todo/users/{u}/tasks?operatorId={u}",
            "/v1.0/todo/users/{unionId}/tasks",
            bodies.todo_create(subject, description, source_id, union_id), auth="header")
        return str(data["id"])

    async def complete_todo(self, union_id: str, task_id: str) -> None:
        u, task = quote(union_id, safe=""), quote(task_id, safe="")
        await self._call("PUT", f"{self._api}/v1.0/todo/users/{u}/tasks/{task}?operatorId={u}",
                         "/v1.0/todo/users/{unionId}/tasks/{taskId}", bodies.todo_done(),
                         auth="header")

    async def user_get(self, user_id: str) -> dict[str, Any]:
        data = await self.oapi("/topapi/v2/user/get", {"userid": user_id, "language": "zh_CN"})
        result: dict[str, Any] = data.get("result") or {}
        return result

    async def list_admins(self) -> list[dict[str, Any]]:
        data = await self.oapi("/topapi/user/listadmin", {})
        return list(data.get("result") or [])

    async def dept_user_ids(self, dept_id: int) -> list[str]:
        data = await self.oapi("/topapi/user/listid", {"dept_id": dept_id})
        return [str(u) for u in (data.get("result") or {}).get("userid_list", [])]

    async def dept_get(self, dept_id: int) -> dict[str, Any]:
        data = await self.oapi("/topapi/v2/department/get", {"dept_id": dept_id, "language": "zh_CN"})
        return dict(data.get("result") or {})

    async def dept_children(self, dept_id: int) -> list[dict[str, Any]]:
        data = await self.oapi("/topapi/v2/department/listsub", {"dept_id": dept_id,
                                                                 "language": "zh_CN"})
        return list(data.get("result") or [])

    async def download_file(self, download_code: str) -> bytes:
        data = await self.api("POST", "/v1.0/robot/messageFiles/download", {
            "downloadCode": download_code, "robotCode": self._s.effective_robot_code,
        })
        url = str(data["downloadUrl"])
        raw = await self._request("GET", url, "/robot/file", auth=None)
        return raw if isinstance(raw, bytes) else json.dumps(raw).encode()

    async def upload_media(self, content: bytes, file_name: str, media_type: str = "file") -> str:
        def form() -> aiohttp.FormData:
            # A fresh form each attempt; quote_fields off keeps a Chinese file name readable.
            f = aiohttp.FormData(quote_fields=False)
            f.add_field("media", content, filename=file_name,
                        content_type="application/octet-stream")
            return f

        data = await self._call("POST", f"{self._oapi}/media/upload?type={media_type}",
                                "/media/upload", None, auth="query", form=form)
        return str(data["media_id"])

    async def change_main_admin(self, source_user: str, target_user: str, corp_id: str) -> None:
        await self.api("POST", "/v1.0/contact/orgAccounts/mainAdministrators/change", {
            "sourceUserId": source_user, "targetUserId": target_user, "effectCorpId": corp_id,
        })

    # ---- role labels (通讯录角色) ---------------------------------------------------------
    async def role_groups(self) -> list[RoleGroupInfo]:
        out: list[RoleGroupInfo] = []
        offset = 0
        while True:
            data = await self.oapi("/topapi/role/list", bodies.page(ROLES_PAGE, offset))
            result = data.get("result") or {}
            for g in result.get("list") or []:
                out.append(RoleGroupInfo(int(g["groupId"]), str(g.get("name", "")), tuple(
                    (int(r["id"]), str(r.get("name", ""))) for r in g.get("roles") or [])))
            if not result.get("hasMore"):
                return out
            offset += ROLES_PAGE

    async def add_role_group(self, name: str) -> int:
        data = await self.oapi("/role/add_role_group", {"name": name})
        return int(data["groupId"])

    async def add_role(self, group_id: int, name: str) -> int:
        data = await self.oapi("/role/add_role", {"roleName": name, "groupId": group_id})
        return int(data["roleId"])

    async def role_members(self, role_id: int) -> list[str]:
        out: list[str] = []
        offset = 0
        while True:
            data = await self.oapi("/topapi/role/simplelist",
                                   bodies.page(MEMBERS_PAGE, offset, role_id=role_id))
            result = data.get("result") or {}
            out += [str(u["userid"]) for u in result.get("list") or []]
            if not result.get("hasMore"):
                return out
            offset += MEMBERS_PAGE

    async def add_roles_for_users(self, role_ids: Sequence[int],
                                  user_ids: Sequence[str]) -> None:
        await self.oapi("/topapi/role/addrolesforemps", bodies.role_emps(role_ids, user_ids))

    async def remove_roles_for_users(self, role_ids: Sequence[int],
                                     user_ids: Sequence[str]) -> None:
        await self.oapi("/topapi/role/removerolesforemps", bodies.role_emps(role_ids, user_ids))
