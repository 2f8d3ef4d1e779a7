"""``baton sandbox``: the loopback DingTalk simulator, Baton on SQLite, demo members, a chat.

No credentials are needed: the simulator plays DingTalk. Type as any member, see the
replies and cards, click card buttons by name. The same factories serve the end-to-end
tests, so what the sandbox shows is what the tests prove.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import ConfigError, Settings, load_settings
from bot.sim import SimGroup, Simulator, SimUser

DEMO_CORP = "dingsandboxcorp"
DEMO_GROUP = "cidSANDBOXADMINS"
DEMO_USERS = (
    SimUser("zhangsan", "张三", admin_level=1),
    SimUser("lisi", "李四", admin_level=2),
    SimUser("wangwu", "王五", admin_level=2),
    SimUser("zhaoliu", "赵六", dept_ids=[2]),
    SimUser("qianqi", "钱七", dept_ids=[3]),
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
        "crm.report.view": {"zh": "查看报表", "en": "View reports"},
        "finance.invoice": {"zh": "开具发票", "en": "Issue invoices"},
    },
    "roles": {
        "sales": ["crm.customer.view", "crm.customer.edit"],
        "analyst": ["crm.customer.view", "crm.report.view"],
        "crm_admin": ["crm.*"],
    },
    "sensitive": ["crm.export", "crm_admin", "finance.invoice"],
}


def demo_simulator(**kw: Any) -> Simulator:
    kw.setdefault("users", DEMO_USERS)
    kw.setdefault("groups", (SimGroup(DEMO_GROUP, "权限交接工作群"),))
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
        data["catalog"] = DEMO_CATALOG
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return Settings.model_validate(data)


@dataclass
class ChatState:
    sim: Simulator
    user: str = "zhangsan"
    conversation: str = DEMO_GROUP
    seen_messages: int = 0
    seen_cards: dict[str, int] = field(default_factory=dict)
    seen_notices: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)


HELP = """Sandbox chat. Lines you type:
  <text>              say it as the current member in the current conversation
                      (@名字 mentions a demo member by name, e.g. 转让主管理员 @李四)
  /as <user>          speak as another member (userId or name)
  /in group|dm        the admin group, or your one-to-one chat with Baton
  /click <action> [card]   click a button (approve, reject, accept, decline...) on the
                      newest card, or on the card whose id you give
  /users  /cards  /help  /quit"""


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
        yield f"[Baton → {where}] {m.text}"
    state.seen_messages = len(msgs)
    for tid, card in state.sim.cards().items():
        n = len(card.history)
        notice = card.private.get(state.user, {}).get("notice")
        if notice and state.seen_notices.get((tid, state.user)) != (n, notice):
            state.seen_notices[(tid, state.user)] = (n, notice)
            yield f"[card {tid}, only you see] {notice}"
        if state.seen_cards.get(tid) != n:
            state.seen_cards[tid] = n
            params = card.params
            yield (f"[card {tid}] {params.get('title', '')} · status={params.get('status', '')}"
                   f" · {params.get('progress', '')}\n{params.get('markdown', '')}")


async def _chat(state: ChatState, lines: Any) -> None:
    sim = state.sim
    print(HELP)
    async for raw in lines:
        line = raw.strip()
        if not line:
            continue
        before_msgs = len(sim.messages())
        before_cards = sum(len(c.history) for c in sim.cards().values())
        if line in ("/quit", "/exit"):
            return
        if line == "/help":
            print(HELP)
            continue
        if line == "/users":
            for u in DEMO_USERS:
                print(f"  {u.user_id:10} {u.name}  sys_level={u.admin_level} active={u.active}")
            continue
        if line == "/cards":
            for tid, c in sim.cards().items():
                print(f"  {tid}: {c.params.get('title', '')} status={c.params.get('status', '')}")
            continue
        if line.startswith("/as "):
            who = _find_user(line[4:].strip())
            if who is None:
                print("  no such demo member; /users lists them")
            else:
                state.user = who.user_id
                print(f"  now speaking as {who.name} ({who.user_id})")
            continue
        if line.startswith("/in "):
            state.conversation = DEMO_GROUP if line[4:].strip() == "group" else ""
            print("  in the admin group" if state.conversation else "  in your one-to-one chat")
            continue
        if line.startswith("/click"):
            parts = shlex.split(line)[1:]
            cards = list(sim.cards())
            if not parts or not cards:
                print("  usage: /click <action> [card id]; no card yet" if not cards else
                      "  usage: /click <action> [card id]")
                continue
            target = parts[1] if len(parts) > 1 else cards[-1]
            params = {k: v for k, v in sim.cards()[target].params.items() if k == "request_id"}
            sim.click(state.user, target, parts[0], params)
        else:
            sim.say(state.user, line, conversation_id=state.conversation or None,
                    at=_mentions(line))
        def changed(b: int = before_msgs, c: int = before_cards) -> bool:
            return len(sim.messages()) > b or sum(len(x.history) for x in sim.cards().values()) > c

        with contextlib.suppress(TimeoutError):
            await sim.until(changed, timeout=3, what="a reply")
        for out in _show_new(state):
            print(out)


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


async def run_sandbox(args: argparse.Namespace) -> int:
    from bot.app import BatonApp
    from bot.logs import setup_logging

    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    try:
        base = load_settings(args.config) if args.config else Settings()
    except ConfigError as e:
        print("The configuration has problems:\n  - " + "\n  - ".join(e.problems), file=sys.stderr)
        return 2
    setup_logging("WARNING")
    sim = demo_simulator()
    sim.start()
    try:
        settings = sim_settings(
            sim, f"sqlite+aiosqlite:///{args.db}", base,
            locale={"default": "zh-CN" if args.lang == "zh" else "en"},
        )
        print(f"Sandbox: simulated DingTalk at {sim.base_url}, store {args.db}")
        async with BatonApp(settings) as app:
            await app.wait_connected()
            state = ChatState(sim)
            lines = _file_lines(args.script) if args.script else _stdin_lines(
                "你> " if args.lang == "zh" else "you> ")
            await _chat(state, lines)
    finally:
        sim.stop()
    return 0
