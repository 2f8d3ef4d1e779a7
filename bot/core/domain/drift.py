"""Admin drift, the pure part: what changed in DingTalk's admin list since Baton last saw it,
which of those changes Baton does not reflect, and whether a drift still holds.

DingTalk's admin list (``topapi/user/listadmin``) gives each admin a ``sys_level``: 1 the
main administrator, 2 a sub-administrator. Baton's own levels (owner, admin, member) are its
ledger: an admin made in Baton need not be one in DingTalk's console, so a drift is a
*change* seen in DingTalk (against the last list Baton recorded) that Baton's levels do not
already show:

==========================  ==========================================  ===============
seen in DingTalk             and Baton says                              drift
==========================  ==========================================  ===============
newly main administrator    someone else is the owner                   ``owner``
newly sub-administrator     a member                                    ``admin_add``
no longer a sub-admin       an admin                                    ``admin_remove``
==========================  ==========================================  ===============

With nothing recorded yet, every admin in the list is a new sighting (the daily sweep does
not ask then: it records the first list as a baseline, handlers/drift.py). ``holds`` tells
whether a drift Baton was told of still stands now (the daily sweep alerts it again, or lets
it go once DingTalk and Baton agree).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.core.domain.members import ADMIN, MEMBER, OWNER

MAIN, SUB = 1, 2                      # DingTalk's sys_level values
ADMIN_ADD, ADMIN_REMOVE, OWNER_CHANGE = "admin_add", "admin_remove", "owner"
CHANGES = (OWNER_CHANGE, ADMIN_ADD, ADMIN_REMOVE)


@dataclass(frozen=True)
class Drift:
    user_id: str
    change: str                       # owner | admin_add | admin_remove
    dingtalk_level: int               # the user's sys_level in DingTalk now (0: none)


def admin_levels(rows: Iterable[Mapping[str, object]]) -> dict[str, int]:
    """userId -> sys_level from ``listadmin``'s rows (anything unreadable is left out)."""
    out: dict[str, int] = {}
    for r in rows:
        uid, level = r.get("userid"), r.get("sys_level")
        if isinstance(uid, str) and uid and isinstance(level, int) and level in (MAIN, SUB):
            out[uid] = level
    return out


def find_drift(before: Mapping[str, int] | None, now: Mapping[str, int],
               baton: Mapping[str, str]) -> list[Drift]:
    """The drifts in DingTalk's list ``now`` against the one recorded ``before`` (None:
    nothing recorded), given Baton's levels (userId -> owner/admin; absent: member)."""
    seen: Mapping[str, int] = before or {}
    out: list[Drift] = []
    for uid in sorted(now):
        level = now[uid]
        if seen.get(uid) == level:
            continue
        if level == MAIN and baton.get(uid) != OWNER:
            out.append(Drift(uid, OWNER_CHANGE, MAIN))
        elif level == SUB and baton.get(uid, MEMBER) == MEMBER:
            out.append(Drift(uid, ADMIN_ADD, SUB))
    for uid in sorted(set(seen) - set(now)):
        # The main administrator leaving the list is one side of an owner change (in Baton,
        # the console step of a transfer; else the new main admin's owner drift says it).
        if seen[uid] != MAIN and baton.get(uid) == ADMIN:
            out.append(Drift(uid, ADMIN_REMOVE, 0))
    return out


def holds(d: Drift, now: Mapping[str, int], baton: Mapping[str, str]) -> bool:
    """Whether drift ``d`` still stands: DingTalk still says it and Baton still does not."""
    level = baton.get(d.user_id, MEMBER)
    if d.change == OWNER_CHANGE:
        return now.get(d.user_id) == MAIN and level != OWNER
    if d.change == ADMIN_ADD:
        return d.user_id in now and level == MEMBER
    return d.user_id not in now and level == ADMIN


def adoptable(change: str, level: str) -> bool:
    """Whether Baton's level for the user still differs the way the drift said (adopting is
    judged on Baton's side alone: a click does no I/O)."""
    if change == OWNER_CHANGE:
        return level != OWNER
    return level == (MEMBER if change == ADMIN_ADD else ADMIN)


def adopted_level(change: str) -> str:
    """Baton's level for the user once the owner adopts the drift."""
    return {OWNER_CHANGE: OWNER, ADMIN_ADD: ADMIN, ADMIN_REMOVE: MEMBER}[change]
