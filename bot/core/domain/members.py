"""Members as the rest of Baton sees them: the admin levels and a person's read view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Admin levels of a member inside Baton (not DingTalk's own flag).
OWNER = "owner"
ADMIN = "admin"
MEMBER = "member"


@dataclass(frozen=True)
class MemberView:
    """A member as read: who, by which name, at which admin level and in which role."""

    user_id: str
    name: str
    level: str
    role: str | None
    active: bool


@dataclass(frozen=True)
class Sender:
    """The member who sent a command, as read when it arrived: a value. What a handler
    changes about them is written through the member repository, never onto this."""

    corp_id: str
    user_id: str
    name: str
    level: str
    role: str | None
    active: bool
    import_mode: str | None = None          # "replace": the next file replaces, until...
    import_mode_until: datetime | None = None


@dataclass(frozen=True)
class Staff:
    """The owner and the admins as read once (the owner first, then admins by userId): what
    the deciders of most request kinds come from, so a list of requests reads them once."""

    people: tuple[MemberView, ...]

    @property
    def owner(self) -> MemberView | None:
        return next((p for p in self.people if p.level == OWNER), None)
