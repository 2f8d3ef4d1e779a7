"""First start: who is the owner, who are the admins.

In order: ``org.owner`` / ``org.admins`` from the configuration; else DingTalk's admin list
(``topapi/user/listadmin``: sys_level 1 is the main administrator, 2 a sub-administrator)
where the app may read it; else nothing, and the operator runs ``baton init --owner``.
Runs only while the corp has no owner, so a later start never overrides a transfer.
"""

from __future__ import annotations

import contextlib
import logging

from bot.config import Settings
from bot.core.clock import Clock
from bot.core.domain.members import ADMIN, OWNER
from bot.transport.openapi import DingTalkError, OpenApiClient
from storage.db import Database

log = logging.getLogger(__name__)


async def set_owner(db: Database, corp_id: str, owner: str, admins: list[str], clock: Clock,
                    *, source: str, names: dict[str, str] | None = None) -> bool:
    """Record the first owner and admins; False (and no change) when an owner exists."""
    names = names or {}
    now = clock.now()
    async with db.uow() as uow:
        # Replicas that start together on an empty store seed it once: the check and the
        # writes below run under one lock, so the second finds the owner the first recorded.
        await uow.serialise(f"bootstrap:{corp_id}")
        if await uow.members.owner_of(corp_id) is not None:
            return False
        await uow.members.upsert(corp_id, owner, now, level=OWNER, name=names.get(owner))
        for a in admins:
            if a != owner:
                await uow.members.upsert(corp_id, a, now, level=ADMIN, name=names.get(a))
        await uow.audit.append(corp_id, now, actor_id=f"system:{source}", action="bootstrap",
                               result="applied", target_id=owner,
                               after={"owner": owner, "admins": sorted(set(admins) - {owner})})
        await uow.commit()
    log.info("bootstrap from %s: owner %s, %d admins", source, owner, len(admins))
    return True


async def bootstrap(db: Database, settings: Settings, clock: Clock,
                    client: OpenApiClient | None) -> str:
    """Returns how the owner was settled: existing, config, dingtalk, or none."""
    corp = settings.org.corp_id
    async with db.uow() as uow:
        if await uow.members.owner_of(corp) is not None:
            return "existing"
    if settings.org.owner:
        if await set_owner(db, corp, settings.org.owner, settings.org.admins, clock,
                           source="config"):
            return "config"
        return "existing"  # another replica, starting at the same time, recorded it
    if client is not None and settings.org.bootstrap_from_dingtalk:
        try:
            listed = await client.list_admins()
        except DingTalkError as e:
            log.warning("cannot read DingTalk's admin list (%s); set org.owner or run "
                        "`baton init --owner <userId>`", e)
            return "none"
        mains = [str(a["userid"]) for a in listed if int(a.get("sys_level", 0)) == 1]
        subs = [str(a["userid"]) for a in listed if int(a.get("sys_level", 0)) == 2]
        if mains:
            names: dict[str, str] = {}
            for uid in mains + subs:
                with contextlib.suppress(DingTalkError):
                    names[uid] = str((await client.user_get(uid)).get("name") or "")
            if await set_owner(db, corp, mains[0], subs, clock, source="dingtalk",
                               names=names):
                return "dingtalk"
            return "existing"
    log.warning("no owner is known: set org.owner in the configuration or run "
                "`baton init --owner <userId>`")
    return "none"
