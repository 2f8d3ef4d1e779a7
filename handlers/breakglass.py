"""Break-glass (紧急授权, product.md section 13): immediate, short, loudly announced access.

Only the users and permissions in ``policy.break_glass`` may use it; anyone else is refused,
audited and alerted. It applies at once for ``policy.break_glass.max`` and becomes a request
of kind ``break_glass`` (stored APPLIED: nothing to decide) whose one card goes, one-to-one,
to the owner and every approver of that permission. The card's ``withdraw`` button (card
status ``active`` while the grant lasts) ends the grant at once. When it ends (withdrawn,
given back, or on time), the owner gets a review item: a request of kind
``break_glass_review`` whose card asks ``justified`` / ``unjustified``, reminded and expiring
like any request; the verdict is audited (``break_glass.reviewed``) and "unjustified" is
alerted for follow-up. The grant's audit entry is ``grant.apply`` with ``after.via ==
"break_glass"``; a withdrawal is ``grant.revoke`` with ``before.via == "withdraw"``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.approvals.engine import NothingToDecide, open_request
from bot.core.cardref import CardRef
from bot.core.clock import local
from bot.core.commands import BreakGlass
from bot.core.domain.access import approver_pool, may_break_glass
from bot.core.domain.members import OWNER, Staff
from bot.core.domain.permissions import sources_of
from bot.core.domain.requests import Request, Requirement, State
from bot.core.escape import Md, joined, literal
from bot.core.sends import CardSpec, Reply
from bot.delivery.alerts import raise_alert
from bot.dispatch.context import CommandRouter, Context, UserError
from bot.texts.catalog import t
from bot.transport.cards import ack_update, create_and_deliver_body
from bot.transport.inbound import CardAction
from handlers.access import people_for, policy_of, requester_directory
from handlers.permissions import apply_grant, catalog_of, resolve_name, source_text, target_label

router = CommandRouter()

BREAK_GLASS = "break_glass"
BG_REVIEW = "break_glass_review"
JUSTIFIED, UNJUSTIFIED = "justified", "unjustified"     # the review item's buttons
COPY = "bg"         # the copy tag of the announcement card's outTrackId


def _track(corp_id: str, request_id: int) -> str:
    return CardRef.request(corp_id, request_id, COPY).pack()


@router.command(BreakGlass, prepare_sender=requester_directory)
async def break_glass(cmd: BreakGlass, ctx: Context) -> None:
    cat = catalog_of(ctx.settings)
    bg = ctx.settings.policy.break_glass
    uid = ctx.sender.user_id
    name = resolve_name(cat, cmd.name, ctx.lang, what="permission",
                        audit_action="break_glass.refused")
    label = cat.label(name, ctx.lang)
    if not may_break_glass(uid, name, bg.users, bg.permissions):
        raise UserError("bg_refused", audit_action="break_glass.refused", alert=True,
                        target=uid, name=label)
    held = sources_of(await ctx.uow.perms.holdings(ctx.corp_id, uid, ctx.now), cat, ctx.now)
    if name in held:
        tz = ctx.settings.policy.timezone
        await ctx.reply(ctx.t("bg_held", name=label, sources=joined(ctx.t("list_sep"), sorted(
            {source_text(s, ctx.lang, tz, cat) for s in held[name]}))), markdown=True)
        return
    policy = policy_of(ctx.settings, name)
    people = await people_for(ctx, policy)
    owner = {people.owner} if people.owner and people.owner != uid else set()
    told = sorted(approver_pool(policy, people, uid) | owner)
    ends = ctx.now + bg.max
    req = await ctx.uow.requests.create(
        corp_id=ctx.corp_id, kind=BREAK_GLASS, state=State.APPLIED, requester_id=uid,
        target_id=uid, conversation_id=ctx.message.conversation_id, reason=cmd.reason,
        payload={"name": name, "ends_at": ends.isoformat(), "told": told, "lang": ctx.lang,
                 "is_group": ctx.message.is_group},
        created_at=ctx.now, expires_at=ends, source_message_id=ctx.message_id, savepoint=True)
    track = _track(ctx.corp_id, req.id)
    req = await ctx.uow.requests.set_track(req.id, track)
    await apply_grant(ctx, user_id=uid, name=name, by=uid, duration=bg.max, request_id=req.id,
                      via=BREAK_GLASS)
    await ctx.audit(uid, "break_glass.used", "applied", target_id=uid, request_id=req.id,
                    after={"name": name, "reason": cmd.reason, "ends_at": ends.isoformat(),
                           "told": told})
    if told:
        s = ctx.settings.dingtalk
        body = create_and_deliver_body(
            template_id=s.card_template_id, robot_code=s.effective_robot_code,
            out_track_id=track, params=await _params(req, ctx, "active"), user_ids=told)
        await ctx.card(CardSpec("create", track, f"user:{told[0]}", body))
    await ctx.uow.due.schedule("break_glass_end", ends, {"request_id": req.id}, ctx.now,
                               dedupe_key=f"bg-end:{req.id}")
    names = await ctx.names(*told)
    await ctx.reply(ctx.t("bg_done", id=req.public_id, name=label, perm=literal(name, 64),
                          at=local(ends, ctx.settings.policy.timezone),
                          who=joined(ctx.t("list_sep"), (names[u] for u in told))),
                    markdown=True)


async def _params(req: Request, env: Context, status: str, *, by: str = "",
                  at: datetime | None = None) -> dict[str, str]:
    cat = catalog_of(env.settings)
    tz = env.settings.policy.timezone
    ends = datetime.fromisoformat(str(req.payload["ends_at"]))
    names = await env.names(req.requester_id, *([by] if by else []))
    decided = ""
    if status == "withdrawn" and at is not None:
        decided = t("bg_card_withdrawn", env.lang, who=names[by], at=local(at, tz, "%m-%d %H:%M"))
    elif status == "ended":
        decided = t("bg_card_ended", env.lang, at=local(min(at or ends, ends), tz, "%m-%d %H:%M"))
    status_text = t(f"bg_status_{status}", env.lang)
    body = t("bg_card_body", env.lang, who=names[req.requester_id],
             name=cat.label(str(req.payload["name"]), env.lang), at=local(ends, tz),
             reason=literal(req.reason, 500))
    return {"title": t("bg_card_title", env.lang, id=req.public_id),
            "markdown": f"{body}\n\n**{status_text}**" + (f" · {decided}" if decided else ""),
            "status": status, "status_text": status_text, "request_id": req.public_id,
            "progress": "", "expires": t("bg_card_until", env.lang, at=local(ends, tz)),
            "decided": decided}


async def withdraw(req: Request, action: CardAction, env: Context) -> dict[str, Any]:
    """A click on the announcement: ``withdraw`` by the owner or an approver told of it ends
    the grant now; anyone else, another button, or a grant already over changes nothing."""
    told = {str(u) for u in req.payload.get("told", ())}
    if action.user_id not in told or action.action_id != "withdraw":
        await env.audit(action.user_id, "break_glass.click_refused", "refused",
                        target_id=req.target_id, request_id=req.id,
                        after={"reason": "not_told" if action.user_id not in told
                               else "wrong_button", "action": action.action_id})
        return ack_update(None, {"notice": t("bg_withdraw_not_yours", env.lang)})
    over = req.payload.get("over")
    if over:
        return ack_update(None, {"notice": t("bg_withdraw_over", env.lang,
                                             state=t(f"bg_status_{over}", env.lang))})
    name = str(req.payload["name"])
    holder = req.target_id or req.requester_id
    # Only the break-glass grant itself (a later grant of the same name stays).
    row = await env.uow.perms.grant_row(env.corp_id, holder, name)
    if row is not None and row.request_id == req.id:
        ends = row.expires_at
        await env.uow.perms.revoke(env.corp_id, holder, name)
        await env.audit(action.user_id, "grant.revoke", "applied", target_id=holder,
                        request_id=req.id, before={"name": name, "via": "withdraw",
                                                   "expires_at": ends.isoformat() if ends
                                                   else None}, after=None)
    req = await env.uow.requests.set_payload(req.id, {**req.payload, "over": "withdrawn",
                                                      "withdrawn_by": action.user_id})
    await env.uow.due.cancel(f"bg-end:{req.id}")
    params = await _params(req, env, "withdrawn", by=action.user_id, at=env.now)
    await env.card(CardSpec("update", req.card_out_track_id or "",
                            f"card:{req.card_out_track_id}", {"params": params}))
    cat = catalog_of(env.settings)
    names = await env.names(action.user_id, holder)
    await env.send(Reply(t("bg_withdrawn_holder", env.lang, name=cat.label(name, env.lang),
                           id=req.public_id, who=names[action.user_id]),
                         "", False, holder, markdown=True))
    await _review(req, env, t("bg_outcome_withdrawn", env.lang, by=names[action.user_id]))
    return ack_update(params, {"notice": t("bg_withdraw_ok", env.lang, who=names[holder],
                                           name=cat.label(name, env.lang))})


async def _review(req: Request, env: Context, outcome: Md) -> None:
    """The owner's review item: a request of kind ``break_glass_review`` with a card the
    owner decides (``justified`` / ``unjustified``), reminded and expiring like any other
    request. The holder never reviews their own use: when the owner is the holder, the
    approvers told of it decide. Opened once per break-glass (the payload's ``review``)."""
    if req.payload.get("review"):
        return
    holder = req.target_id or req.requester_id
    owner = next((m.user_id for m in await env.uow.members.admins_of(env.corp_id)
                  if m.level == OWNER and m.active), None)
    reviewers = [owner] if owner and owner != holder else \
        [str(u) for u in req.payload.get("told", ()) if str(u) != holder]
    await env.audit("system", "break_glass.review", "opened", target_id=holder,
                    request_id=req.id, after={"owner": owner, "outcome": str(outcome),
                                              "reviewers": reviewers})
    if not reviewers:
        return
    item = await open_request(
        env, kind=BG_REVIEW, requester=reviewers[0], target=holder,
        conversation_id=reviewers[0], is_group=False, reason=req.reason,
        payload={"origin": req.id, "name": str(req.payload["name"]), "outcome": str(outcome),
                 "used_at": req.created_at.isoformat(), "reviewers": reviewers},
        ttl=env.settings.policy.approval_ttl, copies_to=reviewers[1:])
    await env.uow.requests.set_payload(req.id, {**req.payload, "review": item.id})


@router.due("break_glass_end")
async def due_end(payload: dict[str, Any], dctx: Context) -> None:
    """The grant ran out (its own expiry removes it) or was given back (``released``): the
    card shows it ended; the review item opens."""
    async with dctx.transaction() as tx:
        req = await tx.uow.requests.find(int(payload["request_id"]), for_update=True)
        if req is None or req.payload.get("over"):
            return
        env = tx.for_request(req)
        req = await env.uow.requests.set_payload(req.id, {**req.payload, "over": "ended"})
        if req.payload.get("told"):
            params = await _params(req, env, "ended", at=env.now)   # on time, or given back
            await env.card(CardSpec("update", req.card_out_track_id or "",
                                    f"card:{req.card_out_track_id}", {"params": params}))
        await _review(req, env, t("bg_outcome_released" if payload.get("released")
                                  else "bg_outcome_ended", env.lang))


class BreakGlassKind(NothingToDecide):
    """Stored APPLIED when it is made: there is nothing to decide, only to withdraw."""

    kind = BREAK_GLASS

    async def describe(self, req: Request, env: Context) -> Md:
        return Md(catalog_of(env.settings).label(str(req.payload["name"]), env.lang))

    async def subject(self, req: Request, env: Context) -> str:
        return await target_label(env, req)


class BreakGlassReview:
    """The review item opened when a break-glass grant ends: its reviewer judges the use
    ``justified`` or ``unjustified`` (to be followed up: alerted). Nothing about access
    changes either way; the verdict is audited (``break_glass.reviewed``)."""

    kind = BG_REVIEW

    async def requirements(self, req: Request, env: Context) -> tuple[Requirement, ...]:
        return self.deciders(req, env, None)

    def deciders(self, req: Request, env: Context, staff: Staff | None) -> tuple[Requirement, ...]:
        """The reviewers were fixed when the item opened: no staff read is needed."""
        who = frozenset(str(u) for u in req.payload.get("reviewers", ()))
        return (Requirement("owner", who, JUSTIFIED, UNJUSTIFIED, 1),)

    async def apply(self, req: Request, env: Context) -> None:
        return None

    async def after(self, req: Request, env: Context, state: State) -> None:
        verdict = {State.APPLIED: JUSTIFIED, State.REJECTED: UNJUSTIFIED}.get(state)
        origin = f"R-{req.payload['origin']}"
        holder = req.target_id or ""
        if state is State.EXPIRED:
            # No one judged it in time (the engine audited the expiry): it stands out.
            lang = env.settings.locale.lang
            names = await env.names(holder)
            await raise_alert(env.uow, env.settings, env.now, actor="system",
                              what=t("bg_unreviewed_what", lang, id=origin, who=names[holder]),
                              why=t("bg_unreviewed_why", lang, id=req.public_id))
        if verdict is None:
            return                      # expired or cancelled: nothing was judged
        await env.audit(req.decided_by or "system", "break_glass.reviewed", "applied",
                        target_id=holder, request_id=req.id,
                        after={"verdict": verdict, "origin": req.payload["origin"],
                               "name": req.payload["name"]})
        if verdict == UNJUSTIFIED:
            lang = env.settings.locale.lang
            names = await env.names(holder, req.decided_by or "")
            await raise_alert(env.uow, env.settings, env.now, actor=req.decided_by or "system",
                              what=t("bg_unjustified_what", lang, id=origin,
                                     who=names[holder]),
                              why=t("bg_unjustified_why", lang, by=names[req.decided_by or ""],
                                    id=req.public_id))

    async def describe(self, req: Request, env: Context) -> Md:
        cat = catalog_of(env.settings)
        holder = req.target_id or ""
        used = datetime.fromisoformat(str(req.payload["used_at"]))
        text = t("bg_review_detail", env.lang, id=f"R-{req.payload['origin']}",
                 name=cat.label(str(req.payload["name"]), env.lang),
                 at=local(used, env.settings.policy.timezone),
                 outcome=Md(str(req.payload["outcome"])),
                 user=Md(f"uid:{literal(holder, 64)}"))
        if req.state in (State.APPLIED, State.REJECTED):
            text = Md(text + "\n\n" + t(f"bg_verdict_{req.state.value}", env.lang))
        return text

    async def subject(self, req: Request, env: Context) -> str:
        return await target_label(env, req)


router.request_kind(BreakGlassKind())
router.request_kind(BreakGlassReview())
router.request_action(BREAK_GLASS, COPY)(withdraw)

__all__ = ["BG_REVIEW", "BREAK_GLASS", "router"]
