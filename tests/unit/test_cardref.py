"""The card reference: a typed, versioned value packed into a card's outTrackId."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.cardref import (
    MAX_COPY,
    MAX_CORP,
    MAX_ID,
    MAX_LEN,
    CardKind,
    CardRef,
    CardRefError,
    index_of,
    kind_of,
    letters,
)

corps = st.text(alphabet="ABCXYZabcxyz0189_.-R", min_size=1, max_size=MAX_CORP)
ids = st.integers(min_value=0, max_value=MAX_ID)
request_copies = st.one_of(
    st.just(""), st.just("group"), st.just("console"),
    st.integers(0, 10**6).map(lambda n: "dm" + letters(n)),
    st.text(alphabet="abcdrvz", min_size=1, max_size=MAX_COPY).filter(lambda c: not c.startswith("rv")))
requests = st.builds(CardRef.request, corps, ids, request_copies)
reviews = st.builds(CardRef.review, corps, ids, st.integers(0, 26**MAX_COPY - 1))
refs = st.one_of(requests, reviews)


@given(refs)
def test_unpack_reads_back_what_pack_wrote(ref: CardRef) -> None:
    assert CardRef.unpack(ref.pack()) == ref


@given(refs)
def test_a_packed_ref_never_exceeds_the_outtrackid_limit(ref: CardRef) -> None:
    assert len(ref.pack()) <= MAX_LEN


@given(st.integers(0, 26**MAX_COPY - 1))
def test_letters_and_index_are_inverse(n: int) -> None:
    assert index_of(letters(n)) == n


@pytest.mark.parametrize(("raw", "ref"), [
    # every layout the cards in the field carry (version 1)
    ("baton-dingsandboxcorp-R1", CardRef(CardKind.REQUEST, "dingsandboxcorp", 1)),
    ("baton-corp-R12-group", CardRef(CardKind.REQUEST, "corp", 12, "group")),
    ("baton-corp-R12-dmba", CardRef(CardKind.REQUEST, "corp", 12, "dmba")),
    ("baton-corp-R3-console", CardRef(CardKind.REQUEST, "corp", 3, "console")),
    ("baton-dingsandboxcorp-R1-rva", CardRef(CardKind.REVIEW, "dingsandboxcorp", 1, "a")),
    ("baton-corp-R12-rvba", CardRef(CardKind.REVIEW, "corp", 12, "ba")),
    ("baton-a-R1-R2", CardRef(CardKind.REQUEST, "a-R1", 2)),
])
def test_the_cards_already_sent_unpack(raw: str, ref: CardRef) -> None:
    assert CardRef.unpack(raw) == ref
    assert ref.pack() == raw
    assert ref.version == 1


def test_review_refs_name_their_reviewer() -> None:
    ref = CardRef.review("corp", 12, 26)
    assert ref.pack() == "baton-corp-R12-rvba" and ref.reviewer == 26
    assert ref.base == CardRef.request("corp", 12)
    with pytest.raises(CardRefError):
        _ = CardRef.request("corp", 12).reviewer


@pytest.mark.parametrize("raw", [
    "", "baton-", "baton-corp", "baton-corp-R", "baton-corp-Rx", "baton--R1", "baton-corp-R1-",
    "baton-corp-R1-GROUP", "baton-corp-R1-rv", "baton-corp-R1-rvab", "xbaton-corp-R1",
    "baton-corp-R1\n", "baton-corp-R1-dm-a", "baton-co rp-R1", "baton-corp-R1234567890123456789",
    "baton-" + "c" * (MAX_CORP + 1) + "-R1", "baton-corp-R1-" + "a" * (MAX_COPY + 1),
    "x" * (MAX_LEN + 1), "card-from-another-bot", "baton-公司-R1",
])
def test_garbage_is_refused_with_a_clear_error(raw: str) -> None:
    with pytest.raises(CardRefError, match="card reference"):
        CardRef.unpack(raw)
    assert kind_of(raw) is None


@pytest.mark.parametrize("make", [
    lambda: CardRef.request("corp", 1, "rvx"),          # would read back as a review card
    lambda: CardRef.request("corp", -1),
    lambda: CardRef.request("corp", MAX_ID + 1),
    lambda: CardRef.request("co rp", 1),
    lambda: CardRef.request("c" * (MAX_CORP + 1), 1),
    lambda: CardRef.request("corp", 1, "Group"),
    lambda: CardRef(CardKind.REVIEW, "corp", 1, ""),
    lambda: CardRef(CardKind.REQUEST, "corp", 1, version=2),
])
def test_a_ref_that_could_not_round_trip_cannot_be_made(make: Callable[[], CardRef]) -> None:
    with pytest.raises(CardRefError):
        make()


def test_kind_of_picks_the_handler() -> None:
    assert kind_of("baton-corp-R1") is CardKind.REQUEST
    assert kind_of("baton-corp-R1-rvb") is CardKind.REVIEW
