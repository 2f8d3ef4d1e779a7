"""User text echoed in a reply stays text, at the handler level against the real store
(ported from the end-to-end suite, same assertions): the parser's errors repeating what was
typed ("didn't expect …", "not a valid name …", unknown commands). A
``[link](javascript:…)``, an ``![image](…)``, a mention or an HTML tag typed there is shown,
never rendered."""

from __future__ import annotations

import pytest

from tests.handlers.conftest import Harness
from tests.support import assert_no_live_markup

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
        h: Harness, typed: str, says: str, echo: str) -> None:
    text = await h.ask("zhaoliu", typed, says)
    assert_no_live_markup(text)
    assert echo in text
