"""Webhook subscribers in the store, on both backends: registration is idempotent and starts
at the head; a lease goes to one claimer at a time; a holder whose lease was broken by a
replay (or taken over) cannot move the cursor; the due list skips paused, backing-off and
caught-up subscribers."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from bot.core.domain.webhooks import settle
from storage.db import Database

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


async def test_register_is_idempotent_and_starts_at_the_given_cursor(db: Database) -> None:
    async with db.uow() as uow:
        assert await uow.webhooks.register(["crm", "erp", "crm"], 7, NOW) == ["crm", "erp"]
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.webhooks.register(["crm", "bi"], 9, NOW) == ["bi"]
        await uow.commit()
    async with db.uow() as uow:
        subs = {s.name: s for s in await uow.webhooks.all()}
    assert {n: (s.cursor, s.state, s.attempts) for n, s in subs.items()} == {
        "bi": (9, "active", 0), "crm": (7, "active", 0), "erp": (7, "active", 0)}


async def test_one_claimer_at_a_time_and_a_broken_lease_writes_nothing(db: Database) -> None:
    async with db.uow() as uow:
        await uow.webhooks.register(["crm"], 0, NOW)
        await uow.commit()

    async def claim(token: str) -> bool:
        async with db.uow() as uow:
            got = await uow.webhooks.claim("crm", token, NOW, LEASE)
            await uow.commit()
            return got is not None

    wins = await asyncio.gather(*(claim(f"t{i}") for i in range(6)))
    assert sum(wins) == 1
    holder = f"t{wins.index(True)}"
    assert not await claim("late")                           # held until the lease ends
    async with db.uow() as uow:                              # a replay breaks the lease
        assert (await uow.webhooks.replay("crm", 3, NOW)).cursor == 3
        await uow.commit()
    out = settle(0, 0, 10, None, NOW, max_attempts=3, base=1, cap=1, rng=random.Random(1))
    async with db.uow() as uow:
        assert not await uow.webhooks.settle("crm", holder, out, NOW, progressed=True)
        assert not await uow.webhooks.delivered("crm", holder, 10, NOW)
        await uow.commit()
    async with db.uow() as uow:
        st = await uow.webhooks.get("crm")
    assert st is not None and st.cursor == 3 and st.claimed_until is None


async def test_due_lists_active_behind_the_head_and_free(db: Database) -> None:
    async with db.uow() as uow:
        await uow.webhooks.register(["a", "b", "c", "d"], 5, NOW)
        await uow.commit()
    fail = settle(5, 0, 5, "HTTP 500", NOW, max_attempts=1, base=1, cap=1, rng=random.Random(1))
    retry = settle(5, 0, 5, "HTTP 500", NOW, max_attempts=9, base=60, cap=60,
                   rng=random.Random(1))
    async with db.uow() as uow:
        for name, out in (("b", fail), ("c", retry)):
            assert await uow.webhooks.claim(name, "t", NOW, LEASE) is not None
            assert await uow.webhooks.settle(name, "t", out, NOW, progressed=False)
        assert await uow.webhooks.claim("d", "t", NOW, LEASE) is not None
        await uow.commit()
    async with db.uow() as uow:
        names = ["a", "b", "c", "d"]
        assert await uow.webhooks.due(names, 5, NOW) == []            # nobody behind
        assert await uow.webhooks.due(names, 6, NOW) == ["a"]         # b paused, c backing
        later = NOW + timedelta(minutes=5)                            # off, d leased
        assert await uow.webhooks.due(names, 6, later) == ["a", "c", "d"]
        assert await uow.webhooks.next_due_at(names) == retry.next_attempt_at
        b = await uow.webhooks.get("b")
    assert b is not None and (b.state, b.paused_at, b.attempts) == ("paused", NOW, 1)
