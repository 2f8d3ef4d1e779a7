"""Throughput and latency of ``whoami``: Baton versus a bare SDK echo bot and a raw websocket echo.

    python -m bench.whoami_bench [--n 2000] [--k 32] [--db sqlite|postgresql|both]
                                 [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
                                 [--outbox-per-minute N] [--cold-members] [--in-process]
                                 [--systems sdk,raw,baton] [--rounds R]

Three systems under test:

* ``sdk-echo``: the dingtalk-stream SDK's README bot (``reply_text``, ack OK);
* ``raw-echo``: the floor, no SDK and no database (bench/sut.py ``RawEchoBot``): the Stream
  handshake by hand, each robot message acked at once on the socket and its reply POSTed to
  the sessionWebhook through one shared aiohttp session;
* ``baton``: ``baton run`` (``python -m bot.cli.main run --config FILE``) on SQLite and/or
  PostgreSQL.

By default each runs in a child process, so none shares the GIL with the simulator (which
runs on a thread of this process, beside the driver); ``--in-process`` runs them on threads
of this process instead (as the first version of this bench did).

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

``--rounds R`` runs every system R times, interleaved (sdk, raw, Baton; sdk, raw, Baton; ...),
and ends with a summary: each round's ratios are taken between systems measured minutes
apart, and the verdict is on the median round, since on a shared machine one run's ratio
can move by 20% with the machine's phase.

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
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dingtalk_stream
from dingtalk_stream.frames import AckMessage

from bench import sut
from bench.common import BenchError, pg_reachable, postgres_url, print_rows, sqlite_url
from bot.app import BatonApp
from bot.cli.sandbox import DEMO_CATALOG, DEMO_GROUP, DEMO_USERS, demo_simulator, sim_settings
from bot.logs import setup_logging
from dingtalk_sim import Simulator

GROUP = DEMO_GROUP
MEMBERS = tuple(u.user_id for u in DEMO_USERS if u.active)
TEXT = "whoami"
WEBHOOK = "/robot/sendBySession"
WARMUP = 50
STALL = 30.0  # seconds without a single new reply before the run is declared stuck
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
UNLIMITED = 1_000_000_000


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
    cpu_ms: float | None = None  # CPU time (user + system, all threads) per command, measured run


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
    need = max(1, need)  # a count of 0 is falsy: wait_for would never see it as done

    def count() -> int | None:
        got = len(sim.messages(GROUP)) - base
        return got if got >= need else None

    try:
        return int(sim.wait_for(count, timeout=STALL, what=f"{need} replies") or 0)
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


def measure(sim: Simulator, system: str, db: str, n: int, k: int, *, cold: bool,
            pid: int | None = None) -> Result:
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
    cpu0 = sut.cpu_seconds(pid) if pid is not None else None
    pushes = drive(sim, n, k)
    cpu = sut.cpu_seconds(pid) - cpu0 if pid is not None and cpu0 is not None else None
    result = check_and_measure(sim, pushes, before, system, db, k)
    return replace(result, cpu_ms=cpu * 1000 / n if cpu is not None else None)


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


def _baton_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """What Baton needs lifted to be measured at all (one group, five members, k in flight)."""
    return {"outbox": {"per_conversation_per_minute": args.outbox_per_minute},
            "limits": {"user_per_minute": UNLIMITED, "conversation_per_minute": UNLIMITED}}


def _measure_child(sim: Simulator, proc: subprocess.Popen[bytes], log_path: Path, system: str,
                   db: str, args: argparse.Namespace) -> Result:
    """Wait for the child's connection, measure, stop it; its log is shown if anything fails."""
    try:
        try:
            sim.wait_for(lambda: _live_connections(sim) or proc.poll() is not None,
                         timeout=60, what=f"{system}'s connection")
        except TimeoutError:
            raise BenchError(f"{system}/{db}: no connection to the simulator within 60 s") from None
        if proc.poll() is not None:
            raise BenchError(f"{system}/{db}: the child exited ({proc.returncode}) before connecting")
        _one_connection(sim)
        result = measure(sim, system, db, args.n, args.k, cold=args.cold_members, pid=proc.pid)
        result = replace(result, rss_mb=sut.peak_rss_mb(proc.pid))
    except BaseException:
        sut.stop_child(proc)
        print(f"--- {system}/{db} child log (tail) ---\n{sut.tail(log_path)}", file=sys.stderr)
        raise
    code = sut.stop_child(proc)
    if code not in (0, -signal.SIGTERM):
        print(f"warning: {system}/{db} child exited with {code}; log tail:\n{sut.tail(log_path)}",
              file=sys.stderr)
    return result


async def bench_baton(db: str, db_url: str, args: argparse.Namespace) -> Result:
    sim = demo_simulator()
    sim.start()
    try:
        if not args.in_process:
            with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp:
                extra = {**_baton_overrides(args), "log": {"level": "WARNING"}}
                cfg = sut.baton_config(Path(tmp, "baton.yaml"), sim_base_url=sim.base_url,
                                       corp_id=sim.corp_id, db_url=db_url,
                                       catalog=DEMO_CATALOG, extra=extra)
                log_path = Path(tmp, "baton.log")
                proc = sut.start_baton(cfg, sim.client_id, sim.client_secret, log_path)
                return await asyncio.to_thread(_measure_child, sim, proc, log_path, "baton", db,
                                               args)
        lifted = _baton_overrides(args)
        settings = sim_settings(sim, db_url, outbox=lifted["outbox"], limits=lifted["limits"])
        async with BatonApp(settings) as app:
            await app.wait_connected()
            # The client may see the handshake done before the simulator has registered it.
            await sim.until(lambda: _live_connections(sim), timeout=10, what="Baton's connection")
            _one_connection(sim)
            return await asyncio.to_thread(measure, sim, "baton", db, args.n, args.k,
                                           cold=args.cold_members)
    finally:
        sim.stop()


def _bench_echo_child(kind: str, system: str, args: argparse.Namespace) -> Result:
    sim = demo_simulator()
    sim.start()
    try:
        with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp:
            log_path = Path(tmp, f"{kind}.log")
            proc = sut.start_echo(kind, sim.open_connection_url, sim.client_id,
                                  sim.client_secret, log_path)
            return _measure_child(sim, proc, log_path, system, "-", args)
    finally:
        sim.stop()


def bench_sdk_echo(args: argparse.Namespace) -> Result:
    if not args.in_process:
        return _bench_echo_child("sdk", "sdk-echo", args)
    sim = demo_simulator()
    sim.start()
    try:
        client = sut.sdk_echo_client(sim.open_connection_url, sim.client_id, sim.client_secret)
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


def bench_raw_echo(args: argparse.Namespace) -> Result:
    if not args.in_process:
        return _bench_echo_child("raw", "raw-echo", args)
    sim = demo_simulator()
    sim.start()
    bot = sut.RawEchoBot(sim.open_connection_url, sim.client_id, sim.client_secret)
    runner = sut.LoopThread(bot.run(), "raw-echo")
    runner.start()
    try:
        sim.wait_for(lambda: _live_connections(sim), timeout=10, what="the raw echo's connection")
        _one_connection(sim)
        return measure(sim, "raw-echo", "-", args.n, args.k, cold=args.cold_members)
    finally:
        runner.stop()
        sim.stop()


# --- databases ---------------------------------------------------------------------------------


async def bench_baton_all(args: argparse.Namespace) -> list[Result]:
    results = []
    if args.db in ("sqlite", "both"):
        async with sqlite_url() as url:
            results.append(await bench_baton("sqlite", url, args))
    if args.db in ("postgresql", "both") and await pg_reachable(args.pg_url):
        async with postgres_url(args.pg_url) as url:
            results.append(await bench_baton("postgresql", url, args))
    return results


# --- report -------------------------------------------------------------------------------------


TARGET_VS_SDK = 4.0  # the targets for Baton's read commands
TARGET_VS_RAW = 0.5
TARGET_ACK_P99_MS = 50.0
TARGET_K = 32


def _ratio(r: Result, base: Result | None) -> str:
    return f"{r.per_s / base.per_s:.2f}x" if base else "-"


def print_table(results: Sequence[Result], args: argparse.Namespace, *, brief: bool = False) -> None:
    sdk = next((r for r in results if r.system == "sdk-echo"), None)
    raw = next((r for r in results if r.system == "raw-echo"), None)
    cols: list[tuple[str, Callable[[Result], str]]] = [
        ("system", lambda r: r.system),
        ("db", lambda r: r.db),
        ("n", lambda r: str(r.n)),
        ("k", lambda r: str(r.k)),
        ("cmd/s", lambda r: f"{r.per_s:.1f}"),
        ("ack p50/p99 ms", lambda r: f"{r.ack_ms[0]:.1f} / {r.ack_ms[1]:.1f}"),
        ("reply p50/p99 ms", lambda r: f"{r.reply_ms[0]:.1f} / {r.reply_ms[1]:.1f}"),
        ("peak RSS MB", lambda r: f"{r.rss_mb:.0f}"),
        ("CPU ms/cmd", lambda r: f"{r.cpu_ms:.3f}" if r.cpu_ms is not None else "-"),
        ("vs sdk-echo", lambda r: _ratio(r, sdk)),
        ("vs raw", lambda r: _ratio(r, raw)),
    ]
    rows = [[h for h, _ in cols]] + [[f(r) for _, f in cols] for r in results]
    print_rows(rows, left=(0, 1))
    if brief:
        return
    print_targets(results, sdk, raw, args)
    print()
    print_notes(results, args)


def print_notes(results: Sequence[Result], args: argparse.Namespace) -> None:
    where = ("in this process (sharing the GIL with the simulator's thread)" if args.in_process
             else "each in its own child process (the simulator and the driver stay here)")
    print(f"Systems under test ran {where}.")
    print("Latency clock: push = the frame's headers.time, stamped by the simulator on its loop just")
    print("before the socket write (sim clock, ms resolution: figures can read up to 1 ms high);")
    print("ack = AckRecord.at; reply = HttpRecord.at of the sendBySession request (same clock).")
    print("Cross-check from time.time() taken right before sim.say (includes the hop into the sim):")
    for r in results:
        print(f"  {r.system}/{r.db}: ack p50/p99 {r.ack_ms_say[0]:.1f} / {r.ack_ms_say[1]:.1f} ms, "
              f"reply p50/p99 {r.reply_ms_say[0]:.1f} / {r.reply_ms_say[1]:.1f} ms")
    print("cmd/s = n / (last reply received - first push).")
    if args.in_process:
        print("Peak RSS is this process's high-water mark after that system's run (ru_maxrss;")
        print("cumulative, systems run in the order listed, and it includes the simulator).")
    else:
        print("Peak RSS is the child's own high-water mark (VmHWM), read before it was stopped.")
        print("CPU ms/cmd: the child's CPU time (user + system, every thread, /proc/PID/stat)")
        print("over the measured run, divided by n: the cost of one command, whatever the rate.")
    limit = ("lifted" if args.outbox_per_minute >= UNLIMITED
             else f"{args.outbox_per_minute}/min")
    intro = "" if args.cold_members else f"{len(MEMBERS)} first contacts one at a time, then "
    print(f"Baton: outbox.per_conversation_per_minute {limit} (the default 20/min caps one group at")
    print("0.33 cmd/s), limits.user_per_minute and conversation_per_minute lifted.")
    print(f"Warm-up per system, not measured: {intro}{WARMUP} commands at k={args.k}.")
    print("Every reply checked: exactly one per command, in the group, naming the sender's userId;")
    print("every frame acked 200.")


def print_targets(results: Sequence[Result], sdk: Result | None, raw: Result | None,
                  args: argparse.Namespace) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT MET"

    print(f"Targets (the issue's): Baton read commands >= {TARGET_VS_SDK:g}x sdk-echo and "
          f">= {TARGET_VS_RAW:g}x raw-echo; ack p99 < {TARGET_ACK_P99_MS:g} ms at k={TARGET_K}.")
    for r in results:
        if r.system != "baton":
            continue
        parts = []
        if sdk:
            x = r.per_s / sdk.per_s
            parts.append(f"{x:.2f}x sdk-echo (>= {TARGET_VS_SDK:g}x): {verdict(x >= TARGET_VS_SDK)}")
        if raw:
            x = r.per_s / raw.per_s
            parts.append(f"{x:.2f}x raw (>= {TARGET_VS_RAW:g}x): {verdict(x >= TARGET_VS_RAW)}")
        if args.k == TARGET_K:
            ok = r.ack_ms[1] < TARGET_ACK_P99_MS
            parts.append(f"ack p99 {r.ack_ms[1]:.1f} ms (< {TARGET_ACK_P99_MS:g}): {verdict(ok)}")
        else:
            parts.append(f"ack p99 {r.ack_ms[1]:.1f} ms at k={args.k}: not comparable "
                         f"(target is at k={TARGET_K})")
        print(f"  baton/{r.db}: " + "; ".join(parts))


def _spread(values: Sequence[float], fmt: str, unit: str = "") -> str:
    """``median (min-max)`` of ``values``, each formatted with ``fmt``."""
    lo, mid, hi = min(values), statistics.median(values), max(values)
    return f"{mid:{fmt}}{unit} ({lo:{fmt}}-{hi:{fmt}})"


def print_summary(rounds: Sequence[Sequence[Result]], args: argparse.Namespace) -> None:
    """Medians over interleaved rounds; ratios are taken within a round, then summarised."""
    keys = list(dict.fromkeys((r.system, r.db) for rs in rounds for r in rs))
    print(f"Summary of {len(rounds)} interleaved rounds: median (lowest-highest). A ratio is "
          "taken between systems of the same round.")
    cols = ["system", "db", "cmd/s", "CPU ms/cmd", "ack p99 ms", "peak RSS MB",
            "vs sdk-echo", "vs raw"]
    rows = [cols]
    ratios: dict[tuple[str, str], dict[str, list[float]]] = {}
    for key in keys:
        mine = [r for rs in rounds for r in rs if (r.system, r.db) == key]
        got: dict[str, list[float]] = {"sdk-echo": [], "raw-echo": []}
        for rs in rounds:
            me = next((r for r in rs if (r.system, r.db) == key), None)
            for name, xs in got.items():
                base = next((r for r in rs if r.system == name), None)
                if me and base:
                    xs.append(me.per_s / base.per_s)
        ratios[key] = got
        cpu = [r.cpu_ms for r in mine if r.cpu_ms is not None]
        rows.append([
            key[0], key[1],
            _spread([r.per_s for r in mine], ".0f"),
            _spread(cpu, ".3f") if cpu else "-",
            _spread([r.ack_ms[1] for r in mine], ".1f"),
            f"{max(r.rss_mb for r in mine):.0f}",
            _spread(got["sdk-echo"], ".2f", "x") if got["sdk-echo"] else "-",
            _spread(got["raw-echo"], ".2f", "x") if got["raw-echo"] else "-",
        ])
    print_rows(rows, left=(0, 1))
    print(f"Targets (the issue's), judged on the median round: Baton read commands >= "
          f"{TARGET_VS_SDK:g}x sdk-echo and >= {TARGET_VS_RAW:g}x raw-echo; ack p99 < "
          f"{TARGET_ACK_P99_MS:g} ms at k={TARGET_K}.")
    for key in keys:
        if key[0] != "baton":
            continue
        mine = [r for rs in rounds for r in rs if (r.system, r.db) == key]
        parts = []
        for name, target in (("sdk-echo", TARGET_VS_SDK), ("raw-echo", TARGET_VS_RAW)):
            xs = ratios[key][name]
            if xs:
                mid = statistics.median(xs)
                met = sum(x >= target for x in xs)
                parts.append(f"{mid:.2f}x {name} (>= {target:g}x): "
                             f"{'met' if mid >= target else 'NOT MET'}, "
                             f"{met} of {len(xs)} rounds at or above")
        if args.k == TARGET_K:
            p99 = [r.ack_ms[1] for r in mine]
            mid = statistics.median(p99)
            met = sum(x < TARGET_ACK_P99_MS for x in p99)
            parts.append(f"ack p99 {mid:.1f} ms (< {TARGET_ACK_P99_MS:g}): "
                         f"{'met' if mid < TARGET_ACK_P99_MS else 'NOT MET'}, "
                         f"{met} of {len(p99)} rounds below")
        print(f"  baton/{key[1]}: " + "; ".join(parts))
    print()
    print_notes([r for rs in rounds for r in rs], args)


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
    p.add_argument("--in-process", action="store_true",
                   help="run every system under test in this process, on a thread beside the "
                        "simulator (they share the GIL); default: each in a child process")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every system this many times, interleaved, and summarise the "
                        "rounds (medians; the verdict is on the median round)")
    p.add_argument("--systems", default="sdk,raw,baton",
                   help="comma-separated subset of sdk,raw,baton (default: all three)")
    args = p.parse_args(argv)
    args.systems = {s.strip() for s in args.systems.split(",") if s.strip()}
    if not args.systems or args.systems - {"sdk", "raw", "baton"}:
        p.error("--systems takes a comma-separated subset of sdk,raw,baton")
    if args.n < 1 or args.k < 1 or args.rounds < 1:
        p.error("--n, --k and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
    setup_logging("WARNING")
    mode = "in-process" if args.in_process else "child processes"
    print(f"whoami bench: n={args.n} k={args.k} db={args.db} members={','.join(MEMBERS)} "
          f"group={GROUP} cpus={os.cpu_count()} mode={mode} "
          f"baseline RSS {peak_rss_mb():.0f} MB", flush=True)
    started = time.monotonic()
    rounds: list[list[Result]] = []
    try:
        for i in range(args.rounds):
            if args.rounds > 1:
                print(f"round {i + 1} of {args.rounds}", flush=True)
            rounds.append(run_round(args))
            if args.rounds > 1:
                print_table(rounds[-1], args, brief=True)
    except BenchError as e:
        print(f"ABORTED: {e}", file=sys.stderr)
        return 1
    if args.rounds == 1:
        print_table(rounds[0], args)
    else:
        print_summary(rounds, args)
    print(f"total wall time {time.monotonic() - started:.1f}s")
    return 0


def run_round(args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    # In-process, the SDK bot first: its daemon thread outlives its simulator (parked,
    # muted), and its RSS figure is not hidden under the others' high-water mark.
    if "sdk" in args.systems:
        results.append(bench_sdk_echo(args))
    if "raw" in args.systems:
        results.append(bench_raw_echo(args))
    if "baton" in args.systems:
        results += asyncio.run(bench_baton_all(args))
    return results


if __name__ == "__main__":
    sys.exit(main())
