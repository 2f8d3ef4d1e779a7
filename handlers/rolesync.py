"""DingTalk role sync's due work: the reconcile, on ``integrations.dingtalk_roles.reconcile``
(a crontab line, in ``policy.timezone``) and once after every start."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bot.config import Settings
from bot.delivery.rolesync import RECONCILE, RoleSync
from bot.dispatch.context import CommandRouter, Context
from bot.ports import DingTalkError
from handlers.review import next_fire
from storage.db import Database, UnitOfWork

log = logging.getLogger(__name__)
router = CommandRouter()


def _key(corp_id: str, what: str) -> str:
    return f"roles-reconcile:{corp_id}:{what}"


async def _schedule_next(uow: UnitOfWork, settings: Settings, now: datetime) -> None:
    cfg = settings.integrations.dingtalk_roles
    at = next_fire(cfg.reconcile, settings.policy.timezone, now)
    corp = settings.org.corp_id
    await uow.due.schedule(RECONCILE, at, {"corp_id": corp}, now,
                           dedupe_key=_key(corp, at.isoformat()))


async def schedule_reconcile(db: Database, settings: Settings, now: datetime) -> bool:
    """On start: a reconcile due now (replicas started in the same minute share it) and the
    next one on the cron. Nothing when the sync is off."""
    if not settings.integrations.dingtalk_roles.enabled:
        return False
    corp = settings.org.corp_id
    async with db.uow() as uow:
        await uow.due.schedule(RECONCILE, now, {"corp_id": corp, "start": True}, now,
                               dedupe_key=_key(corp, "start:" + now.strftime("%Y-%m-%dT%H:%M")))
        await _schedule_next(uow, settings, now)
        await uow.commit()
    return True


@router.due(RECONCILE)
async def due_roles_reconcile(payload: dict[str, Any], dctx: Context) -> None:
    """Read DingTalk (outside any transaction), then compare, audit, fix or report, and plan
    the next run in one commit with the row's done mark."""
    settings = dctx.settings
    if not settings.integrations.dingtalk_roles.enabled or dctx.client is None:
        async with dctx.transaction():
            return          # turned off since it was planned: nothing more is planned
    sync = RoleSync(dctx.db, settings, dctx.client)
    began = dctx.now
    try:
        actual = await sync.read_dingtalk(dctx.now)
    except DingTalkError as e:
        log.warning("DingTalk role reconcile could not read DingTalk: %s", e)
        await sync.alert_failure(e, dctx.now)
        async with dctx.transaction() as env:
            await _schedule_next(env.uow, settings, env.now)
        return
    async with dctx.transaction() as env:
        result = await sync.reconcile(env.uow, env.now, actual, sync.read_calls, began)
        await _schedule_next(env.uow, settings, env.now)
    log.info("DingTalk role reconcile: %d differences, %d fix calls queued, %d read calls",
             len(result.differences), result.calls, result.read_calls)


__all__ = ["RECONCILE", "router", "schedule_reconcile"]
