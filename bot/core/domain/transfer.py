"""Owner transfer (主管理员转让) rules: who must decide, and the prerequisites. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.core.domain.requests import Requirement

OWNER_TRANSFER = "owner_transfer"
TRANSFER_PERMISSION = "owner.transfer"


def transfer_requirements(requester: str, owner: str, target: str) -> tuple[Requirement, ...]:
    """The current owner approves (implied when the owner asked); the target accepts."""
    implied = frozenset({owner}) if requester == owner else frozenset()
    return (
        Requirement("owner", frozenset({owner}), "approve", "reject", 1, implied),
        Requirement("target", frozenset({target}), "accept", "decline", 1),
    )


@dataclass(frozen=True)
class Person:
    user_id: str
    level: str                 # owner | admin | member
    holds_transfer: bool = False


@dataclass(frozen=True)
class DirectoryEntry:
    """What DingTalk's directory says of the target (None when it has no such user)."""

    active: bool


@dataclass(frozen=True)
class Prerequisite:
    code: str


def check_transfer(initiator: Person, target_id: str, target: Person | None,
                   directory: DirectoryEntry | None, owner_id: str | None,
                   candidates: Literal["admins", "members"],
                   open_request: int | None) -> Prerequisite | None:
    """The first unmet prerequisite, in the order a careful admin checks them, or None."""
    if owner_id is None:
        return Prerequisite("no_owner")
    if initiator.level != "owner" and not (initiator.level == "admin" and initiator.holds_transfer):
        return Prerequisite("no_authority")
    if directory is None:
        return Prerequisite("target_unknown")
    if not directory.active:
        return Prerequisite("target_inactive")
    if target_id == owner_id:
        return Prerequisite("target_is_owner")
    if candidates == "admins" and (target is None or target.level != "admin"):
        return Prerequisite("target_not_eligible")
    if open_request is not None:
        return Prerequisite("transfer_open")
    return None
