"""Helpers shared by the test layers (not tests themselves): reading the store back as the
tests assert on it, an exported permissions sheet edited as an operator would, and the
``baton run`` config file the subprocess tests start Baton with.

``baton_config`` is a minimal copy of ``bench.sut.baton_config``: tests must not import the
benchmarks (nor the benchmarks the tests), and it is not production code, so it is not in
the shipped package either."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import openpyxl
import yaml
from sqlalchemy import select

from bot.config import Settings
from storage.db import Database
from storage.models import AuditEntry, Grant, Member


class HasStore(Protocol):
    """A running BatonApp, or the handler harness: a database and its settings."""

    @property
    def db(self) -> Database: ...

    @property
    def settings(self) -> Settings: ...


async def member(app: HasStore, user_id: str) -> Member:
    async with app.db.uow() as uow:
        m = await uow.members.get(app.settings.org.corp_id, user_id)
        assert m is not None
        uow.session.expunge(m)      # keep the loaded values after the transaction ends
        return m


async def grants(app: HasStore, user_id: str) -> dict[str, datetime | None]:
    async with app.db.uow() as uow:
        rows = (await uow.session.execute(select(Grant).where(Grant.user_id == user_id))).scalars()
        return {g.name: g.expires_at for g in rows}


async def audit_actions(app: HasStore) -> list[tuple[str, str, str | None]]:
    async with app.db.uow() as uow:
        rows = (await uow.session.execute(select(AuditEntry).order_by(AuditEntry.seq))).scalars()
        return [(a.action, a.result, a.target_id) for a in rows]


async def verify_chain(app: HasStore) -> None:
    async with app.db.uow() as uow:
        assert await uow.audit.verify(app.settings.org.corp_id) is None


def baton_config(path: Path, *, sim_base_url: str, corp_id: str, db_url: str,
                 catalog: Mapping[str, Any], extra: Mapping[str, Mapping[str, Any]]) -> Path:
    """A ``baton run`` config file pointing at the simulator (credentials come from the env)."""
    cfg: dict[str, Any] = {
        "database": {"url": db_url},
        "org": {"corp_id": corp_id},
        "dingtalk": {"openapi_endpoint": sim_base_url, "oapi_endpoint": sim_base_url},
        "catalog": dict(catalog),
    }
    for section, values in extra.items():
        cfg.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def edit(data: bytes, *, add: list[list[str]] = (), set_role: tuple[str, str] | None = None,  # type: ignore[assignment]
         drop_user: str | None = None) -> bytes:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb["permissions"]
    rows = [[c.value for c in r] for r in ws.iter_rows()]
    header, body = rows[0], rows[1:]
    out = []
    for r in body:
        if drop_user and r[0] == drop_user:
            continue
        if set_role and r[0] == set_role[0] and r[2] == "role":
            r[3] = set_role[1]
        out.append(r)
    out += add
    ws.delete_rows(1, ws.max_row)
    for r in [header, *out]:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def assert_no_live_markup(text: str) -> None:
    """Nothing a user typed renders: no link, image, mention, tag, autolink or heading."""
    for bad in ("](", "![", "@所有人", "<b>", "<img", "://", "javascript:", "`code`"):
        assert bad not in text, (bad, text)
    assert not re.search(r"(?m)^\s*#+ 已批准", text), text


class Overlap:
    """Wraps a fake's lookup: counts the calls in flight at once (each answer takes a few
    turns of the loop, as over a socket)."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.now, self.most = fn, 0, 0

    async def __call__(self, *args: Any) -> Any:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            return await self.fn(*args)
        finally:
            self.now -= 1
