"""End-to-end fixtures: the real bot (BatonApp, as `baton run` builds it) against the loopback
simulator, through the real dingtalk-stream SDK over real sockets on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bot.app import BatonApp
from bot.config import Settings
from bot.sandbox import DEMO_GROUP, demo_simulator, sim_settings
from bot.sim import Simulator

GROUP = DEMO_GROUP


@pytest.fixture
def sim() -> Iterator[Simulator]:
    s = demo_simulator()
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def settings(sim: Simulator, db_url: str) -> Settings:
    return sim_settings(sim, db_url)


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[BatonApp]:
    async with BatonApp(settings) as app:
        await app.wait_connected()
        yield app


async def reply_to(sim: Simulator, conversation: str, contains: str, *, after: int = 0,
                   timeout: float = 10.0) -> str:
    """Wait for Baton's next message in ``conversation`` that contains ``contains``."""
    def found() -> str | None:
        for m in sim.messages(conversation)[after:]:
            if contains in m.text:
                return m.text
        return None
    return await sim.until(found, timeout=timeout, what=f"a reply containing {contains!r}")


async def roundtrip(sim: Simulator, user: str, text: str, contains: str,
                    conversation: str = GROUP) -> str:
    """Say ``text`` and wait for the answer; a barrier proving earlier sends are done."""
    n = len(sim.messages(conversation))
    sim.say(user, text, conversation_id=conversation)
    return await reply_to(sim, conversation, contains, after=n)
