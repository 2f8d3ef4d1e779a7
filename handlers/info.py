"""Read-only commands anyone may run: help, whoami, admins."""

from __future__ import annotations

from bot.core.commands import Admins, Help, WhoAmI, render_help
from bot.core.domain.members import ADMIN, OWNER, MemberView, Sender
from bot.core.domain.permissions import sources_of
from bot.core.escape import Md, joined, person
from bot.dispatch.context import CommandRouter, Context
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


@router.command(WhoAmI, reads_only=True)
async def whoami(cmd: WhoAmI, ctx: Context) -> None:
    m = ctx.sender
    out = [f"### {ctx.t('whoami_title')}",
           ctx.t("whoami_level", name=m.name or m.user_id, user_id=m.user_id,
                 level=ctx.t(f"level_{m.level}")),
           ctx.t("whoami_role", role=m.role) if m.role else ctx.t("whoami_no_role")]
    lines = await permission_lines(ctx, m)
    out += [ctx.t("whoami_perms"), *lines] if lines else [ctx.t("whoami_no_perms")]
    await ctx.reply("\n\n".join(out[:3]) + "\n\n" + "\n".join(out[3:]), markdown=True,
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
