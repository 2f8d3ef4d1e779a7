"""The index keeper on both databases: what it loads equals what the store computes for
every member of a random store; every kind of change committed is in the next answer;
concurrent readers share one freshness read; a retention gap makes it reload; a token
revoke moves the epoch the same read carries."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.domain.permissions import Catalog, sources_of
from bot.core.domain.tokens import token_hash
from storage.db import Database
from storage.index import IndexKeeper, keeper

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CORP = "c1"
CAT = Catalog(
    {"a.x": ("甲", "A x"), "a.y": ("乙", "A y"), "b.z": ("丙", "B z"),
     "owner.transfer": ("转让", "Transfer")},
    {"r1": ("a.*",), "r2": ("b.z", "a.y")}, frozenset())
NAMES = ["a.x", "a.y", "b.z", "r1", "r2", "a.*"]


async def audit(db: Database, action: str, *, target: str | None = None,
                before: dict | None = None, after: dict | None = None) -> None:  # type: ignore[type-arg]
    async with db.uow() as uow:
        await uow.audit.append(CORP, NOW, actor_id="t", action=action, result="applied",
                               target_id=target, before=before, after=after)
        await uow.commit()


async def random_store(db: Database, rng: random.Random, n: int = 40) -> list[str]:
    users = [f"u{i:02d}" for i in range(n)]
    async with db.uow() as uow:
        await uow.members.upsert(CORP, "boss", NOW, level="owner")
        await uow.members.upsert(CORP, "ann", NOW, level="admin")
        for t in ("t1", "t2"):
            await uow.perms.add_template(CORP, t, rng.sample(NAMES, 2), by="t", now=NOW)
        for u in users:
            m = await uow.members.upsert(CORP, u, NOW)
            if rng.random() < 0.4:
                await uow.members.set_role(m, rng.choice(["r1", "r2"]), NOW)
            for name in rng.sample(NAMES, rng.randint(0, 3)):
                exp = rng.choice([None, NOW - timedelta(hours=1), NOW + timedelta(days=2)])
                await uow.perms.grant(CORP, u, name, by="t", now=NOW - timedelta(days=1),
                                      expires_at=exp)
            for t in ("t1", "t2"):
                if rng.random() < 0.3:
                    tpl = await uow.perms.template(CORP, t)
                    assert tpl is not None
                    await uow.perms.assign(tpl, u, by="t", now=NOW)
        await uow.commit()
    return [*users, "boss", "ann", "nobody"]


async def from_store(db: Database, users: list[str]) -> dict[str, dict]:  # type: ignore[type-arg]
    async with db.uow() as uow:
        held = await uow.perms.holdings_many(CORP, users, NOW)
    return {u: sources_of(h, CAT, NOW) for u, h in held.items()}


async def assert_same(k: IndexKeeper, db: Database, users: list[str]) -> None:
    await k.sync()
    want = await from_store(db, users)
    c = k.corp(CORP)
    assert {u: c.sources(u, NOW) for u in users} == want
    for perm in CAT.permissions:
        assert c.holders(perm, NOW) == {u: s[perm] for u, s in sorted(want.items())
                                        if perm in s}


@pytest.mark.parametrize("seed", [17, 5, 2026])
async def test_the_index_equals_the_store_for_random_stores(db: Database, seed: int) -> None:
    rng = random.Random(seed)
    users = await random_store(db, rng)
    k = keeper(db, CAT)
    await assert_same(k, db, users)


async def test_every_kind_of_change_is_in_the_next_answer(db: Database) -> None:
    users = await random_store(db, random.Random(3), n=10)
    k = keeper(db, CAT)
    await k.sync()
    c = lambda: k.corp(CORP)  # noqa: E731
    # A grant.
    async with db.uow() as uow:
        await uow.members.upsert(CORP, "mia", NOW)
        await uow.perms.grant(CORP, "mia", "b.z", by="t", now=NOW, expires_at=None)
        await uow.audit.append(CORP, NOW, actor_id="t", action="grant.apply",
                               result="applied", target_id="mia", after={"name": "b.z"})
        await uow.commit()
    await k.sync()
    assert c().check("mia", "b.z", NOW)
    # A role.
    async with db.uow() as uow:
        m = await uow.members.get(CORP, "mia")
        assert m is not None
        await uow.members.set_role(m, "r1", NOW)
        await uow.audit.append(CORP, NOW, actor_id="t", action="role_set.apply",
                               result="applied", target_id="mia", after={"role": "r1"})
        await uow.commit()
    await k.sync()
    assert c().check("mia", "a.x", NOW)
    # A template created, applied, then edited: every holder changes at once.
    async with db.uow() as uow:
        await uow.perms.add_template(CORP, "t9", ["a.y"], by="t", now=NOW)
        await uow.audit.append(CORP, NOW, actor_id="t", action="template.create",
                               result="applied", after={"template": "t9", "items": ["a.y"]})
        tpl = await uow.perms.template(CORP, "t9")
        assert tpl is not None
        for u in ("u01", "u02"):
            await uow.perms.assign(tpl, u, by="t", now=NOW)
            await uow.audit.append(CORP, NOW, actor_id="t", action="template.assign",
                                   result="applied", target_id=u, after={"template": "t9"})
        await uow.commit()
    await k.sync()
    async with db.uow() as uow:
        tpl = await uow.perms.template(CORP, "t9")
        assert tpl is not None
        await uow.perms.set_template_items(tpl, ["b.z"], NOW)
        await uow.audit.append(CORP, NOW, actor_id="t", action="template.set",
                               result="applied", before={"template": "t9", "items": ["a.y"]},
                               after={"template": "t9", "items": ["b.z"]})
        await uow.commit()
    await k.sync()
    assert {"u01", "u02"} <= set(c().holders("b.z", NOW))
    # An owner transfer: both the old and the new owner change.
    async with db.uow() as uow:
        old = await uow.members.get(CORP, "boss")
        new = await uow.members.get(CORP, "ann")
        assert old is not None and new is not None
        await uow.members.set_level(old, "admin", NOW)
        await uow.session.flush()
        await uow.members.set_level(new, "owner", NOW)
        await uow.audit.append(CORP, NOW, actor_id="t", action="owner_transfer.apply",
                               result="applied", target_id="ann", after={"owner": "ann"})
        await uow.commit()
    await k.sync()
    assert set(c().holders("owner.transfer", NOW)) == {"ann"}
    await assert_same(k, db, [*users, "mia"])
    assert k.reloads == 1


async def test_concurrent_readers_share_one_freshness_read(db: Database) -> None:
    k = keeper(db, CAT)
    await k.sync()
    before = k.reads
    await asyncio.gather(*(k.sync() for _ in range(50)))
    # One read that started after all of them arrived (the first caller starts it, the
    # rest join it): never one each.
    assert k.reads - before <= 2


async def test_a_retention_gap_reloads_the_whole_index(db: Database) -> None:
    users = await random_store(db, random.Random(5), n=5)
    k = keeper(db, CAT)
    await k.sync()
    async with db.uow() as uow:
        await uow.perms.grant(CORP, "u01", "b.z", by="t", now=NOW, expires_at=None)
        await uow.audit.append(CORP, NOW, actor_id="t", action="grant.apply",
                               result="applied", target_id="u01")
        await uow.commit()
    async with db.uow() as uow:
        await uow.feed.purge_before(NOW + timedelta(days=1))
        await uow.commit()
    await k.sync()
    assert k.reloads == 2 and k.corp(CORP).check("u01", "b.z", NOW)
    await assert_same(k, db, users)


async def test_a_revoke_moves_the_token_epoch_of_the_freshness_read(db: Database) -> None:
    async with db.uow() as uow:
        assert await uow.tokens.create(CORP, "crm", "read", token_hash("baton_x" * 4), by="t",
                                       now=NOW)
        assert await uow.tokens.create(CORP, "crm", "read", "h2", by="t", now=NOW) is None
        await uow.commit()
    k = keeper(db, CAT)
    await k.sync()
    assert k.token_epoch == 0
    async with db.uow() as uow:
        assert await uow.tokens.revoke(CORP, "crm", NOW)
        assert await uow.tokens.revoke(CORP, "crm", NOW) is None
        await uow.commit()
    await k.sync()
    assert k.token_epoch == 1
    async with db.uow() as uow:
        got = await uow.tokens.by_hash(token_hash("baton_x" * 4))
    assert got is not None and not got.active
