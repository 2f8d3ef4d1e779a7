"""Request cards against golden files: every state, both languages.

``UPDATE_GOLDEN=1 python -m pytest tests/unit/test_cards_golden.py`` rewrites the files in
``tests/unit/golden/``; review the diff before committing it.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.approvals.cards import CardView, render_request_card
from bot.core.domain.requests import TERMINAL, State
from bot.core.domain.transfer import OWNER_TRANSFER
from bot.core.lang import Lang

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
LANGS: tuple[Lang, ...] = ("zh", "en")
TZ = "Asia/Shanghai"

REQUESTER = "赵管理 (a1)"
OWNER = "Owner Wang (o)"
TARGET = "Li Si (t)"
HOSTILE = "[click](dingtalk://x) **bold**\n<b>fake</b>"
REASON = "交接：下月起由 Li Si 负责"
EXPIRES = datetime(2024, 5, 3, 1, 0, tzinfo=UTC)           # 09:00 in Shanghai
DECIDED = datetime(2024, 5, 1, 16, 30, tzinfo=UTC)         # 05-02 00:30 in Shanghai

# state -> (reason, progress, agreed, waiting_for, decided_by, decided_at)
CASES: dict[State, tuple[str, tuple[int, int], tuple[str, ...], tuple[str, ...], str,
                         datetime | None]] = {
    State.PENDING: (HOSTILE, (1, 2), (OWNER,), (TARGET,), "", None),
    State.APPROVED: (REASON, (2, 2), (OWNER, TARGET), (), "", None),
    State.APPLIED: (REASON, (2, 2), (OWNER, TARGET), (), TARGET, DECIDED),
    State.REJECTED: (REASON, (0, 2), (), (), OWNER, DECIDED),
    State.EXPIRED: (REASON, (1, 2), (OWNER,), (TARGET,), "", DECIDED),   # by Baton itself
    State.CANCELLED: ("", (0, 2), (), (OWNER, TARGET), REQUESTER, DECIDED),
    State.FAILED: (REASON, (2, 2), (OWNER, TARGET), (), TARGET, DECIDED),
}


def card_view(state: State, lang: Lang) -> CardView:
    reason, progress, agreed, waiting, decided_by, decided_at = CASES[state]
    return CardView(
        request_id="R-42", kind=OWNER_TRANSFER, state=state, lang=lang, tz=TZ,
        requester=REQUESTER, target=TARGET, reason=reason, expires_at=EXPIRES,
        progress=progress, agreed=agreed, waiting_for=waiting, decided_by=decided_by,
        decided_at=decided_at,
    )


def dump(card: dict[str, str]) -> str:
    return json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


PARAMS = [(s, lang) for s in State for lang in LANGS]


def test_every_state_has_a_case() -> None:
    assert set(CASES) == set(State)


@pytest.mark.parametrize(("state", "lang"), PARAMS, ids=[f"{s.value}-{lang}" for s, lang in PARAMS])
def test_card_golden(state: State, lang: Lang) -> None:
    card = render_request_card(card_view(state, lang))
    path = GOLDEN / f"card_{state.value}_{lang}.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(dump(card), encoding="utf-8")
    assert path.exists(), f"{path.name} is missing; run with UPDATE_GOLDEN=1"
    assert dump(card) == path.read_text(encoding="utf-8"), \
        f"{path.name} differs; if the change is intended, run with UPDATE_GOLDEN=1"


@pytest.mark.parametrize(("state", "lang"), PARAMS, ids=[f"{s.value}-{lang}" for s, lang in PARAMS])
def test_card_shape(state: State, lang: Lang) -> None:
    card = render_request_card(card_view(state, lang))
    assert set(card) == {"title", "markdown", "status", "status_text", "request_id", "progress",
                         "expires", "decided"}
    assert all(isinstance(v, str) for v in card.values())
    assert card["status"] == state.value
    assert card["request_id"] == "R-42" and "R-42" in card["title"]
    for key, value in card.items():
        assert not re.search(r"\{\w*\}", value), f"unfilled placeholder in {key}: {value!r}"
    assert "09:00" in card["expires"] and "2024-05-03" in card["expires"]
    if state in TERMINAL:
        who = CASES[state][4] or "Baton"
        assert who in card["decided"] and "05-02 00:30" in card["decided"]
        assert card["decided"] in card["markdown"]
    else:
        assert card["decided"] == ""
    waiting = "等待：" if lang == "zh" else "Waiting for: "
    if state is State.PENDING:
        assert f"{waiting}{TARGET}" in card["markdown"]
    else:
        assert waiting not in card["markdown"]
    assert card["status_text"] in card["markdown"]


@pytest.mark.parametrize("lang", LANGS)
def test_hostile_reason_is_inert(lang: Lang) -> None:
    md = render_request_card(card_view(State.PENDING, lang))["markdown"]
    reason_line = next(p for p in md.split("\n\n") if "click" in p)
    assert "\n" not in reason_line
    for bad in ("[", "]", "](", "**bold", "<b>", "</b>", "dingtalk://"):
        assert bad not in reason_line, bad
    assert "fake" in reason_line and "bold" in reason_line


def test_braces_in_names_stay_literal() -> None:
    view = card_view(State.PENDING, "en")
    odd = CardView(**{**view.__dict__, "requester": "{target} (u1)", "reason": "{reason} {0}"})
    md = render_request_card(odd)["markdown"]
    assert "{target} (u1)" in md and "{reason} {0}" in md


def test_no_stale_golden_files() -> None:
    if UPDATE:
        pytest.skip("rewriting")
    expected = {f"card_{s.value}_{lang}.json" for s, lang in PARAMS}
    assert {p.name for p in GOLDEN.glob("card_*.json")} == expected


def test_expiry_is_shown_in_the_policy_timezone() -> None:
    view = card_view(State.PENDING, "en")
    late = CardView(**{**view.__dict__, "expires_at": EXPIRES + timedelta(hours=15)})
    assert render_request_card(late)["expires"] == "open until 2024-05-04 00:00"
