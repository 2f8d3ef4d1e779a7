"""A flood in a group: is another member of the same group still answered at once?

    python -m bench.flood_bench [--seconds 60] [--flood 100] [--every 8]
                                [--scenarios fixed,before,unlimited]

The real bot (``bot.app.BatonApp``, as ``baton run`` builds it, SQLite in a temp dir) runs in
this process against the loopback simulator, through the real dingtalk-stream SDK, with the
default limits: ``outbox.per_conversation_per_minute = 20`` (the group's budget; the
simulator enforces the same 20 a minute on the robot's group sends) and ``limits`` as
shipped. For ``--seconds`` (60, the limits' window), in the demo group:

* 赵六 (the flooder) sends ``--flood`` (100) ``我的权限`` evenly spread (one every 0.6 s);
* 钱七 (the other member) sends ``whoami`` every ``--every`` (8) seconds, from t = 1 s.

Real time throughout: the budget and the limits are sliding one-minute windows on the real
clock in the sender, the limiter and the simulator, so a compressed clock would not be
faithful; one scenario takes the minute plus the time to answer 钱七's last command.

What is measured, from the simulator's records: each of 钱七's commands carries its own
sessionWebhook, and its latency is from pushing the frame to the first webhook call with
that session (the answer reaching DingTalk); p50 and max over their commands. Beside it:
赵六's answers and slow-down notices, and the most group messages in any 60 s.

Scenarios, one after another in the same run:

* ``fixed``: the code as it is (a member's commands in a group held to
  ``limits.group_share`` of the group's budget; the outbox shares a short budget across the
  people it answers). Target (the issue's): every one of 钱七's commands answered, max
  latency under 5 s;
* ``before``: the comparator, the limiter as it was before the fix (only the member's 20
  commands a minute and the conversation's 60: ``RateLimiter(20, 60)``, no group share);
* ``unlimited``: no per-member limit at all (``RateLimiter`` with limits of a billion), so
  only the outbox's fair order stands between 赵六's backlog and 钱七.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from bench.common import print_rows, run_bench, sqlite_url
from bot.app import BatonApp
from bot.cli.sandbox import DEMO_GROUP, demo_simulator, sim_settings
from bot.dispatch.limits import RateLimiter
from bot.logs import setup_logging
from dingtalk_sim import Delivery, Simulator

FLOODER, OTHER = "zhaoliu", "qianqi"
WEBHOOK = "/robot/sendBySession"
BUDGET = 20
TARGET = 5.0          # seconds: the bound on the other member's answer
DRAIN = 120.0         # seconds after the load to wait for the other member's last answer
UNLIMITED = 1_000_000_000
SCENARIOS = ("fixed", "before", "unlimited")


@dataclass(frozen=True)
class Result:
    scenario: str
    other_sent: int
    other_answered: int
    p50: float
    max: float
    flood_sent: int
    flood_answered: int
    notices: int
    max_window: int       # most group messages in any [t, t + 60 s)

    @property
    def ok(self) -> bool:
        if self.max_window > BUDGET:
            return False
        if self.scenario != "fixed":
            return True       # a comparator: measured, not judged
        return self.other_answered == self.other_sent and self.max < TARGET


def session_of(d: Delivery) -> str:
    url = str(json.loads(d.frame["data"])["sessionWebhook"])
    return parse_qs(urlsplit(url).query).get("session", [""])[0]


def answered_at(sim: Simulator) -> dict[str, tuple[float, str]]:
    """Session -> when its first answer reached the simulator, and its text."""
    got: dict[str, tuple[float, str]] = {}
    for r in sim.requests(WEBHOOK):
        body = r.json if isinstance(r.json, dict) else {}
        section = body.get(str(body.get("msgtype", ""))) or {}
        text = str(section.get("content", section.get("text", "")))
        got.setdefault(r.query.get("session", ""), (r.at, text))
    return got


def max_in_window(times: Sequence[float], window: float = 60.0) -> int:
    ts = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(ts):
        while j < len(ts) and ts[j] < t + window:
            j += 1
        best = max(best, j - i)
    return best


async def say(sim: Simulator, user: str, text: str) -> tuple[str, float]:
    d = await asyncio.to_thread(sim.say, user, text, conversation_id=DEMO_GROUP)
    return session_of(d), time.time()


async def scenario(name: str, args: argparse.Namespace) -> Result:
    with demo_simulator(group_send_limit_per_minute=BUDGET) as sim:
        async with sqlite_url("baton-flood-") as url:
            settings = sim_settings(sim, url, outbox={"per_conversation_per_minute": BUDGET})
            async with BatonApp(settings) as app:
                await app.wait_connected()
                if name == "before":
                    app.dispatcher.limiter = RateLimiter(settings.limits.user_per_minute,
                                                         settings.limits.conversation_per_minute)
                elif name == "unlimited":
                    app.dispatcher.limiter = RateLimiter(UNLIMITED, UNLIMITED)
                start = time.monotonic()
                flood: list[tuple[str, float]] = []
                other: list[tuple[str, float]] = []

                async def paced(user: str, text: str, n: int, gap: float, first: float,
                                out: list[tuple[str, float]]) -> None:
                    for i in range(n):
                        await asyncio.sleep(max(0.0, start + first + i * gap - time.monotonic()))
                        out.append(await say(sim, user, text))

                n_other = int((args.seconds - 1) // args.every) + 1
                await asyncio.gather(
                    paced(FLOODER, " 我的权限", args.flood, args.seconds / args.flood, 0.0, flood),
                    paced(OTHER, " whoami", n_other, args.every, 1.0, other))
                sessions = {s for s, _ in other}
                try:
                    await sim.until(lambda: sessions <= answered_at(sim).keys(), timeout=DRAIN,
                                    what="the other member's answers")
                except TimeoutError:
                    print(f"{name}: not every answer to {OTHER} within {DRAIN:g}s", flush=True)
                got = answered_at(sim)
                group = sim.messages(DEMO_GROUP)
    waits = [got[s][0] - at for s, at in other if s in got]
    return Result(
        scenario=name, other_sent=len(other), other_answered=len(waits),
        p50=statistics.median(waits) if waits else float("nan"),
        max=max(waits) if waits else float("nan"),
        flood_sent=len(flood),
        flood_answered=sum(1 for s, _ in flood if s in got and "太频繁" not in got[s][1]),
        notices=sum(1 for m in group if "太频繁" in m.text),
        max_window=max_in_window([m.at for m in group]))


async def run_all(args: argparse.Namespace) -> list[Result]:
    out = []
    for name in args.scenarios:
        print(f"scenario {name}: {args.seconds:g}s, {FLOODER} sends {args.flood}, {OTHER} "
              f"one every {args.every:g}s ...", flush=True)
        out.append(await scenario(name, args))
    return out


def print_table(results: Sequence[Result]) -> None:
    rows = [["scenario", f"{OTHER} sent", "answered", "p50 s", "max s",
             f"{FLOODER} sent", "answered", "notices", "max/60s", "ok"]]
    for r in results:
        rows.append([r.scenario, str(r.other_sent), str(r.other_answered), f"{r.p50:.2f}",
                     f"{r.max:.2f}", str(r.flood_sent), str(r.flood_answered), str(r.notices),
                     str(r.max_window), "yes" if r.ok else "NO"])
    print_rows(rows)
    print(f"target: {OTHER} answered within {TARGET:g}s while {FLOODER} floods (fixed); "
          f"never more than {BUDGET} group messages in any 60 s")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--flood", type=int, default=100)
    p.add_argument("--every", type=float, default=8.0)
    p.add_argument("--scenarios", type=lambda s: [x for x in s.split(",") if x],
                   default=list(SCENARIOS))
    args = p.parse_args(argv)
    bad = set(args.scenarios) - set(SCENARIOS)
    if bad:
        p.error(f"unknown scenario(s) {', '.join(sorted(bad))}; choose from {', '.join(SCENARIOS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("WARNING")
    return run_bench(run_all(args), print_table)


if __name__ == "__main__":
    sys.exit(main())
