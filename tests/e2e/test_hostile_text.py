"""User text echoed in a reply stays text, end to end against the real store: a display name
in the ``whoami`` header, and the parser's errors repeating what was typed ("didn't expect …",
"not a valid name …", unknown commands). A ``[link](javascript:…)``, an ``![image](…)``, a
heading, a mention or an HTML tag typed there is shown, never rendered."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from bot.app import BatonApp
from bot.cli.sandbox import DEMO_USERS, demo_simulator
from bot.core.escape import literal
from dingtalk_sim import Simulator, SimUser
from tests.e2e.conftest import roundtrip

pytestmark = pytest.mark.e2e

HOSTILE_NAME = ("[点我](javascript:alert(1)) ![i](http://evil.example/p.png) @所有人 "
                "<b>x</b>\n# 已批准 `code`")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with demo_simulator(users=(*DEMO_USERS, SimUser("mallory", HOSTILE_NAME))) as s:
        yield s


def assert_no_live_markup(text: str) -> None:
    """Nothing a user typed renders: no link, image, mention, tag, autolink or heading."""
    for bad in ("](", "![", "@所有人", "<b>", "<img", "://", "javascript:", "`code`"):
        assert bad not in text, (bad, text)
    assert not re.search(r"(?m)^\s*#+ 已批准", text), text


async def test_whoami_shows_a_hostile_display_name_as_text(sim: Simulator, bot: BatonApp) -> None:
    text = await roundtrip(sim, "mallory", "whoami", "My permissions")
    assert_no_live_markup(text)
    header = text.split("\n\n")[1]
    assert header == f"**{literal(HOSTILE_NAME)}** (mallory): member"


# (what is typed, what the reply says, what it echoes)
PARSE_ERRORS = [
    ("whoami [点我](javascript:alert(1))", "didn't expect", "［点我］(javascript：alert(1))"),
    ("我的权限 ![i](http://evil.example/p.png)", "这里多了", "!［i］(http：//evil.example/p.png)"),
    ("admins <img/src=x>@所有人", "didn't expect", "＜img/src=x＞＠所有人"),
    ("template show [x](javascript:alert(1))", "cannot be used as", "［x］(javascript：alert(1))"),
    ("模板 查看 ![i](http://evil.example/p.png)", "不是有效的", "!［i］(http：//evil.example/p.png)"),
    ("grant uid:lisi <img/src=x>@所有人", "cannot be used as", "＜img/src=x＞＠所有人"),
    ("cancel [x](javascript:alert(1))", "is not a request id", "［x］(javascript：alert(1))"),
    ("[点我](javascript:alert(1))", "我不认识命令", "［点我］(javascript：alert(1))"),
    ("help ![i](http://evil.example/p.png)", "There is no command", "!［i］(http：//evil.example/p.png)"),
]


@pytest.mark.parametrize(("typed", "says", "echo"), PARSE_ERRORS,
                         ids=[f"{i}" for i in range(len(PARSE_ERRORS))])
async def test_parser_errors_echo_hostile_arguments_as_text(
        sim: Simulator, bot: BatonApp, typed: str, says: str, echo: str) -> None:
    text = await roundtrip(sim, "zhaoliu", typed, says)
    assert_no_live_markup(text)
    assert echo in text
