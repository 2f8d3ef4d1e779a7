"""Rendering user-supplied values so they show literally in markdown and cards."""

from __future__ import annotations

import re
from collections.abc import Iterable

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
# An HTML entity (``&#x202E;``, ``&lt;``) would decode into what the rest of this removed;
# at the end of a value (``&lt``) it would take a ``;`` from the template that follows.
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+(?:;|$))")
# ``_`` can open or close emphasis unless it sits inside a word (``crm_admin`` stays).
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
# At the start of a line a value could open a list, a heading underline or a rule.
_LEADING = re.compile(r"^(?:[-+=]|\d{1,9}[.)](?=\s|$))")
_LEADING_SWAP = str.maketrans({"-": "－", "+": "＋", "=": "＝", ".": "．", ")": "）"})


class Md(str):
    """Markdown that may enter a message as it is: a rendered template (``t()`` returns one),
    the result of :func:`literal`, or text built only from such parts (:func:`joined`).

    ``t()`` escapes every parameter that is not ``Md``; wrap a value in ``Md`` only when it
    was built from escaped parts. Any ``str`` operation on it (``+``, ``join``, f-strings,
    slicing) gives a plain ``str`` again, which ``t()`` escapes: forgetting leaves text
    inert, never live."""

    __slots__ = ()


def literal(value: str, limit: int = 200) -> Md:
    """The one escaper: one line of markdown-safe text: no links, emphasis, tags, mentions,
    bidi tricks or fake lines. The result holds no CR/LF, no bidi or zero-width character,
    no ``[``, ``<``, backtick or ``@``, and no ``://``. Idempotent: escaping its result
    again changes nothing."""
    v = _INVISIBLE.sub("", _LINE_BREAK.sub(" ", value)).replace("\t", " ").strip()
    if len(v) > limit:
        v = v[: limit - 1] + "…"
    v = v.replace("://", "：//")  # no auto-linking of dingtalk://, http://, dtmd://...
    v = _SCHEME.sub(r"\1：", v)
    v = _WWW.sub(r"\1．", v)
    v = _ENTITY.sub("＆", v)
    v = _UNDERSCORE.sub("＿", v)
    v = _LEADING.sub(lambda m: m.group(0).translate(_LEADING_SWAP), v)
    return Md(v.translate(_LOOKALIKE))


def person(name: str | None, user_id: str, limit: int = 64) -> Md:
    """A member as shown everywhere: "name (userId)", or the userId alone; both escaped."""
    if name:
        return Md(f"{literal(name, limit)} ({literal(user_id, 64)})")
    return literal(user_id, 64)


# A name in the grammar's own charset (permissions, roles, template items): nothing in it
# can close a code span or break a line, so it is shown in one as written (``crm.*``).
_CODE_NAME = re.compile(r"[A-Za-z0-9._:*+-]{1,64}")


def code(name: str) -> Md:
    """A name as inline code: as written when it is a plain identifier, else its
    :func:`literal` text (which holds no backtick) in the span."""
    return Md(f"`{name if _CODE_NAME.fullmatch(name) else literal(name, 64)}`")


def param(value: object) -> object:
    """A message parameter as it enters markdown: ``Md`` as it is, a number as it is (so
    format specs keep working), anything else through :func:`literal`."""
    if isinstance(value, Md):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return literal(str(value))


def joined(sep: str, parts: Iterable[object]) -> Md:
    """Parts joined into one markdown value, each escaped unless it is ``Md`` already.
    ``sep`` is template text (``t("list_sep")``, ``"\\n"``), never user input."""
    return Md(sep.join(str(param(p)) for p in parts))
