"""The message catalogue: every user-visible string outside the command grammar, per language,
built explicitly from the list of families below.

(The grammar's own usage lines and parse errors live in ``bot/core/commands/usage.py``.)
A family is a module of this package holding one plain constant per language (``ZH``, ``EN``).
Nothing adds to the catalogue at import: a new family is one more line in ``FAMILIES``, and
``build`` refuses a key that two families define or that a language lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from bot.core.escape import Md, param
from bot.core.lang import LANGS, Lang
from bot.texts import (
    access,
    audit,
    bulk,
    drift,
    general,
    paging,
    permissions,
    reminders,
    requests,
    review,
    rolesync,
    sandbox,
    system,
    transfer,
    webhooks,
)


@dataclass(frozen=True, slots=True)
class Family:
    """One family of messages: its name (for errors) and its texts per language."""

    name: str
    texts: Mapping[Lang, Mapping[str, str]]


class CatalogError(ValueError):
    """A catalogue that cannot be built: a key defined twice, or missing in a language."""


FAMILIES: tuple[Family, ...] = (
    Family("general", {"zh": general.ZH, "en": general.EN}),
    Family("requests", {"zh": requests.ZH, "en": requests.EN}),
    Family("transfer", {"zh": transfer.ZH, "en": transfer.EN}),
    Family("permissions", {"zh": permissions.ZH, "en": permissions.EN}),
    Family("system", {"zh": system.ZH, "en": system.EN}),
    Family("audit", {"zh": audit.ZH, "en": audit.EN}),
    Family("bulk", {"zh": bulk.ZH, "en": bulk.EN}),
    Family("rolesync", {"zh": rolesync.ZH, "en": rolesync.EN}),
    Family("reminders", {"zh": reminders.ZH, "en": reminders.EN}),
    Family("review", {"zh": review.ZH, "en": review.EN}),
    Family("drift", {"zh": drift.ZH, "en": drift.EN}),
    Family("webhooks", {"zh": webhooks.ZH, "en": webhooks.EN}),
    Family("paging", {"zh": paging.ZH, "en": paging.EN}),
    Family("access", {"zh": access.ZH, "en": access.EN}),
)
# The sandbox's terminal lines: plain text, never markdown, so a catalogue of their own.
SANDBOX_FAMILIES: tuple[Family, ...] = (
    Family("sandbox", {"zh": sandbox.ZH, "en": sandbox.EN}),
)


def build(families: Iterable[Family]) -> Mapping[str, Mapping[Lang, str]]:
    """key -> language -> text, read-only. Raises ``CatalogError`` when a family lacks a
    language or a key in one language, or defines a key another family already has."""
    out: dict[str, Mapping[Lang, str]] = {}
    owner: dict[str, str] = {}
    for family in families:
        if set(family.texts) != set(LANGS):
            raise CatalogError(f"family {family.name} has the languages {sorted(family.texts)}, "
                               f"not {sorted(LANGS)}")
        keys = dict.fromkeys(k for lang in LANGS for k in family.texts[lang])
        for lang in LANGS:
            missing = [k for k in keys if k not in family.texts[lang]]
            if missing:
                raise CatalogError(f"family {family.name} lacks {missing} in {lang}")
        twice = [f"{k} ({owner[k]})" for k in keys if k in owner]
        if twice:
            raise CatalogError(f"family {family.name} defines keys another family has: {twice}")
        for key in keys:
            owner[key] = family.name
            out[key] = MappingProxyType({lang: family.texts[lang][key] for lang in LANGS})
    return MappingProxyType(out)


MESSAGES = build(FAMILIES)
SANDBOX = build(SANDBOX_FAMILIES)


def t(key: str, lang: Lang, **params: Any) -> Md:
    """The message ``key`` in ``lang``. Every parameter is escaped (``bot.core.escape.literal``)
    unless it is ``Md`` (already-rendered markdown: another ``t()``, ``literal()``,
    ``person()``, ``joined()``) or a number."""
    text = MESSAGES[key][lang]
    return Md(text.format(**{k: param(v) for k, v in params.items()}) if params else text)


def sandbox_line(key: str, lang: Lang, **params: Any) -> str:
    """A line the sandbox prints about itself: plain ``str.format``, nothing escaped (it goes
    to a terminal, not into markdown)."""
    return SANDBOX[key][lang].format(**params)
