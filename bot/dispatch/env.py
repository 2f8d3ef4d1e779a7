"""What request code and due work act through: a unit of work, the settings, the time, and
the sends and audit entries they add to the transaction (``Context.env()`` gives one to a
command; the due runner opens one per job). Its own module so that the command context
(bot.dispatch.context) and the request machinery (bot.approvals.engine) both use it without a circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.config import Settings
from bot.core.escape import Md, person
from bot.core.faults import Faults
from bot.core.lang import Lang
from bot.core.sends import CardSpec, Reply
from storage.db import UnitOfWork
from storage.models import Member, Request


@dataclass
class Env:
    """What request code needs besides a unit of work."""

    uow: UnitOfWork
    settings: Settings
    now: datetime
    faults: Faults
    message_id: str | None = None
    lang_override: Lang | None = None
    # The conversations messages were sent to through this Env (and its for_request copies):
    # a command's own confirmation is left out where a notice already said the same there.
    said: list[str] = field(default_factory=list)

    @property
    def corp_id(self) -> str:
        return self.settings.org.corp_id

    @property
    def lang(self) -> Lang:
        return self.lang_override or self.settings.locale.lang

    def for_request(self, req: Request) -> Env:
        """The same, speaking the language the request was made in."""
        lang = req.payload.get("lang")
        if lang in ("zh", "en") and lang != self.lang:
            return Env(self.uow, self.settings, self.now, self.faults, self.message_id, lang,
                       self.said)
        return self

    async def send(self, reply: Reply) -> None:
        self.said.append(reply.conversation_key)
        await self.uow.outbox.add("reply", reply.conversation_key, reply.payload(), self.now,
                                  source_message_id=self.message_id)

    async def card(self, spec: CardSpec) -> None:
        await self.uow.outbox.add("card", spec.conversation_key, spec.payload(), self.now,
                                  source_message_id=self.message_id)

    async def audit(self, actor: str, action: str, result: str, **kw: Any) -> None:
        await self.uow.audit.append(self.corp_id, self.now, actor_id=actor, action=action,
                                    result=result, message_id=self.message_id, **kw)

    async def names(self, *user_ids: str) -> dict[str, Md]:
        rows = (await self.uow.session.execute(
            select(Member.user_id, Member.name).where(
                Member.corp_id == self.corp_id, Member.user_id.in_(set(user_ids)))
        )).all()
        found = {u: n for u, n in rows}
        # Directory names are user-controlled: escaped once here, for chat and cards alike.
        return {u: person(found.get(u), u) for u in user_ids}
