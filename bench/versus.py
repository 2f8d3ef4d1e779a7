"""Is this checkout slower than another? ``whoami_bench`` run in both, rounds interleaved.

    python -m bench.versus BASE_DIR [--rounds 5] [--n 3000] [--db sqlite|postgresql]

BASE_DIR is another checkout of Baton (e.g. ``git worktree add --detach ../base <commit>``,
with its own ``.venv``). Each round runs ``python -m bench.whoami_bench --rounds 1 --systems
raw,baton`` once in each checkout, alternating which goes first, each with that checkout's
own interpreter (``.venv/bin/python`` when present). The raw websocket echo in the same run
is the comparator that takes the machine's phase out: a round's verdict is Baton's share of
the raw echo (``vs raw``) here against there, and Baton's CPU time per command (which moves
less with load than any rate). The summary gives medians and ranges of cmd/s,
CPU ms per command, ack p99 and ``vs raw`` for both, and the ratio this/base per round.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROW = re.compile(r"^(raw-echo|baton)\s+(\S+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+) / ([\d.]+)\s+"
                 r"([\d.]+) / ([\d.]+)\s+(\d+)\s+([\d.]+)\s+\S+\s+([\d.]+)x\s*$", re.M)


@dataclass(frozen=True)
class Run:
    cmd_s: float
    cpu_ms: float
    ack_p99: float
    vs_raw: float
    raw_cmd_s: float


def python_of(checkout: Path) -> str:
    venv = checkout / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def run_once(checkout: Path, n: int, db: str) -> Run:
    out = subprocess.run(
        [python_of(checkout), "-m", "bench.whoami_bench", "--rounds", "1", "--systems",
         "raw,baton", "--n", str(n), "--db", db],
        cwd=checkout, capture_output=True, text=True, timeout=900, check=False)
    rows = {m.group(1): m for m in ROW.finditer(out.stdout)}
    if out.returncode != 0 or set(rows) != {"raw-echo", "baton"}:
        raise SystemExit(f"whoami_bench failed in {checkout} (exit {out.returncode}):\n"
                         f"{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    b, r = rows["baton"], rows["raw-echo"]
    return Run(float(b.group(5)), float(b.group(11)), float(b.group(7)), float(b.group(12)),
               float(r.group(5)))


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", type=Path, help="the other checkout to compare against")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = p.parse_args()
    here, base = Path.cwd(), args.base.resolve()
    print(f"versus: this={here} base={base} rounds={args.rounds} n={args.n} db={args.db}")
    mine: list[Run] = []
    theirs: list[Run] = []
    for i in range(args.rounds):
        order = [(here, mine), (base, theirs)]
        if i % 2:
            order.reverse()
        for where, into in order:
            into.append(run_once(where, args.n, args.db))
        m, t = mine[-1], theirs[-1]
        print(f"round {i + 1}: this {m.cmd_s:.0f} cmd/s, {m.cpu_ms:.3f} CPU ms/cmd, "
              f"{m.vs_raw:.2f}x raw | base {t.cmd_s:.0f} cmd/s, {t.cpu_ms:.3f} CPU ms/cmd, "
              f"{t.vs_raw:.2f}x raw | this/base vs-raw {m.vs_raw / t.vs_raw:.2f}", flush=True)
    print()
    print("median (lowest-highest) over the rounds")
    for name, runs in (("this", mine), ("base", theirs)):
        print(f"  {name}: cmd/s {spread([r.cmd_s for r in runs])}, "
              f"CPU ms/cmd {spread([r.cpu_ms for r in runs])}, "
              f"ack p99 ms {spread([r.ack_p99 for r in runs])}, "
              f"vs raw {spread([r.vs_raw for r in runs])}, "
              f"raw cmd/s {spread([r.raw_cmd_s for r in runs])}")
    ratios = [m.vs_raw / t.vs_raw for m, t in zip(mine, theirs, strict=True)]
    cpu = [m.cpu_ms / t.cpu_ms for m, t in zip(mine, theirs, strict=True)]
    print(f"  this/base, per round: vs-raw {spread(ratios)}, CPU ms/cmd {spread(cpu)}")
    slower = statistics.median(ratios) < 0.95 or statistics.median(cpu) > 1.05
    print("verdict (no slowdown: median this/base vs-raw >= 0.95 and CPU ms/cmd <= 1.05): "
          + ("SLOWER" if slower else "no slowdown"))


if __name__ == "__main__":
    main()
