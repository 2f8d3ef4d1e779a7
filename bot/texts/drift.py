"""Admin drift (admin changes made in DingTalk's console) and offboarding (members who left)."""

from __future__ import annotations

ZH: dict[str, str] = {
    "kind_admin_drift": "钉钉后台管理员变更",
    "card_title_admin_drift": "钉钉后台管理员变更 {id}",
    "card_body_admin_drift": "钉钉管理后台里有一项管理员变更没有经过 Baton，请主管理员决定是否采纳：",
    "drift_describe_admin_add": (
        "钉钉：{who} 成为子管理员；Baton：{who} 是普通成员。采纳后 Baton 也将其记为子管理员。"
    ),
    "drift_describe_admin_remove": (
        "钉钉：{who} 不再是管理员；Baton：{who} 仍是子管理员。采纳后 Baton 也移除其子管理员身份。"
    ),
    "drift_describe_owner": (
        "钉钉：{who} 成为主管理员；Baton 的主管理员是 {owner}。采纳后 Baton 也以 {who} 为主管理员（{owner} "
        "成为子管理员）。"
    ),
    "drift_alert": "钉钉管理后台变更未经 Baton：{what}（{id}，待主管理员采纳或忽略）",
    "drift_baseline": (
        "首次核对钉钉管理员名单，已记为基准：{detail}。这些差异此前已存在，不逐一开卡片；此后钉钉后台的"
        "新变更才会提醒。"
    ),
    "drift_baseline_dingtalk_only": "钉钉是管理员、Baton 不是：{who}",
    "drift_baseline_baton_only": "Baton 是子管理员、钉钉不是：{who}",
    "drift_baseline_why": "钉钉管理员核对",
    "drift_adopted": "{id} 已采纳：{what}",
    "drift_ignored": "{id} 已忽略（每天仍会提醒，直到钉钉与 Baton 一致）：{what}",
    "drift_expired": "{id} 无人处理，已过期（明天的核对会再次提醒）：{what}",
    "drift_cancelled": "{id} 已撤销：钉钉与 Baton 已一致，或相关成员已离职。",
    "drift_failed": "{id} 未能采纳（{error}）：{what}",
    "drift_not_applied_changed": "Baton 的记录已与钉钉一致，或成员已不在",
    "drift_not_applied_inactive": "该成员已离职",
    "button_adopt": "采纳",
    "button_ignore": "忽略",
    "action_adopt": "采纳",
    "action_ignore": "忽略",
    "click_ok_adopt": "已采纳。",
    "click_ok_ignore": "已忽略；每天仍会提醒。",
    "offboard_done_owner": "**{who} 已离职**（{via}）。已结束其全部权限：{ended}。{decisions}{reviews}",
    "offboard_ended_none": "无",
    "offboard_decisions": "\n\n原本等待其审批的请求改由你处理：{ids}。",
    "offboard_reviews": "\n\n其 {n} 项权限审核项已转给你（{id}）。",
    "offboard_cancelled": "\n\n其未完成的请求已取消：{ids}。",
    "offboard_alert": "{who} 已离职，已结束其 {n} 项权限/角色/模板（{via}）",
    "offboard_owner_left": (
        "**紧急：主管理员 {who} 已离职（{via}）！** Baton 仍记其为主管理员，已结束其其他权限。请持有 "
        "`owner.transfer` 的管理员尽快发送 `转让主管理员 @新主管理员`（`transfer-owner`），并在钉钉管理后台"
        "同步更换主管理员。"
    ),
    "offboard_owner_left_alert": "主管理员 {who} 已离职，请尽快 transfer-owner / 转让主管理员",
    "offboard_via_user_leave_org": "钉钉离职事件",
    "offboard_via_user_modify_org": "钉钉通讯录显示已停用",
    "offboard_via_sweep": "每日核对发现",
    "ended_level": "{level}身份",
    "ended_role": "角色 {name}",
    "ended_grant": "授权 {name}",
    "ended_template": "模板 {name}",
    "audit_action_template.unassign": "取消模板分配",
    "audit_action_member.offboard": "成员离职处理",
    "audit_action_admin_drift.requested": "发现钉钉后台管理员变更",
    "audit_action_review.handed_over": "审核项转交主管理员",
}

EN: dict[str, str] = {
    "kind_admin_drift": "Admin change in DingTalk",
    "card_title_admin_drift": "Admin change made in DingTalk {id}",
    "card_body_admin_drift": (
        "An admin change was made in DingTalk's admin console, not through Baton. The owner decides "
        "whether Baton adopts it:"
    ),
    "drift_describe_admin_add": (
        "DingTalk: {who} became an admin; Baton: {who} is a member. Adopt: Baton makes {who} an admin "
        "too."
    ),
    "drift_describe_admin_remove": (
        "DingTalk: {who} is no longer an admin; Baton: {who} still is. Adopt: Baton removes {who} "
        "as admin too."
    ),
    "drift_describe_owner": (
        "DingTalk: {who} became the main administrator; Baton's owner is {owner}. Adopt: Baton makes "
        "{who} the owner ({owner} becomes an admin)."
    ),
    "drift_baseline": (
        "First check of DingTalk's admin list, recorded as the baseline: {detail}. These "
        "differences were there before; no card is opened for them. Only later changes in "
        "DingTalk's console are alerted."
    ),
    "drift_baseline_dingtalk_only": "admin in DingTalk, not in Baton: {who}",
    "drift_baseline_baton_only": "sub-admin in Baton, not in DingTalk: {who}",
    "drift_baseline_why": "DingTalk admin check",
    "drift_alert": (
        "admin change made in DingTalk, not through Baton: {what} ({id}, for the owner to adopt or "
        "ignore)"
    ),
    "drift_adopted": "{id} adopted: {what}",
    "drift_ignored": "{id} ignored (alerted again daily while DingTalk and Baton differ): {what}",
    "drift_expired": "{id} expired undecided (tomorrow's check alerts it again): {what}",
    "drift_cancelled": "{id} withdrawn: DingTalk and Baton agree now, or the member left.",
    "drift_failed": "{id} was not adopted ({error}): {what}",
    "drift_not_applied_changed": "Baton already matches DingTalk, or the member is gone",
    "drift_not_applied_inactive": "the member has left",
    "button_adopt": "Adopt",
    "button_ignore": "Ignore",
    "action_adopt": "adopted",
    "action_ignore": "ignored",
    "click_ok_adopt": "Adopted.",
    "click_ok_ignore": "Ignored; it is alerted again daily.",
    "offboard_done_owner": (
        "**{who} has left** ({via}). Everything they held has ended: {ended}.{decisions}{reviews}"
    ),
    "offboard_ended_none": "nothing",
    "offboard_decisions": "\n\nRequests that waited for their decision now wait for yours: {ids}.",
    "offboard_reviews": "\n\nTheir {n} access-review items are now yours ({id}).",
    "offboard_cancelled": "\n\nTheir open requests were cancelled: {ids}.",
    "offboard_alert": "{who} left; {n} permissions, roles or templates of theirs ended ({via})",
    "offboard_owner_left": (
        "**Urgent: the owner {who} has left ({via})!** Baton still records them as owner and has "
        "ended everything else they held. An admin holding `owner.transfer` should send `transfer-owner "
        "@new-owner` (`转让主管理员`) now, and change the main administrator in DingTalk's console "
        "too."
    ),
    "offboard_owner_left_alert": "the owner {who} has left: run transfer-owner / 转让主管理员 now",
    "offboard_via_user_leave_org": "DingTalk's leave event",
    "offboard_via_user_modify_org": "the directory shows them inactive",
    "offboard_via_sweep": "found by the daily check",
    "ended_level": "{level} rights",
    "ended_role": "role {name}",
    "ended_grant": "grant {name}",
    "ended_template": "template {name}",
    "audit_action_template.unassign": "unassign a template",
    "audit_action_member.offboard": "offboard a member",
    "audit_action_admin_drift.requested": "admin change found in DingTalk",
    "audit_action_review.handed_over": "review items handed to the owner",
}
