"""Offboarding: a member who leaves the company loses everything Baton gives them.

What starts it: DingTalk's ``user_leave_org`` event, a ``user_modify_org`` event after which
the directory shows the member inactive (or gone), or the daily sweep (handlers/drift.py)
finding such a member; each is one ``offboard`` in one transaction per member:

- their admin level, role, grants and template assignments end, each audited (``applied``,
  with ``{"via": "offboarding"}``): ``admin_remove.apply``, ``role_clear.apply``,
  ``grant.revoke``, ``template.unassign``; then one ``member.offboard`` entry sums it up;
- their open requests (made by them or about them) are cancelled through the request
  engine (cards updated);
- requests that waited for their decision now wait for the owner (deciders are re-read at
  click time; their cards are refreshed) and their undecided access-review items pass to
  the owner; grants they gave stay (a later review gives them to the owner, as the granter
  is no longer an admin);
- the owner is told, and the alert conversation gets a line. The owner leaving keeps the
  owner level (there is always one owner) and is alerted loudly, pointing at
  ``transfer-owner``.

A redelivered event, or the sweep finding a member the event already handled, changes
nothing: the event id is claimed, and a member already inactive who holds nothing is done.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.approvals.engine import cancel, refresh_card, view_of
from bot.core.domain.members import ADMIN, MEMBER, OWNER
from bot.core.domain.requests import waiting_for
from bot.core.domain.review import REVIEW
from bot.core.escape import Md, joined, literal, person
from bot.core.sends import Reply
from bot.delivery.alerts import queue_alert
from bot.dispatch.context import CommandRouter, Context
from bot.ports import DingTalkError, Directory, NotFound
from bot.texts.catalog import t
from bot.transport.inbound import USER_LEAVE_ORG, USER_MODIFY_ORG, OrgEvent
from handlers.review import hand_over_items

log = logging.getLogger(__name__)
router = CommandRouter()

VIA = {"via": "offboarding"}


async def offboard(env: Context, user_id: str, via: str) -> bool:
    """End everything ``user_id`` holds (see the module's docstring); False when there was
    nothing to do (unknown to Baton, or offboarded already)."""
    corp = env.corp_id
    if not await env.uow.drift.hold_member(corp, user_id):
        return False
    m = await env.uow.members.sender(corp, user_id)
    if m is None:
        return False
    held = await env.uow.perms.holdings(corp, user_id, env.now)
    if not m.active and m.level != ADMIN and not m.role and not held.grants \
            and not held.templates:
        return False
    # Before anything changes: which open requests wait for them, which are theirs.
    theirs, owed = [], []
    for req in await env.uow.requests.open_for(corp):
        if req.kind == REVIEW:
            continue
        if user_id in (req.requester_id, req.target_id):
            # An owner who left may have started the transfer that replaces them: kept.
            if not (m.level == OWNER and req.kind == "owner_transfer"):
                theirs.append(req)
        elif user_id in waiting_for(await view_of(req, env)):
            owed.append(req)
    ended: list[Md] = []
    if m.level == ADMIN:
        await env.uow.members.set_level(m, MEMBER, env.now)
        await env.audit("system", "admin_remove.apply", "applied", target_id=user_id,
                        before={"level": ADMIN}, after={"level": MEMBER, **VIA})
        ended.append(t("ended_level", env.lang, level=t("level_admin", env.lang)))
    if m.role:
        await env.uow.members.set_role(m, None, env.now)
        await env.audit("system", "role_clear.apply", "applied", target_id=user_id,
                        before={"role": m.role}, after={"role": None, **VIA})
        ended.append(t("ended_role", env.lang, name=literal(m.role, 64)))
    for h in await env.uow.drift.end_holdings(corp, user_id):
        if h.kind == "grant":
            await env.audit("system", "grant.revoke", "applied", target_id=user_id,
                            before={"name": h.name, "expires_at": h.expires_at.isoformat()
                                    if h.expires_at else None, "granted_by": h.granted_by},
                            after=VIA)
        else:
            await env.audit("system", "template.unassign", "applied", target_id=user_id,
                            before={"template": h.name}, after=VIA)
        ended.append(t(f"ended_{h.kind}", env.lang, name=literal(h.name, 64)))
    await env.uow.drift.mark_left(corp, user_id, env.now)
    for req in theirs:
        await cancel(req, env, "system")
    owner = await env.uow.members.owner_of(corp)
    owner_id = owner.user_id if owner else ""
    for req in owed:
        await refresh_card(req, env)
    # What the owner is told waits for them (a request the owner made waits for the others).
    owed = [r for r in owed if owner_id in waiting_for(await view_of(r, env))]
    review_id, moved = ("", 0) if not owner_id or owner_id == user_id else \
        await hand_over_items(env, user_id, owner_id)
    await env.audit("system", "member.offboard", "applied", target_id=user_id,
                    before={"level": m.level, "role": m.role, "active": m.active},
                    after={"via": via, "ended": len(ended), "cancelled": [r.id for r in theirs],
                           "decisions_to_owner": [r.id for r in owed],
                           "review_items_to_owner": moved})
    await _tell(env, m.name, user_id, via, ended, theirs, owed, review_id, moved,
                owner_left=m.level == OWNER, owner_id=owner_id)
    return True


async def _tell(env: Context, name: str, user_id: str, via: str, ended: list[Md],
                theirs: list[Any], owed: list[Any], review_id: str, moved: int, *,
                owner_left: bool, owner_id: str) -> None:
    lang = env.settings.locale.lang
    who = person(name, user_id)
    how = t(f"offboard_via_{via}", lang)
    if owner_left:
        loud = t("offboard_owner_left", lang, who=who, via=how)
        groups = dict.fromkeys([*filter(None, [env.settings.org.alert_conversation]),
                                *env.settings.org.admin_conversations])
        for conv in groups:
            await env.send(Reply(loud, conv, True, markdown=True))
        for a in await env.uow.members.admins_of(env.corp_id):
            if a.active and a.level == ADMIN:
                await env.send(Reply(loud, "", False, a.user_id, markdown=True))
        await queue_alert(env.uow, env.settings, env.now, who=who,
                          what=t("offboard_owner_left_alert", lang, who=who), why=how)
        return
    sep = t("list_sep", lang)
    text = t("offboard_done_owner", lang, who=who, via=how,
             ended=joined(sep, ended) if ended else t("offboard_ended_none", lang),
             decisions=t("offboard_decisions", lang,
                         ids=joined(sep, (r.public_id for r in owed))) if owed else "",
             reviews=t("offboard_reviews", lang, n=moved, id=review_id) if moved else "")
    if theirs:
        text = Md(text + t("offboard_cancelled", lang,
                           ids=joined(sep, (r.public_id for r in theirs))))
    if owner_id:
        await env.send(Reply(text, "", False, owner_id, markdown=True))
    await queue_alert(env.uow, env.settings, env.now, who=who,
                      what=t("offboard_alert", lang, who=who, n=len(ended), via=how), why=how)


# ---- events -------------------------------------------------------------------------------

@router.event(USER_LEAVE_ORG)
async def on_leave(event: OrgEvent, _prepared: Any, ctx: Context) -> None:
    if ctx.settings.drift.enabled:
        await offboard(ctx, event.user_ids[0], "user_leave_org")


async def _directory_says_left(event: OrgEvent, client: Directory | None) -> bool | None:
    """Whether the directory shows the member gone or inactive (None: it could not say)."""
    if client is None:
        return None
    try:
        user = await client.user_get(event.user_ids[0])
    except NotFound:
        return True
    except DingTalkError as e:
        log.warning("directory lookup of %s failed: %s", event.user_ids[0], e)
        return None
    return not bool(user.get("active", True))


@router.event(USER_MODIFY_ORG, prepare=_directory_says_left)
async def on_modify(event: OrgEvent, left: bool | None, ctx: Context) -> None:
    """A member's directory entry changed: offboard them if it shows them inactive. (The
    daily sweep catches a lookup that failed here.)"""
    if ctx.settings.drift.enabled and left:
        await offboard(ctx, event.user_ids[0], "user_modify_org")


@router.due("offboard")
async def due_offboard(payload: dict[str, Any], dctx: Context) -> None:
    """One member the daily sweep found gone or inactive, in a transaction of its own."""
    async with dctx.transaction() as env:
        await offboard(env, str(payload["user_id"]), str(payload.get("via", "sweep")))
