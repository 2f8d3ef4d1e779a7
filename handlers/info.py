"""Read-only commands anyone may run: help, whoami, admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.commands import Admins, Help, WhoAmI, render_help
from bot.i18n import Lang, t
from handlers.base import CommandRouter, Context
from storage.models import ADMIN, OWNER, Grant, Member, Template, TemplateAssignment

router = CommandRouter()


def _when(at: datetime, tz: str) -> str:
    return at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _who(m: Member) -> str:
    return f"{m.name} ({m.user_id})" if m.name else m.user_id


@router.command(Help)
async def help_(cmd: Help, ctx: Context) -> None:
    await ctx.reply(render_help(cmd.topic, ctx.lang), markdown=True,
                    title="Baton 帮助" if ctx.lang == "zh" else "Baton help")


async def permission_lines(ctx: Context, member: Member) -> list[str]:
    """Each permission the member holds, with where it comes from and when it ends."""
    lang: Lang = ctx.lang
    catalog = ctx.settings.catalog
    lines: list[str] = []

    def label(perm: str) -> str:
        names = catalog.permissions.get(perm)
        if names is None:
            return perm
        return f"{perm} {names.zh if lang == 'zh' else names.en}"

    def line(perm: str, source: str, expires: datetime | None = None) -> None:
        expiry = t("expires", lang, at=_when(expires, ctx.settings.policy.timezone)) if expires else ""
        lines.append(t("whoami_perm_line", lang, perm=label(perm), source=source, expiry=expiry))

    if member.role:
        for perm in catalog.roles.get(member.role, []):
            line(perm, t("source_role", lang, name=member.role))
    grants = (await ctx.uow.session.execute(
        select(Grant).where(Grant.corp_id == ctx.corp_id, Grant.user_id == member.user_id)
        .order_by(Grant.name)
    )).scalars()
    for g in grants:
        if g.expires_at is None or g.expires_at > ctx.now:
            line(g.name, t("source_grant", lang), g.expires_at)
    rows: Any = (await ctx.uow.session.execute(
        select(Template.name, Template.permissions)
        .join(TemplateAssignment, TemplateAssignment.template_id == Template.id)
        .where(Template.corp_id == ctx.corp_id, TemplateAssignment.user_id == member.user_id)
        .order_by(Template.name)
    )).all()
    for name, perms in rows:
        for perm in perms:
            line(perm, t("source_template", lang, name=name))
    return lines


@router.command(WhoAmI)
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
           ctx.t("admins_admins", who=sep.join(_who(p) for p in subs)) if subs
           else ctx.t("admins_no_admins")]
    await ctx.reply("\n\n".join(out), markdown=True, title=ctx.t("admins_title"))
