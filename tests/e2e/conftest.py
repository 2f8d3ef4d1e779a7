"""End-to-end fixtures: the real bot (BatonApp, as `baton run` builds it) against the loopback
simulator, through the real dingtalk-stream SDK over real sockets on port 0."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator

import pytest

from bot.app import BatonApp
from bot.cli.sandbox import DEMO_GROUP, demo_simulator, sim_settings
from bot.config import Settings
from dingtalk_sim import Simulator
from tests.conftest import _pg_database, _pg_state, _reset_pg

GROUP = DEMO_GROUP
CARD = "baton-dingsandboxcorp-R{}"   # a request card's outTrackId, by request number


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with demo_simulator() as s:
        yield s


@pytest.fixture
def pg_url() -> str:
    """This session's PostgreSQL database, emptied; skips, saying why, without a server."""
    url = _pg_database()
    if url is None:
        pytest.skip(str(_pg_state.get("why")))
    asyncio.run(_reset_pg(url))
    return url


@pytest.fixture
def settings(sim: Simulator, db_url: str) -> Settings:
    return sim_settings(sim, db_url)


def dump_tasks() -> str:
    """Every pending asyncio task with its stack: what a stuck teardown is waiting on."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()}: {task!r}", file=out)
        task.print_stack(file=out)
    return out.getvalue()


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[BatonApp]:
    app = BatonApp(settings)
    await app.__aenter__()
    try:
        await app.wait_connected()
        yield app
    finally:
        # A shutdown must be bounded; if it is not, fail here and say what it waits on.
        stop = asyncio.ensure_future(app.__aexit__(None, None, None))
        done, _ = await asyncio.wait({stop}, timeout=60)
        if not done:
            stacks = dump_tasks()
            stop.cancel()
            pytest.fail("BatonApp did not stop within 60 s; pending tasks:\n" + stacks)
        stop.result()


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


async def click(sim: Simulator, user: str, card: str, action: str,
                params: dict[str, str] | None = None) -> str:
    """Click and wait for the ack; returns what only the clicker now sees."""
    d = sim.click(user, card, action, params or {"request_id": card.rsplit("-", 1)[-1]})
    await sim.until(lambda: sim.acks(d.message_id), what=f"the ack of {user}'s {action}")
    card_state = sim.cards().get(card)
    return (card_state.private.get(user, {}).get("notice", "") if card_state else "")


async def card_status(sim: Simulator, card: str, status: str) -> dict[str, str]:
    return await sim.until(
        lambda: (c := sim.cards().get(card)) is not None and c.params.get("status") == status
        and c.params, what=f"card {card} to show {status}")
