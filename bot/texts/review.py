"""The access review: its card, its items, reminders, status and summaries.
"""

from __future__ import annotations

from collections.abc import Mapping

ZH: Mapping[str, str] = {
    "kind_review": "权限审核",
    "review_title": "权限审核",
    "review_already_open": "已有进行中的权限审核 {id}，发送 `权限审核 状态` 查看进度。",
    "review_no_owner": "还没有主管理员，无法发起权限审核。",
    "review_nothing": "目前没有任何有效授权，无需审核。",
    "review_none": "还没有发起过权限审核。发送 `权限审核 开始` 发起。",
    "review_started": (
        "已发起权限审核 {id}：{n} 项授权，{admins} 位管理员各收到一张审核卡片，"
        "截止 {deadline}。"
    ),
    "review_cron_skipped": "定期权限审核未发起：{why}",
    "review_card_title": "权限审核 {id}",
    "review_card_intro": (
        "{who}，请审核以下 {n} 项由你负责的授权（截止 {deadline}）。"
        "每项选择“保留”或“移除”："
    ),
    "review_item": "{i}. {holder}：{name}{until} · {decision}",
    "review_until": "（至 {at}）",
    "review_bg_tag": " ⚠️ **紧急授权 {id}**",
    "review_undecided": "待审核",
    "review_decided_keep": "已保留（{who} {at}）",
    "review_decided_remove": "已移除（{who} {at}）",
    "review_decided_unreviewed_keep": "未审核，按策略保留",
    "review_decided_unreviewed_revoke": "未审核，按策略撤销",
    "review_status_pending": "审核中",
    "review_status_done": "你已全部审核",
    "review_status_applied": "审核已结束",
    "review_status_cancelled": "审核已取消",
    "review_progress": "已审核 {done}/{total}",
    "review_closed_click": "权限审核 {id} 已结束，不能再更改。",
    "review_no_item": "这张卡片上没有第 {item} 项。",
    "review_not_yours": "这一项只能由负责的管理员审核：{who}。",
    "review_already_decided": "第 {i} 项已处理：{decision}。未做更改。",
    "review_click_kept": "已保留 {n} 项。",
    "review_click_removed": "已移除，授权已撤销。",
    "review_removed_holder": "你的授权 {name} 已在权限审核 {id} 中被移除。",
    "review_remind": "权限审核 {id}：你还有 {n} 项授权未审核，截止 {deadline}。请在审核卡片上处理。",
    "review_status_title": "权限审核 {id} {state}",
    "review_state_open": "（进行中）",
    "review_state_closed": "（已结束）",
    "review_state_cancelled": "（已取消）",
    "review_deadline": "截止：{at}",
    "review_admin_line": "- {who}：已审核 {done}/{total}",
    "review_counts": (
        "保留 {kept} · 移除 {removed} · 待审核 {open} · 未审核保留 "
        "{unreviewed_kept} · 未审核撤销 {unreviewed_revoked}"
    ),
    "review_unreviewed_line": "- {i}. {holder}：{name}",
    "review_unreviewed_kept": "权限审核 {id} 已到期：{n} 项授权无人审核，按策略保留：",
    "review_alert_what": "权限审核 {id} 到期",
    "review_alert_why": "{n} 项授权无人审核，已按策略保留",
    "review_policy_keep": "未审核的授权保留",
    "review_policy_revoke": "未审核的授权撤销",
    "review_summary": "权限审核 {id} 已结束（{policy}）。",
    "review_summary_all_reviewed": "权限审核 {id} 的每一项授权都已审核，审核已结束。",
    "review_closed_now": "这是最后一项：权限审核 {id} 已全部完成，现已结束。",
    "review_describe": "权限审核：{n} 项授权",
    "review_subject": "{n} 项授权，{admins} 位管理员审核",
}


EN: Mapping[str, str] = {
    "kind_review": "Access review",
    "review_title": "Access review",
    "review_already_open": (
        "Access review {id} is still open; send `review status` to "
        "see how it is going."
    ),
    "review_no_owner": "There is no owner yet, so no access review can start.",
    "review_nothing": "There are no live grants, so there is nothing to review.",
    "review_none": "No access review has been started yet. Send `review start`.",
    "review_started": (
        "Access review {id} started: {n} grants; {admins} admin(s) each "
        "got a review card. Deadline: {deadline}."
    ),
    "review_cron_skipped": "The scheduled access review did not start: {why}",
    "review_card_title": "Access review {id}",
    "review_card_intro": (
        "{who}, please review these {n} grants you are responsible for "
        "(deadline {deadline}). Keep or remove each:"
    ),
    "review_item": "{i}. {holder}: {name}{until} · {decision}",
    "review_until": " (until {at})",
    "review_bg_tag": " ⚠️ **break-glass {id}**",
    "review_undecided": "to review",
    "review_decided_keep": "kept ({who}, {at})",
    "review_decided_remove": "removed ({who}, {at})",
    "review_decided_unreviewed_keep": "not reviewed, kept by policy",
    "review_decided_unreviewed_revoke": "not reviewed, revoked by policy",
    "review_status_pending": "In review",
    "review_status_done": "All reviewed",
    "review_status_applied": "Review closed",
    "review_status_cancelled": "Review cancelled",
    "review_progress": "{done}/{total} reviewed",
    "review_closed_click": "Access review {id} is closed; nothing can change now.",
    "review_no_item": "There is no item {item} here.",
    "review_not_yours": "Only the admin responsible may review this: {who}.",
    "review_already_decided": "Item {i} has already been decided: {decision}. Nothing changed.",
    "review_click_kept": "Kept {n} item(s).",
    "review_click_removed": "Removed; the grant is revoked.",
    "review_removed_holder": "Your grant {name} was removed in access review {id}.",
    "review_remind": (
        "Access review {id}: {n} grant(s) are still waiting for your review; "
        "deadline {deadline}. Please decide them on the review card."
    ),
    "review_status_title": "Access review {id} {state}",
    "review_state_open": "(open)",
    "review_state_closed": "(closed)",
    "review_state_cancelled": "(cancelled)",
    "review_deadline": "Deadline: {at}",
    "review_admin_line": "- {who}: {done}/{total} reviewed",
    "review_counts": (
        "kept {kept} · removed {removed} · to review {open} · unreviewed "
        "kept {unreviewed_kept} · unreviewed revoked {unreviewed_revoked}"
    ),
    "review_unreviewed_line": "- {i}. {holder}: {name}",
    "review_unreviewed_kept": (
        "Access review {id} reached its deadline: {n} grant(s) "
        "were not reviewed and are kept by policy:"
    ),
    "review_alert_what": "access review {id} deadline",
    "review_alert_why": "{n} grant(s) not reviewed, kept by policy",
    "review_policy_keep": "unreviewed grants are kept",
    "review_policy_revoke": "unreviewed grants are revoked",
    "review_summary": "Access review {id} is closed ({policy}).",
    "review_summary_all_reviewed": (
        "Every grant in access review {id} has been "
        "reviewed, so the review is closed."
    ),
    "review_closed_now": (
        "That was the last item: access review {id} is complete "
        "and now closed."
    ),
    "review_describe": "access review of {n} grants",
    "review_subject": "{n} grants, reviewed by {admins} admin(s)",
}
