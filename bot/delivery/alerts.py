"""Security alerts to ``org.alert_conversation``: refused sensitive attempts and refused
card clicks. Each alert is an outbox row held back for ``limits.alert_window``; when the first of
a burst falls due, the sender takes every alert of that conversation raised within the
window after it and sends them as one message, so a burst
of refusals becomes one notice instead of a flood. The refusal itself is audited by whoever
raises the alert.
"""

from __future__ import annotations

from datetime import datetime

from bot.config import Settings
from bot.core.clock import local
from bot.core.escape import literal, person
from bot.core.sends import Reply
from bot.texts.catalog import t
from storage.db import UnitOfWork


async def raise_alert(uow: UnitOfWork, settings: Settings, now: datetime, *, actor: str,
                      what: str, why: str) -> bool:
    """Queue one alert line (False when no alert conversation is configured)."""
    if not settings.org.alert_conversation:
        return False
    names = await uow.members.get(settings.org.corp_id, actor)
    return await queue_alert(uow, settings, now, who=person(names.name if names else None, actor),
                             what=what, why=why)


async def queue_alert(uow: UnitOfWork, settings: Settings, now: datetime, *, who: str,
                      what: str, why: str, what_cap: int = 120) -> bool:
    conv = settings.org.alert_conversation
    if not conv:
        return False
    lang = settings.locale.lang

    line = t("alert_line", lang, at=local(now, settings.policy.timezone, "%m-%d %H:%M:%S"),
             who=who, what=literal(what, what_cap), why=literal(why, 200))
    reply = Reply(text=line, conversation_id=conv, is_group=True, markdown=True,
                  title=t("alert_title", lang))
    await uow.outbox.add("reply", reply.conversation_key, {**reply.payload(), "merge": "alert", "lang": lang},
                         now, not_before=now + settings.limits.alert_window)
    return True

