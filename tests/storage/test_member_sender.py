"""A command's sender crosses the storage line as a frozen core value (``Sender``); what a
handler changes about them goes through the member repository, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.domain.members import ADMIN, MEMBER, Sender
from storage.db import Database

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CORP = "c1"


async def test_upsert_sender_creates_names_and_hands_out_a_value(db: Database) -> None:
    async with db.uow() as uow:
        amy = await uow.members.upsert_sender(CORP, "amy", NOW, name="Amy")
        assert amy == Sender(CORP, "amy", "Amy", MEMBER, None, True, None, None)
        with pytest.raises(dataclasses.FrozenInstanceError):
            amy.level = ADMIN  # type: ignore[misc]
        row = await uow.members.get(CORP, "amy")
        assert row is not None
        await uow.members.set_level(row, ADMIN, NOW)
        again = await uow.members.upsert_sender(CORP, "amy", NOW, name=None)
        assert (again.name, again.level) == ("Amy", ADMIN)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.members.sender(CORP, "amy") == again
        assert await uow.members.sender(CORP, "ghost") is None


async def test_upsert_senders_reads_a_batch_as_values(db: Database) -> None:
    async with db.uow() as uow:
        await uow.members.upsert(CORP, "bob", NOW, name="Bob", level=ADMIN)
        got = await uow.members.upsert_senders(CORP, [("bob", None), ("cy", "Cy")], NOW)
        await uow.commit()
    assert got == {"bob": Sender(CORP, "bob", "Bob", ADMIN, None, True),
                   "cy": Sender(CORP, "cy", "Cy", MEMBER, None, True)}


async def test_import_mode_is_armed_and_disarmed_through_a_sender(db: Database) -> None:
    until = NOW + timedelta(minutes=10)
    async with db.uow() as uow:
        amy = await uow.members.upsert_sender(CORP, "amy", NOW, name="Amy")
        await uow.members.arm_import(amy, "replace", until)
        await uow.commit()
    async with db.uow() as uow:
        armed = await uow.members.upsert_sender(CORP, "amy", NOW, name=None)
        assert (armed.import_mode, armed.import_mode_until) == ("replace", until)
        assert (amy.import_mode, amy.import_mode_until) == (None, None)   # a value stays
        await uow.members.disarm_import(armed)
        await uow.commit()
    async with db.uow() as uow:
        after = await uow.members.sender(CORP, "amy")
        assert after is not None and (after.import_mode, after.import_mode_until) == (None, None)
