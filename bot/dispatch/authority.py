"""Who may run a command, checked before its handler runs: every mention resolved, the
command routed, the sender's level, and (for admin commands) the conversation."""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.config import Settings
from bot.core.commands import UserRef
from bot.core.commands.words import primary
from bot.core.lang import Lang
from bot.dispatch.context import Context, Localized, Route, UserError
from bot.transport.inbound import IncomingMessage


def check(cmd: Any, route: Route | None, ctx: Context) -> Route:
    """The route ``cmd`` runs by, or the :class:`UserError` that refuses it."""
    name = type(cmd).command_name
    for i, ref in enumerate(user_refs(cmd), 1):
        if not ref.user_id:
            raise UserError("mention_unresolved", n=i)
    if route is None:
        raise UserError("not_available", command=name)
    # Authority first: a member's attempt is refused (audited, alerted) as such
    # wherever it is made, not just sent to the admin group.
    if not has_authority(ctx.sender.level, route.authority):
        raise UserError(f"need_{route.authority}", audit_action=f"{name}.refused",
                        alert=True, command=command_word(name, ctx.lang),
                        level=Localized(f"level_{ctx.sender.level}"))
    if route.admin_only and not admin_conversation_ok(ctx.settings, ctx.message):
        raise UserError("admin_conversation_only", audit_action=f"{name}.refused")
    return route


def user_refs(cmd: Any) -> list[UserRef]:
    refs: list[UserRef] = []
    for f in dataclasses.fields(cmd):
        v = getattr(cmd, f.name)
        if isinstance(v, UserRef):
            refs.append(v)
        elif isinstance(v, tuple):
            refs += [x for x in v if isinstance(x, UserRef)]
    return refs


def has_authority(level: str, authority: str | None) -> bool:
    if authority is None:
        return True
    if authority == "owner":
        return level == "owner"
    return level in ("owner", "admin")


def admin_conversation_ok(settings: Settings, msg: IncomingMessage) -> bool:
    allowed = settings.org.admin_conversations
    return not msg.is_group or not allowed or msg.conversation_id in allowed


def command_word(name: str, lang: Lang) -> str:
    """The command word a reply in ``lang`` names (授权 for grant in Chinese)."""
    try:
        return primary(name, lang)
    except KeyError:
        return name
