"""Shared, lock-protected state of the simulator.

Everything the simulator knows lives here: the sim clock, the seeded id source, the
directory, tokens/tickets/sessions, cards, fault rules and every record. One re-entrant lock
guards it all; ``changed()`` bumps a version counter and wakes ``wait_for`` callers. Code on
the simulator loop takes the lock only briefly and never across an ``await``.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from dingtalk_sim.model import (
    AckRecord,
    BadFrame,
    CardUpdate,
    HttpRecord,
    SentMessage,
    SimCard,
    SimGroup,
    SimTodo,
    SimUser,
    Upload,
)

T = TypeVar("T")

TICKET_TTL = 90.0
SESSION_TTL = 5400.0  # sessionWebhook: 90 minutes
ROOT_DEPT = 1
ROOT_DEPT_NAME = "总部"

DeptSpec = str | tuple[str, int]


@dataclass
class Ticket:
    expires_at: float
    subscriptions: tuple[tuple[str, str], ...]


@dataclass
class Session:
    conversation_id: str
    conversation_type: str  # "1" one-to-one, "2" group
    expires_at: float


@dataclass
class Department:
    dept_id: int
    name: str
    parent_id: int | None


@dataclass
class FailRule:
    status: int
    code: str
    body: dict[str, Any] | None
    headers: dict[str, str]
    method: str | None
    remaining: int


@dataclass
class DelayRule:
    seconds: float
    method: str | None
    remaining: int
    abandon: bool = False  # a call whose client hung up during the delay is dropped


@dataclass
class CardState:
    out_track_id: str
    template_id: str
    params: dict[str, str]
    private: dict[str, dict[str, str]]
    callback_type: str
    created_at: float
    spaces: list[str] = field(default_factory=list)
    extension: dict[str, str] = field(default_factory=dict)
    history: list[CardUpdate] = field(default_factory=list)

    def snapshot(self) -> SimCard:
        return SimCard(
            out_track_id=self.out_track_id,
            template_id=self.template_id,
            params=dict(self.params),
            private={k: dict(v) for k, v in self.private.items()},
            spaces=list(self.spaces),
            callback_type=self.callback_type,
            history=list(self.history),
            created_at=self.created_at,
        )


def _copy_user(user: SimUser) -> SimUser:
    return replace(user, dept_ids=list(user.dept_ids))


class SimState:
    """The simulator's data; thread-safe through ``lock``."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        corp_id: str,
        users: Sequence[SimUser],
        groups: Sequence[SimGroup],
        departments: Mapping[int, DeptSpec] | None,
        seed: int,
        token_ttl: float,
        group_send_limit_per_minute: int | None,
        auth_error_status: int,
        exclusive_accounts: bool,
    ) -> None:
        self.lock = threading.RLock()
        self._cond = threading.Condition(self.lock)
        self._version = 0
        self._offset = 0.0
        self.client_id = client_id
        self.client_secret = client_secret
        self.corp_id = corp_id
        self.app_id = str(
            uuid.UUID(int=random.Random(f"app:{client_id}").getrandbits(128), version=4)
        )
        self.token_ttl = token_ttl
        self.group_send_limit = group_send_limit_per_minute
        self.auth_error_status = auth_error_status
        self.exclusive_accounts = exclusive_accounts
        self.rng = random.Random(seed)
        self.base_url = ""

        self.users: dict[str, SimUser] = {u.user_id: _copy_user(u) for u in users}
        self.groups: dict[str, SimGroup] = {g.conversation_id: replace(g) for g in groups}
        self.departments: dict[int, Department] = {}
        for dept_id, spec in (departments or {ROOT_DEPT: ROOT_DEPT_NAME}).items():
            name, parent = (spec, ROOT_DEPT) if isinstance(spec, str) else spec
            self.departments[dept_id] = Department(
                dept_id, name, None if dept_id == ROOT_DEPT else parent
            )
        if ROOT_DEPT not in self.departments:
            self.departments[ROOT_DEPT] = Department(ROOT_DEPT, ROOT_DEPT_NAME, None)

        self.tokens: dict[str, float] = {}  # token -> expires_at (sim clock)
        self.tickets: dict[str, Ticket] = {}
        self.sessions: dict[str, Session] = {}
        self.files: dict[str, tuple[str, bytes]] = {}  # downloadCode -> (name, bytes)
        self.cards: dict[str, CardState] = {}
        self.todos: dict[str, SimTodo] = {}  # task id -> the to-do
        self.group_sends: dict[str, deque[float]] = {}
        self.fail_rules: dict[str, deque[FailRule]] = {}
        self.delay_rules: dict[str, deque[DelayRule]] = {}
        self.gateway_hang = 0.0

        self.http: list[HttpRecord] = []
        self.sent: list[SentMessage] = []
        self.acks: list[AckRecord] = []
        self.bad_frames: list[BadFrame] = []
        self.uploads: list[Upload] = []

    # --- clock -----------------------------------------------------------------------------

    def now(self) -> float:
        """The sim clock: wall clock plus everything ``advance`` added."""
        return time.time() + self._offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self._offset += seconds
            self.changed()

    # --- change notification ---------------------------------------------------------------

    def changed(self) -> None:
        with self.lock:
            self._version += 1
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], T], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                seen = self._version
            result = predicate()  # outside the lock: it may call anything
            if result:
                return result
            with self.lock:
                while self._version == seen:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"simulator: timed out waiting for {what}")
                    self._cond.wait(remaining)

    # --- ids (seeded: a run with the same seed and the same calls gets the same ids) --------

    def uuid4(self) -> str:
        with self.lock:
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, digits: int) -> str:
        with self.lock:
            return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    def rng_int(self, low: int, high: int) -> int:
        with self.lock:
            return self.rng.randrange(low, high)

    def new_message_id(self) -> str:
        """``headers.messageId``, shaped like DingTalk's ``<hex>_<hex>_<hex ms>_<hex>``."""
        return f"{self.hex(8)}_{self.hex(3)}_{self.now_ms():x}_{self.hex(5)}"

    def new_msg_id(self) -> str:
        """``data.msgId``, shaped like ``msgMxpQ+qegFQ4MpgOyu0UFrQ==``."""
        with self.lock:
            raw = self.rng.getrandbits(128).to_bytes(16, "big")
        return "msg" + base64.b64encode(raw).decode()

    def union_id(self, user_id: str) -> str:
        """The user's unionId, as user/get answers it."""
        return self.lwcp(f"union:{user_id}")[11:]

    def user_of_union(self, union_id: str) -> str | None:
        for uid, user in self.users.items():
            if user.in_corp and self.union_id(uid) == union_id:
                return uid
        return None

    def lwcp(self, key: str) -> str:
        """A stable encrypted-looking id (``$:LWCP_v1:$...``) for a user or robot."""
        digest = hashlib.sha256(f"{self.corp_id}/{key}".encode()).digest()[:18]
        return "$:LWCP_v1:$" + base64.b64encode(digest).decode()

    # --- tokens / tickets / sessions -------------------------------------------------------

    def issue_token(self) -> tuple[str, float]:
        with self.lock:
            now = self.now()
            for token, expires in self.tokens.items():
                if expires > now:
                    return token, expires - now
            token = self.hex(32)
            self.tokens[token] = now + self.token_ttl
            self.changed()
            return token, self.token_ttl

    def token_valid(self, token: str) -> bool:
        with self.lock:
            expires = self.tokens.get(token)
            return expires is not None and expires > self.now()

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()
            self.changed()

    def issue_ticket(self, subscriptions: tuple[tuple[str, str], ...]) -> str:
        ticket = self.uuid4()
        with self.lock:
            self.tickets[ticket] = Ticket(self.now() + TICKET_TTL, subscriptions)
        return ticket

    def take_ticket(self, ticket: str) -> Ticket | None:
        """Consume a ticket (single use); None when unknown, used or expired."""
        with self.lock:
            found = self.tickets.pop(ticket, None)
            if found is None or found.expires_at <= self.now():
                return None
            return found

    def new_session(self, conversation_id: str, conversation_type: str) -> tuple[str, float]:
        session = self.hex(32)
        with self.lock:
            expires = self.now() + SESSION_TTL
            self.sessions[session] = Session(conversation_id, conversation_type, expires)
        return session, expires

    def session(self, session: str) -> Session | None:
        with self.lock:
            found = self.sessions.get(session)
            if found is None or found.expires_at <= self.now():
                return None
            return found

    # --- directory -------------------------------------------------------------------------

    def user(self, user_id: str) -> SimUser:
        with self.lock:
            try:
                return self.users[user_id]
            except KeyError:
                raise KeyError(f"simulator: unknown user {user_id!r}") from None

    def add_user(self, user: SimUser) -> None:
        with self.lock:
            self.users[user.user_id] = _copy_user(user)
            self.changed()

    def set_user(self, user_id: str, changes: Mapping[str, Any]) -> None:
        with self.lock:
            self.users[user_id] = replace(self.user(user_id), **changes)
            self.changed()

    def transfer_main_admin(self, from_user: str, to_user: str) -> None:
        with self.lock:
            source, target = self.user(from_user), self.user(to_user)
            self.users[to_user] = replace(target, admin_level=1)
            self.users[from_user] = replace(source, admin_level=0)
            self.changed()

    # --- records ---------------------------------------------------------------------------

    def record_http(self, record: HttpRecord) -> None:
        with self.lock:
            self.http.append(record)
            self.changed()

    def record_sent(self, message: SentMessage) -> None:
        with self.lock:
            self.sent.append(message)
            self.changed()

    def record_ack(self, ack: AckRecord) -> None:
        with self.lock:
            self.acks.append(ack)
            self.changed()

    def record_bad_frame(self, bad: BadFrame) -> None:
        with self.lock:
            self.bad_frames.append(bad)
            self.changed()

    def record_upload(self, upload: Upload) -> None:
        with self.lock:
            self.uploads.append(upload)
            self.changed()

    # --- faults ----------------------------------------------------------------------------

    def add_fail(self, path: str, rule: FailRule) -> None:
        with self.lock:
            self.fail_rules.setdefault(path, deque()).append(rule)

    def clear_fails(self, path: str | None = None) -> None:
        with self.lock:
            if path is None:
                self.fail_rules.clear()
            else:
                self.fail_rules.pop(path, None)

    def add_delay(self, path: str, rule: DelayRule) -> None:
        with self.lock:
            self.delay_rules.setdefault(path, deque()).append(rule)

    def take_fail(self, path: str, method: str) -> FailRule | None:
        with self.lock:
            return _take(self.fail_rules.get(path), method)

    def take_delay(self, path: str, method: str) -> DelayRule | None:
        with self.lock:
            return _take(self.delay_rules.get(path), method)

    def take_gateway_hang(self) -> float:
        with self.lock:
            hang, self.gateway_hang = self.gateway_hang, 0.0
            return hang

    def group_send_allowed(self, conversation_id: str) -> bool:
        """Count one group send against the per-group, per-minute limit."""
        with self.lock:
            if self.group_send_limit is None:
                return True
            now = self.now()
            window = self.group_sends.setdefault(conversation_id, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= self.group_send_limit:
                return False
            window.append(now)
            return True


_R = TypeVar("_R", FailRule, DelayRule)


def _take(rules: deque[_R] | None, method: str) -> _R | None:
    if not rules:
        return None
    for rule in rules:
        if rule.method is None or rule.method.upper() == method.upper():
            rule.remaining -= 1
            if rule.remaining <= 0:
                rules.remove(rule)
            return rule
    return None
