"""The command words: every English word and Chinese alias, and the group words.

The first alias of each command in each language is its primary form (shown in help,
usage lines and suggestions). Chinese aliases written with a space are also accepted
without it ("模板 创建" and "模板创建").
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeAlias

from ..lang import Lang
from .model import COMMAND_NAMES

_EN: dict[str, tuple[str, ...]] = {
    "help": ("help",),
    "whoami": ("whoami",),
    "admins": ("admins",),
    "who-has": ("who-has", "whohas"),
    "transfer-owner": ("transfer-owner",),
    "admin add": ("admin add",),
    "admin remove": ("admin remove", "admin rm"),
    "role set": ("role set",),
    "role clear": ("role clear",),
    "roles": ("roles",),
    "grant": ("grant",),
    "revoke": ("revoke",),
    "template create": ("template create",),
    "template set": ("template set",),
    "template show": ("template show",),
    "template list": ("template list",),
    "template delete": ("template delete",),
    "template apply": ("template apply",),
    "pending": ("pending",),
    "cancel": ("cancel",),
    "export": ("export",),
    "export template": ("export template",),
    "import": ("import",),
    "import undo": ("import undo",),
    "audit": ("audit",),
    "next": ("next", "more"),
    "review start": ("review start",),
    "review status": ("review status",),
    "request": ("request",),
    "requests": ("requests", "my-requests"),
    "release": ("release",),
    "extend": ("extend",),
    "policy show": ("policy show",),
    "break-glass": ("break-glass", "breakglass"),
}

_ZH: dict[str, tuple[str, ...]] = {
    "help": ("帮助",),
    "whoami": ("我的权限",),
    "admins": ("管理员",),
    "who-has": ("谁有",),
    "transfer-owner": ("转让主管理员",),
    "admin add": ("添加管理员",),
    "admin remove": ("移除管理员",),
    "role set": ("设置角色",),
    "role clear": ("清除角色",),
    "roles": ("角色列表",),
    "grant": ("授权",),
    "revoke": ("撤销",),
    "template create": ("模板 创建",),
    "template set": ("模板 修改",),
    "template show": ("模板 查看",),
    "template list": ("模板 列表",),
    "template delete": ("模板 删除",),
    "template apply": ("模板 应用",),
    "pending": ("待审批",),
    "cancel": ("取消",),
    "export": ("导出",),
    "export template": ("导出 模板",),
    "import": ("导入",),
    "import undo": ("导入 撤销",),
    "audit": ("审计",),
    "next": ("下一页", "更多"),
    "review start": ("权限审核 开始",),
    "review status": ("权限审核 状态",),
    "request": ("申请",),
    "requests": ("我的申请",),
    "release": ("我用完了",),
    "extend": ("续期",),
    "policy show": ("策略",),
    "break-glass": ("紧急授权",),
}

#: Words that only start a family of commands ("template" alone is not a command).
GROUPS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "template": tuple(n for n in COMMAND_NAMES if n.startswith("template ")),
        "admin": ("admin add", "admin remove"),
        "role": ("role set", "role clear"),
        "review": ("review start", "review status"),
        "policy": ("policy show",),
    }
)
_GROUP_WORDS: dict[str, dict[Lang, tuple[str, ...]]] = {
    "template": {"en": ("template",), "zh": ("模板",)},
    "admin": {"en": ("admin",), "zh": ()},
    "role": {"en": ("role",), "zh": ()},
    "review": {"en": ("review",), "zh": ("权限审核",)},
    "policy": {"en": ("policy",), "zh": ()},
}

Kind: TypeAlias = Literal["command", "group"]


@dataclass(frozen=True, slots=True)
class Word:
    """One way of writing a command (or group) word, lower-case, single-spaced."""

    text: str
    name: str  # canonical command name, or group name
    lang: Lang
    kind: Kind


def _variants(alias: str, lang: Lang) -> tuple[str, ...]:
    if lang == "zh" and " " in alias:
        return (alias, alias.replace(" ", ""))
    return (alias,)


def _build() -> tuple[Word, ...]:
    words: list[Word] = []
    tables: tuple[tuple[Lang, dict[str, tuple[str, ...]]], ...] = (("en", _EN), ("zh", _ZH))
    for lang, table in tables:
        for name, aliases in table.items():
            for alias in aliases:
                words.extend(Word(v, name, lang, "command") for v in _variants(alias, lang))
    for group, by_lang in _GROUP_WORDS.items():
        for lang, aliases in by_lang.items():
            words.extend(Word(a, group, lang, "group") for a in aliases)
    # Longest first, so "添加管理员" beats "管理员" and "export template" beats "export".
    words.sort(key=lambda w: -len(w.text))
    return tuple(words)


#: Every word, longest first.
WORDS: tuple[Word, ...] = _build()
_BY_TEXT: dict[str, Word] = {w.text: w for w in WORDS}


def primary(name: str, lang: Lang) -> str:
    """The primary way to write a command (or group) word in ``lang``."""
    if name in _EN:
        return (_ZH if lang == "zh" else _EN)[name][0]
    words = _GROUP_WORDS[name]
    return (words[lang] or words["en"])[0]


def lookup(text: str) -> Word | None:
    """The word written exactly as ``text`` (case-insensitive, single-spaced), if any."""
    return _BY_TEXT.get(" ".join(text.split()).lower())


def resolve_topic(text: str) -> str | None:
    """The canonical command or group name that ``text`` spells in either language."""
    word = lookup(text.strip().removeprefix("/"))
    return word.name if word is not None else None
