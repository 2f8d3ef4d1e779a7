"""The request machinery, built once and used by every kind of request.

A request kind (owner transfer here; sensitive grants, admin changes and imports later)
supplies its requirements, how to apply it and its texts. This module does the rest: create
the request and its card, judge clicks by the clicker's userId against the stored request
(re-checked at click time, under a row lock), record votes, apply in the same transaction,
update the card in place (in the ack and through the card API, so any replica converges),
audit every transition and every refusal, cancel, expire.

The kinds come from the family routers (``router.request_kind(...)``), through the
Context's ``request_kinds``; a request is the core value ``Request``, changed only through
the request repository's writes, each of which returns the request as it now is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from bot.approvals.cards import CardView, out_track_id, render_request_card
from bot.core.cardref import CardKind, CardRef, CardRefError, letters
from bot.core.clock import local
from bot.core.domain.members import Staff
from bot.core.domain.reminders import in_quiet, next_allowed, reminder_gap
from bot.core.domain.requests import (
    Decision,
    Effect,
    Event,
    EventKind,
    Request,
    RequestView,
    Requirement,
    State,
    Vote,
    decide,
    progress,
    waiting_for,
    yes_votes,
)
from bot.core.escape import Md, joined
from bot.core.sends import CardSpec
from bot.delivery.alerts import raise_alert
from bot.dispatch.context import Context, UserError
from bot.texts.catalog import t
from bot.transport.cards import ack_update, create_and_deliver_body
from bot.transport.inbound import CardAction
from bot.transport.workdays import later

log = logging.getLogger(__name__)

TWIN = "group"     # the suffix of a request card's twin in an admin group
COPY = "dm"        # the prefix of the suffixes of one-to-one copies of a request card
MAX_COPIES = 26 * 26


class NoLongerAllowed(Exception):
    """Raised by a kind's ``apply``: a prerequisite checked when the request was made no
    longer holds (say, the target of an owner transfer lost admin meanwhile). The request
    ends FAILED with nothing changed, and ``code`` (kept as the payload's ``error``) says why."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@runtime_checkable
class KnowsDeciders(Protocol):
    """A request kind whose requirements follow from the request and the owner and admins
    alone (:class:`Staff`, read once): a list of many requests (``pending``) asks it for each
    instead of ``requirements``, which reads the store per request. Its ``requirements`` must
    be ``deciders(req, env, await staff_of(env))`` (or need no staff at all), so both agree."""

    def deciders(self, req: Request, env: Context, staff: Staff) -> tuple[Requirement, ...]: ...


class NothingToDecide:
    """A request kind that no one votes on (stored already decided, or judged elsewhere, as
    an access review's items are): no requirements, nothing to apply, nothing after. A kind
    subclasses it and says how it is described."""

    async def requirements(self, req: Request, env: Context) -> tuple[Requirement, ...]:
        return ()

    def deciders(self, req: Request, env: Context, staff: Staff) -> tuple[Requirement, ...]:
        return ()

    async def apply(self, req: Request, env: Context) -> None:
        return None

    async def after(self, req: Request, env: Context, state: State) -> None:
        return None


async def staff_of(env: Context) -> Staff:
    """The owner and the admins as they are now (one read)."""
    return Staff(tuple(await env.uow.members.admins_of(env.corp_id)))


def _view(req: Request, requirements: tuple[Requirement, ...],
          votes: tuple[Vote, ...]) -> RequestView:
    return RequestView(
        id=req.id, kind=req.kind, state=req.state, requester=req.requester_id,
        expires_at=req.expires_at, requirements=requirements, votes=votes,
    )


async def view_of(req: Request, env: Context) -> RequestView:
    kind = env.request_kinds.kind(req.kind)
    votes = await env.uow.requests.votes_of(req.id)
    return _view(req, await kind.requirements(req, env), votes)


async def card_params(req: Request, view: RequestView, env: Context) -> dict[str, str]:
    people = {req.requester_id, req.target_id or "", *(v.voter for v in view.votes)}
    for r in view.requirements:
        people |= r.who
    if req.decided_by:
        people.add(req.decided_by)
    names = await env.names(*(p for p in people if p))
    agreed = [names.get(p, p) for r in view.requirements for p in yes_votes(view, r)]
    waiting = [names.get(p, p) for p in waiting_for(view)]
    cv = CardView(
        request_id=req.public_id, kind=req.kind, state=view.state, lang=env.lang,
        tz=env.settings.policy.timezone, requester=names.get(req.requester_id, req.requester_id),
        target=names.get(req.target_id or "", req.target_id or ""), reason=req.reason,
        expires_at=req.expires_at, progress=progress(view), agreed=tuple(agreed),
        waiting_for=tuple(waiting),
        decided_by=names.get(req.decided_by or "", req.decided_by or "") if req.decided_by else "",
        decided_at=req.decided_at, detail=await env.request_kinds.kind(req.kind).describe(req, env),
    )
    return render_request_card(cv)


def copy_suffix(n: int) -> str:
    """The copy tag of the ``n``-th one-to-one copy of a request card: dma, dmb, ..."""
    return COPY + letters(n)


def copy_tracks(req: Request) -> list[tuple[str, str]]:
    """(outTrackId, userId) of every copy of the request's card: the admin-group twin
    (userId empty) and the one-to-one copies to deciders."""
    base = CardRef.unpack(req.card_out_track_id or "")
    out = [(CardRef.request(base.corp, base.id, TWIN).pack(), "")] if req.payload.get("twin") \
        else []
    out += [(CardRef.request(base.corp, base.id, copy_suffix(i)).pack(), str(u))
            for i, u in enumerate(req.payload.get("copies", []))]
    return out


def conversation_key(req: Request) -> str:
    if req.payload.get("is_group", True):
        return f"group:{req.conversation_id}"
    return f"user:{req.requester_id}"


async def open_request(env: Context, *, kind: str, requester: str, target: str | None,
                       conversation_id: str, is_group: bool, reason: str,
                       payload: dict[str, Any], ttl: timedelta,
                       mention: dict[str, str] | None = None,
                       twin_group: str | None = None,
                       copies_to: Sequence[str] = ()) -> Request:
    """Create the request (raises RequestConflict when a constraint forbids a second one).

    ``twin_group``: also put the card in that group (a request made one-to-one, such as an
    import, so the approvers see it). ``copies_to``: also send the card one-to-one to each of
    these deciders (a request made one-to-one with no admin group to put it in). Every copy
    updates with the card and takes clicks."""
    if twin_group:
        payload = {**payload, "twin": twin_group}
    if copies_to:
        payload = {**payload, "copies": list(dict.fromkeys(copies_to))[:MAX_COPIES]}
    req = await env.uow.requests.create(
        corp_id=env.corp_id, kind=kind, state=State.PENDING, requester_id=requester,
        target_id=target, conversation_id=conversation_id, reason=reason,
        payload={**payload, "is_group": is_group, "lang": env.lang}, created_at=env.now,
        expires_at=env.now + ttl, source_message_id=env.message_id, savepoint=True,
    )
    card_track = out_track_id(env.corp_id, req.id)
    req = await env.uow.requests.set_track(req.id, card_track)
    view = await view_of(req, env)
    params = await card_params(req, view, env)
    body = create_and_deliver_body(
        template_id=env.settings.dingtalk.card_template_id,
        robot_code=env.settings.dingtalk.effective_robot_code,
        out_track_id=card_track, params=params,
        group_id=conversation_id if is_group else None,
        user_id=None if is_group else requester, at=mention,
    )
    await env.card(CardSpec("create", card_track, conversation_key(req), body))
    for track, user in copy_tracks(req):
        body = create_and_deliver_body(
            template_id=env.settings.dingtalk.card_template_id,
            robot_code=env.settings.dingtalk.effective_robot_code,
            out_track_id=track, params=params, group_id=None if user else twin_group,
            user_id=user or None, at=None if user else mention)
        await env.card(CardSpec("create", track, f"user:{user}" if user else f"group:{twin_group}",
                                body))
    await env.audit(requester, f"{kind}.requested", "pending", target_id=target,
                    request_id=req.id, after={"state": "pending", "reason": reason, **payload})
    await env.uow.due.schedule("request_expire", req.expires_at, {"request_id": req.id},
                               env.now, dedupe_key=f"expire:{req.id}")
    p = env.settings.policy
    remind_at = next_allowed(later(env.now, min(p.remind_every, ttl / 2), p.calendar, p.timezone),
                             p.quiet_hours, p.timezone)
    await env.uow.due.schedule("request_remind", remind_at, {"request_id": req.id}, env.now,
                               dedupe_key=f"remind:{req.id}:1")
    return req


async def _transition(req: Request, d: Decision, env: Context, actor: str) -> Request:
    """Store the decision's state (decided now by ``actor`` once it is past APPROVED) and
    audit it; returns the request as it now is."""
    before = req.state.value
    decided = d.state is not State.PENDING and d.state is not State.APPROVED
    req = await env.uow.requests.transition(req.id, d.state, by=actor or None,
                                            at=env.now if decided else None)
    await env.audit(actor or "system", f"{req.kind}.{d.state.value}", d.state.value,
                    target_id=req.target_id, request_id=req.id,
                    before={"state": before}, after={"state": d.state.value})
    return req


async def _refresh_card(req: Request, env: Context) -> dict[str, str]:
    """Update the request card and its copies in place. A request without one (an access
    review keeps its own cards, updated by its kind's ``after``) has nothing to update."""
    if not req.card_out_track_id:
        return {}
    view = await view_of(req, env)
    params = await card_params(req, view, env)
    await env.card(CardSpec("update", req.card_out_track_id, f"card:{req.card_out_track_id}",
                            {"params": params}))
    for track, _user in copy_tracks(req):
        await env.card(CardSpec("update", track, f"card:{track}", {"params": params}))
    return params


async def refresh_card(req: Request, env: Context) -> None:
    """Update the request's card and copies in place (say, its deciders changed)."""
    await _refresh_card(req, env.for_request(req))


async def finish(req: Request, env: Context, state: State) -> None:
    kind = env.request_kinds.kind(req.kind)
    await kind.after(req, env, state)
    await env.uow.due.cancel(f"expire:{req.id}")
    # Its reminders (the next one, and any held for quiet hours) would list a closed request.
    await env.uow.due.cancel_prefix(f"remind:{req.id}:")


async def _reread(req: Request, env: Context) -> Request:
    found = await env.uow.requests.find(req.id)
    if found is None:
        raise LookupError(f"request {req.id} is gone")
    return found


async def apply_approved(req: Request, env: Context, actor: str) -> tuple[State, Request]:
    """Apply an APPROVED request in a savepoint: APPLIED, or FAILED with nothing half-done.
    Returns the state and the request as it now is (the kind's ``apply`` may have written
    to its payload; a rollback undid that)."""
    kind = env.request_kinds.kind(req.kind)
    try:
        async with env.uow.savepoint():
            await kind.apply(req, env)
            env.faults.check(f"{req.kind}.apply")
    except Exception as e:
        # The savepoint's rollback undid what apply wrote; read the request again.
        req = await _reread(req, env)
        if isinstance(e, NoLongerAllowed):
            log.info("%s not applied: %s", req.public_id, e.code)
        else:
            log.exception("applying %s failed", req.public_id)
        d = decide(await view_of(req, env), Event(EventKind.APPLY_FAILED), env.now)
        req = await _transition(req, d, env, actor)
        error = e.code if isinstance(e, NoLongerAllowed) else type(e).__name__
        req = await env.uow.requests.set_payload(req.id, {**req.payload, "error": error})
        return State.FAILED, req
    req = await _reread(req, env)
    d = decide(await view_of(req, env), Event(EventKind.APPLIED), env.now)
    req = await _transition(req, d, env, actor)
    return State.APPLIED, req


def request_ref(raw: str, corp_id: str) -> CardRef | None:
    """The request card ``raw`` names in ``corp_id``; None for any other card."""
    try:
        ref = CardRef.unpack(raw)
    except CardRefError:
        return None
    return ref if ref.kind is CardKind.REQUEST and ref.corp == corp_id else None


async def click(action: CardAction, env: Context) -> dict[str, Any]:
    """Judge one click; return the ack's card update (public params + clicker's notice)."""
    ref = request_ref(action.out_track_id, env.corp_id)
    req = await env.uow.requests.find(ref.id, for_update=True) if ref else None
    if ref is None or req is None:
        return ack_update(None, {"notice": t("click_unknown_card", env.lang)})
    env = env.for_request(req)
    if ref.copy and ref.copy != TWIN and not ref.copy.startswith(COPY):
        handler = env.request_kinds.actions.get(f"{req.kind}:{ref.copy}")
        if handler is None:
            return ack_update(None, {"notice": t("click_unknown_card", env.lang)})
        return await handler(req, action, env)
    view = await view_of(req, env)
    d = decide(view, Event(EventKind.VOTE, action.user_id, action.action_id), env.now)
    if d.refusal is not None:
        notice = await refusal_text(req, d, env, action.user_id)
        forged = d.refusal.code in ("not_a_decider", "own_request", "wrong_button")
        await env.audit(action.user_id, f"{req.kind}.click_refused", "refused",
                        target_id=req.target_id, request_id=req.id,
                        after={"reason": d.refusal.code, "action": action.action_id,
                               "claimed_params": dict(action.params)} if forged else
                        {"reason": d.refusal.code, "action": action.action_id})
        if forged:
            await raise_alert(env.uow, env.settings, env.now, actor=action.user_id,
                              what=t("alert_click", env.settings.locale.lang,
                                     action=action.action_id, id=req.public_id),
                              why=notice)
        return ack_update(None, {"notice": notice})
    await env.uow.requests.add_vote(req.id, action.user_id, action.action_id, env.now)
    await env.audit(action.user_id, f"{req.kind}.vote", action.action_id,
                    target_id=req.target_id, request_id=req.id, after={"vote": action.action_id})
    final: State | None = None
    if d.state is not State.PENDING:
        req = await _transition(req, d, env, action.user_id)
        final = d.state
        if d.state is State.APPROVED and Effect.APPLY in d.effects:
            final, req = await apply_approved(req, env, action.user_id)
    if final is not None and final is not State.APPROVED:
        await finish(req, env, final)
    params = await _refresh_card(req, env)
    return ack_update(params, {"notice": t(f"click_ok_{action.action_id}", env.lang)})


async def refusal_text(req: Request, d: Decision, env: Context, actor: str) -> Md:
    r = d.refusal
    assert r is not None
    if r.code == "decided":
        names = await env.names(req.decided_by or "")
        at = req.decided_at
        if req.decided_by and at is not None:
            return t("refuse_decided_by", env.lang, who=names.get(req.decided_by, ""),
                     at=local(at, env.settings.policy.timezone, "%m-%d %H:%M"),
                     state=t(f"state_{req.state}", env.lang))
        if at is not None:      # ended by no one: expired (or a system step), at a time
            return t("refuse_decided_at", env.lang, state=t(f"state_{req.state}", env.lang),
                     at=local(at, env.settings.policy.timezone, "%m-%d %H:%M"))
        return t("refuse_decided", env.lang, state=t(f"state_{req.state}", env.lang))
    if r.code == "not_a_decider":
        view = await view_of(req, env)
        who = next(x for x in view.requirements if x.key == r.params["requirement"]).who
        names = await env.names(*who)
        return t("refuse_not_a_decider", env.lang,
                 who=joined(t("list_sep", env.lang), (names[w] for w in sorted(who))))
    if r.code == "not_your_button":
        return t("refuse_not_your_button", env.lang, yes=t(f"button_{r.params['yes']}", env.lang),
                 no=t(f"button_{r.params['no']}", env.lang))
    if r.code == "already_voted":
        return t("refuse_already_voted", env.lang,
                 action=t(f"action_{r.params['action']}", env.lang))
    return t(f"refuse_{r.code}", env.lang, **r.params)


async def cancel(req: Request, env: Context, actor: str) -> None:
    env = env.for_request(req)
    d = decide(await view_of(req, env), Event(EventKind.CANCEL, actor), env.now)
    if d.refusal is not None:
        raise UserError("cancel_not_open", id=req.public_id,
                        state=t(f"state_{req.state}", env.lang))
    req = await _transition(req, d, env, actor)
    await finish(req, env, d.state)
    await _refresh_card(req, env)


async def expire(request_id: int, env: Context) -> bool:
    req = await env.uow.requests.find(request_id, for_update=True)
    if req is None:
        return False
    env = env.for_request(req)
    d = decide(await view_of(req, env), Event(EventKind.EXPIRE), env.now)
    if d.refusal is not None:
        return False
    req = await _transition(req, d, env, "")
    await finish(req, env, d.state)
    await _refresh_card(req, env)
    return True


async def held_for_quiet_hours(env: Context, kind: str, payload: dict[str, Any], key: str) -> bool:
    """A reminder due before the quiet hours but run inside them (Baton was down, or behind)
    is not sent now: it is due again at their end (``key`` and that time name the new row).
    True when it was held."""
    p = env.settings.policy
    if not in_quiet(env.now, p.quiet_hours, p.timezone):
        return False
    later = next_allowed(env.now, p.quiet_hours, p.timezone)
    await env.uow.due.schedule(kind, later, payload, env.now,
                               dedupe_key=f"{key}:{later.isoformat()}")
    return True


async def schedule_next_reminder(req: Request, env: Context, n: int) -> None:
    """Reminder ``n`` went out now: the next one backs off (doubling), outside quiet hours."""
    p = env.settings.policy
    nxt = next_allowed(later(env.now, reminder_gap(n, p.remind_every, p.remind_max), p.calendar,
                             p.timezone), p.quiet_hours, p.timezone)
    if nxt < req.expires_at:
        await env.uow.due.schedule("request_remind", nxt, {"request_id": req.id, "n": n + 1},
                                   env.now, dedupe_key=f"remind:{req.id}:{n + 1}")


async def open_requests_for(env: Context, user_id: str) -> list[tuple[Request, bool]]:
    """Open requests ``user_id`` may decide (True) or made (False), by request number.

    Judged as a click would be (:func:`view_of`: the kind's requirements and the votes), but
    read in bulk: the votes of all open requests in one query, the owner and admins once for
    the kinds that say their deciders from them (:class:`KnowsDeciders`); any other kind is
    asked for its requirements request by request, as before."""
    opened = await env.uow.requests.open_with_votes(env.corp_id)
    staff = await staff_of(env) if opened else Staff(())
    out: list[tuple[Request, bool]] = []
    for req, votes in opened:
        kind = env.request_kinds.kind(req.kind)
        needs = kind.deciders(req, env, staff) if isinstance(kind, KnowsDeciders) \
            else await kind.requirements(req, env)
        may = user_id in waiting_for(_view(req, needs, votes))
        if may or req.requester_id == user_id:
            out.append((req, may))
    return out

