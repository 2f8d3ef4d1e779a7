"""RequestRepo hands out frozen core requests and changes them only through intent-named
writes (transition, set_track, set_payload), on SQLite and PostgreSQL (issue 16)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.core.domain.requests import Request, RequestConflict, State
from storage.db import Database

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CORP = "c1"


def fields(kind: str = "grant", **kw: Any) -> dict[str, Any]:
    return {"corp_id": CORP, "kind": kind, "state": State.PENDING, "requester_id": "a",
            "target_id": "b", "conversation_id": "cid", "reason": "why",
            "payload": {"lang": "en", "copies": ["x"]}, "created_at": NOW,
            "expires_at": NOW + timedelta(days=1), "source_message_id": "m1", **kw}


async def test_a_request_is_a_frozen_value_with_a_read_only_payload(db: Database) -> None:
    async with db.uow() as uow:
        req = await uow.requests.create(**fields(), savepoint=True)
        assert isinstance(req, Request) and req.id > 0 and req.public_id == f"R-{req.id}"
        assert (req.state, req.version, req.card_out_track_id) == (State.PENDING, 1, None)
        with pytest.raises(dataclasses.FrozenInstanceError):
            req.state = State.APPLIED  # type: ignore[misc]
        with pytest.raises(TypeError):
            req.payload["lang"] = "zh"  # type: ignore[index]
        assert await uow.requests.find(req.id, for_update=True) == req
        await uow.commit()


async def test_writes_return_the_request_as_it_now_is_and_are_stored(db: Database) -> None:
    async with db.uow() as uow:
        req = await uow.requests.create(**fields())
        tracked = await uow.requests.set_track(req.id, "baton-c1-R1")
        assert tracked.card_out_track_id == "baton-c1-R1" and req.card_out_track_id is None
        approved = await uow.requests.transition(req.id, State.APPROVED, by="x")
        assert (approved.state, approved.version, approved.decided_at) == (
            State.APPROVED, 2, None)
        done = await uow.requests.transition(req.id, State.APPLIED, by="x", at=NOW)
        assert (done.state, done.version, done.decided_by, done.decided_at) == (
            State.APPLIED, 3, "x", NOW)
        paid = await uow.requests.set_payload(req.id, {**done.payload, "batch": "B-1"})
        assert dict(paid.payload) == {"lang": "en", "copies": ["x"], "batch": "B-1"}
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.requests.find(req.id) == paid
        assert await uow.requests.by_kind(CORP, "grant") == [paid]
        assert await uow.requests.by_ids(CORP, {req.id, 999}) == {req.id: paid}
        assert await uow.requests.open_for(CORP) == []


async def test_a_savepoint_rollback_undoes_a_write_and_a_conflict_is_the_cores(
        db: Database) -> None:
    async with db.uow() as uow:
        req = await uow.requests.create(**fields(kind="owner_transfer"), savepoint=True)
        with pytest.raises(RequestConflict):
            await uow.requests.create(**fields(kind="owner_transfer"), savepoint=True)
        with pytest.raises(RuntimeError):
            async with uow.savepoint():
                await uow.requests.set_payload(req.id, {"previous_owner": "a"})
                raise RuntimeError("apply failed")
        again = await uow.requests.find(req.id)
        assert again == req and again is not req
        assert [r.id for r in await uow.requests.open_for(CORP)] == [req.id]
        await uow.commit()
