"""Webhooks: the change feed pushed to subscribers, signed; the rules, without I/O.

A subscriber follows the feed with a durable cursor (the seq of the last event it
acknowledged). Delivery is one event per POST, in seq order, at least once: the cursor moves
only after a 2xx, so a crash between the POST and the cursor's move sends the same event
(same ``id``) again and the receiver drops the repeat.

The signature is Stripe's scheme: ``X-Baton-Signature: t=<unix>,v1=<hex>`` where ``<hex>``
is HMAC-SHA256 with the subscriber's secret over ``<t>.<raw body>``. :func:`verify` is what
a receiver runs (the docs' example is this function, standard library only).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

SIGNATURE_HEADER = "X-Baton-Signature"
EVENT_ID_HEADER = "X-Baton-Event-Id"
EVENT_TYPE_HEADER = "X-Baton-Event-Type"
#: How far a receiver lets a signature's timestamp stray from its clock (replays older than
#: this are refused even with a valid signature).
TOLERANCE = 300


def signature(secret: str, t: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``<t>.<body>`` under ``secret``."""
    return hmac.new(secret.encode("utf-8"), str(t).encode("ascii") + b"." + body,
                    hashlib.sha256).hexdigest()


def sign(secret: str, t: int, body: bytes) -> str:
    """The ``X-Baton-Signature`` header value for ``body`` sent at unix time ``t``."""
    return f"t={t},v1={signature(secret, t, body)}"


def verify(secret: str, header: str, body: bytes, now: float,
           tolerance: int = TOLERANCE) -> bool:
    """True when ``header`` is a valid signature of ``body`` under ``secret``, made within
    ``tolerance`` seconds of ``now`` (unix time). Any ``v1`` entry may match (a sender in
    the middle of a secret rotation may send two)."""
    t: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            t = int(value)
        elif key == "v1":
            sigs.append(value)
    if t is None or not sigs or abs(now - t) > tolerance:
        return False
    expected = signature(secret, t, body)
    return any(hmac.compare_digest(expected, s) for s in sigs)


# ---- a subscriber's delivery state ----------------------------------------------------------

class State(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscriber's durable state (its URL, secret and filter are configuration)."""

    name: str
    cursor: int                       # the last seq acknowledged (or skipped by the filter)
    state: State
    attempts: int                     # failed attempts at the event after the cursor
    next_attempt_at: datetime
    last_error: str | None
    last_delivered_at: datetime | None
    paused_at: datetime | None
    claimed_until: datetime | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery round leaves: the new cursor, attempts, when to try next, and
    whether the subscriber is now paused (``paused`` is True only on the round that pauses
    it: that round raises the one alert)."""

    cursor: int
    attempts: int
    next_attempt_at: datetime
    error: str | None
    paused: bool


def backoff(attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before attempt ``attempts + 1``: exponential from ``base``, capped at ``cap``,
    jittered to 50-150% (so many subscribers failing together do not retry in step)."""
    delay: float = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay * (0.5 + rng.random())


def settle(cursor: int, attempts: int, reached: int, error: str | None, now: datetime, *,
           max_attempts: int, base: float, cap: float, rng: random.Random) -> Outcome:
    """The state after a round that moved the cursor from ``cursor`` to ``reached`` and then
    failed with ``error`` (None: it stopped because it had delivered everything it took).

    Progress resets the attempt count (the failure is the next event's first); a failure
    counts an attempt and schedules a retry with backoff; the ``max_attempts``-th failed
    attempt at one event pauses the subscriber."""
    if error is None:
        return Outcome(reached, 0, now, None, False)
    tried = (0 if reached > cursor else attempts) + 1
    if tried >= max_attempts:
        return Outcome(reached, tried, now, error, True)
    return Outcome(reached, tried, now + timedelta(seconds=backoff(tried, base, cap, rng)),
                   error, False)


def wants(events: tuple[str, ...], event_type: str) -> bool:
    """Whether a subscription's ``events`` filter takes ``event_type`` (``*``: all)."""
    return "*" in events or event_type in events
