"""The receiver examples in the docs work: the README's ``verify`` and the complete receiver
in docs/webhooks.md are run as written, against signatures Baton makes, and the docs'
receiver is served on a loopback port and fed by Baton's own webhook client."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.domain.webhooks import sign, verify
from bot.ports import WebhookFailed
from bot.transport.webhooks import HttpWebhooks

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def load(path: Path, contains: str) -> dict[str, Any]:
    """Run the first python block of ``path`` that contains ``contains``; its globals."""
    code = next(b for b in BLOCK.findall(path.read_text(encoding="utf-8")) if contains in b)
    scope: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(code, str(path), "exec"), scope)
    return scope


DOCS = load(ROOT / "docs" / "webhooks.md", "class Hook")
README = load(ROOT / "README.md", "def verify")


@pytest.mark.parametrize("example", [DOCS, README], ids=["docs", "readme"])
@given(secret=st.text(min_size=1, max_size=30), body=st.binary(min_size=1, max_size=200),
       t=st.integers(min_value=10**9, max_value=2 * 10**9), skew=st.integers(-400, 400),
       data=st.data())
def test_the_examples_verify_as_baton_does(example: dict[str, Any], secret: str, body: bytes,
                                           t: int, skew: int, data: st.DataObject) -> None:
    header = sign(secret, t, body)
    ex_verify = example["verify"]
    assert ex_verify(secret, header, body, t + skew) == verify(secret, header, body, t + skew)
    i = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1:]
    assert not ex_verify(secret, header, tampered, t)
    assert not ex_verify(secret + "x", header, body, t)


@pytest.fixture
def docs_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    hook = DOCS["Hook"]
    hook.secret = "docs-secret"
    handled: list[dict[str, Any]] = []
    DOCS["handle"] = handled.append
    DOCS["seen"].clear()
    server = HTTPServer(("127.0.0.1", 0), hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handled
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        yield session


async def test_the_docs_receiver_takes_baton_s_posts_once_and_refuses_a_wrong_secret(
        docs_server: tuple[str, list[dict[str, Any]]], http: aiohttp.ClientSession) -> None:
    url, handled = docs_server
    client = HttpWebhooks(http)
    event = {"id": "e1", "seq": 1, "type": "grant.added", "subject": {"type": "user",
                                                                       "id": "赵六"}}
    now = int(time.time())
    await client.post_event(url, "docs-secret", event, sent_at=now, timeout=5)
    await client.post_event(url, "docs-secret", event, sent_at=now, timeout=5)
    with pytest.raises(WebhookFailed) as bad:
        await client.post_event(url, "wrong", {**event, "id": "e2"}, sent_at=now,
                                timeout=5)
    assert bad.value.status == 401
    with pytest.raises(WebhookFailed) as old:   # a replay from long ago
        await client.post_event(url, "docs-secret", {**event, "id": "e3"},
                                sent_at=now - 3600, timeout=5)
    assert old.value.status == 401
    assert handled == [event]          # the repeat was acknowledged, not handled again
    assert DOCS["seen"] == {"e1"}
