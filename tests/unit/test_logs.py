"""RedactingFilter: no webhook session, token, ticket or client secret reaches the formatted
log output, and CR/LF from input cannot forge log lines."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bot.logs import RedactingFilter, setup_logging

SECRET = "Zq8-client-secret-Wm3"
SESSION = "c2a5e0c3f3a64b2c9e9d1b0a8f7e6d5c"
TOKEN = "8f14e45fceea167a5a36dedd4bea2543"
TICKET = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
WEBHOOK = f"https://oapi.dingtalk.com/robot/sendBySession?session={SESSION}"


class Capture:
    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.handler.addFilter(RedactingFilter((SECRET,)))
        self.logger = logging.getLogger(f"test.logs.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self.handler)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[str]:
        return self.text.splitlines()


@pytest.fixture
def cap() -> Iterator[Capture]:
    c = Capture()
    try:
        yield c
    finally:
        c.logger.removeHandler(c.handler)


def assert_clean(text: str) -> None:
    for s in (SECRET, SESSION, TOKEN, TICKET):
        assert s not in text, f"{s!r} leaked into: {text!r}"


@pytest.mark.parametrize(("msg", "args"), [
    ("replying via %s", (WEBHOOK,)),
    ("frame: %s", (json.dumps({"sessionWebhook": WEBHOOK, "text": {"content": "hi"}}),)),
    ("GET %s failed", (f"https://oapi.dingtalk.com/topapi/v2/user/get?access_token={TOKEN}",)),
    ("GET %s failed", (f"https://oapi.dingtalk.com/media/upload?type=file&access_token={TOKEN}",)),
    ("token answer %s", (json.dumps({"accessToken": TOKEN, "expireIn": 7200}),)),
    ("token answer %s", (json.dumps({"access_token": TOKEN, "expires_in": 7200}),)),
    ("request header x-acs-dingtalk-access-token: %s", (TOKEN,)),
    ("headers %s", (json.dumps({"x-acs-dingtalk-access-token": TOKEN}),)),
    ("headers %s", ({"x-acs-dingtalk-access-token": TOKEN, "Accept": "application/json"},)),
    ("gateway answer %s", ({"endpoint": "wss://wss-open-connection.dingtalk.com:443/connect",
                            "ticket": TICKET},)),
    ("gateway answer %s", (json.dumps({"endpoint": "wss://x/connect", "ticket": TICKET}),)),
    ("connecting to %s", (f"wss://wss-open-connection.dingtalk.com/connect?ticket={TICKET}",)),
    ("registering with %s", (json.dumps({"clientId": "dingkey", "clientSecret": SECRET}),)),
    ("token request %s", ({"appKey": "dingkey", "appSecret": SECRET},)),
    ("the secret is %s, really", (SECRET,)),
])
def test_secrets_never_reach_the_output(cap: Capture, msg: str, args: tuple[Any, ...]) -> None:
    cap.logger.warning(msg, *args)
    assert len(cap.lines()) == 1
    assert_clean(cap.text)
    assert "***" in cap.text
    assert msg.split("%s", maxsplit=1)[0].strip() in cap.text  # the rest of the message survives


def test_several_secrets_in_one_message(cap: Capture) -> None:
    cap.logger.info("send %s with token %s (ticket=%s) secret %s",
                    WEBHOOK, f"access_token={TOKEN}&x=1", TICKET, SECRET)
    assert_clean(cap.text)
    assert "&x=1" in cap.text


def test_secrets_in_an_exception_traceback_are_masked(cap: Capture) -> None:
    try:
        raise RuntimeError(f"POST {WEBHOOK} and access_token={TOKEN} failed")
    except RuntimeError:
        cap.logger.exception("outbox send failed")
    assert "outbox send failed" in cap.text and "RuntimeError" in cap.text
    assert_clean(cap.text)


def test_cr_lf_from_input_are_folded(cap: Capture) -> None:
    cap.logger.info("command from %s: %s", "zhaoliu",
                    "whoami\r\n2026-01-01 00:00:00 INFO bot.dispatch.dispatcher: forged line\nmore")
    [line] = cap.lines()
    assert "forged line" in line
    assert "\\r\\n" in line and "\\nmore" in line
    assert "\r" not in cap.text.rstrip("\n") and cap.text.count("\n") == 1


def test_clean_messages_are_left_alone(cap: Capture) -> None:
    cap.logger.info("outbox row %d sent to %s", 12, "group:cidSANDBOX")
    assert cap.lines()[0].endswith("outbox row 12 sent to group:cidSANDBOX")


def test_short_configured_secrets_do_not_mask_ordinary_words() -> None:
    f = RedactingFilter(("abc", "", SECRET))
    assert f.redact("abc def") == "abc def"
    assert f.redact(f"x {SECRET} y") == "x *** y"


def test_setup_logging_installs_the_filter(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_sdk = logging.getLogger("dingtalk_stream").level
    try:
        setup_logging("INFO", (SECRET,))
        [handler] = root.handlers
        assert handler.stream is sys.stderr  # type: ignore[attr-defined]
        logging.getLogger("bot.test").info("secret %s via %s\nnext", SECRET, WEBHOOK)
        logging.getLogger("dingtalk_stream.client").info("open_connection: ticket=%s", TICKET)
        err = capsys.readouterr().err
        assert "bot.test" in err and "\\nnext" in err
        assert_clean(err)
        assert "open_connection" not in err  # the SDK is kept at WARNING
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logging.getLogger("dingtalk_stream").setLevel(saved_sdk)


def test_json_format_writes_one_object_a_line_with_secrets_masked() -> None:
    import io

    from bot.logs import make_handler

    out = io.StringIO()
    logger = logging.getLogger("baton.test.json")
    logger.propagate = False
    logger.handlers[:] = [make_handler((SECRET,), out, json_format=True)]
    logger.setLevel(logging.INFO)
    try:
        logger.info("two\nlines with %s", SECRET)
        try:
            raise RuntimeError(f"boom {SECRET}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.handlers.clear()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(x) for x in lines)
    assert first["level"] == "INFO" and first["logger"] == "baton.test.json"
    assert first["msg"] == "two\\nlines with ***" and first["ts"].endswith("+00:00")
    assert second["msg"] == "failed" and "RuntimeError: boom ***" in second["exc"]
    assert SECRET not in out.getvalue()
