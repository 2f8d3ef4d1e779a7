"""Role labels (通讯录角色) on the legacy host: groups of roles, and who carries each role.

The paths mix ``/role/...`` and ``/topapi/role/...`` as DingTalk's do. Bodies and answers
follow the open-platform pages (``topapi/role/list`` pages role groups, at most 200 a page;
``topapi/role/simplelist`` pages a role's members, at most 100 a page;
``addrolesforemps`` / ``removerolesforemps`` take comma-separated ``roleIds`` and
``userIds``, at most 20 of each, and apply every role to every user). Errors are legacy
ones: HTTP 200 with ``errcode`` (33011 bad roleIds, 33012 bad userIds, 40035 a missing
parameter; a role group or role name already taken is refused with 33013 / 33014, codes the
public pages do not list: inferred). ``deny(True)`` makes every role call answer as for an
app without the contacts-management permission (errcode 60011). ``calls`` counts each
role path that was answered.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from dingtalk_sim.errors import LegacyError
from dingtalk_sim.state import SimState

LIST_PATH = "/topapi/role/list"
ADD_GROUP_PATH = "/role/add_role_group"
ADD_ROLE_PATH = "/role/add_role"
ADD_EMPS_PATH = "/topapi/role/addrolesforemps"
REMOVE_EMPS_PATH = "/topapi/role/removerolesforemps"
MEMBERS_PATH = "/topapi/role/simplelist"
ROLE_PATHS = (LIST_PATH, ADD_GROUP_PATH, ADD_ROLE_PATH, ADD_EMPS_PATH, REMOVE_EMPS_PATH,
              MEMBERS_PATH)
MAX_IDS = 20
MAX_GROUP_PAGE = 200
MAX_MEMBER_PAGE = 100
DENIED = "应用尚未开通所需的权限：[qyapi_manage_addresslist]"


@dataclass
class RoleGroup:
    group_id: int
    name: str
    roles: dict[int, str] = field(default_factory=dict)      # role id -> name


class RoleBook:
    """The corp's role groups, roles and role members; guarded by the sim's lock."""

    def __init__(self, state: SimState) -> None:
        self._state = state
        self.groups: dict[int, RoleGroup] = {}
        self.members: dict[int, list[str]] = {}                # role id -> user ids, in order
        self.calls: Counter[str] = Counter()
        self.denied = False
        self._ids = itertools.count(1_500_000_001)
        # DingTalk's own default group, as a new corp has it.
        self.add_group("默认", ["主管", "负责人"])

    def add_group(self, name: str, roles: Sequence[str] = ()) -> int:
        with self._state.lock:
            gid = next(self._ids)
            self.groups[gid] = RoleGroup(gid, name)
            for r in roles:
                self.add_role(gid, r)
            self._state.changed()
            return gid

    def add_role(self, group_id: int, name: str) -> int:
        with self._state.lock:
            rid = next(self._ids)
            self.groups[group_id].roles[rid] = name
            self.members[rid] = []
            self._state.changed()
            return rid

    def role_id(self, group: str, role: str) -> int | None:
        with self._state.lock:
            for g in self.groups.values():
                if g.name == group:
                    for rid, name in g.roles.items():
                        if name == role:
                            return rid
            return None

    def holders(self, role_id: int) -> list[str]:
        with self._state.lock:
            return list(self.members.get(role_id, []))

    def drop_user(self, user_id: str) -> None:
        """``user_id`` left the corp: off every role."""
        with self._state.lock:
            for have in self.members.values():
                if user_id in have:
                    have.remove(user_id)
            self._state.changed()

    def assign(self, role_id: int, user_ids: list[str], on: bool) -> None:
        with self._state.lock:
            have = self.members[role_id]
            for u in user_ids:
                if on and u not in have:
                    have.append(u)
                elif not on and u in have:
                    have.remove(u)
            self._state.changed()


class RoleApi:
    """The role endpoints of the legacy host (the OpenApi middleware records, faults and
    renders errors for them as for every path)."""

    def __init__(self, state: SimState, book: RoleBook) -> None:
        self._state = state
        self._book = book

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_post(LIST_PATH, self._list)
        r.add_post(ADD_GROUP_PATH, self._add_group)
        r.add_post(ADD_ROLE_PATH, self._add_role)
        r.add_post(ADD_EMPS_PATH, self._add_emps)
        r.add_post(REMOVE_EMPS_PATH, self._remove_emps)
        r.add_post(MEMBERS_PATH, self._members)

    # --- shared ----------------------------------------------------------------------------

    async def _enter(self, request: web.Request) -> dict[str, Any]:
        token = request.query.get("access_token", "")
        if not token:
            raise LegacyError(88, "ding talk error[subcode=40000,submsg=access_token is blank]",
                              sub_code="40000", sub_msg="access_token is blank")
        if not self._state.token_valid(token):
            raise LegacyError(88, "ding talk error[subcode=40014,submsg=不合法的access_token]",
                              sub_code="40014", sub_msg="不合法的access_token")
        with self._state.lock:
            denied = self._book.denied
        if denied:
            raise LegacyError(60011, DENIED)
        body: Any = {}
        if request.body_exists:
            try:
                body = await request.json()
            except ValueError:
                body = None
        if not isinstance(body, dict):
            raise LegacyError(40035, "缺少参数 json")
        return body

    def _ok(self, path: str, extra: Mapping[str, Any]) -> web.Response:
        with self._state.lock:
            self._book.calls[path] += 1
            self._state.changed()
        return web.json_response({"errcode": 0, "errmsg": "ok", **extra,
                                  "request_id": self._state.hex(13)})

    @staticmethod
    def _page(body: Mapping[str, Any], most: int) -> tuple[int, int]:
        size, offset = body.get("size", 20), body.get("offset", 0)
        if not isinstance(size, int) or not isinstance(offset, int) or size < 1 or offset < 0:
            raise LegacyError(40035, "不合法的参数 size 或 offset")
        return min(size, most), offset

    @staticmethod
    def _ids(body: Mapping[str, Any], key: str, errcode: int) -> list[str]:
        raw = body.get(key)
        if not isinstance(raw, str) or not raw.strip():
            raise LegacyError(40035, f"缺少参数 {key}")
        ids = [x.strip() for x in raw.split(",") if x.strip()]
        if len(ids) > MAX_IDS:
            raise LegacyError(errcode, f"{key} 最多 {MAX_IDS} 个")
        return ids

    # --- endpoints -------------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        body = await self._enter(request)
        size, offset = self._page(body, MAX_GROUP_PAGE)
        with self._state.lock:
            groups = sorted(self._book.groups.values(), key=lambda g: g.group_id)
            page = [{"groupId": g.group_id, "name": g.name,
                     "roles": [{"id": rid, "name": n} for rid, n in g.roles.items()]}
                    for g in groups[offset:offset + size]]
            more = offset + size < len(groups)
        return self._ok(LIST_PATH, {"result": {"hasMore": more, "list": page}})

    async def _add_group(self, request: web.Request) -> web.Response:
        body = await self._enter(request)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise LegacyError(40035, "缺少参数 name")
        with self._state.lock:
            if any(g.name == name for g in self._book.groups.values()):
                raise LegacyError(33013, "角色组名称已存在")
            gid = self._book.add_group(name)
        return self._ok(ADD_GROUP_PATH, {"groupId": gid})

    async def _add_role(self, request: web.Request) -> web.Response:
        body = await self._enter(request)
        name, gid = body.get("roleName"), body.get("groupId")
        if not isinstance(name, str) or not name.strip():
            raise LegacyError(40035, "缺少参数 roleName")
        with self._state.lock:
            group = self._book.groups.get(gid) if isinstance(gid, int) else None
            if group is None:
                raise LegacyError(33010, "角色组不存在")
            if name in group.roles.values():
                raise LegacyError(33014, "角色名称已存在")
            rid = self._book.add_role(group.group_id, name)
        return self._ok(ADD_ROLE_PATH, {"roleId": rid})

    async def _emps(self, request: web.Request, path: str, on: bool) -> web.Response:
        body = await self._enter(request)
        role_ids = self._ids(body, "roleIds", 33011)
        user_ids = self._ids(body, "userIds", 33012)
        with self._state.lock:
            rids = [int(r) for r in role_ids if r.isdigit() and int(r) in self._book.members]
            if len(rids) != len(role_ids):
                raise LegacyError(33011, "roleIds 不合法")
            known = [u for u in user_ids
                     if u in self._state.users and self._state.users[u].in_corp]
            if len(known) != len(user_ids):
                raise LegacyError(33012, "userIds 不合法")
            for rid in rids:
                self._book.assign(rid, user_ids, on)
        return self._ok(path, {})

    async def _add_emps(self, request: web.Request) -> web.Response:
        return await self._emps(request, ADD_EMPS_PATH, True)

    async def _remove_emps(self, request: web.Request) -> web.Response:
        return await self._emps(request, REMOVE_EMPS_PATH, False)

    async def _members(self, request: web.Request) -> web.Response:
        body = await self._enter(request)
        rid = body.get("role_id")
        size, offset = self._page(body, MAX_MEMBER_PAGE)
        with self._state.lock:
            if not isinstance(rid, int) or rid not in self._book.members:
                raise LegacyError(33011, "角色不存在")
            users = self._book.members[rid]
            page = [{"userid": u, "name": self._state.users[u].name if u in self._state.users
                     else "", "manageScopes": []} for u in users[offset:offset + size]]
            more = offset + size < len(users)
        return self._ok(MEMBERS_PATH, {"result": {"hasMore": more, "list": page}})
