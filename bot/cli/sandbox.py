"""``baton sandbox``: the loopback DingTalk simulator, Baton on SQLite, demo members, a chat.

No credentials are needed: the simulator plays DingTalk. Type as any member, see the
replies and cards, click card buttons by name. The same factories serve the end-to-end
tests, so what the sandbox shows is what the tests prove.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import os
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.app import BatonApp
from bot.cli.tokens import new_token
from bot.config import ConfigError, Settings, load_settings
from bot.core.domain.tokens import token_hash
from bot.core.escape import person
from bot.delivery.rolesync import RECONCILE
from bot.files.sheet import COLUMNS, CsvWriter, XlsxWriter, read_table
from bot.logs import setup_logging
from bot.texts.catalog import sandbox_line
from bot.texts.sandbox import HELP_EN, HELP_ZH
from dingtalk_sim import SentMessage, SimGroup, Simulator, SimUser
from dingtalk_sim.roles import LIST_PATH, MEMBERS_PATH
from storage.bulk import has_member
from storage.demo import OrgShape, seed_org

DEMO_CORP = "dingsandboxcorp"
DEMO_GROUP = "cidSANDBOXADMINS"
DEMO_GROUP_TITLE = "权限交接工作群"
DEFAULT_FILES = "baton-sandbox-files"  # the files Baton sends, under the working directory
DEMO_USERS = (
    SimUser("zhangsan", "张三", admin_level=1),
    SimUser("lisi", "李四", admin_level=2),
    SimUser("wangwu", "王五", admin_level=2),
    SimUser("zhaoliu", "赵六", dept_ids=[2], leads=[3]),
    SimUser("qianqi", "钱七", dept_ids=[3], manager="zhaoliu"),
    SimUser("sunba", "孙八", active=False),
)
# The demo company: root, a sales department (销售部) and a team inside it.
DEMO_DEPARTMENTS: dict[int, str | tuple[str, int]] = {
    1: "宝腾示例公司", 2: "销售部", 3: ("华东销售组", 2)}
# A demo business catalog (the same shape as config.example.yaml's).
DEMO_CATALOG: dict[str, Any] = {
    "permissions": {
        "crm.customer.view": {"zh": "查看客户", "en": "View customers"},
        "crm.customer.edit": {"zh": "编辑客户", "en": "Edit customers"},
        "crm.export": {"zh": "导出数据", "en": "Export data"},
        # Members may ask for these themselves (`申请` / `request`): a report for up to 2h is
        # approved at once; invoices need the requester's manager or an admin, 8h at most.
        "crm.report.view": {"zh": "查看报表", "en": "View reports",
                            "policy": {"auto_approve": {"max_duration": "2h"}}},
        "finance.invoice": {"zh": "开具发票", "en": "Issue invoices",
                            "policy": {"approvers": ["manager", "admins"], "max_duration": "8h"}},
    },
    "roles": {
        "sales": ["crm.customer.view", "crm.customer.edit"],
        "analyst": ["crm.customer.view", "crm.report.view"],
        "crm_admin": ["crm.*"],
    },
    "sensitive": ["crm.export", "crm_admin", "finance.invoice"],
}
# DingTalk role sync (通讯录角色) in the demo: these catalog roles are mirrored as labels in
# the simulated DingTalk's role group "Baton", and a reconcile makes DingTalk match Baton.
DEMO_ROLE_SYNC: dict[str, Any] = {
    "enabled": True, "group": "Baton", "map": {"sales": "销售", "analyst": "分析师"},
    "mode": "enforce",
    # One process, one clock: a console change right after Baton's own call is drift at once.
    "clock_slack": "0s"}
RECONCILE_WAIT = 30  # seconds /reconcile waits for the reconcile to have run


_APPS = {"crm": "客户", "erp": "资源", "hr": "人事", "fin": "财务", "ops": "运维", "bi": "报表"}
_VERBS = {"view": ("查看", "View"), "edit": ("编辑", "Edit"), "export": ("导出", "Export"),
          "report": ("统计", "Report on"), "admin": ("管理", "Administer")}
ORG_PERMISSIONS = [f"{a}.{v}" for a in _APPS for v in _VERBS]
ORG_ROLES = [f"{a}_user" for a in _APPS]
ORG_TEMPLATES = {f"tpl{j:02d}": [ORG_PERMISSIONS[(j * 7 + k) % len(ORG_PERMISSIONS)]
                                 for k in range(3)] for j in range(20)}
ORG_CATALOG: dict[str, Any] = {
    "permissions": {f"{a}.{v}": {"zh": f"{zv}{za}", "en": f"{ev} {a.upper()}"}
                    for a, za in _APPS.items() for v, (zv, ev) in _VERBS.items()},
    "roles": {f"{a}_user": [f"{a}.view", f"{a}.edit"] for a in _APPS},
    "sensitive": ["fin.admin"],
}
"""The catalog of a large demo organisation (``--org-size``): 30 permissions, 6 roles."""


def org_shape(members: int, leaders: bool = True) -> OrgShape:
    return OrgShape(members, ORG_PERMISSIONS, ORG_ROLES, ORG_TEMPLATES,
                    admins=2 if leaders else -1)


ORG_DEPT_BASE = 100     # the large organisation's departments: 100, 101, ... under the root
ORG_DEPT_SIZE = 100     # members a department


def org_directory(members: int) -> tuple[list[SimUser], dict[int, str | tuple[str, int]]]:
    """The simulated directory of ``--org-size`` members (the store's seeded members)."""
    shape = org_shape(members)
    depts: dict[int, str | tuple[str, int]] = {
        ORG_DEPT_BASE + d: (f"事业部{d:03d}", 1) for d in range(-(-members // ORG_DEPT_SIZE))}
    users = [SimUser(shape.uid(i), shape.name(i), dept_ids=[ORG_DEPT_BASE + i // ORG_DEPT_SIZE])
             for i in range(members)]
    return users, depts


def org_catalog() -> dict[str, Any]:
    """The demo catalog and the large organisation's, together."""
    return {"permissions": {**DEMO_CATALOG["permissions"], **ORG_CATALOG["permissions"]},
            "roles": {**DEMO_CATALOG["roles"], **ORG_CATALOG["roles"]},
            "sensitive": [*DEMO_CATALOG["sensitive"], *ORG_CATALOG["sensitive"]]}


async def seed_large_org(app: BatonApp, members: int) -> int:
    """Seed the store with the large organisation once (its members are led by the demo's
    owner and admins); returns the permission table's rows added (0 when already there)."""
    async with app.db.uow() as uow:
        if await has_member(uow, app.settings.org.corp_id, OrgShape.uid(0)):
            return 0
        rows = await seed_org(uow, app.settings.org.corp_id, org_shape(members, leaders=False),
                              datetime.now(UTC))
        await uow.commit()
    return rows


def edit_file(src: str, fmt: str, dst: str, every: int = 10) -> int:
    """An exported table of the large organisation (``src``) with one data row in ``every``
    edited, written to ``dst`` (for the bulk benchmark and round-trip tests): a role changed,
    a grant's expiry moved, another template. Returns how many rows were edited (each is
    one change)."""
    table = read_table(Path(src).read_bytes(), Path(src).name, max_bytes=1 << 30,
                       max_rows=10_000_000)
    later = (datetime.now(UTC) + timedelta(days=400)).replace(microsecond=0).isoformat()
    roles = list(ORG_CATALOG["roles"])
    tpls = list(ORG_TEMPLATES)
    rows, edited = [], 0
    held_tpl: dict[str, set[str]] = {}
    for r in table.rows:
        if r.cells["type"] == "template":
            held_tpl.setdefault(r.cells["user_id"], set()).add(r.cells["value"])
    for i, r in enumerate(table.rows):
        cells = [r.cells.get(c, "") for c in COLUMNS]
        if i % every == 0:
            kind, value = cells[2], cells[3]
            if kind == "role":
                cells[3] = roles[(roles.index(value) + 1) % len(roles)]
                edited += 1
            elif kind == "grant":
                cells[4] = later
                edited += 1
            elif kind == "template":
                other = next(t for t in tpls if t not in held_tpl.get(cells[0], set()))
                cells[3] = other
                edited += 1
        rows.append(cells)
    if fmt == "csv":
        w = CsvWriter(COLUMNS)
        w.append_rows(rows)
        data = w.close()
    else:
        wb = XlsxWriter()
        wb.sheet("permissions", COLUMNS).append_rows(rows)
        data = wb.close()
    Path(dst).write_bytes(data)
    return edited


def demo_simulator(**kw: Any) -> Simulator:
    kw.setdefault("users", DEMO_USERS)
    kw.setdefault("groups", (SimGroup(DEMO_GROUP, DEMO_GROUP_TITLE),))
    kw.setdefault("corp_id", DEMO_CORP)
    kw.setdefault("departments", DEMO_DEPARTMENTS)
    return Simulator(**kw)


def sim_settings(sim: Simulator, db_url: str, base: Settings | None = None,
                 **sections: dict[str, Any]) -> Settings:
    """Settings that point Baton at ``sim``; ``sections`` override whole keys per section."""
    s = base or Settings()
    data = s.model_dump()
    data["dingtalk"].update(client_id=sim.client_id, client_secret=sim.client_secret,
                            openapi_endpoint=sim.base_url, oapi_endpoint=sim.base_url)
    data["database"]["url"] = db_url
    data["org"]["corp_id"] = sim.corp_id
    if not data["catalog"]["permissions"]:
        data["catalog"] = copy.deepcopy(DEMO_CATALOG)   # a section's update must not touch it
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return Settings.model_validate(data)


def _demo_role_sync(base: Settings) -> dict[str, Any]:
    """The configuration's role sync when it turns it on; else the demo map (its roles that
    the catalog has; off when it has none of them)."""
    own = base.integrations.dingtalk_roles
    if own.enabled:
        return own.model_dump()
    catalog = base.catalog.roles if base.catalog.permissions else DEMO_CATALOG["roles"]
    kept = {r: name for r, name in DEMO_ROLE_SYNC["map"].items() if r in catalog}
    return {**DEMO_ROLE_SYNC, "map": kept, "enabled": bool(kept)}


def sandbox_settings(sim: Simulator, db_url: str, base: Settings | None = None, *,
                     lang: str = "zh", catalog: dict[str, Any] | None = None) -> Settings:
    """What ``baton sandbox`` runs: ``base`` (a configuration file's, or the defaults)
    pointed at ``sim``, with the demo's policy, integrations, API and alert conversation
    (and ``catalog``, for the large organisation of ``--org-size``)."""
    base = base or Settings()
    extra: dict[str, dict[str, Any]] = {"catalog": catalog} if catalog else {}
    return sim_settings(
        sim, db_url, base,
        locale={"default": "zh-CN" if lang == "zh" else "en"},
        # 钱七 may break the glass on crm.export; approvers get DingTalk to-dos.
        policy={"break_glass": {"users": ["qianqi"], "permissions": ["crm.export"],
                                "max": "1h"}},
        integrations={"dingtalk_todo": True, "dingtalk_roles": _demo_role_sync(base)},
        api={"port": base.api.port or 0},
        # Alerts (a role reconcile's summary among them) go to the admin group, soon.
        org={"alert_conversation": base.org.alert_conversation or DEMO_GROUP},
        limits={"alert_window": "1s"},
        **extra,
    )


@dataclass
class ChatState:
    sim: Simulator
    user: str = "zhangsan"
    conversation: str = DEMO_GROUP
    lang: str = "zh"
    files: Path = Path(DEFAULT_FILES)  # where the files Baton sends are saved
    seen_messages: int = 0
    seen_cards: dict[str, int] = field(default_factory=dict)
    seen_notices: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    app: BatonApp | None = None  # the Baton the chat talks to (/reconcile, /calls, /roles)
    roles_denied: bool = False  # /console role deny: DingTalk refuses every role call


REPLY_WAIT = 3  # seconds the chat waits for Baton's answer to a line
FILE_REPLY_WAIT = 30  # ... to a file (downloaded and read before the answer)
FILE_LIMIT = 64 * 1024 * 1024  # /file sends at most this (Baton refuses far less itself)
QUIET = 0.5  # after an answer, what follows within this is shown with it
FOLLOW_UP_MAX = 10  # ... for at most this long


def _say(state: ChatState, key: str, **params: Any) -> str:
    return _text(state.lang, key, **params)


def _text(lang: str, key: str, **params: Any) -> str:
    return sandbox_line(key, "en" if lang == "en" else "zh", **params)


def _find_user(key: str) -> SimUser | None:
    for u in DEMO_USERS:
        if key in (u.user_id, u.name):
            return u
    return None


def _mentions(text: str) -> list[str]:
    at = []
    for word in text.split():
        if word.startswith("@"):
            u = _find_user(word[1:])
            if u is not None:
                at.append(u.user_id)
    return at


def _show_new(state: ChatState) -> Iterator[str]:
    msgs = state.sim.messages()
    for m in msgs[state.seen_messages:]:
        where = "群" if m.conversation_id == DEMO_GROUP else f"单聊 {m.conversation_id}"
        if m.msgtype == "sampleFile":
            yield f"[Baton → {where}] {_save_file(state, m)}"
        else:
            yield f"[Baton → {where}] {m.text}"
    state.seen_messages = len(msgs)
    for tid, card in state.sim.cards().items():
        n = len(card.history)
        notice = card.private.get(state.user, {}).get("notice")
        mine = sum(1 for h in card.history if state.user in h.private)  # updates of my view
        if notice and state.seen_notices.get((tid, state.user)) != (mine, notice):
            state.seen_notices[(tid, state.user)] = (mine, notice)
            yield f"[card {tid}, only you see] {notice}"
        if state.seen_cards.get(tid) != n:
            state.seen_cards[tid] = n
            params = card.params
            yield (f"[card {tid}] {params.get('title', '')} · status={params.get('status', '')}"
                   f" · {params.get('progress', '')}\n{params.get('markdown', '')}")


def _save_file(state: ChatState, m: SentMessage) -> str:
    """Write a file Baton sent (its bytes are the upload its mediaId names) under
    ``state.files``, never over an earlier one; say where."""
    name = str(m.params.get("fileName", ""))
    media = m.params.get("mediaId")
    upload = next((u for u in state.sim.uploads() if u.media_id == media), None)
    if upload is None:
        return _say(state, "file_missing", name=name)
    safe = Path(name.replace("\\", "/")).name.lstrip(".") or "baton-file"
    state.files.mkdir(parents=True, exist_ok=True)
    path, n = state.files / safe, 1
    while path.exists():
        n += 1
        path = state.files / f"{Path(safe).stem}-{n}{Path(safe).suffix}"
    path.write_bytes(upload.content)
    return _say(state, "file_saved", name=name, path=path.resolve())


def _go_in(state: ChatState, name: str) -> None:
    """``/in``: move to a conversation the sandbox has; anything else is refused, listed."""
    group = _say(state, "in_group_name", title=DEMO_GROUP_TITLE, cid=DEMO_GROUP)
    dm = _say(state, "in_dm_name")
    if name in ("group", DEMO_GROUP, DEMO_GROUP_TITLE):
        state.conversation = DEMO_GROUP
    elif name == "dm":
        state.conversation = ""
    else:  # the conversation stays what it was
        print(_say(state, "in_unknown" if name else "in_usage", name=name,
                   here=group if state.conversation else dm,
                   listing=f"    group  {group}\n    dm     {dm}"))
        return
    print(_say(state, "now_in", where=group if state.conversation else dm))


def _send_file(state: ChatState, path: str) -> bool:
    """``/file``: the current member sends a file to Baton one-to-one (its bytes are served
    to the bot's download call, as DingTalk does); False (having said why) when not sent."""
    if not path:
        print(_say(state, "file_usage"))
        return False
    file = Path(path).expanduser()
    try:
        size = file.stat().st_size
        if size > FILE_LIMIT:
            print(_say(state, "file_too_big", path=file, size=size, limit=FILE_LIMIT))
            return False
        data = file.read_bytes()
    except OSError as e:
        print(_say(state, "file_unreadable", path=file, error=e.strerror or e))
        return False
    state.sim.send_file(state.user, file.name, data)
    who = state.sim.user(state.user)
    print(_say(state, "file_sent", name=file.name, size=len(data),
               who=person(who.name, who.user_id)))
    return True


def _people(sim: Simulator) -> list[SimUser]:
    """The demo members as the simulated directory holds them now (``/console`` changes it)."""
    return [sim.user(u.user_id) for u in DEMO_USERS]


def _console_admin(state: ChatState, args: list[str]) -> bool | None:
    """``/console admin add|remove <user>``: the console changes a sub-administrator, not
    through Baton, and DingTalk pushes the event (True); None when the line is not that."""
    if len(args) < 3 or args[0] != "admin" or args[1] not in ("add", "remove"):
        return None
    found = _find_user(" ".join(args[2:]))
    if found is None:
        print(_say(state, "no_user"))
        return False
    now = state.sim.user(found.user_id)
    who = person(now.name, now.user_id)
    add = args[1] == "add"
    if (add and now.admin_level > 0) or (not add and now.admin_level != 2):
        print(_say(state, "console_admin_same", who=who))
        return False
    if add:
        state.sim.console_add_admin(found.user_id)
    else:
        state.sim.console_remove_admin(found.user_id)
    print(_say(state, "console_admin_added" if add else "console_admin_removed", who=who))
    return True


def _who(sim: Simulator, user_id: str) -> str:
    try:
        u = sim.user(user_id)
    except KeyError:
        return user_id
    return person(u.name, u.user_id)


def _role_sync(state: ChatState) -> tuple[str, dict[str, str]] | None:
    """(DingTalk role group, catalog role -> DingTalk role name) of the running Baton's role
    sync; None (having said so) when there is none."""
    cfg = state.app.settings.integrations.dingtalk_roles if state.app else None
    if cfg is None or not cfg.enabled:
        print(_say(state, "roles_off"))
        return None
    return cfg.group, dict(cfg.map)


def _role_names(mapping: dict[str, str]) -> str:
    return ", ".join(f"{name} ({role})" for role, name in sorted(mapping.items()))


def _show_roles(state: ChatState) -> None:
    """``/roles``: the labels of the mapped roles as the simulated DingTalk holds them."""
    sync = _role_sync(state)
    if sync is None:
        return
    group, mapping = sync
    assert state.app is not None
    print(_say(state, "roles_head", group=group,
               mode=state.app.settings.integrations.dingtalk_roles.mode))
    for role, name in sorted(mapping.items()):
        if state.sim.role_id(group, name) is None:
            members = _say(state, "roles_not_made")
        else:
            members = ", ".join(_who(state.sim, u) for u in state.sim.role_holders(group, name)
                                ) or _say(state, "nobody")
        print(f"    {name} ({role}): {members}")


def _console_role(state: ChatState, args: list[str]) -> bool | None:
    """``/console role add|remove <role> <user>``: a role label given or taken in DingTalk's
    console, not through Baton (DingTalk tells Baton nothing: False); None when the line is
    not that."""
    if not args or args[0] != "role":
        return None
    sync = _role_sync(state)
    if sync is None:
        return False
    group, mapping = sync
    if len(args) == 2 and args[1] in ("deny", "allow"):
        deny = args[1] == "deny"
        if deny != state.roles_denied:
            state.sim.deny_roles(deny)
            state.roles_denied = deny
        print(_say(state, "console_role_denied" if deny else "console_role_allowed"))
        return False
    if len(args) < 4 or args[1] not in ("add", "remove"):
        print(_say(state, "console_role_usage", roles=_role_names(mapping)))
        return False
    name = mapping.get(args[2]) or (args[2] if args[2] in mapping.values() else None)
    if name is None:
        print(_say(state, "console_role_unknown", role=args[2], roles=_role_names(mapping)))
        return False
    found = _find_user(" ".join(args[3:]))
    if found is None:
        print(_say(state, "no_user"))
        return False
    add = args[1] == "add"
    who = _who(state.sim, found.user_id)
    if (found.user_id in state.sim.role_holders(group, name)) == add:
        print(_say(state, "console_role_has" if add else "console_role_lacks", who=who,
                   role=name))
        return False
    state.sim.console_assign_role(group, name, found.user_id, on=add)
    print(_say(state, "console_role_added" if add else "console_role_removed", who=who,
               role=name, group=group))
    return False


async def _reconcile(state: ChatState) -> bool:
    """``/reconcile``: Baton's role reconcile (the due work ``roles_reconcile``) now, waited
    for; what it found is printed. True when it found differences (Baton then posts its
    summary to the alert conversation, which the chat awaits)."""
    if _role_sync(state) is None:
        return False
    app = state.app
    assert app is not None
    corp, started = app.settings.org.corp_id, app.clock.now()
    failures, reads = app.due.failures, _role_reads(state.sim)
    async with app.db.uow() as uow:
        await uow.due.schedule(RECONCILE, started, {"corp_id": corp}, started,
                               dedupe_key=f"roles-reconcile:{corp}:sandbox:{started.isoformat()}")
        await uow.commit()
    deadline = time.monotonic() + RECONCILE_WAIT
    while True:
        await app.due.run_once()          # a row the alarm took is leased: it is waited for
        async with app.db.uow() as uow:
            waiting = await uow.due.pending_due(RECONCILE, app.clock.now(), besides=0)
            found = await uow.audit.between(corp, action_prefix="roles.", since=started)
        if not waiting:
            break
        if time.monotonic() > deadline:
            print(_say(state, "reconcile_slow", seconds=RECONCILE_WAIT))
            return False
        await asyncio.sleep(0.1)
    if app.due.failures != failures:
        print(_say(state, "reconcile_failed"))
        return False
    diffs = [e for e in found if e.action in ("roles.missing", "roles.extra")]
    mode = app.settings.integrations.dingtalk_roles.mode
    asked, answered = (now - before for now, before in zip(_role_reads(state.sim), reads,
                                                            strict=True))
    if asked != answered:       # DingTalk refused or failed a read: nothing was compared
        print(_say(state, "reconcile_unread"))
        return False
    if not diffs:
        print(_say(state, "reconcile_clean", mode=mode))
        return False
    print(_say(state, "reconcile_found", n=len(diffs), mode=mode))
    for e in diffs:
        after = e.after or {}
        fix = after.get("fix")
        print("    " + _say(state, e.action.replace(".", "_"),
                            who=_who(state.sim, e.target_id or ""),
                            role=after.get("dingtalk_role", ""),
                            fix=_say(state, f"reconcile_fix_{fix}" if fix else "reconcile_fix_none")))
    return True


def _role_reads(sim: Simulator) -> tuple[int, int]:
    """(role reads DingTalk was asked, those it answered with errcode 0)."""
    paths = (LIST_PATH, MEMBERS_PATH)
    return (sum(len(sim.requests(p)) for p in paths), sum(sim.role_calls(p) for p in paths))


def _calls(state: ChatState) -> None:
    """``/calls``: the DingTalk API calls Baton made, by API (as /metrics counts them)."""
    app = state.app
    if app is None:
        print(_say(state, "calls_none"))
        return
    calls = app.client.calls
    for api, n in sorted(calls.items()):
        print(f"    {n:6}  {api}")
    metered = app.client.metered_month.get(app.clock.now().strftime("%Y-%m"), 0)
    print(_say(state, "calls_total", total=sum(calls.values()), metered=metered,
               budget=app.settings.dingtalk.monthly_call_budget))


def _leave(state: ChatState, args: list[str]) -> bool:
    """``/leave <user>``: the member leaves the company (inactive, ``user_leave_org``);
    True when the event was pushed (Baton's answer is then awaited)."""
    found = _find_user(" ".join(args)) if args else None
    if found is None:
        print(_say(state, "no_user" if args else "leave_usage"))
        return False
    now = state.sim.user(found.user_id)
    who = person(now.name, now.user_id)
    if not now.active:
        print(_say(state, "leave_already", who=who))
        return False
    state.sim.member_leaves(found.user_id)
    print(_say(state, "leave_done", who=who))
    return True


def _console(state: ChatState, args: list[str]) -> bool:
    """``/console owner <user>``: the simulated DingTalk admin console changes the main
    administrator (the console step of an owner transfer that Baton then verifies);
    ``/console admin add|remove <user>``: it changes a sub-administrator. True when an
    event was pushed to Baton (its answer is then awaited)."""
    for play in (_console_admin, _console_role):
        pushed = play(state, args)
        if pushed is not None:
            return pushed
    sim = state.sim
    people = _people(sim)
    wants = len(args) > 1 and args[0] == "owner"
    found = _find_user(" ".join(args[1:])) if wants else None
    if found is None:
        def names(level: int) -> str:
            return ", ".join(person(u.name, u.user_id) for u in people
                             if u.admin_level == level) or _say(state, "nobody")
        if wants:
            print(_say(state, "no_user"))
        print(_say(state, "console_usage", owner=names(1), admins=names(2)))
        return False
    # The demo directory has one main administrator, and a console transfer keeps it so.
    owner = next(u for u in people if u.admin_level == 1)
    target = next(u for u in people if u.user_id == found.user_id)
    who = person(target.name, target.user_id)
    if target.admin_level == 1:
        print(_say(state, "console_same", who=who))
        return False
    if not target.active:
        print(_say(state, "console_inactive", who=who))
        return False
    sim.console_transfer_main_admin(owner.user_id, target.user_id)
    print(_say(state, "console_done", to=who, was=person(owner.name, owner.user_id)))
    return False


def _click(state: ChatState, args: list[str]) -> bool:
    """Click a button; False (having said why) when there is nothing to click."""
    cards = state.sim.cards()
    if not args:
        print(_say(state, "click_usage"))
        return False
    if not cards:
        print(_say(state, "click_no_card"))
        return False
    target = args[1] if len(args) > 1 else list(cards)[-1]
    card = cards.get(target)
    if card is None:
        print(_say(state, "click_unknown_card", card=target, cards=", ".join(cards)))
        return False
    params = {k: v for k, v in card.params.items() if k == "request_id"}
    state.sim.click(state.user, target, args[0], params)
    return True


async def _line(state: ChatState, line: str) -> bool:
    """Act on one typed line; False to end the chat."""
    sim = state.sim
    _print_new(state)  # what came after the last answer was shown
    timeout = REPLY_WAIT
    if line.split(maxsplit=1)[0] == "/file":
        # the rest of the line as typed (quotes in a name, a Windows path's backslashes)
        if not _send_file(state, line[len("/file"):].strip().strip("\"'")):
            return True
        timeout = FILE_REPLY_WAIT
    elif line.startswith("/"):
        try:
            words = shlex.split(line)
        except ValueError as e:
            print(_say(state, "bad_quotes", error=e))
            return True
        cmd, args = words[0], words[1:]
        if cmd in ("/quit", "/exit"):
            return False
        if cmd == "/help":
            print(HELP_EN if state.lang == "en" else HELP_ZH)
            return True
        if cmd == "/users":
            for u in _people(sim):
                print(f"  {u.user_id:10} {u.name}  sys_level={u.admin_level} active={u.active}")
            return True
        if cmd == "/cards":
            for tid, c in sim.cards().items():
                print(f"  {tid}: {c.params.get('title', '')} status={c.params.get('status', '')}")
            return True
        if cmd == "/as":
            who = _find_user(" ".join(args)) if args else None
            if who is None:
                print(_say(state, "no_user" if args else "as_usage"))
            else:
                state.user = who.user_id
                print(_say(state, "now_as", name=who.name, user_id=who.user_id))
            return True
        if cmd == "/in":
            _go_in(state, " ".join(args))
            return True
        if cmd == "/roles":
            _show_roles(state)
            return True
        if cmd == "/calls":
            _calls(state)
            return True
        if cmd == "/reconcile":
            if not await _reconcile(state):
                return True
        elif cmd in ("/console", "/leave"):
            if not (_console(state, args) if cmd == "/console" else _leave(state, args)):
                return True
        elif cmd != "/click":
            print(_say(state, "unknown_command", cmd=cmd))
            return True
        elif not _click(state, args):
            return True
    else:
        sim.say(state.user, line, conversation_id=state.conversation or None,
                at=_mentions(line))

    await _await_answer(state, timeout)
    return True


def _unseen(state: ChatState) -> bool:
    """Has Baton said anything (a message, a card, a card update) not yet shown?"""
    cards = {tid: len(c.history) for tid, c in state.sim.cards().items()}
    return len(state.sim.messages()) != state.seen_messages or cards != state.seen_cards


async def _await_answer(state: ChatState, timeout: float) -> None:
    """Wait for Baton's answer, then show it and what follows it closely (a file after the
    reply announcing it, a card after its request), until Baton has been quiet a moment."""
    try:
        await state.sim.until(lambda: _unseen(state), timeout=timeout, what="a reply")
    except TimeoutError:
        print(_say(state, "no_answer", seconds=timeout))
        return
    deadline = time.monotonic() + FOLLOW_UP_MAX
    while True:
        _print_new(state)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            await state.sim.until(lambda: _unseen(state), timeout=min(QUIET, left), what="more")
        except TimeoutError:
            return


def _print_new(state: ChatState) -> None:
    for out in _show_new(state):
        print(out)


async def _chat(state: ChatState, lines: Any) -> None:
    print(HELP_EN if state.lang == "en" else HELP_ZH)
    async for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:  # one boundary per line: whatever a line does, the chat goes on
            if not await _line(state, line):
                break
        except Exception as e:
            print(_say(state, "failed", line=line, error=f"{type(e).__name__}: {e}"))
    with contextlib.suppress(Exception):
        _print_new(state)  # the end of the script: what came after the last answer


async def _stdin_lines(prompt: str) -> Any:
    while True:
        try:
            line = await asyncio.to_thread(input, prompt)
        except EOFError:
            return
        yield line


async def _file_lines(path: str) -> Any:
    text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
    for line in text.splitlines():
        print(f"> {line}")
        yield line


def _files_folder(path: str) -> Path:
    folder = Path(path).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def demo_token(app: BatonApp) -> str:
    """A fresh API token named ``sandbox`` (the last one, unrecoverable, is revoked)."""
    corp, now, raw = app.settings.org.corp_id, app.clock.now(), new_token()
    async with app.db.uow() as uow:
        if await uow.tokens.revoke(corp, "sandbox", now):
            await uow.audit.append(corp, now, actor_id="sandbox", action="api_token.revoke",
                                   result="applied", before={"name": "sandbox", "scope": "read"})
        await uow.tokens.create(corp, "sandbox", "read", token_hash(raw), by="sandbox", now=now)
        await uow.audit.append(corp, now, actor_id="sandbox", action="api_token.create",
                               result="applied", after={"name": "sandbox", "scope": "read"})
        await uow.commit()
    return raw


async def run_sandbox(args: argparse.Namespace) -> int:
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    try:
        base = load_settings(args.config) if args.config else Settings()
    except ConfigError as e:
        print("The configuration has problems:\n  - " + "\n  - ".join(e.problems), file=sys.stderr)
        return 2
    setup_logging("WARNING")
    try:
        files = _files_folder(args.files)
    except OSError as e:
        print(_text(args.lang, "files_bad", path=args.files, error=e.strerror), file=sys.stderr)
        return 2
    size = max(0, int(getattr(args, "org_size", 0) or 0))
    extra: dict[str, Any] = {}
    if size:
        users, depts = org_directory(size)
        extra = {"users": (*DEMO_USERS, *users), "departments": {**DEMO_DEPARTMENTS, **depts}}
    sim = demo_simulator(**extra)
    sim.start()
    try:
        settings = sandbox_settings(
            sim, f"sqlite+aiosqlite:///{args.db}", base, lang=args.lang,
            catalog=org_catalog() if size and not base.catalog.permissions else None)
        print(f"Sandbox: simulated DingTalk at {sim.base_url}, store {args.db}")
        state = ChatState(sim, lang=args.lang, files=files)
        print(_say(state, "files_at", path=files))
        async with BatonApp(settings) as app:
            state.app = app
            await app.wait_connected()
            if size:
                rows = await seed_large_org(app, size)
                app.index.invalidate()      # seeded behind the feed's back: load afresh
                print(f"Sandbox: a large organisation of {size} members "
                      f"({rows} permission rows added; 0: already seeded) in {args.db}")
            token = await demo_token(app)
            print(_say(state, "api_at", url=f"http://{settings.api.host}:{app.api.port}/v1",
                       token=token))
            lines = _file_lines(args.script) if args.script else _stdin_lines(
                "你> " if args.lang == "zh" else "you> ")
            await _chat(state, lines)
    finally:
        sim.stop()
    return 0
