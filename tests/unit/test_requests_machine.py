"""The request state machine: the diagram, ``decide`` for owner transfers, the transfer
prerequisites, and a stateful model of what ``bot/approvals/engine.py`` does with decisions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import bot.core.domain.requests as requests_module
from bot.core.domain.requests import (
    OPEN,
    TERMINAL,
    TRANSITIONS,
    Decision,
    Effect,
    Event,
    EventKind,
    RequestView,
    Requirement,
    State,
    Vote,
    decide,
)
from bot.core.domain.transfer import (
    OWNER_TRANSFER,
    DirectoryEntry,
    Person,
    check_transfer,
    transfer_requirements,
)

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
TTL = timedelta(days=2)

# ---- the diagram ------------------------------------------------------------------------

_EDGE = re.compile(
    r"^\s*(?P<src>[A-Z_]+)\s+--(?P<event>[a-z_]+)(?:\([^)]*\))?[^>]*?-+>\s*(?P<dst>[A-Z_]+)\s*$")
_TERMINAL = re.compile(r"^\s*(?P<names>[A-Z_][A-Z_, ]*?(?:\s+and\s+[A-Z_]+)?)\s+are terminal\b")


def _doc() -> str:
    doc = requests_module.__doc__
    assert doc
    return doc


def diagram_edges() -> set[tuple[State, EventKind, State]]:
    edges = set()
    for line in _doc().splitlines():
        m = _EDGE.match(line)
        if m:
            edges.add((State[m["src"]], EventKind(m["event"]), State[m["dst"]]))
    return edges


def table_edges() -> set[tuple[State, EventKind, State]]:
    return {(s, e, d) for s, out in TRANSITIONS.items() for e, targets in out.items()
            for d in targets}


def test_diagram_has_edges() -> None:
    arrows = [line for line in _doc().splitlines() if "-->" in line]
    assert arrows, "no arrows in the docstring"
    assert len(diagram_edges()) == len(arrows), "an arrow line the parser could not read"


def test_diagram_matches_transitions() -> None:
    drawn, table = diagram_edges(), table_edges()
    assert drawn - table == set(), f"drawn but not in TRANSITIONS: {drawn - table}"
    assert table - drawn == set(), f"in TRANSITIONS but not drawn: {table - drawn}"


def test_diagram_terminal_states() -> None:
    found = [m for line in _doc().splitlines() if (m := _TERMINAL.match(line))]
    assert len(found) == 1
    names = re.split(r"\s*,\s*|\s+and\s+", found[0]["names"].strip())
    assert {State[n] for n in names} == TERMINAL
    assert set(State) == TERMINAL | OPEN and not TERMINAL & OPEN
    assert TRANSITIONS.keys() == set(State)


# ---- decide for owner transfers ----------------------------------------------------------

OWNER, ADMIN, TARGET, STRANGER = "o", "a1", "t", "x"


def view(requester: str, state: State = State.PENDING, votes: tuple[tuple[str, str], ...] = (),
         owner: str = OWNER, target: str = TARGET) -> RequestView:
    return RequestView(
        id=1, kind=OWNER_TRANSFER, state=state, requester=requester, expires_at=T0 + TTL,
        requirements=transfer_requirements(requester, owner, target),
        votes=tuple(Vote(v, a, T0) for v, a in votes),
    )


def vote(actor: str, action: str) -> Event:
    return Event(EventKind.VOTE, actor, action)


NOW = T0 + timedelta(hours=1)
APPROVED_EFFECTS = (Effect.RECORD_VOTE, Effect.APPLY, Effect.UPDATE_CARD)
PENDING_EFFECTS = (Effect.RECORD_VOTE, Effect.UPDATE_CARD)
REJECTED_EFFECTS = (Effect.RECORD_VOTE, Effect.UPDATE_CARD, Effect.NOTIFY_OUTCOME)
CLOSE_EFFECTS = (Effect.UPDATE_CARD, Effect.NOTIFY_OUTCOME)

# (id, request view, event, now, expected state, expected effects, expected refusal code)
CASES: list[tuple[str, RequestView, Event, datetime, State, tuple[Effect, ...], str | None]] = [
    # owner-initiated: the owner's approval is implied
    ("owner: target accepts", view(OWNER), vote(TARGET, "accept"), NOW,
     State.APPROVED, APPROVED_EFFECTS, None),
    ("owner: target declines", view(OWNER), vote(TARGET, "decline"), NOW,
     State.REJECTED, REJECTED_EFFECTS, None),
    ("owner: owner approves (implied)", view(OWNER), vote(OWNER, "approve"), NOW,
     State.PENDING, (), "already_implied"),
    ("owner: owner rejects (implied)", view(OWNER), vote(OWNER, "reject"), NOW,
     State.PENDING, (), "already_implied"),
    ("owner: owner presses accept", view(OWNER), vote(OWNER, "accept"), NOW,
     State.PENDING, (), "already_implied"),
    ("owner: stranger accepts", view(OWNER), vote(STRANGER, "accept"), NOW,
     State.PENDING, (), "not_a_decider"),
    ("owner: target presses approve", view(OWNER), vote(TARGET, "approve"), NOW,
     State.PENDING, (), "not_your_button"),
    # admin-initiated: owner approve + target accept, in either order
    ("admin: owner approves first", view(ADMIN), vote(OWNER, "approve"), NOW,
     State.PENDING, PENDING_EFFECTS, None),
    ("admin: target accepts first", view(ADMIN), vote(TARGET, "accept"), NOW,
     State.PENDING, PENDING_EFFECTS, None),
    ("admin: then target accepts", view(ADMIN, votes=((OWNER, "approve"),)),
     vote(TARGET, "accept"), NOW, State.APPROVED, APPROVED_EFFECTS, None),
    ("admin: then owner approves", view(ADMIN, votes=((TARGET, "accept"),)),
     vote(OWNER, "approve"), NOW, State.APPROVED, APPROVED_EFFECTS, None),
    ("admin: owner rejects", view(ADMIN), vote(OWNER, "reject"), NOW,
     State.REJECTED, REJECTED_EFFECTS, None),
    ("admin: target declines after owner approved", view(ADMIN, votes=((OWNER, "approve"),)),
     vote(TARGET, "decline"), NOW, State.REJECTED, REJECTED_EFFECTS, None),
    ("admin: requester approves", view(ADMIN), vote(ADMIN, "approve"), NOW,
     State.PENDING, (), "own_request"),
    ("admin: requester accepts", view(ADMIN), vote(ADMIN, "accept"), NOW,
     State.PENDING, (), "own_request"),
    ("admin: stranger approves", view(ADMIN), vote(STRANGER, "approve"), NOW,
     State.PENDING, (), "not_a_decider"),
    ("admin: stranger declines", view(ADMIN), vote(STRANGER, "decline"), NOW,
     State.PENDING, (), "not_a_decider"),
    ("admin: owner presses accept", view(ADMIN), vote(OWNER, "accept"), NOW,
     State.PENDING, (), "not_your_button"),
    ("admin: target presses approve", view(ADMIN), vote(TARGET, "approve"), NOW,
     State.PENDING, (), "not_your_button"),
    ("admin: owner second click", view(ADMIN, votes=((OWNER, "approve"),)),
     vote(OWNER, "approve"), NOW, State.PENDING, (), "already_voted"),
    ("admin: owner changes mind", view(ADMIN, votes=((OWNER, "approve"),)),
     vote(OWNER, "reject"), NOW, State.PENDING, (), "already_voted"),
    ("admin: unknown button", view(ADMIN), vote(OWNER, "maybe"), NOW,
     State.PENDING, (), "unknown_action"),
    # admin asks for the role himself: his accept is his own requirement
    ("admin to self: accepts", view(ADMIN, target=ADMIN), vote(ADMIN, "accept"), NOW,
     State.PENDING, PENDING_EFFECTS, None),
    ("admin to self: approves", view(ADMIN, target=ADMIN), vote(ADMIN, "approve"), NOW,
     State.PENDING, (), "not_your_button"),
    # time
    ("vote after expiry", view(ADMIN), vote(OWNER, "approve"), T0 + TTL,
     State.PENDING, (), "expired"),
    ("vote just before expiry", view(ADMIN), vote(OWNER, "approve"),
     T0 + TTL - timedelta(microseconds=1), State.PENDING, PENDING_EFFECTS, None),
    ("expire before expires_at", view(ADMIN), Event(EventKind.EXPIRE), NOW,
     State.PENDING, (), "not_expired"),
    ("expire at expires_at", view(ADMIN), Event(EventKind.EXPIRE), T0 + TTL,
     State.EXPIRED, CLOSE_EFFECTS, None),
    ("cancel", view(ADMIN), Event(EventKind.CANCEL, ADMIN), NOW,
     State.CANCELLED, CLOSE_EFFECTS, None),
    ("cancel after expiry", view(ADMIN), Event(EventKind.CANCEL, ADMIN), T0 + TTL * 2,
     State.CANCELLED, CLOSE_EFFECTS, None),
    # apply outcomes
    ("applied", view(ADMIN, State.APPROVED, ((OWNER, "approve"), (TARGET, "accept"))),
     Event(EventKind.APPLIED), NOW, State.APPLIED, CLOSE_EFFECTS, None),
    ("apply failed", view(ADMIN, State.APPROVED, ((OWNER, "approve"), (TARGET, "accept"))),
     Event(EventKind.APPLY_FAILED), NOW, State.FAILED, CLOSE_EFFECTS, None),
    ("vote while approved", view(ADMIN, State.APPROVED), vote(TARGET, "accept"), NOW,
     State.APPROVED, (), "not_now"),
    ("cancel while approved", view(ADMIN, State.APPROVED), Event(EventKind.CANCEL, ADMIN), NOW,
     State.APPROVED, (), "not_now"),
    ("applied while pending", view(ADMIN), Event(EventKind.APPLIED), NOW,
     State.PENDING, (), "not_now"),
]

# every event in every terminal state is refused with "decided"
ALL_EVENTS = [vote(OWNER, "approve"), vote(TARGET, "accept"), vote(TARGET, "decline"),
              vote(STRANGER, "approve"), Event(EventKind.CANCEL, ADMIN), Event(EventKind.EXPIRE),
              Event(EventKind.APPLIED), Event(EventKind.APPLY_FAILED)]
for _s in sorted(TERMINAL):
    for _e in ALL_EVENTS:
        for _now in (NOW, T0 + TTL * 3):
            CASES.append((f"{_s.value}: {_e.kind.value} {_e.actor} {_e.action} @{_now:%d}",
                          view(ADMIN, _s), _e, _now, _s, (), "decided"))


@pytest.mark.parametrize(("req", "event", "now", "state", "effects", "refusal"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide_owner_transfer(req: RequestView, event: Event, now: datetime, state: State,
                               effects: tuple[Effect, ...], refusal: str | None) -> None:
    d = decide(req, event, now)
    assert d.state is state
    assert d.effects == effects
    assert (d.refusal.code if d.refusal else None) == refusal
    assert d.changed is (refusal is None)
    if d.changed:
        assert d.state in TRANSITIONS[req.state][event.kind]


@pytest.mark.parametrize(("req", "actor", "pressed", "yours"), [
    (view(OWNER), TARGET, "approve", ("accept", "decline")),
    (view(OWNER), TARGET, "reject", ("accept", "decline")),
    (view(ADMIN), OWNER, "accept", ("approve", "reject")),
    (view(ADMIN), OWNER, "decline", ("approve", "reject")),
    (RequestView(id=2, kind="grant", state=State.PENDING, requester=ADMIN, expires_at=T0 + TTL,
                 requirements=(Requirement("approvers", frozenset({OWNER, "a2"}), "approve",
                                           "reject", 1),)),
     "a2", "accept", ("approve", "reject")),
])
def test_a_decider_on_the_wrong_button_is_told_which_are_theirs(
        req: RequestView, actor: str, pressed: str, yours: tuple[str, str]) -> None:
    d = decide(req, vote(actor, pressed), NOW)
    assert d.refusal is not None and d.state is State.PENDING
    assert d.refusal.code == "not_your_button"
    assert (d.refusal.params["yes"], d.refusal.params["no"]) == yours


def test_refusal_params() -> None:
    d = decide(view(ADMIN), vote(STRANGER, "accept"), NOW)
    assert d.refusal is not None and d.refusal.params == {"requirement": "target"}
    d = decide(view(ADMIN), vote(STRANGER, "approve"), NOW)
    assert d.refusal is not None and d.refusal.params == {"requirement": "owner"}
    d = decide(view(ADMIN), vote(TARGET, "approve"), NOW)
    assert d.refusal is not None and d.refusal.params == {"yes": "accept", "no": "decline"}
    d = decide(view(ADMIN, votes=((OWNER, "approve"),)), vote(OWNER, "reject"), NOW)
    assert d.refusal is not None and d.refusal.params == {"action": "approve"}
    d = decide(view(ADMIN, State.APPLIED), vote(OWNER, "approve"), NOW)
    assert d.refusal is not None and d.refusal.params == {"state": "applied"}
    d = decide(view(ADMIN, State.APPROVED), vote(OWNER, "approve"), NOW)
    assert d.refusal is not None and d.refusal.params == {"state": "approved"}


def test_requirements_shape() -> None:
    by_owner = transfer_requirements(OWNER, OWNER, TARGET)
    by_admin = transfer_requirements(ADMIN, OWNER, TARGET)
    assert [(r.key, r.who, r.positive, r.negative, r.count) for r in by_owner] == [
        ("owner", frozenset({OWNER}), "approve", "reject", 1),
        ("target", frozenset({TARGET}), "accept", "decline", 1),
    ]
    assert by_owner[0].implied_by == frozenset({OWNER})
    assert by_admin[0].implied_by == frozenset()
    assert all(not r.implied_by for r in by_owner[1:] + by_admin)


# ---- check_transfer ----------------------------------------------------------------------

OWNER_P = Person(OWNER, "owner")
ADMIN_HOLDS = Person(ADMIN, "admin", holds_transfer=True)
ADMIN_PLAIN = Person("a2", "admin")
MEMBER = Person("m", "member", holds_transfer=True)   # a grant does not make a member eligible
TARGET_ADMIN = Person(TARGET, "admin")
TARGET_MEMBER = Person(TARGET, "member")
ACTIVE, INACTIVE = DirectoryEntry(True), DirectoryEntry(False)

# (id, initiator, target_id, target, directory, owner_id, candidates, open_request, code)
PREREQS = [
    ("ok: owner to admin", OWNER_P, TARGET, TARGET_ADMIN, ACTIVE, OWNER, "admins", None, None),
    ("ok: admin with grant", ADMIN_HOLDS, TARGET, TARGET_ADMIN, ACTIVE, OWNER, "admins", None,
     None),
    ("ok: member target, members policy", OWNER_P, TARGET, TARGET_MEMBER, ACTIVE, OWNER,
     "members", None, None),
    ("ok: unknown to Baton, members policy", OWNER_P, TARGET, None, ACTIVE, OWNER, "members",
     None, None),
    # each prerequisite, in order; each row also breaks every later prerequisite
    ("no_owner", MEMBER, OWNER, None, None, None, "admins", 7, "no_owner"),
    ("no_authority: member", MEMBER, OWNER, None, None, OWNER, "admins", 7, "no_authority"),
    ("no_authority: admin without grant", ADMIN_PLAIN, OWNER, None, None, OWNER, "admins", 7,
     "no_authority"),
    ("target_unknown", OWNER_P, OWNER, None, None, OWNER, "admins", 7, "target_unknown"),
    ("target_inactive", OWNER_P, OWNER, None, INACTIVE, OWNER, "admins", 7, "target_inactive"),
    ("target_is_owner", ADMIN_HOLDS, OWNER, None, ACTIVE, OWNER, "admins", 7, "target_is_owner"),
    ("target_not_eligible: member", OWNER_P, TARGET, TARGET_MEMBER, ACTIVE, OWNER, "admins", 7,
     "target_not_eligible"),
    ("target_not_eligible: not in Baton", OWNER_P, TARGET, None, ACTIVE, OWNER, "admins", 7,
     "target_not_eligible"),
    ("transfer_open", OWNER_P, TARGET, TARGET_ADMIN, ACTIVE, OWNER, "admins", 7, "transfer_open"),
    ("transfer_open: members policy", ADMIN_HOLDS, TARGET, TARGET_MEMBER, ACTIVE, OWNER,
     "members", 7, "transfer_open"),
]


@pytest.mark.parametrize(("initiator", "target_id", "target", "directory", "owner_id",
                          "candidates", "open_request", "code"),
                         [p[1:] for p in PREREQS], ids=[p[0] for p in PREREQS])
def test_check_transfer(initiator: Person, target_id: str, target: Person | None,
                        directory: DirectoryEntry | None, owner_id: str | None,
                        candidates: str, open_request: int | None, code: str | None) -> None:
    got = check_transfer(initiator, target_id, target, directory, owner_id,
                         candidates, open_request)  # type: ignore[arg-type]
    assert (got.code if got else None) == code


# ---- a stateful model of the machinery ---------------------------------------------------

PEOPLE = ("o", "a1", "a2", "m1", "m2")
ACTORS = (*PEOPLE, "x")                    # "x" is nobody in this company
ALL_ACTIONS = ("approve", "reject", "accept", "decline", "bogus")


@dataclass
class ModelRequest:
    id: int
    requester: str
    target: str
    owner_at_create: str
    expires_at: datetime
    state: State = State.PENDING
    votes: list[Vote] = field(default_factory=list)
    owner_at_apply: str | None = None


@dataclass
class Audit:
    request_id: int
    before: State | None
    after: State


class TransferMachine(RuleBasedStateMachine):
    """The corp, the requests, the audit log, driven through ``decide`` the way
    bot/approvals/engine.py drives it."""

    def __init__(self) -> None:
        super().__init__()
        self.levels = {"o": "owner", "a1": "admin", "a2": "admin", "m1": "member", "m2": "member"}
        self.holds = {"a1"}
        self.now = T0
        self.requests: list[ModelRequest] = []
        self.audit: list[Audit] = []
        self.state_changes = 0
        self.last: tuple[int, Event] | None = None
        self.last_changed = False

    # -- the model's store --
    def owner(self) -> str:
        owners = [p for p, lvl in self.levels.items() if lvl == "owner"]
        assert len(owners) == 1, owners
        return owners[0]

    def open_transfers(self) -> list[ModelRequest]:
        return [r for r in self.requests if r.state in OPEN]

    def insert(self, req: ModelRequest) -> bool:
        """The partial unique index: one open owner transfer per corp."""
        if self.open_transfers():
            return False
        self.requests.append(req)
        self._audit(req, None, State.PENDING)
        return True

    def _audit(self, req: ModelRequest, before: State | None, after: State) -> None:
        self.state_changes += 1
        self.audit.append(Audit(req.id, before, after))

    def view_of(self, req: ModelRequest) -> RequestView:
        # as OwnerTransfer.requirements: the owner is re-read now (the old one once applied)
        owner = req.owner_at_apply if req.state is State.APPLIED else self.owner()
        assert owner is not None
        return RequestView(req.id, OWNER_TRANSFER, req.state, req.requester, req.expires_at,
                           transfer_requirements(req.requester, owner, req.target),
                           tuple(req.votes))

    def transition(self, req: ModelRequest, d: Decision, event: Event) -> None:
        assert d.state in TRANSITIONS[req.state][event.kind], (req.state, event, d)
        assert req.state not in TERMINAL
        before, req.state = req.state, d.state
        self._audit(req, before, d.state)

    # -- the machinery (bot/approvals/engine.py) --
    def dispatch(self, req: ModelRequest, event: Event, fail: bool) -> Decision:
        before = req.state
        d = decide(self.view_of(req), event, self.now)
        self.last, self.last_changed = (req.id, event), d.changed
        if d.refusal is not None:
            assert d.state is before and not d.effects
            if before in TERMINAL:
                assert d.refusal.code == "decided"
            return d
        assert before not in TERMINAL
        if Effect.RECORD_VOTE in d.effects:
            assert event.kind is EventKind.VOTE
            req.votes.append(Vote(event.actor, event.action, self.now))
        else:
            assert event.kind is not EventKind.VOTE
        if d.state is not before:
            self.transition(req, d, event)
        if d.state is State.APPROVED:
            assert Effect.APPLY in d.effects
            self.apply(req, fail)
        return d

    def apply(self, req: ModelRequest, fail: bool) -> None:
        """apply_approved: in a savepoint, APPLIED with the owner swapped, or FAILED."""
        assert req.state is State.APPROVED
        if fail:
            d = decide(self.view_of(req), Event(EventKind.APPLY_FAILED), self.now)
            self.transition(req, d, Event(EventKind.APPLY_FAILED))
            return
        old = self.owner()
        votes = {(v.voter, v.action) for v in req.votes}
        assert (old, "approve") in votes or req.requester == old, (old, req)
        assert (req.target, "accept") in votes, req
        assert req.target != old
        self.levels[old] = "admin"
        self.levels[req.target] = "owner"
        req.owner_at_apply = old
        d = decide(self.view_of(req), Event(EventKind.APPLIED), self.now)
        self.transition(req, d, Event(EventKind.APPLIED))

    def pick(self, i: int) -> ModelRequest:
        return self.requests[i % len(self.requests)]

    # -- rules --
    @rule(initiator=st.sampled_from(PEOPLE), to=st.sampled_from(PEOPLE),
          candidates=st.sampled_from(["admins", "members"]), stale_read=st.booleans())
    def create(self, initiator: str, to: str, candidates: str, stale_read: bool) -> None:
        target = to                     # ("target" is reserved by @rule)
        open_ = self.open_transfers()
        level = self.levels[initiator]
        problem = check_transfer(
            Person(initiator, level, initiator in self.holds), target,
            Person(target, self.levels[target]), DirectoryEntry(True), self.owner(),
            candidates,  # type: ignore[arg-type]
            None if stale_read or not open_ else open_[0].id,
        )
        if open_ and not stale_read:
            assert problem is not None
        if problem is not None:
            return
        req = ModelRequest(len(self.requests) + 1, initiator, target, self.owner(),
                           self.now + TTL)
        inserted = self.insert(req)
        assert inserted or stale_read, "check_transfer let a second open transfer through"

    @precondition(lambda self: self.requests)
    @rule(i=st.integers(0, 50), actor=st.sampled_from(ACTORS),
          action=st.sampled_from(ALL_ACTIONS), fail=st.booleans())
    def vote(self, i: int, actor: str, action: str, fail: bool) -> None:
        self.dispatch(self.pick(i), Event(EventKind.VOTE, actor, action), fail)

    @precondition(lambda self: self.open_transfers())
    @rule(role=st.sampled_from(["owner", "owner", "target", "target", "requester"]),
          yes=st.integers(0, 9), fail=st.booleans())
    def decider_votes(self, role: str, yes: int, fail: bool) -> None:
        """A click by someone the open request concerns (random votes rarely are)."""
        req = self.open_transfers()[0]
        actor = {"owner": self.owner(), "target": req.target, "requester": req.requester}[role]
        pair = ("accept", "decline") if role == "target" else ("approve", "reject")
        self.dispatch(req, Event(EventKind.VOTE, actor, pair[0] if yes < 8 else pair[1]), fail)

    @precondition(lambda self: self.requests)
    @rule(i=st.integers(0, 50), actor=st.sampled_from(PEOPLE))
    def cancel(self, i: int, actor: str) -> None:
        req = self.pick(i)
        if actor not in (req.requester, self.owner()):
            return        # cancel_not_allowed, before decide
        self.dispatch(req, Event(EventKind.CANCEL, actor), False)

    @rule(hours=st.integers(0, 72))
    def advance(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @precondition(lambda self: self.requests)
    @rule(i=st.integers(0, 50))
    def expire(self, i: int) -> None:
        """Due work firing (early, on time, or long after the request closed)."""
        req = self.pick(i)
        was = req.state
        d = self.dispatch(req, Event(EventKind.EXPIRE), False)
        if was is State.PENDING:
            assert d.changed is (self.now >= req.expires_at)

    @precondition(lambda self: self.requests)
    @rule(i=st.integers(0, 50), ok=st.booleans())
    def apply_outcome(self, i: int, ok: bool) -> None:
        """An APPLIED / APPLY_FAILED event for a request: only APPROVED may take it."""
        req = self.pick(i)
        was = req.state
        event = Event(EventKind.APPLIED if ok else EventKind.APPLY_FAILED)
        d = decide(self.view_of(req), event, self.now)
        if was is State.APPROVED:
            assert d.changed
            self.apply(req, fail=not ok)
        else:
            assert d.refusal is not None
            assert d.refusal.code == ("decided" if was in TERMINAL else "not_now")

    @precondition(lambda self: self.last is not None)
    @rule(fail=st.booleans())
    def redeliver(self, fail: bool) -> None:
        assert self.last is not None
        rid, event = self.last
        was_changed = self.last_changed
        req = next(r for r in self.requests if r.id == rid)
        before = (req.state, len(req.votes), len(self.audit))
        d = self.dispatch(req, event, fail)
        if was_changed:
            assert d.refusal is not None, ("a redelivered event changed things again", event)
            assert before == (req.state, len(req.votes), len(self.audit))

    # -- invariants --
    @invariant()
    def exactly_one_owner(self) -> None:
        assert list(self.levels.values()).count("owner") == 1

    @invariant()
    def at_most_one_open(self) -> None:
        assert len(self.open_transfers()) <= 1

    @invariant()
    def approved_is_transient(self) -> None:
        # apply runs in the same transaction as the vote that approved
        assert all(r.state is not State.APPROVED for r in self.requests)

    @invariant()
    def audit_one_per_change(self) -> None:
        assert len(self.audit) == self.state_changes
        for req in self.requests:
            chain = [a for a in self.audit if a.request_id == req.id]
            assert chain and chain[0].before is None and chain[0].after is State.PENDING
            for prev, nxt in pairwise(chain):
                assert nxt.before is prev.after and nxt.before is not nxt.after
                assert nxt.after in {d for targets in TRANSITIONS[prev.after].values()
                                     for d in targets}
            assert chain[-1].after is req.state
            assert all(a.before not in TERMINAL for a in chain[1:])

    @invariant()
    def applied_had_consent(self) -> None:
        for req in self.requests:
            if req.state is State.APPLIED:
                old = req.owner_at_apply
                votes = {(v.voter, v.action) for v in req.votes}
                assert old is not None and old == req.owner_at_create
                assert (old, "approve") in votes or req.requester == old
                assert (req.target, "accept") in votes
                assert self.levels[req.target] == "owner" or any(
                    r.id > req.id and r.state is State.APPLIED for r in self.requests)

    @invariant()
    def votes_are_deciders_once(self) -> None:
        for req in self.requests:
            voters = [v.voter for v in req.votes]
            assert len(voters) == len(set(voters))
            assert req.requester not in voters or req.requester == req.target
            assert set(voters) <= {req.owner_at_create, req.target}


TransferMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestTransferMachine = TransferMachine.TestCase


@pytest.mark.parametrize(("n", "suffix"), [(0, "dma"), (1, "dmb"), (25, "dmz"), (26, "dmba"),
                                            (26 * 26 - 1, "dmzz")])
def test_copy_suffixes_are_letters_the_track_parser_reads(n: int, suffix: str) -> None:
    from bot.approvals.engine import copy_suffix, request_ref
    from bot.core.cardref import CardRef

    assert copy_suffix(n) == suffix
    assert request_ref(f"baton-corp-R12-{suffix}", "corp") == CardRef.request("corp", 12, suffix)
