"""Replying with one page of a long answer (whoami, who-has, pending, audit, template show),
and remembering where the member is, for ``next`` / ``下一页``.

Each page is read again when it is asked for (no snapshot is kept): page k holds the items
at positions ``(k-1)·per_page`` to ``k·per_page`` of the answer's stable order at that
moment. An item added or removed in between can therefore move across a page boundary (be
shown twice, or not at all, when paging on); a fresh count gives the new number of pages.
Only answers of more than one page are remembered, so ``next`` continues the last answer
that offered a next page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.commands.words import primary
from bot.core.escape import Md, literal
from bot.core.lang import Lang
from bot.core.paging import Cursor, PageOutOfRange, Window, compose, window
from bot.dispatch.context import Context, UserError

# An argument shown in a code span as the member should type it again (a permission, a
# template name, uid:<userId>, a count); anything else goes through the escaper.
_AS_TYPED = re.compile(r"[\w.:*$][\w.:*$\-]{0,79}")


class PastTheEnd(UserError):
    """A page past the last one; ``pages`` is how many there are, ``first`` the command
    that shows the first."""

    def __init__(self, page: int, pages: int, again: Md, first: Md) -> None:
        super().__init__("page_past_end", page=page, pages=pages, again=again)
        self.pages, self.first = pages, first


@dataclass(frozen=True)
class LongAnswer:
    """What a paged answer was asked with: the cursor's ``kind`` and ``args``, and the
    command (``command``, its arguments ``words`` as typed) that shows a page of it."""

    kind: str
    command: str
    words: tuple[str, ...] = ()
    args: Mapping[str, Any] = field(default_factory=dict)

    def again(self, lang: Lang, page: int) -> Md:
        """The command that shows page ``page``, in a code span (page 1: without a page)."""
        parts = [primary(self.command, lang),
                 *(w if _AS_TYPED.fullmatch(w) else literal(w, 80) for w in self.words)]
        if page > 1:
            parts.append(f"page {page}" if lang == "en" else f"第{page}页")
        return Md("`" + " ".join(parts) + "`")

    def window(self, lang: Lang, total: int, per_page: int, page: int) -> Window:
        """Page ``page`` of ``total`` items, or :class:`PastTheEnd`."""
        try:
            return window(total, per_page, page)
        except PageOutOfRange as e:
            raise PastTheEnd(page, e.pages, self.again(lang, e.pages),
                             self.again(lang, 1)) from None


async def reply_page(ctx: Context, answer: LongAnswer, w: Window, head: str,
                     lines: Sequence[str], *, title: str) -> None:
    """Send one page: ``head``, its lines and (when there is more than one page) a footer
    saying which page it is and how to get the next; within DingTalk's message limit."""
    foot = ""
    if w.paged and w.last:
        foot = ctx.t("page_footer_last", page=w.page, pages=w.pages,
                     first=answer.again(ctx.lang, 1))
    elif w.paged:
        foot = ctx.t("page_footer", page=w.page, pages=w.pages, next_page=w.page + 1,
                     again=answer.again(ctx.lang, w.page + 1))
    await ctx.reply(compose(head, lines, foot), markdown=True, title=title)
    if w.paged:
        await ctx.uow.paging.remember(ctx.corp_id, ctx.message.conversation_key,
                                      ctx.sender.user_id,
                                      Cursor(answer.kind, answer.args, w.page), ctx.now)
