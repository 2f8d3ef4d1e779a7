"""Per-user and per-conversation command rate limits (sliding one-minute windows).

Counted in memory by each replica: cheap, and enough to stop one member flooding the bot
(each replica sees its share of the stream). A throttled member is told once per window;
the rest of their burst is acked and dropped, so a flood never turns into a reply flood.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOW = 60.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    tell: bool = False           # the first refusal of a window: answer it
    scope: str = ""              # "user" or "conversation"
    retry_after: float = 0.0     # seconds until the oldest counted command leaves the window


class SlidingWindow:
    def __init__(self, per_window: int, window: float = WINDOW) -> None:
        self.per_window, self.window = per_window, window
        self._hits: dict[str, deque[float]] = {}
        self._told: dict[str, float] = {}
        self._checks = 0

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window:
            q.popleft()

    def full(self, key: str, now: float) -> float | None:
        """Seconds until there is room for ``key``, or None when there is room now."""
        q = self._hits.get(key)
        if q is None:
            return None
        self._trim(q, now)
        if len(q) < self.per_window:
            return None
        return q[0] + self.window - now

    def record(self, key: str, now: float) -> None:
        self._hits.setdefault(key, deque()).append(now)
        self._checks += 1
        if self._checks % 1024 == 0:
            self._prune(now)

    def tell_once(self, key: str, now: float) -> bool:
        """True the first time ``key`` is refused in a window."""
        last = self._told.get(key)
        if last is not None and last > now - self.window:
            return False
        self._told[key] = now
        return True

    def _prune(self, now: float) -> None:
        for key in [k for k, q in self._hits.items() if not q or q[-1] <= now - self.window]:
            del self._hits[key]
        for key in [k for k, at in self._told.items() if at <= now - self.window]:
            del self._told[key]


class RateLimiter:
    def __init__(self, user_per_minute: int, conversation_per_minute: int) -> None:
        self.users = SlidingWindow(user_per_minute)
        self.conversations = SlidingWindow(conversation_per_minute)
        self.throttled = 0

    def check(self, user_id: str, conversation_id: str, now: float) -> Verdict:
        """Count one command, or refuse it; ``now`` is a monotonic clock in seconds."""
        wait = self.users.full(user_id, now)
        scope, window, key = "user", self.users, user_id
        if wait is None:
            wait = self.conversations.full(conversation_id, now)
            scope, window, key = "conversation", self.conversations, conversation_id
        if wait is None:
            self.users.record(user_id, now)
            self.conversations.record(conversation_id, now)
            return Verdict(True)
        self.throttled += 1
        return Verdict(False, window.tell_once(f"{key}|{user_id}", now), scope, max(0.0, wait))
