"""Access review campaigns (定期审核): every live grant is reviewed by the admin responsible
for it, on a one-to-one card with keep / remove per item, before a deadline.

A campaign is a request row of kind ``review`` (state ``pending`` while open, ``applied``
once closed) with its reviewers' cards and its items in tables of their own
(:class:`storage.review.ReviewRepo` hands it out as a :class:`bot.core.domain.review.Campaign`),
so any replica can take a click or close it. Each reviewer's card carries a review
:class:`bot.core.cardref.CardRef` (the campaign and the reviewer's place); its clicks come
here through ``router.card_action("review")``, and a click is judged only by the clicker's
userId against the stored item. The rules are in :mod:`bot.core.domain.review`.

Due work: ``review_start`` (the ``review.cron`` schedule: APScheduler's CronTrigger only
computes the next fire time; the row is the truth, one per fire time), ``review_remind``
(every 3 days to admins with undecided items, never inside ``policy.quiet_hours``) and
``review_close`` (the deadline: undecided items follow ``review.unreviewed``, the owner gets
the summary).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot.approvals.engine import NothingToDecide, held_for_quiet_hours
from bot.config import Settings
from bot.core.cardref import CardKind, CardRef, CardRefError
from bot.core.clock import local
from bot.core.commands import ReviewStart, ReviewStatus
from bot.core.domain.members import ADMIN, OWNER
from bot.core.domain.reminders import next_allowed
from bot.core.domain.requests import Request, State
from bot.core.domain.review import (
    KEEP,
    KEEP_ALL,
    REMOVE,
    REVIEW,
    Campaign,
    ReviewItem,
    assign_items,
    card_status,
    click_targets,
    counts,
    unreviewed_decision,
)
from bot.core.escape import Md, joined, literal
from bot.core.sends import CardSpec, Reply
from bot.delivery.alerts import raise_alert
from bot.dispatch.context import CommandRouter, Context, UserError
from bot.texts.catalog import t
from bot.transport.cards import ack_update, create_and_deliver_body
from bot.transport.inbound import CardAction
from handlers.permissions import catalog_of
from storage.db import Database

log = logging.getLogger(__name__)
router = CommandRouter()

REMIND_EVERY = timedelta(days=3)
MAX_CARDS = 26 * 26              # reviewers with a card of their own


def next_fire(cron: str, tz: str, after: datetime) -> datetime:
    """The first fire time of ``cron`` (in ``tz``) strictly after ``after``, as an aware
    datetime. Raises ValueError for an expression CronTrigger does not accept."""
    trigger = CronTrigger.from_crontab(cron, timezone=ZoneInfo(tz))
    at: datetime | None = trigger.get_next_fire_time(None, after + timedelta(seconds=1))
    if at is None:
        raise ValueError(f"{cron!r} never fires")
    return at


# ---- campaign --------------------------------------------------------------------------------

def _track(corp_id: str, req_id: int, n: int) -> str:
    return CardRef.review(corp_id, req_id, n).pack()


async def open_campaign(env: Context, requester: str) -> Campaign | None:
    """Open a campaign and send its cards; None when there is nothing to review. Raises
    UserError when a campaign is open already."""
    current = await env.uow.reviews.open_in(env.corp_id)
    if current is not None:
        raise UserError("review_already_open", id=current.public_id)
    owner = await env.uow.members.owner_of(env.corp_id)
    if owner is None:
        raise UserError("review_no_owner")
    admins = [m.user_id for m in await env.uow.members.admins_of(env.corp_id)
              if m.active and m.level in (OWNER, ADMIN)]
    order, items = assign_items(await env.uow.reviews.live_grants(env.corp_id, env.now),
                                admins, owner.user_id)
    if not items:
        return None
    deadline = env.now + env.settings.review.deadline
    c = await env.uow.reviews.start(env.corp_id, requester=requester, admins=order,
                                    items=items, lang=env.lang, now=env.now, deadline=deadline,
                                    message_id=env.message_id)
    s = env.settings
    for n, admin in enumerate(order[:MAX_CARDS]):
        track = _track(env.corp_id, c.id, n)
        body = create_and_deliver_body(
            template_id=s.dingtalk.card_template_id, robot_code=s.dingtalk.effective_robot_code,
            out_track_id=track, params=await card_params(c, env, n), user_id=admin)
        await env.card(CardSpec("create", track, f"user:{admin}", body))
    await env.audit(requester, "review.started", "pending", request_id=c.id,
                    after={"items": len(items), "admins": order,
                           "deadline": deadline.isoformat()})
    await env.uow.due.schedule("review_close", deadline, {"request_id": c.id}, env.now,
                               dedupe_key=f"access-review-close:{c.id}")
    first = _remind_at(env.now, s)
    if first < deadline:
        await env.uow.due.schedule("review_remind", first, {"request_id": c.id, "n": 1},
                                   env.now, dedupe_key=f"access-review-remind:{c.id}:1")
    return c


def _remind_at(now: datetime, settings: Settings) -> datetime:
    """The next reminder to reviewers: ``REMIND_EVERY`` on, moved out of quiet hours."""
    p = settings.policy
    return next_allowed(now + REMIND_EVERY, p.quiet_hours, p.timezone)


def _label(env: Context, name: str) -> Md:
    return literal(catalog_of(env.settings).label(name, env.lang), 100)


def _bg_tag(it: ReviewItem, env: Context) -> Md:
    """The tag of a grant that came from break-glass (紧急授权): it stands out on the card."""
    return t("review_bg_tag", env.lang, id=f"R-{it.break_glass}") if it.break_glass else Md("")


def _decision_text(it: ReviewItem, env: Context, names: dict[str, Md]) -> Md:
    if it.decision is None:
        return t("review_undecided", env.lang)
    at = local(it.at, env.settings.policy.timezone, "%m-%d %H:%M") if it.at else ""
    who = names.get(it.by or "", "Baton") if it.by else "Baton"
    return t(f"review_decided_{it.decision}", env.lang, who=who, at=at)


async def card_params(c: Campaign, env: Context, n: int) -> dict[str, str]:
    admin = c.admins[n]
    mine = c.of(admin)
    names = await env.names(admin, *(it.user for it in mine), *(it.by for it in mine if it.by))
    tz = env.settings.policy.timezone
    lines: list[str] = [t("review_card_intro", env.lang, who=names[admin], n=len(mine),
               deadline=local(c.expires_at, tz))]
    for it in mine:
        until: str = t("review_until", env.lang, at=local(it.expires_at, tz)) \
            if it.expires_at else ""
        lines.append(t("review_item", env.lang, i=it.number, holder=names[it.user],
                       name=_label(env, it.name), until=Md(until + _bg_tag(it, env)),
                       decision=_decision_text(it, env, names)))
    done = sum(1 for it in mine if it.decision is not None)
    status = card_status(c.state, mine)
    status_text = t(f"review_status_{status}", env.lang)
    lines.append(f"**{status_text}**")
    return {
        "title": t("review_card_title", env.lang, id=c.public_id),
        "markdown": "\n\n".join(lines),
        "status": status,
        "status_text": status_text,
        "request_id": c.public_id,
        "progress": t("review_progress", env.lang, done=done, total=len(mine)),
        "expires": t("card_expires", env.lang, at=local(c.expires_at, tz)),
        "decided": "",
    }


async def _update_card(c: Campaign, env: Context, n: int) -> dict[str, str]:
    params = await card_params(c, env, n)
    track = _track(env.corp_id, c.id, n)
    await env.card(CardSpec("update", track, f"card:{track}", {"params": params}))
    return params


async def _remove_grant(env: Context, c: Campaign, it: ReviewItem, actor: str, action: str) -> bool:
    """Revoke the item's grant (if it still exists); audited with before / after."""
    before = await env.uow.reviews.revoke(it)
    if before is not None:
        await env.audit(actor, action, "applied", target_id=it.user, request_id=c.id,
                        before=before, after=None)
        await env.send(Reply(t("review_removed_holder", env.lang, name=_label(env, it.name),
                               id=c.public_id), "", False, it.user, markdown=True))
        return True
    await env.audit(actor, action, "gone", target_id=it.user, request_id=c.id,
                    before=None, after=None)
    return False


@router.card_action(CardKind.REVIEW)
async def review_click(action: CardAction, env: Context) -> dict[str, Any]:
    """A click on a reviewer's card: judged against the campaign its reference names."""
    try:
        ref: CardRef | None = CardRef.unpack(action.out_track_id)
    except CardRefError:
        ref = None
    ours = ref is not None and ref.kind is CardKind.REVIEW and ref.corp == env.corp_id
    req = await env.uow.requests.find(ref.id, for_update=True) if ref and ours else None
    c = await env.uow.reviews.campaign(req.id) if req is not None else None
    if ref is None or req is None or c is None:
        return ack_update(None, {"notice": t("click_unknown_card", env.lang)})
    return await card_click(c, ref.reviewer, action, env.for_request(req))


async def card_click(c: Campaign, n: int, action: CardAction, env: Context) -> dict[str, Any]:
    """keep / remove one item, or keep_all: only the item's admin, once per item."""
    if n >= min(len(c.admins), MAX_CARDS):
        return ack_update(None, {"notice": t("click_unknown_card", env.lang)})
    if c.state is not State.PENDING:
        return ack_update(None, {"notice": t("review_closed_click", env.lang, id=c.public_id)})
    raw = str(action.params.get("item", "")).strip()
    targets = click_targets(c, n, action.action_id, raw)
    if targets is None:
        return ack_update(None, {"notice": t("click_unknown_card", env.lang)})
    if not targets and action.action_id != KEEP_ALL:
        return ack_update(None, {"notice": t("review_no_item", env.lang, item=literal(raw, 20))})
    owners = {it.admin for it in targets}
    if not targets or action.user_id not in owners or len(owners) != 1:
        responsible = sorted(owners) or [c.admins[n]]
        names = await env.names(*responsible)
        await env.audit(action.user_id, "review.click_refused", "refused", request_id=c.id,
                        after={"reason": "not_assigned", "action": action.action_id,
                               "claimed_params": dict(action.params)})
        notice: str = t("review_not_yours", env.lang,
                        who=joined(t("list_sep", env.lang), (names[a] for a in responsible)))
        await raise_alert(env.uow, env.settings, env.now, actor=action.user_id,
                          what=t("alert_click", env.settings.locale.lang,
                                 action=action.action_id, id=c.public_id), why=notice)
        return ack_update(None, {"notice": notice})
    if action.action_id != KEEP_ALL and targets[0].decision is not None:
        it = targets[0]
        names = await env.names(it.by or "")
        return ack_update(None, {"notice": t(
            "review_already_decided", env.lang, i=it.number,
            decision=_decision_text(it, env, names))})
    decision = REMOVE if action.action_id == REMOVE else KEEP
    decided: list[ReviewItem] = []
    for it in targets:
        if it.decision is not None:
            continue
        if decision == REMOVE:
            await _remove_grant(env, c, it, action.user_id, "review.remove")
        else:
            await env.audit(action.user_id, "review.keep", "applied", target_id=it.user,
                            request_id=c.id, after={"name": it.name, "decision": KEEP})
        decided.append(it.decided(decision, action.user_id, env.now))
    await env.uow.reviews.record(c.id, decided)
    c = c.with_items(decided)
    key = "review_click_removed" if decision == REMOVE else "review_click_kept"
    notice = t(key, env.lang, n=len(decided))
    if counts(c.items)["open"] == 0:
        # The last item is decided: the review closes now, as at the deadline.
        c = await close_campaign(c, env, (), "all_reviewed")
        await env.uow.due.cancel(f"access-review-close:{c.id}")
        await _tell_owner(env, t("review_summary_all_reviewed", env.lang, id=c.public_id)
                          + "\n\n" + await progress_text(c, env))
        notice += " " + t("review_closed_now", env.lang, id=c.public_id)
        params = await card_params(c, env, n)
    else:
        params = await _update_card(c, env, c.admins.index(targets[0].admin))
    return ack_update(params, {"notice": notice})


# ---- status and summaries --------------------------------------------------------------------

async def progress_text(c: Campaign, env: Context) -> str:
    names = await env.names(*c.admins)
    tz = env.settings.policy.timezone
    state = t("review_state_open" if c.state is State.PENDING else
              "review_state_cancelled" if c.state is State.CANCELLED else
              "review_state_closed", env.lang)
    lines = [f"### {t('review_status_title', env.lang, id=c.public_id, state=state)}",
             t("review_deadline", env.lang, at=local(c.expires_at, tz))]
    for a in c.admins:
        mine = c.of(a)
        done = sum(1 for it in mine if it.decision is not None)
        lines.append(t("review_admin_line", env.lang, who=names[a], done=done, total=len(mine)))
    lines.append(t("review_counts", env.lang, **counts(c.items)))
    return "\n\n".join(lines)


@router.command(ReviewStart, admin_only=True, authority="owner")
async def review_start(cmd: ReviewStart, ctx: Context) -> None:
    c = await open_campaign(ctx, ctx.sender.user_id)
    if c is None:
        await ctx.reply(ctx.t("review_nothing"))
        return
    await ctx.reply(ctx.t("review_started", id=c.public_id, n=len(c.items),
                          admins=len(c.admins),
                          deadline=local(c.expires_at, ctx.settings.policy.timezone)),
                    markdown=True)


@router.command(ReviewStatus, admin_only=True, authority="owner")
async def review_status(cmd: ReviewStatus, ctx: Context) -> None:
    c = await ctx.uow.reviews.latest_in(ctx.corp_id)
    if c is None:
        await ctx.reply(ctx.t("review_none"))
        return
    await ctx.reply(await progress_text(c, ctx), markdown=True,
                    title=ctx.t("review_status_title", id=c.public_id, state=""))


# ---- due work --------------------------------------------------------------------------------

def _start_key(corp_id: str, at: datetime) -> str:
    return f"access-review-start:{corp_id}:{at.isoformat()}"


async def _schedule_next(uow: Any, settings: Settings, now: datetime) -> datetime | None:
    try:
        at = next_fire(settings.review.cron, settings.policy.timezone, now)
    except ValueError as e:
        log.error("review.cron %r is not usable (%s); no periodic access review is planned",
                  settings.review.cron, e)
        return None
    corp = settings.org.corp_id
    await uow.due.schedule("review_start", at, {"corp_id": corp, "fire": at.isoformat()}, now,
                           dedupe_key=_start_key(corp, at))
    return at


async def schedule_review(db: Database, settings: Settings, now: datetime) -> None:
    """On start: the next ``review.cron`` fire as a due row (one per fire time), and any
    pending fire of an earlier ``review.cron`` that this one no longer has is cancelled."""
    async with db.uow() as uow:
        at = await _schedule_next(uow, settings, now)
        if at is not None:
            corp = settings.org.corp_id
            # Only fires still ahead: one that fell due while Baton was down still runs.
            await uow.reviews.cancel_planned_starts(corp, _start_key(corp, at), now)
        await uow.commit()


async def _tell_owner(env: Context, text: str) -> None:
    owner = await env.uow.members.owner_of(env.corp_id)
    if owner is not None:
        await env.send(Reply(text, "", False, owner.user_id, markdown=True,
                             title=t("review_title", env.lang)))


@router.due("review_start")
async def due_review_start(payload: dict[str, Any], dctx: Context) -> None:
    async with dctx.transaction() as env:
        await _schedule_next(env.uow, env.settings, env.now)
        try:
            async with env.uow.savepoint():
                c = await open_campaign(env, "system")
        except UserError as e:
            await _tell_owner(env, t("review_cron_skipped", env.lang, why=e.render(env.lang)))
            return
        if c is None:
            await _tell_owner(env, t("review_nothing", env.lang))
            return
        await _tell_owner(env, t("review_started", env.lang, id=c.public_id,
                                 n=len(c.items), admins=len(c.admins),
                                 deadline=local(c.expires_at, env.settings.policy.timezone)))


@router.due("review_remind")
async def due_review_remind(payload: dict[str, Any], dctx: Context) -> None:
    async with dctx.transaction() as tx:
        req = await tx.uow.requests.find(int(payload["request_id"]))
        c = await tx.uow.reviews.campaign(req.id) if req is not None else None
        if req is None or c is None or c.state is not State.PENDING or tx.now >= c.expires_at:
            return
        if await held_for_quiet_hours(tx, "review_remind", payload,
                                      f"access-review-remind:{c.id}:{payload.get('n', 1)}"):
            return
        env = tx.for_request(req)
        tz = env.settings.policy.timezone
        for a in c.admins:
            left = sum(1 for it in c.of(a) if it.decision is None)
            if left:
                await env.send(Reply(t("review_remind", env.lang, id=c.public_id, n=left,
                                       deadline=local(c.expires_at, tz)),
                                     "", False, a, markdown=True,
                                     title=t("review_title", env.lang)))
        n = int(payload.get("n", 1))
        nxt = _remind_at(env.now, env.settings)
        if nxt < c.expires_at:
            await env.uow.due.schedule("review_remind", nxt, {"request_id": c.id, "n": n + 1},
                                       env.now, dedupe_key=f"access-review-remind:{c.id}:{n + 1}")


@router.due("review_close")
async def due_review_close(payload: dict[str, Any], dctx: Context) -> None:
    async with dctx.transaction() as tx:
        req = await tx.uow.requests.find(int(payload["request_id"]), for_update=True)
        c = await tx.uow.reviews.campaign(req.id) if req is not None else None
        if req is None or c is None or c.state is not State.PENDING:
            return
        env = tx.for_request(req)
        policy = env.settings.review.unreviewed
        open_items = [it for it in c.items if it.decision is None]
        decided: list[ReviewItem] = []
        for it in open_items:
            if policy == "revoke":
                await _remove_grant(env, c, it, "system", "review.unreviewed_revoke")
            else:
                await env.audit("system", "review.unreviewed_keep", "applied",
                                target_id=it.user, request_id=c.id,
                                after={"name": it.name, "decision": KEEP})
            decided.append(it.decided(unreviewed_decision(policy), None, env.now))
        c = await close_campaign(c, env, decided, "deadline")
        if open_items and policy == "keep":
            names = await env.names(*(it.user for it in open_items))
            listing = "\n".join(t("review_unreviewed_line", env.lang, i=it.number,
                                  holder=names[it.user],
                                  name=Md(_label(env, it.name) + _bg_tag(it, env)))
                                for it in open_items)
            await _tell_owner(env, t("review_unreviewed_kept", env.lang, id=c.public_id,
                                     n=len(open_items)) + "\n\n" + listing)
            await raise_alert(env.uow, env.settings, env.now, actor="system",
                              what=t("review_alert_what", env.settings.locale.lang,
                                     id=c.public_id),
                              why=t("review_alert_why", env.settings.locale.lang,
                                    n=len(open_items)))
        summary = await progress_text(c, env)
        await _tell_owner(env, t("review_summary", env.lang, id=c.public_id,
                                 policy=t(f"review_policy_{policy}", env.lang)) + "\n\n" + summary)


async def close_campaign(c: Campaign, env: Context, decided: Sequence[ReviewItem],
                         why: str) -> Campaign:
    """Close the campaign (APPLIED) with these last ``decided`` items: audited, every card
    shows it closed. ``why``: ``deadline`` or ``all_reviewed`` (the last item was decided
    before it)."""
    c = await env.uow.reviews.close(c.id, decided, env.now)
    await env.audit("system", "review.applied", "applied", request_id=c.id,
                    before={"state": State.PENDING.value},
                    after={"state": State.APPLIED.value, **counts(c.items),
                           "unreviewed": env.settings.review.unreviewed, "why": why})
    for n in range(min(len(c.admins), MAX_CARDS)):
        await _update_card(c, env, n)
    return c


class ReviewKind(NothingToDecide):
    """The request kind, so the shared views (``pending``, ``cancel``) know the campaign."""

    kind = REVIEW

    async def after(self, req: Request, env: Context, state: State) -> None:
        # Cancelled (``cancel R-n``): the cards say so; the deadline has nothing left to do.
        c = await env.uow.reviews.campaign(req.id)
        if c is not None:
            for n in range(min(len(c.admins), MAX_CARDS)):
                await _update_card(c, env, n)
        await env.uow.due.cancel(f"access-review-close:{req.id}")

    async def describe(self, req: Request, env: Context) -> Md:
        c = await env.uow.reviews.campaign(req.id)
        return t("review_describe", env.lang, n=len(c.items) if c is not None else 0)

    async def subject(self, req: Request, env: Context) -> str:
        c = await env.uow.reviews.campaign(req.id)
        return t("review_subject", env.lang, n=len(c.items) if c is not None else 0,
                 admins=len(c.admins) if c is not None else 0)


router.request_kind(ReviewKind())

__all__ = ["next_fire", "router", "schedule_review"]


async def hand_over_items(env: Context, from_admin: str, to_admin: str) -> tuple[str, int]:
    """The undecided items of ``from_admin`` in the open campaign pass to ``to_admin`` (the
    owner, when an admin leaves): ``to_admin``'s card is sent (or updated) with them, the
    other's is updated. (The campaign's public id, items moved); ("", 0) when none moved."""
    c = await env.uow.reviews.open_in(env.corp_id)
    if c is None or from_admin == to_admin:
        return "", 0
    moved, n, new = await env.uow.drift.reassign_review(c.id, from_admin, to_admin, MAX_CARDS)
    if not moved:
        if n >= MAX_CARDS:
            log.warning("review %s: %s's items stay (no card is left for %s); the deadline's "
                        "policy decides them", c.public_id, from_admin, to_admin)
        return "", 0
    c = await env.uow.reviews.campaign(c.id)
    assert c is not None
    s = env.settings
    if new:
        track = _track(env.corp_id, c.id, n)
        body = create_and_deliver_body(
            template_id=s.dingtalk.card_template_id, robot_code=s.dingtalk.effective_robot_code,
            out_track_id=track, params=await card_params(c, env, n), user_id=to_admin)
        await env.card(CardSpec("create", track, f"user:{to_admin}", body))
    elif not new:
        await _update_card(c, env, n)
    if from_admin in c.admins and c.admins.index(from_admin) < MAX_CARDS:
        await _update_card(c, env, c.admins.index(from_admin))
    await env.audit("system", "review.handed_over", "applied", request_id=c.id,
                    target_id=from_admin, after={"to": to_admin, "items": moved,
                                                 "via": "offboarding"})
    return c.public_id, moved
