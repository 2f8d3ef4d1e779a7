"""Admin drift: an admin or owner change made in DingTalk's console, not through Baton.

DingTalk's ``org_admin_add`` / ``org_admin_remove`` events, and the daily sweep
(``drift.sweep``), read DingTalk's admin list (``topapi/user/listadmin``) and compare it with
the list Baton recorded last time (``bot.core.domain.drift`` says what counts). Each drift
becomes a request of kind ``admin_drift``: audited (``admin_drift.requested``) and alerted
with a card in the alert conversation (else the first admin group, else the owner
one-to-one) whose buttons are ``adopt`` and ``ignore``. Only the owner's click counts (the
request engine refuses, audits and alerts anyone else's). Adopt: Baton records the change
(``admin_add.apply`` / ``admin_remove.apply`` / ``owner_transfer.apply``, audited
``applied`` with ``{"via": "drift"}``). Ignore, or no answer before it expires: the next
daily sweep alerts it again while DingTalk and Baton still differ. A drift that no longer
holds (Baton caught up, or the console change was undone) is withdrawn. The first list ever
read by a sweep is the baseline: recorded, its differences from Baton told once in one
summary (no cards: nothing changed, it was so before Baton looked).

The sweep also checks every member who holds something against the directory and queues
an ``offboard`` for each one gone or inactive (handlers/offboarding.py), one transaction each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.approvals.engine import NoLongerAllowed, cancel, open_request, staff_of
from bot.config import Settings
from bot.core.domain.drift import (
    MAIN,
    OWNER_CHANGE,
    SUB,
    Drift,
    admin_levels,
    adoptable,
    adopted_level,
    find_drift,
    holds,
)
from bot.core.domain.members import ADMIN, MEMBER, OWNER, Staff
from bot.core.domain.requests import Request, Requirement, State
from bot.core.escape import Md, person
from bot.core.sends import Reply
from bot.delivery.alerts import queue_alert
from bot.dispatch.context import CommandRouter, Context
from bot.ports import DingTalkError, Directory, NotFound
from bot.texts.catalog import t
from bot.transport.inbound import ORG_ADMIN_ADD, ORG_ADMIN_REMOVE, OrgEvent
from handlers.review import next_fire
from storage.db import Database
from storage.snapshots import take_snapshot

log = logging.getLogger(__name__)
router = CommandRouter()

ADMIN_DRIFT = "admin_drift"
VIA = {"via": "drift"}


# ---- the request kind ----------------------------------------------------------------------

class AdminDrift:
    """The owner adopts (``adopt``) or ignores (``ignore``) one drift."""

    kind = ADMIN_DRIFT

    async def requirements(self, req: Request, env: Context) -> tuple[Requirement, ...]:
        return self.deciders(req, env, await staff_of(env))

    def deciders(self, req: Request, env: Context, staff: Staff) -> tuple[Requirement, ...]:
        owner = staff.owner
        who = frozenset({owner.user_id}) if owner is not None else frozenset()
        return (Requirement("owner", who, "adopt", "ignore", 1),)

    async def apply(self, req: Request, env: Context) -> None:
        uid, change = req.target_id or "", str(req.payload["change"])
        target = await env.uow.members.sender(env.corp_id, uid)
        if target is None or not target.active:
            raise NoLongerAllowed("inactive")
        if not adoptable(change, target.level):
            raise NoLongerAllowed("changed")
        want = adopted_level(change)
        owner = await env.uow.members.owner_of(env.corp_id)
        actor = owner.user_id if owner is not None else "system"
        if change == OWNER_CHANGE:
            if owner is None:
                raise NoLongerAllowed("changed")
            snap = await take_snapshot(env.uow, env.corp_id, env.now, reason="admin_drift",
                                       request_id=req.id)
            await env.uow.members.set_level(owner, ADMIN, env.now)     # one owner, always
            await env.uow.members.set_level(target, OWNER, env.now)
            await env.audit(actor, "owner_transfer.apply", "applied", target_id=uid,
                            request_id=req.id,
                            before={"owner": owner.user_id, "target_level": target.level},
                            after={"owner": uid, "previous_owner_level": ADMIN,
                                   "snapshot": snap.id, **VIA})
            return
        await env.uow.members.set_level(target, want, env.now)
        action = "admin_add.apply" if want == ADMIN else "admin_remove.apply"
        await env.audit(actor, action, "applied", target_id=uid, request_id=req.id,
                        before={"level": target.level}, after={"level": want, **VIA})

    async def describe(self, req: Request, env: Context) -> Md:
        uid = req.target_id or ""
        owner = str(req.payload.get("owner", ""))
        names = await env.names(uid, owner)
        return t(f"drift_describe_{req.payload['change']}", env.lang, who=names[uid],
                 owner=names[owner])

    async def subject(self, req: Request, env: Context) -> str:
        return (await env.names(req.target_id or ""))[req.target_id or ""]

    async def after(self, req: Request, env: Context, state: State) -> None:
        what = await self.describe(req, env)
        error = str(req.payload.get("error", ""))
        if f"drift_not_applied_{error}" in _TEXT_KEYS:
            error = t(f"drift_not_applied_{error}", env.lang)
        key = {State.APPLIED: "drift_adopted", State.REJECTED: "drift_ignored",
               State.EXPIRED: "drift_expired", State.CANCELLED: "drift_cancelled",
               State.FAILED: "drift_failed"}.get(state)
        if key is None:
            return
        group = bool(req.payload.get("is_group", True))
        await env.send(Reply(t(key, env.lang, id=req.public_id, what=what, error=error),
                             req.conversation_id, group, req.requester_id, markdown=True))


_TEXT_KEYS = ("drift_not_applied_changed", "drift_not_applied_inactive")
router.request_kind(AdminDrift())


# ---- opening, re-alerting, withdrawing ------------------------------------------------------

async def _open_drifts(env: Context) -> dict[tuple[str, str], Request]:
    return {(r.target_id or "", str(r.payload.get("change"))): r
            for r in await env.uow.requests.open_for(env.corp_id) if r.kind == ADMIN_DRIFT}


async def open_drift(env: Context, d: Drift, name: str | None = None) -> Request | None:
    """Alert drift ``d`` with an adopt / ignore card (None: one is open already, or there
    is no owner to decide). ``name``: the member's name in the directory."""
    if (d.user_id, d.change) in await _open_drifts(env):
        return None
    owner = await env.uow.members.owner_of(env.corp_id)
    if owner is None:
        return None
    await env.uow.members.upsert(env.corp_id, d.user_id, env.now, name=name)
    org = env.settings.org
    group = org.alert_conversation or (org.admin_conversations[0]
                                       if org.admin_conversations else None)
    names = await env.names(owner.user_id)
    return await open_request(
        env, kind=ADMIN_DRIFT, requester="system" if group else owner.user_id,
        target=d.user_id, conversation_id=group or owner.user_id, is_group=group is not None,
        reason="", payload={"change": d.change, "dingtalk_level": d.dingtalk_level,
                            "owner": owner.user_id},
        ttl=env.settings.policy.approval_ttl,
        mention={owner.user_id: names[owner.user_id]} if group else None)


async def reconcile(env: Context, listed: Mapping[str, int], *, daily: bool,
                    unrecorded: Mapping[str, int] | None = None,
                    names: Mapping[str, str] | None = None,
                    read_at: datetime | None = None) -> list[Request]:
    """Compare DingTalk's admin list ``listed`` with the one recorded (and record it): new
    drifts are alerted; open drifts that no longer hold are withdrawn; ``daily`` (the
    sweep): drifts ignored or left to expire that still hold are alerted again.
    ``unrecorded``: the list as it was before, when none was recorded yet (an event says
    what changed); without it, the list is recorded as the baseline. ``names``: directory
    names of members the store may not know yet. ``read_at``: when the read of ``listed``
    began (default: now); a list read before the one recorded is stale and changes
    nothing (two replicas read, the first reader commits last)."""
    names = names or {}
    corp = env.corp_id
    # Two replicas reconciling at once (two events) take turns: the second sees the first's list.
    await env.uow.serialise(f"dingtalk-admins:{corp}")
    read_at = read_at or env.now
    seen = await env.uow.drift.admin_list_seen(corp)
    if seen is not None and _aware(seen) > read_at:
        log.info("admin list read at %s is older than the one recorded (%s): not recorded",
                 read_at, seen)
        return []
    before = await env.uow.drift.admin_list(corp)
    if before is None:
        before = dict(unrecorded) if unrecorded is not None else None
    baton = await env.uow.drift.baton_levels(corp)
    await env.uow.drift.record_admin_list(corp, listed, read_at)
    if before is None:
        # The first list ever seen (say, the first sweep after an upgrade): the baseline.
        # What differs already is told once, in one summary; only later changes are drifts.
        await _baseline(env, listed, baton, names)
        return []
    found = find_drift(before, listed, baton)
    opened = [r for d in found
              if (r := await open_drift(env, d, names.get(d.user_id))) is not None]
    for (uid, change), req in (await _open_drifts(env)).items():
        d = Drift(uid, change, int(req.payload.get("dingtalk_level", 0)))
        if not holds(d, listed, baton):
            await cancel(req, env, "system")
    if daily:
        latest: dict[tuple[str, str], Request] = {}
        for r in await env.uow.requests.by_kind(corp, ADMIN_DRIFT):   # newest first
            latest.setdefault((r.target_id or "", str(r.payload.get("change"))), r)
        for (uid, change), r in latest.items():
            if r.state not in (State.REJECTED, State.EXPIRED):     # open, adopted, withdrawn
                continue
            d = Drift(uid, change, listed.get(uid, 0))
            if holds(d, listed, baton) and \
                    (again := await open_drift(env, d, names.get(uid))) is not None:
                opened.append(again)
    return opened


def _aware(at: datetime) -> datetime:
    """A time from the store (SQLite returns it naive, in UTC) comparable with the clock's."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def _baseline(env: Context, listed: Mapping[str, int], baton: Mapping[str, str],
                    directory: Mapping[str, str]) -> None:
    """One summary of how DingTalk's admins (``listed``) and Baton's differ as the baseline
    is recorded: no card (nothing changed; it has always been so)."""
    dingtalk_only = sorted(u for u, lv in listed.items()
                           if (lv == SUB and baton.get(u, MEMBER) == MEMBER)
                           or (lv == MAIN and baton.get(u) != OWNER))
    baton_only = sorted(u for u, lv in baton.items() if lv == ADMIN and u not in listed)
    if not dingtalk_only and not baton_only:
        return
    known = await env.uow.members.names(env.corp_id, {*dingtalk_only, *baton_only})
    names = {u: person(known.get(u) or directory.get(u), u)
             for u in (*dingtalk_only, *baton_only)}
    parts: list[str] = []
    if dingtalk_only:
        parts.append(t("drift_baseline_dingtalk_only", env.lang,
                       who="、".join(names[u] for u in dingtalk_only[:BASELINE_CAP])
                       + (f" (+{len(dingtalk_only) - BASELINE_CAP})"
                          if len(dingtalk_only) > BASELINE_CAP else "")))
    if baton_only:
        parts.append(t("drift_baseline_baton_only", env.lang,
                       who="、".join(names[u] for u in baton_only[:BASELINE_CAP])
                       + (f" (+{len(baton_only) - BASELINE_CAP})"
                          if len(baton_only) > BASELINE_CAP else "")))
    text = t("drift_baseline", env.lang, detail="；".join(parts))
    org = env.settings.org
    if org.alert_conversation:
        await queue_alert(env.uow, env.settings, env.now, who="Baton", what=text,
                          why=t("drift_baseline_why", env.lang), what_cap=900)
        return
    owner = await env.uow.members.owner_of(env.corp_id)
    if org.admin_conversations:
        await env.send(Reply(text, org.admin_conversations[0], True, markdown=True))
    elif owner is not None:
        await env.send(Reply(text, owner.user_id, False, owner.user_id, markdown=True))


BASELINE_CAP = 20       # people named per side in the baseline's summary


# ---- events ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class AdminsNow:
    """What an admin event's lookups found: DingTalk's admin list (None: unreadable; the
    event's own word is used) and the names of the people it is about."""

    listed: dict[str, int] | None
    names: dict[str, str]


async def _names(client: Directory, user_ids: Iterable[str]) -> dict[str, str]:
    out = {}
    for uid in user_ids:
        try:
            out[uid] = str((await client.user_get(uid)).get("name") or "")
        except DingTalkError as e:
            log.info("no directory name for %s: %s", uid, e)
    return out


async def _admin_list(event: OrgEvent, client: Directory | None) -> AdminsNow:
    if client is None:
        return AdminsNow(None, {})
    listed: dict[str, int] | None = None
    try:
        listed = admin_levels(await client.list_admins())
    except DingTalkError as e:
        log.warning("admin list unreadable after %s: %s", event.event_type, e)
    return AdminsNow(listed, await _names(client, event.user_ids))


async def _on_admin_event(event: OrgEvent, now: AdminsNow, ctx: Context) -> None:
    """DingTalk says an admin was added or removed: reconcile with its admin list now (or,
    when that could not be read, with the recorded one changed as the event says)."""
    if not ctx.settings.drift.enabled:
        return
    uid = event.user_ids[0]
    added = event.event_type == ORG_ADMIN_ADD
    listed = now.listed
    if listed is None:
        listed = dict(await ctx.uow.drift.admin_list(ctx.corp_id) or {})
        if added:
            listed.setdefault(uid, SUB)
        else:
            listed.pop(uid, None)
    # Nothing recorded yet: the list before the event is this one, undone by the event.
    before = {k: v for k, v in listed.items() if not (added and k == uid)}
    if not added:
        before.setdefault(uid, SUB)
    # ctx.now was taken before the prepare's read (the dispatcher's rule for events).
    await reconcile(ctx, listed, daily=False, unrecorded=before, names=now.names,
                    read_at=ctx.now)


router.event(ORG_ADMIN_ADD, prepare=_admin_list)(_on_admin_event)
router.event(ORG_ADMIN_REMOVE, prepare=_admin_list)(_on_admin_event)


# ---- the daily sweep ------------------------------------------------------------------------

def _sweep_key(corp_id: str, at: datetime) -> str:
    return f"drift-sweep:{corp_id}:{at.isoformat()}"


async def _schedule_next(uow: Any, settings: Settings, now: datetime) -> None:
    at = next_fire(settings.drift.sweep, settings.policy.timezone, now)
    await uow.due.schedule("drift_sweep", at, {}, now,
                           dedupe_key=_sweep_key(settings.org.corp_id, at))


async def schedule_sweep(db: Database, settings: Settings, now: datetime) -> None:
    """On start: the next ``drift.sweep`` fire as a due row (one per fire time)."""
    if not settings.drift.enabled:
        return
    async with db.uow() as uow:
        await _schedule_next(uow, settings, now)
        await uow.commit()


async def _left(client: Directory, user_ids: list[str]) -> list[str]:
    """Those of ``user_ids`` the directory shows gone or inactive (a failed lookup: not),
    looked up :data:`LOOKUPS_AT_ONCE` at a time."""
    gate = asyncio.Semaphore(LOOKUPS_AT_ONCE)

    async def gone(uid: str) -> bool:
        async with gate:
            try:
                return not bool((await client.user_get(uid)).get("active", True))
            except NotFound:
                return True
            except DingTalkError as e:
                log.warning("sweep: directory lookup of %s failed: %s", uid, e)
                return False

    found = await asyncio.gather(*(gone(u) for u in user_ids))
    return [u for u, g in zip(user_ids, found, strict=True) if g]


CHECK_CHUNK = 100       # members looked up by one ``drift_directory`` job
# Lookups in flight at once: 100 one after another at DingTalk's slower answers (~0.5 s)
# would near the due lease (60 s); 8 at a time end in a few seconds, within the API's rate.
LOOKUPS_AT_ONCE = 8


@router.due("drift_sweep")
async def due_drift_sweep(payload: dict[str, Any], dctx: Context) -> None:
    """Read DingTalk's admin list (before the transaction) and reconcile with it; the
    members who hold something are then looked up in the directory by ``drift_directory``
    jobs of :data:`CHECK_CHUNK` each, so no job outlasts its lease on a large company."""
    s = dctx.settings
    began = dctx.now                    # before the read: what it finds is at least this new
    listed: dict[str, int] | None = None
    names: dict[str, str] = {}
    if s.drift.enabled and dctx.client is not None:
        try:
            listed = admin_levels(await dctx.client.list_admins())
        except DingTalkError as e:
            log.warning("sweep: admin list unreadable: %s", e)
        if listed:
            async with dctx.db.uow() as uow:
                known = await uow.members.names(s.org.corp_id, set(listed))
            names = await _names(dctx.client, (u for u in listed if u not in known))
    async with dctx.transaction() as env:
        await _schedule_next(env.uow, env.settings, env.now)
        if not s.drift.enabled:
            return
        if listed is not None:
            await reconcile(env, listed, daily=True, names=names, read_at=began)
        holders = await env.uow.drift.holding_members(env.corp_id)
        day = env.now.date().isoformat()
        for n, i in enumerate(range(0, len(holders), CHECK_CHUNK)):
            await env.uow.due.schedule(
                "drift_directory", env.now, {"user_ids": holders[i:i + CHECK_CHUNK]}, env.now,
                dedupe_key=f"drift-directory:{env.corp_id}:{day}:{n}")


@router.due("drift_directory")
async def due_drift_directory(payload: dict[str, Any], dctx: Context) -> None:
    """Look these members up in the directory; queue one ``offboard`` (a transaction of its
    own) for each one gone or inactive."""
    left = await _left(dctx.client, [str(u) for u in payload.get("user_ids", [])]) \
        if dctx.client is not None else []
    async with dctx.transaction() as env:
        for uid in left:
            await env.uow.due.schedule(
                "offboard", env.now, {"user_id": uid, "via": "sweep"}, env.now,
                dedupe_key=f"offboard:{uid}:{env.now.date().isoformat()}")


__all__ = ["ADMIN_DRIFT", "reconcile", "router", "schedule_sweep"]
