"""Owner transfer (主管理员转让): the command, the request kind, and what follows it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from bot.approvals.engine import NoLongerAllowed, open_request, staff_of
from bot.config import Settings
from bot.core.commands import TransferOwner
from bot.core.domain.members import ADMIN, MEMBER, OWNER, Staff
from bot.core.domain.permissions import effective
from bot.core.domain.requests import Request, RequestConflict, Requirement, State
from bot.core.domain.transfer import (
    OWNER_TRANSFER,
    TRANSFER_PERMISSION,
    DirectoryEntry,
    Person,
    check_transfer,
    transfer_requirements,
)
from bot.core.escape import Md, joined, person
from bot.core.sends import CardSpec, Reply
from bot.dispatch.context import CommandRouter, Context, UserError
from bot.ports import DingTalkError, Directory, NotFound
from bot.texts.catalog import MESSAGES, t
from bot.transport.cards import ack_update, create_and_deliver_body
from bot.transport.inbound import CardAction
from handlers.permissions import catalog_of
from storage.db import UnitOfWork
from storage.snapshots import take_snapshot

log = logging.getLogger(__name__)
router = CommandRouter()

VERIFY_BACKOFF = (timedelta(minutes=10), timedelta(minutes=30), timedelta(hours=1),
                  timedelta(hours=2), timedelta(hours=6), timedelta(hours=12), timedelta(hours=24))


async def holds(uow: UnitOfWork, settings: Settings, user_id: str, perm: str,
                now: datetime) -> bool:
    """Whether ``user_id`` effectively holds ``perm`` (role, grant or template)."""

    held = await uow.perms.holdings(settings.org.corp_id, user_id, now)
    return perm in effective(held, catalog_of(settings), now)


async def lookup_target(cmd: TransferOwner, client: Directory | None) -> dict[str, Any]:
    """Before the transaction: what DingTalk's directory says of the target."""
    if client is None:
        return {"error": "no_client"}
    try:
        user = await client.user_get(cmd.target.user_id)
    except NotFound:
        return {"found": False}
    except DingTalkError as e:
        log.warning("directory lookup of %s failed: %s", cmd.target.user_id, e)
        return {"error": e.code}
    return {"found": True, "active": bool(user.get("active", True)),
            "name": str(user.get("name") or "")}


@router.command(TransferOwner, admin_only=True, prepare=lookup_target)
async def transfer_owner(cmd: TransferOwner, ctx: Context) -> None:
    corp, me, target_id = ctx.corp_id, ctx.sender, cmd.target.user_id
    info: dict[str, Any] = ctx.prepared or {}
    if "error" in info:
        raise UserError("transfer_directory_unavailable")
    owner = await ctx.uow.members.owner_of(corp)
    target = await ctx.uow.members.get(corp, target_id)
    open_ = [r for r in await ctx.uow.requests.open_for(corp) if r.kind == OWNER_TRANSFER]
    problem = check_transfer(
        Person(me.user_id, me.level,
               await holds(ctx.uow, ctx.settings, me.user_id, TRANSFER_PERMISSION, ctx.now)),
        target_id,
        Person(target.user_id, target.level) if target else None,
        DirectoryEntry(info["active"]) if info.get("found") else None,
        owner.user_id if owner else None,
        ctx.settings.policy.owner_candidates,
        open_[0].id if open_ else None,
    )
    if problem is not None:
        raise UserError(f"transfer_{problem.code}", audit_action="owner_transfer.refused",
                        alert=problem.code == "no_authority", target=target_id,
                        who=person(info.get("name") or (target.name if target else None),
                                   target_id),
                        id=open_[0].public_id if open_ else "")
    assert owner is not None
    if target is None:
        target = await ctx.uow.members.upsert(corp, target_id, ctx.now, name=info.get("name"))
    else:
        ctx.uow.members.name_if_unnamed(target, info.get("name"))
    names = await ctx.names(owner.user_id, target_id)
    twin = next(iter(ctx.settings.org.admin_conversations), None) \
        if not ctx.message.is_group else None
    try:
        req = await open_request(
            ctx, kind=OWNER_TRANSFER, requester=me.user_id, target=target_id,
            conversation_id=ctx.message.conversation_id, is_group=ctx.message.is_group,
            reason=cmd.reason, payload={"owner": owner.user_id},
            ttl=ctx.settings.policy.approval_ttl,
            mention={u: names[u] for u in {owner.user_id, target_id} if u != me.user_id},
            # Asked one-to-one: the owner and the target see the card in the admin group
            # too, or, with no admin group, each of them one-to-one.
            twin_group=twin,
            copies_to=[u for u in (owner.user_id, target_id) if u != me.user_id]
            if not ctx.message.is_group and not twin else (),
        )
    except RequestConflict:
        raise UserError("transfer_transfer_open", target=target_id, id="") from None
    who = names[target_id] if me.user_id == owner.user_id else \
        joined(ctx.t("list_sep"), (names[owner.user_id], names[target_id]))
    await ctx.reply(ctx.t("transfer_created", id=req.public_id, who=who), markdown=True)


class OwnerTransfer:
    kind = OWNER_TRANSFER

    async def requirements(self, req: Request, env: Context) -> tuple[Requirement, ...]:
        # Re-read at click time: the owner is whoever the store says now, not at creation.
        return self.deciders(req, env, await staff_of(env))

    def deciders(self, req: Request, env: Context, staff: Staff) -> tuple[Requirement, ...]:
        owner = staff.owner
        owner_id = owner.user_id if owner else str(req.payload.get("owner", ""))
        if req.state == State.APPLIED.value:
            owner_id = str(req.payload.get("owner", owner_id))
        return transfer_requirements(req.requester_id, owner_id, req.target_id or "")

    async def apply(self, req: Request, env: Context) -> None:
        corp, target_id = env.corp_id, req.target_id or ""
        owner = await env.uow.members.owner_of(corp)
        if owner is None:
            raise RuntimeError("no owner to transfer from")
        target = await env.uow.members.get(corp, target_id)
        # What was checked when it was asked, again: days may have passed.
        if target is None or not target.active:
            raise NoLongerAllowed("target_inactive")
        if target.level == OWNER:
            raise NoLongerAllowed("target_is_owner")
        if env.settings.policy.owner_candidates == "admins" and target.level != ADMIN:
            raise NoLongerAllowed("target_not_eligible")
        snap = await take_snapshot(env.uow, corp, env.now, reason="owner_transfer",
                                   request_id=req.id)
        before = {"owner": owner.user_id, "target_level": target.level,
                  "previous_owner_level": owner.level}
        new_level = ADMIN if env.settings.policy.previous_owner == "admin" else MEMBER
        # Demote first: one owner per corp, always.
        await env.uow.members.set_level(owner, new_level, env.now)
        await env.uow.members.set_level(target, OWNER, env.now)
        await env.uow.requests.set_payload(
            req.id, {**req.payload, "previous_owner": owner.user_id, "snapshot": snap.id})
        await env.audit("system", "owner_transfer.apply", "applied", target_id=target_id,
                        request_id=req.id, before=before,
                        after={"owner": target_id, "previous_owner_level": new_level,
                               "snapshot": snap.id})

    async def describe(self, req: Request, env: Context) -> Md:
        return Md("")

    async def subject(self, req: Request, env: Context) -> str:
        return (await env.names(req.target_id or ""))[req.target_id or ""]

    async def after(self, req: Request, env: Context, state: State) -> None:
        group = bool(req.payload.get("is_group", True))
        names = await env.names(req.requester_id, req.target_id or "",
                                str(req.payload.get("owner", "")))
        where = Reply(text="", conversation_id=req.conversation_id, is_group=group,
                      user_id=req.requester_id)
        if state is State.APPLIED:
            await self._applied(req, env, names, where)
            return
        key = {"failed": "transfer_failed", "rejected": "transfer_rejected",
               "expired": "transfer_expired", "cancelled": "transfer_cancelled"}[state.value]
        target = names[req.target_id or ""]
        text = t(key, env.lang, id=req.public_id, target=target)
        why = f"transfer_{req.payload.get('error', '')}"
        if state is State.FAILED and why in MESSAGES:
            text = t("transfer_not_applied", env.lang, id=req.public_id,
                     why=t(why, env.lang, who=target, id=req.public_id))
        await env.send(Reply(text, req.conversation_id, group, req.requester_id, markdown=True))
        owner = str(req.payload.get("owner", ""))
        if state is State.FAILED and owner and (owner != req.requester_id or group):
            await env.send(Reply(text, "", False, owner, markdown=True))

    async def _applied(self, req: Request, env: Context, names: dict[str, Md], where: Reply) -> None:
        new = req.target_id or ""
        s = env.settings
        duties = t("transfer_duties", env.lang, name=names.get(new, new), id=req.public_id,
                   review=_days(s.policy.post_transfer_review))
        # The checklist (rotate the AppSecret...) is for the new owner only: one-to-one. The
        # conversation of the request gets a short note that it is done.
        await env.send(Reply(duties, "", False, new, markdown=True,
                             title=t("transfer_duties_title", env.lang)))
        if where.conversation_key != f"user:{new}":
            await env.send(Reply(t("transfer_applied", env.lang, id=req.public_id,
                                   name=names.get(new, new)),
                                 req.conversation_id, where.is_group, req.requester_id,
                                 markdown=True, at=(new,) if where.is_group else ()))
        if s.dingtalk.exclusive_accounts:
            await env.uow.due.schedule("transfer_dingtalk_change", env.now,
                                       {"request_id": req.id}, env.now,
                                       dedupe_key=f"dtchange:{req.id}")
        else:
            await _console_card(req, env, names.get(new, new))
        await env.uow.due.schedule("transfer_verify", env.now + VERIFY_BACKOFF[0],
                                   {"request_id": req.id, "n": 0}, env.now,
                                   dedupe_key=f"verify:{req.id}:0")
        await env.uow.due.schedule("transfer_review", env.now + s.policy.post_transfer_review,
                                   {"request_id": req.id}, env.now,
                                   dedupe_key=f"review:{req.id}")


async def _console_card(req: Request, env: Context, new_name: str) -> None:
    """The console steps, with a "done" button, one-to-one to the previous owner."""
    s, prev = env.settings, str(req.payload.get("previous_owner", ""))
    track = f"{req.card_out_track_id}-console"
    params = {"title": t("console_title", env.lang, id=req.public_id),
              "markdown": t("console_steps", env.lang, target=new_name),
              "status": "pending", "request_id": req.public_id}
    body = create_and_deliver_body(
        template_id=s.dingtalk.card_template_id, robot_code=s.dingtalk.effective_robot_code,
        out_track_id=track, params=params, user_id=prev)
    await env.card(CardSpec("create", track, f"user:{prev}", body))
    await env.uow.requests.set_payload(req.id, {**req.payload, "console": True})


def _days(d: timedelta) -> str:
    return str(max(1, round(d.total_seconds() / 86400)))


async def console_done(req: Request, action: CardAction, env: Context) -> dict[str, Any]:
    """The previous owner says the console step is done: check DingTalk now."""
    prev = str(req.payload.get("previous_owner", ""))
    if action.user_id != prev:
        await env.audit(action.user_id, "owner_transfer.click_refused", "refused",
                        request_id=req.id, after={"reason": "not_previous_owner",
                                                  "action": action.action_id})
        names = await env.names(prev)
        return ack_update(None, {"notice": t("refuse_not_a_decider", env.lang, who=names[prev])})
    await env.uow.due.schedule("transfer_verify", env.now, {"request_id": req.id, "n": 0},
                               env.now, dedupe_key=f"verify:{req.id}:done:{action.message_id}")
    # The card keeps its button until DingTalk agrees (``due_verify`` retires it then): a
    # press before the console step is finished must not leave nothing to press afterwards.
    return ack_update(None, {"notice": t("console_checking", env.lang)})


@router.due("transfer_verify")
async def due_verify(payload: dict[str, Any], dctx: Context) -> None:
    """Does DingTalk show the new main administrator yet? Remind on a backoff until it does.

    Where the app may not read the admin list (no client, a permission or request error),
    there is nothing to check: verification ends, audited. A failure that may pass (5xx,
    rate limit, timeout) is checked again at the next backoff step, without a reminder."""
    listed: list[dict[str, Any]] | None = None
    failure: DingTalkError | None = None
    if dctx.client is not None:
        try:
            listed = await dctx.client.list_admins()
        except DingTalkError as e:
            failure = e
            log.warning("cannot read DingTalk's admin list (%s)", e)
    n = int(payload.get("n", 0))
    async with dctx.transaction() as env:
        req = await env.uow.requests.find(int(payload["request_id"]))
        if req is None or req.state != State.APPLIED.value or req.payload.get("verified"):
            return
        new, prev = req.target_id or "", str(req.payload.get("previous_owner", ""))
        if listed is None:
            if failure is not None and failure.retryable:
                await _verify_again(env, req.id, n)
                return
            await env.audit("system", "owner_transfer.dingtalk_unverifiable", "skipped",
                            target_id=new, request_id=req.id,
                            after={"why": f"{type(failure).__name__}: {failure.code}"
                                   if failure else "no DingTalk client"})
            return
        mains = {str(a.get("userid")) for a in listed if int(a.get("sys_level", 0)) == 1}
        if new in mains:
            req = await env.uow.requests.set_payload(
                req.id, {**req.payload, "verified": env.now.isoformat()})
            await env.audit("system", "owner_transfer.dingtalk_verified", "ok",
                            target_id=new, request_id=req.id)
            if req.payload.get("console") or not env.settings.dingtalk.exclusive_accounts:
                # The console-steps card: its "done" button has nothing left to do.
                track = f"{req.card_out_track_id}-console"
                await env.card(CardSpec("update", track, f"card:{track}",
                                        {"params": {"status": "done"}}))
            names = await env.names(new)
            await env.send(Reply(t("verify_ok", env.lang, id=req.public_id, name=names[new]),
                                 req.conversation_id, bool(req.payload.get("is_group", True)),
                                 req.requester_id, markdown=True))
            return
        names = await env.names(new)
        await env.send(Reply(t("verify_pending", env.lang, id=req.public_id, name=names[new]),
                             "", False, prev, markdown=True))
        await _verify_again(env, req.id, n)


async def _verify_again(env: Context, request_id: int, n: int) -> None:
    """Check #``n`` did not settle it: the next one, one step further along the backoff."""
    gap = VERIFY_BACKOFF[min(n + 1, len(VERIFY_BACKOFF) - 1)]
    await env.uow.due.schedule("transfer_verify", env.now + gap,
                               {"request_id": request_id, "n": n + 1}, env.now,
                               dedupe_key=f"verify:{request_id}:{n + 1}")


@router.due("transfer_dingtalk_change")
async def due_dingtalk_change(payload: dict[str, Any], dctx: Context) -> None:
    """Exclusive-account corps: change DingTalk's main administrator through the API. Where
    DingTalk refuses (no permission, a bad request), the previous owner gets the console
    steps instead, as in other corps; a failure that may pass is retried by the runner."""
    async with dctx.db.uow() as uow:
        found = await uow.requests.find(int(payload["request_id"]))
        who = (str(found.payload.get("previous_owner", "")), found.target_id or "") \
            if found is not None else None
    if who is None or dctx.client is None:
        return
    try:
        await dctx.client.change_main_admin(*who, dctx.settings.org.corp_id)
    except DingTalkError as e:
        if e.retryable:
            raise
        async with dctx.transaction() as tx:
            req = await tx.uow.requests.find(int(payload["request_id"]))
            if req is None:
                return
            env = tx.for_request(req)
            await env.audit("system", "owner_transfer.dingtalk_change_refused", "refused",
                            target_id=req.target_id, request_id=req.id,
                            after={"error": f"{type(e).__name__}: {e.code}"})
            names = await env.names(req.target_id or "")
            await _console_card(req, env, names[req.target_id or ""])
        return
    rid = int(payload["request_id"])
    async with dctx.transaction() as env:
        await env.audit("system", "owner_transfer.dingtalk_changed", "applied",
                        target_id=who[1], request_id=rid)
        await env.uow.due.schedule("transfer_verify", env.now, {"request_id": rid, "n": 0},
                                   env.now, dedupe_key=f"verify:{rid}:api")


@router.due("transfer_review")
async def due_review(payload: dict[str, Any], dctx: Context) -> None:
    async with dctx.transaction() as env:
        req = await env.uow.requests.find(int(payload["request_id"]))
        if req is None or req.state != State.APPLIED.value:
            return
        owner = await env.uow.members.owner_of(env.corp_id)
        who = owner.user_id if owner else req.target_id or ""
        await env.send(Reply(t("transfer_review_due", env.lang, id=req.public_id), "", False,
                             who, markdown=True))


router.request_kind(OwnerTransfer())
router.request_action(OWNER_TRANSFER, "console")(console_done)

__all__ = ["router"]
