"""Access review campaigns (定期审核): every live grant is reviewed by the admin responsible
for it, on a one-to-one card with keep / remove per item, before a deadline.

A campaign is a request row of kind ``review`` (state ``pending`` while open, ``applied``
once closed); its payload holds the items and their decisions, so any replica can take a
click or close it. Card ``outTrackId``s derive from the request id and the admin's index
(``baton-<corp>-R<id>-rv<letters>``: the request machinery reads letter-only suffixes), and
a click is judged only by the clicker's userId against the stored item.

Due work: ``review_start`` (the ``review.cron`` schedule: APScheduler's CronTrigger only
computes the next fire time; the row is the truth, one per fire time), ``review_remind``
(every 3 days to admins with undecided items, never inside ``policy.quiet_hours``) and
``review_close`` (the deadline: undecided items follow ``review.unreviewed``, the owner gets
the summary).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select, update

from bot.approvals.engine import REGISTRY, held_for_quiet_hours, letter_suffix
from bot.config import Settings
from bot.core.clock import local
from bot.core.commands import ReviewStart, ReviewStatus
from bot.core.domain.reminders import next_allowed
from bot.core.domain.requests import Requirement, State
from bot.core.escape import Md, joined, literal
from bot.core.sends import CardSpec, Reply
from bot.delivery.alerts import raise_alert
from bot.dispatch.context import CommandRouter, Context, UserError
from bot.texts.catalog import MESSAGES, t
from bot.transport.cards import ack_update, create_and_deliver_body
from bot.transport.inbound import CardAction
from handlers.permissions import catalog_of
from storage.db import Database
from storage.models import ADMIN, OWNER, DueWork, Grant, Request

log = logging.getLogger(__name__)
router = CommandRouter()

REVIEW = "review"
REMIND_EVERY = timedelta(days=3)
MAX_CARDS = 26 * 26              # card suffixes registered at import: rva .. rvzz
KEEP, REMOVE, KEEP_ALL = "keep", "remove", "keep_all"


# ---- pure parts -------------------------------------------------------------------------------

def next_fire(cron: str, tz: str, after: datetime) -> datetime:
    """The first fire time of ``cron`` (in ``tz``) strictly after ``after``, as an aware
    datetime. Raises ValueError for an expression CronTrigger does not accept."""
    trigger = CronTrigger.from_crontab(cron, timezone=ZoneInfo(tz))
    at: datetime | None = trigger.get_next_fire_time(None, after + timedelta(seconds=1))
    if at is None:
        raise ValueError(f"{cron!r} never fires")
    return at


@dataclass(frozen=True)
class LiveGrant:
    grant_id: int
    user_id: str
    name: str
    granted_by: str
    expires_at: datetime | None


def assign_items(grants: Iterable[LiveGrant], admins: Iterable[str], owner: str
                 ) -> tuple[list[str], list[dict[str, Any]]]:
    """Items in a stable order, each with the admin responsible: the granter if still an
    admin or the owner, else the owner. Returns (admins with items, in card order; items)."""
    deciders = set(admins) | {owner}
    items: list[dict[str, Any]] = []
    for i, g in enumerate(sorted(grants, key=lambda g: (g.user_id, g.name, g.grant_id))):
        items.append({
            "i": i, "grant_id": g.grant_id, "user": g.user_id, "name": g.name,
            "granted_by": g.granted_by,
            "expires_at": g.expires_at.isoformat() if g.expires_at else None,
            "admin": g.granted_by if g.granted_by in deciders else owner,
            "decision": None, "by": None, "at": None,
        })
    order = sorted({it["admin"] for it in items}, key=lambda a: (a != owner, a))
    return order, items


def card_suffix(n: int) -> str:
    """``rv`` and the admin's index in base 26 letters (0 → rva, 26 → rvba)."""
    return letter_suffix("rv", n)


def number(it: dict[str, Any]) -> int:
    """An item's number as people see and type it: from 1 (``i`` is its 0-based index)."""
    return int(it["i"]) + 1


def counts(items: Sequence[dict[str, Any]]) -> dict[str, int]:
    kept = sum(1 for it in items if it["decision"] == KEEP)
    removed = sum(1 for it in items if it["decision"] == REMOVE)
    return {"kept": kept, "removed": removed,
            "unreviewed_kept": sum(1 for it in items if it["decision"] == "unreviewed_keep"),
            "unreviewed_revoked": sum(1 for it in items if it["decision"] == "unreviewed_revoke"),
            "open": sum(1 for it in items if it["decision"] is None)}


# ---- campaign --------------------------------------------------------------------------------

def _track(corp_id: str, req_id: int, n: int) -> str:
    return f"baton-{corp_id}-R{req_id}-{card_suffix(n)}"


def _items(req: Request) -> list[dict[str, Any]]:
    return [dict(it) for it in req.payload.get("items", [])]


def _admins(req: Request) -> list[str]:
    return [str(a) for a in req.payload.get("admins", [])]


async def _live_grants(env: Context) -> list[LiveGrant]:
    rows = (await env.uow.session.execute(select(Grant).where(Grant.corp_id == env.corp_id))).scalars()
    return [LiveGrant(g.id, g.user_id, g.name, g.granted_by, g.expires_at) for g in rows
            if g.expires_at is None or g.expires_at > env.now]


async def open_campaign(env: Context, requester: str) -> Request | None:
    """Open a campaign and send its cards; None when there is nothing to review. Raises
    UserError when a campaign is open already."""
    current = await open_campaign_row(env)
    if current is not None:
        raise UserError("review_already_open", id=current.public_id)
    owner = await env.uow.members.owner_of(env.corp_id)
    if owner is None:
        raise UserError("review_no_owner")
    admins = [m.user_id for m in await env.uow.members.admins_of(env.corp_id)
              if m.active and m.level in (OWNER, ADMIN)]
    order, items = assign_items(await _live_grants(env), admins, owner.user_id)
    if not items:
        return None
    deadline = env.now + env.settings.review.deadline
    req = Request(corp_id=env.corp_id, kind=REVIEW, state=State.PENDING.value,
                  requester_id=requester, target_id=None, conversation_id="",
                  payload={"items": items, "admins": order, "is_group": False, "lang": env.lang},
                  created_at=env.now, expires_at=deadline, source_message_id=env.message_id)
    env.uow.requests.add(req)
    await env.uow.session.flush()
    s = env.settings
    for n, admin in enumerate(order[:MAX_CARDS]):
        track = _track(env.corp_id, req.id, n)
        body = create_and_deliver_body(
            template_id=s.dingtalk.card_template_id, robot_code=s.dingtalk.effective_robot_code,
            out_track_id=track, params=await card_params(req, env, n), user_id=admin)
        await env.card(CardSpec("create", track, f"user:{admin}", body))
    await env.audit(requester, "review.started", "pending", request_id=req.id,
                    after={"items": len(items), "admins": order,
                           "deadline": deadline.isoformat()})
    await env.uow.due.schedule("review_close", deadline, {"request_id": req.id}, env.now,
                               dedupe_key=f"access-review-close:{req.id}")
    first = _remind_at(env.now, s)
    if first < deadline:
        await env.uow.due.schedule("review_remind", first, {"request_id": req.id, "n": 1},
                                   env.now, dedupe_key=f"access-review-remind:{req.id}:1")
    return req


def _remind_at(now: datetime, settings: Settings) -> datetime:
    """The next reminder to reviewers: ``REMIND_EVERY`` on, moved out of quiet hours."""
    p = settings.policy
    return next_allowed(now + REMIND_EVERY, p.quiet_hours, p.timezone)


async def open_campaign_row(env: Context) -> Request | None:
    rows = await env.uow.requests.by_kind(env.corp_id, REVIEW)
    return next((r for r in rows if r.state == State.PENDING.value), None)


def _label(env: Context, name: str) -> Md:
    return literal(catalog_of(env.settings).label(name, env.lang), 100)


def _decision_text(it: dict[str, Any], env: Context, names: dict[str, Md]) -> Md:
    d = it["decision"]
    if d is None:
        return t("review_undecided", env.lang)
    at = local(datetime.fromisoformat(it["at"]), env.settings.policy.timezone, "%m-%d %H:%M") \
        if it.get("at") else ""
    who = names.get(it.get("by") or "", "Baton") if it.get("by") else "Baton"
    return t(f"review_decided_{d}", env.lang, who=who, at=at)


async def card_params(req: Request, env: Context, n: int) -> dict[str, str]:
    admins = _admins(req)
    admin = admins[n]
    mine = [it for it in _items(req) if it["admin"] == admin]
    names = await env.names(admin, *(it["user"] for it in mine),
                            *(it["by"] for it in mine if it.get("by")))
    tz = env.settings.policy.timezone
    lines: list[str] = [t("review_card_intro", env.lang, who=names[admin], n=len(mine),
               deadline=local(req.expires_at, tz))]
    for it in mine:
        until = t("review_until", env.lang, at=local(datetime.fromisoformat(it["expires_at"]), tz)) \
            if it.get("expires_at") else ""
        lines.append(t("review_item", env.lang, i=number(it), holder=names[it["user"]],
                       name=_label(env, it["name"]), until=until,
                       decision=_decision_text(it, env, names)))
    done = sum(1 for it in mine if it["decision"] is not None)
    if req.state != State.PENDING.value:
        status = State.CANCELLED.value if req.state == State.CANCELLED.value \
            else State.APPLIED.value
    else:
        status = "done" if done == len(mine) else State.PENDING.value
    status_text = t(f"review_status_{status}", env.lang)
    lines.append(f"**{status_text}**")
    return {
        "title": t("review_card_title", env.lang, id=req.public_id),
        "markdown": "\n\n".join(lines),
        "status": status,
        "status_text": status_text,
        "request_id": req.public_id,
        "progress": t("review_progress", env.lang, done=done, total=len(mine)),
        "expires": t("card_expires", env.lang, at=local(req.expires_at, tz)),
        "decided": "",
    }


async def _update_card(req: Request, env: Context, n: int) -> dict[str, str]:
    params = await card_params(req, env, n)
    track = _track(env.corp_id, req.id, n)
    await env.card(CardSpec("update", track, f"card:{track}", {"params": params}))
    return params


async def _remove_grant(env: Context, req: Request, it: dict[str, Any], actor: str,
                        action: str) -> bool:
    """Revoke the item's grant (if it still exists); audited with before / after."""
    row = await env.uow.session.get(Grant, int(it["grant_id"]))
    live = row is not None and row.user_id == it["user"] and row.name == it["name"]
    if row is not None and live:
        before = {"name": row.name, "expires_at": row.expires_at.isoformat() if row.expires_at
                  else None, "granted_by": row.granted_by}
        await env.uow.session.delete(row)
        await env.uow.session.flush()
        await env.audit(actor, action, "applied", target_id=it["user"], request_id=req.id,
                        before=before, after=None)
        await env.send(Reply(t("review_removed_holder", env.lang, name=_label(env, it["name"]),
                               id=req.public_id), "", False, it["user"], markdown=True))
        return True
    await env.audit(actor, action, "gone", target_id=it["user"], request_id=req.id,
                    before=None, after=None)
    return False


async def card_click(req: Request, action: CardAction, env: Context) -> dict[str, Any]:
    """keep / remove one item, or keep_all: only the item's admin, once per item."""
    suffix = action.out_track_id.rsplit("-", 1)[-1]
    admins = _admins(req)
    n = next((k for k in range(len(admins)) if card_suffix(k) == suffix), None)
    if n is None:
        return ack_update(None, {"notice": t("click_unknown_card", env.lang)})
    if req.state != State.PENDING.value:
        return ack_update(None, {"notice": t("review_closed_click", env.lang, id=req.public_id)})
    items = _items(req)
    if action.action_id == KEEP_ALL:
        targets = [it for it in items if it["admin"] == admins[n]]
    elif action.action_id in (KEEP, REMOVE):
        raw = str(action.params.get("item", "")).strip()
        idx = int(raw) - 1 if raw.isdigit() else -1       # numbered from 1 on the card
        targets = [items[idx]] if 0 <= idx < len(items) else []
        if not targets:
            return ack_update(None, {"notice": t("review_no_item", env.lang,
                                                 item=literal(raw, 20))})
    else:
        return ack_update(None, {"notice": t("click_unknown_card", env.lang)})
    owners = {it["admin"] for it in targets}
    if not targets or action.user_id not in owners or len(owners) != 1:
        responsible = sorted(owners) or [admins[n]]
        names = await env.names(*responsible)
        await env.audit(action.user_id, "review.click_refused", "refused", request_id=req.id,
                        after={"reason": "not_assigned", "action": action.action_id,
                               "claimed_params": dict(action.params)})
        notice: str = t("review_not_yours", env.lang,
                        who=joined(t("list_sep", env.lang), (names[a] for a in responsible)))
        await raise_alert(env.uow, env.settings, env.now, actor=action.user_id,
                          what=t("alert_click", env.settings.locale.lang,
                                 action=action.action_id, id=req.public_id), why=notice)
        return ack_update(None, {"notice": notice})
    if action.action_id != KEEP_ALL and targets[0]["decision"] is not None:
        it = targets[0]
        names = await env.names(it["by"] or "")
        return ack_update(None, {"notice": t(
            "review_already_decided", env.lang, i=number(it),
            decision=_decision_text(it, env, names))})
    decision = REMOVE if action.action_id == REMOVE else KEEP
    changed = 0
    for it in targets:
        if it["decision"] is not None:
            continue
        if decision == REMOVE:
            await _remove_grant(env, req, it, action.user_id, "review.remove")
        else:
            await env.audit(action.user_id, "review.keep", "applied", target_id=it["user"],
                            request_id=req.id, after={"name": it["name"], "decision": KEEP})
        it.update(decision=decision, by=action.user_id, at=env.now.isoformat())
        items[it["i"]] = it
        changed += 1
    req.payload = {**req.payload, "items": items}
    req.version += 1
    await env.uow.session.flush()
    key = "review_click_removed" if decision == REMOVE else "review_click_kept"
    notice = t(key, env.lang, n=changed)
    if counts(items)["open"] == 0:
        # The last item is decided: the review closes now, as at the deadline.
        await close_campaign(req, env, items, "all_reviewed")
        await env.uow.due.cancel(f"access-review-close:{req.id}")
        await _tell_owner(env, t("review_summary_all_reviewed", env.lang, id=req.public_id)
                          + "\n\n" + await progress_text(req, env))
        notice += " " + t("review_closed_now", env.lang, id=req.public_id)
        params = await card_params(req, env, n)
    else:
        params = await _update_card(req, env, admins.index(targets[0]["admin"]))
    return ack_update(params, {"notice": notice})


# ---- status and summaries --------------------------------------------------------------------

async def progress_text(req: Request, env: Context) -> str:
    items = _items(req)
    admins = _admins(req)
    names = await env.names(*admins)
    tz = env.settings.policy.timezone
    state = t("review_state_open" if req.state == State.PENDING.value else
              "review_state_cancelled" if req.state == State.CANCELLED.value else
              "review_state_closed", env.lang)
    lines = [f"### {t('review_status_title', env.lang, id=req.public_id, state=state)}",
             t("review_deadline", env.lang, at=local(req.expires_at, tz))]
    for a in admins:
        mine = [it for it in items if it["admin"] == a]
        done = sum(1 for it in mine if it["decision"] is not None)
        lines.append(t("review_admin_line", env.lang, who=names[a], done=done, total=len(mine)))
    c = counts(items)
    lines.append(t("review_counts", env.lang, **c))
    return "\n\n".join(lines)


@router.command(ReviewStart, admin_only=True, authority="owner")
async def review_start(cmd: ReviewStart, ctx: Context) -> None:
    env = ctx
    req = await open_campaign(env, ctx.sender.user_id)
    if req is None:
        await ctx.reply(ctx.t("review_nothing"))
        return
    await ctx.reply(ctx.t("review_started", id=req.public_id, n=len(_items(req)),
                          admins=len(_admins(req)),
                          deadline=local(req.expires_at, ctx.settings.policy.timezone)),
                    markdown=True)


@router.command(ReviewStatus, admin_only=True, authority="owner")
async def review_status(cmd: ReviewStatus, ctx: Context) -> None:
    env = ctx
    rows = await ctx.uow.requests.by_kind(ctx.corp_id, REVIEW)
    if not rows:
        await ctx.reply(ctx.t("review_none"))
        return
    await ctx.reply(await progress_text(rows[0], env), markdown=True,
                    title=ctx.t("review_status_title", id=rows[0].public_id, state=""))


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
            await uow.session.execute(update(DueWork).where(
                DueWork.kind == "review_start", DueWork.status == "pending",
                DueWork.due_at > now,
                DueWork.dedupe_key.startswith(f"access-review-start:{corp}:", autoescape=True),
                DueWork.dedupe_key != _start_key(corp, at)).values(status="cancelled"))
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
            async with env.uow.session.begin_nested():
                req = await open_campaign(env, "system")
        except UserError as e:
            await _tell_owner(env, t("review_cron_skipped", env.lang, why=e.render(env.lang)))
            return
        if req is None:
            await _tell_owner(env, t("review_nothing", env.lang))
            return
        await _tell_owner(env, t("review_started", env.lang, id=req.public_id,
                                 n=len(_items(req)), admins=len(_admins(req)),
                                 deadline=local(req.expires_at, env.settings.policy.timezone)))


@router.due("review_remind")
async def due_review_remind(payload: dict[str, Any], dctx: Context) -> None:
    async with dctx.transaction() as tx:
        req = await tx.uow.requests.find(int(payload["request_id"]))
        if req is None or req.state != State.PENDING.value or tx.now >= req.expires_at:
            return
        if await held_for_quiet_hours(tx, "review_remind", payload,
                                      f"access-review-remind:{req.id}:{payload.get('n', 1)}"):
            return
        env = tx.for_request(req)
        items = _items(req)
        tz = env.settings.policy.timezone
        for a in _admins(req):
            left = sum(1 for it in items if it["admin"] == a and it["decision"] is None)
            if left:
                await env.send(Reply(t("review_remind", env.lang, id=req.public_id, n=left,
                                       deadline=local(req.expires_at, tz)),
                                     "", False, a, markdown=True,
                                     title=t("review_title", env.lang)))
        n = int(payload.get("n", 1))
        nxt = _remind_at(env.now, env.settings)
        if nxt < req.expires_at:
            await env.uow.due.schedule("review_remind", nxt, {"request_id": req.id, "n": n + 1},
                                       env.now, dedupe_key=f"access-review-remind:{req.id}:{n + 1}")


@router.due("review_close")
async def due_review_close(payload: dict[str, Any], dctx: Context) -> None:
    async with dctx.transaction() as tx:
        req = await tx.uow.requests.find(int(payload["request_id"]), for_update=True)
        if req is None or req.state != State.PENDING.value:
            return
        env = tx.for_request(req)
        policy = env.settings.review.unreviewed
        items = _items(req)
        open_items = [it for it in items if it["decision"] is None]
        for it in open_items:
            if policy == "revoke":
                await _remove_grant(env, req, it, "system", "review.unreviewed_revoke")
                it.update(decision="unreviewed_revoke", by=None, at=env.now.isoformat())
            else:
                await env.audit("system", "review.unreviewed_keep", "applied",
                                target_id=it["user"], request_id=req.id,
                                after={"name": it["name"], "decision": KEEP})
                it.update(decision="unreviewed_keep", by=None, at=env.now.isoformat())
            items[it["i"]] = it
        await close_campaign(req, env, items, "deadline")
        if open_items and policy == "keep":
            names = await env.names(*(it["user"] for it in open_items))
            listing = "\n".join(t("review_unreviewed_line", env.lang, i=number(it),
                                  holder=names[it["user"]], name=_label(env, it["name"]))
                                for it in open_items)
            await _tell_owner(env, t("review_unreviewed_kept", env.lang, id=req.public_id,
                                     n=len(open_items)) + "\n\n" + listing)
            await raise_alert(env.uow, env.settings, env.now, actor="system",
                              what=t("review_alert_what", env.settings.locale.lang,
                                     id=req.public_id),
                              why=t("review_alert_why", env.settings.locale.lang,
                                    n=len(open_items)))
        summary = await progress_text(req, env)
        await _tell_owner(env, t("review_summary", env.lang, id=req.public_id,
                                 policy=t(f"review_policy_{policy}", env.lang)) + "\n\n" + summary)


async def close_campaign(req: Request, env: Context, items: list[dict[str, Any]],
                         why: str) -> None:
    """Close the campaign (APPLIED): audited, every card shows it closed. ``why``:
    ``deadline`` or ``all_reviewed`` (the last item was decided before it)."""
    req.payload = {**req.payload, "items": items}
    req.state = State.APPLIED.value
    req.decided_at = env.now
    req.version += 1
    await env.uow.session.flush()
    await env.audit("system", "review.applied", "applied", request_id=req.id,
                    before={"state": State.PENDING.value},
                    after={"state": State.APPLIED.value, **counts(items),
                           "unreviewed": env.settings.review.unreviewed, "why": why})
    for n in range(min(len(_admins(req)), MAX_CARDS)):
        await _update_card(req, env, n)


class ReviewKind:
    """The request kind, so the shared views (``pending``, ``cancel``) know the campaign."""

    kind = REVIEW

    async def requirements(self, req: Request, env: Context) -> tuple[Requirement, ...]:
        return ()

    async def apply(self, req: Request, env: Context) -> None:
        return None

    async def after(self, req: Request, env: Context, state: State) -> None:
        # Cancelled (``cancel R-n``): the cards say so; the deadline has nothing left to do.
        for n in range(min(len(_admins(req)), MAX_CARDS)):
            await _update_card(req, env, n)
        await env.uow.due.cancel(f"access-review-close:{req.id}")

    async def describe(self, req: Request, env: Context) -> Md:
        return t("review_describe", env.lang, n=len(_items(req)))

    async def subject(self, req: Request, env: Context) -> str:
        return t("review_subject", env.lang, n=len(_items(req)), admins=len(_admins(req)))


def _suffixes() -> list[str]:
    return [card_suffix(n) for n in range(MAX_CARDS)]


REGISTRY.add(ReviewKind())
for _s in _suffixes():
    REGISTRY.card_actions[f"{REVIEW}:{_s}"] = card_click


MESSAGES.update({
    "kind_review": {"zh": "权限审核", "en": "Access review"},
    "review_title": {"zh": "权限审核", "en": "Access review"},
    "review_already_open": {"zh": "已有进行中的权限审核 {id}，发送 `权限审核 状态` 查看进度。",
                            "en": "Access review {id} is still open; send `review status` to "
                                  "see how it is going."},
    "review_no_owner": {"zh": "还没有主管理员，无法发起权限审核。",
                        "en": "There is no owner yet, so no access review can start."},
    "review_nothing": {"zh": "目前没有任何有效授权，无需审核。",
                       "en": "There are no live grants, so there is nothing to review."},
    "review_none": {"zh": "还没有发起过权限审核。发送 `权限审核 开始` 发起。",
                    "en": "No access review has been started yet. Send `review start`."},
    "review_started": {"zh": "已发起权限审核 {id}：{n} 项授权，{admins} 位管理员各收到一张审核卡片，"
                             "截止 {deadline}。",
                       "en": "Access review {id} started: {n} grants; {admins} admin(s) each "
                             "got a review card. Deadline: {deadline}."},
    "review_cron_skipped": {"zh": "定期权限审核未发起：{why}",
                            "en": "The scheduled access review did not start: {why}"},
    "review_card_title": {"zh": "权限审核 {id}", "en": "Access review {id}"},
    "review_card_intro": {"zh": "{who}，请审核以下 {n} 项由你负责的授权（截止 {deadline}）。"
                                "每项选择“保留”或“移除”：",
                          "en": "{who}, please review these {n} grants you are responsible for "
                                "(deadline {deadline}). Keep or remove each:"},
    "review_item": {"zh": "{i}. {holder}：{name}{until} · {decision}",
                    "en": "{i}. {holder}: {name}{until} · {decision}"},
    "review_until": {"zh": "（至 {at}）", "en": " (until {at})"},
    "review_undecided": {"zh": "待审核", "en": "to review"},
    "review_decided_keep": {"zh": "已保留（{who} {at}）", "en": "kept ({who}, {at})"},
    "review_decided_remove": {"zh": "已移除（{who} {at}）", "en": "removed ({who}, {at})"},
    "review_decided_unreviewed_keep": {"zh": "未审核，按策略保留", "en": "not reviewed, kept by policy"},
    "review_decided_unreviewed_revoke": {"zh": "未审核，按策略撤销",
                                         "en": "not reviewed, revoked by policy"},
    "review_status_pending": {"zh": "审核中", "en": "In review"},
    "review_status_done": {"zh": "你已全部审核", "en": "All reviewed"},
    "review_status_applied": {"zh": "审核已结束", "en": "Review closed"},
    "review_status_cancelled": {"zh": "审核已取消", "en": "Review cancelled"},
    "review_progress": {"zh": "已审核 {done}/{total}", "en": "{done}/{total} reviewed"},
    "review_closed_click": {"zh": "权限审核 {id} 已结束，不能再更改。",
                            "en": "Access review {id} is closed; nothing can change now."},
    "review_no_item": {"zh": "这张卡片上没有第 {item} 项。", "en": "There is no item {item} here."},
    "review_not_yours": {"zh": "这一项只能由负责的管理员审核：{who}。",
                         "en": "Only the admin responsible may review this: {who}."},
    "review_already_decided": {"zh": "第 {i} 项已处理：{decision}。未做更改。",
                               "en": "Item {i} has already been decided: {decision}. Nothing changed."},
    "review_click_kept": {"zh": "已保留 {n} 项。", "en": "Kept {n} item(s)."},
    "review_click_removed": {"zh": "已移除，授权已撤销。", "en": "Removed; the grant is revoked."},
    "review_removed_holder": {"zh": "你的授权 {name} 已在权限审核 {id} 中被移除。",
                              "en": "Your grant {name} was removed in access review {id}."},
    "review_remind": {"zh": "权限审核 {id}：你还有 {n} 项授权未审核，截止 {deadline}。请在审核卡片上处理。",
                      "en": "Access review {id}: {n} grant(s) are still waiting for your review; "
                            "deadline {deadline}. Please decide them on the review card."},
    "review_status_title": {"zh": "权限审核 {id} {state}", "en": "Access review {id} {state}"},
    "review_state_open": {"zh": "（进行中）", "en": "(open)"},
    "review_state_closed": {"zh": "（已结束）", "en": "(closed)"},
    "review_state_cancelled": {"zh": "（已取消）", "en": "(cancelled)"},
    "review_deadline": {"zh": "截止：{at}", "en": "Deadline: {at}"},
    "review_admin_line": {"zh": "- {who}：已审核 {done}/{total}",
                          "en": "- {who}: {done}/{total} reviewed"},
    "review_counts": {"zh": "保留 {kept} · 移除 {removed} · 待审核 {open} · 未审核保留 "
                            "{unreviewed_kept} · 未审核撤销 {unreviewed_revoked}",
                      "en": "kept {kept} · removed {removed} · to review {open} · unreviewed "
                            "kept {unreviewed_kept} · unreviewed revoked {unreviewed_revoked}"},
    "review_unreviewed_line": {"zh": "- {i}. {holder}：{name}", "en": "- {i}. {holder}: {name}"},
    "review_unreviewed_kept": {"zh": "权限审核 {id} 已到期：{n} 项授权无人审核，按策略保留：",
                               "en": "Access review {id} reached its deadline: {n} grant(s) "
                                     "were not reviewed and are kept by policy:"},
    "review_alert_what": {"zh": "权限审核 {id} 到期", "en": "access review {id} deadline"},
    "review_alert_why": {"zh": "{n} 项授权无人审核，已按策略保留",
                         "en": "{n} grant(s) not reviewed, kept by policy"},
    "review_policy_keep": {"zh": "未审核的授权保留", "en": "unreviewed grants are kept"},
    "review_policy_revoke": {"zh": "未审核的授权撤销", "en": "unreviewed grants are revoked"},
    "review_summary": {"zh": "权限审核 {id} 已结束（{policy}）。",
                       "en": "Access review {id} is closed ({policy})."},
    "review_summary_all_reviewed": {"zh": "权限审核 {id} 的每一项授权都已审核，审核已结束。",
                                    "en": "Every grant in access review {id} has been "
                                          "reviewed, so the review is closed."},
    "review_closed_now": {"zh": "这是最后一项：权限审核 {id} 已全部完成，现已结束。",
                          "en": "That was the last item: access review {id} is complete "
                                "and now closed."},
    "review_describe": {"zh": "权限审核：{n} 项授权", "en": "access review of {n} grants"},
    "review_subject": {"zh": "{n} 项授权，{admins} 位管理员审核",
                       "en": "{n} grants, reviewed by {admins} admin(s)"},
})

__all__ = ["assign_items", "card_suffix", "next_fire", "router", "schedule_review"]
