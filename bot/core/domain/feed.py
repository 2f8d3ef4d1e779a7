"""The change feed: every applied change as an event other systems can follow.

An event is born from the audit entry that records the change (same transaction, same
actor, before, after and request), so nothing that changes access can happen without one:
the audit already covers every change, and :data:`EVENT_TYPES` says which of its actions
are changes. Sequence numbers are global and follow commit order (the writers serialise on
one head row), so a reader that has seen ``seq`` has seen every change committed before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: The audit action of an applied change -> the public event type. An action missing here
#: is not a change of access (a refusal, a vote, a summary line, a request opened).
EVENT_TYPES: dict[str, str] = {
    "grant.apply": "grant.added",
    "grant.revoke": "grant.revoked",
    "grant.expired": "grant.expired",
    "review.remove": "grant.revoked",
    "review.unreviewed_revoke": "grant.revoked",
    "role_set.apply": "role.changed",
    "role_clear.apply": "role.changed",
    "admin_add.apply": "admin.added",
    "admin_remove.apply": "admin.removed",
    "owner_transfer.apply": "owner.changed",
    "template.create": "template.created",
    "template.set": "template.edited",
    "template.delete": "template.deleted",
    "template.assign": "template.applied",
    "template.unassign": "template.unapplied",
    "member.offboard": "member.offboarded",
    "import.change": "import.change",
    "import.undo_change": "import.undone",
}

#: Actions audited as "applied" that change no one's access: decisions to keep, summaries of
#: a batch whose changes have their own entries, DingTalk's side of a transfer, the first
#: start's seed (the feed begins after it). The request engine's ``<kind>.applied`` (a
#: request carried out; its change has its own entry) is not one either: see
#: :func:`classified`.
NOT_CHANGES: frozenset[str] = frozenset({
    "review.keep", "review.unreviewed_keep", "review.applied", "import.apply",
    "owner_transfer.dingtalk_changed", "review.handed_over", "api_token.create",
    "api_token.revoke", "bootstrap",
    # The grant itself is a grant.added event whose ``after.via`` is "break_glass".
    "break_glass.used",
    # The owner's verdict on a break-glass use afterwards: a judgement, not a change.
    "break_glass.reviewed",
})
REQUEST_APPLIED = ".applied"


def classified(action: str) -> bool:
    """Whether an action audited as "applied" is known: a change (an event type) or not."""
    return action in EVENT_TYPES or action in NOT_CHANGES or action.endswith(REQUEST_APPLIED)

#: Every public event type, for validating subscriptions (``integrations.webhooks[].events``).
TYPES: frozenset[str] = frozenset(EVENT_TYPES.values())

#: A subject is a member or a template.
USER, TEMPLATE = "user", "template"


def event_type(action: str, result: str) -> str | None:
    """The event an audit entry stands for, or None when it records no applied change."""
    if result != "applied":
        return None
    return EVENT_TYPES.get(action)


def subject_of(target_id: str | None, before: dict[str, Any] | None,
               after: dict[str, Any] | None) -> tuple[str, str] | None:
    """Who or what changed: the member the entry targets, else the template it names."""
    if target_id:
        return USER, target_id
    for side in (after, before):
        if side and isinstance(side.get("template"), str):
            return TEMPLATE, side["template"]
    return None


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One applied change. ``id`` is stable (an idempotency key for receivers); ``seq`` is
    its place in the feed. ``action`` is the audit action it was recorded under."""

    id: str
    seq: int
    corp_id: str
    type: str
    action: str
    actor: str
    subject_kind: str | None
    subject: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: int | None
    at: datetime

    def users(self) -> tuple[str, ...]:
        """The members whose access this event may change: the subject, or every holder of
        the template it edits or deletes (as recorded with it)."""
        if self.subject_kind == USER and self.subject:
            return (self.subject,)
        held: list[str] = []
        for side in (self.before, self.after):
            if side and isinstance(side.get("holders"), list):
                held.extend(str(u) for u in side["holders"])
        return tuple(dict.fromkeys(held))

    def as_json(self) -> dict[str, Any]:
        """The wire form (API, webhooks): plain JSON types, times in ISO 8601 with offset."""
        return {
            "id": self.id, "seq": self.seq, "type": self.type, "action": self.action,
            "corp_id": self.corp_id, "actor": self.actor,
            "subject": None if self.subject is None
            else {"type": self.subject_kind, "id": self.subject},
            "before": self.before, "after": self.after, "request_id": self.request_id,
            "at": self.at.isoformat(),
        }
