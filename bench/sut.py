"""Systems under test for the benchmarks, in this process or in a child process.

* ``RawEchoBot``: the floor. The Stream handshake done by hand (``POST`` the gateway's
  ``connections/open``, a websocket to ``endpoint?ticket=...``) with aiohttp's client; each
  robot-message ``CALLBACK`` is acked on the socket at once and answered by a ``POST`` to its
  ``sessionWebhook`` through one shared ``ClientSession``. No SDK, no database.
* ``sdk_echo_client``: what the dingtalk-stream SDK's README has a developer write (a
  ``ChatbotHandler`` that calls ``reply_text`` and acks OK).
* ``start_baton``: ``python -m bot.cli.main run --config FILE`` against a simulator, exactly as
  tests/e2e/test_replicas.py launches a replica.
* ``rss_mb`` / ``peak_rss_mb`` / ``scrape``: what a benchmark observes of a child.

Run an echo bot as a child::

    DINGTALK_CLIENT_ID=... DINGTALK_CLIENT_SECRET=... \\
        python -m bench.sut sdk|raw --url http://127.0.0.1:PORT/v1.0/gateway/connections/open
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml

log = logging.getLogger("bench.sut")

ROOT = Path(__file__).resolve().parents[1]
TOPIC_ROBOT = "/v1.0/im/bot/messages/get"
LOOPBACK = "127.0.0.1,localhost"


# --- the raw websocket echo ----------------------------------------------------------------------


def ack_frame(message_id: str, data: str, code: int = 200, message: str = "OK") -> str:
    """The Stream ack (protocol notes §Stream mode 4): same messageId, ``data`` a JSON string."""
    return json.dumps({"code": code, "message": message, "data": data,
                       "headers": {"messageId": message_id, "contentType": "application/json"}},
                      ensure_ascii=False, separators=(",", ":"))


class RawEchoBot:
    """A minimal Stream bot: ack every robot message, reply ``<senderStaffId>: <text>``."""

    def __init__(self, open_url: str, client_id: str, client_secret: str) -> None:
        self.open_url = open_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.connections = 0
        self.replies_failed = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Connect, serve, reconnect (at once after ``disconnect``, after 1 s on an error)."""
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=0)  # no cap: the floor must not queue here
        async with aiohttp.ClientSession(timeout=timeout, connector=connector,
                                         trust_env=False) as http:
            while True:
                try:
                    await self._serve_one(http)
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError) as e:
                    log.warning("raw echo: connection failed (%s: %s); retrying in 1 s",
                                type(e).__name__, e)
                    await asyncio.sleep(1)

    async def _serve_one(self, http: aiohttp.ClientSession) -> None:
        body = {"clientId": self.client_id, "clientSecret": self.client_secret,
                "subscriptions": [{"type": "CALLBACK", "topic": TOPIC_ROBOT}],
                "ua": "baton-bench-raw-echo/1", "localIp": "127.0.0.1"}
        async with http.post(self.open_url, json=body) as r:
            r.raise_for_status()
            opened = await r.json()
        url = f"{opened['endpoint']}?ticket={quote(str(opened['ticket']), safe='')}"
        async with http.ws_connect(url, autoping=True, heartbeat=None) as ws:
            self.connections += 1
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                if not await self._on_frame(ws, http, json.loads(msg.data)):
                    break  # the server asked us to go: open a new connection now

    async def _on_frame(self, ws: aiohttp.ClientWebSocketResponse, http: aiohttp.ClientSession,
                        frame: Mapping[str, Any]) -> bool:
        headers = frame.get("headers") or {}
        message_id = str(headers.get("messageId", ""))
        topic = headers.get("topic")
        if frame.get("type") == "SYSTEM":
            if topic == "disconnect":
                return False
            await ws.send_str(ack_frame(message_id, str(frame.get("data", "{}"))))  # ping
            return True
        if frame.get("type") == "CALLBACK" and topic == TOPIC_ROBOT:
            await ws.send_str(ack_frame(message_id, '{"response":null}'))
            data = json.loads(frame["data"])
            text = str((data.get("text") or {}).get("content", "")).strip()
            reply = {"msgtype": "text",
                     "text": {"content": f"{data.get('senderStaffId', '')}: {text}"}}
            task = asyncio.create_task(self._reply(http, str(data["sessionWebhook"]), reply))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return True
        await ws.send_str(ack_frame(message_id, "{}", 404, "not implemented"))
        return True

    async def _reply(self, http: aiohttp.ClientSession, webhook: str,
                     body: Mapping[str, Any]) -> None:
        try:
            async with http.post(webhook, json=body) as r:
                await r.read()
                if r.status != 200:
                    self.replies_failed += 1
        except (aiohttp.ClientError, TimeoutError) as e:
            self.replies_failed += 1
            log.warning("raw echo: reply failed: %s", type(e).__name__)


# --- the SDK echo --------------------------------------------------------------------------------


def sdk_echo_client(open_url: str, client_id: str, client_secret: str) -> Any:
    """A stock ``DingTalkStreamClient`` with the README's echo handler, pointed at ``open_url``."""
    import dingtalk_stream
    from dingtalk_stream.frames import AckMessage

    class EchoHandler(dingtalk_stream.ChatbotHandler):  # type: ignore[misc]
        """Reply with ``reply_text`` (a blocking ``requests.post``), ack OK."""

        async def process(self, callback: dingtalk_stream.CallbackMessage) -> tuple[int, str]:
            incoming = dingtalk_stream.ChatbotMessage.from_dict(callback.data)
            text = incoming.text.content.strip()
            self.reply_text(f"{incoming.sender_staff_id}: {text}", incoming)
            return AckMessage.STATUS_OK, "OK"

    dingtalk_stream.DingTalkStreamClient.OPEN_CONNECTION_API = open_url
    client = dingtalk_stream.DingTalkStreamClient(
        dingtalk_stream.Credential(client_id, client_secret),
        logger=logging.getLogger("dingtalk_stream.client"))
    client.register_callback_handler(dingtalk_stream.ChatbotMessage.TOPIC, EchoHandler())
    return client


# --- a coroutine on its own thread (in-process mode) --------------------------------------------


class LoopThread:
    """Run one coroutine on a fresh event loop in a daemon thread; ``stop`` cancels it."""

    def __init__(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._coro = coro
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _main(self) -> None:
        async def runner() -> None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            self._ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._coro

        asyncio.run(runner())

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._task is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout)


# --- child processes -----------------------------------------------------------------------------


def child_env(client_id: str, client_secret: str) -> dict[str, str]:
    """The parent's environment minus Baton's and DingTalk's, plus the simulator's credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "DINGTALK_"))}
    env.update(DINGTALK_CLIENT_ID=client_id, DINGTALK_CLIENT_SECRET=client_secret,
               NO_PROXY=LOOPBACK, no_proxy=LOOPBACK, PYTHONPATH=str(ROOT))
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def baton_config(path: Path, *, sim_base_url: str, corp_id: str, db_url: str,
                 catalog: Mapping[str, Any], extra: Mapping[str, Mapping[str, Any]]) -> Path:
    """A ``baton run`` config file pointing at the simulator (credentials come from the env)."""
    cfg: dict[str, Any] = {
        "database": {"url": db_url},
        "org": {"corp_id": corp_id},
        "dingtalk": {"openapi_endpoint": sim_base_url, "oapi_endpoint": sim_base_url},
        "catalog": dict(catalog),
    }
    for section, values in extra.items():
        cfg.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def start_child(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=dict(env),
                            stdout=log_path.open("wb"), stderr=subprocess.STDOUT)


def start_baton(config: Path, client_id: str, client_secret: str,
                log_path: Path) -> subprocess.Popen[bytes]:
    return start_child(["-m", "bot.cli.main", "run", "--config", str(config)],
                       child_env(client_id, client_secret), log_path)


def start_echo(kind: str, open_url: str, client_id: str, client_secret: str,
               log_path: Path) -> subprocess.Popen[bytes]:
    return start_child(["-m", "bench.sut", kind, "--url", open_url],
                       child_env(client_id, client_secret), log_path)


def stop_child(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int | None:
    """SIGTERM, wait, SIGKILL if need be; the exit code (None if it had to be killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def _status_kb(pid: int | str, field: str) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    raise ValueError(f"no {field} in /proc/{pid}/status")


def rss_mb(pid: int | str = "self") -> float:
    """The resident set of ``pid`` now (VmRSS), in MiB."""
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int | str = "self") -> float:
    """The resident high-water mark of ``pid`` (VmHWM), in MiB."""
    return _status_kb(pid, "VmHWM") / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, user plus system, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# --- /metrics ------------------------------------------------------------------------------------


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of a Prometheus text page: name -> [(labels, value)]."""
    from prometheus_client.parser import text_string_to_metric_families

    async with http.get(url) as r:
        r.raise_for_status()
        text = await r.text()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def metric(samples: Mapping[str, list[tuple[dict[str, str], float]]], name: str,
           default: float = 0.0) -> float:
    got = samples.get(name)
    return got[0][1] if got else default


def histogram_quantile(samples: Mapping[str, list[tuple[dict[str, str], float]]], name: str,
                       q: float) -> tuple[float, float]:
    """(upper bound of the bucket holding quantile ``q``, sample count) of histogram ``name``.

    Bucket resolution only: the true quantile is at most the bound (inf past the last bucket).
    """
    buckets = sorted((float(labels["le"]), v) for labels, v in samples.get(f"{name}_bucket", []))
    count = metric(samples, f"{name}_count")
    if not buckets or count <= 0:
        return 0.0, count
    need = q * count
    for le, cumulative in buckets:
        if cumulative >= need:
            return le, count
    return float("inf"), count


# --- entry point for the echo children -----------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sut")
    p.add_argument("kind", choices=("sdk", "raw"))
    p.add_argument("--url", required=True, help="the gateway's connections/open URL")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    client_id = os.environ["DINGTALK_CLIENT_ID"]
    client_secret = os.environ["DINGTALK_CLIENT_SECRET"]
    if args.kind == "raw":
        coro = RawEchoBot(args.url, client_id, client_secret).run()
    else:
        coro = sdk_echo_client(args.url, client_id, client_secret).start()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
