"""Helpers shared by the end-to-end tests (not tests themselves): the ``baton`` command in a
subprocess, a chat line answered through the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dingtalk_sim import Simulator
from tests.e2e.conftest import GROUP, reply_to


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("BATON_", "DINGTALK_"))}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               PYTHONUNBUFFERED="1")
    return env


def baton(*args: str, cwd: Path, env: dict[str, str] | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli.main", *args], cwd=cwd,
                          env=env or base_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


def db_env(path: Path, corp: str = "dingclitest") -> dict[str, str]:
    env = base_env()
    env["BATON_DATABASE__URL"] = f"sqlite+aiosqlite:///{path}"
    env["BATON_ORG__CORP_ID"] = corp
    return env


async def say(sim: Simulator, user: str, text: str, expect: str, at: tuple[str, ...] = (),
              conversation: str = GROUP) -> str:
    n = len(sim.messages(conversation))
    sim.say(user, f" {text}", conversation_id=conversation, at=at)
    return await reply_to(sim, conversation, expect, after=n)
