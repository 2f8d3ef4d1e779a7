"""The Stream connection: the unmodified ``dingtalk-stream`` SDK, subclassed where 0.24.3
misbehaves.

What we keep from the SDK: its client class, credential, handler registration and
subscription list, its frame classes (``CallbackMessage``, ``SystemMessage``...) and the
handlers' ``raw_process`` that builds each ack. What we override, and why:

* ``open_connection`` is a blocking ``requests.post`` with no timeout, called on the event
  loop (it freezes every other task, and deadlocks a loopback server on the same loop), and
  it logs the whole answer, ticket included. Ours is an aiohttp call on the shared session,
  with a timeout, that never logs the ticket.
* ``start`` sleeps a fixed 10 s after a network error and reconnects with no jitter; ours
  backs off with jitter (capped), and reconnects at once after a ``disconnect`` frame,
  opening the new connection before the old one is closed (make-before-break).
* ``route_message`` writes every ack to ``self.websocket``, the *current* socket, which after
  a reconnect is not the one the frame came from. Ours acks on the frame's own socket.
* There is no inactivity watchdog: a "zombie" socket that answers pings but delivers
  nothing is never replaced. Ours reconnects after ``watchdog`` seconds of silence.
* A malformed frame kills the 0.24.3 connection; ours logs and skips it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import dingtalk_stream
import websockets
from dingtalk_stream.frames import AckMessage, CallbackMessage, EventMessage, SystemMessage
from dingtalk_stream.version import VERSION_STRING

from bot.config import StreamSettings

log = logging.getLogger(__name__)


class BatonStreamClient(dingtalk_stream.DingTalkStreamClient):  # type: ignore[misc]
    def __init__(self, credential: dingtalk_stream.Credential, *, http: aiohttp.ClientSession,
                 openapi_endpoint: str, settings: StreamSettings,
                 rng: random.Random | None = None) -> None:
        super().__init__(credential, logger=logging.getLogger("dingtalk_stream.client"))
        self._http = http
        self._open_url = openapi_endpoint.rstrip("/") + "/v1.0/gateway/connections/open"
        self._settings = settings
        self._rng = rng or random.Random()
        self._stopping = asyncio.Event()
        self._readers: set[asyncio.Task[None]] = set()
        self._inflight: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.frames_received = 0
        self.frames_refused = 0
        self.on_ack: Callable[[float], None] | None = None   # ack latency, seconds
        self.on_state: Callable[[str], None] = lambda _state: None

    # ---- connection ---------------------------------------------------------------------
    async def open_connection_async(self) -> dict[str, Any]:
        topics: list[dict[str, str]] = []
        if self._is_event_required:
            topics.append({"type": "EVENT", "topic": "*"})
        topics += [{"type": "CALLBACK", "topic": t} for t in self.callback_handler_map]
        body = {
            "clientId": self.credential.client_id,
            "clientSecret": self.credential.client_secret,
            "subscriptions": topics,
            "ua": f"dingtalk-baton/{VERSION_STRING}",
            "localIp": "",
        }
        timeout = aiohttp.ClientTimeout(total=self._settings.connect_timeout)
        async with self._http.post(self._open_url, json=body, timeout=timeout,
                                   headers={"Accept": "application/json"}) as resp:
            text = await resp.text()
            if resp.status != 200:
                # The body of a refusal carries no secret; the ticket only comes on success.
                raise ConnectionError(f"gateway refused the connection: HTTP {resp.status} {text[:200]}")
            data: dict[str, Any] = json.loads(text)
        if "endpoint" not in data or "ticket" not in data:
            raise ConnectionError("gateway answer lacks endpoint/ticket")
        return data

    async def start(self) -> None:
        """Hold a connection until :meth:`stop`. Never returns otherwise."""
        self.pre_start()
        failures = 0
        while not self._stopping.is_set():
            try:
                conn = await self.open_connection_async()
                uri = f'{conn["endpoint"]}?ticket={quote_plus(conn["ticket"])}'
                ws = await websockets.connect(
                    uri, open_timeout=self._settings.connect_timeout, proxy=None,
                    max_queue=256,
                    # No permessage-deflate: frames are small JSON, and inflating each one
                    # and deflating each ack cost more CPU than the bytes they save.
                    compression=None,
                    # The hard cap (a bigger frame would close the socket with 1009); frames
                    # between max_frame_bytes and this are acked and dropped in _serve.
                    max_size=max(16 * self._settings.max_frame_bytes, 4 * 1024 * 1024),
                )
            except (OSError, TimeoutError, aiohttp.ClientError, ValueError,
                    websockets.exceptions.WebSocketException) as e:
                failures += 1
                delay = min(self._settings.reconnect_max, 0.5 * 2 ** min(failures, 8))
                delay *= 0.5 + self._rng.random() / 2
                log.warning("stream connect failed (%s: %s); retrying in %.1fs",
                            type(e).__name__, e, delay)
                self.on_state("connect_failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            failures = 0
            self.websocket = ws
            log.info("stream connected (endpoint %s)", conn["endpoint"].split("?")[0])
            self.connected.set()
            self.on_state("connected")
            replace = asyncio.Event()
            reader = asyncio.create_task(self._serve(ws, replace))
            self._readers.add(reader)
            reader.add_done_callback(self._readers.discard)
            stop_wait = asyncio.create_task(self._stopping.wait())
            replace_wait = asyncio.create_task(replace.wait())
            await asyncio.wait({stop_wait, replace_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            replace_wait.cancel()
            self.connected.clear()
            if not self._stopping.is_set():
                self.reconnects += 1
                self.on_state("reconnecting")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop reading, let in-flight frames finish and ack, then close."""
        self._stopping.set()
        if self._inflight:
            _done, late = await asyncio.wait(set(self._inflight), timeout=grace)
            for t in late:      # not acked: the gateway redelivers, the dedupe makes it safe
                t.cancel()
        for t in list(self._readers):
            t.cancel()
        if self._readers:
            await asyncio.gather(*self._readers, return_exceptions=True)
        ws = self.websocket
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    def kick(self) -> None:
        """Drop the current socket (used by tests and the operator endpoint)."""
        ws = self.websocket
        if ws is not None:
            ws.transport.abort()

    async def _serve(self, ws: Any, replace: asyncio.Event) -> None:
        mine: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: no extra task for every frame.
                    async with asyncio.timeout(self._settings.watchdog):
                        raw = await ws.recv()
                except TimeoutError:
                    log.warning("no frame for %.0fs; replacing the connection", self._settings.watchdog)
                    break
                self.frames_received += 1
                try:
                    frame = json.loads(raw)
                    if not isinstance(frame, dict):
                        raise ValueError("frame is not an object")
                except ValueError as e:
                    log.warning("skipping a malformed frame (%s)", e)
                    continue
                if len(raw) > self._settings.max_frame_bytes:
                    await self._refuse_oversized(ws, frame, len(raw))
                    continue
                topic = (frame.get("headers") or {}).get("topic")
                if frame.get("type") == SystemMessage.TYPE and topic == SystemMessage.TOPIC_DISCONNECT:
                    await self._ack_system(ws, frame)
                    log.info("server asked to disconnect; reconnecting now")
                    break
                t = asyncio.create_task(self._dispatch(ws, frame))
                mine.add(t)
                self._inflight.add(t)
                t.add_done_callback(mine.discard)
                t.add_done_callback(self._inflight.discard)
        except websockets.exceptions.ConnectionClosed as e:
            log.warning("stream connection closed (%s)", e.rcvd.code if e.rcvd else "no close frame")
        finally:
            replace.set()
            # Make-before-break: frames already taken from this socket finish and ack on it.
            if mine:
                await asyncio.wait(set(mine), timeout=10)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _refuse_oversized(self, ws: Any, frame: dict[str, Any], size: int) -> None:
        """Ack a frame over the size limit without handling it: it is not retried, and the
        connection (and every other message on it) carries on."""
        self.frames_refused += 1
        mid = str((frame.get("headers") or {}).get("messageId") or "")
        log.warning("refusing a %d-byte frame %s (limit %d bytes)", size, mid,
                    self._settings.max_frame_bytes)
        ack = AckMessage()
        ack.code = AckMessage.STATUS_BAD_REQUEST
        ack.headers.message_id = mid
        ack.headers.content_type = "application/json"
        ack.message = "frame too large"
        await self._send_ack(ws, ack)

    async def _ack_system(self, ws: Any, frame: dict[str, Any]) -> None:
        ack = await self.system_handler.raw_process(SystemMessage.from_dict(frame))
        await self._send_ack(ws, ack)

    async def _dispatch(self, ws: Any, frame: dict[str, Any]) -> None:
        arrived = time.monotonic()
        kind = frame.get("type")
        ack: AckMessage | None = None
        try:
            if kind == SystemMessage.TYPE:
                ack = await self.system_handler.raw_process(SystemMessage.from_dict(frame))
            elif kind == CallbackMessage.TYPE:
                msg = CallbackMessage.from_dict(frame)
                handler = self.callback_handler_map.get(msg.headers.topic)
                if handler is None:
                    ack = AckMessage()
                    ack.code = AckMessage.STATUS_NOT_IMPLEMENT
                    ack.headers.message_id = msg.headers.message_id
                    ack.headers.content_type = "application/json"
                    ack.message = "topic not handled"
                else:
                    ack = await handler.raw_process(msg)
            elif kind == EventMessage.TYPE:
                ack = await self.event_handler.raw_process(EventMessage.from_dict(frame))
            else:
                log.warning("unknown frame type %r", kind)
        except Exception:
            # No ack: the server may redeliver; the inbound dedupe makes that safe.
            log.exception("frame %s failed", (frame.get("headers") or {}).get("messageId"))
            return
        if ack is not None:
            await self._send_ack(ws, ack)
            if self.on_ack is not None and kind == CallbackMessage.TYPE:
                self.on_ack(time.monotonic() - arrived)

    @staticmethod
    async def _send_ack(ws: Any, ack: AckMessage) -> None:
        try:
            await ws.send(json.dumps(ack.to_dict(), ensure_ascii=False))
        except websockets.exceptions.ConnectionClosed:
            log.info("socket closed before ack %s could be sent", ack.headers.message_id)
