"""The composition root: builds every part from the settings and owns their lifetimes.

``async with BatonApp(settings) as app: await app.wait_stopped()`` is what ``baton run``,
``baton sandbox``, the end-to-end tests and the benchmarks all use.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable
from typing import Any

import aiohttp
import dingtalk_stream

from bot import ports
from bot.api.decisions import DecisionApi
from bot.api.ops import Ops
from bot.bootstrap import bootstrap
from bot.config import Settings
from bot.core.clock import Clock, SystemClock
from bot.core.faults import Faults
from bot.delivery import rolesync
from bot.delivery.alerts import queue_alert
from bot.delivery.budget import BudgetWatch
from bot.delivery.outbox import OutboxSender
from bot.delivery.todos import KIND as TODO
from bot.delivery.todos import send_todo
from bot.delivery.webhooks import WebhookSender
from bot.dispatch.dispatcher import Dispatcher
from bot.dispatch.metrics import Metrics
from bot.scheduling.alarm import Alarm
from bot.scheduling.due import DueRunner
from bot.texts import catalog as i18n
from bot.transport.handlers import CardCallbackHandler, OrgEventHandler, RobotMessageHandler
from bot.transport.inbound import CARD_TOPIC, ROBOT_TOPIC
from bot.transport.openapi import OpenApiClient
from bot.transport.stream import BatonStreamClient
from bot.transport.webhooks import HttpWebhooks
from handlers import build_router
from handlers.audit import schedule_retention
from handlers.bulk import send_export
from handlers.drift import schedule_sweep
from handlers.permissions import catalog_of
from handlers.review import schedule_review
from handlers.rolesync import schedule_reconcile
from storage import migrate
from storage.db import Database, UnitOfWork, open_database
from storage.index import keeper

log = logging.getLogger(__name__)


def implements_ports(client: OpenApiClient, uow: UnitOfWork, clock: SystemClock,
                     hooks: HttpWebhooks,
                     ) -> tuple[ports.Messenger, ports.Directory, ports.UnitOfWork, ports.Clock,
                                ports.Roles, ports.Webhooks, ports.Todos]:
    """The concrete classes as the ports they implement: mypy checks that they fit."""
    return client, client, uow, clock, client, hooks, client


class NotConfigured(Exception):
    """Something the app needs is missing; the message says what to do."""


async def prepare_database(db: Database) -> None:
    """Upgrade an empty database; refuse to run on one that is behind (operators migrate)."""
    current = await migrate.current_revision(db)
    head = migrate.head_revision()
    if current == head:
        return
    if current is None:
        # Replicas that start together on an empty database: one creates the schema, the
        # others wait for it (migration lock) and find it there.
        current = await migrate.upgrade_if_empty(db)
        if current is None:
            log.info("empty database: created the schema (revision %s)", head)
        if current in (None, head):
            return
    raise NotConfigured(
        f"the database is at revision {current} but this Baton needs {head}: "
        "run `baton db upgrade` first (take a backup before)"
    )


class BatonApp:
    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 faults: Faults | None = None, run_scheduler: bool = True) -> None:
        if not settings.dingtalk.has_credentials:
            raise NotConfigured(
                "no DingTalk credentials: set DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET "
                "(the app's AppKey and AppSecret). To try Baton without DingTalk, run "
                "`baton sandbox`."
            )
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.faults = faults or Faults.from_env()
        self.run_scheduler = run_scheduler
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = asyncio.Event()

    async def __aenter__(self) -> BatonApp:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _start(self) -> None:
        s = self.settings
        self.db = open_database(s.database.url, busy_timeout_ms=s.database.busy_timeout_ms,
                                pool_size=s.database.pool_size, echo=s.database.echo)
        self._stack.push_async_callback(lambda: bounded(self.db.dispose(), 10, "database close"))
        await prepare_database(self.db)
        # One shared HTTP session for every outbound call (trust_env off: no proxy surprises).
        self.http = await self._stack.enter_async_context(
            aiohttp.ClientSession(trust_env=False, connector=aiohttp.TCPConnector(limit=64)))
        self.client = OpenApiClient(self.http, s.dingtalk, now=self.clock.now)
        await bootstrap(self.db, s, self.clock, self.client)
        await schedule_retention(self.db, s, self.clock.now())
        await schedule_review(self.db, s, self.clock.now())
        await schedule_sweep(self.db, s, self.clock.now())
        # DingTalk role labels: the group and roles found or created before anything is sent.
        self.roles = rolesync.RoleSync(self.db, s, self.client)
        await self.roles.start(self.clock.now())
        await schedule_reconcile(self.db, s, self.clock.now())
        self.outbox = OutboxSender(
            self.db, self.client, s.outbox, self.clock, alert_window=s.limits.alert_window,
            deliverers={"export": lambda p: send_export(self.db, s, self.client, p,
                                                        self.clock.now()),
                        rolesync.KIND: lambda p: self.roles.deliver(p, self.clock.now()),
                        TODO: lambda p: send_todo(self.db, self.client, s.org.corp_id, p)},
            on_give_up=self._outbox_gave_up, faults=self.faults, lease=s.outbox.lease,
            on_denied={rolesync.KIND: self.roles.parked})
        self.role_feed = rolesync.FeedFollower(self.db, s, self.clock.now,
                                               on_commit=self.outbox.wake)
        self.budget = BudgetWatch(self.db, s, lambda: self.client.metered_month,
                                  self.clock.now, on_commit=self.outbox.wake)
        # The change feed pushed to webhook subscribers: woken by this process's commits
        # that wrote events, polling for other replicas'.
        self.webhooks = WebhookSender(self.db, HttpWebhooks(self.http), s, self.clock,
                                      faults=self.faults, on_alert=self.outbox.wake)
        await self.webhooks.register()
        self.db.feed_listeners.append(self.webhooks.wake)
        router = build_router()
        self.due = DueRunner(self.db, s, self.clock, self.client, self.faults, router.dues,
                             on_commit=self.outbox.wake, request_kinds=router.requests)
        self.alarm = Alarm(self.due, s.scheduler.poll_interval.total_seconds())
        self.dispatcher = Dispatcher(self.db, s, self.clock, router,
                                     on_commit=self.outbox.wake, on_schedule=self.alarm.wake,
                                     metrics=self.metrics,
                                     client=self.client, faults=self.faults)
        self.stream = BatonStreamClient(
            dingtalk_stream.Credential(s.dingtalk.client_id,
                                       s.dingtalk.client_secret.get_secret_value()),
            http=self.http, openapi_endpoint=s.dingtalk.openapi_endpoint,
            settings=s.dingtalk.stream,
        )
        self.stream.register_callback_handler(ROBOT_TOPIC, RobotMessageHandler(self.dispatcher))
        self.stream.register_callback_handler(CARD_TOPIC, CardCallbackHandler(self.dispatcher))
        # DingTalk org events (contacts, admins): the subscription {"type": "EVENT", "topic": "*"}.
        self.stream.register_all_event_handler(OrgEventHandler(self.dispatcher))
        self._stack.push_async_callback(self._shutdown)
        self.ops = Ops(self)
        self.stream.on_ack = self.ops.observe_ack
        await self.ops.start()
        self._stack.push_async_callback(self.ops.stop)
        self.budget.start()
        self._stack.push_async_callback(self.budget.stop)
        self.role_feed.start()
        self._stack.push_async_callback(self.role_feed.stop)
        # The permission index (chat reads and the decision API): loaded before the first
        # command, then kept current from the change feed.
        self.index = keeper(self.db, catalog_of(s))
        await self.index.sync()
        self._stack.push_async_callback(self.index.aclose)
        self.api = DecisionApi(self.db, s, self.clock, index=self.index)
        await self.api.start()
        self._stack.push_async_callback(self.api.stop)
        if self.run_scheduler:
            self.alarm.start(first_run=False)
            # What fell due while Baton was down is queued before the sender's first claim:
            # a catch-up reminder supersedes the older reminder it replaces (one sent just
            # before a crash, unmarked, its lease run out) instead of following it.
            await self.alarm.tick()
        self._tasks = [
            asyncio.create_task(self.outbox.run(), name="outbox"),
            asyncio.create_task(self.stream.start(), name="stream"),
            asyncio.create_task(self.webhooks.run(), name="webhooks"),
        ]
        for t in self._tasks:
            t.add_done_callback(self._task_done)

    async def _outbox_gave_up(self, uow: Any, row: Any, attempts: int, error: str) -> None:
        lang = self.settings.locale.lang
        kind = i18n.t(f"outbox_kind_{row.kind}" if row.kind in ("reply", "card", "export",
                                                                 rolesync.KIND)
                 else "outbox_kind_reply", lang)
        await queue_alert(uow, self.settings, self.clock.now(), who="Baton",
                          what=i18n.t("alert_outbox_failed", lang, to=row.conversation_key, kind=kind,
                                 attempts=attempts, error=error[:120], id=row.id),
                          why="outbox", what_cap=400)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped: %r", task.get_name(), task.exception())
            self._stopped.set()

    async def _shutdown(self) -> None:
        # Every step is bounded: a stop that overstays is logged with its stack, never awaited
        # forever (a stuck driver call must not keep the process from exiting).
        await bounded(self.stream.stop(), 20, "stream stop")
        await bounded(self.alarm.stop(), 5, "scheduler stop")
        # The sender drains once more and returns; cancel only what overstays its grace.
        self.outbox.stop()
        self.webhooks.stop()
        if not self._tasks:  # the start failed before the tasks were made
            return
        _done, late = await asyncio.wait(self._tasks, timeout=10)
        for t in late:
            t.cancel()
        if late:
            _done, stuck = await asyncio.wait(late, timeout=5)
            for t in stuck:
                log.error("%s did not stop after cancel:\n%s", t.get_name(), task_stack(t))

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def request_stop(self) -> None:
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.stream.connected.wait(), timeout)


def task_stack(task: asyncio.Task[Any]) -> str:
    out = io.StringIO()
    task.print_stack(file=out)
    return out.getvalue()


async def bounded(aw: Awaitable[Any], seconds: float, what: str) -> None:
    """Await ``aw`` for at most ``seconds``; past that, log what it was stuck on and go on."""
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if done:
        task.result()
        return
    log.error("%s overstayed %.0fs; abandoning it. It was at:\n%s", what, seconds, task_stack(task))
    task.cancel()
    await asyncio.wait({task}, timeout=2)
