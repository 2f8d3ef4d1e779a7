"""Due work as read back for the operator (``baton schedule``, /healthz): values, not rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class DueItem:
    """One scheduled row: what runs, when, and how it has gone so far."""

    id: int
    kind: str
    due_at: datetime
    payload: dict[str, Any]
    status: str
    attempts: int


@dataclass(frozen=True)
class DueOverview:
    """The schedule at one moment: counts, the next rows due and the failing ones."""

    total: int
    overdue: int
    upcoming: tuple[DueItem, ...]
    failed: tuple[DueItem, ...]
    n_failed: int


@dataclass(frozen=True)
class Backlog:
    """What waits in the store (for /healthz and /metrics)."""

    outbox_pending: int
    outbox_oldest: datetime | None
    outbox_failed: int
    due_overdue: int
    due_oldest: datetime | None
