"""``next`` / ``下一页`` (also ``more`` / ``更多``): the next page of the sender's last long
answer in this conversation (whoami, who-has, pending, audit, template show).

Where the sender is comes from the store (``paged_answers``, written by each page of more
than one, see bot/dispatch/paging.py), so it survives a restart and any replica answers.
The page is read again now, with the authority the answer needs now: an admin who is no
longer one cannot page on through who-has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot.core.commands import NextPage
from bot.dispatch.authority import admin_conversation_ok, command_word, has_authority
from bot.dispatch.context import CommandRouter, Context, Localized, UserError
from bot.dispatch.paging import PastTheEnd
from handlers.approvals import pending_page
from handlers.audit import audit_page
from handlers.info import whoami_page
from handlers.permissions import who_has_page
from handlers.templates import template_show_page

router = CommandRouter()

Page = Callable[[Context, Mapping[str, Any], int], Awaitable[None]]

# Each paged answer by its cursor kind: the page function, its command and the authority
# it needs (as the command's route says: admins, in an admin conversation, or anyone).
ANSWERS: Mapping[str, tuple[Page, str, str | None]] = {
    "whoami": (whoami_page, "whoami", None),
    "who_has": (who_has_page, "who-has", "admin"),
    "pending": (pending_page, "pending", None),
    "audit": (audit_page, "audit", "admin"),
    "template_show": (template_show_page, "template show", "admin"),
}


@router.command(NextPage, reads_only=True)
async def next_page(cmd: NextPage, ctx: Context) -> None:
    cur = await ctx.uow.paging.last(ctx.corp_id, ctx.message.conversation_key,
                                    ctx.sender.user_id)
    if cur is None or cur.kind not in ANSWERS:
        raise UserError("next_nothing")
    page, command, authority = ANSWERS[cur.kind]
    if not has_authority(ctx.sender.level, authority):
        raise UserError(f"need_{authority}", audit_action=f"{command}.refused", alert=True,
                        command=command_word(command, ctx.lang),
                        level=Localized(f"level_{ctx.sender.level}"))
    if authority is not None and not admin_conversation_ok(ctx.settings, ctx.message):
        raise UserError("admin_conversation_only", audit_action=f"{command}.refused")
    try:
        await page(ctx, cur.args, cur.page + 1)
    except PastTheEnd as e:
        raise UserError("next_done", pages=e.pages, first=e.first) from None
