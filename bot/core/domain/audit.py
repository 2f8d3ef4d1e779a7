"""An audit entry as read back from the chain: a value, not a row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class AuditRecord:
    """One entry of a corp's hash chain, as ``audit`` shows and ``baton audit export``
    writes it."""

    seq: int
    at: datetime
    actor_id: str
    action: str
    target_id: str | None
    request_id: int | None
    message_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    result: str
    prev_hash: str
    hash: str
