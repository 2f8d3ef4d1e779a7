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
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import Settings
from bot.core.clock import local
from bot.core.commands import COMMAND_NAMES, Audit
from bot.core.commands.words import primary
from bot.core.domain.audit import AuditRecord
from bot.core.escape import literal
from bot.core.escape import person as text_person
from bot.core.lang import Lang
from bot.dispatch.context import CommandRouter, Context
from bot.dispatch.paging import LongAnswer, reply_page
from bot.texts.catalog import MESSAGES, t
from storage.db import Database

log = logging.getLogger(__name__)
router = CommandRouter()

PER_PAGE = 20
SUMMARY_CHARS = 100
RETENTION = "audit_retention"
RETENTION_HOUR = 3


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
    if key in MESSAGES:
        return t(key, lang)
    if f"state_{result}" in MESSAGES:           # a request's state (approved, expired ...)
        return t(f"state_{result}", lang)
    return literal(result, 32)


def _subject_text(subject: str, lang: Lang, *, command_first: bool) -> str | None:
    """A request kind ("owner_transfer") or a command ("review start", "role_set") in words;
    a refusal names the command the sender wrote, anything else the request kind."""
    command = next((n for n in (subject, subject.replace("_", " ")) if n in COMMAND_NAMES), None)
    if command is not None and (command_first or f"kind_{subject}" not in MESSAGES):
        return primary(command, lang)
    if f"kind_{subject}" in MESSAGES:
        return t(f"kind_{subject}", lang)
    return None


def action_text(action: str, lang: Lang) -> str:
    """An audit action in the reader's language; an unknown one as stored (escaped)."""
    if f"audit_action_{action}" in MESSAGES:
        return t(f"audit_action_{action}", lang)
    subject, _, verb = action.rpartition(".")
    said = _subject_text(subject, lang, command_first=verb == "refused") if subject else None
    if said is not None:
        if verb == "refused":                   # the result column says it was refused
            return said
        if f"audit_verb_{verb}" in MESSAGES:
            return t(f"audit_verb_{verb}", lang, subject=said)
        if f"state_{verb}" in MESSAGES:
            return t("audit_verb_state", lang, subject=said, state=t(f"state_{verb}", lang))
    return literal(action, 64)


def reason_text(code: str, lang: Lang) -> str:
    """Why an action was refused, in the reader's language; an unknown code is named."""
    key = f"audit_reason_{code}"
    label = t(key, lang) if key in MESSAGES \
        else t("audit_reason_other", lang, code=literal(code, 64))
    return t("audit_reason", lang, reason=label)


def entry_line(e: AuditRecord, names: dict[str, str], lang: Lang, tz: str) -> str:
    parts = [local(e.at, tz), person(e.actor_id, names), action_text(e.action, lang)]
    if e.target_id:
        parts.append(t("audit_on", lang, who=person(e.target_id, names)))
    if e.request_id is not None:
        parts.append(f"R-{int(e.request_id)}")
    parts.append(result_text(e.result, lang))
    reason = (e.after or {}).get("reason") if e.result == "refused" else None
    if isinstance(reason, str) and reason:
        parts.append(reason_text(reason, lang))
    else:
        summary = change_summary(e.before, e.after)
        if summary:
            parts.append(summary)
    return "- " + " · ".join(parts)


# ---- the command ----------------------------------------------------------------------------

async def _names(ctx: Context, user_ids: set[str]) -> dict[str, str]:
    return await ctx.uow.members.names(ctx.corp_id, user_ids)


@router.command(Audit, admin_only=True, authority="admin")
async def audit(cmd: Audit, ctx: Context) -> None:
    await audit_page(ctx, {"user": cmd.target.user_id if cmd.target else None, "n": cmd.n},
                     cmd.page)


async def audit_page(ctx: Context, args: Mapping[str, Any], page: int) -> None:
    """The newest ``n`` entries (of one member, when given), newest first, a page at a
    time: the store counts them and reads only this page's."""
    uid = args.get("user")
    n = int(args.get("n") or 10)
    answer = LongAnswer("audit", "audit", (*((f"uid:{uid}",) if uid else ()), str(n)),
                        {"user": uid, "n": n})
    total = await ctx.uow.audit.count(ctx.corp_id, user_id=uid, at_most=n)
    w = answer.window(ctx.lang, total, PER_PAGE, page) if total else None
    entries = await ctx.uow.audit.recent(ctx.corp_id, w.size, user_id=uid, offset=w.start) \
        if w else []
    ids = {x for e in entries for x in (e.actor_id, e.target_id) if x}
    names = await _names(ctx, ids | ({uid} if uid else set()))
    who = person(uid, names) if uid else ""
    if w is None:
        await ctx.reply(ctx.t("audit_none_user", who=who) if uid else ctx.t("audit_none"),
                        markdown=True)
        return
    title = ctx.t("audit_title_user", who=who, n=total) if uid \
        else ctx.t("audit_title", n=total)
    tz = ctx.settings.policy.timezone
    await reply_page(ctx, answer, w, f"### {title}",
                     [entry_line(e, names, ctx.lang, tz) for e in entries],
                     title=ctx.t("audit_short"))


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


@router.due(RETENTION)
async def due_audit_retention(payload: dict[str, Any], dctx: Context) -> None:
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



__all__ = ["action_text", "audit_page", "change_summary", "entry_line", "reason_text", "router",
           "schedule_retention"]
