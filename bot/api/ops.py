"""The operations endpoint: ``/healthz`` (JSON, 200 or 503) and ``/metrics`` (Prometheus).

Served by aiohttp on ``ops.host:ops.port`` (off when the port is null). Health means: the
Stream connection is up, the database answers, the outbox is not stuck (its oldest pending
message is younger than ``ops.max_outbox_age``) and due work is not late (the oldest
overdue row is younger than ``ops.max_schedule_lag``). Metrics come from a registry of this
app's own (never the process-global one), so several apps in one process do not mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.core.clock import Clock
    from bot.core.domain.webhooks import Subscription
    from bot.delivery.outbox import OutboxSender
    from bot.delivery.webhooks import WebhookSender
    from bot.dispatch.metrics import Metrics
    from bot.scheduling.due import DueRunner
    from bot.transport.openapi import OpenApiClient
    from bot.transport.stream import BatonStreamClient
    from storage.db import Database


class Observed(Protocol):
    """What /healthz and /metrics read of the running bot (``bot.app.BatonApp`` is one);
    a port, so this module does not reach back into the composition root."""

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def db(self) -> Database: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def stream(self) -> BatonStreamClient: ...
    @property
    def outbox(self) -> OutboxSender: ...
    @property
    def due(self) -> DueRunner: ...
    @property
    def client(self) -> OpenApiClient: ...
    @property
    def webhooks(self) -> WebhookSender: ...

log = logging.getLogger(__name__)
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class LoopLag:
    """Event-loop lag: how late a timer of ``interval`` seconds fires. Anything that blocks
    the loop (a sync call, a long CPU step) shows here as lag; ``max`` is the worst since
    start, ``reset()`` starts a new observation window (tests and benchmarks)."""

    def __init__(self, interval: float = 0.02, histogram: Histogram | None = None) -> None:
        self.interval = interval
        self.histogram = histogram
        self.max = 0.0
        self.last = 0.0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loop-lag")

    def reset(self) -> None:
        self.max, self.samples = 0.0, 0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - start - self.interval)
            self.last, self.samples = lag, self.samples + 1
            self.max = max(self.max, lag)
            if self.histogram is not None:
                self.histogram.observe(lag)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Snapshot:
    """What one scrape or health check reads from the store (one short transaction)."""

    def __init__(self) -> None:
        self.db_ok = False
        self.db_error = ""
        self.outbox_pending = 0
        self.outbox_failed = 0
        self.outbox_oldest: datetime | None = None
        self.due_overdue = 0
        self.due_oldest: datetime | None = None
        self.feed_head = 0
        self.webhooks: list[Subscription] = []


async def snapshot(app: Observed) -> Snapshot:
    s = Snapshot()
    now = app.clock.now()
    try:
        async with app.db.uow() as uow:
            await uow.ping()
            s.outbox_pending, s.outbox_oldest, s.outbox_failed = await uow.outbox.backlog()
            s.due_overdue, s.due_oldest = await uow.due.overdue(now)
            if app.webhooks.names:
                s.feed_head = await uow.feed.head()
                wanted = set(app.webhooks.names)
                s.webhooks = [w for w in await uow.webhooks.all() if w.name in wanted]
        s.db_ok = True
    except Exception as e:  # the store is down: that is the answer, not an error
        s.db_error = type(e).__name__
    return s


class AppCollector(Collector):
    """Counters and gauges read from the app at scrape time."""

    def __init__(self, app: Observed) -> None:
        self.app = app
        self.last: Snapshot | None = None

    def collect(self) -> Iterator[Any]:
        app = self.app
        c = CounterMetricFamily("baton_commands", "Commands handled, by command and result",
                                labels=["command", "result"])
        for (cmd, result), n in sorted(app.metrics.commands.items()):
            c.add_metric([cmd, result], n)
        yield c
        yield CounterMetricFamily("baton_duplicates", "Redelivered frames recognised",
                                  value=app.metrics.duplicates)
        yield CounterMetricFamily("baton_stream_reconnects", "Stream reconnections",
                                  value=app.stream.reconnects)
        yield CounterMetricFamily("baton_frames_refused", "Frames over the size limit",
                                  value=app.stream.frames_refused)
        yield GaugeMetricFamily("baton_stream_connected", "1 when the Stream socket is up",
                                value=1 if app.stream.connected.is_set() else 0)
        yield CounterMetricFamily("baton_outbox_sent", "Messages sent", value=app.outbox.sent)
        yield CounterMetricFamily("baton_outbox_deferred", "Sends held back by the per-group "
                                  "budget", value=app.outbox.deferred)
        yield CounterMetricFamily("baton_due_done", "Due work run", value=app.due.done)
        yield CounterMetricFamily("baton_due_failures", "Due work failures",
                                  value=app.due.failures)
        yield GaugeMetricFamily("baton_due_last_lag_seconds",
                                "How late the last due row ran (reminder lag)",
                                value=app.due.last_lag)
        yield GaugeMetricFamily("baton_loop_lag_max_seconds",
                                "Worst event-loop lag since start",
                                value=ops.loop_lag.max if (ops := getattr(app, "ops", None))
                                else 0.0)
        yield CounterMetricFamily("baton_outbox_given_up", "Messages FAILED after the retry "
                                  "limit (each raised an operator alert)",
                                  value=app.outbox.failed)
        yield CounterMetricFamily("baton_outbox_parked", "Rows parked because DingTalk refused "
                                  "them for a missing permission (alerted once)",
                                  value=app.outbox.parked)
        calls = CounterMetricFamily("baton_dingtalk_calls", "DingTalk OpenAPI calls made by "
                                    "this replica, by API (retries included)", labels=["api"])
        for api, n in sorted(app.client.calls.items()):
            calls.add_metric([api], n)
        yield calls
        month = GaugeMetricFamily("baton_dingtalk_metered_calls_month", "Calls counted "
                                  "against DingTalk's monthly quota by this replica, by month",
                                  labels=["month"])
        for m, n in sorted(app.client.metered_month.items()):
            month.add_metric([m], n)
        yield month
        yield GaugeMetricFamily("baton_dingtalk_monthly_call_budget",
                                "dingtalk.monthly_call_budget",
                                value=app.settings.dingtalk.monthly_call_budget)
        yield from self._webhook_counters()
        s = self.last
        if s is not None:
            yield from self._webhook_gauges(s)
            now = app.clock.now()
            yield GaugeMetricFamily("baton_database_up", "1 when the database answers",
                                    value=1 if s.db_ok else 0)
            yield GaugeMetricFamily("baton_outbox_depth", "Pending outbound messages",
                                    value=s.outbox_pending)
            yield GaugeMetricFamily("baton_outbox_failed", "Messages given up on",
                                    value=s.outbox_failed)
            yield GaugeMetricFamily(
                "baton_outbox_oldest_seconds", "Age of the oldest pending message",
                value=(now - s.outbox_oldest).total_seconds() if s.outbox_oldest else 0)
            yield GaugeMetricFamily("baton_due_overdue", "Due rows past their time",
                                    value=s.due_overdue)
            yield GaugeMetricFamily(
                "baton_schedule_lag_seconds", "Age of the oldest overdue row",
                value=(now - s.due_oldest).total_seconds() if s.due_oldest else 0)


    def _webhook_counters(self) -> Iterator[Any]:
        hooks = self.app.webhooks
        for name, help_, counts in (
                ("baton_webhook_delivered", "Events a webhook subscriber acknowledged (2xx)",
                 hooks.delivered),
                ("baton_webhook_failures", "Failed webhook delivery attempts", hooks.failures)):
            c = CounterMetricFamily(name, help_, labels=["webhook"])
            for sub in hooks.names:
                c.add_metric([sub], counts[sub])
            yield c

    def _webhook_gauges(self, s: Snapshot) -> Iterator[Any]:
        lag = GaugeMetricFamily("baton_webhook_lag_events",
                                "Feed events a webhook subscriber has not acknowledged yet",
                                labels=["webhook"])
        attempts = GaugeMetricFamily("baton_webhook_attempts", "Failed attempts at the "
                                     "subscriber's next event", labels=["webhook"])
        paused = GaugeMetricFamily("baton_webhook_paused", "1 when the subscriber is paused "
                                   "(baton webhooks replay resumes it)", labels=["webhook"])
        for w in s.webhooks:
            lag.add_metric([w.name], max(0, s.feed_head - w.cursor))
            attempts.add_metric([w.name], w.attempts)
            paused.add_metric([w.name], 1 if w.state == "paused" else 0)
        yield from (lag, attempts, paused)


class Ops:
    def __init__(self, app: Observed) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=True)
        self.ack_latency = Histogram("baton_ack_latency_seconds",
                                     "From a frame's arrival to its ack", buckets=ACK_BUCKETS,
                                     registry=self.registry)
        self.loop_lag = LoopLag(histogram=Histogram(
            "baton_loop_lag_seconds", "How late a 20 ms event-loop timer fired",
            buckets=LAG_BUCKETS, registry=self.registry))
        self.collector = AppCollector(app)
        self.registry.register(self.collector)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def observe_ack(self, seconds: float) -> None:
        self.ack_latency.observe(seconds)

    async def health(self) -> tuple[bool, dict[str, Any]]:
        app, cfg = self.app, self.app.settings.ops
        s = await snapshot(app)
        now = app.clock.now()
        outbox_age = (now - s.outbox_oldest).total_seconds() if s.outbox_oldest else 0.0
        lag = (now - s.due_oldest).total_seconds() if s.due_oldest else 0.0
        checks = {
            "stream": app.stream.connected.is_set(),
            "database": s.db_ok,
            "outbox": s.db_ok and outbox_age <= cfg.max_outbox_age.total_seconds(),
            "schedule": s.db_ok and lag <= cfg.max_schedule_lag.total_seconds(),
        }
        body = {"ok": all(checks.values()), "checks": checks,
                "outbox": {"pending": s.outbox_pending, "failed": s.outbox_failed,
                           "oldest_seconds": round(outbox_age, 1)},
                "schedule": {"overdue": s.due_overdue, "lag_seconds": round(lag, 1),
                             "last_run_lag_seconds": round(app.due.last_lag, 3)},
                "stream": {"reconnects": app.stream.reconnects},
                "loop_lag_max_seconds": round(self.loop_lag.max, 4),
                "database_error": s.db_error or None}
        return bool(body["ok"]), body

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, body = await self.health()
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        self.collector.last = await snapshot(self.app)
        data = generate_latest(self.registry)
        return web.Response(body=data, headers={"Content-Type": "text/plain; version=0.0.4"})

    async def start(self) -> None:
        cfg = self.app.settings.ops
        self.loop_lag.start()
        if cfg.port is None:
            return
        web_app = web.Application()
        web_app.router.add_get("/healthz", self._healthz)
        web_app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else cfg.port
        log.info("operations endpoint on http://%s:%d (/healthz, /metrics)", cfg.host, self.port)

    async def stop(self) -> None:
        await self.loop_lag.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def monotonic() -> float:
    return time.monotonic()
