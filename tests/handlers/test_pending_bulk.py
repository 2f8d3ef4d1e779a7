"""``pending`` judges the open requests in bulk (the votes of all of them in one query, the
owner and admins read once, :class:`bot.approvals.engine.KnowsDeciders`): on SQLite and
PostgreSQL, over a varied store of every request kind, it lists exactly what judging each
request on its own (:func:`bot.approvals.engine.view_of`, as a click is judged) lists, in the
same order with the same roles, for every member; and again after the owner changed and an
admin left. Each kind's ``deciders`` equals its ``requirements`` request by request."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from bot.approvals.engine import KnowsDeciders, open_requests_for, staff_of, view_of
from bot.core.domain.members import ADMIN, MEMBER, OWNER
from bot.core.domain.requests import Request, waiting_for
from bot.dispatch.context import Context
from handlers import build_router
from storage.models import Member
from storage.models import Request as RequestRow
from storage.models import Vote as VoteRow
from tests.handlers.conftest import T0, Harness

CORP = "dingsandboxcorp"
KINDS = build_router().requests
EXTRA = [f"adm{i}" for i in range(5)] + [f"mem{i}" for i in range(5)]
PEOPLE = ["zhangsan", "lisi", "wangwu", "zhaoliu", "qianqi", "sunba", *EXTRA]
STATES = ["pending"] * 6 + ["approved", "rejected", "applied", "cancelled", "expired"]


def payload_for(kind: str, rng: random.Random) -> dict[str, Any]:
    some = rng.sample(PEOPLE, rng.randint(0, 4))
    need = {"need": rng.choice((1, 1, 2, 3))} if rng.random() < 0.8 else {}
    base: dict[str, Any] = {"lang": rng.choice(("zh", "en")), **need}
    if kind in ("grant", "access"):
        base |= {"name": "crm.export", "seconds": None}
    if kind == "access":
        base |= {"approvers": some}
    if kind in ("import", "import_undo"):
        base |= {"batch": "B-1", "changes": [
            {"op": "create", "e": [u, "grant", "crm.export", None], "b": None} for u in some]}
    if kind in ("template_set", "template_delete"):
        base |= {"template": "pack", "holder_ids": some}
    if kind == "template_apply":
        base |= {"template": "pack", "users": some}
    if kind == "owner_transfer":
        base |= {"owner": rng.choice(PEOPLE)}
    if kind == "admin_drift":
        base |= {"change": "add"}
    return base


async def seed(h: Harness, seed_: int) -> None:
    """Ten more members (five of them admins, one of those inactive), then 150 requests of
    every kind in every state, with random requesters, targets, payloads and votes."""
    rng = random.Random(seed_)
    async with h.db.uow() as uow:
        s = uow.session
        await s.execute(insert(Member), [
            {"corp_id": CORP, "user_id": u, "name": u, "level": ADMIN if u.startswith("adm")
             else MEMBER, "role": None, "active": u != "adm4", "created_at": T0,
             "updated_at": T0} for u in EXTRA])
        kinds = sorted(KINDS.kinds)
        transfer_open = False
        for n in range(150):
            kind = kinds[n % len(kinds)]
            state = rng.choice(STATES)
            if kind == "owner_transfer":          # one open at a time (a unique index)
                state = "pending" if not transfer_open else rng.choice(STATES[7:])
                transfer_open = True
            req_id = (await s.execute(insert(RequestRow).returning(RequestRow.id), [{
                "corp_id": CORP, "kind": kind, "state": state,
                "requester_id": rng.choice(PEOPLE),
                "target_id": rng.choice((*PEOPLE, None)), "conversation_id": "cidSANDBOX",
                "reason": "", "payload": payload_for(kind, rng), "created_at": T0,
                "expires_at": T0 + timedelta(days=rng.choice((-1, 2)))}])).scalar_one()
            voters = rng.sample(PEOPLE, rng.choice((0, 0, 1, 2, 3)))
            if voters:
                await s.execute(insert(VoteRow), [
                    {"request_id": req_id, "voter_id": v,
                     "decision": rng.choice(("approve", "approve", "reject", "accept")),
                     "created_at": T0} for v in voters])
        await uow.commit()


async def one_by_one(env: Context, user_id: str) -> list[tuple[Request, bool]]:
    """The rule, as it read before: each open request judged on its own, as a click is."""
    out: list[tuple[Request, bool]] = []
    for req in await env.uow.requests.open_for(env.corp_id):
        may = user_id in waiting_for(await view_of(req, env))
        if may or req.requester_id == user_id:
            out.append((req, may))
    return out


async def compare(h: Harness) -> int:
    """Both ways for every member and a stranger; how many (request, member) pairs listed."""
    listed = 0
    async with h.db.uow() as uow:
        env = Context(uow, h.settings, h.clock.now(), request_kinds=KINDS)
        staff = await staff_of(env)
        for req in await uow.requests.open_for(CORP):
            kind = KINDS.kind(req.kind)
            assert isinstance(kind, KnowsDeciders), req.kind
            assert kind.deciders(req, env, staff) == await kind.requirements(req, env), req
        for user in (*PEOPLE, "stranger"):
            fast = await open_requests_for(env, user)
            assert fast == await one_by_one(env, user), user
            listed += len(fast)
    return listed


@pytest.mark.parametrize("seed_", [1, 2, 3])
async def test_pending_in_bulk_lists_what_one_by_one_lists(h: Harness, seed_: int) -> None:
    await seed(h, seed_)
    async with h.db.uow() as uow:
        opened = await uow.requests.open_with_votes(CORP)
        assert len(opened) > 50 and sum(1 for _, v in opened if v) > 20
        assert {r.kind for r, _ in opened} == set(KINDS.kinds)
    assert await compare(h) > 100
    # The owner changes and an admin leaves: both ways follow the store as it is now.
    async with h.db.uow() as uow:
        await uow.session.execute(update(Member).where(Member.user_id == "zhangsan")
                                  .values(level=ADMIN))
        await uow.session.execute(update(Member).where(Member.user_id == "adm1")
                                  .values(level=OWNER))
        await uow.session.execute(update(Member).where(Member.user_id == "lisi")
                                  .values(active=False))
        await uow.commit()
    assert await compare(h) > 100


async def test_open_with_votes_keeps_the_order_votes_were_cast(h: Harness) -> None:
    await seed(h, 4)
    async with h.db.uow() as uow:
        opened = await uow.requests.open_with_votes(CORP)
        assert [r.id for r, _ in opened] == [r.id for r in await uow.requests.open_for(CORP)]
        for req, votes in opened:
            assert votes == await uow.requests.votes_of(req.id)
        # Closed requests' votes are not read with them.
        closed = (await uow.session.execute(
            select(RequestRow.id).where(RequestRow.state == "rejected"))).scalars().all()
        assert closed and not {r.id for r, _ in opened} & set(closed)


async def test_pending_with_no_open_request_says_so(h: Harness) -> None:
    async with h.db.uow() as uow:
        env = Context(uow, h.settings, h.clock.now(), request_kinds=KINDS)
        assert await open_requests_for(env, "lisi") == []
    await h.ask("lisi", "pending", "There are no open requests")
