"""Logging set up once at start, with a filter that keeps secrets and raw CR/LF out."""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    re.compile(r"(session=)[0-9A-Za-z_\-]+"),
    re.compile(r"(ticket=)[^&\s\"']+"),
    re.compile(r"(access_token=)[^&\s\"']+"),
    re.compile(r"([\"']?(?:accessToken|access_token|ticket|clientSecret|client_secret|appSecret|"
               r"x-acs-dingtalk-access-token)[\"']?\s*[:=]\s*[\"']?)[^\"',}&\s]+", re.I),
]


class RedactingFilter(logging.Filter):
    """Masks tokens, tickets, secrets and session webhooks; folds CR/LF from input."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s and len(s) >= 6)

    def redact(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        for p in _PATTERNS:
            text = p.sub(r"\1***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = self.redact(msg).replace("\r", "\\r").replace("\n", "\\n")
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def setup_logging(level: str = "INFO", secrets: tuple[str, ...] = ()) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root.handlers[:] = [handler]
    # The SDK logs the whole gateway answer (ticket included) at INFO; keep it quiet.
    logging.getLogger("dingtalk_stream").setLevel(logging.WARNING)
