"""The one Context (command, card click, due job) and the router's three tables: pure checks."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from bot.config import Settings
from bot.core.commands import FileRef, ImportFile, Parsed
from bot.core.domain.requests import Request, State
from bot.core.sends import Reply
from bot.dispatch.context import CommandRouter, Context, DueJob
from handlers import build_router
from storage.db import Database

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def request(kind: str = "grant", **payload: Any) -> Request:
    """A stored request as the engine sees it (only ``kind`` and ``payload`` matter here)."""
    return Request(id=1, corp_id="dingctx", kind=kind, state=State.PENDING, requester_id="a",
                   target_id=None, conversation_id="cid", reason="", payload=payload,
                   created_at=NOW, expires_at=NOW)


def settings() -> Settings:
    return Settings.model_validate({"org": {"corp_id": "dingctx"}, "locale": {"default": "zh-CN"}})


class FakeOutbox:
    def __init__(self) -> None:
        self.added: list[tuple[str, str, str | None]] = []

    async def add(self, kind: str, key: str, payload: dict[str, Any], now: datetime,
                  **kw: Any) -> None:
        self.added.append((kind, key, kw.get("source_message_id")))


class FakeUow:
    def __init__(self) -> None:
        self.outbox = FakeOutbox()


async def noop(payload: dict[str, Any], ctx: Context) -> None:
    return None


def test_due_work_is_routed_once_and_included_like_commands() -> None:
    a, b, root = CommandRouter(), CommandRouter(), CommandRouter()
    a.due("tick")(noop)
    with pytest.raises(ValueError, match="already routed"):
        a.due("tick")(noop)
    b.due("tock")(noop)
    root.include(a)
    root.include(b)
    assert root.dues == {"tick": noop, "tock": noop}
    with pytest.raises(ValueError, match="routed twice"):
        root.include(a)


def test_the_root_router_runs_every_kind_of_due_work_and_file_imports() -> None:
    router = build_router()
    assert set(router.dues) == {
        "request_expire", "request_remind", "grant_expire", "audit_retention",
        "review_start", "review_remind", "review_close",
        "transfer_verify", "transfer_dingtalk_change", "transfer_review",
        "drift_sweep", "drift_directory", "offboard", "roles_reconcile", "grant_warn",
        "break_glass_end", "access_escalate"}
    # A file message is a parsed core value, routed like any command.
    assert ImportFile in router.routes
    cmd = ImportFile(FileRef("code", "perms.xlsx"), in_group=False)
    assert Parsed(cmd, "zh").command.file.file_name == "perms.xlsx"


async def test_one_context_sends_and_remembers_where_for_its_request_copies_too() -> None:
    uow = FakeUow()
    ctx = Context(cast(Any, uow), settings(), NOW, message_id="m-1")
    assert ctx.lang == "zh"
    en = ctx.for_request(request(lang="en"))
    assert en is not ctx and en.lang == "en" and en.uow is ctx.uow
    assert ctx.for_request(request(lang="zh")) is ctx
    await en.send(Reply(text="hi", conversation_id="cid", is_group=True))
    assert ctx.said == en.said == ["group:cid"]
    assert uow.outbox.added == [("reply", "group:cid", "m-1")]


def test_what_a_context_lacks_is_refused_not_guessed() -> None:
    click = Context(cast(Any, FakeUow()), settings(), NOW)
    with pytest.raises(RuntimeError, match="not a command"):
        _ = click.sender
    with pytest.raises(RuntimeError, match="not a due job"):
        click.transaction()
    due = Context(None, settings(), NOW, job=DueJob(7, cast(Database, None), lambda: cast(Any, None)))
    assert due.row_id == 7
    with pytest.raises(RuntimeError, match="no unit of work"):
        _ = due.uow


@pytest.mark.parametrize("package", ["bot/dispatch", "bot/scheduling"])
def test_dispatch_and_scheduling_never_import_handlers_not_even_lazily(package: str) -> None:
    for path in sorted((ROOT / package).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] == "handlers"], path
