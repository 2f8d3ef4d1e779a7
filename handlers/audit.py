"""The audit trail in chat (``audit [@user] [n]`` / ``审计``) and its daily retention.

Reading the trail changes nothing, so it is not itself audited (a refusal to a non-admin
is, by the router). Every stored value shown (names, ids, actions, before/after) is user
data at heart and goes through :func:`literal`.

Retention runs as due work ``audit_retention``: once on start (for the local day, unless that
day's run exists), then each night at ``RETENTION_HOUR`` local time, one row per day (the
dedupe key carries the date, so replicas and restarts never double it). It removes entries
older than ``audit.retention`` and anchors the chain on the last one removed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.cards import local
from bot.commands import Audit
from bot.config import Settings
from bot.due import DueContext
from bot.i18n import MESSAGES, Lang, t
from bot.text import literal
from bot.text import person as text_person
from handlers.base import CommandRouter, Context
from storage.db import Database
from storage.models import AuditEntry, Member

log = logging.getLogger(__name__)
router = CommandRouter()

SHOW_MAX = 50
SUMMARY_CHARS = 100
RETENTION = "audit_retention"
RETENTION_HOUR = 3

_MESSAGES: dict[str, dict[Lang, str]] = {
    "audit_short": {"zh": "审计记录", "en": "Audit log"},
    "audit_title": {"zh": "审计记录（最近 {n} 条）", "en": "Audit log (newest {n})"},
    "audit_title_user": {
        "zh": "与 {who} 相关的审计记录（最近 {n} 条）",
        "en": "Audit log involving {who} (newest {n})",
    },
    "audit_none": {"zh": "暂无审计记录。", "en": "The audit log is empty."},
    "audit_none_user": {"zh": "没有与 {who} 相关的审计记录。", "en": "No audit entries involve {who}."},
    "audit_capped": {
        "zh": "你要了 {asked} 条，每次最多显示 {max} 条，以下是最近 {max} 条；"
              "更多记录请运维运行 `baton audit export`。",
        "en": "You asked for {asked}; at most {max} are shown at once, so these are the newest "
              "{max}. For more, an operator can run `baton audit export`.",
    },
    "audit_on": {"zh": "对象 {who}", "en": "on {who}"},
    "audit_result_applied": {"zh": "已生效", "en": "applied"},
    "audit_result_refused": {"zh": "已拒绝", "en": "refused"},
}
MESSAGES.update(_MESSAGES)


# ---- rendering (pure) -----------------------------------------------------------------------

def _value(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _side(d: dict[str, Any] | None, keys: Sequence[str]) -> str:
    if d is None:
        return "–"
    return ", ".join(f"{k}={_value(d.get(k))}" for k in keys) or "{}"


def change_summary(before: dict[str, Any] | None, after: dict[str, Any] | None,
                   limit: int = SUMMARY_CHARS) -> str:
    """``before → after``, only the keys that changed when both sides are there; escaped."""
    if before is None and after is None:
        return ""
    if before is not None and after is not None:
        keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
        text = f"{_side(before, keys)} → {_side(after, keys)}"
    else:
        text = f"{_side(before, list(before or {}))} → {_side(after, list(after or {}))}"
    return literal(text, limit)


def person(user_id: str | None, names: dict[str, str]) -> str:
    if not user_id:
        return "–"
    return text_person(names.get(user_id), user_id, 40)


def result_text(result: str, lang: Lang) -> str:
    key = f"audit_result_{result}"
    return t(key, lang) if key in MESSAGES else literal(result, 32)


def entry_line(e: AuditEntry, names: dict[str, str], lang: Lang, tz: str) -> str:
    parts = [local(e.at, tz), person(e.actor_id, names), literal(e.action, 64)]
    if e.target_id:
        parts.append(t("audit_on", lang, who=person(e.target_id, names)))
    if e.request_id is not None:
        parts.append(f"R-{int(e.request_id)}")
    parts.append(result_text(e.result, lang))
    summary = change_summary(e.before, e.after)
    if summary:
        parts.append(summary)
    return "- " + " · ".join(parts)


# ---- the command ----------------------------------------------------------------------------

async def _names(ctx: Context, user_ids: set[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    rows = (await ctx.uow.session.execute(
        select(Member.user_id, Member.name).where(
            Member.corp_id == ctx.corp_id, Member.user_id.in_(user_ids))
    )).all()
    return {u: n for u, n in rows if n}


@router.command(Audit, admin_only=True, authority="admin")
async def audit(cmd: Audit, ctx: Context) -> None:
    n = min(cmd.n, SHOW_MAX)
    uid = cmd.target.user_id if cmd.target else None
    entries = await ctx.uow.audit.recent(ctx.corp_id, n, user_id=uid)
    ids = {x for e in entries for x in (e.actor_id, e.target_id) if x}
    names = await _names(ctx, ids | ({uid} if uid else set()))
    who = person(uid, names) if uid else ""
    if not entries:
        await ctx.reply(ctx.t("audit_none_user", who=who) if uid else ctx.t("audit_none"),
                        markdown=True)
        return
    title = ctx.t("audit_title_user", who=who, n=len(entries)) if uid \
        else ctx.t("audit_title", n=len(entries))
    out = [f"### {title}"]
    if cmd.n > SHOW_MAX and len(entries) == SHOW_MAX:     # there may be more than shown
        out.append(ctx.t("audit_capped", asked=cmd.n, max=SHOW_MAX))
    tz = ctx.settings.policy.timezone
    body = "\n".join(entry_line(e, names, ctx.lang, tz) for e in entries)
    await ctx.reply("\n\n".join([*out, body]), markdown=True, title=ctx.t("audit_short"))


# ---- retention ------------------------------------------------------------------------------

def _key(corp_id: str, day: date) -> str:
    return f"audit-retention:{corp_id}:{day.isoformat()}"


def next_run(now: datetime, tz: str) -> datetime:
    """``RETENTION_HOUR`` o'clock local time on the day after ``now``'s local day."""
    zone = ZoneInfo(tz)
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, RETENTION_HOUR, tzinfo=zone)


async def schedule_retention(db: Database, settings: Settings, now: datetime) -> None:
    """On start: a run for the local day, due now, unless that day's run already exists
    (planned by yesterday's run, or done)."""
    corp, tz = settings.org.corp_id, settings.policy.timezone
    today = now.astimezone(ZoneInfo(tz)).date()
    async with db.uow() as uow:
        await uow.due.schedule(RETENTION, now, {"corp_id": corp}, now, dedupe_key=_key(corp, today))
        await uow.commit()


async def due_audit_retention(payload: dict[str, Any], dctx: DueContext) -> None:
    """Remove entries older than ``audit.retention``; plan tomorrow's run in the same commit."""
    async with dctx.transaction() as env:
        corp = str(payload.get("corp_id") or env.corp_id)
        cutoff = env.now - env.settings.audit.retention
        removed, anchor = await env.uow.audit.purge_before(corp, cutoff)
        if removed:
            log.info("audit retention: removed %d entries of %s older than %s (anchor #%s)",
                     removed, corp, cutoff.isoformat(), anchor)
            await env.uow.audit.append(corp, env.now, actor_id="system", action="audit.retention",
                                       result="applied", after={"removed": removed, "through_seq": anchor,
                                                                "cutoff": cutoff.isoformat()})
        at = next_run(env.now, env.settings.policy.timezone)
        local_day = at.astimezone(ZoneInfo(env.settings.policy.timezone)).date()
        await env.uow.due.schedule(RETENTION, at, {"corp_id": corp}, env.now,
                                   dedupe_key=_key(corp, local_day))


DUE_HANDLERS = {RETENTION: due_audit_retention}

__all__ = ["DUE_HANDLERS", "change_summary", "entry_line", "router", "schedule_retention"]
