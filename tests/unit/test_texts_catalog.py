"""The message catalogue is built explicitly from its families: every family module of
``bot/texts`` is listed, no key is defined by two families, every key exists in zh and en,
and nothing adds to the catalogue at import."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, cast

import pytest

import bot.texts
from bot.core.lang import LANGS
from bot.texts.catalog import (
    FAMILIES,
    MESSAGES,
    SANDBOX,
    SANDBOX_FAMILIES,
    CatalogError,
    Family,
    build,
    sandbox_line,
    t,
)


def test_the_catalogue_is_built_from_the_explicit_list() -> None:
    assert build(FAMILIES) == MESSAGES
    assert build(SANDBOX_FAMILIES) == SANDBOX
    assert len(MESSAGES) == sum(len(f.texts["zh"]) for f in FAMILIES)


def test_every_family_module_is_listed() -> None:
    listed = {id(f.texts[lang]) for f in (*FAMILIES, *SANDBOX_FAMILIES) for lang in LANGS}
    modules = [m.name for m in pkgutil.iter_modules(bot.texts.__path__) if m.name != "catalog"]
    assert modules
    for name in modules:
        module = importlib.import_module(f"bot.texts.{name}")
        assert id(module.ZH) in listed and id(module.EN) in listed, name


@pytest.mark.parametrize("families", [FAMILIES, SANDBOX_FAMILIES], ids=["messages", "sandbox"])
def test_no_key_is_defined_by_two_families(families: tuple[Family, ...]) -> None:
    seen: dict[str, str] = {}
    for family in families:
        for key in family.texts["zh"]:
            assert key not in seen, (key, seen.get(key), family.name)
            seen[key] = family.name


@pytest.mark.parametrize("catalogue", [MESSAGES, SANDBOX], ids=["messages", "sandbox"])
def test_every_key_exists_in_zh_and_en(catalogue: Any) -> None:
    for family in (*FAMILIES, *SANDBOX_FAMILIES):
        assert set(family.texts) == set(LANGS), family.name
        assert set(family.texts["zh"]) == set(family.texts["en"]), family.name
    for key, texts in catalogue.items():
        assert set(texts) == {"zh", "en"}, key
        assert all(texts[lang] for lang in LANGS), key


def test_build_refuses_a_key_two_families_define() -> None:
    a = Family("a", {"zh": {"k": "甲"}, "en": {"k": "a"}})
    b = Family("b", {"zh": {"j": "乙", "k": "乙"}, "en": {"j": "b", "k": "b"}})
    with pytest.raises(CatalogError, match=r"family b defines keys another family has: \['k \(a\)'\]"):
        build((a, b))


def test_build_refuses_a_key_missing_in_a_language() -> None:
    with pytest.raises(CatalogError, match=r"family a lacks \['j'\] in en"):
        build((Family("a", {"zh": {"k": "甲", "j": "乙"}, "en": {"k": "a"}}),))
    with pytest.raises(CatalogError, match="family a lacks"):
        build((Family("a", {"zh": {"k": "甲"}, "en": {"k": "a", "j": "b"}}),))
    with pytest.raises(CatalogError, match="family a has the languages"):
        build((Family("a", {"zh": {"k": "甲"}}),))


def test_the_catalogue_cannot_be_added_to() -> None:
    with pytest.raises(TypeError):
        cast(Any, MESSAGES)["new_key"] = {"zh": "新", "en": "new"}
    with pytest.raises(TypeError):
        cast(Any, MESSAGES["list_sep"])["en"] = "; "
    assert not hasattr(MESSAGES, "update")


def test_importing_the_handlers_and_the_sandbox_adds_nothing() -> None:
    for name in ("handlers.audit", "handlers.bulk", "handlers.reminders", "handlers.review",
                 "bot.cli.sandbox", "bot.app"):
        importlib.import_module(name)
    assert build(FAMILIES) == MESSAGES
    assert build(SANDBOX_FAMILIES) == SANDBOX


def test_sandbox_lines_are_plain_text_and_replies_are_escaped() -> None:
    """The sandbox prints to a terminal: its lines are not markdown, so nothing is escaped."""
    assert sandbox_line("file_saved", "en", name="a_b*.xlsx", path="/tmp/x") == \
        "file a_b*.xlsx, saved to /tmp/x"
    assert t("cancel_done", "en", id="a_b*") != "a_b* is cancelled."
