"""The walking skeleton at the handler level (ported from the end-to-end suite, same
assertions): help and whoami in both languages, the admin list from DingTalk's on first
start, too-long and emoji-only messages, did-you-mean, an owner-only command. Redelivery,
reconnection, retries and the webhook keep their runs in tests/e2e/test_foundation.py."""

from __future__ import annotations

import re

import pytest

from tests.handlers.conftest import Harness


@pytest.mark.parametrize(("text", "expect"), [
    ("帮助", "转让主管理员"),
    ("help", "transfer-owner"),
    ("/HELP", "transfer-owner"),
])
async def test_help_in_both_languages(h: Harness, text: str, expect: str) -> None:
    await h.ask("zhaoliu", f" {text}", expect)


async def test_whoami_in_both_languages(h: Harness) -> None:
    zh = await h.ask("zhangsan", " 我的权限", "主管理员")
    assert "zhangsan" in zh
    en = await h.ask("zhaoliu", " whoami", "member")
    assert "zhaoliu" in en and "No business permissions" in en


async def test_admins_comes_from_dingtalk_admin_list_on_first_start(
        h: Harness) -> None:
    zh = await h.ask("zhaoliu", " 管理员", "主管理员")
    assert "张三 (zhangsan)" in zh and "李四 (lisi)" in zh and "王五 (wangwu)" in zh
    en = await h.ask("zhaoliu", " admins", "Owner:")
    assert "Owner: 张三 (zhangsan)" in en


async def test_too_long_message_is_refused_with_its_real_length(
        h: Harness) -> None:
    text = await h.ask("zhaoliu", " help " + "x" * 4995, "too long")
    length = int(re.search(r"\((\d+) characters", text)[1])  # type: ignore[index]
    assert length >= 5000


async def test_emoji_only_message_is_answered_in_the_default_language(
        h: Harness) -> None:
    assert h.settings.locale.lang == "zh"
    text = await h.ask("zhaoliu", " 👍🎉", "帮助")
    assert "Sorry" not in text and "抱歉" in text


async def test_unknown_text_names_the_closest_command(h: Harness) -> None:
    text = await h.ask("zhaoliu", " whoamii", "whoami")
    assert "help" in text


async def test_owner_only_command_refuses_an_admin(h: Harness) -> None:
    await h.ask("lisi", " review status", "Only the owner")
