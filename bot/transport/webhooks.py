"""Webhook POSTs over the process's one shared ``aiohttp.ClientSession``.

The wire form: the body is the event's JSON (UTF-8, keys sorted, no spaces); the headers
carry the signature (:func:`bot.core.domain.webhooks.sign`), the event id (the receiver's
idempotency key) and its type. Redirects are not followed (a signed body must not wander
to another host) and the answer's body is not read beyond a short excerpt for the error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from bot.core.domain.webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    sign,
)
from bot.ports import WebhookFailed

USER_AGENT = "Baton-Webhooks/1"


def event_body(event: Mapping[str, Any]) -> bytes:
    """The bytes that are signed and sent."""
    return json.dumps(event, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def event_headers(secret: str, event: Mapping[str, Any], body: bytes, sent_at: int,
                  ) -> dict[str, str]:
    return {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: str(event["id"]), EVENT_TYPE_HEADER: str(event["type"]),
            SIGNATURE_HEADER: sign(secret, sent_at, body)}


class HttpWebhooks:
    """The :class:`bot.ports.Webhooks` port over aiohttp."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self._http = http

    async def post_event(self, url: str, secret: str, event: Mapping[str, Any], *,
                         sent_at: int, timeout: float) -> None:
        body = event_body(event)
        headers = event_headers(secret, event, body, sent_at)
        try:
            async with self._http.post(url, data=body, headers=headers, allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                if 200 <= resp.status < 300:
                    return
                excerpt = (await resp.content.read(200)).decode("utf-8", "replace")
                raise WebhookFailed(resp.status, excerpt.strip() or resp.reason or "")
        except TimeoutError:
            raise WebhookFailed(None, f"no answer within {timeout:g}s") from None
        except aiohttp.ClientError as e:
            raise WebhookFailed(None, f"{type(e).__name__}: {e}") from None
        except asyncio.CancelledError:
            raise
