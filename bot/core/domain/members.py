"""Members as the rest of Baton sees them: the admin levels and a person's read view."""

from __future__ import annotations

from dataclasses import dataclass

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
