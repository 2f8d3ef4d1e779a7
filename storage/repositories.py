"""Repositories: one per aggregate, named by intent. They never commit; the unit of work does."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.domain.audit import AuditRecord
from bot.core.domain.due import DueItem, DueOverview
from bot.core.domain.feed import ChangeEvent, event_type, subject_of
from bot.core.domain.members import ADMIN, MEMBER, OWNER, MemberView, Sender
from bot.core.domain.outbox import OutboxRow
from bot.core.domain.requests import Request as RequestValue
from bot.core.domain.requests import RequestConflict, State, Vote
from storage.models import (
    AuditEntry,
    AuditHead,
    ChangeEventRow,
    DueWork,
    FeedHead,
    Member,
    OutboxMessage,
    ProcessedMessage,
    Request,
)
from storage.models import Vote as VoteRow

GENESIS = "0" * 64
_OUTBOX = cast(Table, OutboxMessage.__table__)


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    return bind.dialect.name if bind is not None else "sqlite"


_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def built_once(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """A statement built once and kept: its parameters are bound at execute time, and
    SQLAlchemy memoises a kept statement's cache key (a hot statement built anew on each
    call pays for its construction and its cache key every time)."""
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


def _insert(session: AsyncSession, table: Any) -> Any:
    if _dialect(session) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


#: The session's dialect's INSERT (it has ``on_conflict_do_nothing``), for the other
#: repositories of storage/.
dialect_insert = _insert


async def _claim(session: AsyncSession, model: Any, due_col: Any, now: datetime,
                 lease: timedelta, limit: int, *order: Any) -> Sequence[Any]:
    """Lease up to ``limit`` pending rows due by ``now`` (``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL, so replicas never take the same row; SQLite has a single writer)."""
    q = (
        select(model)
        .where(model.status == "pending", due_col <= now,
               or_(model.claimed_until.is_(None), model.claimed_until <= now))
        .order_by(*order)
        .limit(limit)
    )
    if _dialect(session) == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = (await session.execute(q)).scalars().all()
    for r in rows:
        r.claimed_until = now + lease
    await session.flush()
    return rows


def _sender(m: Member) -> Sender:
    return Sender(m.corp_id, m.user_id, m.name, m.level, m.role, m.active, m.import_mode,
                  m.import_mode_until)


class MemberRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def _row(self, member: Member | Sender) -> Member:
        """The row of ``member`` (a sender's is in this transaction already)."""
        if isinstance(member, Member):
            return member
        row = await self.get(member.corp_id, member.user_id)
        assert row is not None, member.user_id
        return row

    async def sender(self, corp_id: str, user_id: str) -> Sender | None:
        m = await self.get(corp_id, user_id)
        return None if m is None else _sender(m)

    async def get(self, corp_id: str, user_id: str) -> Member | None:
        return (await self.s.execute(
            select(Member).where(Member.corp_id == corp_id, Member.user_id == user_id)
        )).scalar_one_or_none()

    async def owner_of(self, corp_id: str) -> Member | None:
        return (await self.s.execute(
            select(Member).where(Member.corp_id == corp_id, Member.level == OWNER)
        )).scalar_one_or_none()

    async def admins_of(self, corp_id: str) -> list[MemberView]:
        """The owner first, then admins by userId."""
        rows = (await self.s.execute(
            select(Member)
            .where(Member.corp_id == corp_id, Member.level.in_((OWNER, ADMIN)))
            .order_by((Member.level == OWNER).desc(), Member.user_id)
        )).scalars().all()
        return [MemberView(m.user_id, m.name, m.level, m.role, m.active) for m in rows]

    async def count(self, corp_id: str) -> int:
        return int((await self.s.execute(
            select(func.count()).select_from(Member).where(Member.corp_id == corp_id)
        )).scalar_one())

    async def names(self, corp_id: str, user_ids: set[str]) -> dict[str, str]:
        """The display names of those of ``user_ids`` who have one (unknown ids: absent)."""
        if not user_ids:
            return {}
        rows = (await self.s.execute(
            select(Member.user_id, Member.name).where(
                Member.corp_id == corp_id, Member.user_id.in_(user_ids))
        )).all()
        return {u: n for u, n in rows if n}

    async def set_level(self, member: Member | Sender, level: str, now: datetime) -> None:
        """Write ``member``'s admin level now (the one-owner index checks it at once)."""
        row = await self._row(member)
        row.level, row.updated_at = level, now
        await self.s.flush()

    async def set_role(self, member: Member | Sender, role: str | None, now: datetime) -> None:
        row = await self._row(member)
        row.role, row.updated_at = role, now
        await self.s.flush()

    async def arm_import(self, member: Member | Sender, mode: str, until: datetime) -> None:
        """``member``'s next file is imported in ``mode`` until ``until``."""
        row = await self._row(member)
        row.import_mode, row.import_mode_until = mode, until
        await self.s.flush()

    async def disarm_import(self, member: Member | Sender) -> None:
        """``member``'s next file is imported in the default mode again (written with the
        transaction)."""
        row = await self._row(member)
        row.import_mode, row.import_mode_until = None, None

    def name_if_unnamed(self, member: Member, name: str | None) -> None:
        """Give ``member`` ``name`` when it has none yet (written with the transaction)."""
        if name and not member.name:
            member.name = name

    async def upsert(self, corp_id: str, user_id: str, now: datetime, *, name: str | None = None,
                     level: str | None = None, active: bool | None = None) -> Member:
        m = await self.get(corp_id, user_id)
        if m is None:
            # Concurrent first messages of a new member race here: insert-or-nothing, then read.
            await self.s.execute(_insert(self.s, Member).values(
                corp_id=corp_id, user_id=user_id, name=name or "", level=level or MEMBER,
                active=True if active is None else active, created_at=now, updated_at=now,
            ).on_conflict_do_nothing(index_elements=["corp_id", "user_id"]))
            m = await self.get(corp_id, user_id)
            assert m is not None
            if level is None or m.level == level:
                return m
        changed = False
        if name and name != m.name:
            m.name, changed = name, True
        if level is not None and level != m.level:
            m.level, changed = level, True
        if active is not None and active != m.active:
            m.active, changed = active, True
        if changed:
            m.updated_at = now
            await self.s.flush()
        return m

    async def upsert_sender(self, corp_id: str, user_id: str, now: datetime, *,
                            name: str | None) -> Sender:
        """:meth:`upsert` for the sender of a command, who is handed on as a value."""
        return _sender(await self.upsert(corp_id, user_id, now, name=name))

    async def upsert_senders(self, corp_id: str, people: Sequence[tuple[str, str | None]],
                             now: datetime) -> dict[str, Sender]:
        """:meth:`upsert_many` for the senders of a batch of commands, as values."""
        return {u: _sender(m) for u, m in (await self.upsert_many(corp_id, people, now)).items()}

    async def upsert_many(self, corp_id: str, people: Sequence[tuple[str, str | None]],
                          now: datetime) -> dict[str, Member]:
        """:meth:`upsert` for several senders at once (userId, nickname): one SELECT for
        those already known (the usual case), the rest one by one."""
        names: dict[str, str | None] = {}
        for uid, name in people:
            names[uid] = name or names.get(uid)
        stmt = built_once(("members_in",), lambda: select(Member).where(
            Member.corp_id == bindparam("corp"),
            Member.user_id.in_(bindparam("ids", expanding=True))))
        found = {m.user_id: m for m in (await self.s.execute(
            stmt, {"corp": corp_id, "ids": list(names)})).scalars()}
        changed = False
        for uid, name in names.items():
            m = found.get(uid)
            if m is None:
                found[uid] = await self.upsert(corp_id, uid, now, name=name)
            elif name and name != m.name:
                m.name, m.updated_at, changed = name, now, True
        if changed:
            await self.s.flush()
        return found


def request_of(row: Request) -> RequestValue:
    """The core value of a request row (its payload copied, read-only)."""
    return RequestValue(
        id=row.id, corp_id=row.corp_id, kind=row.kind, state=State(row.state),
        requester_id=row.requester_id, target_id=row.target_id,
        conversation_id=row.conversation_id, reason=row.reason, payload=dict(row.payload),
        created_at=row.created_at, expires_at=row.expires_at, decided_at=row.decided_at,
        decided_by=row.decided_by, card_out_track_id=row.card_out_track_id,
        source_message_id=row.source_message_id, version=row.version)


OPEN_STATES = ("pending", "approved")


class RequestRepo:
    """Requests: read as core values, changed only through the writes below (each returns
    the request as it now is). Rows stay in this module's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def find(self, request_id: int, *, for_update: bool = False) -> RequestValue | None:
        """The request, or None; ``for_update``: its row locked until the transaction ends
        (``FOR UPDATE`` on PostgreSQL), so a click and an expiry decide one after the other."""
        q = select(Request).where(Request.id == request_id)
        if for_update:
            q = q.with_for_update()
        row = (await self.s.execute(q)).scalar_one_or_none()
        return request_of(row) if row is not None else None

    async def open_for(self, corp_id: str) -> list[RequestValue]:
        return [request_of(r) for r in (await self.s.execute(
            select(Request)
            .where(Request.corp_id == corp_id, Request.state.in_(OPEN_STATES))
            .order_by(Request.id)
        )).scalars()]

    async def open_with_votes(self, corp_id: str) -> list[tuple[RequestValue, tuple[Vote, ...]]]:
        """The open requests by id, each with its votes in the order they were cast: two
        queries however many there are (the votes of all of them in one)."""
        reqs = await self.open_for(corp_id)
        votes: dict[int, list[Vote]] = {r.id: [] for r in reqs}
        if reqs:
            for v in (await self.s.execute(
                select(VoteRow).join(Request, Request.id == VoteRow.request_id)
                .where(Request.corp_id == corp_id, Request.state.in_(OPEN_STATES))
                .order_by(VoteRow.id)
            )).scalars():
                if v.request_id in votes:     # not one opened between the two reads
                    votes[v.request_id].append(Vote(v.voter_id, v.decision, v.created_at))
        return [(r, tuple(votes[r.id])) for r in reqs]

    async def by_kind(self, corp_id: str, kind: str) -> list[RequestValue]:
        return [request_of(r) for r in (await self.s.execute(
            select(Request).where(Request.corp_id == corp_id, Request.kind == kind)
            .order_by(Request.id.desc())
        )).scalars()]

    async def create(self, *, corp_id: str, kind: str, state: State, requester_id: str,
                     target_id: str | None, conversation_id: str, reason: str,
                     payload: Mapping[str, Any], created_at: datetime, expires_at: datetime,
                     decided_at: datetime | None = None, decided_by: str | None = None,
                     source_message_id: str | None = None,
                     savepoint: bool = False) -> RequestValue:
        """Insert a request now and return it (with its id). ``savepoint``: see
        :meth:`save_new` (a constraint that refuses it raises :class:`RequestConflict`)."""
        row = Request(corp_id=corp_id, kind=kind, state=state.value, requester_id=requester_id,
                      target_id=target_id, conversation_id=conversation_id, reason=reason,
                      payload=dict(payload), created_at=created_at, expires_at=expires_at,
                      decided_at=decided_at, decided_by=decided_by,
                      source_message_id=source_message_id)
        await self.save_new(row, savepoint=savepoint)
        return request_of(row)

    async def _row(self, request_id: int) -> Request:
        row = await self.s.get(Request, request_id)
        if row is None:
            raise LookupError(f"no request {request_id}")
        return row

    async def transition(self, request_id: int, to: State, *, by: str | None = None,
                         at: datetime | None = None) -> RequestValue:
        """The request moves to ``to`` (its version goes up); ``at`` set: it was decided
        then, by ``by`` (None: by no one, say an expiry)."""
        row = await self._row(request_id)
        row.state = to.value
        row.version += 1
        if at is not None:
            row.decided_at, row.decided_by = at, by
        return request_of(row)

    async def set_track(self, request_id: int, out_track_id: str) -> RequestValue:
        """The outTrackId of the request's card."""
        row = await self._row(request_id)
        row.card_out_track_id = out_track_id
        return request_of(row)

    async def set_payload(self, request_id: int, payload: Mapping[str, Any]) -> RequestValue:
        """Replace the request's payload (callers pass ``{**req.payload, ...}``)."""
        row = await self._row(request_id)
        row.payload = dict(payload)
        return request_of(row)

    def add(self, req: Request) -> None:
        self.s.add(req)

    async def save_new(self, req: Request, *, savepoint: bool = False) -> int:
        """Insert ``req`` now and return its id; ``savepoint``: in a savepoint of its own, so
        a refused insert leaves the rest of the transaction usable, and a constraint that
        refuses it raises :class:`RequestConflict`."""
        if savepoint:
            try:
                async with self.s.begin_nested():
                    self.s.add(req)
                    await self.s.flush()
            except IntegrityError as e:
                raise RequestConflict(str(e.orig)) from e
        else:
            self.s.add(req)
            await self.s.flush()
        return req.id

    async def reload(self, req: Request) -> None:
        """Read ``req`` again (after a savepoint's rollback expired it)."""
        await self.s.refresh(req)

    async def by_ids(self, corp_id: str, ids: set[int]) -> dict[int, RequestValue]:
        """Those of the requests ``ids`` that belong to ``corp_id``, by id."""
        return {r.id: request_of(r) for r in (await self.s.execute(
            select(Request).where(Request.id.in_(ids), Request.corp_id == corp_id)
        )).scalars()}

    async def votes_of(self, request_id: int) -> tuple[Vote, ...]:
        """The votes on a request, in the order they were cast."""
        rows = (await self.s.execute(
            select(VoteRow).where(VoteRow.request_id == request_id).order_by(VoteRow.id)
        )).scalars().all()
        return tuple(Vote(v.voter_id, v.decision, v.created_at) for v in rows)

    async def add_vote(self, request_id: int, voter_id: str, decision: str,
                       now: datetime) -> None:
        self.s.add(VoteRow(request_id=request_id, voter_id=voter_id, decision=decision,
                           created_at=now))
        await self.s.flush()


class ProcessedRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def claim(self, key: str, kind: str, now: datetime) -> bool:
        """Record an inbound id; False when it was already there (a redelivery)."""
        stmt = _insert(self.s, ProcessedMessage).values(key=key, kind=kind, received_at=now)
        stmt = stmt.on_conflict_do_nothing(index_elements=["key"])
        res = await self.s.execute(stmt)
        return bool(getattr(res, "rowcount", 0))

    async def claim_many(self, keys: Sequence[str], kind: str, now: datetime) -> set[str]:
        """:meth:`claim` for several ids in one statement: the ones that were new."""
        if not keys:
            return set()
        # One cached statement run for many parameter sets (SQLAlchemy batches them into
        # multi-row INSERTs); building a new multi-row VALUES each time costs more than it.
        stmt = built_once(("claim_many", _dialect(self.s)), lambda: _insert(
            self.s, ProcessedMessage.__table__).on_conflict_do_nothing(
            index_elements=["key"]).returning(ProcessedMessage.key))
        res = await self.s.execute(stmt, [{"key": k, "kind": kind, "received_at": now}
                                          for k in dict.fromkeys(keys)])
        return set(res.scalars())

    async def seen(self, key: str) -> bool:
        return (await self.s.get(ProcessedMessage, key)) is not None

    async def forget_before(self, t: datetime) -> int:
        res = await self.s.execute(delete(ProcessedMessage).where(ProcessedMessage.received_at < t))
        return int(getattr(res, "rowcount", 0) or 0)


class OutboxRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def add(self, kind: str, conversation_key: str, payload: dict[str, Any], now: datetime,
                  *, session_webhook: str | None = None, webhook_expires_at: datetime | None = None,
                  source_message_id: str | None = None,
                  not_before: datetime | None = None) -> int:
        """Queue a send; ``not_before`` holds it back (alerts wait so a burst merges).
        A Core INSERT: one statement, no identity-map bookkeeping (it is on every command).
        Returns the row's id."""
        return int((await self.s.execute(insert(OutboxMessage).values(
            kind=kind, conversation_key=conversation_key, payload=payload,
            session_webhook=session_webhook, webhook_expires_at=webhook_expires_at,
            status="pending", attempts=0, next_attempt_at=not_before or now, created_at=now,
            source_message_id=source_message_id,
        ).returning(OutboxMessage.id))).scalar_one())

    async def add_many(self, rows: Sequence[dict[str, Any]], now: datetime) -> None:
        """Queue several sends in one multi-row INSERT; each row holds :meth:`add`'s
        keyword arguments (kind, conversation_key, payload, optional webhook and source)."""
        if not rows:
            return
        await self.s.execute(built_once(("outbox_insert",), lambda: insert(_OUTBOX)), [{
            "kind": r["kind"], "conversation_key": r["conversation_key"],
            "payload": r["payload"], "session_webhook": r.get("session_webhook"),
            "webhook_expires_at": r.get("webhook_expires_at"), "status": "pending",
            "attempts": 0, "next_attempt_at": r.get("not_before") or now, "created_at": now,
            "source_message_id": r.get("source_message_id"),
        } for r in rows])

    async def claim_due(self, now: datetime, lease_for: timedelta,
                        limit: int) -> list[OutboxRow]:
        """Take up to ``limit`` due rows for ``lease_for``, oldest first; on PostgreSQL skip
        rows others hold. Leased with UPDATE ... RETURNING, read as plain rows (no ORM
        load-then-flush: this is on every cycle of the sender)."""
        t = _OUTBOX
        until = bindparam("until", type_=t.c.claimed_until.type)

        def pick() -> Any:
            now_ = bindparam("now", type_=t.c.next_attempt_at.type)
            return (select(t.c.id)
                    .where(t.c.status == "pending", t.c.next_attempt_at <= now_,
                           or_(t.c.claimed_until.is_(None), t.c.claimed_until <= now_))
                    .order_by(t.c.id).limit(limit))

        if _dialect(self.s) == "postgresql":
            # Lock the rows in a top-level SELECT ... SKIP LOCKED, then lease them: in a
            # subquery of the UPDATE, LIMIT is not reliably honoured under concurrency.
            ids = list((await self.s.execute(
                built_once(("outbox_pick", limit), lambda: pick().with_for_update(skip_locked=True)),
                {"now": now})).scalars())
            if not ids:
                return []
            stmt = built_once(("outbox_lease",), lambda: update(t).where(
                t.c.id.in_(bindparam("ids", expanding=True))).values(claimed_until=until)
                .returning(*t.c))
            res = await self.s.execute(stmt, {"ids": ids, "until": now + lease_for})
        else:
            # One statement: SQLite has a single writer, nothing to skip.
            stmt = built_once(("outbox_claim", limit), lambda: update(t).where(
                t.c.id.in_(pick().scalar_subquery())).values(claimed_until=until)
                .returning(*t.c))
            res = await self.s.execute(stmt, {"now": now, "until": now + lease_for})
        return sorted((OutboxRow(**r._mapping) for r in res), key=lambda r: r.id)

    async def claim_alerts(self, conversation_key: str, until: datetime, now: datetime,
                           lease: timedelta) -> list[OutboxRow]:
        """Pending alert rows of one conversation due by ``until`` (not held by anyone):
        the sender merges them into the alert it is about to send."""
        t = _OUTBOX
        stmt = select(*t.c).where(
            t.c.conversation_key == conversation_key,
            t.c.status == "pending", t.c.next_attempt_at <= until,
            or_(t.c.claimed_until.is_(None), t.c.claimed_until <= now),
        ).order_by(t.c.id)
        if _dialect(self.s) == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        held = now + lease
        picked = [OutboxRow(**{**r._mapping, "claimed_until": held})
                  for r in await self.s.execute(stmt) if r.payload.get("merge") == "alert"]
        if picked:
            await self.s.execute(update(t).where(t.c.id.in_([r.id for r in picked]))
                                 .values(claimed_until=held))
        return picked

    async def pending_creation(self, out_track_id: str) -> datetime | None:
        """When the still unsent creation of card ``out_track_id`` is due (None: there is
        none; the card was created, failed for good, or never queued)."""
        t = OutboxMessage
        return (await self.s.execute(
            select(func.min(t.next_attempt_at)).where(
                t.kind == "card", t.status == "pending",
                t.payload["op"].as_string() == "create",
                t.payload["out_track_id"].as_string() == out_track_id)
        )).scalar_one_or_none()

    async def next_due_at(self) -> datetime | None:
        return (await self.s.execute(
            select(func.min(OutboxMessage.next_attempt_at)).where(OutboxMessage.status == "pending")
        )).scalar_one_or_none()

    async def sent_since(self, conversation_key: str, since: datetime, *,
                         limit: int | None = None) -> Sequence[datetime]:
        """When messages that took a budget slot were sent to a conversation after ``since``
        (``counted_at``), oldest first; with ``limit``, only the latest ``limit`` of them."""
        q = (select(OutboxMessage.counted_at)
             .where(OutboxMessage.conversation_key == conversation_key,
                    OutboxMessage.counted_at.is_not(None), OutboxMessage.counted_at > since)
             .order_by(OutboxMessage.counted_at.desc()))
        if limit is not None:
            q = q.limit(limit)
        rows = (await self.s.execute(q)).scalars().all()
        return [r for r in reversed(rows) if r is not None]

    async def count_sent_since(self, conversation_key: str, since: datetime, *, cap: int) -> int:
        """How many messages that took a budget slot were sent to a conversation after
        ``since``, counting no further than ``cap`` (an index range scan that stops there)."""
        def build() -> Any:
            t = _OUTBOX
            inner = (select(t.c.id)
                     .where(t.c.conversation_key == bindparam("key"),
                            t.c.counted_at.is_not(None),
                            t.c.counted_at > bindparam("since", type_=t.c.counted_at.type))
                     .limit(cap).subquery())
            return select(func.count()).select_from(inner)

        return int((await self.s.execute(built_once(("count_sent", cap), build),
                                         {"key": conversation_key, "since": since})).scalar_one())

    async def mark_sent(self, row_ids: int | Sequence[int], now: datetime, *,
                        counted: bool = True) -> None:
        ids = [row_ids] if isinstance(row_ids, int) else list(row_ids)
        await self.mark_sent_each([(i, now, counted) for i in ids])

    async def mark_sent_each(self, sent: Sequence[tuple[int, datetime, bool]]) -> None:
        """Mark rows sent, each at its own time, and whether it took a slot of its
        conversation's per-minute budget (``counted_at``; a card update or an alert merged
        into another message takes none): one statement, many parameter sets."""
        if not sent:
            return
        stmt = built_once(("mark_sent_each",), lambda: update(_OUTBOX).where(
            _OUTBOX.c.id == bindparam("rid")).values(
                status="sent", sent_at=bindparam("at", type_=_OUTBOX.c.sent_at.type),
                counted_at=bindparam("counted", type_=_OUTBOX.c.counted_at.type),
                claimed_until=None, session_webhook=None, last_error=None))
        await self.s.execute(stmt, [{"rid": i, "at": at, "counted": at if counted else None}
                                    for i, at, counted in sent])

    async def reschedule(self, row_id: int, at: datetime, *, error: str | None,
                         count_attempt: bool) -> None:
        values: dict[str, Any] = {"next_attempt_at": at, "claimed_until": None}
        if error is not None:
            values["last_error"] = error[:500]
        if count_attempt:
            values["attempts"] = OutboxMessage.attempts + 1
        await self.s.execute(update(OutboxMessage).where(OutboxMessage.id == row_id).values(**values))

    async def defer_many(self, when: Sequence[tuple[int, datetime]]) -> None:
        """Put claimed rows back, each due at its own time (one executemany)."""
        if not when:
            return
        await self.s.execute(
            update(OutboxMessage.__table__).where(  # type: ignore[arg-type]
                OutboxMessage.__table__.c.id == bindparam("row_id"))
            .values(next_attempt_at=bindparam("at"), claimed_until=None),
            [{"row_id": i, "at": at} for i, at in when])

    async def forget_webhook(self, row_id: int) -> None:
        """Drop a row's sessionWebhook (a bearer secret) once it is past its life; the row
        then goes through the robot API."""
        await self.s.execute(
            update(OutboxMessage).where(OutboxMessage.id == row_id).values(session_webhook=None))

    async def supersede_reminders(self, conversation_key: str, request_ids: set[int]) -> int:
        """A new reminder to ``conversation_key`` names ``request_ids``: an older reminder
        there that is still pending and names none but these is superseded (not sent). Such a
        row may be one a process sent and died before marking: once its lease ran out it
        would go again at the restart, next to the catch-up that replaces it."""
        t = _OUTBOX
        rows = (await self.s.execute(select(t.c.id, t.c.payload).where(
            t.c.conversation_key == conversation_key, t.c.kind == "reply",
            t.c.status == "pending"))).all()
        stale = [i for i, p in rows
                 if p.get("remind") and {int(r) for r in p["remind"]} <= request_ids]
        if stale:
            await self.s.execute(update(t).where(t.c.id.in_(stale), t.c.status == "pending")
                                 .values(status="superseded", claimed_until=None))
        return len(stale)

    async def mark_failed(self, row_id: int, error: str) -> None:
        await self.s.execute(
            update(OutboxMessage).where(OutboxMessage.id == row_id).values(
                status="failed", claimed_until=None, session_webhook=None, last_error=error[:500],
                attempts=OutboxMessage.attempts + 1,
            )
        )

    async def depth(self) -> int:
        return int((await self.s.execute(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")
        )).scalar_one())

    async def backlog(self) -> tuple[int, datetime | None, int]:
        """(pending rows, the oldest pending one's creation, failed rows)."""
        pending, oldest = (await self.s.execute(
            select(func.count(), func.min(OutboxMessage.created_at))
            .where(OutboxMessage.status == "pending"))).one()
        failed = int((await self.s.execute(
            select(func.count()).select_from(OutboxMessage)
            .where(OutboxMessage.status == "failed"))).scalar_one())
        return int(pending), oldest, failed


def _due_item(r: DueWork) -> DueItem:
    return DueItem(r.id, r.kind, r.due_at, r.payload, r.status, r.attempts)


class DueWorkRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session
        self.touched = False  # something was scheduled: the alarm should look again

    async def schedule(self, kind: str, due_at: datetime, payload: dict[str, Any], now: datetime,
                       *, dedupe_key: str | None = None) -> None:
        stmt = _insert(self.s, DueWork).values(
            kind=kind, due_at=due_at, payload=payload, dedupe_key=dedupe_key,
            status="pending", attempts=0, created_at=now,
        ).on_conflict_do_nothing(index_elements=["dedupe_key"])
        await self.s.execute(stmt)
        self.touched = True

    async def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[DueItem]:
        """Lease up to ``limit`` pending rows due by ``now`` until ``now + lease``, in due
        order (on PostgreSQL ``FOR UPDATE SKIP LOCKED``: replicas never take the same row)."""
        return [_due_item(r) for r in await _claim(self.s, DueWork, DueWork.due_at, now, lease,
                                                   limit, DueWork.due_at, DueWork.id)]

    async def upcoming(self, limit: int = 20) -> list[DueItem]:
        return [_due_item(r) for r in (await self.s.execute(
            select(DueWork).where(DueWork.status == "pending").order_by(DueWork.due_at).limit(limit)
        )).scalars()]

    async def mark_done(self, row_id: int, now: datetime) -> None:
        """Row ``row_id`` is done at ``now``, if it is still pending (a row another handler
        already took, merged into its own work, stays as that left it)."""
        await self.s.execute(update(DueWork).where(
            DueWork.id == row_id, DueWork.status == "pending").values(
            status="done", done_at=now, claimed_until=None))

    async def mark_failed(self, item: DueItem, error: str, *,
                          retry_at: datetime | None) -> None:
        """``item`` (as claimed) failed once more with ``error``: pending again at
        ``retry_at``, or failed for good (kept at its due time) when ``retry_at`` is None.
        Either way its lease ends."""
        await self.s.execute(update(DueWork).where(DueWork.id == item.id).values(
            attempts=item.attempts + 1, claimed_until=None,
            status="failed" if retry_at is None else "pending",
            due_at=item.due_at if retry_at is None else retry_at,
            payload={**item.payload, "last_error": error}))

    async def is_pending(self, row_id: int) -> bool:
        """Is the row still pending? On PostgreSQL it is locked until the transaction ends
        (another handler may have merged it into its own message)."""
        q = select(DueWork.status).where(DueWork.id == row_id)
        if _dialect(self.s) == "postgresql":
            q = q.with_for_update()
        return (await self.s.execute(q)).scalar_one_or_none() == "pending"

    async def pending_due(self, kind: str, now: datetime, *,
                          besides: int) -> list[DueItem]:
        """The pending rows of ``kind`` due by ``now`` other than ``besides``, in due order."""
        return [_due_item(r) for r in (await self.s.execute(
            select(DueWork).where(DueWork.kind == kind, DueWork.status == "pending",
                                  DueWork.due_at <= now, DueWork.id != besides)
            .order_by(DueWork.due_at, DueWork.id)
        )).scalars()]

    async def take(self, row_ids: Sequence[int], now: datetime) -> set[int]:
        """Mark done those of ``row_ids`` still pending (on PostgreSQL: and not held by
        another replica); the ids taken."""
        q = select(DueWork.id).where(DueWork.id.in_(row_ids), DueWork.status == "pending")
        if _dialect(self.s) == "postgresql":
            q = q.with_for_update(skip_locked=True)
        held = set((await self.s.execute(q)).scalars())
        if held:
            await self.s.execute(update(DueWork).where(DueWork.id.in_(held)).values(
                status="done", done_at=now, claimed_until=None))
        return held

    async def overdue(self, now: datetime) -> tuple[int, datetime | None]:
        """(pending rows due by ``now``, the earliest due time among them)."""
        n, oldest = (await self.s.execute(
            select(func.count(), func.min(DueWork.due_at))
            .where(DueWork.status == "pending", DueWork.due_at <= now))).one()
        return int(n), oldest

    async def overview(self, now: datetime, limit: int, *,
                       moot_kinds: Sequence[str]) -> DueOverview:
        """The schedule for ``baton schedule``. A pending row of ``moot_kinds`` (about one
        request) whose request is no longer pending is never sent: not counted or listed."""
        moot = select(DueWork.id).join(
            Request, Request.id == DueWork.payload["request_id"].as_integer()).where(
            DueWork.status == "pending", DueWork.kind.in_(moot_kinds),
            Request.state != "pending")
        pending = and_(DueWork.status == "pending", DueWork.id.not_in(moot))
        failing = or_(DueWork.status == "failed", DueWork.attempts > 0)

        async def count(*where: Any) -> int:
            return int((await self.s.execute(
                select(func.count()).select_from(DueWork).where(*where))).scalar_one())

        async def first(where: Any) -> tuple[DueItem, ...]:
            rows = (await self.s.execute(select(DueWork).where(where).order_by(
                DueWork.due_at, DueWork.id).limit(limit))).scalars().all()
            return tuple(_due_item(r) for r in rows)

        overdue = await count(pending, DueWork.due_at <= now)
        total = await count(pending)
        upcoming = await first(pending)
        failed = await first(failing)
        return DueOverview(total=total, overdue=overdue, upcoming=upcoming, failed=failed,
                           n_failed=await count(failing))

    async def cancel(self, dedupe_key: str) -> None:
        await self.s.execute(
            update(DueWork).where(and_(DueWork.dedupe_key == dedupe_key, DueWork.status == "pending"))
            .values(status="cancelled")
        )

    async def cancel_prefix(self, prefix: str) -> None:
        """Cancel every pending row whose dedupe key starts with ``prefix`` (e.g. all the
        reminders of one request: ``remind:12:``, held ones included)."""
        await self.s.execute(
            update(DueWork).where(and_(DueWork.dedupe_key.startswith(prefix, autoescape=True),
                                       DueWork.status == "pending"))
            .values(status="cancelled")
        )


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def audit_fields(e: AuditEntry) -> dict[str, Any]:
    return {
        "seq": e.seq, "at": e.at.isoformat(), "actor": e.actor_id, "action": e.action,
        "target": e.target_id, "request": e.request_id, "message": e.message_id,
        "before": e.before, "after": e.after, "result": e.result,
    }


def _record(e: AuditEntry) -> AuditRecord:
    return AuditRecord(seq=e.seq, at=e.at, actor_id=e.actor_id, action=e.action,
                       target_id=e.target_id, request_id=e.request_id, message_id=e.message_id,
                       before=e.before, after=e.after, result=e.result, prev_hash=e.prev_hash,
                       hash=e.hash)


class FeedRepo:
    """The change feed (see :mod:`bot.core.domain.feed`): written by :class:`AuditRepo` with
    the audit entry of each applied change; read by the decision API, webhooks and syncs."""

    def __init__(self, session: AsyncSession) -> None:
        self.s = session
        #: The highest sequence number this transaction wrote (0: none), for after-commit
        #: listeners (an in-process index catches up without a query).
        self.written = 0

    async def emit(self, corp_id: str, entries: Sequence[AuditEntry | Mapping[str, Any]]) -> int:
        """Write an event for each of ``entries`` (audit rows, or the column dicts a bulk
        append inserts) that records an applied change, numbered after the head, which stays
        locked until the transaction ends (commit order = seq order); how many. Written a
        chunk at a time and not kept: an import of 100,000 changes is 100,000 events."""
        head: FeedHead | None = None
        chunk: list[dict[str, Any]] = []
        written = 0
        for e in entries:
            f: Mapping[str, Any] = e if isinstance(e, Mapping) else {
                "action": e.action, "result": e.result, "target_id": e.target_id,
                "before": e.before, "after": e.after, "request_id": e.request_id,
                "actor_id": e.actor_id, "at": e.at}
            kind = event_type(f["action"], f["result"])
            if kind is None:
                continue
            if head is None:
                head = await self._lock_head()
            head.seq += 1
            written += 1
            subject = subject_of(f.get("target_id"), f.get("before"), f.get("after"))
            chunk.append({
                "seq": head.seq, "event_id": uuid.uuid4().hex, "corp_id": corp_id,
                "type": kind, "action": f["action"], "actor_id": f["actor_id"],
                "subject_kind": subject[0] if subject else None,
                "subject": subject[1] if subject else None, "before": f.get("before"),
                "after": f.get("after"), "request_id": f.get("request_id"), "at": f["at"]})
            if len(chunk) == 1000:
                await self.s.execute(insert(ChangeEventRow), chunk)
                chunk = []
        if chunk:
            await self.s.execute(insert(ChangeEventRow), chunk)
        if head is not None:
            await self.s.flush()
            self.written = head.seq
        return written

    async def _lock_head(self) -> FeedHead:
        head = (await self.s.execute(
            select(FeedHead).where(FeedHead.id == 1).with_for_update()
        )).scalar_one_or_none()
        if head is None:
            head = FeedHead(id=1, seq=0)
            self.s.add(head)
        return head

    async def head(self) -> int:
        """The sequence number of the last committed event (0 when there is none)."""
        return int((await self.s.execute(
            select(FeedHead.seq).where(FeedHead.id == 1))).scalar_one_or_none() or 0)

    async def oldest(self) -> int | None:
        """The first sequence number still kept (retention removes older ones)."""
        first: int | None = (await self.s.execute(
            select(func.min(ChangeEventRow.seq)))).scalar_one_or_none()
        return first

    async def after(self, seq: int, limit: int, *, upto: int | None = None,
                    types: Sequence[str] | None = None) -> list[ChangeEvent]:
        """Up to ``limit`` events after ``seq`` (and not after ``upto``), in order."""
        q = select(ChangeEventRow).where(ChangeEventRow.seq > seq)
        if upto is not None:
            q = q.where(ChangeEventRow.seq <= upto)
        if types:
            q = q.where(ChangeEventRow.type.in_(list(types)))
        rows = (await self.s.execute(q.order_by(ChangeEventRow.seq).limit(limit))).scalars()
        return [_event(r) for r in rows]

    async def purge_before(self, cutoff: datetime, *, corp_id: str | None = None) -> int:
        """Remove events dated before ``cutoff`` (the audit's retention); the head stays."""
        q = delete(ChangeEventRow).where(ChangeEventRow.at < cutoff)
        if corp_id is not None:
            q = q.where(ChangeEventRow.corp_id == corp_id)
        gone = await self.s.execute(q)
        return int(getattr(gone, "rowcount", 0) or 0)


def _event(r: ChangeEventRow) -> ChangeEvent:
    return ChangeEvent(r.event_id, r.seq, r.corp_id, r.type, r.action, r.actor_id,
                       r.subject_kind, r.subject, r.before, r.after, r.request_id, r.at)


class AuditRepo:
    def __init__(self, session: AsyncSession, feed: FeedRepo | None = None) -> None:
        self.s = session
        self.feed = feed if feed is not None else FeedRepo(session)

    async def append(self, corp_id: str, now: datetime, *, actor_id: str, action: str,
                     result: str, target_id: str | None = None, request_id: int | None = None,
                     message_id: str | None = None, before: dict[str, Any] | None = None,
                     after: dict[str, Any] | None = None) -> AuditEntry:
        head = (await self.s.execute(
            select(AuditHead).where(AuditHead.corp_id == corp_id).with_for_update()
        )).scalar_one_or_none()
        if head is None:
            # Two first appends race on the primary key; the loser's transaction fails and retries.
            head = AuditHead(corp_id=corp_id, seq=0, hash=GENESIS)
            self.s.add(head)
        entry = AuditEntry(
            corp_id=corp_id, seq=head.seq + 1, at=now, actor_id=actor_id, action=action,
            target_id=target_id, request_id=request_id, message_id=message_id, before=before,
            after=after, result=result, prev_hash=head.hash, hash="",
        )
        entry.hash = chain_hash(head.hash, audit_fields(entry))
        head.seq, head.hash = entry.seq, entry.hash
        self.s.add(entry)
        await self.feed.emit(corp_id, [entry])
        await self.s.flush()
        return entry

    async def append_many(self, corp_id: str, now: datetime,
                          entries: Sequence[dict[str, Any]]) -> None:
        """Append several entries in order with one head read and one flush (bulk paths);
        each dict holds ``append``'s keyword arguments."""
        if not entries:
            return
        head = (await self.s.execute(
            select(AuditHead).where(AuditHead.corp_id == corp_id).with_for_update()
        )).scalar_one_or_none()
        if head is None:
            head = AuditHead(corp_id=corp_id, seq=0, hash=GENESIS)
            self.s.add(head)
        seq, prev = head.seq, head.hash
        at = now.isoformat()
        rows: list[dict[str, Any]] = []
        for kw in entries:
            seq += 1
            fields: dict[str, Any] = {"target_id": None, "request_id": None,
                                      "message_id": None, "before": None, "after": None, **kw}
            # What audit_fields() reads of an entry, from the same values (no ORM object: a
            # batch of 100,000 entries is inserted as rows, in chunks).
            prev_hash, prev = prev, chain_hash(prev, {
                "seq": seq, "at": at, "actor": fields["actor_id"], "action": fields["action"],
                "target": fields["target_id"], "request": fields["request_id"],
                "message": fields["message_id"], "before": fields["before"],
                "after": fields["after"], "result": fields["result"]})
            rows.append({"corp_id": corp_id, "seq": seq, "at": now, "prev_hash": prev_hash,
                         "hash": prev, **fields})
        head.seq, head.hash = seq, prev
        await self.s.flush()
        for i in range(0, len(rows), 1000):
            await self.s.execute(insert(AuditEntry), rows[i:i + 1000])
        await self.feed.emit(corp_id, rows)

    async def recent(self, corp_id: str, n: int, *, user_id: str | None = None,
                     offset: int = 0) -> list[AuditRecord]:
        """The newest ``n`` entries from the ``offset``-th newest on, newest first (only
        those ``user_id`` is actor or target of, when given)."""
        q = select(AuditEntry).where(AuditEntry.corp_id == corp_id)
        if user_id is not None:
            q = q.where(or_(AuditEntry.actor_id == user_id, AuditEntry.target_id == user_id))
        rows = (await self.s.execute(
            q.order_by(AuditEntry.seq.desc()).limit(n).offset(offset))).scalars()
        return [_record(e) for e in rows]

    async def count(self, corp_id: str, *, user_id: str | None = None,
                    at_most: int | None = None) -> int:
        """How many entries there are (of ``user_id``, when given), counting no further
        than ``at_most``."""
        q = select(AuditEntry.seq).where(AuditEntry.corp_id == corp_id)
        if user_id is not None:
            q = q.where(or_(AuditEntry.actor_id == user_id, AuditEntry.target_id == user_id))
        if at_most is not None:
            q = q.order_by(AuditEntry.seq.desc()).limit(at_most)
        return int((await self.s.execute(
            select(func.count()).select_from(q.subquery()))).scalar_one())

    async def between(self, corp_id: str, *, user_id: str | None = None,
                      action_prefix: str | None = None, since: datetime | None = None,
                      until: datetime | None = None) -> list[AuditRecord]:
        """Entries in chain order, optionally only those where ``user_id`` is actor or target,
        whose action starts with ``action_prefix``, at or after ``since``, before ``until``."""
        q = select(AuditEntry).where(AuditEntry.corp_id == corp_id)
        if user_id is not None:
            q = q.where(or_(AuditEntry.actor_id == user_id, AuditEntry.target_id == user_id))
        if action_prefix:
            q = q.where(AuditEntry.action.startswith(action_prefix, autoescape=True))
        if since is not None:
            q = q.where(AuditEntry.at >= since)
        if until is not None:
            q = q.where(AuditEntry.at < until)
        return [_record(e) for e in (await self.s.execute(q.order_by(AuditEntry.seq))).scalars()]

    async def verify(self, corp_id: str, *, upto: int | None = None) -> int | None:
        """The seq of the first entry that breaks the chain, or None when it holds.

        The chain starts at the anchor that retention left (or at the genesis) and must end
        at the head: an edited, removed or reordered entry is named, and so is the first
        missing one when entries were cut off the end. ``upto``: check only that far.
        """
        # A shared lock on the head: no append slips in between reading it and the entries.
        head = (await self.s.execute(
            select(AuditHead).where(AuditHead.corp_id == corp_id).with_for_update(read=True)
        )).scalar_one_or_none()
        prev, expected_seq = GENESIS, 1
        if head is not None and head.anchor_seq is not None and head.anchor_hash is not None:
            prev, expected_seq = head.anchor_hash, head.anchor_seq + 1
        q = select(AuditEntry).where(AuditEntry.corp_id == corp_id, AuditEntry.seq >= expected_seq)
        if upto is not None:
            q = q.where(AuditEntry.seq <= upto)
        rows = (await self.s.execute(q.order_by(AuditEntry.seq))).scalars()
        for e in rows:
            if e.seq != expected_seq or e.prev_hash != prev or e.hash != chain_hash(prev, audit_fields(e)):
                return expected_seq
            prev, expected_seq = e.hash, expected_seq + 1
        end = upto if upto is not None else (head.seq if head is not None else None)
        if end is not None and expected_seq - 1 < end:
            return expected_seq         # entries are missing at the end
        if upto is None and head is not None:
            if expected_seq - 1 > head.seq:
                return head.seq + 1     # entries written past the head, around the lock
            if head.hash != prev:
                return head.seq         # the last entry disagrees with the head
        return None

    async def purge_before(self, corp_id: str, cutoff: datetime) -> tuple[int, int | None]:
        """Remove the oldest entries dated before ``cutoff`` and anchor the chain on the last
        one removed: (how many, the new anchor seq). Only a prefix of the chain goes (an entry
        older than cutoff behind a newer one stays), and never past the first bad entry, so
        a purge cannot erase evidence of tampering."""
        head = (await self.s.execute(
            select(AuditHead).where(AuditHead.corp_id == corp_id).with_for_update()
        )).scalar_one_or_none()
        if head is None:
            return 0, None
        start = head.anchor_seq or 0
        first_kept = (await self.s.execute(
            select(func.min(AuditEntry.seq)).where(
                AuditEntry.corp_id == corp_id, AuditEntry.seq > start, AuditEntry.at >= cutoff)
        )).scalar_one_or_none()
        last = head.seq if first_kept is None else first_kept - 1
        bad = await self.verify(corp_id, upto=last)
        if bad is not None:
            last = bad - 1
        if last <= start:
            return 0, None
        anchor = (await self.s.execute(
            select(AuditEntry).where(AuditEntry.corp_id == corp_id, AuditEntry.seq == last)
        )).scalar_one()
        gone = await self.s.execute(
            delete(AuditEntry).where(AuditEntry.corp_id == corp_id, AuditEntry.seq <= last))
        head.anchor_seq, head.anchor_hash = anchor.seq, anchor.hash
        # The feed keeps pace with the audit: its events of the same age go too.
        await self.feed.purge_before(cutoff, corp_id=corp_id)
        await self.s.flush()
        return int(getattr(gone, "rowcount", 0) or 0), anchor.seq


__all__ = [
    "ADMIN", "MEMBER", "OWNER", "AuditRepo", "DueWorkRepo", "MemberRepo", "OutboxRepo",
    "ProcessedRepo", "RequestRepo",
]
