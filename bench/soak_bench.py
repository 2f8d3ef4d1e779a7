"""Soak: ``baton run`` under a steady load, with disconnects and duplicate frames, for minutes.

    python -m bench.soak_bench [--seconds 120] [--rate 20] [--disconnect-every 30]
                               [--dup-rate 0.01] [--db sqlite|postgresql] [--pg-url URL]
                               [--seed 1] [--keep-log PATH]

Baton runs in a child process (``python -m bot.cli.main run --config FILE``, the ops endpoint on a
free port) against the loopback simulator in this process. The load: ``--rate`` commands a
second (``whoami`` and ``help`` in turn, round-robin over the active demo members; three in
four in the demo group, one in four in the member's one-to-one chat); every
``--disconnect-every`` seconds the simulator sends a SYSTEM ``disconnect`` (and closes the
old socket 10 s later, as DingTalk does); a ``--dup-rate`` share of frames is pushed a second
time right after the first, same ``messageId`` and ``msgId`` (``sim.redeliver``).

Every second: the child's RSS (``/proc/PID/status`` VmRSS) and its ``/metrics``. At the end:
every distinct command got exactly one reply (matched by the frame's sessionWebhook), every
frame pushed was acked 200, and the figures: commands, replies, duplicates pushed and
recognised, reconnects, loop lag (max, and p99 from the histogram over the soak window), RSS
start / end / max and its slope over the second half (least squares, MB/min).
Target (the issue's): RSS < 150 MB after the soak.

``SoakLoad`` and ``check`` also serve tests/e2e/test_soak.py (in-process, a short run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from bench import sut
from bench.common import pg_admin, postgres_url, sqlite_url
from bot.cli.sandbox import DEMO_CATALOG, DEMO_GROUP, DEMO_USERS, demo_simulator
from dingtalk_sim import Delivery, Simulator

MEMBERS = tuple(u.user_id for u in DEMO_USERS if u.active)
COMMANDS = ("whoami", "help")
WEBHOOK = "/robot/sendBySession"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
UNLIMITED = 1_000_000_000
TARGET_RSS_MB = 150.0
MAX_LOOP_LAG = 0.1   # seconds: the limit, a bucket bound of baton_loop_lag_seconds
LIFTED: dict[str, dict[str, Any]] = {
    "outbox": {"per_conversation_per_minute": UNLIMITED},
    "limits": {"user_per_minute": UNLIMITED, "conversation_per_minute": UNLIMITED},
}
Samples = Mapping[str, list[tuple[dict[str, str], float]]]


# --- the load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    user: str
    text: str
    conversation: str  # the demo group, or "" for the member's one-to-one chat
    message_id: str
    session: str  # the sessionWebhook's session: the reply carries it
    pushes: int  # 1, or 2 when the frame was pushed twice


def session_of(delivery: Delivery) -> str:
    url = str(json.loads(delivery.frame["data"])["sessionWebhook"])
    return parse_qs(urlsplit(url).query).get("session", [""])[0]


@dataclass
class SoakLoad:
    """A steady stream of commands, with disconnects and duplicate frames, on a schedule."""

    sim: Simulator
    rate: float  # commands a second
    disconnect_every: float  # seconds; 0: never
    dup_rate: float  # share of frames pushed twice
    seed: int = 1
    commands: list[Command] = field(default_factory=list)
    disconnects: int = 0
    duplicates: int = 0
    started: float = 0.0  # time.monotonic() when ``run`` began

    async def run(self, seconds: float) -> None:
        """Push commands at ``rate`` for ``seconds`` (pacing only: results are not awaited)."""
        rng = random.Random(self.seed)
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.started = time.monotonic()
        next_disconnect = self.disconnect_every or float("inf")
        i = 0
        while (now := loop.time() - start) < seconds:
            if now >= next_disconnect:
                await asyncio.to_thread(self.sim.send_disconnect)
                self.disconnects += 1
                next_disconnect += self.disconnect_every
            user = MEMBERS[i % len(MEMBERS)]
            text = COMMANDS[(i // len(MEMBERS)) % len(COMMANDS)]
            conversation = "" if i % 4 == 3 else DEMO_GROUP
            delivery = await asyncio.to_thread(self.sim.say, user, text,
                                               conversation_id=conversation or None)
            pushes = 1
            if rng.random() < self.dup_rate:
                await asyncio.to_thread(self.sim.redeliver, delivery)
                pushes, self.duplicates = 2, self.duplicates + 1
            self.commands.append(Command(user, text, conversation, delivery.message_id,
                                         session_of(delivery), pushes))
            i += 1
            delay = start + i / self.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)


# --- the check -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    commands: int
    frames: int  # pushes, duplicates included
    replies: int  # webhook replies carrying one of the commands' sessions
    lost: list[Command]  # no reply
    doubled: list[Command]  # more than one reply
    unacked: list[Command]  # fewer 200 acks than pushes
    other_sends: int  # messages sent some other way than the webhook (fallbacks)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.unacked or self.other_sends)

    def problems(self) -> str:
        def few(cs: Sequence[Command]) -> str:
            return ", ".join(f"{c.message_id} ({c.user} {c.text!r} in {c.conversation or 'dm'})"
                             for c in cs[:5])

        out = []
        if self.lost:
            out.append(f"{len(self.lost)} commands without a reply, e.g. {few(self.lost)}")
        if self.doubled:
            out.append(f"{len(self.doubled)} commands answered more than once, e.g. "
                       f"{few(self.doubled)}")
        if self.unacked:
            out.append(f"{len(self.unacked)} frames not acked 200, e.g. {few(self.unacked)}")
        if self.other_sends:
            out.append(f"{self.other_sends} messages sent other than by the webhook")
        return "; ".join(out)


def replies_by_session(sim: Simulator, sessions: set[str]) -> dict[str, int]:
    got: dict[str, int] = {}
    for r in sim.requests(WEBHOOK):
        s = r.query.get("session", "")
        if s in sessions:
            got[s] = got.get(s, 0) + 1
    return got


def all_answered(sim: Simulator, commands: Sequence[Command]) -> bool:
    sessions = {c.session for c in commands}
    return len(replies_by_session(sim, sessions)) == len(sessions)


def all_acked(sim: Simulator, commands: Sequence[Command]) -> bool:
    return not _unacked(sim, commands)


def _unacked(sim: Simulator, commands: Sequence[Command]) -> list[Command]:
    acks: dict[str, int] = {}
    for a in sim.acks():
        if a.code == 200:
            acks[a.message_id] = acks.get(a.message_id, 0) + 1
    return [c for c in commands if acks.get(c.message_id, 0) < c.pushes]


def check(sim: Simulator, commands: Sequence[Command], messages_before: int) -> Outcome:
    """Compare what was pushed with what the simulator saw (call once replies are in)."""
    sessions = {c.session for c in commands}
    got = replies_by_session(sim, sessions)
    other = [m for m in sim.messages()[messages_before:] if m.via != "webhook"]
    return Outcome(
        commands=len(commands),
        frames=sum(c.pushes for c in commands),
        replies=sum(got.values()),
        lost=[c for c in commands if got.get(c.session, 0) == 0],
        doubled=[c for c in commands if got.get(c.session, 0) > 1],
        unacked=_unacked(sim, commands),
        other_sends=len(other),
    )


# --- figures -------------------------------------------------------------------------------------


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return 60 * sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def counter(samples: Samples, name: str) -> float:
    return sut.metric(samples, f"{name}_total", sut.metric(samples, name))


def histogram_delta(before: Samples, after: Samples, name: str) -> Samples:
    """``after`` minus ``before`` for histogram ``name``: the observations in between."""
    def buckets(s: Samples) -> dict[str, float]:
        return {labels["le"]: v for labels, v in s.get(f"{name}_bucket", [])}

    b0, b1 = buckets(before), buckets(after)
    return {
        f"{name}_bucket": [({"le": le}, v - b0.get(le, 0.0)) for le, v in b1.items()],
        f"{name}_count": [({}, sut.metric(after, f"{name}_count")
                           - sut.metric(before, f"{name}_count"))],
    }


def highest_bucket(samples: Samples, name: str) -> float:
    """Upper bound of the highest bucket with an observation in it (0 if none)."""
    buckets = sorted((float(labels["le"]), v) for labels, v in samples.get(f"{name}_bucket", []))
    prev, top = 0.0, 0.0
    for le, cumulative in buckets:
        if cumulative > prev:
            top = le
        prev = cumulative
    return top


@dataclass
class Sample:
    t: float  # seconds since the load began (negative: before)
    rss_mb: float
    metrics: Samples | None


# --- the bench -----------------------------------------------------------------------------------


class SoakError(Exception):
    pass


async def sample_loop(pid: int, metrics_url: str, http: aiohttp.ClientSession,
                      load: SoakLoad, out: list[Sample], every: float, report_every: float,
                      sim: Simulator) -> None:
    next_report = report_every
    while True:
        t = time.monotonic() - load.started if load.started else 0.0
        try:
            scraped: Samples | None = await sut.scrape(http, metrics_url)
        except (aiohttp.ClientError, TimeoutError):
            scraped = None
        out.append(Sample(t, sut.rss_mb(pid), scraped))
        if load.started and t >= next_report:
            next_report += report_every
            m = scraped or {}
            answered = len(replies_by_session(sim, {c.session for c in load.commands}))
            print(f"  t={t:5.0f}s  commands {len(load.commands):5d}  answered {answered:5d}  "
                  f"RSS {out[-1].rss_mb:6.1f} MB  loop lag max "
                  f"{sut.metric(m, 'baton_loop_lag_max_seconds') * 1000:6.1f} ms  "
                  f"reconnects {counter(m, 'baton_stream_reconnects'):.0f}  "
                  f"duplicates {counter(m, 'baton_duplicates'):.0f}", flush=True)
        await asyncio.sleep(every)


def _live(sim: Simulator) -> int:
    return len([c for c in sim.connections() if c.live and not c.draining])


async def soak(db: str, db_url: str, args: argparse.Namespace) -> int:
    sim = demo_simulator()
    sim.start()
    tmp = tempfile.TemporaryDirectory(prefix="baton-soak-")
    port = sut.free_port()
    extra = {**LIFTED, "ops": {"port": port}, "log": {"level": "WARNING"}}
    cfg = sut.baton_config(Path(tmp.name, "baton.yaml"), sim_base_url=sim.base_url,
                           corp_id=sim.corp_id, db_url=db_url, catalog=DEMO_CATALOG, extra=extra)
    log_path = Path(tmp.name, "baton.log")
    proc = sut.start_baton(cfg, sim.client_id, sim.client_secret, log_path)
    samples: list[Sample] = []
    load = SoakLoad(sim, args.rate, args.disconnect_every, args.dup_rate, args.seed)
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    failed = True
    try:
        async with aiohttp.ClientSession(trust_env=False,
                                         timeout=aiohttp.ClientTimeout(total=5)) as http:
            await sim.until(lambda: _live(sim) or proc.poll() is not None, timeout=60,
                            what="Baton's connection")
            if proc.poll() is not None:
                raise SoakError(f"baton exited ({proc.returncode}) before connecting")
            # Warm up: each member speaks once, so the soak starts with known members.
            warm = SoakLoad(sim, 50, 0, 0.0)
            await warm.run(len(MEMBERS) * 4 / 50)
            await sim.until(lambda: all_answered(sim, warm.commands), timeout=30,
                            what="the warm-up replies")
            before = await sut.scrape(http, metrics_url)
            messages_before = len(sim.messages())
            sampler = asyncio.create_task(sample_loop(proc.pid, metrics_url, http, load, samples,
                                                      args.sample_every, args.report_every, sim))
            print(f"soak: {args.seconds:.0f}s at {args.rate:g} cmd/s, disconnect every "
                  f"{args.disconnect_every:g}s, {args.dup_rate:.1%} frames pushed twice, "
                  f"db={db}, baton pid {proc.pid}", flush=True)
            try:
                await load.run(args.seconds)
                ended = time.monotonic() - load.started
                try:
                    await sim.until(lambda: all_answered(sim, load.commands)
                                    and all_acked(sim, load.commands),
                                    timeout=args.drain_timeout, what="every reply and ack")
                except TimeoutError:
                    print(f"not every command was answered and acked within "
                          f"{args.drain_timeout:g}s after the load", flush=True)
                drained = time.monotonic() - load.started - ended
                await sim.until(lambda: _live(sim) == 1, timeout=30, what="one live connection")
            finally:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
            after = await sut.scrape(http, metrics_url)
            outcome = check(sim, load.commands, messages_before)
            rss_end = sut.rss_mb(proc.pid)
            broken = report(args, db, load, outcome, before, after, samples, rss_end, ended,
                            drained)
            failed = not outcome.ok or (args.check and bool(broken))
            if args.check:
                print("  check             " + ("; ".join(broken) if broken else "all targets met"))
    except (SoakError, TimeoutError) as e:
        print(f"ABORTED: {e}", file=sys.stderr)
    finally:
        code = sut.stop_child(proc)
        if code not in (0,):
            print(f"baton exited with {code}", file=sys.stderr)
            failed = True
        if failed or args.show_log:
            print(f"--- baton log (tail) ---\n{sut.tail(log_path, 6000)}", file=sys.stderr)
        if args.keep_log:
            shutil.copyfile(log_path, args.keep_log)
        sim.stop()
        tmp.cleanup()
    return 1 if failed else 0


def report(args: argparse.Namespace, db: str, load: SoakLoad, outcome: Outcome, before: Samples,
           after: Samples, samples: Sequence[Sample], rss_end: float, ended: float,
           drained: float) -> list[str]:
    """Print the figures; return what breaks the targets (``--check`` fails on them)."""
    window = [s for s in samples if s.t >= 0]
    rss = [s.rss_mb for s in window] or [rss_end]
    half = [(s.t, s.rss_mb) for s in window if s.t >= ended / 2]
    lag = histogram_delta(before, after, "baton_loop_lag_seconds")
    p99, lag_n = sut.histogram_quantile(lag, "baton_loop_lag_seconds", 0.99)
    ack = histogram_delta(before, after, "baton_ack_latency_seconds")
    ack_p99, _ = sut.histogram_quantile(ack, "baton_ack_latency_seconds", 0.99)
    dups_seen = counter(after, "baton_duplicates") - counter(before, "baton_duplicates")
    reconnects = (counter(after, "baton_stream_reconnects")
                  - counter(before, "baton_stream_reconnects"))
    lag_max_life = sut.metric(after, "baton_loop_lag_max_seconds")
    lag_max_before = sut.metric(before, "baton_loop_lag_max_seconds")
    print()
    print(f"soak result (db={db}, {ended:.0f}s of load, replies drained {drained:.1f}s after)")
    print(f"  commands          {outcome.commands} distinct ({outcome.commands / ended:.1f}/s), "
          f"{outcome.frames} frames pushed")
    print(f"  replies           {outcome.replies}: lost {len(outcome.lost)}, answered twice or "
          f"more {len(outcome.doubled)}, frames not acked 200 {len(outcome.unacked)}, "
          f"non-webhook sends {outcome.other_sends}")
    print(f"  duplicates        pushed {load.duplicates}, recognised by Baton {dups_seen:.0f}")
    print(f"  disconnects       sent {load.disconnects}, Baton reconnects {reconnects:.0f}")
    since = "during the soak" if lag_max_life > lag_max_before else (
        f"since start (before the soak it was already {lag_max_before * 1000:.1f} ms)")
    print(f"  loop lag          max {lag_max_life * 1000:.1f} ms {since}; over the soak window "
          f"p99 <= {p99 * 1000:g} ms, highest bucket <= "
          f"{highest_bucket(lag, 'baton_loop_lag_seconds') * 1000:g} ms ({lag_n:.0f} samples)")
    print(f"  ack latency       p99 <= {ack_p99 * 1000:g} ms (Baton's histogram, bucket bound)")
    print(f"  RSS               start {rss[0]:.1f} MB, end {rss_end:.1f} MB, max {max(rss):.1f} MB, "
          f"slope over the second half {slope_per_minute(half):+.2f} MB/min "
          f"({len(half)} samples)")
    met = rss_end < TARGET_RSS_MB
    print(f"  target            RSS < {TARGET_RSS_MB:g} MB after the soak: "
          f"{'met' if met else 'NOT MET'} ({rss_end:.1f} MB)")
    verdict = ("every command answered exactly once, every frame acked 200" if outcome.ok
               else "FAILED: " + outcome.problems())
    print(f"  correctness       {verdict}")
    broken = [] if outcome.ok else [outcome.problems()]
    top = highest_bucket(lag, "baton_loop_lag_seconds")
    if top > MAX_LOOP_LAG:
        broken.append(f"event-loop lag reached the {top * 1000:g} ms bucket "
                      f"(limit {MAX_LOOP_LAG * 1000:g} ms)")
    if not met:
        broken.append(f"RSS {rss_end:.1f} MB after the soak (limit {TARGET_RSS_MB:g} MB)")
    if reconnects < load.disconnects:
        broken.append(f"{load.disconnects} disconnects but {reconnects:.0f} reconnects")
    if dups_seen != load.duplicates:
        broken.append(f"{load.duplicates} duplicates pushed, {dups_seen:.0f} recognised")
    return broken


async def run(args: argparse.Namespace) -> int:
    if args.db == "sqlite":
        async with sqlite_url("baton-soak-") as url:
            return await soak("sqlite", url, args)
    try:
        await pg_admin(args.pg_url, "SELECT 1")
    except Exception as e:  # no server: say so
        print(f"PostgreSQL not reachable at {args.pg_url}: {type(e).__name__}: {e}",
              file=sys.stderr)
        return 2
    async with postgres_url(args.pg_url, "baton_soak_") as url:
        return await soak("postgresql", url, args)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.soak_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=120.0, help="duration of the load")
    p.add_argument("--rate", type=float, default=20.0, help="commands a second")
    p.add_argument("--disconnect-every", type=float, default=30.0,
                   help="seconds between SYSTEM disconnect frames (0: none)")
    p.add_argument("--dup-rate", type=float, default=0.01, help="share of frames pushed twice")
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get("BATON_TEST_PG", DEFAULT_PG))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sample-every", type=float, default=1.0, help="RSS and /metrics, seconds")
    p.add_argument("--report-every", type=float, default=10.0, help="progress line, seconds")
    p.add_argument("--drain-timeout", type=float, default=60.0,
                   help="how long to wait for the last replies after the load")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless every target is met: exactly once, loop lag within "
                        "100 ms, RSS < 150 MB, a reconnect per disconnect, every duplicate "
                        "recognised (CI runs a short soak this way)")
    p.add_argument("--show-log", action="store_true", help="print the tail of Baton's log")
    p.add_argument("--keep-log", help="copy Baton's log here")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0 or not 0 <= args.dup_rate <= 1:
        p.error("--seconds and --rate must be positive, --dup-rate in [0, 1]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
