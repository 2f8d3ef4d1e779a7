"""Throughput and latency of ``whoami``: Baton versus a bare SDK echo bot, through the simulator.

    python -m bench.whoami_bench [--n 2000] [--k 32] [--db sqlite|postgresql|both]
                                 [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
                                 [--outbox-per-minute N] [--cold-members]

Each system under test gets a fresh loopback simulator. One driver pushes N ``whoami``
commands (round-robin over the active demo members, in the demo group, with ``sim.say``)
keeping K of them without a reply, and learns about completions from a single waiter
(``sim.wait_for`` on the count of replies). Every figure comes from the simulator's own
records, so both systems are timed by the same clock:

* push: ``headers.time`` of the frame, stamped by the simulator on its loop right before
  it writes the frame to the socket (milliseconds, sim clock = wall clock);
* ack: ``AckRecord.at``, when the simulator read the ack from the socket;
* reply: ``HttpRecord.at`` of the ``/robot/sendBySession`` request carrying the frame's
  ``session``, when the simulator received the reply.

A figure is printed only when every reply arrived exactly once, in the right conversation,
naming the sender's userId, and every frame was acked with code 200; otherwise the run
aborts and says what was wrong.

Baton runs with ``outbox.per_conversation_per_minute`` lifted (its default, 20 a minute per
conversation, would hold one group to 0.33 commands/s); ``--outbox-per-minute`` sets it.
Before the concurrent warm-up each member speaks once on their own, so first contacts do not
race each other; ``--cold-members`` skips that.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dingtalk_stream
from dingtalk_stream.frames import AckMessage

from bench.common import pg_admin, postgres_url, sqlite_url
from bot.app import BatonApp
from bot.logs import setup_logging
from bot.sandbox import DEMO_GROUP, DEMO_USERS, demo_simulator, sim_settings
from bot.sim import Simulator

GROUP = DEMO_GROUP
MEMBERS = tuple(u.user_id for u in DEMO_USERS if u.active)
TEXT = "whoami"
WEBHOOK = "/robot/sendBySession"
WARMUP = 50
STALL = 30.0  # seconds without a single new reply before the run is declared stuck
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
UNLIMITED = 1_000_000_000


class BenchError(Exception):
    """The run measured something other than correct replies; the message says what."""


# --- one run: push, wait, check, measure -----------------------------------------------------


@dataclass(frozen=True)
class Push:
    user: str
    message_id: str
    session: str
    sim_ms: int  # headers.time of the frame (sim clock, ms)
    wall: float  # time.time() right before sim.say (same clock as the records, full precision)


@dataclass(frozen=True)
class Result:
    system: str
    db: str
    n: int
    k: int
    per_s: float
    ack_ms: tuple[float, float]  # p50, p99 from the frame's headers.time
    reply_ms: tuple[float, float]
    ack_ms_say: tuple[float, float]  # p50, p99 from time.time() before sim.say
    reply_ms_say: tuple[float, float]
    rss_mb: float


def _session_of(url: str) -> str:
    return parse_qs(urlsplit(url).query).get("session", [""])[0]


def _push(sim: Simulator, user: str) -> Push:
    wall = time.time()
    d = sim.say(user, TEXT, conversation_id=GROUP)
    data = json.loads(d.frame["data"])
    return Push(user, d.message_id, _session_of(data["sessionWebhook"]),
                int(d.frame["headers"]["time"]), wall)


def _replies_at_least(sim: Simulator, base: int, need: int, pushes: Sequence[Push]) -> int:
    """Block until at least ``need`` replies after ``base`` were recorded; return how many."""
    def count() -> int | None:
        got = len(sim.messages(GROUP)) - base
        return got if got >= need else None

    try:
        return sim.wait_for(count, timeout=STALL, what=f"{need} replies")
    except TimeoutError:
        got = len(sim.messages(GROUP)) - base
        acked = {a.message_id for a in sim.acks()}
        unacked = [p for p in pushes if p.message_id not in acked]
        raise BenchError(
            f"stuck: {got} replies for {len(pushes)} commands after {STALL:.0f}s of silence; "
            f"{len(unacked)} frames never acked (the bot failed them: see its log), e.g. "
            + ", ".join(f"{p.message_id} from {p.user}" for p in unacked[:5])) from None


def drive(sim: Simulator, n: int, k: int) -> list[Push]:
    """Push ``n`` commands keeping ``k`` unanswered; return once every reply is in."""
    base = len(sim.messages(GROUP))
    pushes: list[Push] = []
    done = 0
    while len(pushes) < n:
        while len(pushes) < n and len(pushes) - done < k:
            pushes.append(_push(sim, MEMBERS[len(pushes) % len(MEMBERS)]))
        # One waiter: wake when at least one slot is free again (or when all are answered).
        done = _replies_at_least(sim, base, min(len(pushes), len(pushes) - k + 1), pushes)
    _replies_at_least(sim, base, n, pushes)
    ids = {p.message_id for p in pushes}
    try:
        sim.wait_for(lambda: len({a.message_id for a in sim.acks() if a.message_id in ids}) >= n,
                     timeout=STALL, what="every ack")
    except TimeoutError:
        raise BenchError(f"every reply came but some of the {n} frames were never acked") from None
    return pushes


def _percentiles(values_ms: Sequence[float]) -> tuple[float, float]:
    s = sorted(values_ms)

    def rank(q: float) -> float:
        return s[min(len(s) - 1, max(0, round(q * len(s)) - 1))]

    return rank(0.50), rank(0.99)


def check_and_measure(sim: Simulator, pushes: Sequence[Push], sent_before: int,
                      system: str, db: str, k: int) -> Result:
    """Verify every reply (exactly one, right text, right place) and every ack; compute figures."""
    n = len(pushes)
    by_session = {p.session: p for p in pushes}
    ids = {p.message_id: p for p in pushes}

    replies: dict[str, list[Any]] = {}
    for r in sim.requests(WEBHOOK):
        s = r.query.get("session", "")
        if s in by_session:
            replies.setdefault(s, []).append(r)
    acks: dict[str, Any] = {}
    for a in sim.acks():
        if a.message_id in ids:
            acks.setdefault(a.message_id, a)

    problems: list[str] = []
    for p in pushes:
        got = replies.get(p.session, [])
        if len(got) != 1:
            problems.append(f"{p.message_id} ({p.user}): {len(got)} webhook replies")
            continue
        body = got[0].json or {}
        section = body.get(body.get("msgtype", ""), {}) if isinstance(body, dict) else {}
        text = str(section.get("content", section.get("text", "")))
        if p.user not in text:
            problems.append(f"{p.message_id} ({p.user}): reply does not name the sender: {text[:80]!r}")
        ack = acks.get(p.message_id)
        if ack is None or ack.code != AckMessage.STATUS_OK:
            problems.append(f"{p.message_id} ({p.user}): ack {ack.code if ack else 'missing'}")
    accepted = sim.messages(GROUP)[sent_before:]
    if len(accepted) != n:
        problems.append(f"the group received {len(accepted)} messages for {n} commands")
    if problems:
        head = "\n  ".join(problems[:10])
        raise BenchError(f"{system}/{db}: {len(problems)} wrong or missing replies, e.g.\n  {head}")

    first_push = min(p.sim_ms for p in pushes) / 1000
    last_reply = max(replies[p.session][0].at for p in pushes)
    ack_sim = [(acks[p.message_id].at - p.sim_ms / 1000) * 1000 for p in pushes]
    reply_sim = [(replies[p.session][0].at - p.sim_ms / 1000) * 1000 for p in pushes]
    ack_say = [(acks[p.message_id].at - p.wall) * 1000 for p in pushes]
    reply_say = [(replies[p.session][0].at - p.wall) * 1000 for p in pushes]
    return Result(system, db, n, k, n / (last_reply - first_push),
                  _percentiles(ack_sim), _percentiles(reply_sim),
                  _percentiles(ack_say), _percentiles(reply_say), peak_rss_mb())


def measure(sim: Simulator, system: str, db: str, n: int, k: int, *, cold: bool) -> Result:
    """Warm up, then the measured run (blocking: call it off the bot's event loop).

    Unless ``cold``, each member first speaks once on their own, so the concurrent runs
    meet members the bot already knows (see --cold-members).
    """
    if not cold:
        before = len(sim.messages(GROUP))
        check_and_measure(sim, drive(sim, len(MEMBERS), 1), before, system, db, 1)
    before = len(sim.messages(GROUP))
    check_and_measure(sim, drive(sim, WARMUP, k), before, system, db, k)
    gc.collect()
    before = len(sim.messages(GROUP))
    pushes = drive(sim, n, k)
    return check_and_measure(sim, pushes, before, system, db, k)


def peak_rss_mb() -> float:
    """The process's peak resident set so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _live_connections(sim: Simulator) -> int:
    return len([c for c in sim.connections() if c.live])


def _one_connection(sim: Simulator) -> None:
    """Exactly one bot holds a stream connection (call once one was seen)."""
    live = _live_connections(sim)
    if live != 1:
        raise BenchError(f"expected one stream connection to the simulator, found {live}")


# --- systems under test ------------------------------------------------------------------------


async def bench_baton(db: str, db_url: str, args: argparse.Namespace) -> Result:
    sim = demo_simulator()
    sim.start()
    try:
        settings = sim_settings(sim, db_url,
                                outbox={"per_conversation_per_minute": args.outbox_per_minute},
                                limits={"user_per_minute": 1_000_000,
                                        "conversation_per_minute": 1_000_000})
        async with BatonApp(settings) as app:
            await app.wait_connected()
            # The client may see the handshake done before the simulator has registered it.
            await sim.until(lambda: _live_connections(sim), timeout=10, what="Baton's connection")
            _one_connection(sim)
            return await asyncio.to_thread(measure, sim, "baton", db, args.n, args.k,
                                           cold=args.cold_members)
    finally:
        sim.stop()


class EchoHandler(dingtalk_stream.ChatbotHandler):  # type: ignore[misc]
    """What the SDK's README has a developer write: reply with ``reply_text``, ack OK."""

    async def process(self, callback: dingtalk_stream.CallbackMessage) -> tuple[int, str]:
        incoming = dingtalk_stream.ChatbotMessage.from_dict(callback.data)
        text = incoming.text.content.strip()
        self.reply_text(f"{incoming.sender_staff_id}: {text}", incoming)
        return AckMessage.STATUS_OK, "OK"


def bench_sdk_echo(args: argparse.Namespace) -> Result:
    sim = demo_simulator()
    sim.start()
    try:
        dingtalk_stream.DingTalkStreamClient.OPEN_CONNECTION_API = sim.open_connection_url
        client = dingtalk_stream.DingTalkStreamClient(
            dingtalk_stream.Credential(sim.client_id, sim.client_secret),
            logger=logging.getLogger("dingtalk_stream.client"))
        client.register_callback_handler(dingtalk_stream.ChatbotMessage.TOPIC, EchoHandler())
        threading.Thread(target=asyncio.run, args=(client.start(),), name="sdk-echo",
                         daemon=True).start()
        sim.wait_for(lambda: _live_connections(sim), timeout=10, what="the SDK's connection")
        _one_connection(sim)
        return measure(sim, "sdk-echo", "-", args.n, args.k, cold=args.cold_members)
    finally:
        # The stock client never exits: point its reconnect loop at a closed port and mute it,
        # so it can never join a later simulator (same credentials) and stays quiet.
        dingtalk_stream.DingTalkStreamClient.OPEN_CONNECTION_API = \
            "http://127.0.0.1:9/v1.0/gateway/connections/open"
        logging.getLogger("dingtalk_stream").setLevel(logging.CRITICAL)
        sim.stop()


# --- databases ---------------------------------------------------------------------------------




async def bench_baton_all(args: argparse.Namespace) -> list[Result]:
    results = []
    if args.db in ("sqlite", "both"):
        async with sqlite_url() as url:
            results.append(await bench_baton("sqlite", url, args))
    if args.db in ("postgresql", "both"):
        try:
            await pg_admin(args.pg_url, "SELECT 1")
        except Exception as e:  # no server or no rights: say so, measure the rest
            print(f"PostgreSQL skipped: not reachable at {args.pg_url}: {type(e).__name__}: {e}")
        else:
            async with postgres_url(args.pg_url) as url:
                results.append(await bench_baton("postgresql", url, args))
    return results


# --- report -------------------------------------------------------------------------------------


def print_table(results: Sequence[Result], args: argparse.Namespace) -> None:
    sdk = next((r for r in results if r.system == "sdk-echo"), None)
    cols: list[tuple[str, Callable[[Result], str]]] = [
        ("system", lambda r: r.system),
        ("db", lambda r: r.db),
        ("n", lambda r: str(r.n)),
        ("k", lambda r: str(r.k)),
        ("cmd/s", lambda r: f"{r.per_s:.1f}"),
        ("ack p50/p99 ms", lambda r: f"{r.ack_ms[0]:.1f} / {r.ack_ms[1]:.1f}"),
        ("reply p50/p99 ms", lambda r: f"{r.reply_ms[0]:.1f} / {r.reply_ms[1]:.1f}"),
        ("peak RSS MB", lambda r: f"{r.rss_mb:.0f}"),
        ("vs sdk-echo", lambda r: f"{r.per_s / sdk.per_s:.2f}x" if sdk else "-"),
    ]
    rows = [[h for h, _ in cols]] + [[f(r) for _, f in cols] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    print()
    for i, row in enumerate(rows):
        cells = zip(row, widths, strict=True)
        print("  ".join(c.rjust(w) if j >= 2 else c.ljust(w) for j, (c, w) in enumerate(cells)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print("Latency clock: push = the frame's headers.time, stamped by the simulator on its loop just")
    print("before the socket write (sim clock, ms resolution: figures can read up to 1 ms high);")
    print("ack = AckRecord.at; reply = HttpRecord.at of the sendBySession request (same clock).")
    print("Cross-check from time.time() taken right before sim.say (includes the hop into the sim):")
    for r in results:
        print(f"  {r.system}/{r.db}: ack p50/p99 {r.ack_ms_say[0]:.1f} / {r.ack_ms_say[1]:.1f} ms, "
              f"reply p50/p99 {r.reply_ms_say[0]:.1f} / {r.reply_ms_say[1]:.1f} ms")
    print("cmd/s = n / (last reply received - first push). Peak RSS is the process high-water mark")
    print("after that system's run (ru_maxrss; cumulative, systems run in the order listed).")
    limit = ("lifted" if args.outbox_per_minute >= UNLIMITED
             else f"{args.outbox_per_minute}/min")
    intro = "" if args.cold_members else f"{len(MEMBERS)} first contacts one at a time, then "
    print(f"Baton: outbox.per_conversation_per_minute {limit} (the default 20/min caps one group at")
    print(f"0.33 cmd/s). Warm-up per system, not measured: {intro}{WARMUP} commands at k={args.k}.")
    print("Every reply checked: exactly one per command, in the group, naming the sender's userId;")
    print("every frame acked 200.")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.whoami_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="measured commands per system")
    p.add_argument("--k", type=int, default=32, help="commands in flight (pushed, not answered)")
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get("BATON_TEST_PG", DEFAULT_PG),
                   help="an existing database on the server; a fresh one is created beside it")
    p.add_argument("--outbox-per-minute", type=int, default=UNLIMITED,
                   help="Baton's outbox.per_conversation_per_minute (default: lifted)")
    p.add_argument("--cold-members", action="store_true",
                   help="skip the one-at-a-time first message of each member before the "
                        "concurrent warm-up (first contacts then race each other)")
    args = p.parse_args(argv)
    if args.n < 1 or args.k < 1:
        p.error("--n and --k must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
    setup_logging("WARNING")
    print(f"whoami bench: n={args.n} k={args.k} db={args.db} members={','.join(MEMBERS)} "
          f"group={GROUP} cpus={os.cpu_count()} baseline RSS {peak_rss_mb():.0f} MB", flush=True)
    started = time.monotonic()
    try:
        # The SDK bot first: its daemon thread outlives its simulator (parked, muted), and
        # its RSS figure is not hidden under Baton's high-water mark.
        results = [bench_sdk_echo(args)]
        results += asyncio.run(bench_baton_all(args))
    except BenchError as e:
        print(f"ABORTED: {e}", file=sys.stderr)
        return 1
    print_table(results, args)
    print(f"total wall time {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
