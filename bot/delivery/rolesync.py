"""DingTalk role sync (通讯录角色): Baton's mapped catalog roles kept in step in DingTalk.

- **On start** (:meth:`RoleSync.ensure`): find or create the role group
  (``integrations.dingtalk_roles.group``) and each mapped role in it; their DingTalk ids are
  kept in the store (``dingtalk_roles``).
- **A change** (:func:`queue_member_change`): in the transaction of the change, the mapped
  roles the member gained (and holds) or lost (and no longer holds through another source)
  become ``dingtalk_role`` outbox rows, one per ``addrolesforemps`` / ``removerolesforemps``
  call (at most 20 users and 20 roles; :func:`bot.core.domain.rolesync.plan_calls`). The
  outbox sends them, retries transient failures with backoff, and survives restarts.
- **Reconcile** (:meth:`RoleSync.reconcile`, the due job ``roles_reconcile`` on
  ``integrations.dingtalk_roles.reconcile`` and after every start): DingTalk's members of each
  mapped role (``topapi/role/simplelist``, 100 a page) against the store; every difference is
  audited and summarised to ``org.alert_conversation``; ``enforce`` queues the calls that fix
  DingTalk, ``report`` changes nothing.
- **Refused for a permission** (errcode 60011 / HTTP 403): the row is parked (FAILED at once,
  not retried) and the alert conversation is told once, until a role call succeeds again
  (the mark ``roles.denied``); the next reconcile after the operator grants the permission
  repairs whatever was parked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.config import Settings
from bot.core.domain.outbox import OutboxRow
from bot.core.domain.rolesync import (
    Difference,
    Op,
    RoleCall,
    change,
    differences,
    plan_calls,
    reconcile_calls,
)
from bot.delivery.alerts import queue_alert
from bot.ports import DingTalkError, PermissionDenied, Roles
from bot.texts.catalog import t
from storage.db import Database, UnitOfWork

log = logging.getLogger(__name__)

KIND = "dingtalk_role"                # the outbox kind of a role call
CONVERSATION = "dingtalk:roles"       # their outbox key: one queue, sent in order
DENIED_MARK = "roles.denied"          # set while DingTalk refuses role calls (alerted once)
DETAIL_CAP = 8                        # users named per role in a summary


class RoleIdsMissing(RuntimeError):
    """A role call for a mapped role whose DingTalk id is not known yet (the start's ensure
    failed): the row is retried, and each attempt tries the ensure again."""


# ---- in the transaction of a change ------------------------------------------------------

async def queue_calls(uow: UnitOfWork, now: datetime, calls: Iterable[RoleCall]) -> int:
    n = 0
    for call in calls:
        await uow.outbox.add(KIND, CONVERSATION, call.payload(), now)
        n += 1
    return n


async def queue_member_change(uow: UnitOfWork, settings: Settings, now: datetime,
                              user_id: str, *, gained: Iterable[str] = (),
                              lost: Iterable[str] = ()) -> int:
    """A member's roles changed (``gained`` / ``lost``, any names): queue the DingTalk calls
    that follow, in this transaction. Nothing when the sync is off or no mapped role moved.
    Returns the number of calls queued."""
    cfg = settings.integrations.dingtalk_roles
    gained, lost = set(gained), set(lost)
    mapped = set(cfg.map)
    if not cfg.enabled or not (gained | lost) & mapped:
        return 0
    held = await uow.rolesync.held_by(settings.org.corp_id, user_id, mapped, now)
    add, remove = change(gained, lost, held, mapped)
    edits: list[tuple[Op, str, str]] = [("add", r, user_id) for r in add]
    edits += [("remove", r, user_id) for r in remove]
    return await queue_calls(uow, now, plan_calls(edits))


# ---- the sync itself -----------------------------------------------------------------------

@dataclass(frozen=True)
class ReconcileResult:
    differences: tuple[Difference, ...]
    calls: int                  # fix calls queued (enforce)
    read_calls: int             # DingTalk calls spent reading


class RoleSync:
    """The DingTalk side: ensure, deliver a queued call, reconcile."""

    def __init__(self, db: Database, settings: Settings, roles: Roles) -> None:
        self.db, self.settings, self.roles = db, settings, roles
        self.cfg = settings.integrations.dingtalk_roles
        self.corp = settings.org.corp_id
        self.read_calls = 0

    # -- start
    async def ensure(self, now: datetime) -> dict[str, int]:
        """Find or create the group and every mapped role; store their ids; return
        catalog role -> DingTalk role id. Raises the port's errors."""
        groups = await self.roles.role_groups()
        self.read_calls += 1
        group = next((g for g in groups if g.name == self.cfg.group), None)
        group_id = group.group_id if group else await self.roles.add_role_group(self.cfg.group)
        ids: dict[str, int] = {}
        for role, name in sorted(self.cfg.map.items()):
            rid = group.role_id(name) if group else None
            if rid is None:
                rid = await self.roles.add_role(group_id, name)
                log.info("DingTalk role %s/%s created (id %s) for %s", self.cfg.group, name,
                         rid, role)
            ids[role] = rid
        async with self.db.uow() as uow:
            for role, rid in ids.items():
                await uow.rolesync.save_role(self.corp, role, self.cfg.map[role], rid, group_id,
                                             now)
            await uow.rolesync.clear_mark(self.corp, DENIED_MARK)
            await uow.commit()
        return ids

    async def start(self, now: datetime) -> bool:
        """On start: :meth:`ensure`, its failures alerted (a refusal once) and not fatal."""
        if not self.cfg.enabled:
            return False
        try:
            await self.ensure(now)
            return True
        except DingTalkError as e:
            log.warning("DingTalk roles not ensured on start: %s", e)
            await self.alert_failure(e, now)
            return False

    async def _ids(self, roles: Sequence[str], now: datetime) -> list[int]:
        async with self.db.uow() as uow:
            known = await uow.rolesync.role_ids(self.corp)
        if any(r not in known or known[r][0] != self.cfg.map.get(r) for r in roles):
            fresh = await self.ensure(now)
            return [fresh[r] for r in roles if r in fresh]
        return [known[r][1] for r in roles]

    # -- the outbox deliverer
    async def deliver(self, payload: dict[str, object], now: datetime) -> None:
        call = RoleCall.from_payload(payload)
        roles = [r for r in call.roles if r in self.cfg.map]   # unmapped since: dropped
        if not roles:
            log.info("role call for %s dropped: no longer mapped", call.roles)
            return
        ids = await self._ids(roles, now)
        if len(ids) != len(roles):
            raise RoleIdsMissing(f"no DingTalk id for {roles}")
        if call.op == "add":
            await self.roles.add_roles_for_users(ids, call.users)
        else:
            await self.roles.remove_roles_for_users(ids, call.users)

    # -- refusals
    async def parked(self, uow: UnitOfWork, row: OutboxRow, e: DingTalkError,
                     now: datetime) -> None:
        """The outbox parked a role call DingTalk refused for a permission: alert once."""
        await self._alert_denied(uow, e, now)

    async def _alert_denied(self, uow: UnitOfWork, e: DingTalkError, now: datetime) -> None:
        if await uow.rolesync.claim_mark(self.corp, DENIED_MARK, now, value=e.code):
            lang = self.settings.locale.lang
            await queue_alert(uow, self.settings, now, who="Baton",
                              what=t("roles_denied", lang, api=e.api, code=e.code),
                              why=t("roles_why", lang), what_cap=400)

    async def alert_failure(self, e: DingTalkError, now: datetime) -> None:
        async with self.db.uow() as uow:
            if isinstance(e, PermissionDenied):
                await self._alert_denied(uow, e, now)
            else:
                lang = self.settings.locale.lang
                await queue_alert(uow, self.settings, now, who="Baton",
                                  what=t("roles_failed", lang, api=e.api, code=e.code,
                                         message=e.message[:80]),
                                  why=t("roles_why", lang), what_cap=400)
            await uow.commit()

    # -- reconcile
    async def read_dingtalk(self, now: datetime) -> dict[str, set[str]]:
        """Who carries each mapped role in DingTalk (ensuring the roles first)."""
        before = self.read_calls
        ids = await self.ensure(now)
        actual: dict[str, set[str]] = {}
        for role, rid in sorted(ids.items()):
            members = await self.roles.role_members(rid)
            self.read_calls += max(1, -(-len(members) // 100))
            actual[role] = set(members)
        log.info("DingTalk roles read in %d calls", self.read_calls - before)
        return actual

    async def reconcile(self, uow: UnitOfWork, now: datetime,
                        actual: dict[str, set[str]], read_calls: int) -> ReconcileResult:
        """In the caller's transaction: compare, audit each difference, fix (enforce) by
        queueing calls, and summarise to the alert conversation."""
        desired = await uow.rolesync.holders(self.corp, self.cfg.map, now)
        diffs = differences(desired, actual)
        enforce = self.cfg.mode == "enforce"
        for d in diffs:
            await uow.audit.append(
                self.corp, now, actor_id="system:roles", action=f"roles.{d.kind}",
                result="applied" if enforce else "reported", target_id=d.user_id,
                after={"role": d.role, "dingtalk_role": self.cfg.map[d.role],
                       "fix": d.op if enforce else None})
        calls = await queue_calls(uow, now, reconcile_calls(diffs)) if enforce else 0
        if diffs:
            await queue_alert(uow, self.settings, now, who="Baton",
                              what=self._summary(diffs, calls), why=t(
                                  "roles_why", self.settings.locale.lang), what_cap=900)
        await uow.rolesync.clear_mark(self.corp, DENIED_MARK)
        return ReconcileResult(tuple(diffs), calls, read_calls)

    def _summary(self, diffs: Sequence[Difference], calls: int) -> str:
        lang = self.settings.locale.lang
        missing = [d for d in diffs if d.kind == "missing"]
        extra = [d for d in diffs if d.kind == "extra"]
        parts: list[str] = []
        for kind, group in (("missing", missing), ("extra", extra)):
            by_role: dict[str, list[str]] = {}
            for d in group:
                by_role.setdefault(d.role, []).append(d.user_id)
            for role, users in sorted(by_role.items()):
                shown = ", ".join(users[:DETAIL_CAP]) + (
                    f" (+{len(users) - DETAIL_CAP})" if len(users) > DETAIL_CAP else "")
                parts.append(str(t(f"roles_detail_{kind}", lang, role=self.cfg.map[role],
                                   users=shown)))
        key = "roles_summary_enforce" if self.cfg.mode == "enforce" else "roles_summary_report"
        return str(t(key, lang, n=len(diffs), missing=len(missing), extra=len(extra),
                     calls=calls, detail="; ".join(parts)))


__all__ = ["CONVERSATION", "DENIED_MARK", "KIND", "ReconcileResult", "RoleIdsMissing",
           "RoleSync", "queue_calls", "queue_member_change"]
