"""``Simulator``: a loopback DingTalk (Stream gateway + OpenAPI subset) on its own thread.

The aiohttp server runs on a private event loop in a daemon thread, bound to 127.0.0.1 on
a free port; one server answers both the new-API paths (``/v1.0/...``) and the legacy
``oapi`` paths. Every public method is thread-safe and may be called from any thread or
event loop except the simulator's own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from dingtalk_sim import frames
from dingtalk_sim.model import (
    AckRecord,
    BadFrame,
    ConnInfo,
    Delivery,
    HttpRecord,
    SentMessage,
    SimCard,
    SimGroup,
    SimTodo,
    SimUser,
    Upload,
)
from dingtalk_sim.openapi import OpenApi
from dingtalk_sim.roles import RoleApi, RoleBook
from dingtalk_sim.state import DelayRule, DeptSpec, FailRule, SimState
from dingtalk_sim.stream import StreamGateway

log = logging.getLogger(__name__)

T = TypeVar("T")

_CALL_TIMEOUT = 30.0


class Simulator:
    """A loopback DingTalk for tests, benchmarks and a sandbox."""

    def __init__(
        self,
        *,
        client_id: str = "sim-client-id",
        client_secret: str = "sim-client-secret",  # noqa: S107 (a fake credential)
        corp_id: str = "dingsimcorp",
        users: Sequence[SimUser] = (),
        groups: Sequence[SimGroup] = (),
        departments: Mapping[int, DeptSpec] | None = None,
        seed: int = 0,
        token_ttl: float = 7200.0,
        ping_interval: float | None = None,
        group_send_limit_per_minute: int | None = None,
        auth_error_status: int = 400,
        robot_redelivery_after: float | None = None,
        disconnect_close_after: float = 10.0,
        exclusive_accounts: bool = False,
    ) -> None:
        self.robot_code = client_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.corp_id = corp_id
        self._state = SimState(
            client_id=client_id,
            client_secret=client_secret,
            corp_id=corp_id,
            users=users,
            groups=groups,
            departments=departments,
            seed=seed,
            token_ttl=token_ttl,
            group_send_limit_per_minute=group_send_limit_per_minute,
            auth_error_status=auth_error_status,
            exclusive_accounts=exclusive_accounts,
        )
        self._gateway = StreamGateway(
            self._state,
            seed=seed,
            redelivery_after=robot_redelivery_after,
            disconnect_close_after=disconnect_close_after,
            ping_interval=ping_interval,
        )
        self._api = OpenApi(self._state)
        self._role_book = RoleBook(self._state)
        self._roles = RoleApi(self._state, self._role_book)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._lifecycle = threading.Lock()
        self._stopped = False

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread, its loop and the server; return once it is listening."""
        with self._lifecycle:
            if self._thread is not None:
                raise RuntimeError("simulator: already started")
            ready: concurrent.futures.Future[int] = concurrent.futures.Future()
            self._thread = threading.Thread(
                target=self._thread_main, args=(ready,), name="dingtalk-sim", daemon=True
            )
            self._thread.start()
            self._port = ready.result(timeout=_CALL_TIMEOUT)
        log.info("simulator listening on %s", self.base_url)

    def stop(self) -> None:
        """Close every socket, stop the server and the thread. Idempotent."""
        with self._lifecycle:
            if self._stopped or self._thread is None or self._loop is None:
                self._stopped = True
                return
            self._stopped = True
            loop, thread = self._loop, self._thread
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_CALL_TIMEOUT)
        except Exception:
            log.exception("simulator: shutdown failed")
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_CALL_TIMEOUT)
        log.info("simulator stopped")

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; serves both the new-API and the legacy host."""
        if not self._port:
            raise RuntimeError("simulator: not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def open_connection_url(self) -> str:
        """The gateway registration URL (for ``DingTalkStreamClient.OPEN_CONNECTION_API``)."""
        return f"{self.base_url}/v1.0/gateway/connections/open"

    def _thread_main(self, ready: concurrent.futures.Future[int]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            port = loop.run_until_complete(self._serve())
        except BaseException as exc:
            ready.set_exception(exc)
            loop.close()
            return
        ready.set_result(port)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> int:
        app = web.Application(middlewares=[self._api.middleware], client_max_size=64 * 1024**2)
        self._gateway.add_routes(app)
        self._api.add_routes(app)
        self._roles.add_routes(app)
        # access_log=None: request lines carry tickets, tokens and webhook sessions
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = int(self._runner.addresses[0][1])
        self._state.base_url = f"http://127.0.0.1:{port}"
        await self._gateway.start(port)
        return port

    async def _shutdown(self) -> None:
        await self._gateway.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None or self._stopped:
            coro.close()
            raise RuntimeError("simulator: not running")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("simulator: blocking call from the simulator's own thread")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(_CALL_TIMEOUT)

    # --- driving ---------------------------------------------------------------------------

    def say(
        self,
        user_id: str,
        text: str,
        *,
        conversation_id: str | None = None,
        at: Sequence[str] = (),
        msg_id: str | None = None,
        message_id: str | None = None,
    ) -> Delivery:
        """``user_id`` writes ``text`` to the robot (one-to-one, or in a group @-mentioning it)."""
        data = frames.robot_text(
            self._state, user_id, text, conversation_id=conversation_id, at=at, msg_id=msg_id
        )
        return self._call(
            self._gateway.deliver(
                "CALLBACK", frames.TOPIC_ROBOT, data, message_id=message_id, redeliver=True
            )
        )

    def send_file(
        self,
        user_id: str,
        file_name: str,
        content: bytes,
        *,
        msg_id: str | None = None,
        conversation_id: str | None = None,
    ) -> Delivery:
        """``user_id`` sends a file to the robot one-to-one; its bytes are downloadable.

        ``conversation_id`` of a group forges what DingTalk never sends: a file from a group."""
        code = self._state.hex(40)
        with self._state.lock:
            self._state.files[code] = (file_name, bytes(content))
        data = frames.robot_file(self._state, user_id, file_name, code, msg_id, conversation_id)
        return self._call(
            self._gateway.deliver(
                "CALLBACK", frames.TOPIC_ROBOT, data, message_id=None, redeliver=True
            )
        )

    def say_as_robot(self, conversation_id: str, text: str) -> Delivery:
        """Another robot writes in ``conversation_id`` (no ``senderStaffId``)."""
        data = frames.robot_from_robot(self._state, conversation_id, text)
        return self._call(
            self._gateway.deliver(
                "CALLBACK", frames.TOPIC_ROBOT, data, message_id=None, redeliver=True
            )
        )

    def click(
        self,
        user_id: str,
        out_track_id: str,
        action_id: str,
        params: Mapping[str, str] | None = None,
        *,
        message_id: str | None = None,
    ) -> Delivery:
        """``user_id`` clicks ``action_id`` on a card; the ack's response updates the card."""
        data = frames.card_click(self._state, user_id, out_track_id, action_id, params)
        return self._call(
            self._gateway.deliver(
                "CALLBACK",
                frames.TOPIC_CARD,
                data,
                message_id=message_id,
                click=(out_track_id, user_id),
            )
        )

    def push_event(
        self, event_type: str, user_ids: Sequence[str], *, event_id: str | None = None
    ) -> Delivery:
        """DingTalk pushes an org event (``user_leave_org``, ``user_modify_org``,
        ``org_admin_add``, ``org_admin_remove``...) about ``user_ids`` over Stream."""
        data = frames.org_event_data(self._state, user_ids)
        return self._call(self._gateway.deliver_event(event_type, data, event_id=event_id))

    def redeliver(self, delivery: Delivery, *, new_message_id: bool = False) -> Delivery:
        """Push the identical frame again (optionally under a fresh ``headers.messageId``)."""
        return self._call(self._gateway.redeliver(delivery, new_message_id=new_message_id))

    def push_raw(self, text: str) -> None:
        """Write a raw text frame (e.g. malformed JSON) to a live connection (or queue it)."""
        self._call(self._gateway.push_raw(text))

    # --- transport faults ------------------------------------------------------------------

    def send_disconnect(self) -> None:
        """SYSTEM ``disconnect`` to every live connection; close them later if they don't."""
        self._call(self._gateway.send_disconnect())

    def drop_connections(self) -> None:
        """Abort the TCP transport of every live connection, without a close frame."""
        self._call(self._gateway.drop_connections())

    def set_zombie(self, on: bool) -> None:
        """Live connections answer pings but silently lose every frame pushed to them."""
        self._gateway.set_zombie(on)

    def hang_gateway(self, seconds: float) -> None:
        """The next ``connections/open`` call waits ``seconds`` before answering."""
        with self._state.lock:
            self._state.gateway_hang = seconds

    def send_ping(self) -> None:
        """SYSTEM ``ping`` with a fresh ``opaque`` to every live connection."""
        self._call(self._gateway.send_ping())

    # --- API faults ------------------------------------------------------------------------

    def fail_next(
        self,
        path: str,
        status: int,
        *,
        code: str = "",
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        count: int = 1,
        method: str | None = None,
    ) -> None:
        """The next ``count`` calls to ``path`` (any method unless given) fail this way."""
        rule = FailRule(
            status=status,
            code=code,
            body=dict(body) if body is not None else None,
            headers=dict(headers or {}),
            method=method,
            remaining=count,
        )
        self._state.add_fail(path, rule)

    def clear_failures(self, path: str | None = None) -> None:
        """Forget the failures :meth:`fail_next` armed and not yet used (of ``path``, or all)."""
        self._state.clear_fails(path)

    def delay_next(
        self,
        path: str,
        seconds: float,
        count: int = 1,
        *,
        method: str | None = None,
        abandon: bool = False,
    ) -> None:
        """The next ``count`` calls to ``path`` wait ``seconds`` (real time) first.

        By default a delayed call is then handled even if its client has hung up meanwhile
        (a slow server that still does the work). ``abandon=True`` models a call lost in the
        hang instead: if the client is gone when the delay ends, it is dropped unhandled.
        """
        self._state.add_delay(path, DelayRule(seconds, method, count, abandon))

    def expire_tokens(self) -> None:
        """Every access token issued so far becomes invalid."""
        self._state.expire_tokens()

    def advance(self, seconds: float) -> None:
        """Move the sim clock forward by ``seconds``.

        The sim clock drives token, ticket and sessionWebhook expiry, the per-minute group
        send window, robot-message redelivery and the close after a disconnect. Timers that
        fall due have fired (their pushes and closes are under way) when this returns.
        """
        self._state.advance(seconds)
        if self._loop is not None and not self._stopped:
            self._call(self._gateway.fire_timers())  # due timers have run when this returns

    def now(self) -> float:
        """The sim clock (seconds since the epoch)."""
        return self._state.now()

    # --- directory console -----------------------------------------------------------------

    def add_user(self, user: SimUser) -> None:
        self._state.add_user(user)

    def set_user(self, user_id: str, **changes: Any) -> None:
        self._state.set_user(user_id, changes)

    def add_group(self, group: SimGroup) -> None:
        with self._state.lock:
            self._state.groups[group.conversation_id] = SimGroup(group.conversation_id, group.title)
            self._state.changed()

    def user(self, user_id: str) -> SimUser:
        """A copy of a directory entry."""
        with self._state.lock:
            found = self._state.user(user_id)
            return SimUser(
                found.user_id,
                found.name,
                found.active,
                found.admin_level,
                list(found.dept_ids),
                found.in_corp,
            )

    def console_transfer_main_admin(self, from_user: str, to_user: str) -> None:
        """The admin-console transfer: ``to_user`` becomes main admin, ``from_user`` a member."""
        self._state.transfer_main_admin(from_user, to_user)

    def member_leaves(self, user_id: str) -> Delivery:
        """``user_id`` leaves the company: out of the corp (inactive; role calls naming them
        are refused with 33012), their role labels dropped as DingTalk drops them,
        ``user_leave_org`` pushed."""
        with self._state.lock:
            self._state.set_user(user_id, {"active": False, "in_corp": False})
            self._role_book.drop_user(user_id)
        return self.push_event("user_leave_org", [user_id])

    def console_add_admin(self, user_id: str, *, push: bool = True) -> Delivery | None:
        """The admin console makes ``user_id`` a sub-administrator; ``org_admin_add`` is
        pushed (``push=False``: the event is lost, for the daily sweep to find)."""
        self._state.set_user(user_id, {"admin_level": 2})
        return self.push_event("org_admin_add", [user_id]) if push else None

    def console_remove_admin(self, user_id: str, *, push: bool = True) -> Delivery | None:
        """The admin console takes ``user_id``'s sub-administrator rights away;
        ``org_admin_remove`` is pushed (``push=False``: lost)."""
        self._state.set_user(user_id, {"admin_level": 0})
        return self.push_event("org_admin_remove", [user_id]) if push else None
    # --- role labels (通讯录角色), as the admin console sees them ----------------------------

    def deny_roles(self, on: bool = True) -> None:
        """Every role call answers errcode 60011, as for an app without the permission."""
        with self._state.lock:
            self._role_book.denied = on
            self._state.changed()

    def role_id(self, group: str, role: str) -> int | None:
        return self._role_book.role_id(group, role)

    def role_holders(self, group: str, role: str) -> list[str]:
        """Who carries ``group``/``role`` (empty when the role does not exist)."""
        rid = self._role_book.role_id(group, role)
        return [] if rid is None else self._role_book.holders(rid)

    def console_add_role(self, group: str, role: str) -> int:
        """Create a role (and its group) as an admin would in the console."""
        with self._state.lock:
            found = [g.group_id for g in self._role_book.groups.values() if g.name == group]
            gid = found[0] if found else self._role_book.add_group(group)
            rid = self._role_book.role_id(group, role)
            return rid if rid is not None else self._role_book.add_role(gid, role)

    def console_assign_role(self, group: str, role: str, user_id: str, on: bool = True) -> None:
        """Give (or take) a role label in the console, not through the API."""
        rid = self.console_add_role(group, role)
        self._role_book.assign(rid, [user_id], on)

    def role_calls(self, path: str | None = None) -> int:
        """Role API calls answered with errcode 0 (one path, or all of them)."""
        with self._state.lock:
            calls = self._role_book.calls
            return calls[path] if path is not None else sum(calls.values())

    # --- observing -------------------------------------------------------------------------

    def requests(self, path: str | None = None) -> list[HttpRecord]:
        with self._state.lock:
            return [r for r in self._state.http if path is None or r.path == path]

    def messages(self, conversation_id: str | None = None) -> list[SentMessage]:
        with self._state.lock:
            return [
                m
                for m in self._state.sent
                if conversation_id is None or m.conversation_id == conversation_id
            ]

    def acks(self, message_id: str | None = None) -> list[AckRecord]:
        with self._state.lock:
            return [a for a in self._state.acks if message_id is None or a.message_id == message_id]

    def bad_frames(self) -> list[BadFrame]:
        with self._state.lock:
            return list(self._state.bad_frames)

    def cards(self) -> dict[str, SimCard]:
        with self._state.lock:
            return {k: c.snapshot() for k, c in self._state.cards.items()}

    def todos(self) -> dict[str, SimTodo]:
        """Every to-do created, by task id."""
        with self._state.lock:
            return dict(self._state.todos)

    def union_id(self, user_id: str) -> str:
        return self._state.union_id(user_id)

    def connections(self) -> list[ConnInfo]:
        return self._gateway.connections()

    def uploads(self) -> list[Upload]:
        with self._state.lock:
            return list(self._state.uploads)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0, what: str = "") -> T:
        """Block until ``predicate()`` is truthy (re-checked whenever the sim records anything)."""
        if self._thread is not None and threading.current_thread() is self._thread:
            raise RuntimeError("simulator: wait_for called on the simulator's own thread")
        return self._state.wait_for(predicate, timeout, what or "a condition")

    async def until(
        self,
        predicate: Callable[[], T],
        timeout: float = 5.0,
        what: str = "",
    ) -> T:
        """``wait_for`` for asyncio callers on another loop."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout, what)
