"""Long answers in pages: the footer of each page, ``next`` / ``下一页``, and page numbers
past the end. ``{again}`` is the command that shows a page, already in a code span."""

from __future__ import annotations

ZH: dict[str, str] = {
    "page_footer": "第 {page}/{pages} 页。发送 `下一页` 查看第 {next_page} 页，或发送 {again}。",
    "page_footer_last": "第 {page}/{pages} 页（最后一页）。发送 {first} 从第 1 页重新查看。",
    "page_past_end": "这个回答只有 {pages} 页，没有第 {page} 页。发送 {again} 查看最后一页。",
    "next_nothing": "这里没有可以继续的回答。`下一页` 用于查看您在本会话中上一个较长回答"
                    "（我的权限、谁有、待审批、审计、模板 查看）的下一页。",
    "next_done": "上一个回答已经显示到最后一页（共 {pages} 页），没有更多内容了。"
                 "发送 {first} 从第 1 页重新查看。",
    "page_whoami_more": "（共 {n} 项权限）",
}

EN: dict[str, str] = {
    "page_footer": "Page {page} of {pages}. Send `next` for page {next_page}, or {again}.",
    "page_footer_last": "Page {page} of {pages} (the last). Send {first} to start again.",
    "page_past_end": "This answer has only {pages} page(s), so there is no page {page}. "
                     "Send {again} for the last one.",
    "next_nothing": "There is nothing to continue here. `next` shows the next page of your "
                    "last long answer in this conversation (whoami, who-has, pending, audit, "
                    "template show).",
    "next_done": "Your last answer is already at its last page ({pages} of {pages}); there is "
                 "nothing more. Send {first} to start again.",
    "page_whoami_more": "({n} permissions in all)",
}
