"""Business permissions: role set, grant, revoke, admin add/remove, who-has, and the
request kinds for the changes that need approval (sensitive grants and roles, admin
changes asked by an admin). Templates live in handlers/templates.py.

Authority is checked by the router (``authority="admin"`` / ``"owner"``); names are checked
against the catalog here, with a did-you-mean. A change that needs approval becomes a
request on the shared machinery (bot/approvals/engine.py): approvers are the owner and the
admins other than the requester (and other than the person the change is about), and
``policy.approvals_required`` of them must agree. Everything else applies at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.approvals.engine import open_request, staff_of
from bot.core.clock import local
from bot.core.commands import (
    AdminAdd,
    AdminRemove,
    Grant,
    Revoke,
    RoleClear,
    Roles,
    RoleSet,
    UserRef,
    WhoHas,
)
from bot.core.commands.durations import format_duration
from bot.core.domain.access import warn_at
from bot.core.domain.index import CorpIndex
from bot.core.domain.members import ADMIN, MEMBER, OWNER, Sender, Staff
from bot.core.domain.permissions import (
    ADMIN_ROLE,
    BUILTIN_ROLES,
    OWNER_ROLE,
    Catalog,
    Source,
    sources_of,
    ways_to_remove,
)
from bot.core.domain.requests import Request, Requirement, State
from bot.core.escape import Md, code, joined, literal, person
from bot.core.lang import Lang
from bot.core.sends import Reply
from bot.dispatch.context import CommandRouter, Context, UserError
from bot.dispatch.paging import LongAnswer, reply_page
from bot.ports import DingTalkError, Directory, NotFound
from bot.texts.catalog import MESSAGES, t
from storage.index import keeper
from storage.permissions import schedule_expiry

log = logging.getLogger(__name__)
router = CommandRouter()

GRANT = "grant"
ROLE_SET = "role_set"
ADMIN_ADD = "admin_add"
ADMIN_REMOVE = "admin_remove"

_CATALOGS: dict[int, tuple[object, Catalog]] = {}


def catalog_of(settings: Any) -> Catalog:
    """The catalog of these settings, built once (the cached object is kept alive with it)."""
    c = settings.catalog
    hit = _CATALOGS.get(id(c))
    if hit is None or hit[0] is not c:
        hit = (c, Catalog.from_settings(c))
        _CATALOGS[id(c)] = hit
    return hit[1]


async def permission_index(ctx: Context) -> CorpIndex | None:
    """The company's permission index, caught up with every change committed before now
    (read in this transaction), or None inside a transaction that changed something itself
    (the index never holds what may roll back; such a caller reads the store)."""
    uow = ctx.uow
    if uow.feed.written:
        return None
    k = keeper(uow.database, catalog_of(ctx.settings))
    if uow.index_synced is not k:
        await k.sync_in(uow)
        uow.index_synced = k
    return k.corp(ctx.corp_id)


# ---- names -------------------------------------------------------------------------------

def did_you_mean(hints: list[str], lang: Lang) -> Md:
    """"Did you mean `a`, `b`?": the hint of every refusal of an unknown name."""
    return t("did_you_mean", lang, names=joined(t("list_sep", lang), map(code, hints)))


def resolve_name(cat: Catalog, name: str, lang: Lang, *, what: str = "any",
                 audit_action: str | None = None) -> str:
    """The catalog's spelling of ``name`` (a permission or role), or a refusal with
    the closest names. ``what`` narrows it: "role", "permission", "any", or "item"
    (a template item: also a wildcard that matches at least one permission)."""
    exact = _exact(cat, name)
    if exact is not None:
        ok = {"role": cat.is_role(exact), "permission": cat.is_permission(exact)}.get(what, True)
        if ok:
            return exact
    if what == "item" and cat.is_pattern(name):
        return name
    if what == "role" and exact is not None and cat.is_permission(exact):
        raise UserError("role_is_permission", audit_action=audit_action, name=literal(name, 64))
    hints = cat.suggest(name, roles=what != "permission")
    hint = did_you_mean(hints, lang) if hints else t("see_catalog", lang)
    raise UserError(f"unknown_{'role' if what == 'role' else 'name'}", audit_action=audit_action,
                    name=literal(name, 64), hint=hint)


def _exact(cat: Catalog, name: str) -> str | None:
    if cat.known(name):
        return name
    low = name.lower()
    for n in (*cat.permissions, *cat.roles, *BUILTIN_ROLES):
        if n.lower() == low:
            return n
    return None


def source_text(src: Source, lang: Lang, tz: str, cat: Catalog) -> Md:
    if src.kind == "level":
        base = t(f"level_{src.name}", lang)
    elif src.kind == "role":
        base = t("source_role", lang, name=literal(src.name, 64))
    elif src.kind == "grant":
        base = t("source_grant_role", lang, name=literal(src.name, 64)) \
            if cat.is_role(src.name) else t("source_grant", lang)
    else:
        base = t("source_template", lang, name=literal(src.name, 64))
    if src.expires_at is not None:
        base = Md(base + t("expires", lang, at=local(src.expires_at, tz)))
    return base


# ---- directory (before the transaction) ---------------------------------------------------

async def lookup_users(refs: list[UserRef], client: Directory | None) -> dict[str, Any]:
    """What DingTalk's directory says of each target: {user_id: {"found", "active", "name"}}."""
    out: dict[str, Any] = {}
    if client is None:
        return {"error": "no_client"}
    for ref in refs:
        try:
            user = await client.user_get(ref.user_id)
        except NotFound:
            out[ref.user_id] = {"found": False}
            continue
        except DingTalkError as e:
            log.warning("directory lookup of %s failed: %s", ref.user_id, e)
            return {"error": e.code}
        out[ref.user_id] = {"found": True, "active": bool(user.get("active", True)),
                            "name": str(user.get("name") or "")}
    return out


async def _lookup_target(cmd: Any, client: Directory | None) -> dict[str, Any]:
    return await lookup_users([cmd.target], client)


async def known_member(ctx: Context, user_id: str, *, audit_action: str) -> Sender:
    """The target as an active member of the corp (per the directory), stored."""
    info: dict[str, Any] = ctx.prepared or {}
    if "error" in info:
        raise UserError("directory_unavailable")
    entry = info.get(user_id) or {}
    if not entry.get("found"):
        raise UserError("user_unknown", audit_action=audit_action, target=user_id,
                        user=literal(user_id, 64))
    if not entry.get("active", True):
        raise UserError("user_inactive", audit_action=audit_action, target=user_id,
                        user=literal(entry.get("name") or user_id, 64))
    return await ctx.uow.members.upsert_sender(ctx.corp_id, user_id, ctx.now,
                                               name=entry.get("name") or None)


def who(m: Sender) -> Md:
    return person(m.name, m.user_id)


# ---- approvals ----------------------------------------------------------------------------

def approvers_in(staff: Staff, requester: str, *exclude: str) -> frozenset[str]:
    """The active owner and admins of ``staff``, minus the requester and anyone the change
    is about."""
    return frozenset(p.user_id for p in staff.people if p.active and p.user_id != requester
                     and p.user_id not in exclude)


async def approvers_for(env: Context, requester: str, *exclude: str) -> frozenset[str]:
    """The owner and the admins, minus the requester and anyone the change is about."""
    return approvers_in(await staff_of(env), requester, *exclude)


def approvals_needed(env: Context) -> int:
    return env.settings.policy.approvals_required


async def start_request(ctx: Context, kind: str, target: str | None, payload: dict[str, Any],
                        *, twin_group: str | None = None) -> Request:
    """Open a request approved by ``policy.approvals_required`` of the owner and admins
    (never the requester nor anyone the change is about, :meth:`ApprovedChange.affected`);
    refused up front when fewer can."""
    for open_ in await ctx.uow.requests.open_for(ctx.corp_id):
        if (open_.kind == kind and open_.requester_id == ctx.sender.user_id
                and open_.target_id == target and open_.expires_at > ctx.now
                and all(open_.payload.get(k) == v for k, v in payload.items())):
            # The same change asked again (no answer seen, a resend): one request is enough.
            await ctx.reply(ctx.t("request_already_open", id=open_.public_id), markdown=True)
            return open_
    kind_ = ctx.request_kinds.kind(kind)
    about = kind_.affected(target, payload) if isinstance(kind_, ApprovedChange) else ()
    pool = await approvers_for(ctx, ctx.sender.user_id, *about)
    need = approvals_needed(ctx)
    if len(pool) < need:
        raise UserError("not_enough_approvers", need=need, have=len(pool))
    payload = {**payload, "need": need}
    names = await ctx.names(*pool)
    admin_groups = ctx.settings.org.admin_conversations
    if twin_group is None and not ctx.message.is_group and admin_groups:
        # Asked one-to-one: the approvers see the card in the admin group too.
        twin_group = admin_groups[0]
    req = await open_request(
        ctx, kind=kind, requester=ctx.sender.user_id, target=target,
        conversation_id=ctx.message.conversation_id, is_group=ctx.message.is_group,
        reason="", payload=payload, ttl=ctx.settings.policy.approval_ttl,
        mention={u: names[u] for u in sorted(pool)} if ctx.message.is_group else None,
        twin_group=twin_group,
        # Asked one-to-one with no admin group: each approver gets the card one-to-one.
        copies_to=sorted(pool) if not ctx.message.is_group and not twin_group else (),
    )
    await ctx.reply(ctx.t("request_created", id=req.public_id,
                          what=await kind_.describe(req, ctx),
                          need=need), markdown=True)
    return req


class ApprovedChange:
    """A request kind whose deciders are ``approvals_required`` of the owner and admins,
    never the requester and never anyone the change is about (no one approves their own
    grant, role, admin rights, template or import rows)."""

    kind = ""

    def affected(self, target: str | None, payload: Mapping[str, Any]) -> tuple[str, ...]:
        """Whose permissions or rights the change is about: none of them may approve it."""
        return (target,) if target else ()

    async def requirements(self, req: Request, env: Context) -> tuple[Requirement, ...]:
        return self.deciders(req, env, await staff_of(env))

    def deciders(self, req: Request, env: Context, staff: Staff) -> tuple[Requirement, ...]:
        pool = approvers_in(staff, req.requester_id, *self.affected(req.target_id, req.payload))
        return (Requirement("approvers", pool, "approve", "reject",
                            int(req.payload.get("need", approvals_needed(env)))),)

    async def apply(self, req: Request, env: Context) -> None:
        raise NotImplementedError

    async def describe(self, req: Request, env: Context) -> Md:
        raise NotImplementedError

    async def subject(self, req: Request, env: Context) -> str:
        """The member the change is about (kinds without one say what they change)."""
        return await target_label(env, req)

    async def after(self, req: Request, env: Context, state: State) -> None:
        what = await self.describe(req, env)
        error = str(req.payload.get("error", ""))
        if f"not_applied_{error}" in MESSAGES:      # a NoLongerAllowed code: say it in words
            error = t(f"not_applied_{error}", env.lang)
        text = t(f"request_{state.value}", env.lang, id=req.public_id, what=what, error=error)
        group = bool(req.payload.get("is_group", True))
        await env.send(Reply(text, req.conversation_id, group, req.requester_id, markdown=True))


async def target_label(env: Context, req: Request) -> Md:
    names = await env.names(req.target_id or "")
    return literal(names.get(req.target_id or "", req.target_id or ""), 80)


# ---- grants ---------------------------------------------------------------------------------

async def apply_grant(env: Context, *, user_id: str, name: str, by: str,
                      duration: timedelta | None, request_id: int | None = None,
                      batch_id: str | None = None,
                      via: str | None = None) -> tuple[bool, datetime | None]:
    """Grant (merged), audit, schedule its expiry and the holder's warning before it;
    (changed?, expiry after). ``via`` names the road a member's own request took
    (``self_service``, ``auto_approve``, ``extend``, ``break_glass``), kept in the audit."""
    expires = env.now + duration if duration else None
    change = await env.uow.perms.grant(env.corp_id, user_id, name, by=by, now=env.now,
                                       expires_at=expires, request_id=request_id,
                                       batch_id=batch_id)
    after = change.after
    assert after is not None
    if not change.changed:
        return False, after.expires_at
    before = None if change.before is None else {
        "name": name, "expires_at": _iso(change.before_expires)}
    detail: dict[str, Any] = {"name": name, "expires_at": _iso(after.expires_at)}
    if via:
        detail["via"] = via
    await env.audit(by, "grant.apply", "applied", target_id=user_id, request_id=request_id,
                    before=before, after=detail)
    await schedule_expiry(env.uow.due, after, env.now)
    if after.expires_at is not None:
        at = warn_at(env.now, after.expires_at, env.settings.policy.expiry_warning)
        await env.uow.due.schedule(
            "grant_warn", at, {"user_id": user_id, "name": name,
                               "expires_at": after.expires_at.isoformat()}, env.now,
            dedupe_key=f"grant-warn:{after.id}:{int(after.expires_at.timestamp())}")
    return True, after.expires_at


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


@router.command(Grant, admin_only=True, authority="admin", prepare=_lookup_target)
async def grant(cmd: Grant, ctx: Context) -> None:
    cat = catalog_of(ctx.settings)
    name = resolve_name(cat, cmd.name, ctx.lang, audit_action="grant.refused")
    if name in BUILTIN_ROLES:
        raise UserError("builtin_role", audit_action="grant.refused", name=literal(name, 64))
    target = await known_member(ctx, cmd.target.user_id, audit_action="grant.refused")
    if cat.is_sensitive(name):
        await start_request(ctx, GRANT, target.user_id, {
            "name": name, "seconds": int(cmd.duration.total_seconds()) if cmd.duration else None})
        return
    changed, expires = await apply_grant(ctx, user_id=target.user_id, name=name,
                                         by=ctx.sender.user_id, duration=cmd.duration)
    until = ctx.t("until", at=local(expires, ctx.settings.policy.timezone)) if expires \
        else ctx.t("permanently")
    key = "grant_done" if changed else "grant_unchanged"
    await ctx.reply(ctx.t(key, who=who(target), name=cat.label(name, ctx.lang), until=until),
                    markdown=True)


class GrantRequest(ApprovedChange):
    kind = GRANT

    async def describe(self, req: Request, env: Context) -> Md:
        cat = catalog_of(env.settings)
        secs = req.payload.get("seconds")
        dur = t("for_duration", env.lang, d=format_duration(timedelta(seconds=secs), env.lang)) \
            if secs else t("permanently", env.lang)
        return t("describe_grant", env.lang, name=cat.label(str(req.payload["name"]), env.lang),
                 who=await target_label(env, req), duration=dur)

    async def apply(self, req: Request, env: Context) -> None:
        secs = req.payload.get("seconds")
        await apply_grant(env, user_id=req.target_id or "", name=str(req.payload["name"]),
                          by=req.requester_id, request_id=req.id,
                          duration=timedelta(seconds=secs) if secs else None)


@router.command(Revoke, admin_only=True, authority="admin")
async def revoke(cmd: Revoke, ctx: Context) -> None:
    cat = catalog_of(ctx.settings)
    uid = cmd.target.user_id
    name = _exact(cat, cmd.name) or cmd.name
    row = await ctx.uow.perms.revoke(ctx.corp_id, uid, name)
    member = await ctx.uow.members.sender(ctx.corp_id, uid)
    label = who(member) if member else literal(uid, 64)
    tz = ctx.settings.policy.timezone
    if row is None or (row.expires_at is not None and row.expires_at <= ctx.now):
        if not cat.known(name):
            resolve_name(cat, cmd.name, ctx.lang, audit_action="revoke.refused")
        held = await ctx.uow.perms.holdings(ctx.corp_id, uid, ctx.now)
        srcs = [s for p in cat.expand(name) for s in sources_of(held, cat, ctx.now).get(p, ())]
        if srcs:
            raise UserError("revoke_not_direct", audit_action="revoke.refused", target=uid,
                            who=label, name=literal(name, 64),
                            sources=joined(ctx.t("list_sep"),
                                           sorted({source_text(s, ctx.lang, tz, cat) for s in srcs})),
                            advice=_removal_advice(srcs, cat, uid, ctx.lang))
        raise UserError("revoke_not_held", audit_action="revoke.refused", target=uid,
                        who=label, name=literal(name, 64))
    await ctx.audit(ctx.sender.user_id, "grant.revoke", "applied", target_id=uid,
                    before={"name": name, "expires_at": _iso(row.expires_at)}, after=None)
    held = await ctx.uow.perms.holdings(ctx.corp_id, uid, ctx.now)
    left = sources_of(held, cat, ctx.now)
    remaining = [s for p in cat.expand(name) for s in left.get(p, ())]
    still = sorted({source_text(s, ctx.lang, tz, cat) for s in remaining})
    text: str = ctx.t("revoke_done", who=label, name=cat.label(name, ctx.lang))
    if still:
        text += "\n\n" + ctx.t("revoke_still_held", sources=joined(ctx.t("list_sep"), still))
        text += _removal_advice(remaining, cat, uid, ctx.lang)
    await ctx.reply(text, markdown=True)


def _removal_advice(srcs: list[Source], cat: Catalog, user_id: str, lang: Lang) -> Md:
    """What would take the permission away, with the command to write ("" if nothing)."""
    user = f"uid:{literal(user_id, 64)}"
    lines = []
    for route, name in ways_to_remove(srcs, cat):
        if route == "template":
            lines.append(t("revoke_via_template", lang, template=literal(name, 64)))
        else:
            lines.append(t(f"revoke_via_{route}", lang, role=literal(name, 64), user=user))
    return Md("".join(f"\n\n{line}" for line in lines))


@router.due("grant_expire")
async def due_grant_expire(payload: dict[str, Any], dctx: Context) -> None:
    """A time-bound grant ends: remove it (unless it was extended) and tell both sides."""
    async with dctx.transaction() as env:
        row = await env.uow.perms.remove_expired(int(payload["grant_id"]), env.now)
        if row is None:
            return          # revoked already, or extended (a later row covers the new expiry)
        cat = catalog_of(env.settings)
        await env.audit("system", "grant.expired", "applied", target_id=row.user_id,
                        before={"name": row.name, "expires_at": _iso(row.expires_at)})
        label = cat.label(row.name, env.lang)
        names = await env.names(row.user_id)
        await env.send(Reply(t("grant_expired_holder", env.lang, name=label), "", False,
                             row.user_id, markdown=True))
        if row.granted_by and row.granted_by != row.user_id:
            await env.send(Reply(t("grant_expired_granter", env.lang, name=label,
                                   who=literal(names[row.user_id], 80)),
                                 "", False, row.granted_by, markdown=True))


# ---- roles ----------------------------------------------------------------------------------

@router.command(RoleSet, admin_only=True, authority="admin", prepare=_lookup_target)
async def role_set(cmd: RoleSet, ctx: Context) -> None:
    cat = catalog_of(ctx.settings)
    role = resolve_name(cat, cmd.role, ctx.lang, what="role", audit_action="role_set.refused")
    if role in BUILTIN_ROLES:
        raise UserError("builtin_role", audit_action="role_set.refused", name=role)
    target = await known_member(ctx, cmd.target.user_id, audit_action="role_set.refused")
    if target.role == role:
        await ctx.reply(ctx.t("role_unchanged", who=who(target), role=role), markdown=True)
        return
    if cat.is_sensitive(role):
        await start_request(ctx, ROLE_SET, target.user_id,
                            {"role": role})
        return
    before = target.role
    await set_role(ctx, target, role, by=ctx.sender.user_id)
    await ctx.reply(ctx.t("role_done", who=who(target), role=role,
                          before=before or ctx.t("none")), markdown=True)


async def set_role(env: Context, target: Sender, role: str | None, *, by: str,
                   request_id: int | None = None, action: str = "role_set.apply") -> None:
    before = target.role
    await env.uow.members.set_role(target, role, env.now)
    await env.audit(by, action, "applied", target_id=target.user_id,
                    request_id=request_id, before={"role": before}, after={"role": role})


@router.command(RoleClear, admin_only=True, authority="admin")
async def role_clear(cmd: RoleClear, ctx: Context) -> None:
    """Take a member's business role away. It only removes access, so it never needs
    approval, even for a role with a sensitive permission, nor a directory check (a member
    who left can still lose their role)."""
    target = await ctx.uow.members.sender(ctx.corp_id, cmd.target.user_id)
    label = who(target) if target else literal(cmd.target.user_id, 64)
    if target is None or not target.role:
        await ctx.reply(ctx.t("role_clear_none", who=label), markdown=True)
        return
    before = target.role
    await set_role(ctx, target, None, by=ctx.sender.user_id, action="role_clear.apply")
    await ctx.reply(ctx.t("role_cleared", who=label, before=literal(before, 64)), markdown=True)


@router.command(Roles, reads_only=True)
async def roles(cmd: Roles, ctx: Context) -> None:
    """The catalog's roles, each with the permissions it gives (anyone may ask)."""
    cat = catalog_of(ctx.settings)
    if not cat.roles:
        await ctx.reply(ctx.t("roles_none"))
        return
    sep = ctx.t("list_sep")
    lines = [f"### {ctx.t('roles_title', n=len(cat.roles))}"]
    for name in sorted(cat.roles):
        perms = sep.join(cat.label(p, ctx.lang) for p in sorted(cat.expand(name)))
        key = "roles_line_sensitive" if cat.is_sensitive(name) else "roles_line"
        lines.append(ctx.t(key, name=literal(name, 64), perms=perms or ctx.t("none")))
    await ctx.reply("\n".join(lines), markdown=True, title=ctx.t("roles_short"))


class RoleSetRequest(ApprovedChange):
    kind = ROLE_SET

    async def describe(self, req: Request, env: Context) -> Md:
        return t("describe_role_set", env.lang, who=await target_label(env, req),
                 role=literal(str(req.payload["role"]), 64))

    async def apply(self, req: Request, env: Context) -> None:
        target = await env.uow.members.sender(env.corp_id, req.target_id or "")
        if target is None:
            raise RuntimeError("the member is gone")
        await set_role(env, target, str(req.payload["role"]), by=req.requester_id,
                       request_id=req.id)


# ---- admins ---------------------------------------------------------------------------------

@router.command(AdminAdd, admin_only=True, authority="admin", prepare=_lookup_target)
async def admin_add(cmd: AdminAdd, ctx: Context) -> None:
    target = await known_member(ctx, cmd.target.user_id, audit_action="admin_add.refused")
    if target.level in (OWNER, ADMIN):
        raise UserError("admin_already", audit_action="admin_add.refused", target=target.user_id,
                        who=who(target),
                        level=ctx.t(f"level_{target.level}"))
    if ctx.sender.level == OWNER:
        await set_level(ctx, target, ADMIN, by=ctx.sender.user_id)
        await ctx.reply(ctx.t("admin_added", who=who(target)), markdown=True)
        return
    await start_request(ctx, ADMIN_ADD, target.user_id, {})


@router.command(AdminRemove, admin_only=True, authority="admin")
async def admin_remove(cmd: AdminRemove, ctx: Context) -> None:
    target = await ctx.uow.members.sender(ctx.corp_id, cmd.target.user_id)
    if target is None or target.level == MEMBER:
        raise UserError("admin_not_admin", audit_action="admin_remove.refused",
                        target=cmd.target.user_id,
                        who=who(target) if target else literal(cmd.target.user_id, 64))
    if target.level == OWNER:
        raise UserError("admin_remove_owner", audit_action="admin_remove.refused",
                        target=target.user_id)
    if ctx.sender.level == OWNER:
        await set_level(ctx, target, MEMBER, by=ctx.sender.user_id)
        await ctx.reply(ctx.t("admin_removed", who=who(target)), markdown=True)
        return
    await start_request(ctx, ADMIN_REMOVE, target.user_id, {})


async def set_level(env: Context, target: Sender, level: str, *, by: str,
                    request_id: int | None = None) -> None:
    before = target.level
    await env.uow.members.set_level(target, level, env.now)
    action = "admin_add.apply" if level == ADMIN else "admin_remove.apply"
    await env.audit(by, action, "applied", target_id=target.user_id, request_id=request_id,
                    before={"level": before}, after={"level": level})


class AdminChange(ApprovedChange):

    def __init__(self, kind: str, level: str) -> None:
        self.kind, self.level = kind, level

    async def describe(self, req: Request, env: Context) -> Md:
        return t(f"describe_{self.kind}", env.lang, who=await target_label(env, req))

    async def apply(self, req: Request, env: Context) -> None:
        target = await env.uow.members.sender(env.corp_id, req.target_id or "")
        if target is None or target.level == OWNER:
            raise RuntimeError("the member is now the owner or gone")
        wanted_from = MEMBER if self.level == ADMIN else ADMIN
        if target.level != wanted_from:
            raise RuntimeError(f"the member is no longer {wanted_from}")
        await set_level(env, target, self.level, by=req.requester_id, request_id=req.id)


# ---- who-has --------------------------------------------------------------------------------

WHO_HAS_PER_PAGE = 50


@router.command(WhoHas, admin_only=True, authority="admin", reads_only=True)
async def who_has(cmd: WhoHas, ctx: Context) -> None:
    await who_has_page(ctx, {"name": cmd.name}, cmd.page)


async def who_has_page(ctx: Context, args: Mapping[str, Any], page: int) -> None:
    """One page of the holders of a role or permission, by user id, with their sources:
    from the permission index (the store counts them and reads only this page's inside a
    transaction that changed something itself)."""
    cat = catalog_of(ctx.settings)
    name = resolve_name(cat, str(args["name"]), ctx.lang)
    answer = LongAnswer("who_has", "who-has", (name,), {"name": name})
    per = WHO_HAS_PER_PAGE
    view = await permission_index(ctx)
    if view is not None:
        # The index resolves every holder (by user id, as the store pages them); this page's
        # slice is what is named and shown.
        every = view.holders(name, ctx.now)
        total = len(every)
        start = (page - 1) * per
        holders = dict(list(every.items())[start:start + per])
    else:
        total, holders = await ctx.uow.perms.who_has_page(ctx.corp_id, name, cat, ctx.now,
                                                          offset=(page - 1) * per, limit=per)
    title = cat.label(name, ctx.lang) if cat.is_permission(name) else \
        ctx.t("role_label", name=literal(name, 64))
    if not total:
        await ctx.reply(ctx.t("who_has_none", name=title), markdown=True)
        return
    w = answer.window(ctx.lang, total, per, page)
    names = await ctx.names(*holders)
    tz = ctx.settings.policy.timezone
    sep = ctx.t("list_sep")
    lines = [f"- {literal(names[uid], 80)}: "
             f"{sep.join(source_text(s, ctx.lang, tz, cat) for s in srcs)}"
             for uid, srcs in holders.items()]
    await reply_page(ctx, answer, w, f"### {ctx.t('who_has_title', name=title, n=total)}",
                     lines, title=ctx.t("who_has_short"))


router.request_kind(GrantRequest())
router.request_kind(RoleSetRequest())
router.request_kind(AdminChange(ADMIN_ADD, ADMIN))
router.request_kind(AdminChange(ADMIN_REMOVE, MEMBER))

__all__ = ["ADMIN_ROLE", "OWNER_ROLE", "catalog_of", "router", "who_has_page"]
