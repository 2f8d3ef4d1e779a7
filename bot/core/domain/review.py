"""Access review campaigns (定期审核), the pure part: what a campaign is, who reviews which
grant, what a click may decide, and the counts people see.

A campaign is a request of kind ``review`` (its state, deadline and public id ``R-n``) with
one card per reviewing admin (:attr:`Campaign.admins`, in card order) and one item per live
grant (:attr:`Campaign.items`). Storage keeps them in tables of their own and hands them out
as these values; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.core.domain.requests import State

REVIEW = "review"
BREAK_GLASS = "break_glass"     # the request kind of a break-glass grant (handlers/breakglass.py)
KEEP, REMOVE, KEEP_ALL = "keep", "remove", "keep_all"
UNREVIEWED_KEEP, UNREVIEWED_REVOKE = "unreviewed_keep", "unreviewed_revoke"
DECISIONS = (KEEP, REMOVE, UNREVIEWED_KEEP, UNREVIEWED_REVOKE)


@dataclass(frozen=True)
class LiveGrant:
    grant_id: int
    user_id: str
    name: str
    granted_by: str
    expires_at: datetime | None
    break_glass: int | None = None      # the break-glass request it came from, if it did


@dataclass(frozen=True)
class ReviewItem:
    """One grant under review: ``i`` its 0-based place, ``admin`` who decides it."""

    i: int
    grant_id: int
    user: str
    name: str
    granted_by: str
    expires_at: datetime | None
    admin: str
    decision: str | None = None
    by: str | None = None
    at: datetime | None = None
    break_glass: int | None = None      # the break-glass request the grant came from

    @property
    def number(self) -> int:
        """The item's number as people see and type it: from 1."""
        return self.i + 1

    def decided(self, decision: str, by: str | None, at: datetime) -> ReviewItem:
        return replace(self, decision=decision, by=by, at=at)


@dataclass(frozen=True)
class Campaign:
    id: int                             # the request's id
    state: State
    expires_at: datetime
    admins: tuple[str, ...]             # reviewers, in card order (the owner's card first)
    items: tuple[ReviewItem, ...]
    lang: str = ""                      # the language it was started in

    @property
    def public_id(self) -> str:
        return f"R-{self.id}"

    def of(self, admin: str) -> tuple[ReviewItem, ...]:
        """The items ``admin`` reviews."""
        return tuple(it for it in self.items if it.admin == admin)

    def with_items(self, changed: Iterable[ReviewItem]) -> Campaign:
        items = list(self.items)
        for it in changed:
            items[it.i] = it
        return replace(self, items=tuple(items))


def assign_items(grants: Iterable[LiveGrant], admins: Iterable[str], owner: str
                 ) -> tuple[list[str], list[ReviewItem]]:
    """Items in a stable order, each with the admin responsible: the granter if still an
    admin or the owner, else the owner. A break-glass grant (its holder granted it to
    themselves) is the owner's. Returns (admins with items, in card order; items)."""
    deciders = set(admins) | {owner}
    items = [ReviewItem(i=i, grant_id=g.grant_id, user=g.user_id, name=g.name,
                        granted_by=g.granted_by, expires_at=g.expires_at,
                        admin=g.granted_by if g.granted_by in deciders and not g.break_glass
                        else owner,
                        break_glass=g.break_glass)
             for i, g in enumerate(sorted(grants, key=lambda g: (g.user_id, g.name, g.grant_id)))]
    order = sorted({it.admin for it in items}, key=lambda a: (a != owner, a))
    return order, items


def counts(items: Sequence[ReviewItem]) -> dict[str, int]:
    return {"kept": sum(1 for it in items if it.decision == KEEP),
            "removed": sum(1 for it in items if it.decision == REMOVE),
            "unreviewed_kept": sum(1 for it in items if it.decision == UNREVIEWED_KEEP),
            "unreviewed_revoked": sum(1 for it in items if it.decision == UNREVIEWED_REVOKE),
            "open": sum(1 for it in items if it.decision is None)}


def card_status(state: State, mine: Sequence[ReviewItem]) -> str:
    """What a reviewer's card shows: cancelled / applied once the campaign ended, else
    ``done`` when every item of theirs is decided, else pending."""
    if state is not State.PENDING:
        return State.CANCELLED.value if state is State.CANCELLED else State.APPLIED.value
    return "done" if all(it.decision is not None for it in mine) else State.PENDING.value


def click_targets(c: Campaign, reviewer: int, action: str, item: str
                  ) -> tuple[ReviewItem, ...] | None:
    """The items a click on the ``reviewer``-th card asks to decide: all of theirs for
    ``keep_all``, else the item numbered ``item`` (from 1; any card's). () when there is no
    such item, None for an action the card does not have."""
    if action == KEEP_ALL:
        return c.of(c.admins[reviewer])
    if action not in (KEEP, REMOVE):
        return None
    raw = item.strip()
    idx = int(raw) - 1 if raw.isdigit() else -1
    return (c.items[idx],) if 0 <= idx < len(c.items) else ()


def unreviewed_decision(policy: str) -> str:
    """What the deadline does to an undecided item under ``review.unreviewed``."""
    return UNREVIEWED_REVOKE if policy == "revoke" else UNREVIEWED_KEEP
