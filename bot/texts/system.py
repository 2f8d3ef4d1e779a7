"""What Baton says about its own state: security alerts, undeliverable outbox rows, the
store being unavailable, and rate limits.
"""

from __future__ import annotations

from collections.abc import Mapping

ZH: Mapping[str, str] = {
    "alert_title": "Baton 安全提醒",
    "alert_outbox_failed": (
        "一条发往 {to} 的{kind}在 {attempts} 次尝试后仍未送达，已放弃（最后错误：{error}）。"
        "可在数据库 outbox 表 id={id} 查看。"
    ),
    "outbox_kind_reply": "消息",
    "outbox_kind_card": "卡片",
    "outbox_kind_export": "导出文件",
    "outbox_kind_dingtalk_role": "钉钉角色同步调用",
    "db_unavailable_click": (
        "抱歉，数据库暂时不可用，你刚才在卡片上的点击没有生效。请稍后再点一次；"
        "如需排查，请把事件编号 {event_id} 告诉管理员。"
    ),
    "db_unavailable": (
        "抱歉，数据库暂时不可用，这条命令没有执行，也没有做任何更改。请稍后重新发送同一条命令；"
        "如需排查，请把事件编号 {event_id} 告诉管理员。"
    ),
    "alert_click": "在 {id} 的卡片上点击了 {action}",
    "alert_line": "- {at} {who}：{what}（{why}）",
    "alert_header": "### Baton 安全提醒（{n} 条）",
    "alert_more": "……另有 {n} 条，详见 `审计`。",
    "rate_limited": "你发送命令太频繁了，请 {seconds} 秒后再试。这段时间里多发的命令不会执行。",
    "rate_limited_conversation": (
        "这个会话里的命令太多了，请 {seconds} 秒后再试。这段时间里多发的命令不会执行。"
    ),
}


EN: Mapping[str, str] = {
    "alert_title": "Baton security alert",
    "alert_outbox_failed": (
        "a {kind} to {to} was given up after {attempts} attempts (last error: {error}); "
        "see outbox row id={id}."
    ),
    "outbox_kind_reply": "message",
    "outbox_kind_card": "card",
    "outbox_kind_export": "export file",
    "outbox_kind_dingtalk_role": "DingTalk role sync call",
    "db_unavailable_click": (
        "Sorry, the database is unavailable right now, so your click on the card was "
        "not applied. Please click again in a moment; for support, quote event id "
        "{event_id}."
    ),
    "db_unavailable": (
        "Sorry, the database is unavailable right now, so this command was not applied "
        "and nothing was changed. Please send the same command again in a moment; for "
        "support, quote event id {event_id}."
    ),
    "alert_click": "pressed {action} on {id}'s card",
    "alert_line": "- {at} {who}: {what} ({why})",
    "alert_header": "### Baton security alerts ({n})",
    "alert_more": "…and {n} more; see `audit`.",
    "rate_limited": (
        "You are sending commands too fast; please wait {seconds} s. The extra commands "
        "sent meanwhile were not run."
    ),
    "rate_limited_conversation": (
        "This conversation is sending too many commands; please wait {seconds} s. The "
        "extra commands were not run."
    ),
}
