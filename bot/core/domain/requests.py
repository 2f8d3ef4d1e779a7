"""The request state machine: one transition table and one pure function.

::

    PENDING --vote(approve|accept|adopt), quorum not met--> PENDING
    PENDING --vote(approve|accept|adopt), quorum met------> APPROVED
    PENDING --vote(reject|decline|ignore)-----------------> REJECTED
    PENDING --cancel-----------------------------------> CANCELLED
    PENDING --expire-----------------------------------> EXPIRED
    APPROVED --applied---------------------------------> APPLIED
    APPROVED --apply_failed----------------------------> FAILED

REJECTED, EXPIRED, CANCELLED, APPLIED and FAILED are terminal: nothing leaves them.
``decide(request, event, now)`` never performs I/O; it returns the new state and what the
caller must do (apply the change, update the card, tell people), or a refusal that says why.
A test reads the diagram above and checks it against ``TRANSITIONS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class State(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    APPLIED = "applied"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"


class EventKind(StrEnum):
    VOTE = "vote"
    CANCEL = "cancel"
    EXPIRE = "expire"
    APPLIED = "applied"
    APPLY_FAILED = "apply_failed"


TRANSITIONS: dict[State, dict[EventKind, frozenset[State]]] = {
    State.PENDING: {
        EventKind.VOTE: frozenset({State.PENDING, State.APPROVED, State.REJECTED}),
        EventKind.CANCEL: frozenset({State.CANCELLED}),
        EventKind.EXPIRE: frozenset({State.EXPIRED}),
    },
    State.APPROVED: {
        EventKind.APPLIED: frozenset({State.APPLIED}),
        EventKind.APPLY_FAILED: frozenset({State.FAILED}),
    },
    State.APPLIED: {},
    State.REJECTED: {},
    State.EXPIRED: {},
    State.CANCELLED: {},
    State.FAILED: {},
}

TERMINAL = frozenset(s for s, out in TRANSITIONS.items() if not out)
OPEN = frozenset({State.PENDING, State.APPROVED})

# "adopt" / "ignore": the owner's answer on an admin-drift alert (handlers/drift.py).
# "justified" / "unjustified": the owner's verdict on a break-glass use (handlers/breakglass.py).
POSITIVE = frozenset({"approve", "accept", "adopt", "justified"})
NEGATIVE = frozenset({"reject", "decline", "ignore", "unjustified"})
ACTIONS = POSITIVE | NEGATIVE


class RequestConflict(Exception):
    """The store refused a new request: a constraint forbids a second one (e.g. a second
    open owner transfer in one company)."""


@dataclass(frozen=True)
class Vote:
    voter: str
    action: str           # approve | reject | accept | decline
    at: datetime


@dataclass(frozen=True)
class Request:
    """A request as the store holds it: what the engine and the request kinds read. It is
    never changed in place; the request repository's intent-named writes (``transition``,
    ``set_track``, ``set_payload``) change the stored request and return the new value.

    ``payload`` is a read-only mapping (the kind's own data: ``lang``, ``is_group``,
    ``twin``, ``copies``, ``error``, ...); ``state`` is the machine's :class:`State`."""

    id: int
    corp_id: str
    kind: str
    state: State
    requester_id: str
    target_id: str | None
    conversation_id: str
    reason: str
    payload: Mapping[str, Any]
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    card_out_track_id: str | None = None
    source_message_id: str | None = None
    version: int = 1

    def __post_init__(self) -> None:
        # A copy, read-only: nothing outside the store can change what it holds.
        object.__setattr__(self, "payload", MappingProxyType(dict(self.payload)))
        object.__setattr__(self, "state", State(self.state))

    @property
    def public_id(self) -> str:
        return f"R-{self.id}"


@dataclass(frozen=True)
class Requirement:
    """One decision a request needs: ``who`` may give it with one of ``actions``.

    ``who`` is a set of userIds; ``count`` distinct people among them must say yes.
    """

    key: str                       # "owner", "target", "approvers"
    who: frozenset[str]
    positive: str                  # the action id of a yes ("approve" or "accept")
    negative: str                  # the action id of a no ("reject" or "decline")
    count: int = 1
    implied_by: frozenset[str] = frozenset()   # people whose yes is implied (not clicked)


@dataclass(frozen=True)
class RequestView:
    id: int
    kind: str
    state: State
    requester: str
    expires_at: datetime
    requirements: tuple[Requirement, ...]
    votes: tuple[Vote, ...] = ()


@dataclass(frozen=True)
class Event:
    kind: EventKind
    actor: str = ""
    action: str = ""      # for votes


class Effect(StrEnum):
    RECORD_VOTE = "record_vote"
    APPLY = "apply"
    UPDATE_CARD = "update_card"
    NOTIFY_OUTCOME = "notify_outcome"


@dataclass(frozen=True)
class Refusal:
    """Why an event changes nothing; ``code`` picks the message, ``params`` fill it."""

    code: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    state: State
    effects: tuple[Effect, ...] = ()
    refusal: Refusal | None = None

    @property
    def changed(self) -> bool:
        return self.refusal is None


def yes_votes(req: RequestView, r: Requirement) -> list[str]:
    """Who counts towards ``r``: implied people first, then clicks, each person once."""
    got = [p for p in sorted(r.implied_by) if p in r.who]
    for v in req.votes:
        if v.action == r.positive and v.voter in r.who and v.voter not in got:
            got.append(v.voter)
    return got


def progress(req: RequestView) -> tuple[int, int]:
    """(yes so far, yes needed) over all requirements."""
    have = sum(min(r.count, len(yes_votes(req, r))) for r in req.requirements)
    return have, sum(r.count for r in req.requirements)


def waiting_for(req: RequestView) -> list[str]:
    """Who still has to decide: members of each unmet requirement who have not said yes."""
    out: list[str] = []
    for r in req.requirements:
        yes = yes_votes(req, r)
        if len(yes) < r.count:
            out += [p for p in sorted(r.who) if p not in yes and p not in out]
    return out


def _requirement_for(req: RequestView, actor: str, action: str) -> Requirement | None:
    for r in req.requirements:
        if action in (r.positive, r.negative) and actor in r.who:
            return r
    return None


def decide(req: RequestView, event: Event, now: datetime) -> Decision:
    state = req.state
    if event.kind not in TRANSITIONS[state]:
        if state in TERMINAL:
            return Decision(state, refusal=Refusal("decided", {"state": state.value}))
        return Decision(state, refusal=Refusal("not_now", {"state": state.value}))
    if event.kind is EventKind.EXPIRE:
        if now < req.expires_at:
            return Decision(state, refusal=Refusal("not_expired"))
        return Decision(State.EXPIRED, (Effect.UPDATE_CARD, Effect.NOTIFY_OUTCOME))
    if event.kind is EventKind.CANCEL:
        return Decision(State.CANCELLED, (Effect.UPDATE_CARD, Effect.NOTIFY_OUTCOME))
    if event.kind is EventKind.APPLIED:
        return Decision(State.APPLIED, (Effect.UPDATE_CARD, Effect.NOTIFY_OUTCOME))
    if event.kind is EventKind.APPLY_FAILED:
        return Decision(State.FAILED, (Effect.UPDATE_CARD, Effect.NOTIFY_OUTCOME))
    return _vote(req, event, now)


def _vote(req: RequestView, event: Event, now: datetime) -> Decision:
    actor, action = event.actor, event.action
    state = req.state
    if now >= req.expires_at:
        return Decision(state, refusal=Refusal("expired"))
    if action not in ACTIONS:
        return Decision(state, refusal=Refusal("unknown_action", {"action": action}))
    previous = next((v for v in req.votes if v.voter == actor), None)
    if previous is not None:
        return Decision(state, refusal=Refusal("already_voted", {"action": previous.action}))
    r = _requirement_for(req, actor, action)
    if r is None:
        # A decider pressing another decider's button: say which buttons are theirs.
        mine = next((x for x in req.requirements if actor in x.who), None)
        if mine is not None:
            if actor in mine.implied_by:
                return Decision(state, refusal=Refusal("already_implied"))
            return Decision(state, refusal=Refusal(
                "not_your_button", {"yes": mine.positive, "no": mine.negative}))
        if actor == req.requester and any(action in (x.positive, x.negative)
                                          for x in req.requirements):
            return Decision(state, refusal=Refusal("own_request"))
        allowed = [x for x in req.requirements if action in (x.positive, x.negative)]
        if not allowed:
            return Decision(state, refusal=Refusal("wrong_button", {"action": action}))
        return Decision(state, refusal=Refusal("not_a_decider", {"requirement": allowed[0].key}))
    if actor in r.implied_by:
        return Decision(state, refusal=Refusal("already_implied"))
    if action in NEGATIVE:
        return Decision(State.REJECTED,
                        (Effect.RECORD_VOTE, Effect.UPDATE_CARD, Effect.NOTIFY_OUTCOME))
    after = RequestView(req.id, req.kind, state, req.requester, req.expires_at,
                        req.requirements, (*req.votes, Vote(actor, action, now)))
    done = all(len(yes_votes(after, x)) >= x.count for x in after.requirements)
    if done:
        return Decision(State.APPROVED, (Effect.RECORD_VOTE, Effect.APPLY, Effect.UPDATE_CARD))
    return Decision(State.PENDING, (Effect.RECORD_VOTE, Effect.UPDATE_CARD))
