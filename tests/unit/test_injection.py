"""Injection: user-supplied values render literally (``literal()``, every reply template through
``t()``, the parser's errors, and the request card), and log lines never carry a raw line break
from input.

The hostile table gives, for every value, the exact text ``literal()`` must produce. The card
renders of the same values are golden files: ``UPDATE_GOLDEN=1 python -m pytest
tests/unit/test_injection.py`` rewrites ``tests/unit/golden/hostile_cards.json``; review the
diff before committing it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import string
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.approvals.cards import CardView, render_request_card
from bot.core.commands import ERROR_CODES, ParseError, parse, render_help
from bot.core.commands.usage import CATALOGS, render_error
from bot.core.commands.words import resolve_topic
from bot.core.domain.requests import State
from bot.core.domain.transfer import OWNER_TRANSFER
from bot.core.escape import Md, code, joined, literal, param, person
from bot.core.lang import Lang
from bot.logs import RedactingFilter, make_handler, one_line, redact
from bot.texts.catalog import MESSAGES, t

GOLDEN = Path(__file__).parent / "golden" / "hostile_cards.json"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

# Bidi controls and zero-width / invisible characters: none may survive literal().
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"
LINE_BREAKS = "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"
FORBIDDEN = set(BIDI + ZERO_WIDTH + LINE_BREAKS)

# id -> (hostile value, exactly what literal() shows)
HOSTILE: dict[str, tuple[str, str]] = {
    "md_link": ("[点我确认](dingtalk://dingtalkclient/page/link?url=x)",
                "［点我确认］(dingtalk：//dingtalkclient/page/link?url=x)"),
    "md_ref_link": ("[批准][1]", "［批准］［1］"),
    "md_image": ("![logo](http://evil.example/p.png)", "!［logo］(http：//evil.example/p.png)"),
    "emphasis": ("**加粗** *斜体* _斜体_ __粗__ ~~删除~~",
                 "＊＊加粗＊＊ ＊斜体＊ ＿斜体＿ ＿＿粗＿＿ ～～删除～～"),
    "heading": ("# 已批准", "＃ 已批准"),
    "heading_inline": ("名字 ### 标题", "名字 ＃＃＃ 标题"),
    "html_tags": ("<font color=red>警告</font><br/><a href=x>y</a>",
                  "＜font color=red＞警告＜/font＞＜br/＞＜a href=x＞y＜/a＞"),
    "html_entity": ("&#x202E;&#8238;&lt;b&gt; R&D & co", "＆＃x202E;＆＃8238;＆lt;b＆gt; R&D & co"),
    "fake_line": ("\n\n**已批准**", "＊＊已批准＊＊"),
    "fake_lines_crlf": ("ok\r\n- [x] 已完成\r\n> 引用\n\n**R-1 已生效**",
                        "ok - ［x］ 已完成 ＞ 引用  ＊＊R-1 已生效＊＊"),
    "line_separators": ("a\u2028b\u2029c\x85d\ve\ff\x1cg", "a b c d e f g"),
    "list_start": ("- 伪造条目", "－ 伪造条目"),
    "plus_list_start": ("+ 伪造条目", "＋ 伪造条目"),
    "ordered_list_start": ("1. 伪造", "1． 伪造"),
    "ordered_paren_start": ("12) 伪造", "12） 伪造"),
    "number_is_kept": ("1.5 天", "1.5 天"),
    "setext_rule": ("===", "＝=="),
    "thematic_break": ("---", "－--"),
    "quote_start": ("> 引用", "＞ 引用"),
    "indented_code": ("    缩进代码", "缩进代码"),
    "table": ("| a | b |", "｜ a ｜ b ｜"),
    "backslash": ("\\*不是强调\\*", "＼＊不是强调＼＊"),
    "dingtalk_scheme": ("dingtalk://dingtalkclient/action/sendmsg?x=1",
                        "dingtalk：//dingtalkclient/action/sendmsg?x=1"),
    "dtmd_scheme": ("dtmd://dingtalkclient/sendMessage?content=同意",
                    "dtmd：//dingtalkclient/sendMessage?content=同意"),
    "http_url": ("http://evil.example/login", "http：//evil.example/login"),
    "https_in_text": ("详见https://evil.example", "详见https：//evil.example"),
    "javascript": ("javascript:alert(1)", "javascript：alert(1)"),
    "javascript_cjk": ("点击javascript:alert(1)", "点击javascript：alert(1)"),
    "data_uri": ("data:text/html,<b>x</b>", "data：text/html,＜b＞x＜/b＞"),
    "bare_www": ("访问 www.evil.example 领取", "访问 www．evil.example 领取"),
    "autolink": ("<https://evil.example>", "＜https：//evil.example＞"),
    "bidi": ("\u202e\u2066cod.exe\u2069\u202a\u202b\u202c\u202d\u200e\u200f\u061c",
             "cod.exe"),
    "trojan_name": ("张三\u202e)u1( 四李", "张三)u1( 四李"),
    "zero_width": ("张\u200b三\u200c\u200d\u2060\ufeff\u00ad\u180e", "张三"),
    "controls": ("a\x00b\x1b[31mc\x7fd\te\x9b", "ab［31mcd e"),
    "tag_chars": ("a\U000e0041\U000e0042b", "ab"),
    "backticks": ("`code` ```block```", "ˋcodeˋ ˋˋˋblockˋˋˋ"),
    "at_all": ("@所有人 请尽快批准", "＠所有人 请尽快批准"),
    "at_user": ("@zhangsan", "＠zhangsan"),
    "at_in_middle": ("联系 a@b.example", "联系 a＠b.example"),
    "fullwidth_lookalikes": ("＊＊已批准＊＊［链接］（dingtalk：／／x）＠所有人＃标题",
                             "＊＊已批准＊＊［链接］（dingtalk：／／x）＠所有人＃标题"),
    "braces": ("{target} {0}", "{target} {0}"),
    "underscore_in_word": ("crm_admin snake_case_name", "crm_admin snake_case_name"),
    "surrounding_space": ("  \t 李四  ", "李四"),
}


def assert_inert(out: str) -> None:
    """What no rendered user value may contain."""
    assert not FORBIDDEN & set(out), f"line break, bidi or zero-width char in {out!r}"
    for bad in ("[", "](", "<", "://", "`", "@", "**", "__", "~~"):
        assert bad not in out, f"{bad!r} in {out!r}"
    assert not re.search(r"&#?\w+;", out), out
    assert not re.match(r"\s*(?:[-+=>#]|\d+[.)](?:\s|$))", out), out
    assert not re.search(r"(?i)(?:javascript|dingtalk|dtmd|data):", out), out
    assert not re.search(r"(?i)(?<![a-z0-9])www\.", out), out


@pytest.mark.parametrize(("value", "expected"), HOSTILE.values(), ids=HOSTILE.keys())
def test_literal_renders_each_hostile_value_exactly(value: str, expected: str) -> None:
    out = literal(value)
    assert out == expected
    assert_inert(out)
    assert literal(out) == out  # already-literal text is left as it is


def test_literal_truncates_after_cleaning() -> None:
    assert literal("\u200b" * 10 + "x" * 10, 10) == "xxxxxxxxxx"
    assert literal("x" * 11, 10) == "x" * 9 + "…"
    assert literal("[" * 300) == "［" * 199 + "…"


# ---- the property -------------------------------------------------------------------------

# Text rich in what markdown, HTML, URLs and bidi tricks are made of, plus anything at all.
ALPHABET = st.sampled_from(list("[]()<>*_`#~|\\!@&;:/.=-+>\r\n\t 1aZ张") + list(BIDI + ZERO_WIDTH)
                           + list(LINE_BREAKS) + ["://", "http", "javascript:", "dtmd", "www.",
                                                  "&#x202E;", "@所有人", "](", "**"])
HOSTILE_TEXT = st.one_of(st.text(), st.lists(ALPHABET, max_size=40).map("".join))


@settings(max_examples=500, deadline=None)
@given(HOSTILE_TEXT, st.integers(min_value=1, max_value=300))
def test_literal_output_is_always_inert(text: str, limit: int) -> None:
    out = literal(text, limit)
    assert "\r" not in out and "\n" not in out
    assert not FORBIDDEN & set(out)
    assert not re.search(r"\[[^\]]*\]\(", out)  # no [...](
    assert not re.search(r"<[A-Za-z/!?]", out) and "<" not in out
    assert "://" not in out
    assert len(out) <= max(limit, 1)


@settings(max_examples=300, deadline=None)
@given(HOSTILE_TEXT)
def test_literal_is_idempotent(text: str) -> None:
    """Text already passed through literal() (a name, then a card) is shown as it is."""
    once = literal(text)
    assert literal(once) == once


@settings(max_examples=300, deadline=None)
@given(HOSTILE_TEXT, st.integers(min_value=1, max_value=300))
def test_escaping_an_escaped_value_changes_nothing(text: str, limit: int) -> None:
    """The one escaper is idempotent at any limit, and so is ``param`` (what ``t()`` applies)."""
    once = literal(text, limit)
    assert literal(once, limit) == once
    assert isinstance(once, Md)
    assert param(param(text)) == param(text) == literal(text)


# ---- t(): every parameter escaped unless it is Md ---------------------------------------------

LANGS: tuple[Lang, ...] = ("zh", "en")
LINK = "[点我](javascript:alert(1))"


def test_t_escapes_plain_values_and_keeps_md_and_numbers() -> None:
    out = t("whoami_level", "en", name=LINK, user_id="@所有人", level=t("level_admin", "en"))
    assert isinstance(out, Md)
    assert out == "**［点我］(javascript：alert(1))** (＠所有人): admin"
    # A value already rendered (another template, literal(), person(), joined()) goes in as it is.
    md = Md("**bold**")
    assert t("whoami_role", "en", role=md) == "Business role: **bold**"
    assert t("whoami_role", "en", role="**bold**") == "Business role: ＊＊bold＊＊"
    assert t("alert_header", "zh", n=3) == "### Baton 安全提醒（3 条）"
    # Escaping twice is escaping once: pre-escaped values render the same as raw ones.
    assert t("whoami_role", "zh", role=literal(LINK)) == t("whoami_role", "zh", role=LINK)


def test_md_is_lost_by_any_str_operation_so_a_forgotten_wrap_stays_inert() -> None:
    a, b = literal("x"), Md("**y**")
    for plain in (a + b, b + "z", ", ".join([a, b]), f"{b}", b[1:], b.upper()):
        assert not isinstance(plain, Md)
    assert t("whoami_role", "en", role=", ".join([a, b])) == "Business role: x, ＊＊y＊＊"


def test_joined_escapes_each_part_that_is_not_md() -> None:
    out = joined(", ", [person("[a](http://x)", "u1"), "@所有人", Md("`crm.*`"), 3])
    assert isinstance(out, Md)
    assert out == "［a］(http：//x) (u1), ＠所有人, `crm.*`, 3"


def test_code_shows_plain_names_as_written_and_escapes_the_rest() -> None:
    assert code("crm.*") == "`crm.*`"
    assert code("crm_admin:view-1") == "`crm_admin:view-1`"
    assert code("a`b\n[x](y)") == "`aˋb ［x］(y)`"


# ---- every reply template, with anything a user can type in every parameter -----------------

# What a user may type: markdown links and images, headings, mentions, HTML, autolinks,
# line breaks and backticks, mixed with anything at all.
PIECES = st.sampled_from([
    "[x](javascript:alert(1))", "[点我](dingtalk://dingtalkclient/page/link?url=x)",
    "![i](http://evil.example/p.png)", "[批准][1]", "\n[1]: http://evil.example",
    "# heading", "\n# 标题", "### h", "\n===\n", "\n---\n", "\n- item", "\n1. item",
    "@所有人", "@123", "@zhangsan", " @all ", "<a href=x>y</a>", "<img src=x onerror=alert(1)>",
    "<https://evil.example>", "<br/>", "&lt;b&gt;", "\n", "\r\n", "\n\n", "\u2028", "`",
    "```", "http://evil.example", "https://x.example/a?b=c", "www.evil.example",
    "dtmd://dingtalkclient/sendMessage?content=x", "javascript:alert(1)", "data:text/html,x",
    "**", "_", "~~", "|", "\\", "\u202e", "\u200b", " ", "x", "张三", "{", "}", "{0}",
])
USER_INPUT = st.one_of(st.lists(PIECES, min_size=1, max_size=8).map("".join), HOSTILE_TEXT)

_SCHEMES = "javascript|vbscript|data|file|mailto|tel|sms|dingtalk|dtmd|intent"
# The markup a template may put there itself, and a user value must never add.
MARKUP: dict[str, re.Pattern[str]] = {
    "link": re.compile(r"\[[^\]\n]*\]\s*[(\[]|^\s{0,3}\[[^\]\n]*\]:", re.M),
    "image": re.compile(r"!\["),
    "heading": re.compile(r"^[ \t]{0,3}#{1,6}(?:[ \t]|$)|^[ \t]{0,3}(?:=+|-{2,})[ \t]*$", re.M),
    "mention": re.compile(r"@\S"),
    # Entity names and numbers are ASCII: "&¹;" is no entity (the escaper leaves it alone).
    "html": re.compile(r"<[A-Za-z/!?]|&#?[0-9A-Za-z]+;"),
    "autolink": re.compile(rf"(?i)[a-z][a-z0-9+.-]*://|(?<![a-z0-9])www\.|"
                           rf"(?<![a-z0-9])(?:{_SCHEMES}):(?!\s)"),
    "line": re.compile(r"\n"),
    "code": re.compile(r"`"),
}


def markup(md: str) -> dict[str, int]:
    return {name: len(rx.findall(md)) for name, rx in MARKUP.items()}


def fields(text: str) -> list[str]:
    return sorted({f for _, f, _, _ in string.Formatter().parse(text) if f})


TEMPLATES = [(key, lang) for key in sorted(MESSAGES) for lang in LANGS]


def test_every_template_is_covered() -> None:
    assert len(MESSAGES) > 250      # every family's keys are in the catalogue
    assert {"whoami_level", "import_summary", "review_item", "remind_deciders",
            "audit_on"} <= set(MESSAGES)
    for key, lang in TEMPLATES:
        assert MESSAGES[key][lang], (key, lang)


@settings(max_examples=100, deadline=None)
@given(st.lists(USER_INPUT, min_size=1, max_size=4))
@example(["&¹"])            # not an entity, though a Unicode \w+ between & and ; matches
@example(["&lt"])           # would take the template's ";" and decode: escaped
def test_no_reply_template_can_be_broken_out_of(values: list[str]) -> None:
    """Every key of the catalogue, both languages, user input in every parameter: no link,
    image, heading, mention, HTML tag, autolink, line or code span that the template
    rendered with harmless values does not have itself."""
    for key, lang in TEMPLATES:
        names = fields(MESSAGES[key][lang])
        hostile = {f: values[i % len(values)] for i, f in enumerate(names)}
        got = t(key, lang, **hostile)
        want = t(key, lang, **dict.fromkeys(names, "x"))
        assert markup(got) == markup(want), (key, lang, hostile, got)
        assert not FORBIDDEN & (set(got) - set(want)), (key, lang, got)


@settings(max_examples=100, deadline=None)
@given(st.lists(USER_INPUT, min_size=5, max_size=5), st.sampled_from(LANGS))
@example(["ADMIN", "x", "1", "1", "1"], "zh")   # close to a command: a did-you-mean hint
def test_no_parse_error_can_be_broken_out_of(values: list[str], lang: Lang) -> None:
    """The parser's own catalogue: every error code, with and without a usage block, user
    input in every parameter (``got``, ``what``, the numbers), and an unknown help topic.
    The benign rendering looks up the same did-you-mean hint: the hint shows a command name
    from the grammar's table (its own code span), never the text the user typed."""
    got, what, length, lo, hi = values
    cat = CATALOGS[lang]
    assert set(cat.errors) == ERROR_CODES
    for code_ in sorted(ERROR_CODES):
        for usage_of in (None, "grant", "template"):
            for what_ in (what, *sorted(cat.args)):
                hostile = {"got": got, "what": what_, "length": length, "min": lo, "max": hi}
                benign = {"got": "x", "what": what_ if what_ in cat.args else "x",
                          "length": "1", "min": "1", "max": "1"}
                out = render_error(code_, hostile, usage_of, got, lang)
                want = render_error(code_, benign, usage_of, got, lang)
                assert markup(out) == markup(want), (code_, usage_of, hostile, out)
    if resolve_topic(got.strip()) is None and got.strip():
        assert markup(render_help(got, lang)) == markup(render_help("x", lang)), got


@pytest.mark.parametrize("text", [
    "whoami [点我](javascript:alert(1))",
    "我的权限 ![i](http://evil.example/p.png)",
    "template show [x](dingtalk://dingtalkclient/page/link?url=x)",
    "模板 查看 ![i](http://evil.example/p.png)",
    "grant uid:lisi <img/src=x>",
    "[点我](javascript:alert(1))",
    "help [点我](javascript:alert(1))",
    "cancel @所有人",
    "audit uid:lisi #1",
])
@pytest.mark.parametrize("lang", LANGS)
def test_parser_replies_echo_hostile_arguments_inertly(text: str, lang: Lang) -> None:
    try:
        parsed = parse(text)
    except ParseError as e:
        out = e.render(lang)
    else:
        assert parsed.command.command_name == "help"
        out = render_help(getattr(parsed.command, "topic", None), lang)
    assert isinstance(out, Md)
    for bad in ("](", "![", "<img", "@所有人", "://", "javascript:"):
        assert bad not in out, (bad, out)


# ---- the card -----------------------------------------------------------------------------

TZ = "Asia/Shanghai"
EXPIRES = datetime(2024, 5, 3, 1, 0, tzinfo=UTC)
DECIDED = datetime(2024, 5, 1, 16, 30, tzinfo=UTC)


def hostile_views(value: str) -> dict[str, CardView]:
    """The value everywhere a card shows something a user typed or named."""
    pending = CardView(
        request_id="R-7", kind=OWNER_TRANSFER, state=State.PENDING, lang="zh", tz=TZ,
        requester=value, target=value, reason=value, expires_at=EXPIRES, progress=(1, 2),
        agreed=(value,), waiting_for=(value, "李四 (lisi)"),
    )
    rejected = replace(pending, state=State.REJECTED, lang="en", progress=(0, 2), agreed=(),
                       waiting_for=(), decided_by=value, decided_at=DECIDED)
    return {"pending_zh": pending, "rejected_en": rejected}


SHOWN = ("markdown", "progress", "decided")


def renders() -> dict[str, dict[str, dict[str, str]]]:
    out: dict[str, dict[str, dict[str, str]]] = {}
    for case, (value, _) in HOSTILE.items():
        out[case] = {}
        for name, view in hostile_views(value).items():
            card = render_request_card(view)
            out[case][name] = {k: card[k] for k in SHOWN}
    return out


def dump(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_hostile_card_renders_match_the_golden_file() -> None:
    got = renders()
    if UPDATE:
        GOLDEN.write_text(dump(got), encoding="utf-8")
    assert GOLDEN.exists(), f"{GOLDEN.name} is missing; run with UPDATE_GOLDEN=1"
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert set(want) == set(HOSTILE), "the golden file and the hostile table disagree"
    for case in HOSTILE:
        assert got[case] == want[case], \
            f"{case} renders differently; if intended, run with UPDATE_GOLDEN=1"


@pytest.mark.parametrize(("value", "expected"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_values_on_a_card_are_inert(value: str, expected: str) -> None:
    for name, view in hostile_views(value).items():
        card = render_request_card(view)
        benign = render_request_card(replace(
            view, requester="X", target="X", reason="X", agreed=("X",) * len(view.agreed),
            waiting_for=tuple("X" if w == value else w for w in view.waiting_for),
            decided_by="X" if view.decided_by else ""))
        # Exactly the benign card with X replaced by the literal text: nothing else moved.
        for key in card:
            assert card[key] == benign[key].replace("X", expected), (name, key)
        md = card["markdown"]
        assert md.count("\n") == benign["markdown"].count("\n")
        assert md.count("**") == benign["markdown"].count("**")
        for key, text in card.items():
            assert not FORBIDDEN & set(text.replace("\n\n", "")), (name, key)
            for bad in ("[", "](", "<", "://", "`", "@"):
                assert bad not in text, (name, key, bad)


def test_the_golden_file_has_no_live_markup() -> None:
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for case, cards in want.items():
        for name, card in cards.items():
            for key, text in card.items():
                paragraphs = text.split("\n\n")
                assert all("\n" not in p and "\r" not in p for p in paragraphs), (case, name)
                for bad in ("[", "<", "://", "`", "@", *BIDI, *ZERO_WIDTH):
                    assert bad not in text, (case, name, key, bad)


# ---- log lines ----------------------------------------------------------------------------

class Lines:
    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self.stream = io.StringIO()
        self.logger = logging.getLogger(f"test.injection.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.handler = make_handler(secrets, self.stream)
        self.logger.addHandler(self.handler)

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def log() -> Iterator[Lines]:
    lines = Lines()
    try:
        yield lines
    finally:
        lines.logger.removeHandler(lines.handler)


@pytest.mark.parametrize("value", [v for v, _ in HOSTILE.values()] + [
    "whoami\r\n2026-01-01 00:00:00 INFO bot.dispatch.dispatcher: forged",
    "a\rb", "a\nb", "\x1b[2K\x1b[1Aoverwritten", "a\u2028b\u2029c\x85d\v\f",
])
def test_a_log_record_is_one_line_whatever_the_input(log: Lines, value: str) -> None:
    log.logger.info("command from %s: %s", "zhaoliu", value)
    log.logger.warning(value)  # input as the format string itself
    text = log.text
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    assert len(lines) == 2
    for line in lines:
        assert "\r" not in line and "\x1b" not in line
        assert not set(line) & set(LINE_BREAKS + BIDI)
        assert len(line.splitlines()) == 1


def test_cr_lf_are_escaped_visibly(log: Lines) -> None:
    log.logger.info("name %r reason %s", "a\nb", "x\r\ny\u2028z\x1b")
    [line] = log.text.splitlines()
    assert line.endswith("name 'a\\nb' reason x\\r\\ny\\u2028z\\x1b")


def test_a_traceback_keeps_its_own_lines(log: Lines) -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        log.logger.exception("failed on %s", "in\nput")
    first, *rest = log.text.splitlines()
    assert first.endswith("failed on in\\nput")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: bad"


def test_a_bad_format_does_not_raise_into_the_caller(log: Lines) -> None:
    log.logger.info("%d items from %s", "not-a-number")  # noqa: PLE1206 (the point)
    [line] = log.text.splitlines()
    assert "%d items from %s" in line and "not-a-number" in line


def test_one_line_and_redact_helpers() -> None:
    assert one_line("a\r\nb\tc\u202ed") == "a\\r\\nb\tc\\u202ed"
    assert one_line(one_line("a\nb")) == "a\\nb"
    hook = "https://oapi.dingtalk.com/robot/sendBySession?session=0123abcd"
    assert redact(f"POST {hook} failed") == \
        "POST https://oapi.dingtalk.com/robot/sendBySession?session=*** failed"
    assert redact(f"x {hook} y", (hook,)) == "x *** y"
    nested = json.dumps({"data": json.dumps({"sessionWebhook": hook, "ticket": "t-123456"})})
    out = redact(nested)
    assert "0123abcd" not in out and "t-123456" not in out and "oapi.dingtalk.com" not in out
    assert RedactingFilter(("sekret-value",)).redact("a sekret-value b") == "a *** b"
