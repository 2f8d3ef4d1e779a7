"""The simulated Stream gateway: registration, the websocket, routing, acks, transport faults.

Runs entirely on the simulator's loop. Each push goes to one live, non-draining connection
subscribed to its topic, chosen with a seeded ``random.Random``; with none available it is
queued and pushed when a suitable connection arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import heapq
import itertools
import json
import logging
import random
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import WSMsgType, web

from dingtalk_sim import frames
from dingtalk_sim.cards import apply_update, param_map, private_maps, update_options
from dingtalk_sim.errors import ApiError
from dingtalk_sim.model import AckRecord, BadFrame, CardUpdate, ConnInfo, Delivery
from dingtalk_sim.state import SimState

log = logging.getLogger(__name__)

OPEN_PATH = "/v1.0/gateway/connections/open"
CONNECT_PATH = "/connect"
SUBSCRIPTION_TYPES = frozenset({"EVENT", "CALLBACK"})
_CLOSE_WAIT = 2.0  # seconds to wait for a closing handshake


class SimTimers:
    """Timers on the sim clock: due when ``state.now()`` passes them, by waiting or ``advance``."""

    def __init__(self, state: SimState, loop: asyncio.AbstractEventLoop) -> None:
        self._state = state
        self._loop = loop
        self._heap: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None

    def schedule(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(callback)
        heapq.heappush(self._heap, (self._state.now() + delay, next(self._seq), timer))
        self._arm()
        return timer

    def fire_due(self) -> None:
        now = self._state.now() + 0.001
        while self._heap and self._heap[0][0] <= now:
            _, _, timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                try:
                    timer.callback()
                except Exception:
                    log.exception("simulator timer failed")
        self._arm()

    def cancel_all(self) -> None:
        self._heap.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._heap:
            delay = max(0.0, self._heap[0][0] - self._state.now())
            self._handle = self._loop.call_later(delay, self.fire_due)


@dataclass(eq=False)
class _Timer:
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Outgoing:
    """A frame waiting to be (or being) pushed."""

    kind: str  # SYSTEM | CALLBACK | EVENT | RAW
    topic: str
    frame: dict[str, Any] | None
    raw: str | None = None
    redeliver_after: float | None = None

    @property
    def message_id(self) -> str:
        if self.frame is None:
            return ""
        return str(self.frame["headers"]["messageId"])


@dataclass(eq=False)
class Conn:
    connection_id: str
    ws: web.WebSocketResponse
    request: web.BaseRequest
    subscriptions: tuple[tuple[str, str], ...]
    opened_at: float
    closed_at: float | None = None
    close_code: int | None = None
    frames_sent: int = 0
    lost: int = 0
    draining: bool = False
    zombie: bool = False
    aborted: bool = False
    server_close_code: int | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def live(self) -> bool:
        return self.closed_at is None

    def accepts(self, out: Outgoing) -> bool:
        if out.kind in ("SYSTEM", "RAW"):
            return True
        if out.kind == "EVENT":
            return any(kind == "EVENT" for kind, _ in self.subscriptions)
        return (out.kind, out.topic) in self.subscriptions

    def info(self) -> ConnInfo:
        return ConnInfo(
            connection_id=self.connection_id,
            opened_at=self.opened_at,
            closed_at=self.closed_at,
            close_code=self.close_code,
            subscriptions=list(self.subscriptions),
            frames_sent=self.frames_sent,
            lost=self.lost,
            draining=self.draining,
            zombie=self.zombie,
        )


class StreamGateway:
    """Connection registration, websocket handling and frame routing."""

    def __init__(
        self,
        state: SimState,
        *,
        seed: int,
        redelivery_after: float | None,
        disconnect_close_after: float,
        ping_interval: float | None,
    ) -> None:
        self._state = state
        self._route_rng = random.Random(seed)
        self._redelivery_after = redelivery_after
        self._disconnect_close_after = disconnect_close_after
        self._ping_interval = ping_interval
        self._conns: list[Conn] = []
        self._queue: list[Outgoing] = []
        self._topics: dict[str, str] = {}  # messageId -> topic, for ack records
        self._acked: set[str] = set()
        self._clicks: dict[str, tuple[str, str]] = {}  # messageId -> (outTrackId, userId)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: SimTimers | None = None
        self.port = 0

    # --- lifecycle (on the loop) -----------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(OPEN_PATH, self._open_connection)
        app.router.add_get(CONNECT_PATH, self._connect)

    async def start(self, port: int) -> None:
        self.port = port
        self._timers = SimTimers(self._state, asyncio.get_running_loop())
        if self._ping_interval:
            self._spawn(self._ping_loop(self._ping_interval))

    async def shutdown(self) -> None:
        if self._timers is not None:
            self._timers.cancel_all()
        for task in list(self._tasks):
            task.cancel()
        with self._state.lock:
            live = [c for c in self._conns if c.live]
        await asyncio.gather(
            *(self._close(c, 1001, wait=0.5) for c in live), return_exceptions=True
        )
        for conn in live:
            if conn.live:
                self._abort(conn)

    async def fire_timers(self) -> None:
        """Run the sim-clock timers that are due (after ``advance``)."""
        if self._timers is not None:
            self._timers.fire_due()

    def connections(self) -> list[ConnInfo]:
        with self._state.lock:
            return [c.info() for c in self._conns]

    def set_zombie(self, on: bool) -> None:
        with self._state.lock:
            for conn in self._conns:
                if conn.live:
                    conn.zombie = on
            self._state.changed()

    # --- driving (coroutines run on the loop) ----------------------------------------------

    async def deliver(
        self,
        kind: str,
        topic: str,
        data: Mapping[str, Any],
        *,
        message_id: str | None,
        redeliver: bool = False,
        click: tuple[str, str] | None = None,
    ) -> Delivery:
        frame = frames.frame(self._state, kind, topic, data, message_id=message_id)
        out = Outgoing(
            kind, topic, frame, redeliver_after=self._redelivery_after if redeliver else None
        )
        if click is not None:
            self._clicks[out.message_id] = click
        pushed = await self._push(out)
        return Delivery(out.message_id, str(data.get("msgId", "")), pushed)

    async def deliver_event(
        self, event_type: str, data: Mapping[str, Any], *, event_id: str | None = None
    ) -> Delivery:
        """Push an org event to a connection subscribed to EVENT (queued while none is);
        redelivered, with the same ids, while it stays unacked."""
        frame = frames.event_frame(self._state, event_type, data, event_id=event_id)
        out = Outgoing("EVENT", event_type, frame, redeliver_after=self._redelivery_after)
        pushed = await self._push(out)
        return Delivery(out.message_id, "", pushed)

    async def redeliver(self, delivery: Delivery, *, new_message_id: bool) -> Delivery:
        frame = copy.deepcopy(delivery.frame)
        headers: dict[str, Any] = frame["headers"]
        headers.pop("connectionId", None)
        old_id = str(headers["messageId"])
        if new_message_id:
            headers["messageId"] = self._state.new_message_id()
            if old_id in self._clicks:
                self._clicks[headers["messageId"]] = self._clicks[old_id]
        out = Outgoing(str(frame["type"]), str(headers.get("topic", "")), frame)
        pushed = await self._push(out)
        return Delivery(out.message_id, delivery.msg_id, pushed)

    async def push_raw(self, text: str) -> None:
        await self._push(Outgoing("RAW", "", None, raw=text))

    async def send_ping(self) -> None:
        with self._state.lock:
            targets = [c for c in self._conns if c.live and not c.draining]
        for conn in targets:
            data = {"opaque": self._state.uuid4()}
            frame = frames.frame(self._state, "SYSTEM", frames.TOPIC_PING, data, message_id=None)
            await self._send(conn, Outgoing("SYSTEM", frames.TOPIC_PING, frame))

    async def send_disconnect(self) -> None:
        with self._state.lock:
            targets = [c for c in self._conns if c.live and not c.draining]
            for conn in targets:
                conn.draining = True  # nothing more is pushed to it, from now on
            self._state.changed()
        for conn in targets:
            data = {"reason": "connection is expired"}
            frame = frames.frame(
                self._state, "SYSTEM", frames.TOPIC_DISCONNECT, data, message_id=None
            )
            await self._send(conn, Outgoing("SYSTEM", frames.TOPIC_DISCONNECT, frame))
            log.info("stream connection %s: disconnect sent", conn.connection_id)
            self._schedule(self._disconnect_close_after, functools.partial(self._close_soon, conn))

    async def drop_connections(self) -> None:
        with self._state.lock:
            targets = [c for c in self._conns if c.live]
        for conn in targets:
            self._abort(conn)
        for conn in targets:
            try:
                await asyncio.wait_for(conn.closed.wait(), _CLOSE_WAIT)
            except TimeoutError:
                log.warning("stream connection %s: still open after abort", conn.connection_id)

    # --- HTTP side -------------------------------------------------------------------------

    async def _open_connection(self, request: web.Request) -> web.Response:
        hang = self._state.take_gateway_hang()
        if hang > 0:
            await asyncio.sleep(hang)
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "invalidParameter", "请求体必须是 JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalidParameter", "请求体必须是 JSON 对象")
        if (
            body.get("clientId") != self._state.client_id
            or body.get("clientSecret") != self._state.client_secret
        ):
            raise ApiError(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        subscriptions = body.get("subscriptions")
        if not isinstance(subscriptions, list) or not subscriptions:
            raise ApiError(400, "invalidParameter.subscriptions", "subscriptions 不能为空")
        subs: list[tuple[str, str]] = []
        for item in subscriptions:
            if (
                not isinstance(item, dict)
                or item.get("type") not in SUBSCRIPTION_TYPES
                or not isinstance(item.get("topic"), str)
                or not item["topic"]
            ):
                raise ApiError(400, "invalidParameter.subscriptions", "subscriptions 格式错误")
            subs.append((str(item["type"]), str(item["topic"])))
        ticket = self._state.issue_ticket(tuple(subs))
        log.info("stream registration accepted (%d subscriptions)", len(subs))
        return web.json_response(
            {"endpoint": f"ws://127.0.0.1:{self.port}{CONNECT_PATH}", "ticket": ticket}
        )

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        ticket = self._state.take_ticket(request.query.get("ticket", ""))
        if ticket is None:
            log.info("stream connect refused: unknown, used or expired ticket")
            raise ApiError(403, "Forbidden.InvalidTicket", "ticket 不存在、已使用或已过期")
        ws = web.WebSocketResponse(autoping=True, compress=True, timeout=_CLOSE_WAIT)
        await ws.prepare(request)
        conn = Conn(
            connection_id=self._state.uuid4(),
            ws=ws,
            request=request,
            subscriptions=ticket.subscriptions,
            opened_at=self._state.now(),
        )
        with self._state.lock:
            self._conns.append(conn)
            self._state.changed()
        log.info(
            "stream connection %s opened (%s)",
            conn.connection_id,
            ", ".join(topic for _, topic in conn.subscriptions),
        )
        self._spawn(self._flush())
        client_code: int | None = None
        try:
            while True:
                msg = await ws.receive()
                if msg.type is WSMsgType.TEXT:
                    self._on_text(conn, str(msg.data))
                elif msg.type is WSMsgType.BINARY:
                    self._bad(conn, repr(msg.data[:200]), "binary frame")
                elif msg.type is WSMsgType.CLOSE:
                    client_code = int(msg.data)
                    break
                elif msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        finally:
            if conn.aborted:
                code = 1006
            elif client_code is not None:
                code = client_code
            elif conn.server_close_code is not None:
                code = conn.server_close_code
            else:
                code = 1006
            with self._state.lock:
                conn.closed_at = self._state.now()
                conn.close_code = code
                self._state.changed()
            conn.closed.set()
            log.info("stream connection %s closed (%d)", conn.connection_id, code)
        return ws

    # --- client frames ---------------------------------------------------------------------

    def _bad(self, conn: Conn, text: str, reason: str) -> None:
        log.warning("stream connection %s: bad client frame (%s)", conn.connection_id, reason)
        self._state.record_bad_frame(BadFrame(conn.connection_id, text, reason, self._state.now()))

    def _on_text(self, conn: Conn, text: str) -> None:
        try:
            obj = json.loads(text)
        except ValueError:
            self._bad(conn, text, "not JSON")
            return
        headers = obj.get("headers") if isinstance(obj, dict) else None
        message_id = headers.get("messageId") if isinstance(headers, dict) else None
        if not isinstance(obj, dict) or not isinstance(message_id, str) or not message_id:
            self._bad(conn, text, "no headers.messageId")
            return
        raw_code = obj.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        data: Any = obj.get("data")
        if isinstance(data, str):
            with contextlib.suppress(ValueError):
                data = json.loads(data)
        self._acked.add(message_id)
        self._state.record_ack(
            AckRecord(
                code=code,
                message_id=message_id,
                data=data,
                connection_id=conn.connection_id,
                at=self._state.now(),
                message=str(obj.get("message", "")),
                topic=self._topics.get(message_id, ""),
            )
        )
        click = self._clicks.get(message_id)
        if click is not None and code == 200:
            self._apply_click_ack(click[0], click[1], data)

    def _apply_click_ack(self, out_track_id: str, user_id: str, data: Any) -> None:
        response = data.get("response") if isinstance(data, dict) and "response" in data else data
        if isinstance(response, str):
            try:
                response = json.loads(response)
            except ValueError:
                return
        if not isinstance(response, dict) or not response:
            return
        try:
            params = param_map(response.get("cardData"), "cardData")
            private = private_maps(response.get("privateData"))
            mine = param_map(response.get("userPrivateData"), "userPrivateData")
        except ApiError as exc:
            log.warning("card %s: click ack ignored (%s)", out_track_id, exc.code)
            return
        if mine is not None:
            private[user_id] = {**private.get(user_id, {}), **mine}
        if params is None and not private:
            return
        by_key, private_by_key = update_options(response.get("cardUpdateOptions"))
        with self._state.lock:
            card = self._state.cards.get(out_track_id)
            if card is None:
                log.warning("click ack for unknown card %s ignored", out_track_id)
                return
            apply_update(
                card, params=params, private=private, by_key=by_key, private_by_key=private_by_key
            )
            card.history.append(
                CardUpdate("ack", params, private, by_key, user_id, self._state.now())
            )
            self._state.changed()

    # --- routing ---------------------------------------------------------------------------

    def _choose(self, out: Outgoing) -> Conn | None:
        with self._state.lock:
            candidates = [
                c
                for c in self._conns
                if c.live and not c.draining and not c.ws.closed and c.accepts(out)
            ]
        if not candidates:
            return None
        return self._route_rng.choice(candidates)

    async def _push(self, out: Outgoing) -> dict[str, Any]:
        conn = self._choose(out)
        if conn is None:
            with self._state.lock:
                self._queue.append(out)
                self._state.changed()
            log.info("no connection for %s %s: queued", out.kind, out.topic or "raw")
            return out.frame or {}
        return await self._send(conn, out)

    async def _send(self, conn: Conn, out: Outgoing) -> dict[str, Any]:
        if out.frame is not None:
            frame = copy.deepcopy(out.frame)
            if out.kind != "SYSTEM":
                frame["headers"]["connectionId"] = conn.connection_id
            text = json.dumps(frame, ensure_ascii=False)
            self._topics[out.message_id] = out.topic
        else:
            frame = {}
            text = out.raw or ""
        if out.redeliver_after is not None:
            # Armed before the frame leaves: a client that reads it and moves the sim clock
            # at once must find the redelivery timer already there.
            once = replace(out, redeliver_after=None)
            self._schedule(
                out.redeliver_after,
                lambda: self._spawn(self._redeliver_unacked(once)),
            )
        if conn.zombie:
            with self._state.lock:
                conn.lost += 1
                self._state.changed()
            log.info("zombie connection %s: frame discarded", conn.connection_id)
        else:
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                log.info("connection %s closed under a push: requeued", conn.connection_id)
                with self._state.lock:
                    self._queue.append(out)
                    self._state.changed()
                return frame
            with self._state.lock:
                conn.frames_sent += 1
                self._state.changed()
        return frame

    async def _redeliver_unacked(self, out: Outgoing) -> None:
        if out.message_id in self._acked:
            return
        log.info("message %s unacked: redelivered", out.message_id)
        await self._push(out)

    async def _flush(self) -> None:
        with self._state.lock:
            pending = list(self._queue)
        for out in pending:
            conn = self._choose(out)
            if conn is None:
                continue
            with self._state.lock:
                if out not in self._queue:
                    continue
                self._queue.remove(out)
            await self._send(conn, out)

    # --- helpers ---------------------------------------------------------------------------

    async def _close(self, conn: Conn, code: int, *, wait: float = _CLOSE_WAIT + 1) -> None:
        if not conn.live or conn.ws.closed:
            return
        conn.server_close_code = code
        try:
            await asyncio.wait_for(conn.ws.close(code=code), wait)
        except (TimeoutError, ConnectionError):
            self._abort(conn)

    def _close_soon(self, conn: Conn) -> None:
        if conn.live:
            log.info("stream connection %s: closed by the server", conn.connection_id)
            self._spawn(self._close(conn, 1000))

    def _abort(self, conn: Conn) -> None:
        conn.aborted = True
        transport = conn.request.transport
        if transport is not None:
            transport.abort()

    def _schedule(self, delay: float, callback: Callable[[], None]) -> None:
        assert self._timers is not None
        self._timers.schedule(delay, callback)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ping_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.send_ping()
