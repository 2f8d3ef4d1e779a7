"""The handler layer: the real dispatcher, router and due handlers on a real store
(``store_url``: SQLite and PostgreSQL, migrated once a session and emptied for each test),
with no socket at all. DingTalk is an in-process fake
(:class:`FakeDingTalk`): the directory is served from an in-memory copy of the sandbox's demo
company, and whatever Baton calls directly is recorded. What Baton would send later (replies,
cards, alerts) is read back from the outbox table: the recording the outbox would deliver."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import itertools
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select

from bot.app import prepare_database
from bot.bootstrap import bootstrap
from bot.cli.sandbox import DEMO_CATALOG, DEMO_CORP, DEMO_DEPARTMENTS, DEMO_GROUP, DEMO_USERS
from bot.config import Settings
from bot.core.clock import FakeClock
from bot.core.domain.feed import classified
from bot.core.domain.rolesync import RoleGroupInfo
from bot.core.faults import Faults
from bot.dispatch.dispatcher import Dispatcher
from bot.scheduling.due import DueRunner
from bot.transport import bodies
from bot.transport.inbound import CardAction, FileRef, IncomingMessage
from bot.transport.openapi import BadRequest, DingTalkError, NotFound, PermissionDenied
from dingtalk_sim import SimUser
from handlers import build_router
from storage import migrate
from storage.db import Database, open_database
from storage.models import AuditEntry, OutboxMessage
from tests.conftest import _pg_admin, _pg_database, _pg_state

GROUP = DEMO_GROUP
CARD = "baton-dingsandboxcorp-R{}"   # a request card's outTrackId, by request number
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)     # 10:00 in Asia/Shanghai
ROOT = 1                                          # DingTalk's root department
_ids = itertools.count(1)


# ---- DingTalk, in process ---------------------------------------------------------------------

@dataclass
class Call:
    method: str
    args: tuple[Any, ...]


@dataclass
class FakeDingTalk(bodies.MessageSends):
    """Stands where the OpenAPI client stands, with the same typed methods and the same
    errors the client raises for the simulator's answers (60121 -> NotFound, a forbidden
    exclusive-account change -> PermissionDenied ...). The company is a copy of the demo's."""

    corp_id: str = DEMO_CORP
    users: dict[str, SimUser] = field(default_factory=lambda: {
        u.user_id: replace(u, dept_ids=list(u.dept_ids)) for u in DEMO_USERS})
    departments: dict[int, tuple[str, int | None]] = field(default_factory=lambda: {
        k: (v, None if k == ROOT else ROOT) if isinstance(v, str) else v
        for k, v in DEMO_DEPARTMENTS.items()})     # (name, parent): a bare name is the root's
    exclusive_accounts: bool = False
    files: dict[str, bytes] = field(default_factory=dict)      # download code -> bytes
    calls: list[Call] = field(default_factory=list)
    _fail: dict[str, list[DingTalkError]] = field(default_factory=dict)
    # Role labels (通讯录角色): group id -> (name, {role id: role name}); role id -> holders.
    role_book: dict[int, tuple[str, dict[int, str]]] = field(default_factory=lambda: {
        1: ("默认", {2: "主管"})})
    role_holders: dict[int, list[str]] = field(default_factory=lambda: {2: []})
    _role_ids: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    def fail_next(self, method: str, error: DingTalkError, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` raise ``error``."""
        self._fail.setdefault(method, []).extend([error] * times)

    def clear_failures(self) -> None:
        self._fail.clear()

    def set_user(self, user_id: str, **changes: Any) -> None:
        self.users[user_id] = replace(self.users[user_id], **changes)

    def console_transfer_main_admin(self, from_user: str, to_user: str) -> None:
        """What an owner does in DingTalk's admin console (no API call)."""
        self.set_user(to_user, admin_level=1)
        self.set_user(from_user, admin_level=0)

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [c.args for c in self.calls if c.method == method]

    def _enter(self, method: str, *args: Any) -> None:
        self.calls.append(Call(method, args))
        if self._fail.get(method):
            raise self._fail[method].pop(0)

    # -- the directory
    async def user_get(self, user_id: str) -> dict[str, Any]:
        self._enter("user_get", user_id)
        u = self.users.get(user_id)
        if u is None or not u.in_corp:
            raise NotFound("/topapi/v2/user/get", 200, "60121", "找不到该用户")
        return {"userid": u.user_id, "unionid": self.union_id(u.user_id), "name": u.name,
                "active": u.active,
                "admin": u.admin_level > 0, "exclusive_account": self.exclusive_accounts,
                "dept_id_list": list(u.dept_ids), "manager_userid": u.manager}

    async def list_admins(self) -> list[dict[str, Any]]:
        self._enter("list_admins")
        admins = sorted((u for u in self.users.values() if u.admin_level > 0 and u.in_corp),
                        key=lambda u: u.admin_level)
        return [{"userid": u.user_id, "sys_level": u.admin_level} for u in admins]

    def _dept(self, dept_id: int) -> dict[str, Any]:
        if dept_id not in self.departments:
            raise BadRequest("/topapi/v2/department/get", 200, "60003", "部门不存在")
        name, parent = self.departments[dept_id]
        out: dict[str, Any] = {"dept_id": dept_id, "name": name}
        if parent is not None:
            out["parent_id"] = parent
        return out

    async def dept_user_ids(self, dept_id: int) -> list[str]:
        self._enter("dept_user_ids", dept_id)
        self._dept(dept_id)
        return [u.user_id for u in self.users.values() if u.in_corp and dept_id in u.dept_ids]

    async def dept_get(self, dept_id: int) -> dict[str, Any]:
        self._enter("dept_get", dept_id)
        return {**self._dept(dept_id), "dept_manager_userid_list": [
            u.user_id for u in self.users.values() if u.in_corp and dept_id in u.leads]}

    async def dept_children(self, dept_id: int) -> list[dict[str, Any]]:
        self._enter("dept_children", dept_id)
        self._dept(dept_id)
        return [self._dept(d) for d, (_, parent) in self.departments.items() if parent == dept_id]

    async def change_main_admin(self, source_user: str, target_user: str, corp_id: str) -> None:
        self._enter("change_main_admin", source_user, target_user, corp_id)
        api = "/v1.0/contact/orgAccounts/mainAdministrators/change"
        if not self.exclusive_accounts:
            raise PermissionDenied(api, 403, "Forbidden.AccessDenied.AccessTokenPermissionDenied",
                                   "没有调用该接口的权限")
        if corp_id != self.corp_id:
            raise BadRequest(api, 400, "invalidParameter.effectCorpId", "effectCorpId 不合法")
        source, target = self.users.get(source_user), self.users.get(target_user)
        if source is None or target is None or not source.in_corp or not target.in_corp:
            raise BadRequest(api, 400, "invalidParameter.userId.notExist", "用户不存在")
        if source.admin_level != 1:
            raise BadRequest(api, 400, "invalidParameter.sourceUserId.notMainAdmin", "源用户不是主管理员")
        self.console_transfer_main_admin(source_user, target_user)

    # -- role labels
    def role_id(self, group: str, role: str) -> int | None:
        return next((rid for name, roles in self.role_book.values() if name == group
                     for rid, n in roles.items() if n == role), None)

    def holders_of(self, group: str, role: str) -> list[str]:
        rid = self.role_id(group, role)
        return [] if rid is None else list(self.role_holders[rid])

    def console_assign(self, group: str, role: str, user_id: str) -> None:
        """A label given in DingTalk's console (no API call, nothing Baton did)."""
        rid = self.role_id(group, role)
        if rid is None:
            gid = next((g for g, (n, _) in self.role_book.items() if n == group), None)
            if gid is None:
                gid = next(self._role_ids)
                self.role_book[gid] = (group, {})
            rid = next(self._role_ids)
            self.role_book[gid][1][rid] = role
            self.role_holders[rid] = []
        self.role_holders[rid].append(user_id)

    async def role_groups(self) -> list[RoleGroupInfo]:
        self._enter("role_groups")
        found = [RoleGroupInfo(gid, name, tuple(roles.items()))
                 for gid, (name, roles) in sorted(self.role_book.items())]
        await asyncio.sleep(0)          # an answer on its way: another caller may go first
        return found

    async def add_role_group(self, name: str) -> int:
        self._enter("add_role_group", name)
        if any(n == name for n, _ in self.role_book.values()):
            raise BadRequest("/role/add_role_group", 200, "33013", "角色组名称已存在")
        gid = next(self._role_ids)
        self.role_book[gid] = (name, {})
        return gid

    async def add_role(self, group_id: int, name: str) -> int:
        self._enter("add_role", group_id, name)
        if name in self.role_book[group_id][1].values():
            raise BadRequest("/role/add_role", 200, "33014", "角色名称已存在")
        rid = next(self._role_ids)
        self.role_book[group_id][1][rid] = name
        self.role_holders[rid] = []
        return rid

    async def role_members(self, role_id: int) -> list[str]:
        self._enter("role_members", role_id)
        if role_id not in self.role_holders:
            raise BadRequest("/topapi/role/simplelist", 200, "33011", "角色不存在")
        return list(self.role_holders[role_id])

    def _emps(self, method: str, role_ids: Sequence[int], user_ids: Sequence[str]) -> None:
        self._enter(method, tuple(role_ids), tuple(user_ids))
        assert 1 <= len(role_ids) <= 20 and 1 <= len(user_ids) <= 20, (role_ids, user_ids)
        # A user id DingTalk knows as out of the corp (a leaver) fails the whole call.
        if any(u in self.users and not self.users[u].in_corp for u in user_ids):
            path = "/topapi/role/" + ("addrolesforemps" if method.startswith("add")
                                      else "removerolesforemps")
            raise BadRequest(path, 200, "33012", "userIds 不合法")
        for rid in role_ids:
            have = self.role_holders[rid]
            for u in user_ids:
                if method == "add_roles_for_users" and u not in have:
                    have.append(u)
                elif method == "remove_roles_for_users" and u in have:
                    have.remove(u)

    async def add_roles_for_users(self, role_ids: Sequence[int],
                                  user_ids: Sequence[str]) -> None:
        self._emps("add_roles_for_users", role_ids, user_ids)

    async def remove_roles_for_users(self, role_ids: Sequence[int],
                                     user_ids: Sequence[str]) -> None:
        self._emps("remove_roles_for_users", role_ids, user_ids)
    def union_id(self, user_id: str) -> str:
        """The simulator's unionId of a user (a stable digest of the corp and the userId)."""
        digest = hashlib.sha256(f"{self.corp_id}/union:{user_id}".encode()).digest()[:18]
        return base64.b64encode(digest).decode()

    # -- to-dos
    todos: dict[str, dict[str, Any]] = field(default_factory=dict)   # task id -> the to-do

    async def create_todo(self, union_id: str, subject: str, description: str,
                          source_id: str) -> str:
        self._enter("create_todo", union_id, subject, description, source_id)
        task = f"task{len(self.todos) + 1}"
        self.todos[task] = {"union_id": union_id, "subject": subject, "done": False,
                            "source_id": source_id}
        return task

    async def complete_todo(self, union_id: str, task_id: str) -> None:
        self._enter("complete_todo", union_id, task_id)
        if task_id not in self.todos or self.todos[task_id]["union_id"] != union_id:
            raise BadRequest("/v1.0/todo/users/{unionId}/tasks/{taskId}", 404,
                             "todo.task.notExist", "待办不存在")
        self.todos[task_id]["done"] = True

    # -- files
    async def download_file(self, download_code: str) -> bytes:
        self._enter("download_file", download_code)
        if download_code not in self.files:
            raise BadRequest("/v1.0/robot/messageFiles/download", 400, "invalidParameter.downloadCode",
                             "downloadCode 不合法")
        return self.files[download_code]

    async def upload_media(self, content: bytes, file_name: str, media_type: str = "file") -> str:
        self._enter("upload_media", content, file_name, media_type)
        return f"@media{len(self.called('upload_media'))}"

    # -- what Baton sends (the Messenger's message methods come from MessageSends)
    async def send_webhook(self, url: str, body: Mapping[str, Any]) -> None:
        self._enter("send_webhook", url, dict(body))

    async def group_send(self, conversation_id: str, msg_key: str,
                         msg_param: Mapping[str, Any]) -> str:
        self._enter("group_send", conversation_id, msg_key, dict(msg_param))
        return f"pq{len(self.calls)}"

    async def oto_send(self, user_ids: list[str], msg_key: str,
                       msg_param: Mapping[str, Any]) -> dict[str, Any]:
        self._enter("oto_send", list(user_ids), msg_key, dict(msg_param))
        return {"processQueryKey": f"pq{len(self.calls)}", "flowControlledStaffIdList": []}

    async def create_and_deliver_card(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._enter("create_and_deliver_card", dict(body))
        return {"success": True}

    async def update_card(self, out_track_id: str, params: Mapping[str, str],
                          private: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._enter("update_card", out_track_id, dict(params), private)


# ---- what Baton queued ------------------------------------------------------------------------

@dataclass
class Sent:
    kind: str                    # reply | card | ...
    to: str                      # conversation key: group:<cid>, user:<userId>, card:<track>
    payload: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.payload.get("text", ""))


def replies(sent: list[Sent], to: str | None = None) -> list[str]:
    return [s.text for s in sent if s.kind == "reply" and (to is None or s.to == to)]


def card_updates(sent: list[Sent], track: str) -> list[dict[str, str]]:
    return [s.payload["body"]["params"] for s in sent
            if s.kind == "card" and s.payload.get("op") == "update"
            and s.payload.get("out_track_id") == track]


@dataclass
class Harness:
    db: Database
    settings: Settings
    clock: FakeClock
    dispatcher: Dispatcher
    due: DueRunner
    dingtalk: FakeDingTalk
    cards: dict[str, dict[str, str]] = field(default_factory=dict)   # track -> params
    spaces: dict[str, list[str]] = field(default_factory=dict)       # track -> where sent

    async def say(self, user: str, text: str, *, conversation: str = GROUP,
                  at: tuple[str, ...] = (), file: FileRef | None = None,
                  message_id: str | None = None) -> list[Sent]:
        """``user`` says ``text`` (a group when ``conversation`` is given, else one-to-one);
        returns what Baton queued for sending because of it."""
        before = await self._last_id()
        n = next(_ids)
        group = conversation != ""
        await self.dispatcher.handle_robot_message(IncomingMessage(
            message_id=message_id or f"m{n}", msg_id=message_id or f"msg{n}",
            conversation_id=conversation or f"oto{user}",
            is_group=group, conversation_title="", sender_id=user,
            sender_nick=self._nick(user),
            sender_corp_id=self.settings.org.corp_id, text=text, mentions=at,
            msgtype="file" if file else "text", file=file, session_webhook=None,
            webhook_expires_at=None, from_robot=False))
        return self._fold(await self.sent_after(before))

    def _nick(self, user: str) -> str:
        """DingTalk's senderNick: the sender's name in the directory."""
        u = self.dingtalk.users.get(user)
        return u.name if u else ""

    async def send_file(self, user: str, name: str, data: bytes, *,
                        conversation: str = "") -> list[Sent]:
        """``user`` sends a file (one-to-one unless ``conversation`` is a group): DingTalk
        holds its bytes under a download code, the frame carries the code."""
        code = f"dl{next(_ids)}"
        self.dingtalk.files[code] = data
        return await self.say(user, "", conversation=conversation, file=FileRef(code, name))

    async def ask(self, user: str, text: str, expect: str, at: tuple[str, ...] = (), *,
                  conversation: str = GROUP) -> str:
        """Say ``text``; Baton's reply to that conversation that contains ``expect`` (as the
        end-to-end ``say`` waits for it)."""
        sent = await self.say(user, text, conversation=conversation, at=at)
        to = f"group:{conversation}" if conversation else f"user:{user}"
        return self.reply_with(sent, expect, to)

    async def told(self, expect: str, to: str = f"group:{GROUP}") -> str:
        """A reply queued so far to ``to`` (a conversation key) that contains ``expect``."""
        return self.reply_with(await self.sent_after(0), expect, to)

    @staticmethod
    def reply_with(sent: list[Sent], expect: str, to: str | None = None) -> str:
        found = [t for t in replies(sent, to) if expect in t]
        assert found, f"no reply containing {expect!r} in {replies(sent, to)}"
        return found[0]

    async def click(self, user: str, track: str, action: str,
                    params: dict[str, str] | None = None) -> tuple[str, list[Sent]]:
        """``user`` presses ``action`` on card ``track``: (their private notice, what was
        queued)."""
        before = await self._last_id()
        n = next(_ids)
        ack = await self.dispatcher.handle_card_action(CardAction(
            message_id=f"c{n}", out_track_id=track, user_id=user,
            corp_id=self.settings.org.corp_id, action_id=action, params=params or {},
            space_type="IM_GROUP", space_id=GROUP))
        notice = str(ack.get("userPrivateData", {}).get("cardParamMap", {}).get("notice", "")) \
            if ack else ""
        return notice, self._fold(await self.sent_after(before), ack, track)

    @property
    def faults(self) -> Faults:
        return self.dispatcher.faults

    async def press(self, user: str, card: str, action: str,
                    params: dict[str, str] | None = None) -> str:
        """A click as the card sends it (its request id in the params, as the end-to-end
        ``click`` does); returns what only the clicker now sees."""
        notice, _ = await self.click(user, card, action,
                                     params or {"request_id": card.rsplit("-", 1)[-1]})
        return notice

    async def run_due(self) -> list[Sent]:
        before = await self._last_id()
        await self.due.run_once()
        return self._fold(await self.sent_after(before))

    async def card_status(self, track: str, status: str) -> dict[str, str]:
        """The card's params, which must show ``status``."""
        params = self.card(track)
        assert params.get("status") == status, (track, params)
        return params

    def card(self, track: str) -> dict[str, str]:
        """The card's public params as DingTalk would show them: its create, then every
        update (from a click's ack or from the outbox) laid over it in order."""
        return dict(self.cards.get(track, {}))

    def _fold(self, sent: list[Sent], ack: dict[str, Any] | None = None,
              track: str = "") -> list[Sent]:
        if ack and ack.get("cardData"):
            self.cards.setdefault(track, {}).update(ack["cardData"].get("cardParamMap", {}))
        for s in sent:
            if s.kind != "card":
                continue
            if s.payload.get("op") == "create":
                body = s.payload["body"]
                self.cards.setdefault(str(body.get("outTrackId")), {}).update(
                    body.get("cardData", {}).get("cardParamMap", {}))
                self.spaces.setdefault(str(body.get("outTrackId")), []).append(
                    str(body.get("openSpaceId")))
            else:
                self.cards.setdefault(str(s.payload.get("out_track_id")), {}).update(
                    s.payload["body"].get("params", {}))
        return sent

    async def _last_id(self) -> int:
        async with self.db.uow() as uow:
            rows = (await uow.session.execute(select(OutboxMessage.id))).scalars().all()
            return max(rows, default=0)

    async def sent_after(self, last: int) -> list[Sent]:
        async with self.db.uow() as uow:
            rows = (await uow.session.execute(select(OutboxMessage).where(
                OutboxMessage.id > last).order_by(OutboxMessage.id))).scalars().all()
            return [Sent(r.kind, r.conversation_key, dict(r.payload)) for r in rows]


def handler_settings(db_url: str, **sections: dict[str, Any]) -> Settings:
    """Settings for the demo company (as ``sim_settings`` builds them, without a simulator:
    the endpoints are never called); ``sections`` override whole keys per section."""
    data = Settings().model_dump()
    data["dingtalk"].update(client_id="dinghandlertests", client_secret="s3cr3t",
                            openapi_endpoint="http://127.0.0.1:9", oapi_endpoint="http://127.0.0.1:9")
    data["database"]["url"] = db_url
    data["org"]["corp_id"] = DEMO_CORP
    data["catalog"] = copy.deepcopy(DEMO_CATALOG)    # a section override must not change it
    data["policy"]["quiet_hours"] = None
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return Settings.model_validate(data)


# ---- a migrated store per test, from a template migrated once ------------------------------

async def _migrate(url: str) -> None:
    db = open_database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


_templates: dict[str, str] = {}


@pytest.fixture(scope="session")
def _store_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Made on first use: a migrated SQLite file (copied for each test), and a migrated
    PostgreSQL database next to this session's (emptied for each test, dropped at the end)."""
    yield _templates
    for name in (_templates.get("pg_copy"),):
        if name:
            with contextlib.suppress(Exception):
                asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path,
              tmp_path_factory: pytest.TempPathFactory,
              _store_templates: dict[str, str]) -> str:
    """A migrated, otherwise empty store on each backend: what ``db_url`` plus an upgrade
    gives, from a store migrated once per session (the handler layer's tests do not test
    migrations: tests/storage does)."""
    if request.param == "sqlite":
        if "sqlite" not in _templates:
            path = tmp_path_factory.mktemp("store-template") / "baton.db"
            asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
            _templates["sqlite"] = str(path)
        shutil.copyfile(_templates["sqlite"], tmp_path / "baton.db")
        return f"sqlite+aiosqlite:///{tmp_path}/baton.db"
    url = _pg_database()
    if url is None:
        pytest.skip(str(_pg_state.get("why")))
    base, _, session_db = url.rpartition("/")
    if "pg_copy" not in _templates:
        _templates["pg_copy"] = f"{session_db}_h"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{_templates["pg_copy"]}"'))
        asyncio.run(_migrate(f"{base}/{_templates['pg_copy']}"))
    store = f"{base}/{_templates['pg_copy']}"
    asyncio.run(_empty_pg(store))
    return store


async def _empty_pg(url: str) -> None:
    """Every table emptied but the migration mark, every sequence back to its start: the
    store as the migrations leave it (they write no other row)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=3)
    try:
        tables = [r[0] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'")]
        seqs = [r[0] for r in await conn.fetch(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")]
        if tables:
            await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)
                               + " RESTART IDENTITY CASCADE")
        for seq in seqs:
            await conn.execute(f"ALTER SEQUENCE \"{seq}\" RESTART")
    finally:
        await conn.close()


MakeHarness = Callable[..., Awaitable[Harness]]


async def _applied_actions_are_classified(db: Database) -> None:
    """After every handler test: each action audited as "applied" is a change of access (it
    has a feed event type) or is listed as not one (bot/core/domain/feed.py), however the
    code spelt it (an f-string, a table, a variable): a change cannot slip past the feed, and
    a record of something merely queued or reported is not written as "applied"."""
    async with db.uow() as uow:
        actions = set((await uow.session.execute(select(AuditEntry.action).where(
            AuditEntry.result == "applied").distinct())).scalars())
    unclassified = sorted(a for a in actions if not classified(a) and not a.startswith("test."))
    assert not unclassified, f"classify in bot/core/domain/feed.py: {unclassified}"


@pytest.fixture
async def make_harness(store_url: str) -> AsyncIterator[MakeHarness]:
    """Builds a harness on this test's database; keyword sections override settings
    (``policy={"approvals_required": 2}``), ``dingtalk=`` passes a prepared fake."""
    async with AsyncExitStack() as stack:
        async def make(*, fake: FakeDingTalk | None = None, clock: FakeClock | None = None,
                       **sections: dict[str, Any]) -> Harness:
            settings = handler_settings(store_url, **sections)
            fake = fake or FakeDingTalk()
            clock = clock or FakeClock(T0)
            db = open_database(store_url)
            stack.push_async_callback(db.dispose)
            stack.push_async_callback(_applied_actions_are_classified, db)
            await prepare_database(db)
            client: Any = fake           # the OpenAPI client's place, by its methods
            await bootstrap(db, settings, clock, client)
            faults, router = Faults(), build_router()
            return Harness(
                db, settings, clock,
                Dispatcher(db, settings, clock, router, client=client, faults=faults),
                DueRunner(db, settings, clock, client, faults, router.dues,
                          request_kinds=router.requests), fake)
        yield make


@pytest.fixture
async def harness(make_harness: MakeHarness) -> Harness:
    return await make_harness()


@pytest.fixture
def h(harness: Harness) -> Harness:
    """The default harness, by a short name: tests read ``await h.ask(...)``."""
    return harness
