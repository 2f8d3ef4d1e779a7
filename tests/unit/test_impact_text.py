"""How a template change's impact is told: members named (the first 20, then "and N
more"), escaped, and in the past tense once applied."""

from __future__ import annotations

from bot.core.domain.permissions import Catalog, Impact
from bot.core.escape import person
from handlers.templates import SHOW_HOLDERS, impact_text

CAT = Catalog({"crm.export": ("导出", "Export"), "crm.view": ("查看", "View")}, {})
USERS = tuple(f"u{i:02}" for i in range(25))
NAMES = {u: person(f"[x](javascript:alert({u}))", u) for u in USERS}


def test_the_first_20_members_are_named_then_and_n_more() -> None:
    text = impact_text(Impact({"crm.export": USERS}, {}), CAT, "en", 25, NAMES)
    assert text.startswith("- 25 will gain crm.export Export: ")
    assert all(f"({u})" in text for u in USERS[:SHOW_HOLDERS])
    assert "(u20)" not in text and text.endswith("…and 5 more")
    assert "](" not in text and "javascript:" not in text      # names stay escaped


def test_applied_impact_is_in_the_past_tense_in_both_languages() -> None:
    imp = Impact({"crm.export": USERS[:2]}, {"crm.view": USERS[:1]})
    en = impact_text(imp, CAT, "en", 2, NAMES, done=True)
    zh = impact_text(imp, CAT, "zh", 2, NAMES, done=True)
    assert "2 gained crm.export" in en and "1 lost crm.view" in en and "will" not in en
    assert "2 人新增了 crm.export" in zh and "1 人失去了 crm.view" in zh and "将" not in zh
    assert "did not change" in impact_text(Impact({}, {}), CAT, "en", 3, done=True)
    assert "没有变化" in impact_text(Impact({}, {}), CAT, "zh", 3, done=True)
