"""Permission templates (权限模板): create, set, show, list, delete, apply.

A template is a live reference: its holders' permissions are read through it, so editing
it changes every holder at once. That is why an edit (and deleting a template somebody
holds) first shows its impact ("12 人将新增 crm.export") and goes through approval;
applying a template that carries a sensitive permission does too.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot.core.commands import (
    TemplateApply,
    TemplateCreate,
    TemplateDelete,
    TemplateList,
    TemplateSet,
    TemplateShow,
)
from bot.core.domain.permissions import (
    Catalog,
    Impact,
    TemplateIn,
    TemplateView,
    effective,
    impact,
)
from bot.core.domain.requests import Request
from bot.core.escape import Md, code, joined, literal, person
from bot.core.lang import Lang
from bot.dispatch.context import CommandRouter, Context, UserError
from bot.dispatch.paging import LongAnswer, reply_page
from bot.ports import DingTalkError, Directory
from bot.texts.catalog import t
from handlers.permissions import (
    ApprovedChange,
    catalog_of,
    did_you_mean,
    lookup_users,
    resolve_name,
    start_request,
)

log = logging.getLogger(__name__)
router = CommandRouter()

TEMPLATE_SET = "template_set"
TEMPLATE_DELETE = "template_delete"
TEMPLATE_APPLY = "template_apply"
MAX_DEPT_MEMBERS = 5000
SHOW_HOLDERS = 20


def _items(cat: Catalog, raw: tuple[str, ...], lang: Lang, action: str) -> list[str]:
    return [resolve_name(cat, p, lang, what="item", audit_action=action) for p in raw]


def _items_text(items: list[str], cat: Catalog, lang: Lang) -> Md:
    return joined(t("list_sep", lang),
                  (code(i) if not cat.is_permission(i) else cat.label(i, lang) for i in items))


async def _template(ctx: Context, name: str, action: str, lang: Lang) -> TemplateView:
    uow = ctx.uow
    tpl: TemplateView | None = await uow.perms.template(ctx.corp_id, name, for_update=True)
    if tpl is None:
        names = [t_.name for t_, _ in await uow.perms.templates(ctx.corp_id)]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = did_you_mean(close, lang) if close else t("see_template_list", lang)
        raise UserError("template_unknown", audit_action=action, name=literal(name, 64),
                        hint=hint)
    return tpl


async def template_impact(env: Context, tpl: TemplateView, new_items: list[str] | None,
                          cat: Catalog) -> Impact:
    """Who gains and who loses what if ``tpl`` held ``new_items`` (None: deleted)."""
    holders = await env.uow.perms.holders(tpl.id)
    held = await env.uow.perms.holdings_many(env.corp_id, holders, env.now)
    before: dict[str, frozenset[str]] = {}
    after: dict[str, frozenset[str]] = {}
    for uid, h in held.items():
        before[uid] = effective(h, cat, env.now)
        others = tuple(x for x in h.templates if x.name != tpl.name)
        mine = (TemplateIn(tpl.name, tuple(new_items)),) if new_items is not None else ()
        after[uid] = effective(replace(h, templates=others + mine), cat, env.now)
    return impact(before, after)


def impact_text(imp: Impact, cat: Catalog, lang: Lang, holders: int,
                names: Mapping[str, str] | None = None, *, done: bool = False) -> Md:
    """The impact as lines ("2 will gain X"; "2 gained X" once ``done``), each naming its
    members (the first ``SHOW_HOLDERS``, then "and N more") when ``names`` has them (escaped
    "name (userId)" by user id, as :func:`impact_names` gives)."""
    if imp.empty:
        return t("impact_none_done" if done else "impact_none", lang, n=holders)
    gain, loss = ("impact_gained", "impact_lost") if done else ("impact_gain", "impact_loss")
    lines = [_impact_line(t(gain, lang, n=len(us), perm=cat.label(p, lang)), us, names, lang)
             for p, us in imp.gains.items()]
    lines += [_impact_line(t(loss, lang, n=len(us), perm=cat.label(p, lang)), us, names, lang)
              for p, us in imp.losses.items()]
    return Md("\n".join(f"- {line}" for line in lines))


def _impact_line(line: Md, users: tuple[str, ...], names: Mapping[str, str] | None,
                 lang: Lang) -> Md:
    if not names:
        return line
    return t("impact_who", lang, line=line, who=people_text(users, names, lang))


def people_text(users: list[str] | tuple[str, ...], names: Mapping[str, str], lang: Lang) -> Md:
    """The first ``SHOW_HOLDERS`` members by name (escaped), then "and N more"."""
    shown = joined(t("list_sep", lang),
                   (Md(names[u]) if u in names else person(None, u) for u in users[:SHOW_HOLDERS]))
    if len(users) > SHOW_HOLDERS:
        shown = Md(shown + " " + t("and_more", lang, n=len(users) - SHOW_HOLDERS))
    return shown


async def impact_names(env: Context, imp: Impact) -> Mapping[str, Md]:
    """The escaped names of the members an impact text shows."""
    shown = {u for us in (*imp.gains.values(), *imp.losses.values()) for u in us[:SHOW_HOLDERS]}
    return await env.names(*sorted(shown)) if shown else {}


def _impact_payload(imp: Impact) -> dict[str, Any]:
    return {"gains": {p: list(us) for p, us in imp.gains.items()},
            "losses": {p: list(us) for p, us in imp.losses.items()}}


async def _described_impact(req: Request, env: Context) -> Md:
    """A template request's impact, in the reader's language, naming the members; in the
    past tense once the request is applied."""
    p = req.payload
    if "gains" not in p:            # a request made before impacts were stored as data
        return Md(str(p.get("impact", "")))   # built by this code from escaped parts
    imp = Impact({k: tuple(v) for k, v in p["gains"].items()},
                 {k: tuple(v) for k, v in p["losses"].items()})
    return impact_text(imp, catalog_of(env.settings), env.lang, int(p.get("holders", 0)),
                       await impact_names(env, imp), done=req.state == "applied")


@router.command(TemplateCreate, admin_only=True, authority="admin")
async def template_create(cmd: TemplateCreate, ctx: Context) -> None:
    cat = catalog_of(ctx.settings)
    items = _items(cat, cmd.perms, ctx.lang, "template_create.refused")
    if await ctx.uow.perms.template(ctx.corp_id, cmd.name) is not None:
        raise UserError("template_exists", name=literal(cmd.name, 64))
    await ctx.uow.perms.add_template(ctx.corp_id, cmd.name, items, by=ctx.sender.user_id,
                                     now=ctx.now)
    await ctx.audit(ctx.sender.user_id, "template.create", "applied",
                    after={"template": cmd.name, "items": items})
    await ctx.reply(ctx.t("template_created", name=literal(cmd.name, 64),
                          items=_items_text(items, cat, ctx.lang)), markdown=True)


HOLDERS_PER_PAGE = 50


@router.command(TemplateShow, admin_only=True, authority="admin")
async def template_show(cmd: TemplateShow, ctx: Context) -> None:
    await template_show_page(ctx, {"name": cmd.name}, cmd.page)


async def template_show_page(ctx: Context, args: Mapping[str, Any], page: int) -> None:
    """A template's items and its holders (by user id), a page of holders at a time: the
    store counts them and reads only this page's."""
    cat = catalog_of(ctx.settings)
    tpl = await _template(ctx, str(args["name"]), "", ctx.lang)
    answer = LongAnswer("template_show", "template show", (tpl.name,), {"name": tpl.name})
    per = HOLDERS_PER_PAGE
    total, holders = await ctx.uow.perms.holders_page(tpl.id, offset=(page - 1) * per,
                                                      limit=per)
    w = answer.window(ctx.lang, total, per, page)
    names = await ctx.names(*holders) if holders else {}
    head = [f"### {ctx.t('template_title', name=literal(tpl.name, 64))}",
            ctx.t("template_items", items=_items_text(list(tpl.permissions), cat, ctx.lang)),
            ctx.t("template_holders", n=total)]
    await reply_page(ctx, answer, w, "\n\n".join(head),
                     [f"- {literal(names[u], 80)}" for u in holders],
                     title=ctx.t("template_short"))


@router.command(TemplateList, admin_only=True, authority="admin")
async def template_list(cmd: TemplateList, ctx: Context) -> None:
    cat = catalog_of(ctx.settings)
    rows = await ctx.uow.perms.templates(ctx.corp_id)
    if not rows:
        await ctx.reply(ctx.t("template_none"))
        return
    lines = [f"### {ctx.t('template_list_title', n=len(rows))}"]
    for tpl, n in rows:
        lines.append(ctx.t("template_list_line", name=literal(tpl.name, 64), n=n,
                           items=_items_text(list(tpl.permissions), cat, ctx.lang)))
    await ctx.reply("\n".join(lines), markdown=True, title=ctx.t("template_short"))


@router.command(TemplateSet, admin_only=True, authority="admin")
async def template_set(cmd: TemplateSet, ctx: Context) -> None:
    cat = catalog_of(ctx.settings)
    items = _items(cat, cmd.perms, ctx.lang, "template_set.refused")
    tpl = await _template(ctx, cmd.name, "template_set.refused", ctx.lang)
    if list(tpl.permissions) == items:
        await ctx.reply(ctx.t("template_unchanged", name=literal(tpl.name, 64)))
        return
    imp = await template_impact(ctx, tpl, items, cat)
    held_by = sorted(await ctx.uow.perms.holders(tpl.id))
    await start_request(ctx, TEMPLATE_SET, None, {
        "template": tpl.name, "old": list(tpl.permissions), "new": items,
        **_impact_payload(imp), "holders": len(held_by), "holder_ids": held_by})


@router.command(TemplateDelete, admin_only=True, authority="admin")
async def template_delete(cmd: TemplateDelete, ctx: Context) -> None:
    cat = catalog_of(ctx.settings)
    tpl = await _template(ctx, cmd.name, "template_delete.refused", ctx.lang)
    holders = await ctx.uow.perms.holders(tpl.id)
    if not holders:
        await delete_template(ctx, tpl, by=ctx.sender.user_id)
        await ctx.reply(ctx.t("template_deleted", name=literal(tpl.name, 64)))
        return
    imp = await template_impact(ctx, tpl, None, cat)
    await start_request(ctx, TEMPLATE_DELETE, None, {
        "template": tpl.name, "old": list(tpl.permissions),
        **_impact_payload(imp), "holders": len(holders), "holder_ids": sorted(holders)})


async def delete_template(env: Context, tpl: TemplateView, *, by: str, request_id: int | None = None) -> None:
    holders = await env.uow.perms.holders(tpl.id)
    await env.uow.perms.delete_template(tpl)
    await env.audit(by, "template.delete", "applied", request_id=request_id,
                    before={"template": tpl.name, "items": list(tpl.permissions),
                            "holders": holders}, after=None)


# ---- apply ----------------------------------------------------------------------------------

async def find_dept(client: Directory, key: str) -> int | None:
    """A department by id, or by exact name anywhere in the tree (breadth first)."""
    if key.isdigit():
        try:
            await client.dept_get(int(key))
        except DingTalkError:
            return None
        return int(key)
    queue, seen = [1], {1}
    root = await client.dept_get(1)
    if str(root.get("name")) == key:
        return 1
    while queue:
        for child in await client.dept_children(queue.pop(0)):
            did = int(child["dept_id"])
            if str(child.get("name")) == key:
                return did
            if did not in seen:
                seen.add(did)
                queue.append(did)
    return None


async def dept_members(client: Directory, dept_id: int) -> list[str]:
    """Members of a department and of every department inside it."""
    out: dict[str, None] = {}
    queue = [dept_id]
    seen = {dept_id}
    while queue and len(out) < MAX_DEPT_MEMBERS:
        d = queue.pop(0)
        for u in await client.dept_user_ids(d):
            out[u] = None
        for child in await client.dept_children(d):
            cid = int(child["dept_id"])
            if cid not in seen:
                seen.add(cid)
                queue.append(cid)
    return list(out)


async def prepare_apply(cmd: TemplateApply, client: Directory | None) -> dict[str, Any]:
    """Before the transaction: the users in the directory, and each department's members."""
    users = await lookup_users(list(cmd.users), client)
    if "error" in users or client is None:
        return {"error": users.get("error", "no_client")}
    depts: dict[str, Any] = {}
    try:
        for ref in cmd.depts:
            did = await find_dept(client, ref.key)
            depts[ref.key] = None if did is None else {
                "id": did, "members": await dept_members(client, did)}
    except DingTalkError as e:
        log.warning("department lookup failed: %s", e)
        return {"error": e.code}
    return {"users": users, "depts": depts}


@router.command(TemplateApply, admin_only=True, authority="admin", prepare=prepare_apply)
async def template_apply(cmd: TemplateApply, ctx: Context) -> None:
    cat = catalog_of(ctx.settings)
    info: dict[str, Any] = ctx.prepared or {}
    if "error" in info:
        raise UserError("directory_unavailable")
    tpl = await _template(ctx, cmd.name, "template_apply.refused", ctx.lang)
    targets: dict[str, str | None] = {}
    for ref in cmd.users:
        entry = info["users"].get(ref.user_id) or {}
        if not entry.get("found"):
            raise UserError("user_unknown", audit_action="template_apply.refused",
                            target=ref.user_id, user=literal(ref.user_id, 64))
        if not entry.get("active", True):
            raise UserError("user_inactive", audit_action="template_apply.refused",
                            target=ref.user_id,
                            user=person(entry.get("name") or None, ref.user_id))
        await ctx.uow.members.upsert(ctx.corp_id, ref.user_id, ctx.now,
                                     name=entry.get("name") or None)
        targets[ref.user_id] = None
    for dref in cmd.depts:
        dept = info["depts"].get(dref.key)
        if dept is None:
            raise UserError("dept_unknown", audit_action="template_apply.refused",
                            name=literal(dref.key, 64))
        for uid in dept["members"]:
            targets.setdefault(uid, str(dept["id"]))
            await ctx.uow.members.upsert(ctx.corp_id, uid, ctx.now)
    holders = set(await ctx.uow.perms.holders(tpl.id))
    new = {u: d for u, d in targets.items() if u not in holders}
    if not new:
        await ctx.reply(ctx.t("template_apply_nothing", name=literal(tpl.name, 64)))
        return
    sensitive = cat.sensitive_in(tpl.permissions)
    if sensitive:
        await start_request(ctx, TEMPLATE_APPLY, None, {
            "template": tpl.name, "users": new})
        return
    n = await assign(ctx, tpl, new, by=ctx.sender.user_id)
    users = sorted(new)
    names = await ctx.names(*users[:SHOW_HOLDERS])
    await ctx.reply(ctx.t("template_applied", name=literal(tpl.name, 64), n=n,
                          skipped=len(targets) - len(new))
                    + "\n\n" + people_text(users, names, ctx.lang), markdown=True)


async def assign(env: Context, tpl: TemplateView, users: dict[str, str | None], *, by: str,
                 request_id: int | None = None) -> int:
    n = 0
    for uid, dept in users.items():
        if await env.uow.perms.assign(tpl, uid, by=by, now=env.now, via_dept=dept):
            n += 1
            await env.audit(by, "template.assign", "applied", target_id=uid,
                            request_id=request_id, before=None,
                            after={"template": tpl.name, "via_dept": dept})
    return n


# ---- request kinds --------------------------------------------------------------------------

class TemplateSetRequest(ApprovedChange):
    kind = TEMPLATE_SET

    def affected(self, target: str | None, payload: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(payload.get("holder_ids", ()))     # editing it changes every holder

    async def describe(self, req: Request, env: Context) -> Md:
        cat = catalog_of(env.settings)
        p = req.payload
        return t("describe_template_set", env.lang, name=literal(str(p["template"]), 64),
                 old=_items_text(list(p["old"]), cat, env.lang),
                 new=_items_text(list(p["new"]), cat, env.lang),
                 impact=await _described_impact(req, env))

    async def subject(self, req: Request, env: Context) -> str:
        return t("subject_template", env.lang, name=literal(str(req.payload["template"]), 64))

    async def apply(self, req: Request, env: Context) -> None:
        p = req.payload
        tpl = await _template(env, str(p["template"]), "", env.lang)
        if list(tpl.permissions) != list(p["old"]):
            raise RuntimeError("the template changed since the request was made")
        await env.uow.perms.set_template_items(tpl, list(p["new"]), env.now)
        await env.audit(req.requester_id, "template.set", "applied", request_id=req.id,
                        before={"template": tpl.name, "items": list(p["old"])},
                        after={"template": tpl.name, "items": list(p["new"]),
                               "holders": await env.uow.perms.holders(tpl.id)})


class TemplateDeleteRequest(ApprovedChange):
    kind = TEMPLATE_DELETE

    def affected(self, target: str | None, payload: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(payload.get("holder_ids", ()))

    async def describe(self, req: Request, env: Context) -> Md:
        p = req.payload
        return t("describe_template_delete", env.lang, name=literal(str(p["template"]), 64),
                 impact=await _described_impact(req, env))

    async def subject(self, req: Request, env: Context) -> str:
        return t("subject_template", env.lang, name=literal(str(req.payload["template"]), 64))

    async def apply(self, req: Request, env: Context) -> None:
        tpl = await _template(env, str(req.payload["template"]), "", env.lang)
        await delete_template(env, tpl, by=req.requester_id, request_id=req.id)


class TemplateApplyRequest(ApprovedChange):
    kind = TEMPLATE_APPLY

    def affected(self, target: str | None, payload: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(payload["users"])

    async def describe(self, req: Request, env: Context) -> Md:
        p = req.payload
        users = list(p["users"])
        names = await env.names(*users[:SHOW_HOLDERS])
        return t("describe_template_apply", env.lang, name=literal(str(p["template"]), 64),
                 n=len(users), who=people_text(users, names, env.lang))

    async def subject(self, req: Request, env: Context) -> str:
        return t("subject_template_apply", env.lang,
                 name=literal(str(req.payload["template"]), 64), n=len(req.payload["users"]))

    async def apply(self, req: Request, env: Context) -> None:
        tpl = await _template(env, str(req.payload["template"]), "", env.lang)
        await assign(env, tpl, dict(req.payload["users"]), by=req.requester_id,
                     request_id=req.id)


router.request_kind(TemplateSetRequest())
router.request_kind(TemplateDeleteRequest())
router.request_kind(TemplateApplyRequest())

__all__ = ["router"]
