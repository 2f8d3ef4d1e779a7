"""Members ask for access themselves (product.md section 13): ``request``, ``requests``,
``release``, ``extend``, ``policy show``, the warning before a grant ends, and the ``access``
request kind.

The policy is pure (``bot.core.domain.access``): this module reads what it needs into
:class:`People` (the owner and admins from the store, role holders, and the requester's
manager and department heads from the DingTalk directory, looked up before the transaction
and kept with the request), asks ``plan_request`` what to do, and does it on the shared
request machinery (``bot/approvals``): one card, the same states, votes and expiry.

Every applied change is a ``grant.apply`` / ``grant.revoke`` audit entry with result
``applied``; ``after.via`` (or ``before.via`` for a removal) says which road it took:
``self_service``, ``auto_approve``, ``extend``, ``release``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from bot.approvals.engine import card_params, copy_tracks, open_request, view_of
from bot.config import RoleApprover, Settings, UsersApprover
from bot.core.clock import local
from bot.core.commands import AccessRequest, Extend, MyRequests, PolicyShow, Release
from bot.core.commands.durations import format_duration
from bot.core.domain.access import (
    AccessPolicy,
    Approver,
    AutoRule,
    People,
    PolicyOverride,
    plan_request,
    policy_for,
)
from bot.core.domain.members import OWNER, Staff
from bot.core.domain.permissions import BUILTIN_ROLES, live, sources_of
from bot.core.domain.reminders import next_allowed
from bot.core.domain.requests import OPEN, Request, Requirement, State
from bot.core.escape import Md, joined, literal
from bot.core.sends import CardSpec, Reply
from bot.delivery.todos import KIND as TODO
from bot.delivery.todos import todo_key
from bot.dispatch.context import CommandRouter, Context, UserError
from bot.ports import DingTalkError, Directory
from bot.texts.catalog import t
from bot.transport.cards import create_and_deliver_body
from bot.transport.workdays import later
from handlers.permissions import (
    ApprovedChange,
    apply_grant,
    catalog_of,
    resolve_name,
    source_text,
    target_label,
)

log = logging.getLogger(__name__)
router = CommandRouter()

ACCESS = "access"
MY_REQUESTS_LIMIT = 15


# ---- the policy, from the settings -----------------------------------------------------------

def _approvers(items: list[Any]) -> tuple[Approver, ...]:
    out: list[Approver] = []
    for a in items:
        if isinstance(a, UsersApprover):
            out.append(Approver("users", tuple(a.users)))
        elif isinstance(a, RoleApprover):
            out.append(Approver("role", (a.role,)))
        else:
            out.append(Approver(a))
    return tuple(out)


def _auto(rule: Any) -> AutoRule | None:
    if rule is None:
        return None
    return AutoRule(frozenset(rule.departments) if rule.departments is not None else None,
                    rule.max_duration)


def policies_of(settings: Settings) -> tuple[dict[str, PolicyOverride | None], AccessPolicy]:
    """The catalog's own policies and the defaults (small: built when asked)."""
    p = settings.policy
    defaults = AccessPolicy(_approvers(p.approvers), p.approvals_required, p.max_duration)
    own: dict[str, PolicyOverride | None] = {}
    for pid, names in settings.catalog.permissions.items():
        pol = names.policy
        own[pid] = None if pol is None else PolicyOverride(
            approvers=_approvers(pol.approvers) if pol.approvers else None,
            approvals_required=pol.approvals_required, max_duration=pol.max_duration,
            auto_approve=_auto(pol.auto_approve), requestable=pol.requestable)
    return own, defaults


def policy_of(settings: Settings, name: str) -> AccessPolicy:
    own, defaults = policies_of(settings)
    return policy_for(name, own, defaults, catalog_of(settings).expand)


# ---- the directory (before the transaction) ----------------------------------------------

async def requester_directory(cmd: Any, client: Directory | None, sender_id: str) -> dict[str, Any]:
    """The sender's manager, department heads and departments, as DingTalk says now."""
    if client is None:
        return {"error": "no_client"}
    try:
        user = await client.user_get(sender_id)
        depts = [int(d) for d in user.get("dept_id_list") or []]
        leaders: set[str] = set()
        names: set[str] = {str(d) for d in depts}
        for d in depts:
            dept = await client.dept_get(d)
            leaders |= {str(u) for u in dept.get("dept_manager_userid_list") or []}
            if dept.get("name"):
                names.add(str(dept["name"]))
        manager = str(user.get("manager_userid") or "")
        people: dict[str, str] = {}
        for uid in sorted({manager, *leaders} - {"", sender_id}):
            people[uid] = str((await client.user_get(uid)).get("name") or "")
    except DingTalkError as e:
        log.warning("directory lookup of %s failed: %s", sender_id, e)
        return {"error": e.code}
    return {"manager": manager, "leaders": sorted(leaders), "departments": sorted(names),
            "names": people}


async def people_for(ctx: Context, policy: AccessPolicy) -> People:
    info: dict[str, Any] = ctx.prepared or {}
    needs_directory = any(a.kind in ("manager", "dept_leader") for a in policy.approvers) or (
        policy.auto_approve is not None and policy.auto_approve.departments is not None)
    if needs_directory and "error" in info:
        raise UserError("access_directory")
    found = info.get("names") or {}
    if found:       # the manager and department heads, by name, for the card and the lists
        await ctx.uow.members.upsert_many(ctx.corp_id, sorted(found.items()), ctx.now)
    staff = [m for m in await ctx.uow.members.admins_of(ctx.corp_id) if m.active]
    roles: dict[str, frozenset[str]] = {}
    cat = catalog_of(ctx.settings)
    for a in policy.approvers:
        for role in a.names if a.kind == "role" else ():
            roles[role] = frozenset(await ctx.uow.perms.who_has(ctx.corp_id, role, cat, ctx.now))
    return People(
        owner=next((m.user_id for m in staff if m.level == OWNER), None),
        admins=frozenset(m.user_id for m in staff if m.level != OWNER),
        manager=info.get("manager") or None, dept_leaders=frozenset(info.get("leaders", ())),
        role_holders=roles, departments=frozenset(info.get("departments", ())))


# ---- asking ----------------------------------------------------------------------------------

def _requested_name(ctx: Context, raw: str, action: str) -> str:
    cat = catalog_of(ctx.settings)
    name = resolve_name(cat, raw, ctx.lang, audit_action=action)
    if name in BUILTIN_ROLES:
        raise UserError("access_builtin", audit_action=action, name=literal(name, 64))
    return name


def _capped_note(ctx: Context, cut: bool, cap: timedelta | None) -> Md:
    if not cut or cap is None:
        return Md("")
    return ctx.t("access_capped", cap=format_duration(cap, ctx.lang))


async def _open_access(ctx: Context, name: str) -> Request | None:
    for req in await ctx.uow.requests.open_for(ctx.corp_id):
        if (req.kind == ACCESS and req.requester_id == ctx.sender.user_id
                and req.payload.get("name") == name and req.expires_at > ctx.now):
            return req
    return None


async def ask(ctx: Context, name: str, asked: timedelta | None, reason: str, *,
              extend_from: datetime | None = None) -> None:
    """Open (or auto-apply) a member's request for ``name``; ``extend_from``: the expiry of
    the grant it extends."""
    uid = ctx.sender.user_id
    cat = catalog_of(ctx.settings)
    label = cat.label(name, ctx.lang)
    action = "extend.refused" if extend_from else "access.refused"
    existing = await _open_access(ctx, name)
    if existing is not None:
        await ctx.reply(ctx.t("access_already_asked", name=label, id=existing.public_id),
                        markdown=True)
        return
    policy = policy_of(ctx.settings, name)
    plan = plan_request(policy, await people_for(ctx, policy), uid, asked)
    if plan.refusal == "not_requestable":
        raise UserError("access_not_requestable", audit_action=action, name=label)
    if plan.refusal == "not_enough_approvers":
        raise UserError("access_no_approvers", audit_action=action, name=label,
                        need=plan.need, have=len(plan.approvers))
    capped = _capped_note(ctx, plan.capped, policy.max_duration)
    if plan.outcome == "auto":
        duration = plan.duration
        if extend_from is not None and duration is not None:
            duration = extend_from + duration - ctx.now
        _, expires = await apply_grant(ctx, user_id=uid, name=name, by=uid, duration=duration,
                                       via="auto_approve")
        until = ctx.t("until", at=local(expires, ctx.settings.policy.timezone)) if expires \
            else ctx.t("permanently")
        await ctx.reply(ctx.t("access_auto", name=label, until=until, capped=capped),
                        markdown=True)
        return
    payload: dict[str, Any] = {
        "name": name, "seconds": int(plan.duration.total_seconds()) if plan.duration else None,
        "capped": plan.capped, "need": plan.need, "approvers": sorted(plan.approvers)}
    if extend_from is not None:
        payload["extend_from"] = extend_from.isoformat()
    group = ctx.message.is_group
    names = await ctx.names(*plan.approvers)
    req = await open_request(
        ctx, kind=ACCESS, requester=uid, target=uid, conversation_id=ctx.message.conversation_id,
        is_group=group, reason=reason, payload=payload, ttl=ctx.settings.policy.approval_ttl,
        mention={u: names[u] for u in sorted(plan.approvers)} if group else None,
        # Asked one-to-one: each approver gets the card one-to-one (a manager or a department
        # head need not be in any admin group).
        copies_to=sorted(plan.approvers) if not group else ())
    await todos(ctx, "create", req, sorted(plan.approvers))
    p = ctx.settings.policy
    escalate_at = next_allowed(later(ctx.now, p.escalate_after, p.calendar, p.timezone),
                               p.quiet_hours, p.timezone)
    if escalate_at < req.expires_at:
        await ctx.uow.due.schedule("access_escalate", escalate_at, {"request_id": req.id},
                                   ctx.now, dedupe_key=f"escalate:{req.id}")
    await ctx.reply(ctx.t("access_asked", id=req.public_id, what=await describe(req, ctx, False),
                          capped=capped, need=plan.need,
                          approvers=joined(ctx.t("list_sep"),
                                           (names[u] for u in sorted(plan.approvers)))),
                    markdown=True)


@router.command(AccessRequest, prepare_sender=requester_directory)
async def request_access(cmd: AccessRequest, ctx: Context) -> None:
    name = _requested_name(ctx, cmd.name, "access.refused")
    cat = catalog_of(ctx.settings)
    held = sources_of(await ctx.uow.perms.holdings(ctx.corp_id, ctx.sender.user_id, ctx.now),
                      cat, ctx.now)
    wanted = cat.expand(name)
    if wanted and all(p in held for p in wanted):
        tz = ctx.settings.policy.timezone
        srcs = sorted({source_text(s, ctx.lang, tz, cat) for p in wanted for s in held[p]})
        await ctx.reply(ctx.t("access_already_held", name=cat.label(name, ctx.lang),
                              sources=joined(ctx.t("list_sep"), srcs)), markdown=True)
        return
    await ask(ctx, name, cmd.duration, cmd.reason)


@router.command(Extend, prepare_sender=requester_directory)
async def extend(cmd: Extend, ctx: Context) -> None:
    name = _requested_name(ctx, cmd.name, "extend.refused")
    holdings = await ctx.uow.perms.holdings(ctx.corp_id, ctx.sender.user_id, ctx.now)
    grant = next((g for g in holdings.grants if g.name == name and g.expires_at is not None
                  and live(g.expires_at, ctx.now)), None)
    if grant is None or grant.expires_at is None:
        raise UserError("extend_nothing", audit_action="extend.refused", perm=literal(name, 64),
                        name=catalog_of(ctx.settings).label(name, ctx.lang))
    await ask(ctx, name, cmd.duration, cmd.reason, extend_from=grant.expires_at)


async def describe(req: Request, env: Context, holdings: bool = True) -> Md:
    cat = catalog_of(env.settings)
    name = str(req.payload["name"])
    label = cat.label(name, env.lang)
    secs = req.payload.get("seconds")
    tz = env.settings.policy.timezone
    if req.payload.get("extend_from") and secs:
        text = t("access_gain_extend", env.lang, name=label,
                 d=format_duration(timedelta(seconds=secs), env.lang))
    else:
        duration = t("access_for", env.lang, d=format_duration(timedelta(seconds=secs), env.lang),
                     at=local(env.now + timedelta(seconds=secs), tz)) if secs \
            else t("access_for_ever", env.lang)
        text = t("access_gain", env.lang, name=label, duration=duration)
    escalated = [str(u) for u in req.payload.get("escalated_to", ())]
    if escalated and req.state in OPEN:
        names = await env.names(*escalated)
        text = Md(text + "\n\n" + t("access_escalated", env.lang, who=joined(
            t("list_sep", env.lang), (names[u] for u in escalated))))
    if holdings and req.state in OPEN:
        held = sources_of(await env.uow.perms.holdings(env.corp_id, req.target_id or "", env.now),
                          cat, env.now)
        perms = joined(t("list_sep", env.lang), (cat.label(p, env.lang) for p in held))
        text = Md(text + "\n\n" + (t("access_holds", env.lang, perms=perms) if held
                                   else t("access_holds_nothing", env.lang)))
    return text


async def todos(env: Context, op: str, req: Request, users: list[str]) -> None:
    """With ``integrations.dingtalk_todo``: a to-do for each of ``users`` (``create``), or
    theirs closed (``done``), through the outbox, in this transaction."""
    if not env.settings.integrations.dingtalk_todo:
        return
    cat = catalog_of(env.settings)
    names = await env.names(req.requester_id)
    subject = t("todo_subject", env.lang, id=req.public_id, who=names[req.requester_id],
                name=cat.label(str(req.payload["name"]), env.lang))
    for user in users:
        payload: dict[str, Any] = {"op": op, "request_id": req.id, "user_id": user}
        if op == "create":
            payload |= {"subject": str(subject), "description": req.reason[:500],
                        "source_id": f"baton-{env.corp_id}-{req.public_id}-{user}"}
        await env.uow.outbox.add(TODO, todo_key(user), payload, env.now,
                                 source_message_id=env.message_id)


NO_STAFF = Staff(())     # the owner and admins, for deciders that do not depend on them


class AccessKind(ApprovedChange):
    """A member's own request: approved by the pool its policy named when it was made (kept
    with the request), never by the requester, who is also the member it is about."""

    kind = ACCESS

    async def requirements(self, req: Request, env: Context) -> tuple[Requirement, ...]:
        return self.deciders(req, env, NO_STAFF)

    def deciders(self, req: Request, env: Context, staff: Staff) -> tuple[Requirement, ...]:
        """From the request alone: its approvers were stored with it."""
        pool = frozenset(str(u) for u in req.payload.get("approvers", ())) - {
            req.requester_id, req.target_id or ""}
        return (Requirement("approvers", pool, "approve", "reject",
                            int(req.payload.get("need", 1))),)

    async def describe(self, req: Request, env: Context) -> Md:
        return await describe(req, env)

    async def after(self, req: Request, env: Context, state: State) -> None:
        await super().after(req, env, state)
        await todos(env, "done", req, sorted(str(u) for u in req.payload.get("approvers", ())))

    async def apply(self, req: Request, env: Context) -> None:
        secs = req.payload.get("seconds")
        duration = timedelta(seconds=secs) if secs else None
        via = "self_service"
        if req.payload.get("extend_from") and duration is not None:
            via = "extend"
            holdings = await env.uow.perms.holdings(env.corp_id, req.target_id or "", env.now)
            grant = next((g for g in holdings.grants if g.name == req.payload["name"]
                          and g.expires_at is not None and live(g.expires_at, env.now)), None)
            if grant is not None and grant.expires_at is not None:
                duration = grant.expires_at + duration - env.now
        await apply_grant(env, user_id=req.target_id or req.requester_id,
                          name=str(req.payload["name"]), by=req.requester_id,
                          duration=duration, request_id=req.id, via=via)


# ---- escalation -------------------------------------------------------------------------------

def next_tier(req: Request, staff: list[tuple[str, str]]) -> list[str]:
    """Who a request no one decided goes to: the owner, or (the owner already asked, or the
    one asking) the admins not yet asked. ``staff``: (userId, level) of the active owner and
    admins."""
    pool = {str(u) for u in req.payload.get("approvers", ())}
    out = {req.requester_id, req.target_id or ""}
    owner = [u for u, level in staff if level == OWNER and u not in pool | out]
    if owner:
        return owner
    return sorted(u for u, level in staff if level != OWNER and u not in pool | out)


@router.due("access_escalate")
async def due_escalate(payload: dict[str, Any], dctx: Context) -> None:
    """Undecided after ``policy.escalate_after``: the next tier becomes approvers too, gets the
    card one-to-one, and the card says so."""
    async with dctx.transaction() as tx:
        req = await tx.uow.requests.find(int(payload["request_id"]), for_update=True)
        if req is None or req.state is not State.PENDING or req.payload.get("escalated_to"):
            return
        env = tx.for_request(req)
        staff = [(m.user_id, m.level) for m in await env.uow.members.admins_of(env.corp_id)
                 if m.active]
        new = next_tier(req, staff)
        if not new:
            return
        copies = [str(u) for u in req.payload.get("copies", [])]
        first = len(copies)
        copies += [u for u in new if u not in copies]
        req = await env.uow.requests.set_payload(req.id, {
            **req.payload, "approvers": sorted({*req.payload.get("approvers", ()), *new}),
            "escalated_to": new, "copies": copies})
        await todos(env, "create", req, new)
        await env.audit("system", "access.escalated", "pending", target_id=req.target_id,
                        request_id=req.id, after={"to": new})
        params = await card_params(req, await view_of(req, env), env)
        s = env.settings.dingtalk
        for track, user in copy_tracks(req):
            if user and user in copies[first:]:
                body = create_and_deliver_body(
                    template_id=s.card_template_id, robot_code=s.effective_robot_code,
                    out_track_id=track, params=params, user_id=user)
                await env.card(CardSpec("create", track, f"user:{user}", body))
            else:
                await env.card(CardSpec("update", track, f"card:{track}", {"params": params}))
        track = req.card_out_track_id or ""
        await env.card(CardSpec("update", track, f"card:{track}", {"params": params}))
        names = await env.names(*new)
        await env.send(Reply(t("access_escalated_notice", env.lang, id=req.public_id,
                               after=format_duration(env.settings.policy.escalate_after,
                                                     env.lang),
                               who=joined(t("list_sep", env.lang), (names[u] for u in new))),
                             req.conversation_id, bool(req.payload.get("is_group", True)),
                             req.requester_id, markdown=True))


# ---- listing, releasing, the policy ------------------------------------------------------

@router.command(MyRequests, reads_only=True)
async def my_requests(cmd: MyRequests, ctx: Context) -> None:
    uid = ctx.sender.user_id
    mine = [r for r in await ctx.uow.requests.by_kind(ctx.corp_id, ACCESS) if r.requester_id == uid]
    others = [r for r in await ctx.uow.requests.open_for(ctx.corp_id)
              if r.requester_id == uid and r.kind != ACCESS]
    rows = sorted(mine + others, key=lambda r: -r.id)[:MY_REQUESTS_LIMIT]
    if not rows:
        await ctx.reply(ctx.t("my_requests_none"), markdown=True)
        return
    tz = ctx.settings.policy.timezone
    lines = [f"### {ctx.t('my_requests_title')}"]
    for req in rows:
        kind = ctx.request_kinds.kind(req.kind)
        what = await describe(req, ctx, False) if req.kind == ACCESS else await kind.describe(req, ctx)
        when = ctx.t("my_requests_open_until", at=local(req.expires_at, tz)) \
            if req.state in OPEN else Md("")
        lines.append(ctx.t("my_requests_line", id=req.public_id, kind=ctx.t(f"kind_{req.kind}"),
                           what=what, state=ctx.t(f"state_{req.state.value}"), when=when))
    await ctx.reply("\n".join(lines), markdown=True, title=ctx.t("my_requests_title"))


@router.command(Release)
async def release(cmd: Release, ctx: Context) -> None:
    """Give one's own grant back before it ends (it only removes access: no approval)."""
    cat = catalog_of(ctx.settings)
    name = _requested_name(ctx, cmd.name, "release.refused")
    uid = ctx.sender.user_id
    label = cat.label(name, ctx.lang)
    row = await ctx.uow.perms.revoke(ctx.corp_id, uid, name)
    if row is None or not live(row.expires_at, ctx.now):
        held = sources_of(await ctx.uow.perms.holdings(ctx.corp_id, uid, ctx.now), cat, ctx.now)
        srcs = {source_text(s, ctx.lang, ctx.settings.policy.timezone, cat)
                for p in cat.expand(name) for s in held.get(p, ())}
        if srcs:
            raise UserError("release_not_grant", audit_action="release.refused", target=uid,
                            name=label, sources=joined(ctx.t("list_sep"), sorted(srcs)))
        raise UserError("release_not_held", audit_action="release.refused", target=uid,
                        name=label)
    await ctx.audit(uid, "grant.revoke", "applied", target_id=uid,
                    before={"name": name, "expires_at": row.expires_at.isoformat()
                            if row.expires_at else None, "via": "release"}, after=None)
    origin = await ctx.uow.requests.find(row.request_id) if row.request_id else None
    if origin is not None and origin.kind == "break_glass":
        # Given back early: its card shows it ended, and the owner's review opens now.
        await ctx.uow.due.schedule("break_glass_end", ctx.now, {"request_id": origin.id,
                                                             "released": True},
                                   ctx.now, dedupe_key=f"bg-released:{origin.id}")
    await ctx.reply(ctx.t("release_done", name=label), markdown=True)


def _approver_text(a: Approver, ctx: Context, names: dict[str, Md]) -> Md:
    if a.kind == "users":
        return joined(ctx.t("list_sep"), (names[u] for u in a.names))
    if a.kind == "role":
        return ctx.t("approver_role", role=literal(a.names[0], 64))
    return ctx.t(f"approver_{a.kind}")


@router.command(PolicyShow, reads_only=True)
async def policy_show(cmd: PolicyShow, ctx: Context) -> None:
    cat = catalog_of(ctx.settings)
    name = resolve_name(cat, cmd.name, ctx.lang)
    policy = policy_of(ctx.settings, name)
    label = cat.label(name, ctx.lang)
    lines = [f"### {ctx.t('policy_title', name=label)}"]
    if not policy.requestable:
        lines.append(f"- {ctx.t('policy_not_requestable')}")
    else:
        names = await ctx.names(*(u for a in policy.approvers if a.kind == "users"
                                  for u in a.names))
        who = joined(ctx.t("list_sep"), (_approver_text(a, ctx, names) for a in policy.approvers))
        lines.append(f"- {ctx.t('policy_approvers', who=who)}")
        lines.append(f"- {ctx.t('policy_need', n=policy.approvals_required)}")
        lines.append("- " + (ctx.t("policy_max", d=format_duration(policy.max_duration, ctx.lang))
                             if policy.max_duration else ctx.t("policy_max_none")))
        rule = policy.auto_approve
        if rule is not None:
            parts = []
            if rule.departments is not None:
                parts.append(ctx.t("policy_auto_depts", depts=joined(
                    ctx.t("list_sep"), (literal(d, 64) for d in sorted(rule.departments)))))
            if rule.max_duration is not None:
                parts.append(ctx.t("policy_auto_max",
                                   d=format_duration(rule.max_duration, ctx.lang)))
            lines.append(f"- {ctx.t('policy_auto', rule=joined(' ' + ctx.t('and') + ' ', parts))}")
    bg = ctx.settings.policy.break_glass
    if ctx.sender.user_id in bg.users and name in bg.permissions:
        lines.append(ctx.t("policy_break_glass", d=format_duration(bg.max, ctx.lang)))
    await ctx.reply("\n".join(lines), markdown=True, title=ctx.t("policy_title", name=label))


# ---- the warning before a grant ends ------------------------------------------------------

@router.due("grant_warn")
async def due_grant_warn(payload: dict[str, Any], dctx: Context) -> None:
    """Warn the holder once, if the grant still ends when it did (not extended nor gone)."""
    async with dctx.transaction() as env:
        user, name = str(payload["user_id"]), str(payload["name"])
        holdings = await env.uow.perms.holdings(env.corp_id, user, env.now)
        ends = datetime.fromisoformat(str(payload["expires_at"]))
        if not any(g.name == name and g.expires_at == ends for g in holdings.grants):
            return
        cat = catalog_of(env.settings)
        await env.send(Reply(t("expiry_warning", env.lang, name=cat.label(name, env.lang),
                               perm=literal(name, 64),
                               at=local(ends, env.settings.policy.timezone)),
                             "", False, user, markdown=True,
                             title=t("expiry_warning_title", env.lang)))


router.request_kind(AccessKind())

__all__ = ["ACCESS", "policies_of", "policy_of", "router", "target_label"]
