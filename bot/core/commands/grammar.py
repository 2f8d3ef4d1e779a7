"""The parser: chat text (after DingTalk removed the robot's mention) to a command value.

``parse`` is total: for every string and mention list it returns a ``Parsed`` or raises
``ParseError``, in time linear in the (bounded) input. The steps:

1. refuse more than ``MAX_LENGTH`` characters before looking at anything;
2. normalise: Unicode whitespace to single spaces, control/format characters dropped,
   one optional leading ``/`` (or ``／``); full-width ASCII is read as ASCII;
3. find the longest command word (English or Chinese; a Chinese word may be followed
   directly by its argument);
4. read that command's arguments left to right. Each ``@name`` token takes the next
   entry of ``mentions``; identity never comes from the display name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import timedelta
from difflib import SequenceMatcher
from typing import Literal, NoReturn

from ..lang import Lang
from .durations import parse_duration
from .errors import ParseError
from .model import (
    AccessRequest,
    AdminAdd,
    AdminRemove,
    Admins,
    Audit,
    BreakGlass,
    Cancel,
    Command,
    DeptRef,
    Export,
    ExportTemplate,
    Extend,
    Grant,
    Help,
    ImportMode,
    ImportUndo,
    MyRequests,
    NextPage,
    Parsed,
    Pending,
    PolicyShow,
    Release,
    ReviewStart,
    ReviewStatus,
    Revoke,
    RoleClear,
    Roles,
    RoleSet,
    TemplateApply,
    TemplateCreate,
    TemplateDelete,
    TemplateList,
    TemplateSet,
    TemplateShow,
    TransferOwner,
    UserRef,
    WhoAmI,
    WhoHas,
)
from .words import GROUPS, WORDS, Word, primary, resolve_topic

MAX_LENGTH = 2000
AUDIT_MAX = 5000      # the newest entries ``audit`` may cover (shown in pages)
PAGE_MAX = 99_999     # bot.core.paging.MAX_PAGE

# Every pattern is a single bounded character class: no backtracking to speak of.
_PERM = re.compile(r"[A-Za-z0-9_.*:\-]{1,64}")
_TEMPLATE = re.compile(r"[\w.\-]{1,64}")
_BATCH = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_UID = re.compile(r"[A-Za-z0-9_\-.$@]{1,64}")
_DEPT = re.compile(r"[^\s,，、`]{1,64}")
_REQUEST_ID = re.compile(r"(?:r-?|#)?([0-9]{1,12})")
_COUNT = re.compile(r"[0-9]{1,6}")
_NUMBERISH = re.compile(r"[+\-]?[0-9][0-9.,]*")
_SIGNED_NUMBER = re.compile("[+\\-\u2212]?[0-9]")
_SEPARATOR = re.compile(r"[,，、]")
# A page asked for at the end of a paged command: ``page 2`` / ``page2`` / ``第2页`` /
# ``第 2 页`` (``第二页`` too). Only the number part is checked once the form is recognised.
_PAGE_EN = re.compile(r"(?i)page(?: (?P<n>\S+)|(?P<d>[0-9]\S*))")
_PAGE_ZH = re.compile(r"第 ?(?P<n>[^ ]+?) ?页")
_ZH_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9, "十": 10}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_LATIN = re.compile(r"[A-Za-z\uff21-\uff3a\uff41-\uff5a]")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")

_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}  # ！..～ -> !..~
_DROPPED_CATEGORIES = frozenset(("Cc", "Cf", "Cs"))
_FOR = frozenset(("for", "为期"))
_DEPT_PREFIXES = ("dept:", "部门:")
_IMPORT_MODES: dict[str, Literal["add", "replace"]] = {
    "add": "add",
    "追加": "add",
    "replace": "replace",
    "替换": "replace",
}
_EXPORT_FORMATS: dict[str, Literal["xlsx", "csv"]] = {"xlsx": "xlsx", "csv": "csv"}
_CUTOFF = 0.6  # difflib's default
_CJK_CUTOFF = 0.5
_HEAD_MAX = 40
_PARAM_MAX = 200


def parse(text: str, mentions: Sequence[str] = (), *, length: int | None = None) -> Parsed:
    """Parse one message; raises ``ParseError`` (and nothing else) when it is not a command.

    ``length`` is the length of the whole message when ``text`` is a cut of it (the router
    passes at most ``MAX_LENGTH + 1`` characters): a refusal as too long names the real length.
    """
    if len(text) > MAX_LENGTH:
        raise ParseError(
            "too_long",
            lang_of(text[:MAX_LENGTH]),
            params={"length": str(max(len(text), length or 0)), "max": str(MAX_LENGTH)},
        )
    raw = _normalise(_join_mentions(text))
    folded = raw.translate(_FULLWIDTH)  # same length as raw, same spaces
    if folded.startswith("/"):
        raw, folded = raw[1:].lstrip(" "), folded[1:].lstrip(" ")
    if not folded:
        raise ParseError("empty", None)
    word = _match_word(folded)
    if word is None:
        lang = lang_of(raw)
        raise ParseError(
            "unknown_command",
            lang,
            suggestion=_suggest(folded, lang) if lang else None,
            params={"got": _head(raw)},
        )
    n = len(word.text)
    args = _Args(folded[n:].split(), raw[n:].split(), mentions, word.name, word.lang)
    if word.kind == "group":
        _fail_group(word, raw[:n], args)
    return Parsed(_PARSERS[word.name](args), word.lang)


# DingTalk ends each @-mention in a message's text with U+2005 (FOUR-PER-EM SPACE), so a
# display name with spaces ("@Tom Lee") is still one mention. Without it, a space ends it.
_MENTION_END = re.compile("@([^@\u2005\r\n]{1,64})\u2005")


def _join_mentions(text: str) -> str:
    """Each ``@Display Name<U+2005>`` as one token (the name's spaces joined by U+2060, a
    format character :func:`_normalise` drops), followed by a plain space."""
    return _MENTION_END.sub(lambda m: "@" + "\u2060".join(m.group(1).split()) + " ", text)


def _normalise(text: str) -> str:
    kept = (
        " " if c.isspace() else c
        for c in text
        if c.isspace() or unicodedata.category(c) not in _DROPPED_CATEGORIES
    )
    return " ".join("".join(kept).split())


def lang_of(text: str) -> Lang | None:
    """Chinese if the text has a CJK character, English if it has a Latin letter, and None
    (answer in the configured default) when it has neither, e.g. only emoji or digits."""
    if _CJK.search(text):
        return "zh"
    return "en" if _LATIN.search(text) else None


def _is_cjk(char: str) -> bool:
    return _CJK.fullmatch(char) is not None


def _match_word(folded: str) -> Word | None:
    for word in WORDS:
        n = len(word.text)
        if folded[:n].lower() != word.text:
            continue
        if n == len(folded) or folded[n] == " " or _is_cjk(word.text[-1]):
            return word
    return None


def _head(raw: str) -> str:
    first = raw.split(" ", 1)[0]
    at = first.find("@")
    return (first[:at] if at > 0 else first)[:_HEAD_MAX]


def _best(candidates: set[str], words: Sequence[tuple[str, Word]]) -> Word | None:
    """The word closest to any candidate, if close enough (difflib's ratio)."""
    best: Word | None = None
    best_score = 0.0
    for candidate in sorted(candidates):
        # Two-character Chinese words differ by one character at 0.5.
        cutoff = _CJK_CUTOFF if _CJK_RUN.fullmatch(candidate) else _CUTOFF
        for text, word in words:
            floor = max(cutoff, best_score)
            matcher = SequenceMatcher(None, candidate, text)
            if matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor:
                continue
            score = matcher.ratio()
            if score > best_score and score >= cutoff:
                best, best_score = word, score
    return best


def _suggest(folded: str, lang: Lang) -> str | None:
    """The closest command word, in ``lang``, to what starts ``folded``."""
    tokens = folded[: 4 * _HEAD_MAX].lower().split()
    if not tokens:
        return None
    first = tokens[0]
    candidates = {first[:_HEAD_MAX]}
    if len(tokens) > 1:
        candidates.add(f"{first} {tokens[1]}"[:_HEAD_MAX])
    if (at := first.find("@")) > 0:
        candidates.add(first[:at][:_HEAD_MAX])
    if run := _CJK_RUN.match(first):
        candidates.add(run.group()[:_HEAD_MAX])
    commands = [(w.text, w) for w in WORDS if w.kind == "command"]
    best = _best(candidates, commands)
    return primary(best.name, lang) if best else None


def _fail_group(word: Word, written: str, args: _Args) -> NoReturn:
    """A group word ("template") without a known sub-command after it."""
    if not args.toks:
        raise args.fail("missing_argument", what="subcommand")
    subs: list[tuple[str, Word]] = []
    group_words = [w.text for w in WORDS if w.kind == "group" and w.name == word.name]
    for w in WORDS:
        if w.kind == "command" and w.name in GROUPS[word.name]:
            for g in group_words:
                if w.text.startswith(g):
                    subs.append((w.text[len(g) :].strip(), w))
    best = _best({args.toks[0].lower()[:_HEAD_MAX]}, subs)
    raise ParseError(
        "unknown_command",
        word.lang,
        usage_of=word.name,
        suggestion=primary(best.name, word.lang) if best else None,
        params={"got": f"{written} {args.raws[0]}"},
    )


class _Args:
    """The argument tokens of one command, read left to right.

    ``toks`` are the tokens as interpreted (full-width ASCII folded), ``raws`` the same
    tokens as written (for echoing back, and for free text such as a reason).
    """

    def __init__(
        self,
        toks: list[str],
        raws: list[str],
        mentions: Sequence[str],
        name: str,
        lang: Lang,
    ) -> None:
        self.toks = toks
        self.raws = raws
        self.pos = 0
        self.mentions = mentions
        self.used = 0
        self.name = name
        self.lang = lang

    def fail(self, code: str, **params: str) -> ParseError:
        short = {k: v[:_PARAM_MAX] for k, v in params.items()}
        return ParseError(code, self.lang, usage_of=self.name, params=short)

    def more(self) -> bool:
        return self.pos < len(self.toks)

    def take(self, what: str) -> tuple[str, str]:
        """The next token, interpreted and as written; missing_argument if there is none."""
        if not self.more():
            raise self.fail("missing_argument", what=what)
        self.pos += 1
        return self.toks[self.pos - 1], self.raws[self.pos - 1]

    def take_rest(self) -> tuple[list[str], list[str]]:
        start, self.pos = self.pos, len(self.toks)
        return self.toks[start:], self.raws[start:]

    def end(self) -> None:
        if self.more():
            raise self.fail("too_many_arguments", got=" ".join(self.raws[self.pos :]))

    def page_tail(self) -> int:
        """``page N`` / ``第N页`` at the end of the arguments, taken off them (1 without)."""
        for width in (3, 2, 1):
            if len(self.toks) - self.pos < width:
                continue
            tail = " ".join(self.toks[-width:])
            m = _PAGE_EN.fullmatch(tail) or _PAGE_ZH.fullmatch(tail)
            if m is None:
                continue
            number = m.group("n") or m.group("d")
            written = " ".join(self.raws[-width:])
            del self.toks[-width:], self.raws[-width:]
            value = _ZH_DIGITS.get(number) if number in _ZH_DIGITS else (
                int(number) if _COUNT.fullmatch(number) else None)
            if value is None or not 1 <= value <= PAGE_MAX:
                raise self.fail("bad_page", got=written, max=str(PAGE_MAX))
            return value
        return 1

    def user(self) -> UserRef:
        tok, raw = self.take("user")
        ref = self.user_ref(tok, raw)
        if ref is None:
            raise self.fail("bad_mention", got=raw)
        return ref

    def user_ref(self, tok: str, raw: str) -> UserRef | None:
        """``@name`` (the next mention) or ``uid:<userId>``; None for anything else."""
        if tok.startswith("@"):
            if self.used >= len(self.mentions) or not self.mentions[self.used]:
                raise self.fail("mention_unresolved", got=raw)
            self.used += 1
            return UserRef(self.mentions[self.used - 1])
        if tok[:4].lower() == "uid:":
            if _UID.fullmatch(tok[4:]) is None:
                raise self.fail("bad_mention", got=raw)
            return UserRef(tok[4:])
        return None

    def name_arg(self, what: str, pattern: re.Pattern[str]) -> str:
        tok, raw = self.take(what)
        if pattern.fullmatch(tok) is None:
            raise self.fail("bad_name", got=raw, what=what)
        return tok

    def perm_list(self) -> tuple[str, ...]:
        toks, raws = self.take_rest()
        items = zip(_SEPARATOR.split(" ".join(toks)), _SEPARATOR.split(" ".join(raws)), strict=True)
        perms: dict[str, None] = {}
        for padded, raw in items:
            item = padded.strip()
            if not item:
                continue
            if " " in item:
                raise self.fail("bad_list", got=raw.strip())
            if _PERM.fullmatch(item) is None:
                raise self.fail("bad_name", got=raw.strip(), what="permission")
            perms[item] = None
        if not perms:
            raise self.fail("missing_argument", what="perms")
        return tuple(perms)

    def duration_tail(self) -> timedelta | None:
        """``[for] <duration>`` at the end (``7d``, ``7 d``, ``7天``), if there is one."""
        if not self.more():
            return None
        explicit = self.toks[self.pos].lower() in _FOR
        if explicit:
            self.pos += 1
            if not self.more():
                raise self.fail("missing_argument", what="duration")
        toks, raws = self.toks[self.pos :], self.raws[self.pos :]
        for width in (2, 1):
            if len(toks) >= width:
                try:
                    duration = parse_duration(" ".join(toks[:width]))
                except ValueError:
                    continue
                self.pos += width
                self.end()
                return duration
        if explicit or _SIGNED_NUMBER.match(toks[0]):
            # A number, signed or not (``-5d`` as ``-5天``), was meant as a duration.
            raise self.fail("bad_duration", got=" ".join(raws[:2]))
        raise self.fail("too_many_arguments", got=" ".join(raws))


    def duration_then_reason(self) -> tuple[timedelta | None, str]:
        """``[[for] <duration>] <reason>``: an optional duration (one token, ``8h`` / ``8小时``,
        or ``for`` and one token), then the reason, which is required."""
        duration: timedelta | None = None
        if self.more():
            explicit = self.toks[self.pos].lower() in _FOR
            at = self.pos + (1 if explicit else 0)
            if at < len(self.toks):
                try:
                    duration = parse_duration(self.toks[at])
                    self.pos = at + 1
                except ValueError:
                    if explicit or _SIGNED_NUMBER.match(self.toks[at]):
                        raise self.fail("bad_duration", got=self.raws[at]) from None
            elif explicit:
                raise self.fail("missing_argument", what="duration")
        _, raws = self.take_rest()
        reason = " ".join(raws).strip()
        if not reason:
            raise self.fail("missing_argument", what="reason")
        return duration, reason


def _help(a: _Args) -> Help:
    if not a.more():
        return Help()
    toks, raws = a.take_rest()
    return Help(resolve_topic(" ".join(toks)) or " ".join(raws))


def _no_arguments(make: Callable[[], Command]) -> Callable[[_Args], Command]:
    def parse_none(a: _Args) -> Command:
        a.end()
        return make()

    return parse_none


def _paged(make: Callable[[int], Command]) -> Callable[[_Args], Command]:
    """A command with no arguments but an optional ``page N`` / ``第N页``."""
    def parse_page(a: _Args) -> Command:
        page = a.page_tail()
        a.end()
        return make(page)

    return parse_page


def _who_has(a: _Args) -> WhoHas:
    page = a.page_tail()
    name = a.name_arg("permission", _PERM)
    a.end()
    return WhoHas(name, page)


def _transfer_owner(a: _Args) -> TransferOwner:
    target = a.user()
    _, raws = a.take_rest()
    return TransferOwner(target, " ".join(raws))


def _admin_add(a: _Args) -> AdminAdd:
    target = a.user()
    a.end()
    return AdminAdd(target)


def _admin_remove(a: _Args) -> AdminRemove:
    target = a.user()
    a.end()
    return AdminRemove(target)


def _role_clear(a: _Args) -> RoleClear:
    target = a.user()
    a.end()
    return RoleClear(target)


def _role_set(a: _Args) -> RoleSet:
    target = a.user()
    role = a.name_arg("role", _PERM)
    a.end()
    return RoleSet(target, role)


def _grant(a: _Args) -> Grant:
    target = a.user()
    name = a.name_arg("permission", _PERM)
    return Grant(target, name, a.duration_tail())


def _revoke(a: _Args) -> Revoke:
    target = a.user()
    name = a.name_arg("permission", _PERM)
    a.end()
    return Revoke(target, name)


def _template_create(a: _Args) -> TemplateCreate:
    name = a.name_arg("template", _TEMPLATE)
    return TemplateCreate(name, a.perm_list())


def _template_set(a: _Args) -> TemplateSet:
    name = a.name_arg("template", _TEMPLATE)
    return TemplateSet(name, a.perm_list())


def _template_show(a: _Args) -> TemplateShow:
    page = a.page_tail()
    name = a.name_arg("template", _TEMPLATE)
    a.end()
    return TemplateShow(name, page)


def _template_delete(a: _Args) -> TemplateDelete:
    name = a.name_arg("template", _TEMPLATE)
    a.end()
    return TemplateDelete(name)


def _template_apply(a: _Args) -> TemplateApply:
    name = a.name_arg("template", _TEMPLATE)
    users: dict[UserRef, None] = {}
    depts: dict[DeptRef, None] = {}
    for tok, raw in zip(*a.take_rest(), strict=True):
        for piece, raw_piece in zip(_SEPARATOR.split(tok), _SEPARATOR.split(raw), strict=True):
            if not piece:
                continue
            user = a.user_ref(piece, raw_piece)
            if user is not None:
                users[user] = None
            elif piece[:5].lower() in _DEPT_PREFIXES or piece[:3] in _DEPT_PREFIXES:
                key = piece.split(":", 1)[1]
                if _DEPT.fullmatch(key) is None:
                    raise a.fail("bad_name", got=raw_piece, what="dept")
                depts[DeptRef(key)] = None
            else:
                raise a.fail("bad_target", got=raw_piece)
    if not users and not depts:
        raise a.fail("no_target")
    return TemplateApply(name, tuple(users), tuple(depts))


def _cancel(a: _Args) -> Cancel:
    tok, raw = a.take("request_id")
    match = _REQUEST_ID.fullmatch(tok.lower())
    if match is None or int(match[1]) == 0:
        raise a.fail("bad_request_id", got=raw)
    a.end()
    return Cancel(f"R-{int(match[1])}")


def _export(a: _Args) -> Export:
    if not a.more():
        return Export()
    tok, raw = a.take("format")
    fmt = _EXPORT_FORMATS.get(tok.lower().removeprefix("."))
    if fmt is None:
        raise a.fail("bad_format", got=raw)
    a.end()
    return Export(fmt)


def _import_mode(a: _Args) -> ImportMode:
    tok, raw = a.take("mode")
    mode = _IMPORT_MODES.get(tok.lower())
    if mode is None:
        raise a.fail("bad_format", got=raw)
    a.end()
    return ImportMode(mode)


def _import_undo(a: _Args) -> ImportUndo:
    batch = a.name_arg("batch", _BATCH)
    a.end()
    return ImportUndo(batch)


def _audit(a: _Args) -> Audit:
    page = a.page_tail()
    target: UserRef | None = None
    count: int | None = None
    while a.more():
        tok, raw = a.take("user")
        if tok.startswith("@") or tok[:4].lower() == "uid:":
            if target is not None:
                a.pos -= 1
                a.end()
            target = a.user_ref(tok, raw)
        elif _NUMBERISH.fullmatch(tok) or (target is not None and count is None):
            if count is not None:
                a.pos -= 1
                a.end()
            if _COUNT.fullmatch(tok) is None or not 1 <= int(tok) <= AUDIT_MAX:
                raise a.fail("bad_number", got=raw, min="1", max=str(AUDIT_MAX))
            count = int(tok)
        elif target is None:
            raise a.fail("bad_mention", got=raw)
        else:
            a.pos -= 1
            a.end()
    return Audit(target, 10 if count is None else count, page)


def _access_request(a: _Args) -> AccessRequest:
    name = a.name_arg("permission", _PERM)
    duration, reason = a.duration_then_reason()
    return AccessRequest(name, duration, reason)


def _extend(a: _Args) -> Extend:
    name = a.name_arg("permission", _PERM)
    duration, reason = a.duration_then_reason()
    return Extend(name, duration, reason)


def _release(a: _Args) -> Release:
    name = a.name_arg("permission", _PERM)
    a.end()
    return Release(name)


def _policy_show(a: _Args) -> PolicyShow:
    name = a.name_arg("permission", _PERM)
    a.end()
    return PolicyShow(name)


def _break_glass(a: _Args) -> BreakGlass:
    name = a.name_arg("permission", _PERM)
    _, raws = a.take_rest()
    reason = " ".join(raws).strip()
    if not reason:
        raise a.fail("missing_argument", what="reason")
    return BreakGlass(name, reason)


_PARSERS: dict[str, Callable[[_Args], Command]] = {
    "help": _help,
    "whoami": _paged(WhoAmI),
    "admins": _no_arguments(Admins),
    "who-has": _who_has,
    "transfer-owner": _transfer_owner,
    "admin add": _admin_add,
    "admin remove": _admin_remove,
    "role set": _role_set,
    "role clear": _role_clear,
    "roles": _no_arguments(Roles),
    "grant": _grant,
    "revoke": _revoke,
    "template create": _template_create,
    "template set": _template_set,
    "template show": _template_show,
    "template list": _no_arguments(TemplateList),
    "template delete": _template_delete,
    "template apply": _template_apply,
    "pending": _paged(Pending),
    "cancel": _cancel,
    "export": _export,
    "export template": _no_arguments(ExportTemplate),
    "import": _import_mode,
    "import undo": _import_undo,
    "audit": _audit,
    "next": _no_arguments(NextPage),
    "review start": _no_arguments(ReviewStart),
    "review status": _no_arguments(ReviewStatus),
    "request": _access_request,
    "requests": _no_arguments(MyRequests),
    "release": _release,
    "extend": _extend,
    "policy show": _policy_show,
    "break-glass": _break_glass,
}
