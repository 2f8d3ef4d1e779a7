"""Merged reminders of open requests and their escalation to the owner.
"""

from __future__ import annotations

from collections.abc import Mapping

ZH: Mapping[str, str] = {
    "remind_merged_header": "提醒：以下 {n} 个申请仍在等待处理：",
    "remind_merged_line": "- {id} 等待 {who}，{expires} 前有效",
    "remind_escalate": "⚠️ 升级提醒：{ids} 已等待超过 {after}，请主管理员 {owner} 关注。",
}


EN: Mapping[str, str] = {
    "remind_merged_header": "Reminder: {n} requests are still waiting for a decision:",
    "remind_merged_line": "- {id} waiting for {who}, open until {expires}",
    "remind_escalate": (
        "⚠️ Escalation: open for more than {after}: {ids}; {owner} (owner), "
        "please follow up."
    ),
}
