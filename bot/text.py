"""Rendering user-supplied values so they show literally in markdown and cards."""

from __future__ import annotations

import re

_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\x00-\x08\x0b-\x1f\x7f]")
# Markdown-active characters become their full-width look-alikes: they then show as typed on
# every client, with no reliance on backslash escapes (which DingTalk renders inconsistently).
_LOOKALIKE = str.maketrans({"[": "［", "]": "］", "*": "＊", "`": "ˋ", "#": "＃",
                            "<": "＜", ">": "＞", "\\": "＼", "|": "｜", "~": "～"})


def literal(value: str, limit: int = 200) -> str:
    """One line of markdown-safe text: no links, emphasis, tags, bidi tricks or fake lines."""
    v = _INVISIBLE.sub("", value).replace("\r", " ").replace("\n", " ")
    if len(v) > limit:
        v = v[: limit - 1] + "…"
    v = v.replace("://", ":\u2060//")  # no auto-linking of dingtalk://, http://...
    return v.translate(_LOOKALIKE)
