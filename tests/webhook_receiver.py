"""A webhook receiver shared by the transport and end-to-end tests (not a test itself): a
real aiohttp server on port 0 that verifies each request's signature with the receiver-side
function the docs show, records what came, deduplicates on the event id, and can be told to
fail, or to hang until released.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.core.domain.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify


@dataclass
class Hit:
    path: str
    event_id: str
    seq: int
    type: str
    verified: bool
    body: dict[str, Any]


@dataclass
class Endpoint:
    """One path's behaviour: answer ``status`` (after ``fail`` failures with 500), or hang
    until ``release`` is set."""

    fail: int = 0
    fail_at: dict[int, int] = field(default_factory=dict)   # seq -> failures left
    status: int = 200
    hang: bool = False
    hang_seq: int | None = None        # hang once, on the first request for this seq
    release: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0


class Receiver:
    def __init__(self, secrets: dict[str, str], now: Callable[[], float] = time.time) -> None:
        self.secrets = secrets           # path -> secret
        self.now = now
        self.hits: list[Hit] = []
        self.endpoints: dict[str, Endpoint] = defaultdict(Endpoint)
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        for ep in self.endpoints.values():
            ep.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        raw = await request.read()
        ep = self.endpoints[name]
        body = json.loads(raw)
        ok = verify(self.secrets.get(name, ""), request.headers.get(SIGNATURE_HEADER, ""), raw,
                    self.now())
        self.hits.append(Hit(name, request.headers.get(EVENT_ID_HEADER, ""), int(body["seq"]),
                             str(body["type"]), ok and body["id"] == request.headers.get(
                                 EVENT_ID_HEADER), body))
        self.changed.set()
        if ep.hang or ep.hang_seq == int(body["seq"]):
            ep.hang_seq = None
            ep.waiting += 1
            await ep.release.wait()
            ep.waiting -= 1
        if not ok:
            return web.Response(status=401, text="bad signature")
        seq = int(body["seq"])
        if ep.fail > 0 or ep.fail_at.get(seq, 0) > 0:
            if ep.fail > 0:
                ep.fail -= 1
            else:
                ep.fail_at[seq] -= 1
            return web.Response(status=500, text="receiver down")
        return web.Response(status=ep.status, text="ok" if ep.status < 300 else "unavailable")

    def of(self, name: str) -> list[Hit]:
        return [h for h in self.hits if h.path == name]

    def unique(self, name: str) -> list[int]:
        """The seqs received at ``name`` after deduplication on the event id, in arrival
        order (what a receiver that drops repeats acts on)."""
        seen: set[str] = set()
        out = []
        for h in self.of(name):
            if h.event_id not in seen:
                seen.add(h.event_id)
                out.append(h.seq)
        return out

    def repeats(self, name: str) -> int:
        counts = Counter(h.event_id for h in self.of(name))
        return sum(n - 1 for n in counts.values())

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0,
                    what: str = "") -> None:
        """Wait for ``predicate`` (re-checked on every request) with a deadline."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"receiver: timed out waiting for {what}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.1))
