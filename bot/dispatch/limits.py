"""Per-user and per-conversation command rate limits (sliding one-minute windows).

Counted in memory by each replica: cheap, and enough to stop one member flooding the bot
(each replica sees its share of the stream). A throttled member is told once per window;
the rest of their burst is acked and dropped, so a flood never turns into a reply flood.

In a group, a member's commands are also held to their share of the group's outbound budget
(:func:`member_share`): the group sends at most ``outbox.per_conversation_per_minute``
messages a minute, and one member's answers (and their one slow-down notice) must not use
all of it, or everybody else's answers wait for the minute to pass.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

WINDOW = 60.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    tell: bool = False           # the first refusal of a window: answer it
    scope: str = ""              # "user", "member" (in a group) or "conversation"
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


def member_share(group_budget: int, share: float) -> int:
    """Commands one member may send in one group per minute: ``share`` of the group's
    outbound budget, less the slot their one slow-down notice takes; at least one."""
    return max(1, math.floor(group_budget * share + 1e-9) - 1)


class RateLimiter:
    def __init__(self, user_per_minute: int, conversation_per_minute: int,
                 member_per_minute: int | None = None) -> None:
        self.users = SlidingWindow(user_per_minute)
        self.conversations = SlidingWindow(conversation_per_minute)
        # A member in one group (key "conversation|user"); None: no such limit.
        self.members = SlidingWindow(member_per_minute) if member_per_minute else None
        self.throttled = 0

    def check(self, user_id: str, conversation_id: str, now: float, *,
              group: bool = False) -> Verdict:
        """Count one command, or refuse it; ``now`` is a monotonic clock in seconds. Past
        any limit the member is told once per window in that conversation, whichever limit
        it was (each notice is a message the conversation's budget pays for)."""
        member = f"{conversation_id}|{user_id}"
        checks: list[tuple[str, SlidingWindow, str]] = [("user", self.users, user_id)]
        if group and self.members is not None:
            checks.append(("member", self.members, member))
        checks.append(("conversation", self.conversations, conversation_id))
        for scope, window, key in checks:
            wait = window.full(key, now)
            if wait is not None:
                self.throttled += 1
                return Verdict(False, self.conversations.tell_once(member, now), scope,
                               max(0.0, wait))
        for _scope, window, key in checks:
            window.record(key, now)
        return Verdict(True)
