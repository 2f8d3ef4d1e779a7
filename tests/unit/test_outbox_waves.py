"""bot.delivery.outbox.waves and _counts, pure: one conversation's rows (in id order) split into waves
sent one after another. Consecutive plain replies to different people share a wave; a second
reply to the same person starts a new one; anything else (a card, an alert, an export, a
reply to nobody in particular) is a wave of its own. And which rows count against a
conversation's budget."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.delivery.outbox import _counts, fair_order, waves
from storage.models import OutboxMessage

KEY = "group:cidWAVES"


def reply(i: int, user: str) -> OutboxMessage:
    """A plain reply to ``user``, as bot.dispatch.context.Context.reply writes it."""
    return OutboxMessage(id=i, kind="reply", conversation_key=KEY, payload={
        "conversation_id": "cidWAVES", "is_group": True, "user_id": user, "format": "text",
        "title": "Baton", "text": f"reply {i}", "at": [user]})


def alert(i: int, user: str = "boss") -> OutboxMessage:
    """An alert reply (bot.delivery.alerts): a reply with a user, marked for merging."""
    row = reply(i, user)
    row.payload = {**row.payload, "merge": "alert", "lang": "en"}
    return row


def card(i: int, op: str = "create") -> OutboxMessage:
    return OutboxMessage(id=i, kind="card", conversation_key=KEY,
                         payload={"op": op, "out_track_id": f"t{i}", "body": {}})


def export(i: int) -> OutboxMessage:
    return OutboxMessage(id=i, kind="export", conversation_key=KEY,
                         payload={"file": f"e{i}.xlsx"})


def to_nobody(i: int, *, key_present: bool = True) -> OutboxMessage:
    """A reply without a person: user_id empty (Reply's default) or missing altogether."""
    payload: dict[str, Any] = {"conversation_id": "cidWAVES", "is_group": True,
                               "text": f"reply {i}"}
    if key_present:
        payload["user_id"] = ""
    return OutboxMessage(id=i, kind="reply", conversation_key=KEY, payload=payload)


def ids(ws: Sequence[Sequence[OutboxMessage]]) -> list[list[int]]:
    return [[r.id for r in w] for w in ws]


CASES: list[tuple[str, list[OutboxMessage], list[list[int]]]] = [
    ("nothing", [], []),
    ("one reply", [reply(1, "a")], [[1]]),
    ("replies to different people share a wave",
     [reply(1, "a"), reply(2, "b"), reply(3, "c")], [[1, 2, 3]]),
    ("a second reply to the same person starts a new wave",
     [reply(1, "a"), reply(2, "a")], [[1], [2]]),
    ("a repeated person closes the wave; the next ones join the new one",
     [reply(1, "a"), reply(2, "b"), reply(3, "a"), reply(4, "c")], [[1, 2], [3, 4]]),
    ("the new wave only holds the repeated person so far",
     [reply(1, "a"), reply(2, "b"), reply(3, "c"), reply(4, "b"), reply(5, "a")],
     [[1, 2, 3], [4, 5]]),
    ("alternating people",
     [reply(1, "a"), reply(2, "b"), reply(3, "a"), reply(4, "b")], [[1, 2], [3, 4]]),
    ("a card is a wave of its own",
     [reply(1, "a"), card(2), reply(3, "b")], [[1], [2], [3]]),
    ("a card update too", [reply(1, "a"), card(2, "update"), reply(3, "b")], [[1], [2], [3]]),
    ("a card first, then replies", [card(1), reply(2, "a"), reply(3, "b")], [[1], [2, 3]]),
    ("cards in a row", [card(1), card(2, "update"), card(3)], [[1], [2], [3]]),
    ("an alert is a wave of its own even to a new person",
     [reply(1, "a"), alert(2, "b"), reply(3, "c")], [[1], [2], [3]]),
    ("alerts in a row", [alert(1), alert(2, "x")], [[1], [2]]),
    ("an export is a wave of its own",
     [reply(1, "a"), reply(2, "b"), export(3), reply(4, "a"), reply(5, "b")],
     [[1, 2], [3], [4, 5]]),
    ("a reply with an empty user_id is a barrier",
     [reply(1, "a"), to_nobody(2), reply(3, "b")], [[1], [2], [3]]),
    ("a reply without a user_id is a barrier",
     [reply(1, "a"), to_nobody(2, key_present=False), reply(3, "b")], [[1], [2], [3]]),
    ("replies to nobody never share a wave", [to_nobody(1), to_nobody(2)], [[1], [2]]),
    ("a barrier resets who is in the wave",
     [reply(1, "a"), reply(2, "b"), card(3), reply(4, "b"), reply(5, "a"), reply(6, "c")],
     [[1, 2], [3], [4, 5, 6]]),
]


@pytest.mark.parametrize(("rows", "expect"), [pytest.param(r, e, id=name) for name, r, e in CASES])
def test_wave_table(rows: list[OutboxMessage], expect: list[list[int]]) -> None:
    got = waves(rows)
    assert ids(got) == expect
    assert all(x is y for x, y in zip([r for w in got for r in w], rows, strict=True))


def test_waves_do_not_change_the_rows() -> None:
    rows = [reply(1, "a"), alert(2), card(3), reply(4, "a")]
    before = [(r.id, r.kind, dict(r.payload)) for r in rows]
    waves(rows)
    assert [(r.id, r.kind, dict(r.payload)) for r in rows] == before


# ---- properties ----------------------------------------------------------------------------

USERS = ["a", "b", "c", "d"]
_plain = st.sampled_from(USERS).map(lambda u: ("reply", u))
_make = st.one_of(
    _plain,
    st.sampled_from(USERS).map(lambda u: ("alert", u)),
    st.sampled_from(["create", "update"]).map(lambda op: ("card", op)),
    st.just(("export", "")),
    st.booleans().map(lambda present: ("nobody", "key" if present else "")),
)


def build(spec: list[tuple[str, str]]) -> list[OutboxMessage]:
    out: list[OutboxMessage] = []
    for i, (what, arg) in enumerate(spec, start=1):
        if what == "reply":
            out.append(reply(i, arg))
        elif what == "alert":
            out.append(alert(i, arg))
        elif what == "card":
            out.append(card(i, arg))
        elif what == "export":
            out.append(export(i))
        else:
            out.append(to_nobody(i, key_present=bool(arg)))
    return out


def plain_user(r: OutboxMessage) -> str | None:
    """The person of a plain reply (one that may share a wave); None for a barrier."""
    if r.kind == "reply" and "merge" not in r.payload and r.payload.get("user_id"):
        return str(r.payload["user_id"])
    return None


# Runs of plain replies (where waves are interesting) and mixes with every kind of barrier.
rows_st = st.one_of(st.lists(_plain, max_size=16), st.lists(_make, max_size=30)).map(build)


@given(rows_st)
def test_waves_concatenate_to_the_input_in_order(rows: list[OutboxMessage]) -> None:
    got = waves(rows)
    assert all(w for w in got), "an empty wave"
    flat = [r for w in got for r in w]
    assert len(flat) == len(rows)
    assert all(x is y for x, y in zip(flat, rows, strict=True))


@given(rows_st)
def test_a_wave_holds_distinct_people_and_only_plain_replies(rows: list[OutboxMessage]) -> None:
    for w in waves(rows):
        if len(w) > 1:
            people = [plain_user(r) for r in w]
            assert None not in people, ids([w])
            assert len(set(people)) == len(people), ids([w])


@given(rows_st)
def test_barriers_are_alone(rows: list[OutboxMessage]) -> None:
    for w in waves(rows):
        if any(plain_user(r) is None for r in w):
            assert len(w) == 1, ids([w])


@given(rows_st)
def test_waves_are_maximal(rows: list[OutboxMessage]) -> None:
    """A wave ends only where it must: it is a barrier, the next row is a barrier, or the
    next row's person is already in it."""
    got = waves(rows)
    for w, nxt in pairwise(got):
        people = [plain_user(r) for r in w]
        if None in people:
            continue
        first = plain_user(nxt[0])
        assert first is None or first in people, (ids([w]), ids([nxt]))


# ---- fair_order (a short budget shared across the people answered) ------------------------

FAIR: list[tuple[str, list[OutboxMessage], list[int]]] = [
    ("nothing", [], []),
    ("one person keeps their order", [reply(1, "a"), reply(2, "a")], [1, 2]),
    ("a backlog does not go ahead of one reply to someone else",
     [reply(1, "f"), reply(2, "f"), reply(3, "f"), reply(4, "o")], [4, 1, 2, 3]),
    ("round robin, the lightest first",
     [reply(1, "f"), reply(2, "f"), reply(3, "f"), reply(4, "g"), reply(5, "g"), reply(6, "o")],
     [6, 4, 1, 5, 2, 3]),
    ("ties keep who came first", [reply(1, "a"), reply(2, "b"), reply(3, "a"), reply(4, "b")],
     [1, 2, 3, 4]),
    ("a card keeps its place; each run is shared on its own",
     [reply(1, "f"), reply(2, "o"), card(3), reply(4, "f"), reply(5, "f"), reply(6, "o")],
     [1, 2, 3, 6, 4, 5]),
    ("alerts, exports and replies to nobody keep their place",
     [reply(1, "f"), reply(2, "f"), alert(3), reply(4, "o"), export(5), to_nobody(6)],
     [1, 2, 3, 4, 5, 6]),
]


@pytest.mark.parametrize(("rows", "expect"), [pytest.param(r, e, id=n) for n, r, e in FAIR])
def test_fair_order_table(rows: list[OutboxMessage], expect: list[int]) -> None:
    assert [r.id for r in fair_order(rows)] == expect


@given(rows_st)
def test_fair_order_keeps_every_row_each_persons_order_and_the_barriers(
        rows: list[OutboxMessage]) -> None:
    got = fair_order(rows)
    assert sorted(r.id for r in got) == [r.id for r in rows]
    for who in {plain_user(r) for r in rows} - {None}:
        mine = [r.id for r in got if plain_user(r) == who]
        assert mine == sorted(mine)
    # A barrier sits where it was, with the same rows before it.
    for i, r in enumerate(rows):
        if plain_user(r) is None:
            assert got[i] is r
            assert {x.id for x in got[:i]} == {x.id for x in rows[:i]}


@given(st.lists(st.sampled_from(USERS), min_size=1, max_size=30))
def test_fair_order_gives_every_person_a_first_slot(people: list[str]) -> None:
    """Whoever is being answered gets one of the first n slots (n people), however long
    another person's backlog is."""
    rows = [reply(i, u) for i, u in enumerate(people, start=1)]
    first = fair_order(rows)[: len(set(people))]
    assert {plain_user(r) for r in first} == set(people)


# ---- _counts -------------------------------------------------------------------------------

@pytest.mark.parametrize(("row", "counts"), [
    pytest.param(reply(1, "a"), True, id="reply"),
    pytest.param(to_nobody(1), True, id="reply to nobody"),
    pytest.param(alert(1), True, id="alert reply"),
    pytest.param(card(1, "create"), True, id="card create"),
    pytest.param(card(1, "update"), False, id="card update"),
    pytest.param(export(1), True, id="export"),
    pytest.param(OutboxMessage(id=1, kind="webhook", conversation_key=KEY, payload={}), False,
                 id="unknown kind"),
    pytest.param(OutboxMessage(id=1, kind="", conversation_key=KEY, payload={"op": "create"}),
                 False, id="empty kind"),
    pytest.param(OutboxMessage(id=1, kind="reply", conversation_key=KEY,
                               payload={"op": "update", "user_id": "a"}), True,
                 id="only a card's update op is free"),
])
def test_counts(row: OutboxMessage, counts: bool) -> None:
    assert _counts(row) is counts
