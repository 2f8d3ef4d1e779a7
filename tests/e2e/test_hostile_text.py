"""User text echoed in a reply stays text, end to end against the real store: a display name
(from the frame's senderNick) in the ``whoami`` header. A ``[link](javascript:…)``, an
``![image](…)``, a heading, a mention or an HTML tag there is shown, never rendered. The
parser's errors repeating what was typed are tested at the handler level,
tests/handlers/test_hostile_text.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.app import BatonApp
from bot.cli.sandbox import DEMO_USERS, demo_simulator
from bot.core.escape import literal
from dingtalk_sim import Simulator, SimUser
from tests.e2e.conftest import roundtrip
from tests.support import assert_no_live_markup

pytestmark = pytest.mark.e2e

HOSTILE_NAME = ("[点我](javascript:alert(1)) ![i](http://evil.example/p.png) @所有人 "
                "<b>x</b>\n# 已批准 `code`")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with demo_simulator(users=(*DEMO_USERS, SimUser("mallory", HOSTILE_NAME))) as s:
        yield s


async def test_whoami_shows_a_hostile_display_name_as_text(sim: Simulator, bot: BatonApp) -> None:
    text = await roundtrip(sim, "mallory", "whoami", "My permissions")
    assert_no_live_markup(text)
    header = text.split("\n\n")[1]
    assert header == f"**{literal(HOSTILE_NAME)}** (mallory): member"
