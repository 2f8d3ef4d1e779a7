"""Logging set up once at start, with a filter that keeps secrets and raw CR/LF out."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import TextIO

# A quote may come escaped (``\\"``) when a JSON document is logged inside another string.
_Q = r"""\\*["']?"""
_PATTERNS = [
    # a whole sessionWebhook URL, then any session / ticket / token query parameter
    re.compile(r"(sessionWebhook" + _Q + r"\s*[:=]\s*" + _Q + r")[^\"',}\s\\]+", re.I),
    re.compile(r"(session=)[^&\s\"'\\]+"),
    re.compile(r"(ticket=)[^&\s\"'\\]+"),
    re.compile(r"(access_token=)[^&\s\"'\\]+"),
    re.compile(r"(" + _Q + r"(?:accessToken|access_token|ticket|clientSecret|client_secret|appSecret|"
               r"x-acs-dingtalk-access-token)" + _Q + r"\s*[:=]\s*" + _Q + r")[^\"',}&\s\\]+",
               re.I),
]
# Characters that would break a log line or drive a terminal, escaped visibly: CR and LF as
# ``\\r`` ``\\n``, the other controls and line separators (and bidi controls) as ``\\xNN`` or
# ``\\uNNNN``. A tab stays.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e"
                     "\u2066-\u2069]")
_NAMED = {"\r": "\\r", "\n": "\\n"}


def _escape(m: re.Match[str]) -> str:
    c = m.group(0)
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def one_line(text: str) -> str:
    """``text`` as one log line: CR/LF and other breaking characters escaped, visibly."""
    return _UNSAFE.sub(_escape, text)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with ``secrets`` and every token, ticket, client secret and session webhook
    replaced by ``***`` (also for text stored outside the logs, such as an outbox error)."""
    for s in secrets:
        if s and len(s) >= 6:
            text = text.replace(s, "***")
    for p in _PATTERNS:
        text = p.sub(r"\1***", text)
    return text


class RedactingFilter(logging.Filter):
    """Masks tokens, tickets, secrets and session webhooks; folds CR/LF from input."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s and len(s) >= 6)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not raise into the caller: show both parts
            msg = f"{record.msg!s} % {record.args!r}"
            record.args = None
            record.msg = msg
        clean = one_line(self.redact(msg))
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:  # a traceback keeps its own lines
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line (``log.json_format``): ts (UTC, ISO 8601), level, logger,
    msg, and exc when there is a traceback. Runs after the redacting filter."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def make_handler(secrets: tuple[str, ...] = (), stream: TextIO | None = None, *,
                 json_format: bool = False) -> logging.Handler:
    """The one log handler: one line a record, secrets masked (stderr unless ``stream``)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_format else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    return handler


def setup_logging(level: str = "INFO", secrets: tuple[str, ...] = (), *,
                  json_format: bool = False) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    root.handlers[:] = [make_handler(secrets, json_format=json_format)]
    # The SDK logs the whole gateway answer (ticket included) at INFO; keep it quiet.
    logging.getLogger("dingtalk_stream").setLevel(logging.WARNING)
    # APScheduler is only the alarm clock: its per-tick INFO lines are noise. Its warnings
    # (a skipped or missed run) are news: the alarm's jobs return at once, so none is expected.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
