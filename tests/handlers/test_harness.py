"""The handler layer's own harness: each test gets an empty store (the migrated one is
reused, so emptying it must be complete: rows and numbering), and Baton answers from it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.ports import Directory, Messenger, Todos
from storage.models import AuditEntry, Member, OutboxMessage, Request
from tests.handlers.conftest import FakeDingTalk, Harness


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_starts_on_an_empty_store_numbered_from_one(h: Harness, run: int) -> None:
    async with h.db.uow() as uow:       # bootstrap wrote the owner and admins, nothing else
        assert (await uow.session.execute(select(func.count()).select_from(Request))).scalar_one() == 0
        assert (await uow.session.execute(select(func.count()).select_from(OutboxMessage))
                ).scalar_one() == 0
        members = (await uow.session.execute(select(Member.user_id))).scalars().all()
        assert sorted(members) == ["lisi", "wangwu", "zhangsan"]
        [first] = (await uow.session.execute(select(AuditEntry.seq))).scalars().all()
        assert first == 1
    text = await h.ask("lisi", "授权 @钱七 crm.export", "R-1", ("qianqi",))   # not R-2 on run 2
    assert "已发起审批" in text


def test_the_fake_dingtalk_stands_where_the_client_stands() -> None:
    """The handler layer's fake fills the same ports as the OpenAPI client: a method the
    ports gain and the fake lacks fails here, not as an AttributeError deep in a handler."""
    fake = FakeDingTalk()
    assert isinstance(fake, Messenger)
    assert isinstance(fake, Directory)
    assert isinstance(fake, Todos)
