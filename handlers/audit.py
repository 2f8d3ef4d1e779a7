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

from bot.config import Settings
from bot.core.clock import local
from bot.core.commands import COMMAND_NAMES, Audit
from bot.core.commands.words import primary
from bot.core.escape import literal
from bot.core.escape import person as text_person
from bot.dispatch.context import CommandRouter, Context
from bot.texts.catalog import MESSAGES, Lang, t
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
    "audit_result_pending": {"zh": "待审批", "en": "pending"},
    "audit_result_ok": {"zh": "完成", "en": "done"},
    "audit_result_gone": {"zh": "已不存在", "en": "already gone"},
    "audit_result_skipped": {"zh": "已跳过", "en": "skipped"},
    "audit_result_approve": {"zh": "同意", "en": "approve"},
    "audit_result_reject": {"zh": "拒绝", "en": "reject"},
    "audit_result_accept": {"zh": "接受", "en": "accept"},
    "audit_result_decline": {"zh": "谢绝", "en": "decline"},
    # How an action on a request kind or a command reads ({subject}: its kind or command word)
    "audit_verb_requested": {"zh": "{subject}：发起申请", "en": "{subject}: requested"},
    "audit_verb_vote": {"zh": "{subject}：卡片表态", "en": "{subject}: decision on the card"},
    "audit_verb_click_refused": {"zh": "{subject}：卡片点击", "en": "{subject}: card click"},
    "audit_verb_state": {"zh": "{subject}：{state}", "en": "{subject}: {state}"},
    "audit_reason": {"zh": "原因：{reason}", "en": "reason: {reason}"},
    "audit_reason_other": {"zh": "其他（{code}）", "en": "other ({code})"},
}
# What each audit action is called in chat (the export keeps the identifiers).
for _action, _zh, _en in (
    ("grant.apply", "授予权限", "grant"),
    ("grant.revoke", "撤销授权", "revoke a grant"),
    ("grant.expired", "临时授权到期", "time-bound grant ended"),
    ("role_set.apply", "设置业务角色", "set the business role"),
    ("role_clear.apply", "清除业务角色", "clear the business role"),
    ("admin_add.apply", "添加子管理员", "add an admin"),
    ("admin_remove.apply", "移除子管理员", "remove an admin"),
    ("template.create", "创建模板", "create a template"),
    ("template.set", "修改模板", "change a template"),
    ("template.delete", "删除模板", "delete a template"),
    ("template.assign", "分配模板", "assign a template"),
    ("owner_transfer.apply", "主管理员转让生效", "owner transfer applied"),
    ("owner_transfer.dingtalk_verified", "钉钉确认了主管理员", "DingTalk confirmed the owner"),
    ("owner_transfer.dingtalk_unverifiable", "无法向钉钉核实主管理员",
     "the owner could not be checked with DingTalk"),
    ("owner_transfer.dingtalk_changed", "钉钉后台更换了主管理员",
     "the owner was changed in DingTalk's console"),
    ("owner_transfer.dingtalk_change_refused", "未采纳钉钉后台的主管理员变更",
     "an owner change in DingTalk's console was not taken over"),
    ("review.started", "发起权限审核", "access review started"),
    ("review.keep", "权限审核：保留", "access review: kept"),
    ("review.remove", "权限审核：收回", "access review: removed"),
    ("review.unreviewed_keep", "权限审核：未审核，按策略保留",
     "access review: not reviewed, kept by policy"),
    ("review.unreviewed_revoke", "权限审核：未审核，按策略收回",
     "access review: not reviewed, revoked by policy"),
    ("review.applied", "权限审核结束", "access review closed"),
    ("import.apply", "导入生效", "import applied"),
    ("import.change", "导入的变更", "change from an import"),
    ("import.undo_change", "撤销导入的变更", "change undone from an import"),
    ("import.refused", "导入文件", "import file"),
    ("export.requested", "导出权限表", "export the permission table"),
    ("audit.retention", "清理过期审计记录", "old audit entries removed"),
    ("bootstrap", "初始化主管理员", "owner bootstrap"),
    ("rate_limited", "命令发送过快", "commands sent too fast"),
):
    _MESSAGES[f"audit_action_{_action}"] = {"zh": _zh, "en": _en}
# Why something was refused (the ``reason`` an entry records); others read "other (code)".
for _reason, _zh, _en in (
    ("need_owner", "只有主管理员可以执行", "only the owner may do this"),
    ("need_admin", "只有主管理员或子管理员可以执行", "only the owner or an admin may do this"),
    ("admin_conversation_only", "不在管理群或单聊中", "not in an admin group or a one-to-one chat"),
    ("not_available", "命令未开放", "command not available"),
    ("mention_unresolved", "@ 的人无法识别", "a mention could not be resolved"),
    ("unknown_name", "权限目录中没有该名称", "not in the catalog"),
    ("unknown_role", "没有该角色", "no such role"),
    ("role_is_permission", "是权限而不是角色", "a permission, not a role"),
    ("builtin_role", "内置身份不能这样授予", "a built-in level cannot be given this way"),
    ("directory_unavailable", "钉钉通讯录暂时不可用", "DingTalk's directory was unavailable"),
    ("user_unknown", "通讯录中没有该成员", "not a member in the directory"),
    ("user_inactive", "成员未激活或已离职", "the member is inactive (not activated, or left)"),
    ("not_enough_approvers", "审批人不足", "not enough approvers"),
    ("revoke_not_direct", "不是直接授权", "not held through a grant"),
    ("revoke_not_held", "没有该授权", "no such grant"),
    ("template_unknown", "没有该模板", "no such template"),
    ("dept_unknown", "没有该部门", "no such department"),
    ("admin_already", "已经是管理员", "already an administrator"),
    ("admin_not_admin", "不是子管理员", "not an admin"),
    ("admin_remove_owner", "不能移除主管理员", "the owner cannot be removed"),
    ("request_already_open", "同样的申请已在审批中", "the same request is already open"),
    ("transfer_no_owner", "还没有主管理员", "there is no owner yet"),
    ("transfer_no_authority", "无权发起转让", "no authority to transfer"),
    ("transfer_target_unknown", "通讯录中没有对方", "the target is not in the directory"),
    ("transfer_target_inactive", "对方未激活或已停用", "the target is inactive"),
    ("transfer_target_is_owner", "对方已是主管理员", "the target is already the owner"),
    ("transfer_target_not_eligible", "对方不符合策略", "the target is not eligible by policy"),
    ("transfer_transfer_open", "已有进行中的转让", "a transfer is already open"),
    ("not_a_decider", "不是该申请的审批人", "not a decider of the request"),
    ("own_request", "不能审批自己的申请", "cannot approve their own request"),
    ("already_voted", "已经表态过", "already decided"),
    ("already_implied", "发起人的同意已计入", "the requester's approval is implied"),
    ("decided", "申请已结束", "the request was already closed"),
    ("expired", "申请已过期", "the request had expired"),
    ("not_expired", "尚未过期", "not expired yet"),
    ("not_now", "申请正在处理中", "the request was being processed"),
    ("unknown_action", "未知的按钮", "unknown button"),
    ("wrong_button", "该申请没有这个按钮", "no such button on the request"),
    ("not_previous_owner", "不是原主管理员", "not the previous owner"),
):
    _MESSAGES[f"audit_reason_{_reason}"] = {"zh": _zh, "en": _en}
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


def entry_line(e: AuditEntry, names: dict[str, str], lang: Lang, tz: str) -> str:
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



__all__ = ["action_text", "change_summary", "entry_line", "reason_text", "router",
           "schedule_retention"]
