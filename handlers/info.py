"""Read-only commands anyone may run: help, whoami, admins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.commands import Admins, Help, WhoAmI, render_help
from bot.core.domain.members import ADMIN, OWNER, MemberView, Sender
from bot.core.domain.permissions import sources_of
from bot.core.escape import Md, joined, person
from bot.dispatch.context import CommandRouter, Context
from bot.dispatch.paging import LongAnswer, reply_page
from bot.texts.catalog import t
from handlers.permissions import catalog_of, permission_index, source_text

router = CommandRouter()


def _who(m: MemberView) -> Md:
    return person(m.name, m.user_id)


@router.command(Help, reads_only=True)
async def help_(cmd: Help, ctx: Context) -> None:
    await ctx.reply(render_help(cmd.topic, ctx.lang), markdown=True,
                    title="Baton 帮助" if ctx.lang == "zh" else "Baton help")


async def permission_lines(ctx: Context, member: Sender) -> list[str]:
    """Each permission the member holds, with where it comes from and when it ends."""

    cat = catalog_of(ctx.settings)
    tz = ctx.settings.policy.timezone
    view = await permission_index(ctx)
    held = (view.sources(member.user_id, ctx.now) if view is not None else
            sources_of(await ctx.uow.perms.holdings_of(member, ctx.now), cat, ctx.now))
    lines: list[str] = []
    for perm, srcs in held.items():
        lines.append(t("whoami_perm_line", ctx.lang, perm=cat.label(perm, ctx.lang),
                       source=joined(t("list_sep", ctx.lang),
                                     (source_text(s, ctx.lang, tz, cat) for s in srcs)),
                       expiry=""))
    return lines


WHOAMI_PER_PAGE = 40


@router.command(WhoAmI, reads_only=True)
async def whoami(cmd: WhoAmI, ctx: Context) -> None:
    await whoami_page(ctx, {}, cmd.page)


async def whoami_page(ctx: Context, args: Mapping[str, Any], page: int) -> None:
    """The sender's level and role, then their permissions (by name), a page at a time."""
    m = ctx.sender
    answer = LongAnswer("whoami", "whoami")
    lines = await permission_lines(ctx, m)
    w = answer.window(ctx.lang, len(lines), WHOAMI_PER_PAGE, page)
    head = [f"### {ctx.t('whoami_title')}",
            ctx.t("whoami_level", name=m.name or m.user_id, user_id=m.user_id,
                  level=ctx.t(f"level_{m.level}")),
            ctx.t("whoami_role", role=m.role) if m.role else ctx.t("whoami_no_role")]
    if not lines:
        head.append(ctx.t("whoami_no_perms"))
    elif w.paged:
        head.append(f"{ctx.t('whoami_perms')} {ctx.t('page_whoami_more', n=len(lines))}")
    else:
        head.append(ctx.t("whoami_perms"))
    await reply_page(ctx, answer, w, "\n\n".join(head), lines[w.start:w.stop],
                     title=ctx.t("whoami_title"))


@router.command(Admins)
async def admins(cmd: Admins, ctx: Context) -> None:
    people = await ctx.uow.members.admins_of(ctx.corp_id)
    owner = [p for p in people if p.level == OWNER]
    subs = [p for p in people if p.level == ADMIN]
    sep = ctx.t("list_sep")
    out = [f"### {ctx.t('admins_title')}",
           ctx.t("admins_owner", who=_who(owner[0])) if owner else ctx.t("admins_none_owner"),
           ctx.t("admins_admins", who=joined(sep, (_who(p) for p in subs))) if subs
           else ctx.t("admins_no_admins")]
    await ctx.reply("\n\n".join(out), markdown=True, title=ctx.t("admins_title"))
