"""What handlers ask to send, as plain values; turned into outbox rows and then API calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Reply:
    """A message to a conversation (group) or to one person (one-to-one)."""

    text: str
    conversation_id: str
    is_group: bool
    user_id: str = ""                       # the person, for a one-to-one chat
    markdown: bool = False
    title: str = "Baton"
    at: tuple[str, ...] = ()
    # A reminder: the requests it names. A later reminder to the same conversation naming
    # all of them supersedes it while it is still unsent (see OutboxRepo.supersede_reminders).
    reminds: tuple[int, ...] = ()

    @property
    def conversation_key(self) -> str:
        return f"group:{self.conversation_id}" if self.is_group else f"user:{self.user_id}"

    def payload(self) -> dict[str, Any]:
        p: dict[str, Any] = {
            "conversation_id": self.conversation_id, "is_group": self.is_group,
            "user_id": self.user_id, "format": "markdown" if self.markdown else "text",
            "title": self.title, "text": self.text, "at": list(self.at),
        }
        if self.reminds:
            p["remind"] = list(self.reminds)
        return p


@dataclass(frozen=True)
class CardSpec:
    """A card to create and deliver (the rendered API body) or to update."""

    op: Literal["create", "update"]
    out_track_id: str
    conversation_key: str
    body: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {"op": self.op, "out_track_id": self.out_track_id, "body": self.body}
