"""Commands and due work shared by every request kind: pending, cancel, expiry, reminders."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.approvals.engine import cancel, click, expire, open_requests_for
from bot.core.clock import local
from bot.core.commands import Cancel, Pending
from bot.dispatch.context import CommandRouter, Context, UserError
from bot.dispatch.paging import LongAnswer, reply_page
from bot.texts.catalog import t
from handlers.reminders import remind_due

router = CommandRouter()
router.card_action("request")(click)


PENDING_PER_PAGE = 20


@router.command(Pending)
async def pending(cmd: Pending, ctx: Context) -> None:
    await pending_page(ctx, {}, cmd.page)


async def pending_page(ctx: Context, args: Mapping[str, Any], page: int) -> None:
    """Open requests the sender may decide or made, by request number, a page at a time
    (names and subjects are read for the page's requests only)."""
    rows = await open_requests_for(ctx, ctx.sender.user_id)
    if not rows:
        await ctx.reply(ctx.t("pending_none"))
        return
    answer = LongAnswer("pending", "pending")
    w = answer.window(ctx.lang, len(rows), PENDING_PER_PAGE, page)
    shown = rows[w.start:w.stop]
    names = await ctx.names(*{r.requester_id for r, _ in shown})
    lines = []
    for req, mine_to_decide in shown:
        lines.append(ctx.t(
            "pending_line", id=req.public_id, kind=t(f"kind_{req.kind}", ctx.lang),
            requester=names.get(req.requester_id, req.requester_id),
            target=await ctx.request_kinds.kind(req.kind).subject(req, ctx),
            expires=local(req.expires_at, ctx.settings.policy.timezone),
            role=ctx.t("pending_yours_to_decide" if mine_to_decide else "pending_you_asked")))
    head = f"### {ctx.t('pending_title')}"
    if w.paged:
        head += f" ({len(rows)})"
    await reply_page(ctx, answer, w, head, lines, title=ctx.t("pending_title"))


@router.command(Cancel)
async def cancel_request(cmd: Cancel, ctx: Context) -> None:
    m = re.fullmatch(r"R-(\d+)", cmd.request_id)
    req = await ctx.uow.requests.find(int(m.group(1)), for_update=True) if m else None
    if req is None or req.corp_id != ctx.corp_id:
        raise UserError("cancel_unknown", id=cmd.request_id)
    owner = await ctx.uow.members.owner_of(ctx.corp_id)
    if ctx.sender.user_id not in (req.requester_id, owner.user_id if owner else None):
        raise UserError("cancel_not_allowed", id=req.public_id,
                        audit_action=f"{req.kind}.cancel_refused")
    await cancel(req, ctx, ctx.sender.user_id)
    # One message for one action: where the request's own notice ("... was cancelled;
    # nothing changed") went to this conversation, it is the confirmation.
    if ctx.message.conversation_key not in ctx.said:
        await ctx.reply(ctx.t("cancel_done", id=req.public_id))


@router.due("request_expire")
async def due_expire(payload: dict[str, Any], dctx: Context) -> None:
    async with dctx.transaction() as env:
        await expire(int(payload["request_id"]), env)


@router.due("request_remind")
async def due_remind(payload: dict[str, Any], dctx: Context) -> None:
    async with dctx.transaction() as env:
        await remind_due(dctx.row_id, payload, env)


