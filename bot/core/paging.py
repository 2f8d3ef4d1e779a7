"""Long answers in pages that fit one DingTalk message, pure.

A paged answer (whoami, who-has, pending, audit, template show) is a list of items in a
stable order (permission name, user id, request id, audit sequence). Pages hold a fixed
number of items (``per_page``), so page k is the same whatever the reply language and can
be read from the store with a LIMIT/OFFSET: :func:`window` says which items page k holds.

The message limit is DingTalk's: a robot message's ``msgParam`` (the title and the text,
as one JSON string) may hold at most 15,000 bytes. :func:`compose` puts a page's head, its
lines and its footer together within :data:`TEXT_BYTES` (measured as the text takes inside
that JSON string), clipping the longest lines when needed (never the head or the footer),
so no page is ever refused by DingTalk. Lines are short by construction (names are capped
by the escaper), so clipping is a safety net rather than the rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: DingTalk's limit on a robot message's ``msgParam`` (group send), in bytes.
MESSAGE_BYTES = 15_000
#: What the title and the JSON around the text may take (a title is at most 100 characters).
TITLE_BYTES = 400
#: What a page's text may take inside the JSON string.
TEXT_BYTES = MESSAGE_BYTES - TITLE_BYTES
#: The highest page number anyone may ask for (a bound for the grammar).
MAX_PAGE = 99_999
ELLIPSIS = "…"


class PageOutOfRange(ValueError):
    """A page past the last one: ``pages`` is how many there are."""

    def __init__(self, page: int, pages: int) -> None:
        super().__init__(f"page {page} of {pages}")
        self.page, self.pages = page, pages


@dataclass(frozen=True)
class Window:
    """Page ``page`` of ``pages`` over ``total`` items, ``per_page`` to a page: the items
    ``start`` (inclusive) to ``stop`` (exclusive)."""

    page: int
    pages: int
    total: int
    per_page: int

    @property
    def start(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def stop(self) -> int:
        return min(self.total, self.page * self.per_page)

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def last(self) -> bool:
        return self.page >= self.pages

    @property
    def paged(self) -> bool:
        """More than one page: the answer gets a footer and can be continued."""
        return self.pages > 1


@dataclass(frozen=True)
class Cursor:
    """Where a member is in a long answer: its ``kind`` (``who_has``, ``whoami``,
    ``pending``, ``audit``, ``template_show``), what it was asked with (plain JSON values:
    a name, a user id, a count) and the page last shown. ``next`` asks for ``page + 1``."""

    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)
    page: int = 1


def page_count(total: int, per_page: int) -> int:
    """How many pages ``total`` items take (an empty answer is one page)."""
    if per_page < 1 or total < 0:
        raise ValueError("per_page must be positive and total not negative")
    return max(1, -(-total // per_page))


def window(total: int, per_page: int, page: int = 1) -> Window:
    """Page ``page`` over ``total`` items; :class:`PageOutOfRange` past the last one."""
    if page < 1:
        raise ValueError("pages are numbered from 1")
    pages = page_count(total, per_page)
    if page > pages:
        raise PageOutOfRange(page, pages)
    return Window(page, pages, total, per_page)


def pages(items: Sequence[str], per_page: int) -> list[tuple[str, ...]]:
    """Every page of ``items`` (in memory), in order: what :func:`window` cuts."""
    out = []
    for k in range(1, page_count(len(items), per_page) + 1):
        w = window(len(items), per_page, k)
        out.append(tuple(items[w.start:w.stop]))
    return out


def encoded_size(text: str) -> int:
    """The bytes ``text`` takes inside a JSON string sent with ``ensure_ascii=False``
    (UTF-8, with ``\\n``, ``\\"`` and control escapes), as the OpenAPI client sends it."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def clip(line: str, budget: int) -> str:
    """``line`` cut (with an ellipsis) to at most ``budget`` encoded bytes; a cut never
    leaves an inline-code span or bold run open."""
    if encoded_size(line) <= budget:
        return line
    room = budget - encoded_size(ELLIPSIS)
    if room <= 0:
        return ""
    lo, hi = 0, len(line)
    while lo < hi:                       # the longest prefix within the room
        mid = (lo + hi + 1) // 2
        if encoded_size(line[:mid]) <= room:
            lo = mid
        else:
            hi = mid - 1
    cut = line[:lo].rstrip("*")
    if cut.count("**") % 2:
        cut = cut[:cut.rfind("**")]
    if cut.count("`") % 2:
        cut = cut[:cut.rfind("`")]
    return cut + ELLIPSIS


def compose(head: str, lines: Sequence[str], foot: str = "", *,
            limit: int = TEXT_BYTES) -> str:
    """``head``, the lines (one per line) and ``foot``, blank-line separated, within
    ``limit`` encoded bytes. Lines are kept whole when they fit; otherwise the longest are
    clipped to an even share of what is left. ``head`` and ``foot`` are Baton's own short
    texts and are never cut (they must fit: a ValueError says they do not)."""
    fixed = [p for p in (head, foot) if p]
    seps = max(0, len(fixed) + (1 if lines else 0) - 1)    # each "\n\n": 4 encoded bytes
    room = limit - sum(encoded_size(p) for p in fixed) - 4 * seps
    if room < 0 or (lines and room < len(lines) * 2):
        raise ValueError("the head and footer alone do not fit the limit")
    body = list(lines)
    if encoded_size("\n".join(body)) > room:
        room_for_lines = room - 2 * (len(body) - 1)       # each "\n" is 2 encoded bytes
        share = _fair_share([encoded_size(x) for x in body], room_for_lines)
        body = [clip(x, share) for x in body]
    parts = [head] if head else []
    if body:
        parts.append("\n".join(body))
    if foot:
        parts.append(foot)
    return "\n\n".join(parts)


def _fair_share(sizes: list[int], room: int) -> int:
    """The largest cap c such that sum(min(size, c)) fits ``room`` (short lines stay whole)."""
    lo, hi = 0, max(sizes, default=0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(s, mid) for s in sizes) <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo


__all__ = [
    "MAX_PAGE",
    "MESSAGE_BYTES",
    "TEXT_BYTES",
    "TITLE_BYTES",
    "Cursor",
    "PageOutOfRange",
    "Window",
    "clip",
    "compose",
    "encoded_size",
    "page_count",
    "pages",
    "window",
]
