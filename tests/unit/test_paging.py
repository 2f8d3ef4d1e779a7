"""The pager, pure: which items a page holds, and every page within DingTalk's limit."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.paging import (
    MESSAGE_BYTES,
    TEXT_BYTES,
    TITLE_BYTES,
    PageOutOfRange,
    clip,
    compose,
    encoded_size,
    page_count,
    pages,
    window,
)


@pytest.mark.parametrize(("total", "per_page", "pages_"), [
    (0, 50, 1), (1, 50, 1), (50, 50, 1), (51, 50, 2), (300, 40, 8), (500, 20, 25),
    (5000, 50, 100), (6500, 50, 130),
])
def test_page_count(total: int, per_page: int, pages_: int) -> None:
    assert page_count(total, per_page) == pages_


@pytest.mark.parametrize(("total", "per_page", "page", "start", "stop", "last", "paged"), [
    (0, 50, 1, 0, 0, True, False),
    (7, 50, 1, 0, 7, True, False),
    (120, 50, 1, 0, 50, False, True),
    (120, 50, 2, 50, 100, False, True),
    (120, 50, 3, 100, 120, True, True),
    (6500, 50, 130, 6450, 6500, True, True),
])
def test_window(total: int, per_page: int, page: int, start: int, stop: int,
                last: bool, paged: bool) -> None:
    w = window(total, per_page, page)
    assert (w.start, w.stop, w.size, w.last, w.paged) == (start, stop, stop - start, last, paged)


@pytest.mark.parametrize(("total", "page", "pages_"), [(120, 4, 3), (0, 2, 1), (50, 2, 1)])
def test_a_page_past_the_end_says_how_many_there_are(total: int, page: int,
                                                     pages_: int) -> None:
    with pytest.raises(PageOutOfRange) as info:
        window(total, 50, page)
    assert (info.value.page, info.value.pages) == (page, pages_)


@pytest.mark.parametrize("bad", [0, -1])
def test_pages_are_numbered_from_one(bad: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        window(10, 5, bad)


@pytest.mark.parametrize(("text", "size"), [
    ("abc", 3), ("权限", 6), ("a\nb", 4), ('say "hi"', 10), ("\\", 2), ("\x01", 6), ("", 0),
])
def test_encoded_size_is_what_the_json_string_takes(text: str, size: int) -> None:
    assert encoded_size(text) == size


@pytest.mark.parametrize(("line", "budget", "out"), [
    ("short", 10, "short"),
    ("abcdefghij", 8, "abcde…"),              # the ellipsis takes 3 bytes
    ("权限权限权限", 10, "权限…"),
    ("see `crm.export` now", 12, "see …"),   # no code span left open
    ("**bold** and **more**", 17, "**bold** and …"),
    ("abc", 2, ""),
])
def test_clip(line: str, budget: int, out: str) -> None:
    assert clip(line, budget) == out
    assert encoded_size(clip(line, budget)) <= budget


def test_compose_keeps_short_lines_whole_and_clips_only_the_long_ones() -> None:
    lines = ["- short"] * 10 + ["- " + "长" * 20_000]
    text = compose("### head", lines, "Page 1 of 2.")
    assert encoded_size(text) <= TEXT_BYTES
    body = text.split("\n\n")[1].split("\n")
    assert body[:10] == ["- short"] * 10 and body[10].endswith("…")
    assert text.startswith("### head\n\n") and text.endswith("\n\nPage 1 of 2.")


def test_compose_refuses_a_footer_that_cannot_fit() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        compose("x" * 100, ["a"], "y" * 100, limit=150)


def test_a_whole_page_with_its_title_fits_dingtalks_msg_param() -> None:
    lines = ['- "名字" \\ ' + "长" * 400] * 50
    text = compose("### " + "标" * 30, lines, "第 1/2 页。发送 `下一页` 查看第 2 页。")
    title = "题" * 100                      # a title is at most 100 characters
    msg_param = json.dumps({"title": title, "text": text}, ensure_ascii=False).encode()
    assert len(msg_param) <= MESSAGE_BYTES
    assert encoded_size(title) + 40 <= TITLE_BYTES


LINE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=400)


@given(st.lists(LINE, max_size=300), st.integers(min_value=1, max_value=60))
def test_every_item_is_on_exactly_one_page_in_order(items: list[str], per_page: int) -> None:
    got = pages(items, per_page)
    assert [x for page in got for x in page] == items
    assert len(got) == page_count(len(items), per_page)
    assert all(1 <= len(p) <= per_page for p in got) or items == []


@given(st.lists(LINE.filter(lambda s: "\n" not in s), max_size=120),
       st.integers(min_value=1, max_value=60), st.integers(min_value=200, max_value=TEXT_BYTES))
def test_every_page_is_within_the_limit_and_keeps_what_fits(
        items: list[str], per_page: int, limit: int) -> None:
    head, foot = "### Members holding crm.export (6500)", "Page 1 of 130. Send `next`."
    for page in pages(items, per_page):
        text = compose(head, page, foot, limit=limit)
        assert encoded_size(text) <= limit
        body = text[len(head) + 2:len(text) - len(foot) - 2].split("\n") if page else []
        assert len(body) == len(page)
        for got, line in zip(body, page, strict=True):
            assert got == line or (got.endswith("…") or got == "")
        if encoded_size("\n".join(page)) + encoded_size(head) + encoded_size(foot) + 8 <= limit:
            assert body == list(page)          # a page that fits is left as it is
