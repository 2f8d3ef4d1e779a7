"""Request kinds are carried by the family routers, like commands: the root router has every
kind once, and importing a handler module registers nothing anywhere else."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from logging import Logger
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, cast

import pytest

from bot.approvals import engine
from bot.config import Settings
from bot.core.domain.requests import Request, Requirement, State
from bot.core.escape import Md
from bot.dispatch.context import CommandRouter, Context, RequestKinds
from handlers import breakglass, build_router, transfer

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def request(kind: str = "grant", **payload: Any) -> Request:
    """A stored request as the engine sees it (only ``kind`` and ``payload`` matter here)."""
    return Request(id=1, corp_id="dingctx", kind=kind, state=State.PENDING, requester_id="a",
                   target_id=None, conversation_id="cid", reason="", payload=payload,
                   created_at=NOW, expires_at=NOW)


class Kind:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def requirements(self, req: Request, env: Context) -> tuple[Requirement, ...]:
        return ()

    async def apply(self, req: Request, env: Context) -> None:
        return None

    async def after(self, req: Request, env: Context, state: State) -> None:
        return None

    async def describe(self, req: Request, env: Context) -> Md:
        return Md("")

    async def subject(self, req: Request, env: Context) -> str:
        return self.kind


async def action(req: Request, act: Any, env: Context) -> dict[str, Any]:
    return {}


def test_the_root_router_carries_exactly_the_request_kinds_of_the_families() -> None:
    root = build_router()
    assert set(root.requests.kinds) == {
        "owner_transfer", "grant", "role_set", "admin_add", "admin_remove",
        "template_set", "template_delete", "template_apply", "import", "import_undo", "review",
        "admin_drift", "access", "break_glass", "break_glass_review"}
    assert all(k.kind == name for name, k in root.requests.kinds.items())
    assert root.requests.actions == {"owner_transfer:console": transfer.console_done,
                                     "break_glass:bg": breakglass.withdraw}


def test_a_request_kind_is_registered_once_and_included_like_a_command() -> None:
    a, b, root = CommandRouter(), CommandRouter(), CommandRouter()
    a.request_kind(Kind("x"))
    with pytest.raises(ValueError, match="already registered"):
        a.request_kind(Kind("x"))
    a.request_action("x", "console")(action)
    with pytest.raises(ValueError, match="already routed"):
        a.request_action("x", "console")(action)
    b.request_kind(Kind("y"))
    root.include(a)
    root.include(b)
    assert set(root.requests.kinds) == {"x", "y"}
    assert root.requests.actions == {"x:console": action}
    with pytest.raises(ValueError, match="registered twice"):
        root.include(b)
    dup = CommandRouter()
    dup.request_action("x", "console")(action)
    with pytest.raises(ValueError, match="routed twice"):
        root.include(dup)


def test_a_context_hands_on_the_request_kinds_it_was_given() -> None:
    kinds = RequestKinds({"x": Kind("x")})
    s = Settings.model_validate({"org": {"corp_id": "dingk"}, "locale": {"default": "zh-CN"}})
    ctx = Context(None, s, NOW, request_kinds=kinds)
    assert ctx.request_kinds.kind("x").kind == "x"
    en = ctx.for_request(request(lang="en"))
    assert en is not ctx and en.request_kinds is kinds
    assert ctx.inside(cast(Any, object()), NOW).request_kinds is kinds
    assert Context(None, s, NOW).request_kinds.kinds == {}


def test_the_engine_keeps_no_registry() -> None:
    """Nothing at the engine's module level holds state: names, constants and a logger only."""
    assert not [name for name, v in vars(engine).items() if not name.startswith("__")
                and name != "annotations"
                and not isinstance(v, (ModuleType, type, FunctionType, str, int, Logger))]


@pytest.mark.parametrize("path", sorted((ROOT / "handlers").glob("*.py")), ids=lambda p: p.name)
def test_handler_modules_register_only_on_their_own_router(path: Path) -> None:
    """At import a handler module may only call its own ``router``: no ``X.add(...)``,
    ``X.update(...)`` or ``X[...] = ...`` on anything else."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            f = node.value.func
            while isinstance(f, ast.Call):          # router.request_action(...)(fn)
                f = f.func
            assert isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name), ast.dump(f)
            assert f.value.id == "router", f"{path.name}: {ast.unparse(node)}"
        assert not (isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Subscript) for t in node.targets)), \
            f"{path.name}: {ast.unparse(node)}"


@pytest.mark.parametrize("package", ["bot", "handlers", "bench"])
def test_no_request_row_outside_storage(package: str) -> None:
    """The engine, the kinds and the CLI work on the core ``Request``; the ORM row of a
    request stays in storage."""
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "storage.models":
                assert "Request" not in [a.name for a in node.names], path
