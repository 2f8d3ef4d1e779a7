"""A queued send as the outbox sender leases it: a value, not a row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An outbox row as the sender claims it: plain values read with Core (no ORM identity
    map or instrumentation; a claim is on every cycle of the sender). One field per column of
    the outbox table."""

    id: int
    kind: str
    conversation_key: str
    payload: dict[str, Any]
    session_webhook: str | None
    webhook_expires_at: datetime | None
    status: str
    attempts: int
    next_attempt_at: datetime
    claimed_until: datetime | None
    created_at: datetime
    sent_at: datetime | None
    counted_at: datetime | None
    last_error: str | None
    source_message_id: str | None
