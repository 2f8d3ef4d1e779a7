"""Crash points: a `baton run` process SIGKILLed at each named point, restarted, and the
frames redelivered; the outcome must equal applying each distinct command once.

For each crash point (bot/core/faults.py CRASH_POINTS) and several seeds, a seeded script of steps
(grants, revokes, role changes, whoami, who-has, refusals, and sensitive grants whose request
cards are then clicked: approve, reject or a forged click) runs twice, each against its own
simulator and empty database:

* the reference: one `baton run` process, each step once;
* the crash run: the same script, with the process armed to SIGKILL itself the n-th time it
  passes the point (n from the seed). A step counts as done when its frame is acked (after
  its COMMIT), so later steps are sent while the outbox is still busy, as in real use. When
  the process dies it is restarted, and the simulator redelivers every frame pushed so far
  (those never acked, and the acked ones again).

Then the two databases, normalised (no ids, clocks, hashes or webhook secrets; request
numbers as ranks, since a PostgreSQL sequence skips the number a killed transaction took),
must be equal; so must every card's final state; no message of the reference may be
missing; every frame is acked; and the audit chain verifies.

Messages sent twice: only those in flight at the kill, i.e. received by the simulator and
not yet marked sent in the store (counted from both at the moment of the kill). DingTalk's
message APIs take no idempotency key, so no sender can tell "sent, then died" from "died,
then not sent"; Baton chooses at-least-once (never lose) for exactly that window. Cards are
exact: a card create whose first attempt went through is recognised by its outTrackId.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.cli.sandbox import DEMO_CATALOG, demo_simulator
from bot.core.faults import CRASH_ENV, CRASH_POINTS
from dingtalk_sim import Simulator
from dingtalk_sim.model import Delivery
from storage.db import open_database
from storage.models import Base, OutboxMessage, Request
from tests.conftest import _pg_database, _pg_state, _reset_pg
from tests.e2e.conftest import GROUP
from tests.support import baton_config

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

# (who, text, @-mentions): none needs an approval, so each gives one answer in the group.
POOL: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("lisi", "授权 @赵六 crm.report.view", ("zhaoliu",)),
    ("lisi", "撤销 @赵六 crm.report.view", ("zhaoliu",)),
    ("wangwu", "grant @钱七 crm.customer.view", ("qianqi",)),
    ("wangwu", "revoke @钱七 crm.customer.view", ("qianqi",)),
    ("lisi", "设置角色 @钱七 sales", ("qianqi",)),
    ("lisi", "role set @赵六 analyst", ("zhaoliu",)),
    ("zhaoliu", "我的权限", ()),
    ("qianqi", "whoami", ()),
    ("wangwu", "谁有 crm.customer.view", ()),
    ("zhaoliu", "授权 @钱七 crm.report.view", ("qianqi",)),   # refused: not an admin
    # A sensitive grant opens a request with a card; the next step is a click on it.
    ("lisi", "grant @钱七 crm.export", ("qianqi",)),
    ("lisi", "授权 @赵六 finance.invoice", ("zhaoliu",)),
)
SENSITIVE = ("crm.export", "finance.invoice")
CARD = "baton-dingsandboxcorp-R{}"
# Who clicks what on the request just opened: an approval, a rejection, a forged click.
CLICKS = (("wangwu", "approve"), ("zhangsan", "reject"), ("qianqi", "approve"))
TIMES = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}-\d{2}|\d{1,2}:\d{2}(:\d{2})?")
VOLATILE = {"id", "hash", "prev_hash", "anchor_hash", "session_webhook", "source_message_id",
            "message_id", "key", "claimed_until", "attempts", "last_error", "request_id",
            "event_id"}


Step = tuple[str, str, tuple[str, ...]]   # (who, text, @-mentions) or (who, "click:R:action", ())


def script(seed: int, n: int = 8) -> list[Step]:
    """``n`` commands; after each sensitive grant, a click on the request it opened."""
    rng = random.Random(seed)
    steps: list[Step] = []
    requests = 0
    sure = rng.randrange(n)     # every script has at least one request and a click
    for i in range(n):
        who, text, at = rng.choice(POOL if i != sure else POOL[-2:])
        steps.append((who, text, at))
        if any(p in text for p in SENSITIVE):
            requests += 1
            clicker, action = rng.choice(CLICKS)
            steps.append((clicker, f"click:{requests}:{action}", ()))
    return steps


def config(tmp: Path, sim: Simulator, url: str) -> Path:
    return baton_config(tmp / "baton.yaml", sim_base_url=sim.base_url, corp_id=sim.corp_id,
                        db_url=url, catalog=DEMO_CATALOG, extra={
        "limits": {"user_per_minute": 1000, "conversation_per_minute": 1000},
        # A dead process's claimed rows go back to the queue after a second.
        "outbox": {"per_conversation_per_minute": 1000, "lease": "1s"},
    })


@dataclass
class Run:
    sim: Simulator
    cfg: Path
    logs: Path
    crash: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    kills: list[dict[str, Any]] = field(default_factory=list)
    # Messages DingTalk had accepted that the dead process had not yet marked sent: the
    # only ones the restart may send again (texts, with how many such rows).
    in_flight: Counter[str] = field(default_factory=Counter)

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "DINGTALK_"))}
        env.update(DINGTALK_CLIENT_ID=self.sim.client_id,
                   DINGTALK_CLIENT_SECRET=self.sim.client_secret,
                   NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
                   PYTHONPATH=str(ROOT))
        if self.crash and self.starts == 0:
            env[CRASH_ENV] = self.crash
        log = (self.logs / f"run{self.starts}.log").open("wb")
        self.starts += 1
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "run", "--config", str(self.cfg)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def dead(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    async def until(self, predicate: Any, timeout: float, what: str) -> Any:
        """``sim.until``, re-checked at least every 0.2 s: a process's death is not something
        the simulator records (its socket may close before the exit can be reaped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self.sim.until(predicate, timeout=0.2, what=what)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    async def connected(self) -> None:
        try:
            await self.until(
                lambda: any(c.live for c in self.sim.connections()) or self.dead(),
                timeout=30, what="Baton connected")
        except TimeoutError:
            raise AssertionError("Baton did not connect\n" + self.log_tail()) from None
        assert not self.dead(), self.log_tail()

    async def restart(self) -> None:
        assert self.proc is not None and self.proc.returncode == -signal.SIGKILL, (
            f"Baton exited with {self.proc and self.proc.returncode}, not a SIGKILL\n"
            + self.log_tail())
        # In flight = received by the simulator more often than the store says it was sent,
        # and still unsent in the store.
        received = Counter(TIMES.sub("<time>", m.text) for m in self.sim.messages())
        sent, unsent = await outbox_texts(self.url)
        for text, n in unsent.items():
            self.in_flight[text] += min(n, max(0, received[text] - sent[text]))
        await self.sim.until(lambda: not any(c.live for c in self.sim.connections()),
                             timeout=10, what="the dead process's socket closed")
        self.start()
        await self.connected()
        for d in self.deliveries:      # the gateway redelivers: unacked, and acked again
            self.sim.redeliver(d)

    async def say(self, user: str, text: str, at: tuple[str, ...]) -> None:
        n = len(self.sim.messages(GROUP))
        if text.startswith("click:"):
            _, _nth, action = text.split(":")
            # The request the previous step opened (acked, so committed): the newest one.
            # (Its number is not always the script's count: a PostgreSQL sequence skips the
            # value a killed transaction took.)
            rid = str(max(await request_ids(self.url)))
            card = CARD.format(rid)
            try:
                await self.until(lambda: card in self.sim.cards() or self.dead(), timeout=30,
                                 what=f"card {card}")
            except TimeoutError:
                raise AssertionError(f"card {card} never came; kills {self.kills}\n"
                                     + self.log_tail()) from None
            d = self.sim.click(user, card, action, {"request_id": rid})
        else:
            d = self.sim.say(user, " " + text, conversation_id=GROUP, at=at)
        self.deliveries.append(d)

        def done() -> bool:
            # The ack comes after the COMMIT: the step has taken effect, in script order.
            # (Its reply may still be in the outbox; messages are compared at the end.)
            return bool([a for a in self.sim.acks(d.message_id) if a.code == 200])
        while True:
            try:
                state = await self.until(
                    lambda: "dead" if self.dead() else "ok" if done() else None,
                    timeout=30, what=f"an answer to {text!r}")
            except TimeoutError:
                raise AssertionError(f"no answer to {text!r}; kills {self.kills}\n"
                                     + self.log_tail()) from None
            if state == "ok":
                return
            self.kills.append({"at_command": text, "acked": bool(
                [a for a in self.sim.acks(self.deliveries[-1].message_id) if a.code == 200]),
                "replied": len(self.sim.messages(GROUP)) > n,
                "messages": len(self.sim.messages()),
                "card_updates": sum(len(c.history) for c in self.sim.cards().values())})
            await self.restart()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name} ---\n" + p.read_text(errors="replace")[-2500:]
                         for p in sorted(self.logs.glob("run*.log")))


async def request_ids(url: str) -> list[int]:
    db = open_database(url)
    try:
        async with db.uow() as uow:
            return sorted((await uow.session.execute(select(Request.id))).scalars())
    finally:
        await db.dispose()


REQUEST_NO = re.compile(r"\bR(-?)(\d+)\b")
# due_work keys that carry a request id
REQUEST_KEY = re.compile(r"\b(expire|remind|verify|review|dtchange):(\d+)\b")


def renumber(text: str, ids: Sequence[int]) -> str:
    """Request numbers as ranks (R-1, R-2, ...): the same requests, without the gaps a
    killed transaction leaves in a PostgreSQL sequence."""
    rank = {n: i for i, n in enumerate(ids, 1)}
    text = REQUEST_KEY.sub(lambda m: f"{m.group(1)}:{rank.get(int(m.group(2)), m.group(2))}",
                           text)
    return REQUEST_NO.sub(lambda m: f"R{m.group(1)}{rank.get(int(m.group(2)), m.group(2))}",
                          text)


async def outbox_texts(url: str) -> tuple[Counter[str], Counter[str]]:
    """The texts of the message rows marked sent, and of those not (as the store has them)."""
    db = open_database(url)
    try:
        async with db.uow() as uow:
            rows = (await uow.session.execute(
                select(OutboxMessage.status, OutboxMessage.payload)
                .where(OutboxMessage.kind == "reply"))).all()
        sent: Counter[str] = Counter()
        unsent: Counter[str] = Counter()
        for status, payload in rows:
            (sent if status == "sent" else unsent)[TIMES.sub("<time>", str(payload["text"]))] += 1
        return sent, unsent
    finally:
        await db.dispose()


async def settle(url: str, run: Run) -> None:
    """Wait (with a deadline) until the outbox holds nothing pending; restart a dead process."""
    db = open_database(url)
    try:
        deadline = time.monotonic() + 30
        while True:
            if run.dead():
                run.kills.append({"at_command": "(settling)", "messages": len(run.sim.messages())})
                await run.restart()
            async with db.uow() as uow:
                pending = (await uow.session.execute(
                    select(func.count()).select_from(OutboxMessage)
                    .where(OutboxMessage.status != "sent"))).scalar_one()
            if pending == 0:
                return
            assert time.monotonic() < deadline, f"{pending} outbox rows never sent\n{run.log_tail()}"
            await asyncio.sleep(0.05)
    finally:
        await db.dispose()


def _norm(v: Any, ids: Sequence[int]) -> Any:
    if isinstance(v, datetime):
        return "<time>"
    if isinstance(v, str):
        return renumber(TIMES.sub("<time>", v), ids)
    if isinstance(v, dict):
        return tuple(sorted((k, _norm(x, ids)) for k, x in v.items() if k not in VOLATILE))
    if isinstance(v, list):
        return tuple(_norm(x, ids) for x in v)
    return v


async def dump(url: str, ids: Sequence[int]) -> dict[str, Any]:
    """Every table as a sorted multiset of rows, without what differs between two runs."""
    db = open_database(url)
    try:
        out: dict[str, Any] = {}
        async with db.uow() as uow:
            for table in Base.metadata.sorted_tables:
                # api_call_months: a killed process loses the calls it had not flushed yet
                # (at most a minute's worth of one replica's): a count, not a decision.
                if table.name in ("alembic_version", "api_call_months"):
                    continue
                cols = [c for c in table.columns if c.name not in VOLATILE]
                rows = (await uow.session.execute(select(*cols))).all()
                out[table.name] = sorted((tuple(_norm(x, ids) for x in r) for r in rows), key=repr)
        return out
    finally:
        await db.dispose()


async def verify_audit(url: str, corp_id: str) -> None:
    db = open_database(url)
    try:
        async with db.uow() as uow:
            assert await uow.audit.verify(corp_id) is None
    finally:
        await db.dispose()


def texts(sim: Simulator, ids: Sequence[int]) -> Counter[tuple[str, str]]:
    return Counter((m.conversation_id, renumber(TIMES.sub("<time>", m.text), ids))
                   for m in sim.messages())


def cards(sim: Simulator, ids: Sequence[int]) -> dict[str, dict[str, str]]:
    """Each card's public state as the members see it in the end."""
    return {renumber(k, ids): {p: renumber(TIMES.sub("<time>", str(v)), ids)
                               for p, v in c.params.items()}
            for k, c in sim.cards().items()}


async def play(tmp: Path, url: str, cmds: Sequence[tuple[str, str, tuple[str, ...]]],
               crash: str | None) -> tuple[Run, dict[str, Any], Counter[tuple[str, str]],
                                           dict[str, dict[str, str]]]:
    sim = demo_simulator()
    sim.start()
    logs = tmp / ("crash" if crash else "reference")
    logs.mkdir()
    run = Run(sim, config(logs, sim, url), logs, crash, url=url)
    try:
        run.start()
        await run.connected()
        for who, text, at in cmds:
            await run.say(who, text, at)
        await settle(url, run)
        await run.stop()
        unacked = [d.message_id for d in run.deliveries
                   if not [a for a in sim.acks(d.message_id) if a.code == 200]]
        assert not unacked, f"frames never acked: {unacked}\n{run.log_tail()}"
        await verify_audit(url, sim.corp_id)
        ids = await request_ids(url)
        run.in_flight = Counter({renumber(t, ids): n for t, n in run.in_flight.items()})
        return run, await dump(url, ids), texts(sim, ids), cards(sim, ids)
    finally:
        if run.proc is not None and run.proc.poll() is None:
            run.proc.kill()
        sim.stop()


async def fresh(url: str) -> None:
    if url.startswith("postgresql"):
        await _reset_pg(url)


# SQLite: every point with three seeds; PostgreSQL: every point with one seed.
CASES = [pytest.param("sqlite", point, seed, id=f"sqlite-{point}-{seed}")
         for point in CRASH_POINTS for seed in (1, 2, 3)] + [
    pytest.param("postgresql", point, 1, id=f"postgresql-{point}-1", marks=pytest.mark.pg)
    for point in CRASH_POINTS]


@pytest.fixture
def db_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    backend = request.node.callspec.params["backend"]
    if backend == "sqlite":
        return (f"sqlite+aiosqlite:///{tmp_path}/reference.db",
                f"sqlite+aiosqlite:///{tmp_path}/crash.db")
    url = _pg_database()
    if url is None:
        pytest.skip(str(_pg_state.get("why")))
    return url, url


@pytest.mark.parametrize(("backend", "point", "seed"), CASES)
async def test_crash_point_then_restart_equals_applying_each_command_once(
        tmp_path: Path, db_urls: tuple[str, str], backend: str, point: str, seed: int) -> None:
    ref_url, crash_url = db_urls
    cmds = script(seed)
    await fresh(ref_url)
    _ref_run, ref_db, ref_msgs, ref_cards = await play(tmp_path, ref_url, cmds, None)
    await fresh(crash_url)
    nth = random.Random(seed * 7919).randint(1, len([c for c in cmds if "click:" not in c[1]]))
    run, got_db, got_msgs, got_cards = await play(tmp_path, crash_url, cmds,
                                                         f"{point}:{nth}")

    print("kills:", run.kills)
    assert run.kills, f"the process never reached {point} pass {nth}\n{run.log_tail()}"
    assert "CRASH POINT" in (tmp_path / "crash" / "run0.log").read_text(errors="replace")
    assert got_db == ref_db, _diff(ref_db, got_db)
    assert got_cards == ref_cards
    extra = got_msgs - ref_msgs
    missing = ref_msgs - got_msgs
    assert not missing, f"messages lost: {missing}"
    # Sent twice only what DingTalk had accepted and the dead process had not marked sent.
    beyond = Counter(t for _c, t in extra.elements()) - run.in_flight
    assert not beyond, f"messages sent twice that were not in flight at the kill: {beyond}"
    print("resent (in flight at the kill):", sum(extra.values()))
    if point == "commit.before_ack":
        assert not run.kills[0]["acked"], "killed after COMMIT but the frame was acked"


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            sa, sb = Counter(map(repr, a.get(k, []))), Counter(map(repr, b.get(k, [])))
            lines.append(f"table {k}: only in reference {list((sa - sb).elements())[:5]}; "
                         f"only after the crash {list((sb - sa).elements())[:5]}")
    return "\n".join(lines)
