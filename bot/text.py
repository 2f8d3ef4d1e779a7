"""Rendering user-supplied values so they show literally in markdown and cards."""

from __future__ import annotations

import re

# Anything a renderer may take as a line break: folded to a space, so no value fakes a line.
_LINE_BREAK = re.compile("\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
# Controls, bidi controls (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069), zero-width and
# other invisible characters (U+00AD, U+180E, U+200B-U+200D, U+2060-U+206F, U+FEFF, Hangul
# fillers, interlinear annotations, tag characters): dropped.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U000e0000-\U000e007f]"
)
# Markdown-active characters become their full-width look-alikes: they then show as typed on
# every client, with no reliance on backslash escapes (which DingTalk renders inconsistently).
# ``@`` too: a value like "@所有人" must not pass for a mention.
_LOOKALIKE = str.maketrans({"[": "［", "]": "］", "*": "＊", "`": "ˋ", "#": "＃",
                            "<": "＜", ">": "＞", "\\": "＼", "|": "｜", "~": "～",
                            "@": "＠"})
# Link openers: ``scheme://`` of any scheme, the schemes that run or dial without ``//``,
# and the ``www.`` that autolinks bare.
_SCHEME = re.compile(r"(?i)(?<![a-z0-9])(javascript|vbscript|data|file|mailto|tel|sms|dingtalk|dtmd|"
                     r"intent)\s*:")
_WWW = re.compile(r"(?i)(?<![a-z0-9])(www)\.")
# An HTML entity (``&#x202E;``, ``&lt;``) would decode into what the rest of this removed.
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
# ``_`` can open or close emphasis unless it sits inside a word (``crm_admin`` stays).
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
# At the start of a line a value could open a list, a heading underline or a rule.
_LEADING = re.compile(r"^(?:[-+=]|\d{1,9}[.)](?=\s|$))")
_LEADING_SWAP = str.maketrans({"-": "－", "+": "＋", "=": "＝", ".": "．", ")": "）"})


def literal(value: str, limit: int = 200) -> str:
    """One line of markdown-safe text: no links, emphasis, tags, mentions, bidi tricks or
    fake lines. The result holds no CR/LF, no bidi or zero-width character, no ``[``, ``<``,
    backtick or ``@``, and no ``://``."""
    v = _INVISIBLE.sub("", _LINE_BREAK.sub(" ", value)).replace("\t", " ").strip()
    if len(v) > limit:
        v = v[: limit - 1] + "…"
    v = v.replace("://", "：//")  # no auto-linking of dingtalk://, http://, dtmd://...
    v = _SCHEME.sub(r"\1：", v)
    v = _WWW.sub(r"\1．", v)
    v = _ENTITY.sub("＆", v)
    v = _UNDERSCORE.sub("＿", v)
    v = _LEADING.sub(lambda m: m.group(0).translate(_LEADING_SWAP), v)
    return v.translate(_LOOKALIKE)


def person(name: str | None, user_id: str, limit: int = 64) -> str:
    """A member as shown everywhere: "name (userId)", or the userId alone; both escaped."""
    return f"{literal(name, limit)} ({literal(user_id, 64)})" if name else literal(user_id, 64)
