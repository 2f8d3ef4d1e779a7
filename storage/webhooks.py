"""Webhook subscribers in the store: each one's cursor in the change feed, its state and
its lease, handed out as :class:`bot.core.domain.webhooks.Subscription` values.

The change feed is the durable log and this table is the outbox's bookkeeping: what a
subscriber still has to receive is every event after its cursor. Every write that belongs to
a lease holder names the holder's token, so a sender whose lease ran out (another replica
took over, or ``baton webhooks replay`` moved the cursor) cannot move the cursor after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.domain.webhooks import Outcome, State, Subscription
from storage.models import WebhookSubscriber as Row


def _value(r: Row) -> Subscription:
    return Subscription(r.name, r.cursor, State(r.state), r.attempts, r.next_attempt_at,
                        r.last_error, r.last_delivered_at, r.paused_at, r.claimed_until)


class WebhookRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def register(self, names: Sequence[str], cursor: int, now: datetime) -> list[str]:
        """Add the subscribers not yet known, following the feed from ``cursor`` (the head:
        a new subscriber gets what happens from now on; ``replay`` gives it the past).
        Returns the names added."""
        known = set((await self.s.execute(select(Row.name))).scalars())
        new = [n for n in dict.fromkeys(names) if n not in known]
        self.s.add_all([Row(name=n, cursor=cursor, state=State.ACTIVE.value, attempts=0,
                            next_attempt_at=now, created_at=now) for n in new])
        await self.s.flush()
        return new

    async def all(self) -> list[Subscription]:
        rows = (await self.s.execute(select(Row).order_by(Row.name))).scalars()
        return [_value(r) for r in rows]

    async def get(self, name: str) -> Subscription | None:
        row = await self.s.get(Row, name)
        return _value(row) if row is not None else None

    async def due(self, names: Sequence[str], head: int, now: datetime) -> list[str]:
        """Of ``names``, the active subscribers behind ``head`` whose retry time has come
        and that no live lease holds."""
        if not names:
            return []
        return list((await self.s.execute(select(Row.name).where(
            Row.name.in_(list(names)), Row.state == State.ACTIVE.value, Row.cursor < head,
            Row.next_attempt_at <= now,
            or_(Row.claimed_until.is_(None), Row.claimed_until <= now),
        ).order_by(Row.name))).scalars())

    async def next_due_at(self, names: Sequence[str]) -> datetime | None:
        """The earliest retry time among active subscribers waiting to retry."""
        if not names:
            return None
        at: datetime | None = (await self.s.execute(
            select(Row.next_attempt_at).where(
                Row.name.in_(list(names)), Row.state == State.ACTIVE.value, Row.attempts > 0)
            .order_by(Row.next_attempt_at).limit(1))).scalar_one_or_none()
        return at

    async def claim(self, name: str, token: str, now: datetime,
                    lease: timedelta) -> Subscription | None:
        """Lease an active, due, free subscriber to ``token`` (None: paused, not due, or held
        by another). One conditional UPDATE: of two replicas racing, one wins."""
        res = (await self.s.execute(update(Row).where(
            Row.name == name, Row.state == State.ACTIVE.value, Row.next_attempt_at <= now,
            or_(Row.claimed_until.is_(None), Row.claimed_until <= now),
        ).values(claimed_until=now + lease, claim_token=token).returning(
            Row.name, Row.cursor, Row.state, Row.attempts, Row.next_attempt_at, Row.last_error,
            Row.last_delivered_at, Row.paused_at, Row.claimed_until))).one_or_none()
        if res is None:
            return None
        return Subscription(res[0], res[1], State(res[2]), *res[3:])

    async def settle(self, name: str, token: str, out: Outcome, now: datetime, *,
                     progressed: bool) -> bool:
        """Record a round's outcome and release the lease; False when the lease was lost
        (nothing is written then: the cursor stays where its new holder or a replay put it)."""
        values: dict[str, object] = {
            "cursor": out.cursor, "attempts": out.attempts, "next_attempt_at": out.next_attempt_at,
            "last_error": out.error[:500] if out.error else None,
            "claimed_until": None, "claim_token": None}
        if out.paused:
            values.update(state=State.PAUSED.value, paused_at=now)
        if progressed:
            values["last_delivered_at"] = now
        res = await self.s.execute(update(Row).where(Row.name == name, Row.claim_token == token)
                                   .values(**values))
        return bool(getattr(res, "rowcount", 0))

    async def delivered(self, name: str, token: str, cursor: int, now: datetime) -> bool:
        """Move the cursor of a subscriber still leased to ``token`` (mid-round progress)."""
        res = await self.s.execute(update(Row).where(Row.name == name, Row.claim_token == token)
                                   .values(cursor=cursor, attempts=0, last_error=None,
                                           last_delivered_at=now))
        return bool(getattr(res, "rowcount", 0))

    async def release(self, name: str, token: str, cursor: int | None, now: datetime) -> bool:
        """Give up a lease early (a stop), moving the cursor to ``cursor`` if given."""
        values: dict[str, object] = {"claimed_until": None, "claim_token": None}
        if cursor is not None:
            values.update(cursor=cursor, attempts=0, last_error=None, last_delivered_at=now)
        res = await self.s.execute(update(Row).where(Row.name == name, Row.claim_token == token)
                                   .values(**values))
        return bool(getattr(res, "rowcount", 0))

    async def replay(self, name: str, cursor: int, now: datetime) -> Subscription | None:
        """Resume a subscriber (paused or not) after ``cursor``: active, due now, no attempts
        counted, any lease broken (its holder's later writes are refused)."""
        res = await self.s.execute(update(Row).where(Row.name == name).values(
            cursor=cursor, state=State.ACTIVE.value, attempts=0, next_attempt_at=now,
            claimed_until=None, claim_token=None, last_error=None, paused_at=None,
        ).returning(Row.name))
        if res.scalar_one_or_none() is None:
            return None
        row = await self.s.get(Row, name, populate_existing=True)
        return _value(row) if row is not None else None


__all__ = ["WebhookRepo"]
