"""DingTalk role sync (通讯录角色): Baton's mapped catalog roles kept in step in DingTalk.

- **On start** (:meth:`RoleSync.ensure`): find or create the role group
  (``integrations.dingtalk_roles.group``) and each mapped role in it; their DingTalk ids are
  kept in the store (``dingtalk_roles``).
- **A change** (:func:`follow_feed`, a consumer of the change feed): the events after its
  cursor (``sync_marks`` ``roles.cursor``) that touch a mapped role (a role set or cleared, a
  grant of a role added, revoked or expired, an import row, a member's access ended) become
  ``dingtalk_role`` outbox rows, one per ``addrolesforemps`` / ``removerolesforemps`` call
  (at most 20 users and 20 roles; :func:`bot.core.domain.rolesync.plan_calls`), in one
  commit with the cursor's move. The outbox sends them, retries transient failures with
  backoff, and survives restarts.
- **Reconcile** (:meth:`RoleSync.reconcile`, the due job ``roles_reconcile`` on
  ``integrations.dingtalk_roles.reconcile`` and after every start): DingTalk's members of each
  mapped role (``topapi/role/simplelist``, 100 a page) against the store; every difference is
  audited and summarised to ``org.alert_conversation``; ``enforce`` queues the calls that fix
  DingTalk, ``report`` changes nothing.
- **Refused for a permission** (errcode 60011 / HTTP 403): the row is parked (FAILED at once,
  not retried) and the alert conversation is told once, until a role call (a write)
  succeeds again (the mark ``roles.denied``, cleared only in :meth:`RoleSync.deliver`: a
  read that succeeds proves nothing about writes); the next reconcile after the operator
  grants the permission repairs whatever was parked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.config import Settings
from bot.core.domain.feed import USER, ChangeEvent
from bot.core.domain.outbox import OutboxRow
from bot.core.domain.rolesync import (
    Difference,
    Op,
    RoleCall,
    RoleGroupInfo,
    change,
    differences,
    plan_calls,
    reconcile_calls,
)
from bot.delivery.alerts import queue_alert
from bot.ports import BadRequest, DingTalkError, PermissionDenied, Roles
from bot.texts.catalog import t
from storage.db import Database, UnitOfWork

log = logging.getLogger(__name__)

KIND = "dingtalk_role"                # the outbox kind of a role call
CONVERSATION = "dingtalk:roles"       # their outbox key: one queue, sent in order
DENIED_MARK = "roles.denied"          # set while DingTalk refuses role calls (alerted once)
NAME_TAKEN = ("33013", "33014")       # errcodes: a role group's / a role's name is taken
INVALID_USERS = "33012"               # errcode: a user id in the call is not in the corp
ROLE_READS_AT_ONCE = 4                # mapped roles whose members are read at once (reconcile)
DETAIL_CAP = 8                        # users named per role in a summary
CURSOR_MARK = "roles.cursor"          # the last feed event the role sync has followed
FEED_PAGE = 500                       # events read per transaction
RECONCILE = "roles_reconcile"         # the due kind of a reconcile (handlers/rolesync.py)
# Events whose before/after name the role they moved (``role``, a grant's ``name``, an
# import row's ``value``); others that touch a member are checked for every mapped role.
KNOWN_TYPES = frozenset({"role.changed", "grant.added", "grant.revoked", "grant.expired",
                         "import.change", "import.undone"})
NAME_KEYS = frozenset({"role", "name", "value"})
# Changes that never move a mapped role: admin and owner levels, templates (a template's
# roles are not mirrored: DingTalk shows the role a member holds, as `who-has <role>` does),
# applied to a member or taken off them.
IGNORED_TYPES = frozenset({"admin.added", "admin.removed", "owner.changed", "template.created",
                           "template.edited", "template.deleted", "template.applied",
                           "template.unapplied"})


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


def candidates(event: ChangeEvent, mapped: Iterable[str]) -> set[str]:
    """The mapped roles an event may have moved: the role, grant or import row it names;
    every mapped role for a change to a member this code does not know (say, a member who
    left: their access ended some way this module was not told of)."""
    m = set(mapped)
    if event.type in IGNORED_TYPES:
        return set()
    if event.type not in KNOWN_TYPES:
        return m if event.subject_kind == USER else set()
    named: set[str] = set()
    for side in (event.before, event.after):
        if side:
            named |= {v for k, v in side.items() if k in NAME_KEYS and isinstance(v, str)}
    return named & m


async def follow_feed(uow: UnitOfWork, settings: Settings, now: datetime, *,
                      limit: int = FEED_PAGE) -> tuple[int, int]:
    """One step of the feed consumer, in ``uow``: the role-relevant events after the cursor
    become DingTalk calls (the state each member is in *now*, so the order of old events
    does not matter), batched (20 users a call), and the cursor moves on, all in one commit.
    Returns (events read, calls queued). The first step after the sync is turned on starts
    at the feed's head (the reconcile after start covers what came before)."""
    cfg = settings.integrations.dingtalk_roles
    if not cfg.enabled:
        return 0, 0
    corp = settings.org.corp_id
    await uow.serialise("rolesync.feed")          # one consumer at a time across replicas
    mark = await uow.rolesync.mark(corp, CURSOR_MARK)
    head = await uow.feed.head()
    if mark is None or not mark.isdigit():
        await uow.rolesync.set_mark(corp, CURSOR_MARK, str(head), now)
        return 0, 0
    cursor = int(mark)
    if cursor >= head:
        return 0, 0
    oldest = await uow.feed.oldest()
    if oldest is not None and cursor + 1 < oldest:
        # Events past the retention are gone: a reconcile finds what they changed.
        log.warning("role sync cursor %d is behind the feed's oldest event %d: reconciling",
                    cursor, oldest)
        await uow.due.schedule(RECONCILE, now, {"corp_id": corp}, now,
                               dedupe_key=f"roles-reconcile:{corp}:gap:{cursor}")
    events = await uow.feed.after(cursor, limit, upto=head)
    touched: dict[str, set[str]] = {}
    for e in events:
        if e.corp_id != corp:
            continue
        moved = candidates(e, cfg.map)
        if moved:
            for u in e.users():
                touched.setdefault(u, set()).update(moved)
    # A member who left gets no call: DingTalk drops a leaver's labels itself, and refuses
    # a call naming an id no longer in the corp (errcode 33012).
    for user in await uow.rolesync.left(corp, touched):
        del touched[user]
    held = await uow.rolesync.held_many(corp, touched, cfg.map, now)
    edits: list[tuple[Op, str, str]] = []
    for user, moved in touched.items():
        add, remove = change(moved, moved, held.get(user, set()), cfg.map)
        edits += [("add", r, user) for r in add] + [("remove", r, user) for r in remove]
    n = await queue_calls(uow, now, plan_calls(edits))
    await uow.rolesync.set_mark(corp, CURSOR_MARK,
                                str(events[-1].seq if len(events) == limit else head), now)
    return len(events), n


class FeedFollower:
    """Runs :func:`follow_feed` whenever this process commits change events (``wake``, a
    listener of the database) and every ``poll`` seconds (changes other replicas commit)."""

    def __init__(self, db: Database, settings: Settings, now: Callable[[], datetime], *,
                 poll: float = 5.0, on_commit: Callable[[], None] = lambda: None) -> None:
        self.db, self.settings, self._now, self.poll = db, settings, now, poll
        self.on_commit = on_commit
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.events = 0
        self.calls = 0

    def wake(self, _seq: int = 0) -> None:
        self._wake.set()

    async def catch_up(self) -> int:
        """Follow until the cursor reaches the head; the number of calls queued."""
        queued = 0
        while True:
            async with self.db.uow() as uow:
                read, n = await follow_feed(uow, self.settings, self._now())
                if n:
                    uow.after_commit(self.on_commit)
                await uow.commit()
            self.events, self.calls, queued = self.events + read, self.calls + n, queued + n
            if read < FEED_PAGE:
                return queued

    def start(self) -> None:
        if self._task is None and self.settings.integrations.dingtalk_roles.enabled:
            self.db.feed_listeners.append(self.wake)
            self._task = asyncio.create_task(self._run(), name="role-feed")

    async def _run(self) -> None:
        while True:
            self._wake.clear()          # before reading: a wake meanwhile reads again
            try:
                await self.catch_up()
            except Exception:
                log.exception("role sync could not follow the change feed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    async def stop(self) -> None:
        if self._task is not None:
            if self.wake in self.db.feed_listeners:
                self.db.feed_listeners.remove(self.wake)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


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
        catalog role -> DingTalk role id. Raises the port's errors.

        Replicas starting together must not both create: when something is missing, the
        look and the creates run again under the lock ``rolesync.ensure`` (one replica at a
        time; the second finds what the first made); a name DingTalk says is taken (33013 /
        33014: made meanwhile by someone else) is looked up again, not a failure."""
        groups = await self._groups()
        if self._complete(groups):
            ids, group_id = self._found(groups)
            async with self.db.uow() as uow:
                await self._save(uow, ids, group_id, now)
                await uow.commit()
            return ids
        async with self.db.uow() as uow:
            await uow.serialise("rolesync.ensure")
            ids, group_id = await self._create(await self._groups())
            await self._save(uow, ids, group_id, now)
            await uow.commit()
        return ids

    async def _groups(self) -> list[RoleGroupInfo]:
        groups = await self.roles.role_groups()
        self.read_calls += 1
        return groups

    def _group(self, groups: Sequence[RoleGroupInfo]) -> RoleGroupInfo | None:
        return next((g for g in groups if g.name == self.cfg.group), None)

    def _complete(self, groups: Sequence[RoleGroupInfo]) -> bool:
        group = self._group(groups)
        return group is not None and all(group.role_id(n) is not None
                                         for n in self.cfg.map.values())

    def _found(self, groups: Sequence[RoleGroupInfo]) -> tuple[dict[str, int], int]:
        group = self._group(groups)
        assert group is not None
        return {r: rid for r, n in sorted(self.cfg.map.items())
                if (rid := group.role_id(n)) is not None}, group.group_id

    async def _create(self, groups: Sequence[RoleGroupInfo]) -> tuple[dict[str, int], int]:
        group = self._group(groups)
        if group is None:
            try:
                gid = await self.roles.add_role_group(self.cfg.group)
                group = RoleGroupInfo(gid, self.cfg.group)
            except BadRequest as e:
                if e.code != NAME_TAKEN[0]:
                    raise
                log.info("DingTalk role group %s made meanwhile: looking again", self.cfg.group)
                group = self._group(await self._groups())
                if group is None:
                    raise
        ids: dict[str, int] = {}
        for role, name in sorted(self.cfg.map.items()):
            rid = group.role_id(name)
            if rid is None:
                try:
                    rid = await self.roles.add_role(group.group_id, name)
                    log.info("DingTalk role %s/%s created (id %s) for %s", self.cfg.group,
                             name, rid, role)
                except BadRequest as e:
                    if e.code != NAME_TAKEN[1]:
                        raise
                    group = self._group(await self._groups()) or group
                    rid = group.role_id(name)
                    if rid is None:
                        raise
            ids[role] = rid
        return ids, group.group_id

    async def _save(self, uow: UnitOfWork, ids: dict[str, int], group_id: int,
                    now: datetime) -> None:
        for role, rid in ids.items():
            await uow.rolesync.save_role(self.corp, role, self.cfg.map[role], rid, group_id,
                                         now)

    async def start(self, now: datetime, *, within: float = 20.0) -> bool:
        """On start: :meth:`ensure`, its failures alerted (a refusal once) and not fatal, and
        bounded (a DingTalk outage must not hold up the start: the first role call and the
        reconcile ensure again; find-or-create is safe to cut short)."""
        if not self.cfg.enabled:
            return False
        try:
            await asyncio.wait_for(self.ensure(now), within)
            return True
        except TimeoutError:
            log.warning("DingTalk roles not ensured within %.0fs of the start; the first role "
                        "call or the reconcile will", within)
            return False
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
        dropped = await self._send(call.op, ids, call.users)
        # A role call (a write) went through: a refusal for a permission is over (a read that
        # succeeds says nothing of it: the app may read roles and not change them).
        async with self.db.uow() as uow:
            if dropped:
                # Left the corp since the call was queued: DingTalk dropped their labels.
                log.warning("role call %s %s: user ids DingTalk no longer knows dropped: %s",
                            call.op, roles, dropped)
                await uow.audit.append_many(self.corp, now, [
                    {"actor_id": "system:roles", "action": "roles.user_dropped",
                     "result": "skipped", "target_id": u,
                     "after": {"op": call.op, "roles": roles, "errcode": INVALID_USERS}}
                    for u in dropped])
            if len(dropped) < len(call.users) and await uow.rolesync.mark(
                    self.corp, DENIED_MARK) is not None:
                await uow.rolesync.clear_mark(self.corp, DENIED_MARK)
            await uow.commit()

    async def _send(self, op: Op, ids: list[int], users: Sequence[str]) -> list[str]:
        """One role call; refused for an invalid user id (33012: one named has left the
        corp), it is split in halves until the invalid ids stand alone; those are returned
        (dropped, not retried: DingTalk drops a leaver's labels itself)."""
        try:
            if op == "add":
                await self.roles.add_roles_for_users(ids, users)
            else:
                await self.roles.remove_roles_for_users(ids, users)
            return []
        except BadRequest as e:
            if e.code != INVALID_USERS:
                raise
            if len(users) == 1:
                return list(users)
        half = len(users) // 2
        return await self._send(op, ids, users[:half]) + await self._send(op, ids, users[half:])

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
        gate = asyncio.Semaphore(ROLE_READS_AT_ONCE)     # a few roles at a time: the job
                                                          # ends well inside its lease

        async def read(rid: int) -> set[str]:
            async with gate:
                members = await self.roles.role_members(rid)
            self.read_calls += max(1, -(-len(members) // 100))
            return set(members)

        roles = sorted(ids)
        found = await asyncio.gather(*(read(ids[r]) for r in roles))
        actual = dict(zip(roles, found, strict=True))
        log.info("DingTalk roles read in %d calls", self.read_calls - before)
        return actual

    async def reconcile(self, uow: UnitOfWork, now: datetime,
                        actual: dict[str, set[str]], read_calls: int,
                        read_began: datetime | None = None) -> ReconcileResult:
        """In the caller's transaction: compare, audit each difference, fix (enforce) by
        queueing calls, and summarise to the alert conversation. ``read_began``: when the
        read of DingTalk (``actual``) began."""
        desired = await uow.rolesync.holders(self.corp, self.cfg.map, now)
        # Members whose change is on its way (a queued call, a call sent since the read
        # began: the read may predate it, or an event not followed yet) are not drift: what
        # is in flight sets them right. (A margin for clocks of replicas that differ:
        # integrations.dingtalk_roles.clock_slack.)
        since = None if read_began is None else read_began - self.cfg.clock_slack
        moving = await uow.rolesync.users_in_flight(KIND, since) | await self._unfollowed(uow)
        diffs = [d for d in differences(desired, actual) if d.user_id not in moving]
        enforce = self.cfg.mode == "enforce"
        await uow.audit.append_many(self.corp, now, [
            {"actor_id": "system:roles", "action": f"roles.{d.kind}",
             "result": "queued" if enforce else "reported", "target_id": d.user_id,
             "after": {"role": d.role, "dingtalk_role": self.cfg.map[d.role],
                       "fix": d.op if enforce else None}} for d in diffs])
        calls = await queue_calls(uow, now, reconcile_calls(diffs)) if enforce else 0
        if diffs:
            await queue_alert(uow, self.settings, now, who="Baton",
                              what=self._summary(diffs, calls), why=t(
                                  "roles_why", self.settings.locale.lang), what_cap=900)
        return ReconcileResult(tuple(diffs), calls, read_calls)

    async def _unfollowed(self, uow: UnitOfWork) -> set[str]:
        mark = await uow.rolesync.mark(self.corp, CURSOR_MARK)
        if mark is None or not mark.isdigit():
            return set()
        users: set[str] = set()
        cursor = int(mark)
        while True:
            events = await uow.feed.after(cursor, FEED_PAGE)
            for e in events:
                if e.corp_id == self.corp and candidates(e, self.cfg.map):
                    users.update(e.users())
            if len(events) < FEED_PAGE:
                return users
            cursor = events[-1].seq

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


__all__ = ["CONVERSATION", "CURSOR_MARK", "DENIED_MARK", "KIND", "RECONCILE", "FeedFollower",
           "ReconcileResult", "RoleIdsMissing", "RoleSync", "candidates", "follow_feed",
           "queue_calls"]
