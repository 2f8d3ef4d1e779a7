"""Webhooks end to end, on SQLite and PostgreSQL: commands through the simulator become
change events that a real receiver (loopback, port 0) gets signed and in order.

* Kills mid-delivery: a ``baton run`` process SIGKILLs itself after a receiver's 2xx and
  before the cursor moved (crash point ``webhook.before_mark``); the next one is SIGKILLed
  by the test while a POST waits for its answer. After the restarts, the receiver, which
  deduplicates on the event id, has each event exactly once and in order; the repeats are
  the same ids.
* A webhook URL that hangs never holds up commands: replies come while its POST waits, and
  the other subscriber keeps receiving.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from sqlalchemy import select

from bot.api.ops import snapshot
from bot.app import BatonApp
from bot.cli.sandbox import DEMO_CATALOG, demo_simulator, sim_settings
from bot.config import Settings
from bot.core.faults import CRASH_ENV
from dingtalk_sim import Simulator
from storage.db import open_database
from storage.models import ChangeEventRow
from tests.e2e.conftest import GROUP, reply_to
from tests.support import baton_config
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec-e2e-77c1"
# Each makes one change event (lisi is an admin; none of these needs an approval).
COMMANDS = (
    ("授权 @赵六 crm.report.view", ("zhaoliu",)),
    ("grant @钱七 crm.customer.view", ("qianqi",)),
    ("设置角色 @钱七 sales", ("qianqi",)),
    ("撤销 @赵六 crm.report.view", ("zhaoliu",)),
    ("role set @赵六 analyst", ("zhaoliu",)),
    ("revoke @钱七 crm.customer.view", ("qianqi",)),
)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver({"crm": SECRET, "slow": SECRET, "fast": SECRET})
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


class Process:
    """``baton run`` as a child process, restartable."""

    def __init__(self, sim: Simulator, cfg: Path, logs: Path) -> None:
        self.sim, self.cfg, self.logs = sim, cfg, logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "DINGTALK_"))}
        env.update(DINGTALK_CLIENT_ID=self.sim.client_id,
                   DINGTALK_CLIENT_SECRET=self.sim.client_secret, HOOK_SECRET=SECRET,
                   NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
                   PYTHONPATH=str(ROOT))
        return env

    async def start(self, crash: str | None = None, live: int = 1) -> None:
        self.spawn(crash)
        await self.until(
            lambda: sum(c.live for c in self.sim.connections()) >= live or self.dead(),
            "Baton connected")
        assert not self.dead(), self.log_tail()

    def spawn(self, crash: str | None) -> None:
        env = self.env()
        if crash:
            env[CRASH_ENV] = crash
        log = (self.logs / f"run{self.starts}.log").open("wb")
        self.starts += 1
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "run", "--config", str(self.cfg)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def dead(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    async def until(self, predicate: Any, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out: {what}\n{self.log_tail()}"
            await asyncio.sleep(0.05)

    async def died(self) -> None:
        await self.until(self.dead, "the process to die")
        assert self.proc is not None and self.proc.returncode == -signal.SIGKILL, self.log_tail()
        await self.until(lambda: not any(c.live for c in self.sim.connections()),
                         "the dead process's socket closed")

    async def say(self, text: str, at: tuple[str, ...]) -> None:
        d = self.sim.say("lisi", " " + text, conversation_id=GROUP, at=at)
        await self.until(lambda: any(a.code == 200 for a in self.sim.acks(d.message_id)),
                         f"an ack of {text!r}")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.proc.wait, 30)

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name} ---\n" + p.read_text(errors="replace")[-2500:]
                         for p in sorted(self.logs.glob("run*.log")))


async def feed(url: str) -> dict[int, str]:
    """seq -> event id, as the store has them."""
    db = open_database(url)
    try:
        async with db.uow() as uow:
            return dict((await uow.session.execute(
                select(ChangeEventRow.seq, ChangeEventRow.event_id))).all())
    finally:
        await db.dispose()


async def cursor(url: str) -> int:
    db = open_database(url)
    try:
        async with db.uow() as uow:
            sub = await uow.webhooks.get("crm")
            assert sub is not None
            return sub.cursor
    finally:
        await db.dispose()


async def test_each_event_exactly_once_after_kills_mid_delivery(
        tmp_path: Path, db_url: str, receiver: Receiver) -> None:
    sim = demo_simulator()
    sim.start()
    # A dead process's lease runs out after 2 s; retries come quickly.
    cfg = webhook_config(tmp_path, sim, db_url, receiver)
    run = Process(sim, cfg, tmp_path)
    receiver.endpoints["crm"].status = 503     # closed until every command has committed
    try:
        await run.start(crash="webhook.before_mark:2")
        for text, at in COMMANDS:
            await run.say(text, at)
        start = await cursor(db_url)
        events = {s: i for s, i in (await feed(db_url)).items() if s > start}
        assert sorted(events) == list(range(start + 1, start + 1 + len(COMMANDS)))

        # Open (from here on the receiver counts): the process dies after the 2nd 2xx,
        # before recording it.
        receiver.endpoints["crm"].status = 200
        receiver.endpoints["crm"].hang_seq = start + 4
        receiver.hits.clear()
        await run.died()
        assert "CRASH POINT webhook.before_mark" in (tmp_path / "run0.log").read_text()
        # The next one is killed while the 4th event's POST waits for its answer.
        await run.start()
        await receiver.until(lambda: receiver.endpoints["crm"].waiting == 1, timeout=30,
                             what="a POST of the 4th event in flight")
        assert run.proc is not None
        run.proc.kill()
        await run.died()
        receiver.endpoints["crm"].release.set()
        # The last one finishes the job.
        await run.start()
        await receiver.until(lambda: len(receiver.unique("crm")) >= len(events), timeout=30,
                             what="every event")
        await _cursor_at(db_url, max(events))
        await run.stop()
        listed = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bot.cli.main", "webhooks", "list", "--config", str(cfg)],
            cwd=ROOT, env=run.env(), capture_output=True, text=True, timeout=60, check=True)
    finally:
        if run.proc is not None and run.proc.poll() is None:
            run.proc.kill()
        sim.stop()

    hits = receiver.of("crm")
    ok = [h for h in hits if h.verified]
    assert len(ok) == len(hits), "a request without a valid signature"
    # Exactly once after deduplication, in order, and nothing that is not an event.
    assert receiver.unique("crm") == sorted(events)
    assert {h.event_id for h in hits} == set(events.values())
    assert all(events[h.seq] == h.event_id for h in hits)       # a repeat is the same id
    repeated = [h.seq for h in hits]
    assert repeated.count(start + 1) >= 2 and repeated.count(start + 2) >= 2   # the crash
    assert repeated.count(start + 4) >= 2                                      # the kill
    print("received:", [h.seq - start for h in hits])
    assert f"crm\tactive\tcursor {max(events)}\tlag 0" in listed.stdout, listed.stdout


def webhook_config(tmp_path: Path, sim: Simulator, db_url: str, receiver: Receiver,
                   **delivery: Any) -> Path:
    return baton_config(tmp_path / "baton.yaml", sim_base_url=sim.base_url,
                        corp_id=sim.corp_id, db_url=db_url, catalog=DEMO_CATALOG, extra={
        "limits": {"user_per_minute": 1000, "conversation_per_minute": 1000},
        "integrations": {
            "webhooks": [{"name": "crm", "url": receiver.url("crm"),
                          "secret": "${HOOK_SECRET}", "max_attempts": 1000, "timeout": 0.5}],
            "webhook_delivery": {"lease": "2s", "poll_interval": "1s", "base_backoff": 0.05,
                                 "max_backoff": 0.2, **delivery}}})


@pytest.mark.pg
async def test_two_replicas_deliver_each_event_once_in_order(
        tmp_path: Path, pg_url: str, receiver: Receiver) -> None:
    sim = demo_simulator()
    sim.start()
    cfg = webhook_config(tmp_path, sim, pg_url, receiver, poll_interval=0.2)
    a, b = Process(sim, cfg, tmp_path / "a"), Process(sim, cfg, tmp_path / "b")
    a.logs.mkdir()
    b.logs.mkdir()
    try:
        await a.start()
        await b.start(live=2)
        start = await cursor(pg_url)
        for text, at in COMMANDS + COMMANDS:      # DingTalk spreads them over both sockets
            await a.say(text, at)
        events = {s: i for s, i in (await feed(pg_url)).items() if s > start}
        assert len(events) >= len(COMMANDS)      # (a role set twice changes once)
        await receiver.until(lambda: len(receiver.hits) >= len(events), timeout=30,
                             what="every event")
        await _cursor_at(pg_url, max(events))
        await a.stop()
        await b.stop()
    finally:
        for p in (a, b):
            if p.proc is not None and p.proc.poll() is None:
                p.proc.kill()
        sim.stop()
    hits = receiver.of("crm")
    assert all(h.verified for h in hits)
    assert [h.seq for h in hits] == sorted(events), "a repeat or a reordering"
    assert [h.event_id for h in hits] == [events[s] for s in sorted(events)]


async def _cursor_at(url: str, seq: int) -> None:
    """Wait (30 s at most) until the subscriber's cursor has reached ``seq``."""
    for _ in range(600):
        if await cursor(url) >= seq:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the cursor never reached {seq}")


@pytest.fixture
def settings(sim: Simulator, db_url: str, receiver: Receiver,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    return sim_settings(sim, db_url, integrations={"webhooks": [
        {"name": "slow", "url": receiver.url("slow"), "secret": "${HOOK_SECRET}",
         "timeout": 25},
        {"name": "fast", "url": receiver.url("fast"), "secret": "${HOOK_SECRET}"}]})


async def test_a_hanging_webhook_never_holds_up_commands(
        sim: Simulator, bot: BatonApp, receiver: Receiver) -> None:
    receiver.endpoints["slow"].hang = True
    for i, (text, at) in enumerate(COMMANDS[:3]):
        n = len(sim.messages(GROUP))
        sim.say("lisi", " " + text, conversation_id=GROUP, at=at)
        # Well inside the hanging POST's 25 s timeout.
        await reply_to(sim, GROUP, "", after=n, timeout=10)
        await receiver.until(lambda i=i: len(receiver.unique("fast")) == i + 1, timeout=10,
                             what="the fast subscriber's event")
    assert receiver.endpoints["slow"].waiting == 1
    assert len(receiver.of("slow")) == 1
    # /metrics: slow is 3 events behind, fast is caught up.
    text = await metrics(bot, 'baton_webhook_lag_events{webhook="fast"} 0.0')
    assert 'baton_webhook_lag_events{webhook="slow"} 3.0' in text
    assert 'baton_webhook_paused{webhook="slow"} 0.0' in text
    assert 'baton_webhook_delivered_total{webhook="fast"} 3.0' in text
    receiver.endpoints["slow"].hang = False
    receiver.endpoints["slow"].release.set()
    await receiver.until(lambda: len(receiver.unique("slow")) == 3, timeout=10, what="slow")
    assert receiver.unique("slow") == receiver.unique("fast")
    assert all(h.verified for h in receiver.hits)
    await metrics(bot, 'baton_webhook_lag_events{webhook="slow"} 0.0')


async def metrics(bot: BatonApp, wanted: str) -> str:
    """The /metrics text once it shows ``wanted`` (10 s at most)."""
    text = ""
    for _ in range(200):
        bot.ops.collector.last = await snapshot(bot)
        text = generate_latest(bot.ops.registry).decode()
        if wanted in text:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{wanted!r} never showed in\n{text}")
